"""Blending arithmetic: the merger returns the weighted mean of overlapping tiles, and the tile loop
(``iter_tiles``) returns pointwise predictors (x + 1, 2 x) exactly, for 2-D and Z-stacks, prime sizes,
tiles larger than the image, batch 1 and 1000, and both window kinds."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from napari_gama_ir.engine.restore import TileSettings, iter_tiles
from napari_gama_ir.tiling.merge import ArrayMerger
from napari_gama_ir.tiling.windows import aligned_tiling, blend_window, tile_grid


class Pointwise(nn.Module):
    """A stand-in network: ``fn`` applied to each pixel; counts the tiles it sees."""

    def __init__(self, fn, out_channels: int = 1) -> None:
        super().__init__()
        self.fn, self.out_channels = fn, out_channels
        self.batches: list[tuple[int, ...]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.batches.append(tuple(x.shape))
        return self.fn(x)


def run_tiles(net, images, tile, overlap, batch, window="cosine", align=1):
    gen = iter_tiles(net, images, TileSettings(tile, overlap, batch, "cpu", "fp32", window, align))
    steps = []
    while True:
        try:
            steps.append(next(gen))
        except StopIteration as stop:
            return stop.value, steps


PREDICTORS = {"x+1": lambda x: x + 1, "2x": lambda x: 2 * x}
GEOMETRIES = {
    # name: (images shape N x C x Y x X, tile, overlap, align)
    "2d": ((1, 1, 64, 80), (32, 32), (8, 8), 1),
    "zyx": ((3, 1, 40, 36), (16, 24), (8, 4), 1),
    "prime": ((2, 1, 53, 47), (17, 13), (6, 5), 1),
    "prime-aligned": ((2, 1, 53, 47), (17, 13), (6, 5), 4),  # padded to 56 x 48, tiles on a grid of 4
    "tile>image": ((2, 1, 23, 19), (64, 64), (0, 0), 1),
    "tile>one-axis": ((1, 1, 70, 19), (32, 64), (12, 0), 1),
    "two-channel": ((2, 2, 29, 31), (16, 16), (4, 4), 1),
}


@pytest.mark.parametrize("window", ["cosine", "constant"])
@pytest.mark.parametrize("batch", [1, 1000])
@pytest.mark.parametrize("geometry", list(GEOMETRIES))
@pytest.mark.parametrize("predictor", list(PREDICTORS))
def test_pointwise_predictors_come_back_exactly(predictor, geometry, batch, window):
    shape, tile, overlap, align = GEOMETRIES[geometry]
    images = np.random.default_rng(0).random(shape, dtype=np.float32) * 100
    net = Pointwise(PREDICTORS[predictor], out_channels=shape[1])
    out, steps = run_tiles(net, images, tile, overlap, batch, window, align)
    assert out.shape == images.shape and out.dtype == np.float32
    expected = PREDICTORS[predictor](images.astype(np.float64))
    np.testing.assert_allclose(out, expected, rtol=1e-6)
    n_tiles = shape[0] * len(tile_grid(*aligned_tiling(shape[2:], tile, overlap, align)))
    assert sum(steps) == n_tiles  # one step per batch, counting tiles
    assert len(steps) == (n_tiles if batch == 1 else 1)
    assert all(b[0] <= batch for b in net.batches)


class PhaseNet(nn.Module):
    """Doubles the rows and columns of each tile whose index is a multiple of 4, like a network that
    downsamples twice: its output depends on where the tile starts modulo 4."""

    out_channels = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x.clone()
        y[..., ::4, :] *= 2
        y[..., :, ::4] *= 2
        return y


@pytest.mark.parametrize("shape", [(1, 1, 64, 64), (2, 1, 61, 47)])
def test_tiles_start_on_the_network_grid(shape):
    images = np.random.default_rng(3).random(shape, dtype=np.float32)
    untiled, _ = run_tiles(PhaseNet(), images, shape[2:], (0, 0), 8)
    aligned, _ = run_tiles(PhaseNet(), images, (21, 19), (9, 9), 8, align=4)
    np.testing.assert_allclose(aligned, untiled, rtol=1e-6)
    misaligned, _ = run_tiles(PhaseNet(), images, (21, 19), (9, 9), 8)  # align=1: tiles start anywhere
    assert np.abs(misaligned - untiled).max() > 0.1


def test_tile_loop_uses_the_output_channels_of_the_network():
    images = np.random.default_rng(1).random((2, 3, 20, 24), dtype=np.float32)
    net = Pointwise(lambda x: x.mean(1, keepdim=True), out_channels=1)
    out, _ = run_tiles(net, images, (12, 12), (4, 4), 3)
    np.testing.assert_allclose(out[:, 0], images.mean(1), rtol=1e-6)


def test_merger_returns_the_weighted_mean_of_overlapping_tiles():
    # Along X: tiles [0, 12) and [8, 20), overlap 4 -> context 1 dropped at each inner edge, constant ramp.
    image, tile, overlap = (4, 20), (4, 12), (0, 4)
    merger = ArrayMerger((1, 1, *image))
    corners = tile_grid(image, tile, overlap)
    assert corners == [(0, 0), (0, 8)]
    for corner, value in zip(corners, (10.0, 30.0)):
        merger.set_window(corner, blend_window(tile, overlap, corner, image, kind="constant"))
        merger.add(np.full((1, *tile), value, np.float32), (0, *corner))
    row = merger.finalize()[0, 0, 0]
    expected = [10.0] * 9 + [20.0, 20.0] + [30.0] * 9  # x=8: only tile 0 (tile 1's context); x=11: only tile 1
    np.testing.assert_array_equal(row, expected)


def test_merger_counts_window_weights_once_for_every_image():
    image, tile, overlap = (30, 30), (16, 16), (6, 6)
    rng = np.random.default_rng(2)
    values = rng.random((3, 2, *image), dtype=np.float32)
    merger = ArrayMerger(values.shape)
    for corner in tile_grid(image, tile, overlap):
        merger.set_window(corner, blend_window(tile, overlap, corner, image))
        y, x = corner
        for n in range(3):
            merger.add(values[n, :, y : y + tile[0], x : x + tile[1]], (n, y, x))
    np.testing.assert_allclose(merger.finalize(), values, rtol=1e-6)


@pytest.mark.parametrize("hw", [(37, 29), (3, 3), (2, 9), (1, 1), (64, 64)])
def test_one_tile_loop_equals_the_network_applied_directly(tiny_model, hw):
    """The loop pads to the network's grid as the network pads itself, then crops: no difference."""
    images = np.random.default_rng(4).random((2, 1, *hw), dtype=np.float32)
    out, _ = run_tiles(tiny_model, images, hw, (0, 0), 2, align=2**tiny_model.levels)
    with torch.no_grad():
        direct = tiny_model(torch.from_numpy(images)).numpy()
    np.testing.assert_allclose(out, direct, rtol=1e-5, atol=1e-6)
