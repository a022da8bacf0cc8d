"""Structured noise: is it detected, and does masking along it (structN2V) help self-supervised fine-tuning?

Detection (``--detection``): on all 14 BBBC007 images (real nuclei, ``scripts/_dev/datasets.py``, each scaled so
its 99.9th percentile is 1) with synthetic noise of each kind, the lag-1 autocorrelation along y and x that
:func:`~napari_gama_ir.estimate.correlation.noise_correlation` reads, the direction and length it reports, and
on how many images it calls the noise correlated. This sets the thresholds in ``estimate/correlation.py``.

Fine-tuning (default): on BBBC007 test images (``BBBC007_SPLIT["eval"]``, never trained on) with correlated
noise, PSNR against the clean image (data range 1) of the noisy input; the shipped ``fluorescence`` model as
is; and the blind-spot mode (Noise2Void) fine-tuned on the noisy image alone for the same ``--steps``, with
the noise correlation measured and masked along (structN2V, ``noise_correlation="auto"``) and without
(``"off"``). Noise kinds: ``x3``, Gaussian noise (sigma 0.1) filtered along x by a 3-pixel box (same sigma);
``stripes``, Poisson-Gaussian noise at 20 photons (read noise 2) plus column stripes (a Gaussian offset per
column, sigma 0.05).

    python -m benchmarks.structured_noise --detection
    python -m benchmarks.structured_noise [--steps 200] [--images 1] [--kinds x3 stripes] [--threads 1]
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch

from scripts._dev import datasets

from napari_gama_ir import finetune, load_model, restore
from napari_gama_ir.estimate.correlation import noise_correlation
from napari_gama_ir.training.losses import psnr

DETECTION_KINDS = ("gaussian", "pg5", "pg20", "pg100", "x3", "y3", "x5", "y5", "column stripes", "row stripes",
                   "weak column stripes")  # fmt: skip


def along(noise: np.ndarray, taps: int, axis: int) -> np.ndarray:
    """``noise`` filtered by a ``taps``-pixel box along ``axis`` (0: y, 1: x), keeping white noise's sigma."""
    kernel = np.ones(taps) / np.sqrt(taps)
    return np.apply_along_axis(lambda v: np.convolve(v, kernel, "same"), axis, noise)


def poisson_gaussian(clean: np.ndarray, photons: float, rng: np.random.Generator, read: float = 2.0) -> np.ndarray:
    return (rng.poisson(np.clip(clean, 0, None) * photons) + rng.normal(0, read, clean.shape)) / photons


def add_noise(clean: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    """``clean`` (Y, X, scaled to 1) with noise of ``kind``, float32."""
    h, w = clean.shape
    if kind.startswith("pg"):
        out = poisson_gaussian(clean, float(kind[2:]), rng)
    elif kind == "gaussian":
        out = clean + rng.normal(0, 0.05, clean.shape)
    elif kind[0] in "xy" and kind[1:].isdigit():
        out = clean + along(rng.normal(0, 0.05, clean.shape), int(kind[1:]), 1 if kind[0] == "x" else 0)
    elif kind == "x3-strong":  # the fine-tuning case: sigma 0.1
        out = clean + along(rng.normal(0, 0.1, clean.shape), 3, 1)
    elif kind.endswith("stripes"):
        sigma = 0.02 if kind.startswith("weak") else 0.05
        offsets = rng.normal(0, sigma, (1, w)) if "column" in kind or kind == "stripes" else rng.normal(0, sigma, (h, 1))
        out = poisson_gaussian(clean, 20, rng) + offsets
    else:
        raise ValueError(f"unknown noise kind {kind!r}")
    return out.astype(np.float32)


def detection() -> None:
    images = list(datasets.bbbc007().values())
    rng = np.random.default_rng(0)
    print(f"| noise | lag-1 ACF along y | along x | direction | length | called correlated |  ({len(images)} BBBC007 images)")
    print("|---|---|---|---|---|---|")
    for kind in DETECTION_KINDS:
        found = [noise_correlation(add_noise(c, kind, rng)) for c in images]
        y1, x1 = [f.profile("y")[1] for f in found], [f.profile("x")[1] for f in found]
        dirs = sorted({str(f.direction) for f in found})
        lengths = sorted({f.length for f in found})
        print(f"| {kind} | {min(y1):+.3f} .. {max(y1):+.3f} | {min(x1):+.3f} .. {max(x1):+.3f} | {', '.join(dirs)} | "
              f"{', '.join(map(str, lengths))} | {sum(f.correlated for f in found)}/{len(found)} |")


def fine_tuning(args) -> None:
    images = list(datasets.bbbc007().items())
    picks = datasets.BBBC007_SPLIT["eval"][: args.images]
    shipped = load_model(args.base)
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, {args.threads} thread(s); "
          f"{args.steps} steps, batch {args.batch_size}, patch {args.patch_size}")  # fmt: skip
    print("| noise | image | detected | noisy | shipped | blind-spot | blind-spot + structN2V mask |")
    print("|---|---|---|---|---|---|---|")
    for kind in args.kinds:
        for i in picks:
            name, clean = images[i]
            rng = np.random.default_rng(args.seed + i)
            noisy = add_noise(clean, "x3-strong" if kind == "x3" else kind, rng)
            found = noise_correlation(noisy)
            row = [psnr(noisy, clean, 1.0), psnr(restore(noisy, shipped, device="cpu"), clean, 1.0)]
            for setting in ("off", "auto"):
                t0 = time.perf_counter()
                net = finetune(noisy, None, base=args.base, mode="blind-spot", steps=args.steps, seed=args.seed,
                               batch_size=args.batch_size, patch_size=args.patch_size, noise_correlation=setting)  # fmt: skip
                row.append(psnr(restore(noisy, net, device="cpu"), clean, 1.0))
                print(f"  ({kind}, {name}, noise_correlation={setting}: {time.perf_counter() - t0:.0f} s)", flush=True)
            detected = f"{found.direction} over {found.length} px" if found.correlated else "white"
            print(f"| {kind} | bbbc007-{i} | {detected} | " + " | ".join(f"{v:.2f}" for v in row) + " |", flush=True)


def main(argv=None) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--detection", action="store_true", help="the detection table instead of fine-tuning")
    p.add_argument("--kinds", nargs="+", default=["x3", "stripes"], choices=["x3", "stripes"])
    p.add_argument("--images", type=int, default=1, help="how many BBBC007 test images (1-4)")
    p.add_argument("--base", default="fluorescence")
    p.add_argument("--steps", type=int, default=200, help="optimiser steps per training run")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--patch-size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    detection() if args.detection else fine_tuning(args)


if __name__ == "__main__":
    main()
