"""Pure tiling helpers: where tiles start, and the window that blends them.

A tile's window is 1 in its core, falls smoothly (raised cosine) to 0 across the overlap it shares with
a neighbour, and is 0 over the outer quarter of that overlap, which is context only: the network's
output right at a tile's inner edge never reaches the result. Sides that touch the image border keep
weight 1. So the windows of neighbouring tiles sum to a positive weight everywhere, constant inputs come
back exactly, and a network with a finite receptive field (GAMA "local" means) no wider than the context
gives the untiled result.
"""

from __future__ import annotations

import itertools

import numpy as np

CONTEXT_FRACTION = 0.25  # of the overlap, discarded at each inner tile edge


def tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of length ``tile`` covering ``range(size)`` with at least ``overlap`` shared.

    The last tile is flush with the end; a tile as large as the axis gives ``[0]``.
    """
    if tile >= size:
        return [0]
    if not 0 <= overlap < tile:
        raise ValueError(f"overlap must be in [0, tile), got overlap={overlap}, tile={tile}")
    stride = tile - overlap
    starts = list(range(0, size - tile, stride))
    starts.append(size - tile)
    return starts


def tile_grid(shape: tuple[int, ...], tile: tuple[int, ...], overlap: tuple[int, ...]) -> list[tuple[int, ...]]:
    """All N-D tile start corners: the product of :func:`tile_starts` per axis."""
    per_axis = [tile_starts(s, t, o) for s, t, o in zip(shape, tile, overlap)]
    return list(itertools.product(*per_axis))


def aligned_tiling(
    image: tuple[int, ...], tile: tuple[int, ...], overlap: tuple[int, ...], align: int = 1
) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """Padded image shape, tile and overlap, each a multiple of ``align``, for :func:`tile_grid`.

    A network that downsamples by ``align`` (``2 ** levels``) is only shift-equivariant by multiples of
    ``align``; so the image is padded to a multiple of it (as the network pads itself) and every tile
    starts on that grid. Then a tile sees exactly the pixels, phase and padding the whole image would
    give it. The tile is rounded up and never exceeds the padded image; the overlap is rounded up and
    stays below the tile.
    """

    def up(v: int) -> int:
        return -(-v // align) * align

    padded = tuple(up(s) for s in image)
    tile = tuple(min(up(t), p) for t, p in zip(tile, padded))
    overlap = tuple(0 if t >= p else min(up(o), t - align) for o, t, p in zip(overlap, tile, padded))
    return padded, tile, overlap


def ramp_1d(length: int, overlap: int, taper_start: bool, taper_end: bool, kind: str = "cosine") -> np.ndarray:
    """1-D window of ``length`` samples; tapered only on the sides that meet another tile.

    ``kind="cosine"`` is the smooth window; ``kind="constant"`` gives equal weights inside the kept part
    (the context part is still dropped), useful to test the blending arithmetic.
    """
    w = np.ones(length, dtype=np.float64)
    if overlap <= 0:
        return w
    context = int(overlap * CONTEXT_FRACTION)
    ramp_len = max(1, overlap - 2 * context)
    t = (np.arange(ramp_len) + 0.5) / ramp_len
    up = np.sin(0.5 * np.pi * t) ** 2 if kind == "cosine" else np.ones(ramp_len)
    if kind not in ("cosine", "constant"):
        raise ValueError(f"window kind must be 'cosine' or 'constant', got {kind!r}")
    profile = np.concatenate([np.zeros(context), up])
    n = min(len(profile), length)
    if taper_start:
        w[:n] = profile[:n]
    if taper_end:
        w[length - n :] = np.minimum(w[length - n :], profile[:n][::-1])
    return w


def blend_window(
    tile: tuple[int, int], overlap: tuple[int, int], start: tuple[int, int], image: tuple[int, int], kind: str = "cosine"
) -> np.ndarray:
    """Separable 2-D window (float32) for the tile at ``start`` in an image of shape ``image``."""
    axes = []
    for t, o, s, n in zip(tile, overlap, start, image):
        axes.append(ramp_1d(t, o if t < n else 0, taper_start=s > 0, taper_end=s + t < n, kind=kind))
    return np.outer(axes[0], axes[1]).astype(np.float32)
