"""Seconds per training step of the fine-tuning engine, fp32 against bf16 autocast, per model size.

Each run is the engine's own loop (`iter_finetune`, synthetic mode, Gaussian noise) on the shipped RGB
sample's clean image (320 x 320) or its gray mean, from a scratch preset; the first `--warmup` steps are
not timed, nor is validation (which runs only before the first step and after the last). bf16 needs a
GPU or a CPU with native bfloat16 (AVX512-BF16, AMX); elsewhere its rows are skipped.

    python -m benchmarks.train_speed --presets w16 S --patch 192 --batch 4 --steps 8 --threads 1 [--rgb]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from napari_gama_ir.samples import load_sample
from napari_gama_ir.engine.runtime import cpu_has_bf16, pick_device
from napari_gama_ir.training import FinetuneOptions, iter_finetune
from napari_gama_ir.training.noise import NoiseModel


def seconds_per_step(clean: np.ndarray, preset: str, precision: str, args) -> float:
    """Median wall time of the timed steps (each from one yield of the loop to the next)."""
    opts = FinetuneOptions(
        clean=[clean], base=f"scratch:{preset}", mode="synthetic", steps=args.warmup + args.steps + 1,
        patch_size=args.patch, batch_size=args.batch, lr=1e-4, eval_every=10**9, val_images=[clean],
        noise_model=NoiseModel(), val_crop=64, device=args.device, precision=precision, seed=0,
        axes="YXC" if clean.ndim == 3 else "YX",
    )  # fmt: skip
    stamps = []
    gen = iter_finetune(opts)
    try:
        while True:
            progress = next(gen)
            if 0 < progress.step <= args.warmup + args.steps:  # not the last step: it includes validation
                stamps.append(time.perf_counter())
    except StopIteration:
        pass
    steps = np.diff(stamps[args.warmup - 1 :])
    return float(np.median(steps))


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--presets", nargs="+", default=["w16", "S"])
    p.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    p.add_argument("--patch", type=int, default=192)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--steps", type=int, default=8, help="timed steps per run")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--rgb", action="store_true", help="3-channel models on the RGB image (else its gray mean)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    clean = load_sample("photo-rgb")["clean"].astype(np.float32) / 255.0
    if not args.rgb:
        clean = clean.mean(axis=-1)
    device = pick_device(args.device)
    native = device.type != "cpu" or cpu_has_bf16()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {device}"
          f"{'' if device.type != 'cpu' else f', native bf16: {native}'}; "
          f"{'RGB' if args.rgb else 'gray'}, batch {args.batch} x {args.patch} px, median of {args.steps} steps\n")  # fmt: skip
    print("| preset | precision | s / step | megapixels / s | speed-up over fp32 |")
    print("|---|---|---|---|---|")
    for preset in args.presets:
        fp32 = None
        for precision in args.precisions:
            if precision == "bf16" and not native:
                continue
            s = seconds_per_step(clean, preset, precision, args)
            fp32 = s if precision == "fp32" else fp32
            mps = args.batch * args.patch**2 / s / 1e6
            gain = f"{fp32 / s:.2f}x" if fp32 and precision != "fp32" else "-"
            print(f"| {preset} | {precision} | {s:.2f} | {mps:.3f} | {gain} |", flush=True)


if __name__ == "__main__":
    main()
