"""Before/after figures for the README, one per shipped model, made from real restore() outputs.

Each figure: noisy | restored | clean, on a held-out image (scripts/_dev/datasets.py), with PSNR in the labels.

    python -m scripts.release.figures [--models photo-gray photo-rgb fluorescence general-gray fluorescence-S photo-gray-S photo-rgb-S] [--out docs/images]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from scripts._dev import datasets

from napari_gama_ir import load_model, restore
from napari_gama_ir.training.losses import psnr


def example(model_name: str, net):
    """(clean, noisy, axes, what) for a model: a held-out image with the noise the model is for."""
    if model_name.startswith("fluorescence"):
        from fluorescence import add_noise

        clean = list(datasets.bbbc007().values())[datasets.BBBC007_SPLIT["eval"][0]]
        return clean, add_noise(clean, 10, np.random.default_rng(0)), "YX", "BBBC007 (held out), 10 photons + read noise"
    rgb = net.card.in_channels == 3
    name = "astronaut" if rgb else ("coins" if model_name == "general-gray" else "camera")
    clean = datasets.photo(name, rgb=rgb)
    noisy = (clean + np.random.default_rng(0).normal(0, 25 / 255, clean.shape)).astype(np.float32)
    return clean, noisy, "YXC" if rgb else "YX", f"{name} (held out), Gaussian sigma 25"


def to_uint8(img: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return np.clip((img - lo) / max(hi - lo, 1e-6) * 255, 0, 255).astype(np.uint8)


def figure(model_name: str, out_dir: Path, crop: int = 256) -> Path:
    net = load_model(model_name)
    clean, noisy, axes, what = example(model_name, net)
    restored = restore(noisy, net, axes=axes, device="cpu")
    labels = [f"noisy {psnr(noisy, clean):.2f} dB", f"{model_name} {psnr(restored, clean):.2f} dB", "clean"]
    h, w = clean.shape[:2]
    y, x = (h - crop) // 2, (w - crop) // 2
    lo, hi = np.percentile(clean, [0.5, 99.8])
    panels = [to_uint8(a[y : y + crop, x : x + crop], lo, hi) for a in (noisy, restored, clean)]
    label_h, gap = 18, 6
    mode = "RGB" if clean.ndim == 3 else "L"
    canvas = Image.new(mode, (3 * crop + 2 * gap, crop + label_h), "white" if mode == "RGB" else 255)
    draw = ImageDraw.Draw(canvas)
    for i, (panel, label) in enumerate(zip(panels, labels)):
        canvas.paste(Image.fromarray(panel), (i * (crop + gap), label_h))
        draw.text((i * (crop + gap) + 4, 3), label, fill="black" if mode == "RGB" else 0)
    path = out_dir / f"before-after-{model_name}.png"
    canvas.save(path)
    print(f"{path}: {what}; {', '.join(labels)}")
    return path


def main(argv=None) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--models", nargs="+", default=["photo-gray", "photo-rgb", "fluorescence", "general-gray"])
    p.add_argument("--out", default=str(Path(__file__).resolve().parents[2] / "docs" / "images"))
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in args.models:
        figure(name, out)


if __name__ == "__main__":
    main()
