"""Synthetic noise models for training on clean images (values in [0, 1])."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class NoiseModel:
    """Blind noise: each sample draws its own level.

    kind "gaussian": x + N(0, sigma), sigma uniform in [sigma_min, sigma_max] / 255.
    kind "poisson-gaussian": Poisson(x * peak) / peak + N(0, sigma), log-uniform peak in
    [peak_min, peak_max] photons at x = 1, sigma uniform in [sigma_min, sigma_max] / 255.
    kind "mixed": either of the two, half the time each.
    """

    kind: str = "gaussian"
    sigma_min: float = 0.0
    sigma_max: float = 55.0
    peak_min: float = 2.0
    peak_max: float = 200.0
    clip_probability: float = 0.0  # fraction of samples clipped to [0, 1], as saved 8-bit photos are

    def sample_params(self, rng: np.random.Generator) -> dict:
        kind = self.kind
        if kind == "mixed":
            kind = "gaussian" if rng.random() < 0.5 else "poisson-gaussian"
        sigma = rng.uniform(self.sigma_min, self.sigma_max) / 255.0
        params = {"kind": kind, "sigma": sigma, "clip": bool(rng.random() < self.clip_probability)}
        if kind == "poisson-gaussian":
            params["peak"] = float(np.exp(rng.uniform(np.log(self.peak_min), np.log(self.peak_max))))
            params["sigma"] = sigma * 0.25  # read noise is small next to shot noise
        return params

    def apply(self, clean: np.ndarray, params: dict, rng: np.random.Generator) -> np.ndarray:
        """Noisy float32 copy of ``clean`` with the given parameters."""
        x = clean.astype(np.float32, copy=False)
        if params["kind"] == "poisson-gaussian":
            x = rng.poisson(np.clip(x, 0, None) * params["peak"]).astype(np.float32) / params["peak"]
        noisy = x + rng.normal(0.0, params["sigma"], size=x.shape).astype(np.float32)
        if params.get("clip"):
            noisy = np.clip(noisy, 0.0, 1.0)
        return noisy

    def to_dict(self) -> dict:
        return asdict(self)
