"""Self-supervised fine-tuning on the very noisy image to be restored, against the shipped model and baselines.

The user's situation: no clean image, one noisy image (or stack) to restore. Each self-supervised mode
fine-tunes the shipped ``fluorescence`` model on the noisy image alone (the engine's own split: its bottom
15 % of rows validate, by a score that needs no clean image), then restores that same whole image; PSNR
against the clean image (data range 1) is taken on the image restored.

Images: BBBC007 test images (``scripts/_dev/datasets.py``, ``BBBC007_SPLIT["eval"]``: real nuclei no
shipped model was trained or validated on), each scaled so its 99.9th percentile is 1. Noise:
Poisson-Gaussian with ``peak`` photons at 1 and Gaussian read noise of ``--read-noise`` photons (2):
``noisy = (Poisson(peak * clean) + N(0, read_noise^2)) / peak``.

Rows per photon level: the noisy input; the shipped model as is; each ``--modes`` fine-tune (blind-spot is
Noise2Void, neighbor2neighbor and recorrupted see ``training/objectives.py``) with the same budget; BM3D on
the generalised Anscombe transform given the true peak and read noise (``benchmarks.fluorescence.bm3d_gat``);
and the best Gaussian blur, its sigma chosen with the clean image (an oracle, for scale).
Budget per training run: ``--minutes`` of wall time (5), or ``--steps`` optimiser steps (overrides).

    python -m benchmarks.selfsupervised [--peaks 5 20 100] [--images 1] [--minutes 5 | --steps 400] [--threads 1]

``--stack`` adds, for each ``--modes`` fine-tune, the Z-stack table of ``benchmarks/context.py`` (the mode
without context and with one neighbouring plane on each side, against 3-plane binning).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import numpy as np
import torch
from scipy.ndimage import gaussian_filter

from benchmarks.fluorescence import add_noise, bm3d_gat
from scripts._dev import datasets

from napari_gama_ir import finetune, load_model, restore
from napari_gama_ir.training.losses import psnr, ssim

BLUR_SIGMAS = (0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0)


def held_out_images(count: int) -> dict[str, np.ndarray]:
    """The first ``count`` BBBC007 test images (400 x 400 float32)."""
    images = list(datasets.bbbc007().items())
    return {f"bbbc007-{i}": images[i][1] for i in datasets.BBBC007_SPLIT["eval"][:count]}


def best_blur(noisy: np.ndarray, clean: np.ndarray) -> np.ndarray:
    """The Gaussian blur of ``noisy`` whose sigma (of ``BLUR_SIGMAS``) scores best against ``clean``."""
    return max((gaussian_filter(noisy, s) for s in BLUR_SIGMAS), key=lambda out: psnr(out, clean))


def fine_tuned(noisy: np.ndarray, mode: str, base: str, args) -> tuple[np.ndarray, str]:
    """Fine-tune ``base`` on ``noisy`` with ``mode``, restore ``noisy`` with it; (restored, a note)."""
    budget = dict(steps=args.steps) if args.steps else dict(steps=1_000_000, max_minutes=args.minutes)
    net = finetune(noisy, None, base=base, mode=mode, seed=args.seed, batch_size=args.batch_size,
                   patch_size=args.patch_size, **budget)  # fmt: skip
    tr = net.card.training
    return restore(noisy, net, device="cpu"), f"{tr['steps']} steps, {tr['seconds']:.0f} s"


def add_budget_arguments(p: argparse.ArgumentParser) -> None:
    """The training budget and batch of every fine-tune (shared with ``benchmarks.context``)."""
    p.add_argument("--minutes", type=float, default=5.0, help="wall time per training run")
    p.add_argument("--steps", type=int, default=None, help="optimiser steps per training run (overrides --minutes)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--patch-size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--peaks", type=float, nargs="+", default=[5, 20, 100])
    p.add_argument("--read-noise", type=float, default=2.0, help="Gaussian read noise in photons (sigma)")
    p.add_argument("--images", type=int, default=1, help="how many BBBC007 test images (1-4)")
    p.add_argument("--base", default="fluorescence")
    p.add_argument("--modes", nargs="+", default=["blind-spot", "neighbor2neighbor", "recorrupted"])
    add_budget_arguments(p)
    p.add_argument("--no-bm3d", action="store_true")
    p.add_argument("--stack", action="store_true",
                   help="also the Z-stack table of benchmarks.context (each --modes fine-tune without and with context k=1)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    images = held_out_images(args.images)
    base = load_model(args.base)
    methods = {"noisy": lambda x, peak: (x, ""), f"{args.base} (shipped, as is)": lambda x, peak: (restore(x, base, device="cpu"), "")}
    methods.update({f"{mode} fine-tune": (lambda x, peak, mode=mode: fine_tuned(x, mode, args.base, args)) for mode in args.modes})
    if not args.no_bm3d:
        methods["BM3D + GAT (true noise)"] = lambda x, peak: (bm3d_gat(x, peak, args.read_noise / peak), "")
    rows = []
    for peak in args.peaks:
        for i, (name, clean) in enumerate(images.items()):
            noisy = add_noise(clean, peak, np.random.default_rng(int(peak) * 100 + i), args.read_noise / peak)
            for method, fn in [*methods.items(), ("best Gaussian blur (oracle sigma)", None)]:
                t = time.perf_counter()
                out, note = fn(noisy, peak) if fn else (best_blur(noisy, clean), "")
                rows.append((peak, name, method, psnr(out, clean), ssim(np.clip(out, 0, 1), np.clip(clean, 0, 1)), note))
                print(f"{peak:5g} {name:12s} {method:36s} {rows[-1][3]:6.2f} dB  SSIM {rows[-1][4]:.4f}  {note} "
                      f"({time.perf_counter() - t:.0f} s)", file=sys.stderr, flush=True)  # fmt: skip
    budget = f"{args.steps} steps" if args.steps else f"{args.minutes:g} min wall time"
    print("command: python -m benchmarks.selfsupervised " + " ".join(sys.argv[1:] if argv is None else argv))
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__} "
          f"with {torch.get_num_threads()} thread(s); training budget {budget} per run, batch {args.batch_size} x "
          f"{args.patch_size} px; images: {', '.join(images)}; read noise {args.read_noise:g} photons")  # fmt: skip
    for peak in args.peaks:
        print(f"\n{peak:g} photons at 1, read noise {args.read_noise:g}:\n\n| method | PSNR (dB) | SSIM | training |\n|---|---|---|---|")
        for method in dict.fromkeys(r[2] for r in rows):
            sel = [r for r in rows if r[0] == peak and r[2] == method]
            print(f"| {method} | {np.mean([r[3] for r in sel]):.2f} | {np.mean([r[4] for r in sel]):.4f} | {sel[0][5] or '-'} |")
    if args.stack:
        from benchmarks import context

        budget_args = ["--steps", str(args.steps)] if args.steps else ["--minutes", str(args.minutes)]
        for mode in args.modes:
            print(f"\nZ-stack, {mode}:\n", flush=True)
            context.main(["--mode", mode, "--contexts", "1", "--threads", str(args.threads), "--seed", str(args.seed),
                          "--batch-size", str(args.batch_size), "--patch-size", str(args.patch_size), *budget_args])


if __name__ == "__main__":
    main()
