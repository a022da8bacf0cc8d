"""Denoising quality on held-out images: a GAMA-IR model against BM3D and scikit-image's non-local means.

Held-out images (never in training or validation, see scripts/_dev/datasets.py): camera, coins, astronaut
(grayscale) and the bottom rows of the stardist nuclei image. Gaussian noise at sigma 15, 25, 50 (on the
0-255 scale), one fixed seed per image and sigma; noisy images are float (not clipped). PSNR/SSIM against
the clean image with data range 1. NLM (fast mode, 7x7 patches, 11x11 search, h = 0.8 sigma) and BM3D
(`bm3d` package, profile "np") are given the true sigma; GAMA-IR is blind. Time: wall seconds per image on
this machine's CPU (torch and BM3D using its cores).

    python -m benchmarks.quality --model general-gray [--sigmas 15 25 50] [--no-bm3d]
    python -m benchmarks.quality --model photo-rgb --rgb     # RGB: astronaut (held out) and chelsea
    python -m benchmarks.quality --model photo-gray --self-ensemble   # adds restore(..., self_ensemble=True)

RGB: astronaut is the only held-out colour photograph; chelsea (the validation image: used to pick the
best checkpoint, never trained on) is scored beside it and marked as such. NLM and BM3D run their colour
versions (``channel_axis=-1``; ``bm3d.bm3d_rgb``, which denoises in a luminance-chrominance space).
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from scripts._dev import datasets

from napari_gama_ir import load_model, restore
from napari_gama_ir.training.losses import psnr, ssim


SELF_ENSEMBLE = " + self-ensemble"  # suffix of the rows of restore(..., self_ensemble=True)


def nlm(noisy, sigma):
    from skimage.restoration import denoise_nl_means

    channel_axis = -1 if noisy.ndim == 3 else None
    return denoise_nl_means(noisy, h=0.8 * sigma, sigma=sigma, fast_mode=True, patch_size=7, patch_distance=5,
                            channel_axis=channel_axis)  # fmt: skip


def bm3d_denoise(noisy, sigma):
    import bm3d

    if noisy.ndim == 3:
        return bm3d.bm3d_rgb(noisy, sigma_psd=sigma)
    return bm3d.bm3d(noisy, sigma_psd=sigma)


def eval_images(rgb: bool, more_photos: bool = False) -> dict:
    if more_photos:  # the four held-out Debian wallpaper photographs, 512 x 512 centres
        return datasets.more_eval(rgb)
    if rgb:
        return {"astronaut": datasets.photo("astronaut", rgb=True), "chelsea (val)": datasets.photo("chelsea", rgb=True)}
    return datasets.split("eval")


def write_card(net, rows, method, names, args):
    """Put the model's held-out PSNR/SSIM per sigma (and the baselines') into its card, atomically."""
    from napari_gama_ir.zoo.store import save_card

    per_sigma = {}
    for sigma in args.sigmas:
        sel = [r for r in rows if r[0] == sigma and not r[2].endswith(SELF_ENSEMBLE)]  # cards hold the plain model
        entry = {}
        for m in sorted({r[2] for r in sel}):
            mine = [r for r in sel if r[2] == m]
            key = "model" if m == method else m
            entry[key] = {"psnr": round(float(np.mean([r[3] for r in mine])), 2), "ssim": round(float(np.mean([r[4] for r in mine])), 4)}
        per_sigma[f"gaussian sigma {sigma:g}"] = entry
    s25 = per_sigma.get("gaussian sigma 25", next(iter(per_sigma.values())))
    summary = f"held-out PSNR at sigma 25: {s25['model']['psnr']:.2f} dB (NLM {s25['NLM']['psnr']:.2f}" + (
        f", BM3D {s25['BM3D']['psnr']:.2f})" if "BM3D" in s25 else ")")
    metrics = {**net.card.metrics, "eval": {"images": names, "protocol": "benchmarks/quality.py", **per_sigma}, "summary": summary}
    print(f"wrote held-out metrics into {save_card(net.card.replace(metrics=metrics), args.model)}", file=sys.stderr)  # weights untouched


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="general-gray")
    p.add_argument("--sigmas", type=float, nargs="+", default=[15, 25, 50])
    p.add_argument("--no-bm3d", action="store_true")
    p.add_argument("--mean-mode", default=None)
    p.add_argument("--precision", default="auto", help="restore()'s precision (auto: bf16 on CPUs with native bf16)")
    p.add_argument("--rgb", action="store_true", help="colour photographs (astronaut, chelsea) instead of grayscale")
    p.add_argument("--more-photos", action="store_true", help="the four held-out Debian photographs instead (not stored in the card)")
    p.add_argument("--self-ensemble", action="store_true", help="also the model with restore(self_ensemble=True)")
    p.add_argument("--write-card", action="store_true", help="store the model's held-out results in its card")
    args = p.parse_args(argv)
    if args.more_photos and args.write_card:
        p.error("--more-photos results are not stored in cards (their eval is the standard set); drop --write-card")
    net = load_model(args.model)
    images = eval_images(args.rgb, args.more_photos)
    axes = "YXC" if args.rgb else "YX"

    def gama(noisy, _sigma, self_ensemble=False):
        return restore(noisy, net, axes=axes, device="cpu", mean_mode=args.mean_mode, precision=args.precision,
                       self_ensemble=self_ensemble)  # fmt: skip

    methods = {"noisy": lambda x, s: x, "NLM": nlm, f"GAMA-IR {args.model}": gama}
    if args.self_ensemble:
        methods[f"GAMA-IR {args.model}{SELF_ENSEMBLE}"] = lambda x, s: gama(x, s, self_ensemble=True)
    if not args.no_bm3d:
        methods["BM3D"] = bm3d_denoise
    rows = []
    for sigma in args.sigmas:
        for name, clean in images.items():
            rng = np.random.default_rng(int(sigma) * 1000 + len(name))
            noisy = (clean + rng.normal(0, sigma / 255, clean.shape)).astype(np.float32)
            for method, fn in methods.items():
                t = time.perf_counter()
                out = fn(noisy, sigma / 255)
                dt = time.perf_counter() - t
                rows.append((sigma, name, method, psnr(out, clean), ssim(*(np.moveaxis(a, -1, 0) if args.rgb else a for a in (np.clip(out, 0, 1), clean))), dt))
                print(f"{sigma:5.0f} {name:12s} {method:24s} {rows[-1][3]:6.2f} dB  SSIM {rows[-1][4]:.4f}  {dt:6.2f} s", file=sys.stderr)
    print(f"\n| sigma | method | PSNR (dB) | SSIM | s / image |\n|---|---|---|---|---|")
    for sigma in args.sigmas:
        for method in methods:
            sel = [r for r in rows if r[0] == sigma and r[2] == method]
            print(f"| {sigma:g} | {method} | {np.mean([r[3] for r in sel]):.2f} | {np.mean([r[4] for r in sel]):.4f} | {np.mean([r[5] for r in sel]):.2f} |")
    if args.write_card:
        write_card(net, rows, f"GAMA-IR {args.model}", list(images), args)
    print("\nper image (PSNR dB):")
    names = list(images)
    print("| sigma | method | " + " | ".join(names) + " |\n|---|---|" + "---|" * len(names))
    for sigma in args.sigmas:
        for method in methods:
            vals = {r[1]: r[3] for r in rows if r[0] == sigma and r[2] == method}
            print(f"| {sigma:g} | {method} | " + " | ".join(f"{vals[n]:.2f}" for n in names) + " |")


if __name__ == "__main__":
    main()
