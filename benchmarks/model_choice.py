"""Automatic model choice: does ``restore(x)`` without a model pick the best fast shipped model?

Held-out images only (never trained on nor used to select a checkpoint, see scripts/_dev/datasets.py):
- gray photographs: camera, coins, astronaut (ITU-R 601 luma) and the four held-out Debian photographs
  (512 x 512 centres); Gaussian noise at sigma 15, 25, 50 of 255, float, unclipped;
- fluorescence: the stardist nuclei rows 384-512 and BBBC007 images 5-8, each scaled so its 99.9th
  percentile is 1; Poisson noise with 5, 20, 100 photons at that level plus Gaussian read noise of 2
  photons: ``noisy = (Poisson(peak * clean) + N(0, 2)) / peak``.
One fixed seed per image and level. Every fast gray model (speed class "fast" in ``gama-ir models``) and
``restore(noisy)`` with no model run with every other option on "auto" (the latter's PSNR is that of the
model its plan names; the script checks once that both give the same pixels); PSNR against the clean
image, data range 1. Also timed: the choice alone (``zoo.choice``) on one 2048 x 2048 uint16 plane.

    python -m benchmarks.model_choice [--threads 2]
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch

from scripts._dev import datasets

from napari_gama_ir import load_model, list_models, plan_restore, restore
from napari_gama_ir.training.losses import psnr
from napari_gama_ir.zoo.defaults import speed_class

SIGMAS = (15, 25, 50)
PEAKS = (5, 20, 100)
READ_NOISE_PHOTONS = 2.0
WITHIN_DB = 0.2


def photographs() -> dict[str, np.ndarray]:
    images = dict(datasets.split("eval", with_nuclei=False))
    images.update(datasets.more_eval())
    return images


def fluorescence_images() -> dict[str, np.ndarray]:
    from benchmarks.fluorescence import eval_images

    return eval_images()


def cases():
    """(image, noise label, clean, noisy) for every held-out image and noise level, fixed seeds."""
    for name, clean in photographs().items():
        for sigma in SIGMAS:
            rng = np.random.default_rng(sigma * 1000 + len(name))
            yield name, f"sigma {sigma}", clean, (clean + rng.normal(0, sigma / 255, clean.shape)).astype(np.float32)
    for name, clean in fluorescence_images().items():
        for peak in PEAKS:
            rng = np.random.default_rng(peak * 100 + len(name))
            counts = rng.poisson(np.clip(clean, 0, None) * peak) + rng.normal(0, READ_NOISE_PHOTONS, clean.shape)
            yield name, f"{peak} photons", clean, (counts / peak).astype(np.float32)


def time_choice(repeats: int = 5) -> float:
    """Median seconds of the choice alone (sampling, noise estimate, statistics) on a 2048 x 2048 uint16 plane."""
    from napari_gama_ir.zoo.choice import choose_model, sample_planes

    rng = np.random.default_rng(0)
    plane = rng.poisson(50 + 400 * rng.random((2048, 2048))).astype(np.uint16)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        choose_model(sample_planes(plane[None, None]), 1)
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=0)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    fast = [c.name for c in list_models() if speed_class(c.parameter_count) == "fast" and c.in_channels == 1]
    nets = {name: load_model(name) for name in fast}
    rows = []
    for name, noise, clean, noisy in cases():
        scores = {m: psnr(restore(noisy, net, device="cpu"), clean) for m, net in nets.items()}
        plan = plan_restore(noisy, device="cpu")  # what restore(noisy) runs: the same model, so the same PSNR
        if not rows:  # checked once (each restore without a model loads its network anew: slow)
            assert np.array_equal(restore(noisy, device="cpu"), restore(noisy, nets[plan.model_name], device="cpu"))
        auto = scores[plan.model_name]
        best = max(scores, key=scores.get)
        rows.append((name, noise, best, scores[best], plan.model_name, auto, scores[best] - auto, plan.model_reason))
        print(f"{name:14s} {noise:11s} " + " ".join(f"{m} {v:6.2f}" for m, v in scores.items())
              + f" | auto {plan.model_name} {auto:6.2f}: {plan.model_reason}", file=sys.stderr, flush=True)  # fmt: skip
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; fast gray models: {', '.join(fast)}\n")
    print("| image | noise | best fast model | PSNR (dB) | chosen | PSNR (dB) | gap (dB) |\n|---|---|---|---|---|---|---|")
    for name, noise, best, best_psnr, chosen, auto, gap, _ in rows:
        print(f"| {name} | {noise} | {best} | {best_psnr:.2f} | {chosen} | {auto:.2f} | {gap:.2f} |")
    hits = sum(gap <= WITHIN_DB for *_, gap, _ in rows)
    worst = max(rows, key=lambda r: r[6])
    print(f"\nwithin {WITHIN_DB} dB of the best fast model: {hits} / {len(rows)} ({100 * hits / len(rows):.0f} %); "
          f"worst gap {worst[6]:.2f} dB ({worst[0]}, {worst[1]})")  # fmt: skip
    print(f"the choice alone on a 2048 x 2048 uint16 plane: {1000 * time_choice():.0f} ms (median of 5)")


if __name__ == "__main__":
    main()
