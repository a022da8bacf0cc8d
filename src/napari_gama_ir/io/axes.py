"""Axes: detect, validate, and map any stack to the canonical (planes, C, Y, X) view and back.

Rules on shape when neither the caller nor the file says (documented in the README):
2-D -> "YX"; 3-D with a last axis of 3 or 4 -> "YXC" (RGB/RGBA); other 3-D -> "ZYX";
4-D with a last axis of 3 or 4 -> "ZYXC"; other 4-D -> "TZYX"; 5-D -> "TCZYX".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InvalidInputError

ACCEPTED = "TZCYX"
# tifffile / OME letters that mean something we know
_ALIASES = {"S": "C", "I": "Z", "Q": "Z"}


def default_axes(shape: tuple[int, ...], rgb: bool | None = None) -> str:
    """Axes guessed from the shape alone (``rgb`` True/False forces the last-axis rule)."""
    ndim = len(shape)
    last_is_rgb = shape[-1] in (3, 4) if rgb is None else rgb
    if ndim == 2:
        return "YX"
    if ndim == 3:
        return "YXC" if last_is_rgb else "ZYX"
    if ndim == 4:
        return "ZYXC" if last_is_rgb else "TZYX"
    if ndim == 5:
        return "TCZYX"
    raise InvalidInputError(f"cannot guess axes for a {ndim}-D array of shape {shape}; pass axes= (e.g. 'TZYX')")


def normalize_axes(axes: str, shape: tuple[int, ...]) -> str:
    """Validate ``axes`` against ``shape``; return it upper-case with aliases resolved.

    File letters are mapped: S (samples) -> C; I, Q (unknown stack axes) -> Z, then T if Z is taken.
    """
    if not isinstance(axes, str):
        raise InvalidInputError(f"axes must be a string such as 'ZYX', got {axes!r}")
    letters = []
    for ch in axes.upper():
        ch = _ALIASES.get(ch, ch)
        if ch == "Z" and "Z" in letters:
            ch = "T"
        letters.append(ch)
    out = "".join(letters)
    bad = sorted(set(out) - set(ACCEPTED))
    if bad:
        raise InvalidInputError(f"axes {axes!r} has unknown letters {bad}; accepted letters: T, Z, C, Y, X (S for RGB samples)")
    if len(out) != len(shape):
        raise InvalidInputError(f"axes {axes!r} has {len(out)} letters but the data has shape {tuple(shape)} ({len(shape)} axes)")
    if len(set(out)) != len(out):
        raise InvalidInputError(f"axes {axes!r} repeats a letter; each of T, Z, C, Y, X may appear once")
    if "Y" not in out or "X" not in out:
        raise InvalidInputError(f"axes {axes!r} must contain Y and X (got shape {tuple(shape)})")
    return out


@dataclass(frozen=True)
class CanonicalLayout:
    """How an array with ``axes`` maps to (planes, C, Y, X) and back."""

    axes: str
    shape: tuple[int, ...]

    @property
    def stack_axes(self) -> str:
        return "".join(a for a in self.axes if a not in "CYX")

    @property
    def order(self) -> tuple[int, ...]:
        """Transpose order taking the input to (stack..., C?, Y, X)."""
        stack = [self.axes.index(a) for a in self.stack_axes]
        chan = [self.axes.index("C")] if "C" in self.axes else []
        return tuple(stack + chan + [self.axes.index("Y"), self.axes.index("X")])

    @property
    def channels(self) -> int:
        return self.shape[self.axes.index("C")] if "C" in self.axes else 1

    @property
    def planes(self) -> int:
        n = 1
        for a in self.stack_axes:
            n *= self.shape[self.axes.index(a)]
        return n

    @property
    def yx(self) -> tuple[int, int]:
        return self.shape[self.axes.index("Y")], self.shape[self.axes.index("X")]

    @property
    def canonical_shape(self) -> tuple[int, int, int, int]:
        return (self.planes, self.channels, *self.yx)

    def to_canonical(self, arr):
        """Input-ordered array (numpy or dask) -> (planes, C, Y, X).

        A numpy array whose stack axes are not adjacent (e.g. TCZYX) cannot be reshaped without a copy;
        it is wrapped in a lazy dask array instead, so no copy of the whole input is ever made.
        """
        transposed = arr.transpose(self.order)
        if isinstance(arr, np.ndarray):
            try:
                return _reshaped_view(transposed, self.canonical_shape)
            except (ValueError, AttributeError):
                import dask.array as da

                lazy = da.from_array(transposed, chunks=(1,) * (transposed.ndim - 3) + transposed.shape[-3:])
                return lazy.reshape(self.canonical_shape)
        return transposed.reshape(self.canonical_shape)

    def from_canonical(self, arr):
        """(planes, C, Y, X) -> the input's axes order."""
        transposed = tuple(self.shape[i] for i in self.order)
        inverse = [0] * len(self.order)
        for pos, src in enumerate(self.order):
            inverse[src] = pos
        return arr.reshape(transposed).transpose(inverse)


def _reshaped_view(arr: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``arr`` reshaped without copying; raises (ValueError or AttributeError) where that needs a copy."""
    try:
        return arr.reshape(shape, copy=False)
    except TypeError:  # numpy < 2.1 has no copy= argument: setting .shape refuses to copy instead
        view = arr.view()
        view.shape = shape
        return view
