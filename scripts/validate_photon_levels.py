"""Score fluorescence candidates on the validation images (never the held-out ones) at the fluorescence
benchmark's photon levels (Poisson + read noise 0.01, 4 fixed draws per level): one PSNR per level, then per image.

    python scripts/validate_photon_levels.py weights/fluorescence runs/s8/flC/fluorescence
"""

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "scripts"))
import datasets  # noqa: E402
from fluorescence import add_noise  # noqa: E402

from napari_gama_ir import load_model, restore  # noqa: E402
from napari_gama_ir.training.losses import psnr  # noqa: E402

val = datasets.fluorescence_split("val")
models = {p: load_model(p) for p in sys.argv[1:]}
for peak in (5, 20, 100):
    scores = {(p, name): [] for p in models for name in val}
    for draw in range(4):
        for name, clean in val.items():
            noisy = add_noise(clean, peak, np.random.default_rng(1000 * peak + draw))
            for p, net in models.items():
                out = restore(noisy, net, axes="YX").astype(np.float64)
                scores[p, name].append(psnr(out, clean.astype(np.float64), 1.0))
    means = {p: np.mean([scores[p, name] for name in val]) for p in models}
    print(peak, "photons:", "  ".join(f"{p} {m:.3f}" for p, m in means.items()), flush=True)
    for name in val:
        print("   ", name, "  ".join(f"{np.mean(scores[p, name]):.3f}" for p in models), flush=True)
