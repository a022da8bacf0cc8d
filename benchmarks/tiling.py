"""Tiling overhead and seams: restore() with its automatic tiles against one untiled forward pass.

On a W x W crop-mosaic of real photographs (held-out images tiled with mirroring, plus noise sigma 25):
time of the automatic plan against one forward pass of the whole image (tile = W), and the PSNR between
the two outputs (infinite would mean identical).

    python -m benchmarks.tiling --model general-gray --size 4096
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch

from scripts._dev import datasets

from napari_gama_ir import load_model, plan_restore, restore
from napari_gama_ir.training.losses import psnr


def mosaic(size: int) -> np.ndarray:
    imgs = list(datasets.split("eval", with_nuclei=False).values())
    tile = np.concatenate([np.pad(i, ((0, 512 - i.shape[0]), (0, 512 - i.shape[1])), mode="reflect") for i in imgs], axis=1)
    reps = (size // tile.shape[0] + 1, size // tile.shape[1] + 1)
    return np.tile(tile, reps)[:size, :size].astype(np.float32)


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="general-gray")
    p.add_argument("--size", type=int, default=4096)
    p.add_argument("--mean-mode", default=None)
    p.add_argument("--overlap", default="auto")
    args = p.parse_args(argv)
    net = load_model(args.model)
    clean = mosaic(args.size)
    noisy = (clean + np.random.default_rng(0).normal(0, 25 / 255, clean.shape)).astype(np.float32)
    overlap = args.overlap if args.overlap == "auto" else int(args.overlap)
    plan = plan_restore(noisy, net, axes="YX", device="cpu", mean_mode=args.mean_mode, overlap=overlap)
    print(plan.describe(), file=sys.stderr)
    t = time.perf_counter()
    tiled = restore(noisy, net, axes="YX", device="cpu", mean_mode=args.mean_mode, overlap=overlap)
    t_tiled = time.perf_counter() - t
    t = time.perf_counter()
    whole = restore(noisy, net, axes="YX", device="cpu", mean_mode=args.mean_mode, tile=args.size)
    t_whole = time.perf_counter() - t
    rng = float(whole.max() - whole.min())
    print("| image | plan | tiled s | untiled s | ratio | PSNR tiled vs untiled (dB) | PSNR tiled vs clean | PSNR untiled vs clean |")
    print("|---|---|---|---|---|---|---|---|")
    print(f"| {args.size}x{args.size} | {plan.tile[0]} px tiles, overlap {plan.overlap[0]}, batch {plan.batch_size}, {plan.mean_mode} means | "
          f"{t_tiled:.1f} | {t_whole:.1f} | {t_tiled / t_whole:.3f} | {psnr(tiled, whole, rng):.1f} | {psnr(tiled, clean):.2f} | {psnr(whole, clean):.2f} |")
    print(f"torch threads: {torch.get_num_threads()}", file=sys.stderr)


if __name__ == "__main__":
    main()
