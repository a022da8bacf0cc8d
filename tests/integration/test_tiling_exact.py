"""Tiling is exact where it can be: with local GAMA means (a finite receptive field) tiled output equals
untiled output once the discarded context (overlap // 4 per side) exceeds the receptive-field radius,
and differs when it does not. With global means tiling changes the statistics each tile sees; the
difference is measured (PSNR), not assumed away. The real-model check (>= 45 dB on trained weights)
lives in benchmarks/, not here: a random tiny network says nothing about a trained one's seams."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_gama_ir import restore
from napari_gama_ir.tiling.windows import CONTEXT_FRACTION

LOCAL = dict(mean_mode="local", local_size=4, kernel_size=3)  # a small receptive field keeps the tiles small


def receptive_radius(net, size: int = 96) -> int:
    """Largest distance (px, Chebyshev) at which a one-pixel change moves the output, in float64."""
    net = net.double()
    torch.manual_seed(0)
    x = torch.rand(1, 1, size, size, dtype=torch.float64)
    radius = 0
    with torch.no_grad():
        base = net(x)
        for py, px in [(48, 48), (49, 47), (50, 50), (51, 51)]:  # every phase of the 4-pixel grid
            x2 = x.clone()
            x2[..., py, px] += 10.0
            moved = ((net(x2) - base).abs()[0, 0] > 1e-12).nonzero()
            radius = max(radius, int((moved - torch.tensor([py, px])).abs().max()))
    net.float()
    return radius


@pytest.fixture(scope="module")
def local_net(make_tiny):
    return make_tiny(**LOCAL)


@pytest.fixture(scope="module")
def image():
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:203, :197]  # odd, not multiples of the network's 4-pixel grid
    return (0.5 + 0.3 * np.sin(xx / 9) * np.cos(yy / 13) + rng.normal(0, 0.1, xx.shape)).astype(np.float32)


def test_local_means_tile_exactly(local_net, image):
    radius = receptive_radius(local_net)
    assert 10 < radius < 40  # measured: 27 px for this network
    overlap = 4 * (radius + 1)  # context = overlap // 4 = radius + 1; a multiple of the 4-pixel grid
    assert int(overlap * CONTEXT_FRACTION) > radius
    # fp32: exactness is a property of the arithmetic, which bf16 (the CPU default where native) rounds coarser
    untiled = restore(image, local_net, tile=256, mean_mode="local", precision="fp32")
    tiled = restore(image, local_net, tile=overlap + 36, overlap=overlap, mean_mode="local", precision="fp32")
    np.testing.assert_allclose(tiled, untiled, rtol=0, atol=2e-5)  # cumulative-sum rounding only


def test_too_little_context_shows_seams(local_net, image):
    untiled = restore(image, local_net, tile=256, mean_mode="local")
    tiled = restore(image, local_net, tile=48, overlap=16, mean_mode="local")  # context 4 px < radius
    assert np.abs(tiled - untiled).max() > 1e-3


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    data_range = float(b.max() - b.min())
    return float(10 * np.log10(data_range**2 / np.mean((a.astype(np.float64) - b) ** 2)))


@pytest.mark.parametrize("tile,overlap", [(64, 32), (48, 16)])
def test_global_means_tiling_cost_is_small(make_tiny, image, tile, overlap):
    net = make_tiny()
    crop = image[:128, :128]
    untiled = restore(crop, net, tile=128)
    tiled = restore(crop, net, tile=tile, overlap=overlap)
    value = psnr(tiled, untiled)
    assert np.isfinite(value)  # not exact: each tile's means differ from the whole image's
    assert value >= 40.0  # measured 55-61 dB for seeds 0-2; the brief's floor for a random net is 30 dB
