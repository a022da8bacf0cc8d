"""Normalizer: robust percentiles sampled once per stack; forward, inverse, and the cast back to a dtype.

The same class serves ``restore`` and ``finetune``, and its settings live in the model card.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAX_SAMPLE_PLANES = 16
MAX_SAMPLE_PIXELS = 1 << 20  # per plane


@dataclass(frozen=True)
class Normalizer:
    """Per-channel affine map ``(x - low) / (high - low)``; ``low`` and ``high`` have shape (C,)."""

    low: np.ndarray
    high: np.ndarray

    @classmethod
    def from_stack(cls, stack, low_pct: float = 0.5, high_pct: float = 99.9) -> "Normalizer":
        """Percentiles per channel from a sample of a (planes, C, Y, X) numpy or dask array.

        At most ``MAX_SAMPLE_PLANES`` evenly spaced planes are read, each strided to about
        ``MAX_SAMPLE_PIXELS`` pixels, so this costs a few reads whatever the stack size.
        """
        n, c, h, w = stack.shape
        idx = np.unique(np.linspace(0, n - 1, min(n, MAX_SAMPLE_PLANES)).round().astype(int))
        step = max(1, int(np.sqrt(h * w / MAX_SAMPLE_PIXELS)))
        sample = stack[idx][..., ::step, ::step]
        sample = np.asarray(sample.compute() if hasattr(sample, "compute") else sample, dtype=np.float64)
        per_channel = sample.transpose(1, 0, 2, 3).reshape(c, -1)
        low, high = np.percentile(per_channel, [low_pct, high_pct], axis=1)
        return cls.from_bounds(low, high)

    @classmethod
    def from_bounds(cls, low, high) -> "Normalizer":
        low = np.atleast_1d(np.asarray(low, dtype=np.float32))
        high = np.atleast_1d(np.asarray(high, dtype=np.float32))
        flat = high - low <= 1e-6 * np.maximum(1.0, np.abs(high))  # constant channel: scale 1
        high = np.where(flat, low + 1, high).astype(np.float32)
        return cls(low, high)

    def forward(self, x: np.ndarray, channel_axis: int = 1) -> np.ndarray:
        """Scale raw values to about [0, 1] (float32)."""
        low, high = self._shaped(x.ndim, channel_axis)
        return ((np.asarray(x, dtype=np.float32) - low) / (high - low)).astype(np.float32, copy=False)

    def inverse(self, y: np.ndarray, channel_axis: int = 1) -> np.ndarray:
        """Map network output back to raw values (float32)."""
        low, high = self._shaped(y.ndim, channel_axis)
        return (y * (high - low) + low).astype(np.float32, copy=False)

    def _shaped(self, ndim: int, channel_axis: int):
        shape = [1] * ndim
        shape[channel_axis] = -1
        return self.low.reshape(shape), self.high.reshape(shape)

    def to_dict(self) -> dict:
        return {"low": self.low.tolist(), "high": self.high.tolist()}


def largest_float_below(limit: int, float_dtype) -> float:
    """The largest value of ``float_dtype`` that is at most ``limit``: float32 rounds 2**31 - 1 up to
    2**31, which would wrap to the most negative int32 when cast."""
    value = np.asarray(limit, dtype=float_dtype)
    if int(value) > limit:
        value = np.nextafter(value, np.asarray(0, dtype=float_dtype))
    return float(value)


def cast_to(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Round and clip to an integer dtype's range (values above it saturate at its maximum, also
    where the float type cannot hold that maximum), or cast to a float dtype."""
    dtype = np.dtype(dtype)
    if dtype.kind in "ui":
        info = np.iinfo(dtype)
        rounded = np.rint(values)
        high = largest_float_below(info.max, rounded.dtype)
        out = np.clip(rounded, info.min, high).astype(dtype)
        if high < info.max:
            out[rounded > high] = info.max
        return out
    return values.astype(dtype, copy=False)
