"""Stripes in flat regions: how much line structure each shipped model leaves where the image is flat.

A flat field (with one bright square, so the intensity normaliser sees a real range) gets synthetic
noise and is restored; on the flat part below the square we measure
- the period-2 amplitude across columns, |mean(even columns) - mean(odd columns)| / 2, and across rows
  (a pattern the stride-2 down/up-sampling of the w16 and S models can leave), in 1e-4 of the range;
- stripes of any period: in the (Hann-windowed) power spectrum of the residual, the mean power on the
  axis of vertical lines (zero vertical frequency) divided by the mean power on the three lines beside it
  on each side, and the same for horizontal lines (about 1 = no stripes, also for smooth blotches);
- the RMSE of the flat part against its clean value, in 1e-4 of the range.

    python -m benchmarks.flat_field [--models fluorescence photo-gray ...] [--size 512] [--threads 1]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from scipy.ndimage import gaussian_filter

from napari_gama_ir import load_model, restore

FLUORESCENCE = {"background": 0.05, "noise": [("photons", 20), ("photons", 100)]}
PHOTO = {"background": 0.3, "noise": [("sigma", 15), ("sigma", 25)]}


def flat_field(size: int, background: float, rgb: bool) -> np.ndarray:
    clean = np.full((size, size), background, np.float32)
    clean[size // 4 : size // 4 + size // 8, size // 4 : size // 4 + size // 8] = 1.0
    return np.repeat(clean[..., None], 3, -1) if rgb else clean


def add_noise(clean: np.ndarray, kind: str, level: float, rng: np.random.Generator) -> np.ndarray:
    if kind == "photons":
        return (rng.poisson(clean * level) / level).astype(np.float32)
    return (clean + rng.normal(0, level / 255, clean.shape)).astype(np.float32)


def axis_power_ratio(d: np.ndarray) -> tuple[float, float]:
    """(vertical stripes, horizontal stripes) of a Y x X residual: spectral power on the zero-frequency
    line of each axis over the mean power of the 3 lines on each side of it (the DC term excluded)."""
    window = np.hanning(d.shape[0])[:, None] * np.hanning(d.shape[1])[None, :]
    power = np.abs(np.fft.fft2((d - d.mean()) * window)) ** 2
    beside = [1, 2, 3, -1, -2, -3]
    vertical = power[0, 1:].mean() / power[beside, 1:].mean()  # ky = 0: constant along Y, varying along X
    horizontal = power[1:, 0].mean() / power[1:, beside].mean()
    return float(vertical), float(horizontal)


def line_measures(flat: np.ndarray, clean_value: float) -> dict[str, float]:
    """``flat``: Y x X (x C) restored pixels of a region whose clean value is ``clean_value``."""
    d = flat.astype(np.float64) - flat.mean()
    vertical, horizontal = axis_power_ratio(d.mean(-1) if d.ndim == 3 else d)
    return {
        "col2": abs((d[:, 0::2] - d[:, 1::2]).mean()) / 2 * 1e4,
        "row2": abs((d[0::2] - d[1::2]).mean()) / 2 * 1e4,
        "cols": vertical,
        "rows": horizontal,
        "rmse": float(np.sqrt(((flat.astype(np.float64) - clean_value) ** 2).mean())) * 1e4,
    }


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["fluorescence", "fluorescence-S", "photo-gray", "photo-gray-S", "photo-rgb", "photo-rgb-S"])
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    white = rng.normal(size=(args.size - args.size // 4 - args.size // 8 - 32, args.size))
    print("Calibration of the power ratio (vertical / horizontal) on a region of the same size:")
    print("white noise %.2f / %.2f, white noise blurred by a Gaussian of sigma 4 %.2f / %.2f\n"
          % (*axis_power_ratio(white), *axis_power_ratio(gaussian_filter(white, 4))))  # fmt: skip
    print("| model | noise | self-ensemble | period 2 across columns (1e-4) | across rows (1e-4) | vertical stripes (power ratio) | horizontal stripes | flat RMSE (1e-4) |")
    print("|---|---|---|---|---|---|---|---|")
    for name in args.models:
        net = load_model(name)  # loaded once, restored 4 times
        card = net.card
        rgb = card.in_channels == 3
        protocol = FLUORESCENCE if card.domain == "fluorescence" else PHOTO
        clean = flat_field(args.size, protocol["background"], rgb)
        below = slice(args.size // 4 + args.size // 8 + 32, None)  # 32 px clear of the square
        for kind, level in protocol["noise"]:
            noisy = add_noise(clean, kind, level, np.random.default_rng(level))
            for ensemble in (False, True):
                out = restore(noisy, net, axes="YXC" if rgb else "YX", self_ensemble=ensemble)
                m = line_measures(out[below], protocol["background"])
                noise = f"{level} photons" if kind == "photons" else f"sigma {level}"
                print(f"| {name} | {noise} | {'x8' if ensemble else 'off'} | {m['col2']:.1f} | {m['row2']:.1f} | "
                      f"{m['cols']:.1f} | {m['rows']:.1f} | {m['rmse']:.1f} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
