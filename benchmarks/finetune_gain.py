"""What fine-tuning buys on a domain the shipped model never saw, in 10 CPU-minutes.

Domain: BBBC007 fluorescence images (Drosophila Kc167 nuclei, scripts/_dev/datasets.py), which no shipped model
was trained on, with a noise model none was trained on: multiplicative gamma ("speckle") noise with
L looks (mean 1, variance 1/L) on top of the image, plus a small Gaussian read noise.
Pairs: the first 4 images train, the 5th validates (the engine's own split: 1 of 5 whole images); images
6-9 are a separate test set, scored with restore() before and after. Supervised: (noisy, clean) pairs.
Self-supervised: the same noisy images alone (Noise2Void blind spots). Each run is bounded by wall time.

    python -m benchmarks.finetune_gain --base general-gray --minutes 10 [--threads 2]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from scripts._dev import datasets

from napari_gama_ir import finetune, load_model, restore
from napari_gama_ir.training.losses import psnr


def speckle(clean: np.ndarray, looks: float, rng: np.random.Generator) -> np.ndarray:
    noisy = clean * rng.gamma(looks, 1.0 / looks, clean.shape) + rng.normal(0, 0.01, clean.shape)
    return noisy.astype(np.float32)


def test_psnr(net, pairs) -> float:
    return float(np.mean([psnr(restore(n, net, device="cpu"), c) for n, c in pairs]))


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--base", default="general-gray")
    p.add_argument("--minutes", type=float, default=10)
    p.add_argument("--looks", type=float, default=4)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--modes", nargs="+", default=["supervised", "self-supervised"])
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    images = list(datasets.bbbc007().values())
    rng = np.random.default_rng(7)
    noisy = [speckle(c, args.looks, rng) for c in images]
    train_noisy, train_clean = noisy[:5], images[:5]
    test = list(zip(noisy[5:9], images[5:9]))
    base = load_model(args.base)
    rows = [("noisy input", "-", float(np.mean([psnr(n, c) for n, c in test])), "-", "-", "-", "-")]
    rows.append((f"{args.base} (shipped, as is)", "-", test_psnr(base, test), "-", "-", "-", "-"))
    for mode in args.modes:
        t = time.perf_counter()
        net = finetune(train_noisy, train_clean if mode == "supervised" else None, base=args.base, mode=mode,
                       max_minutes=args.minutes, steps=1_000_000, val_fraction=0.2, seed=0)  # fmt: skip
        dt = time.perf_counter() - t
        tr = net.card.training
        v = net.card.metrics["validation"]
        rows.append((f"{args.base} fine-tuned, {mode}", f"{v['psnr_before']:.2f} -> {v['psnr_after']:.2f}",
                     test_psnr(net, test), tr["steps"], f"{tr['steps'] * tr['batch_size'] / tr['seconds']:.1f}",
                     f"{tr['patch_size']}", f"{dt / 60:.1f}"))  # fmt: skip
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; speckle L={args.looks:g}\n")
    print("| model | validation PSNR (engine) | test PSNR (4 unseen images) | steps | patches/s | patch | minutes |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(f"{x:.2f}" if isinstance(x, float) else str(x) for x in r) + " |")
    print("\nValidation PSNR for self-supervised runs is measured against the noisy pixels (blind spots), so only its "
          "change means something; the test column compares all rows against the clean images.")


if __name__ == "__main__":
    main()
