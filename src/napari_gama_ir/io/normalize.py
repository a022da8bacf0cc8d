"""Normalizer: robust percentiles sampled once per stack; forward, inverse, and the cast back to a dtype.

The same class serves ``restore`` and ``finetune``, and its settings live in the model card.

Exact at any finite scale: the bounds are float64, a range counts as flat only relative to the data's
own magnitude, and the arithmetic runs in float64 wherever float32 would lose the data (64-bit and
32-bit integer inputs and outputs, float64 data, bounds beyond float32's comfortable range); the network
itself only ever sees the normalised values, clipped to ``±NORMALIZED_LIMIT``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFAULT_PERCENTILES = (0.5, 99.9)
"Low and high percentiles mapped to 0 and 1 unless a model card says otherwise (cards, training, restore)."
MAX_SAMPLE_PLANES = 16
MAX_SAMPLE_PIXELS = 1 << 20  # per plane
NORMALIZED_LIMIT = 1e3
"""Normalised values are clipped to [-NORMALIZED_LIMIT, NORMALIZED_LIMIT] before the network sees them.

A thousand times the 0.5-99.9 percentile range is far beyond any real intensity (saturated pixels of
dim uint16 data reach tens to hundreds; the network was trained on values of about -1 to 3, and it
already shrinks an isolated pixel to about a fifth), while inside the network, in fp32, bf16 and fp16
alike, such an input stays finite with a wide margin: its squares in LayerNorm (~1e8) are far below
float32's 3.4e38, and the shipped models stay finite in fp16 up to inputs of 1e4. Without the clip one
pixel of 1e20 overflowed those squares and the global means, and every output pixel became NaN.
The change it causes outside the pixel's neighbourhood grows with the bound (linearly), which is why it
is not larger."""
FLAT_RTOL = 1e-6
"A channel whose high - low is at most this times its magnitude is flat (float32 data: ~8 ulps)."
FLAT_RTOL_WIDE = 64 * float(np.finfo(np.float64).eps)
"The same for float64 and 32/64-bit integer data, which hold (and are normalised with) more digits."
_FLOAT32_SAFE = (1e-30, 1e30)
"Bounds and range inside this stay float32 arithmetic; outside, float32 would underflow or overflow."


def exceeds_float32(dtype) -> bool:
    """True for dtypes float32 cannot hold exactly: float64 (and longer) and integers of 32 bits and more."""
    dtype = np.dtype(dtype)
    return dtype.itemsize >= 4 if dtype.kind in "ui" else dtype.kind == "f" and dtype.itemsize > 4


@dataclass(frozen=True)
class Normalizer:
    """Per-channel affine map ``(x - low) / (high - low)``; ``low`` and ``high`` have shape (C,) (float64)."""

    low: np.ndarray
    high: np.ndarray

    @classmethod
    def from_stack(
        cls, stack, low_pct: float = DEFAULT_PERCENTILES[0], high_pct: float = DEFAULT_PERCENTILES[1],
        neighbours: np.ndarray | None = None,
    ) -> "Normalizer":
        """Percentiles per channel from a sample of a (planes, C, Y, X) numpy or dask array.

        At most ``MAX_SAMPLE_PLANES`` evenly spaced planes are read, each strided to about
        ``MAX_SAMPLE_PIXELS`` pixels, so this costs a few reads whatever the stack size.

        With ``neighbours``, a (planes, 2k + 1) table of each plane's neighbours
        (:func:`~napari_gama_ir.model.context.neighbour_table`), each sampled plane is replaced by the mean of
        its 2k + 1 planes: the percentiles of the stack's running mean, the normalisation of context models
        (a context model sees the planes' running mean, where the percentiles of the noisy planes themselves
        would stretch its range by their noise).
        """
        n, c, h, w = stack.shape
        idx = spread_planes(n, MAX_SAMPLE_PLANES)
        step = max(1, int(np.sqrt(h * w / MAX_SAMPLE_PIXELS)))
        if neighbours is None:
            sample = _read(stack[idx][..., ::step, ::step])
        else:
            table = np.asarray(neighbours)[idx]  # (sampled planes, 2k + 1)
            needed, where = np.unique(table, return_inverse=True)
            planes = _read(stack[needed][..., ::step, ::step])
            sample = planes[where.reshape(table.shape)].mean(axis=1)
        per_channel = sample.transpose(1, 0, 2, 3).reshape(c, -1)
        low, high = np.percentile(per_channel, [low_pct, high_pct], axis=1)
        kind = np.dtype(stack.dtype).kind
        rtol = FLAT_RTOL_WIDE if exceeds_float32(stack.dtype) else FLAT_RTOL
        return cls.from_bounds(low, high, rtol=rtol, unit=1.0 if kind in "uib" else 0.0)

    @classmethod
    def from_bounds(cls, low, high, rtol: float = FLAT_RTOL, unit: float = 1.0) -> "Normalizer":
        """From per-channel bounds.

        A flat channel (``high - low`` at most ``rtol`` times the larger of ``|low|`` and ``|high|``, the
        data's own magnitude: a relative test, so it holds at any scale) gets the range ``rtol`` times its
        magnitude, but at least ``unit`` (1: an integer's step; ``from_stack`` passes 0 for float data),
        and 1 where both bounds are 0. A constant image then maps to 0 and comes back as itself, at 1e-30
        as at 1e30, where a fixed range of 1 would swamp the one and vanish in the other's rounding.
        """
        low = np.atleast_1d(np.asarray(low, dtype=np.float64))
        high = np.atleast_1d(np.asarray(high, dtype=np.float64))
        magnitude = np.maximum(np.abs(low), np.abs(high))
        flat = high - low <= rtol * magnitude
        scale = np.maximum(rtol * magnitude, unit)
        scale = np.where(scale > 0, scale, 1.0)
        return cls(low, np.where(flat, low + scale, high))

    @property
    def scale(self) -> np.ndarray:
        """``high - low`` per channel (float64)."""
        return self.high - self.low

    def float32_safe(self) -> bool:
        """True when float32 arithmetic with these bounds neither overflows nor loses the range."""
        small, large = _FLOAT32_SAFE
        scale = self.scale
        return bool(np.all(scale >= small) and np.all(scale <= large) and np.all(np.abs(self.low) <= large))

    def work_dtype(self, dtype) -> np.dtype:
        """float32, or float64 where float32 arithmetic on ``dtype`` values (in or out) would not be exact."""
        return np.dtype(np.float64 if exceeds_float32(dtype) or not self.float32_safe() else np.float32)

    def forward(self, x: np.ndarray, channel_axis: int = 1) -> np.ndarray:
        """Scale raw values to about [0, 1] (float32), clipped to ``±NORMALIZED_LIMIT``."""
        x = np.asarray(x)
        work = self.work_dtype(x.dtype)
        low, scale = self._shaped(x.ndim, channel_axis, work)
        y = np.subtract(x, low, dtype=work)
        y /= scale
        np.clip(y, -NORMALIZED_LIMIT, NORMALIZED_LIMIT, out=y)
        return y.astype(np.float32, copy=False)

    def inverse(self, y: np.ndarray, channel_axis: int = 1, dtype=np.float32) -> np.ndarray:
        """Map network output back to raw values: float32, or float64 where the output ``dtype`` (float64,
        32/64-bit integers) or the bounds need it (then :func:`cast_to` gives ``dtype``)."""
        work = self.work_dtype(dtype)
        low, scale = self._shaped(np.ndim(y), channel_axis, work)
        out = np.multiply(y, scale, dtype=work)
        out += low
        return out

    def _shaped(self, ndim: int, channel_axis: int, dtype=np.float32):
        shape = [1] * ndim
        shape[channel_axis] = -1
        return self.low.astype(dtype).reshape(shape), self.scale.astype(dtype).reshape(shape)

    def to_dict(self) -> dict:
        return {"low": self.low.tolist(), "high": self.high.tolist()}


def spread_planes(n: int, count: int) -> np.ndarray:
    """Indices of up to ``count`` evenly spaced planes among ``n`` (first and last included), sorted, int."""
    return np.unique(np.linspace(0, n - 1, min(n, count)).round().astype(int))


def _read(sample) -> np.ndarray:
    """A numpy or dask sample as float64 numpy."""
    return np.asarray(sample.compute() if hasattr(sample, "compute") else sample, dtype=np.float64)


def largest_float_below(limit: int, float_dtype) -> float:
    """The largest value of ``float_dtype`` that is at most ``limit``: float32 rounds 2**31 - 1 up to
    2**31, which would wrap to the most negative int32 when cast."""
    value = np.asarray(limit, dtype=float_dtype)
    if int(value) > limit:
        value = np.nextafter(value, np.asarray(0, dtype=float_dtype))
    return float(value)


def cast_to(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Round and clip to an integer dtype's range (values above it saturate at its maximum, also
    where the float type cannot hold that maximum), or cast to a float dtype (saturating at its
    largest finite value where it is narrower than ``values``)."""
    dtype = np.dtype(dtype)
    if dtype.kind in "ui":
        info = np.iinfo(dtype)
        rounded = np.rint(values)
        high = largest_float_below(info.max, rounded.dtype)
        out = np.clip(rounded, info.min, high).astype(dtype)
        if high < info.max:
            out[rounded > high] = info.max
        return out
    if dtype.kind == "f" and np.dtype(values.dtype).kind == "f" and np.finfo(dtype).max < np.finfo(values.dtype).max:
        big = np.finfo(dtype).max  # a narrower float saturates at its largest finite value, not at inf
        values = np.clip(values, -big, big)
    return values.astype(dtype, copy=False)
