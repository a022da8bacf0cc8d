"""Pick between candidate weights for a shipped model by validation PSNR only (never the evaluation images).

Each candidate is scored with the training engine's own validation (``evaluate``) on the recipe's
validation images, with many fixed noise draws so that the comparison is not decided by one draw.

    python -m scripts.training.select_checkpoint general-gray runs/new/general-gray runs/new4/general-gray [--draws 16]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from scripts._dev import datasets
from scripts.training.train_shipped import RECIPES, recipe_data

from napari_gama_ir import load_model
from napari_gama_ir.training.datasets import as_train_images
from napari_gama_ir.training.finetune import FinetuneOptions, _validation_batches, evaluate


def main(argv=None) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("recipe", choices=sorted(RECIPES))
    p.add_argument("candidates", nargs="+")
    p.add_argument("--draws", type=int, default=16)
    p.add_argument("--more-photos", action="store_true", help="validate on the larger photo validation set too")
    p.add_argument("--device", default="cpu", help="cpu (default; every documented selection), or cuda (fp32 there too, TF32 off)")
    args = p.parse_args(argv)
    recipe = RECIPES[args.recipe]
    val = as_train_images(None, list(recipe_data(recipe, "val", more_photos=args.more_photos).values()), "synthetic", "YXC" if recipe["rgb"] else "YX")
    opts = FinetuneOptions(mode="synthetic", noise_model=recipe["noise"], val_crop=256)
    batches = [b for draw in range(args.draws) for b in _validation_batches(opts, val, np.random.default_rng(1000 + draw))]
    torch.backends.cudnn.allow_tf32 = False  # full fp32 convolutions on a GPU, so scores compare with the CPU's
    for path in args.candidates:
        net = load_model(path).eval().to(args.device)
        score, ssim = evaluate(net, batches, torch.device(args.device), "fp32")
        print(f"{path}: validation PSNR {score:.3f} dB, SSIM {ssim:.4f} ({len(batches)} noisy crops)")


if __name__ == "__main__":
    main()
