"""Noise and quality estimates from the noisy image alone, against the truth.

Clean images that ship offline: scikit-image's gray photographs (camera, moon, coins, page-free ones) and
astronaut as gray, and the package's clean nuclei sample; synthetic noise with a fixed seed:

- Gaussian, sigma 15, 25 and 50 of 255 (photographs, in [0, 1] float);
- Poisson-Gaussian with 5, 20 and 100 photons at the brightest pixel and read noise 2 photons (nuclei and
  photographs scaled to [0, 1]: y = (Poisson(n * x) + N(0, 2^2)) / n, so gain = 1/n and sigma = 2/n).

Prints, per image and noise: the true and estimated gain and sigma (``estimate_noise``); the true PSNR of
``restore`` with the shipped default for that kind of data and the PSNR ``estimate_quality`` predicts with
the true noise and with the estimated one; then, on one image, the estimated and true PSNR of every
shipped gray model and their rank correlation.

    python -m benchmarks.estimates [--quick]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import tifffile

from napari_gama_ir import estimate_noise, estimate_quality, list_models, restore
from napari_gama_ir.estimate.noise import NoiseEstimate

PHOTOS = ("camera", "moon", "coins", "astronaut")
SIGMAS = (15, 25, 50)
PHOTONS = (5, 20, 100)
READ_NOISE = 2.0


def _photo(name: str) -> np.ndarray:
    import skimage.data
    from skimage.color import rgb2gray

    img = getattr(skimage.data, name)()
    img = rgb2gray(img) if img.ndim == 3 else img / 255.0
    h, w = img.shape
    return np.ascontiguousarray(img[(h - 384) // 2 : (h + 384) // 2, (w - 384) // 2 : (w + 384) // 2], dtype=np.float64)


def _nuclei() -> np.ndarray:
    import napari_gama_ir.samples as samples

    clean = tifffile.imread(os.path.join(os.path.dirname(samples.__file__), "fluorescence-2d_clean.tif")).astype(np.float64)
    return (clean - clean.min()) / (clean.max() - clean.min())


def _psnr(x: np.ndarray, ref: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((x - ref) ** 2)))


def _cases(quick: bool):
    rng = np.random.default_rng(0)
    photos = PHOTOS[:2] if quick else PHOTOS
    for name in photos:
        clean = _photo(name)
        for s in SIGMAS:
            sigma = s / 255
            yield f"{name} gaussian {s}/255", clean, clean + rng.normal(0, sigma, clean.shape), 0.0, sigma, "photo-gray"
    for name, clean in [("nuclei", _nuclei())] + ([] if quick else [("camera", _photo("camera"))]):
        for n in PHOTONS:
            noisy = (rng.poisson(n * clean) + rng.normal(0, READ_NOISE, clean.shape)) / n
            yield f"{name} poisson {n} photons", clean, noisy, 1 / n, READ_NOISE / n, "fluorescence"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer images (a smoke run)")
    args = parser.parse_args()
    print("| image, noise | gain true / est. | sigma true / est. | model | PSNR true | est. (true noise) | est. (est. noise) |")
    print("|---|---|---|---|---|---|---|")
    sigma_err, gain_err, psnr_err_true, psnr_err_est = [], [], [], []
    t0 = time.perf_counter()
    for label, clean, noisy, gain, sigma, model in _cases(args.quick):
        noisy = noisy.astype(np.float32)
        est = estimate_noise(noisy)
        restored = restore(noisy, model, device="cpu", precision="fp32")
        true = _psnr(restored.astype(np.float64), clean)
        known = NoiseEstimate(gain=gain, sigma=sigma, levels=est.levels, variances=est.variances)
        with_true = estimate_quality(noisy, model, noise=known, device="cpu").psnr(1.0)
        with_est = estimate_quality(noisy, model, noise=est, device="cpu").psnr(1.0)
        if gain == 0:
            sigma_err.append(abs(est.sigma - sigma) / sigma)
        else:
            gain_err.append(abs(est.gain - gain) / gain)
        psnr_err_true.append(with_true - true)
        psnr_err_est.append(with_est - true)
        print(f"| {label} | {gain:.4g} / {est.gain:.4g} | {sigma:.4g} / {est.sigma:.4g} | {model} | {true:.2f} | "
              f"{with_true:.2f} | {with_est:.2f} |")  # fmt: skip
    print()
    print(f"Gaussian sigma, relative error: median {np.median(sigma_err):.1%}, max {np.max(sigma_err):.1%}")
    print(f"Poisson gain, relative error: median {np.median(gain_err):.1%}, max {np.max(gain_err):.1%}")
    print(f"estimated - true PSNR with the true noise: mean {np.mean(psnr_err_true):+.2f} dB, mean |.| "
          f"{np.mean(np.abs(psnr_err_true)):.2f} dB, max |.| {np.max(np.abs(psnr_err_true)):.2f} dB")  # fmt: skip
    print(f"estimated - true PSNR with the estimated noise: mean {np.mean(psnr_err_est):+.2f} dB, mean |.| "
          f"{np.mean(np.abs(psnr_err_est)):.2f} dB, max |.| {np.max(np.abs(psnr_err_est)):.2f} dB")  # fmt: skip
    _ranking()
    print(f"\n{time.perf_counter() - t0:.0f} s")


def _ranking() -> None:
    """All shipped single-channel models on one photograph at sigma 25: estimated vs true PSNR, Spearman."""
    from scipy.stats import spearmanr

    clean = _photo("coins")
    noisy = (clean + np.random.default_rng(1).normal(0, 25 / 255, clean.shape)).astype(np.float32)
    est = estimate_noise(noisy)
    rows = []
    for card in list_models():
        if card.in_channels != 1:
            continue
        true = _psnr(restore(noisy, card.name, device="cpu", precision="fp32").astype(np.float64), clean)
        rows.append((card.name, true, estimate_quality(noisy, card.name, noise=est, device="cpu").psnr(1.0)))
    print("\n| model (coins, gaussian 25/255) | PSNR true | PSNR estimated |")
    print("|---|---|---|")
    for name, true, guess in rows:
        print(f"| {name} | {true:.2f} | {guess:.2f} |")
    rho = spearmanr([r[1] for r in rows], [r[2] for r in rows]).statistic
    print(f"Spearman rank correlation of estimated and true PSNR over {len(rows)} models: {rho:.2f}")


if __name__ == "__main__":
    main()
