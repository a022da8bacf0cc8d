"""Fluorescence denoising at three photon levels: shipped GAMA-IR models against BM3D on the
Anscombe-transformed image and against a Noise2Void model trained on the same noisy image.

Held-out images (never in any training or validation set, see scripts/_dev/datasets.py): the stardist nuclei
rows 384-512 and BBBC007 images 5-8. Each clean image is scaled so its 99.9th percentile is 1; noise is
Poisson with ``peak`` photons at that level plus Gaussian read noise (sigma 0.01 of the range):
``noisy = Poisson(peak * clean) / peak + N(0, 0.01)``. PSNR/SSIM against the clean image, data range 1.

- BM3D + GAT: the generalised Anscombe transform of the photon counts (variance 1), BM3D with sigma 1,
  and the closed-form unbiased inverse (Makitalo & Foi 2013). Given the true peak and read noise.
- N2V: the fine-tuning engine's self-supervised mode on the one noisy image, from an untrained ``w16``
  network, for a fixed wall time per image (``--n2v-seconds``).
- GAMA-IR models: ``restore()`` with every option on "auto"; blind to the noise level.

    python -m benchmarks.fluorescence --models fluorescence general-gray [--peaks 5 20 100] [--n2v-seconds 60]
        [--write-card fluorescence]     # store the named model's results (and the baselines') in its card
        [--self-ensemble]               # also each model with restore(..., self_ensemble=True)
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch

from scripts._dev import datasets

from napari_gama_ir import finetune, load_model, restore
from napari_gama_ir.training.losses import psnr, ssim

READ_NOISE = 0.01
SELF_ENSEMBLE = " + self-ensemble"  # suffix of the rows of restore(..., self_ensemble=True)


def eval_images() -> dict[str, np.ndarray]:
    images = {"nuclei-eval": datasets.nuclei("eval")}
    bbbc = list(datasets.bbbc007().items())
    images.update({f"bbbc007-{i}": bbbc[i][1] for i in datasets.BBBC007_SPLIT["eval"]})
    return images


def add_noise(clean: np.ndarray, peak: float, rng: np.random.Generator, read_noise: float = READ_NOISE) -> np.ndarray:
    """Poisson noise with ``peak`` photons at 1 plus Gaussian read noise (sigma ``read_noise`` of the range)."""
    counts = rng.poisson(np.clip(clean, 0, None) * peak)
    return (counts / peak + rng.normal(0, read_noise, clean.shape)).astype(np.float32)


def bm3d_gat(noisy: np.ndarray, peak: float, read_noise: float = READ_NOISE) -> np.ndarray:
    """BM3D between the generalised Anscombe transform and its closed-form unbiased inverse (true noise
    parameters: ``peak`` photons at 1, read noise sigma ``read_noise`` of the range)."""
    import bm3d

    s = read_noise * peak  # read noise in photon units
    z = noisy * peak
    d = 2 * np.sqrt(np.maximum(z + 3 / 8 + s**2, 0))
    d = bm3d.bm3d(d, sigma_psd=1.0)
    d = np.maximum(d, 0.8)  # the inverse's series is for D away from 0
    inv = 0.25 * d**2 + 0.25 * np.sqrt(1.5) / d - 11 / 8 / d**2 + 5 / 8 * np.sqrt(1.5) / d**3 - 1 / 8 - s**2
    return (inv / peak).astype(np.float32)


def n2v(noisy: np.ndarray, seconds: float) -> np.ndarray:
    net = finetune(noisy, None, base="scratch:w16", mode="self-supervised", max_minutes=seconds / 60,
                   steps=1_000_000, seed=0, lr=1e-3)  # fmt: skip
    return restore(noisy, net, device="cpu")


def write_card(model_name: str, rows, images, args) -> None:
    """Put the model's held-out PSNR/SSIM per photon level (and the baselines') into its card, atomically."""
    from napari_gama_ir.zoo.store import save_card

    net = load_model(model_name)
    per_level = {}
    for peak in args.peaks:
        sel = [r for r in rows if r[0] == peak and not r[2].endswith(SELF_ENSEMBLE)]  # cards hold the plain models
        entry = {}
        for method in dict.fromkeys(r[2] for r in sel):
            mine = [r for r in sel if r[2] == method]
            key = "model" if method == f"GAMA-IR {model_name}" else method
            entry[key] = {"psnr": round(float(np.mean([r[3] for r in mine])), 2), "ssim": round(float(np.mean([r[4] for r in mine])), 4)}
        per_level[f"poisson peak {peak:g} + read noise {READ_NOISE:g}"] = entry
    mid = list(per_level.values())[len(per_level) // 2]
    summary = f"held-out PSNR at {args.peaks[len(args.peaks) // 2]:g} photons: {mid['model']['psnr']:.2f} dB (BM3D+GAT {mid['BM3D + GAT']['psnr']:.2f})"
    card = net.card.replace(metrics={**net.card.metrics, "eval": {"images": list(images), "protocol": "benchmarks/fluorescence.py", **per_level}, "summary": summary})
    print(f"wrote held-out metrics into {save_card(card, model_name)}", file=sys.stderr)  # the weights stay as they are


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--models", nargs="+", default=["fluorescence", "general-gray"])
    p.add_argument("--peaks", type=float, nargs="+", default=[5, 20, 100])
    p.add_argument("--n2v-seconds", type=float, default=60)
    p.add_argument("--no-n2v", action="store_true")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--self-ensemble", action="store_true", help="also each model with restore(self_ensemble=True)")
    p.add_argument("--write-card", nargs="+", default=[], metavar="MODEL", help="store these models' results in their cards")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    images = eval_images()
    nets = {name: load_model(name) for name in args.models}
    methods = {"noisy": lambda x, peak: x, "BM3D + GAT": bm3d_gat}
    methods.update({f"GAMA-IR {name}": (lambda x, peak, net=net: restore(x, net, device="cpu")) for name, net in nets.items()})
    if args.self_ensemble:
        methods.update({f"GAMA-IR {name}{SELF_ENSEMBLE}": (lambda x, peak, net=net: restore(x, net, device="cpu", self_ensemble=True))
                        for name, net in nets.items()})  # fmt: skip
    if not args.no_n2v:
        methods[f"N2V ({args.n2v_seconds:g} s, w16)"] = lambda x, peak: n2v(x, args.n2v_seconds)
    restore(next(iter(images.values()))[:64, :64], next(iter(nets.values())), device="cpu")  # warm-up
    rows = []
    for peak in args.peaks:
        for name, clean in images.items():
            noisy = add_noise(clean, peak, np.random.default_rng(int(peak) * 100 + len(name)))
            for method, fn in methods.items():
                t = time.perf_counter()
                out = fn(noisy, peak)
                dt = time.perf_counter() - t
                rows.append((peak, name, method, psnr(out, clean), ssim(np.clip(out, 0, 1), np.clip(clean, 0, 1)), dt))
                print(f"{peak:5g} {name:14s} {method:28s} {rows[-1][3]:6.2f} dB  SSIM {rows[-1][4]:.4f}  {dt:6.2f} s",
                      file=sys.stderr, flush=True)  # fmt: skip
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; images: {', '.join(images)}\n")
    print("| photons (peak) | method | PSNR (dB) | SSIM | s / image |\n|---|---|---|---|---|")
    for peak in args.peaks:
        for method in methods:
            sel = [r for r in rows if r[0] == peak and r[2] == method]
            print(f"| {peak:g} | {method} | {np.mean([r[3] for r in sel]):.2f} | {np.mean([r[4] for r in sel]):.4f} | "
                  f"{np.mean([r[5] for r in sel]):.2f} |")  # fmt: skip
    for name in args.write_card:
        write_card(name, rows, images, args)
    print("\nper image (PSNR dB):")
    names = list(images)
    print("| photons | method | " + " | ".join(names) + " |\n|---|---|" + "---|" * len(names))
    for peak in args.peaks:
        for method in methods:
            vals = {r[1]: r[3] for r in rows if r[0] == peak and r[2] == method}
            print(f"| {peak:g} | {method} | " + " | ".join(f"{vals[n]:.2f}" for n in names) + " |")


if __name__ == "__main__":
    main()
