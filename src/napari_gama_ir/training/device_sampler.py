"""Synthetic-noise training batches drawn on the training device.

:class:`~.data.PatchSampler` builds one patch at a time with numpy on one CPU core, which is right for CPU
training but starves a GPU (a step of a small network takes a few milliseconds there). This sampler keeps
the clean images on the device as tensors and does the same work there, a whole batch at once: random
crops, flips and 90-degree rotations, per-sample noise from the :class:`~.noise.NoiseModel`, and the
per-sample normaliser (percentiles of a noisy pixel sample of the whole plane, as ``restore`` computes it).
It draws from the same distributions as ``PatchSampler`` but not the same random numbers.
"""

from __future__ import annotations

import numpy as np
import torch

from ..io.normalize import DEFAULT_PERCENTILES
from .data import TrainImage, finite_float32
from .noise import NoiseModel

NORM_SAMPLE = 4096  # pixels per plane for the normaliser's percentiles, as PatchSampler uses


class DevicePatchSampler:
    """Draws synthetic (noisy input, clean target) batches as B x C x P x P float32 tensors on ``device``.

    ``images`` are clean :class:`TrainImage` stacks (planes, C, Y, X); each is read into device memory once.
    ``rng`` draws the per-sample choices (image, position, augmentation, noise level) so that a seed
    fixes them; the pixel noise comes from a device generator seeded from ``rng``.
    """

    def __init__(
        self,
        images: list[TrainImage],
        patch_size: int,
        rng: np.random.Generator,
        noise_model: NoiseModel,
        device: torch.device,
        norm_percentiles: tuple[float, float] = DEFAULT_PERCENTILES,
    ) -> None:
        self.device, self.rng, self.noise_model = torch.device(device), rng, noise_model
        self.stacks = [torch.from_numpy(_region(im)).to(self.device) for im in images]
        self.largest = max(min(s.shape[2:]) for s in self.stacks)
        self.patch_size = min(patch_size, self.largest)
        self.areas = np.array([s.shape[0] * s.shape[2] * s.shape[3] for s in self.stacks], dtype=np.float64)
        self.quantiles = torch.tensor([p / 100 for p in norm_percentiles], device=self.device)
        self.generator = torch.Generator(self.device).manual_seed(int(rng.integers(2**62)))

    def batch(self, size: int, patch_size: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``size`` (input, target) pairs: two float32 tensors of B x C x P x P on the device."""
        p = min(patch_size or self.patch_size, self.largest)
        fits = np.array([min(s.shape[2:]) >= p for s in self.stacks])
        weights = self.areas * fits
        picks = self.rng.choice(len(self.stacks), size=size, p=weights / weights.sum())
        patches, pixels = [], []
        for i in picks:
            stack = self.stacks[int(i)]
            n, _, h, w = stack.shape
            plane, y, x = int(self.rng.integers(n)), int(self.rng.integers(h - p + 1)), int(self.rng.integers(w - p + 1))
            patch = torch.rot90(stack[plane, :, y : y + p, x : x + p], int(self.rng.integers(4)), dims=(-2, -1))
            patches.append(patch.flip(-1) if self.rng.integers(2) else patch)
            flat = stack[plane].flatten(1)
            pixels.append(flat[:, torch.randint(flat.shape[1], (NORM_SAMPLE,), device=self.device, generator=self.generator)])
        clean, sample = torch.stack(patches), torch.stack(pixels)  # B x C x P x P, B x C x NORM_SAMPLE
        params = [self.noise_model.sample_params(self.rng) for _ in range(size)]
        noisy, noisy_sample = self._noisy(clean, params), self._noisy(sample, params)
        low, high = torch.quantile(noisy_sample, self.quantiles, dim=-1)  # each B x C
        flat_range = high - low <= 1e-6 * torch.clamp(high.abs(), min=1.0)  # as Normalizer.from_bounds
        scale = torch.where(flat_range, torch.ones_like(high), high - low)[..., None, None]
        low = low[..., None, None]
        return (noisy - low) / scale, (clean - low) / scale

    def _noisy(self, clean: torch.Tensor, params: list[dict]) -> torch.Tensor:
        """NoiseModel.apply for a batch whose samples each have their own parameters (``params[b]``)."""
        ones = (1,) * (clean.dim() - 1)
        column = lambda values: torch.tensor(values, dtype=torch.float32, device=self.device).view(-1, *ones)  # noqa: E731
        x = clean
        shot = [b for b, q in enumerate(params) if q["kind"] == "poisson-gaussian"]
        if shot:
            peak = column([params[b]["peak"] for b in shot])
            counts = torch.poisson(clean[shot].clamp(min=0) * peak, generator=self.generator)
            x = clean.clone()
            x[shot] = counts / peak
        sigma = column([q["sigma"] for q in params])
        noisy = x + sigma * torch.randn(x.shape, device=self.device, generator=self.generator)
        clip = column([float(q.get("clip", False)) for q in params]).bool()
        return torch.where(clip, noisy.clamp(0.0, 1.0), noisy)


def _region(im: TrainImage) -> np.ndarray:
    """The clean pixels of a TrainImage's region as one float32 (planes, C, Y, X) array."""
    src = im.clean
    y0, y1, _ = im.region[0].indices(src.shape[2])
    x0, x1, _ = im.region[1].indices(src.shape[3])
    region = src[:, :, y0:y1, x0:x1]
    region = finite_float32(region.compute() if hasattr(region, "compute") else region, im.prefix + "clean", im.index, "read whole")
    return np.ascontiguousarray(region)


def device_sampler_fits(images: list[TrainImage], device: torch.device, fraction: float = 0.25) -> bool:
    """Whether the clean images, as float32, take at most ``fraction`` of a CUDA device's free memory."""
    need = sum(4 * int(np.prod(im.shape)) for im in images)
    return need <= fraction * torch.cuda.mem_get_info(device)[0]
