"""Tile positions cover every axis with the asked overlap and a flush last tile; blend windows are
positive wherever tiles meet, drop the context strip at inner edges, and keep weight 1 at image borders."""

from __future__ import annotations

import numpy as np
import pytest

from napari_gama_ir.tiling.windows import CONTEXT_FRACTION, aligned_tiling, blend_window, ramp_1d, tile_grid, tile_starts

AXIS_CASES = [(100, 32, 8), (97, 32, 8), (64, 64, 16), (65, 64, 16), (13, 5, 2), (1000, 128, 32), (31, 7, 6), (50, 10, 0)]


@pytest.mark.parametrize("size,tile,overlap", AXIS_CASES)
def test_tile_starts_cover_the_axis_with_the_overlap(size, tile, overlap):
    starts = tile_starts(size, tile, overlap)
    assert starts[0] == 0
    assert starts[-1] == size - tile  # flush with the end
    assert starts == sorted(set(starts))
    covered = np.zeros(size, bool)
    for s in starts:
        covered[s : s + tile] = True
    assert covered.all()
    assert all(b - a <= tile - overlap for a, b in zip(starts, starts[1:]))


@pytest.mark.parametrize("size,tile", [(10, 10), (10, 11), (3, 1000), (1, 1)])
def test_a_tile_as_large_as_the_axis_is_one_tile(size, tile):
    assert tile_starts(size, tile, overlap=0) == [0]
    assert tile_starts(size, tile, overlap=tile) == [0]  # no overlap is needed, none is checked


@pytest.mark.parametrize("overlap", [32, 40, -1])
def test_bad_overlap_is_rejected(overlap):
    with pytest.raises(ValueError, match="overlap"):
        tile_starts(100, 32, overlap)


def test_tile_grid_is_the_product_of_the_axes():
    grid = tile_grid((100, 50), (32, 50), (8, 0))
    assert grid == [(y, 0) for y in tile_starts(100, 32, 8)]
    assert len(tile_grid((100, 100), (32, 32), (8, 8))) == len(tile_starts(100, 32, 8)) ** 2


@pytest.mark.parametrize("kind", ["cosine", "constant"])
@pytest.mark.parametrize("image,tile,overlap", [((100, 97), (32, 32), (8, 8)), ((64, 129), (64, 40), (0, 16)), ((23, 29), (7, 11), (4, 5)), ((40, 40), (40, 40), (0, 0))])
def test_summed_weights_are_positive_everywhere(kind, image, tile, overlap):
    total = np.zeros(image)
    for y, x in tile_grid(image, tile, overlap):
        w = blend_window(tile, overlap, (y, x), image, kind=kind)
        assert w.shape == tile and w.dtype == np.float32
        assert (w >= 0).all() and w.max() == 1.0
        total[y : y + tile[0], x : x + tile[1]] += w
    assert total.min() > 1e-3


def test_cosine_ramps_of_neighbours_sum_to_one():
    size, tile, overlap = 104, 32, 8  # starts 0, 24, 48, 72: every overlap is exactly 8
    assert tile_starts(size, tile, overlap) == [0, 24, 48, 72]
    total = np.zeros(size)
    for s in tile_starts(size, tile, overlap):
        total[s : s + tile] += ramp_1d(tile, overlap, s > 0, s + tile < size)
    np.testing.assert_allclose(total, 1.0, rtol=1e-12)


def test_inner_edges_drop_the_context_and_borders_keep_weight_one():
    tile, overlap = 32, 16
    context = int(overlap * CONTEXT_FRACTION)
    w = ramp_1d(tile, overlap, taper_start=True, taper_end=False)
    assert (w[:context] == 0).all() and w[context] > 0
    assert (w[overlap:] == 1).all()
    both = ramp_1d(tile, overlap, taper_start=True, taper_end=True)
    np.testing.assert_array_equal(both, both[::-1])
    assert (ramp_1d(tile, overlap, False, False) == 1).all()


def test_unknown_window_kind_is_rejected():
    with pytest.raises(ValueError, match="window kind"):
        ramp_1d(32, 8, True, True, kind="gauss")


@pytest.mark.parametrize(
    "image,tile,overlap,align",
    [((190, 193), (125, 127), (30, 30), 4), ((100, 100), (64, 64), (32, 32), 16), ((3, 3), (64, 64), (0, 0), 4),
     ((1000, 37), (256, 256), (32, 32), 16), ((50, 50), (20, 20), (18, 18), 16), ((23, 29), (7, 11), (4, 5), 1)],
)  # fmt: skip
def test_aligned_tiling_puts_every_tile_on_the_grid(image, tile, overlap, align):
    padded, t, o = aligned_tiling(image, tile, overlap, align)
    for p, s, tt, oo, asked_t, asked_o in zip(padded, image, t, o, tile, overlap):
        assert p % align == 0 and s <= p < s + align
        assert tt % align == 0 and tt <= p and (tt >= asked_t or tt == p)
        assert oo % align == 0 and (oo == 0 if tt == p else oo < tt)
        assert oo >= min(asked_o, tt - align) or tt == p
    for corner in tile_grid(padded, t, o):
        assert all(c % align == 0 and c + tt <= p for c, tt, p in zip(corner, t, padded))
    if align == 1:
        assert (padded, t, o) == (image, tile, overlap)
