"""The noise autocorrelation estimate: white noise reads pixel-independent, noise filtered along an axis and
read-out stripes read correlated along the right axis, over about the right number of pixels."""

import numpy as np
import pytest

from napari_gama_ir import InvalidInputError
from napari_gama_ir.estimate.correlation import noise_correlation
from napari_gama_ir.samples import list_samples, load_sample


def cells(seed: int = 0, size: int = 192) -> np.ndarray:
    """Blurred blobs on a dark background in 0..1, like nuclei: float64 (size, size)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    image = np.full((size, size), 0.05)
    for cy, cx, r in rng.uniform((0, 0, 6), (size, size, 14), (30, 3)):
        image += 0.8 / (1 + np.exp(np.hypot(yy - cy, xx - cx) - r))
    return image


def along(noise: np.ndarray, taps: int, axis: int) -> np.ndarray:
    """``noise`` filtered by a box of ``taps`` pixels along ``axis`` (same variance for white noise)."""
    kernel = np.ones(taps) / np.sqrt(taps)
    return np.apply_along_axis(lambda v: np.convolve(v, kernel, "same"), axis, noise)


def noisy(kind: str, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    clean = cells(seed)
    white = rng.normal(0, 0.05, clean.shape)
    photons = 20
    poisson = (rng.poisson(clean * photons) + rng.normal(0, 2, clean.shape)) / photons
    return {
        "gaussian": clean + white,
        "poisson-gaussian": poisson,
        "x3": clean + along(white, 3, 1),
        "x5": clean + along(white, 5, 1),
        "y3": clean + along(white, 3, 0),
        "y5": clean + along(white, 5, 0),
        "column stripes": poisson + rng.normal(0, 0.06, (1, clean.shape[1])),
        "row stripes": poisson + rng.normal(0, 0.06, (clean.shape[0], 1)),
        "both": clean + along(along(white, 3, 0), 3, 1),
    }[kind]


@pytest.mark.parametrize("kind", ["gaussian", "poisson-gaussian"])
@pytest.mark.parametrize("seed", [0, 1])
def test_white_noise_reads_pixel_independent(kind, seed):
    found = noise_correlation(noisy(kind, seed))
    assert not found.correlated and found.direction is None and found.length == 0
    assert found.describe() == "noise is pixel-independent"
    r = found.radius
    assert found.acf.shape == (2 * r + 1, 2 * r + 1) and found.acf[r, r] == 1.0
    assert np.abs(np.delete(found.acf.ravel(), found.acf.size // 2)).max() < 0.08


@pytest.mark.parametrize("name", list_samples())
def test_shipped_samples_read_pixel_independent(name):
    sample = load_sample(name)
    assert not noise_correlation(sample["noisy"], axes=sample["axes"]).correlated


@pytest.mark.parametrize("kind, direction, length", [("x3", "x", 2), ("x5", "x", 4), ("y3", "y", 2), ("y5", "y", 4)])
def test_noise_filtered_along_an_axis_reads_correlated_along_it(kind, direction, length):
    found = noise_correlation(noisy(kind))
    assert found.correlated and found.direction == direction and found.length == length
    other = "y" if direction == "x" else "x"
    assert found.profile(direction)[1] > 0.5 > found.profile(other)[1]
    assert f"correlated along {direction} over {length} pixels" in found.describe()


@pytest.mark.parametrize("kind, direction", [("column stripes", "y"), ("row stripes", "x")])
def test_stripes_read_correlated_along_them_over_the_whole_radius(kind, direction):
    found = noise_correlation(noisy(kind))
    assert found.correlated and found.direction == direction and found.length == found.radius
    assert "stripes" in found.describe() and f"masks along {direction}" in found.describe()


def test_noise_correlated_along_both_axes_has_no_single_direction():
    found = noise_correlation(noisy("both"))
    assert found.correlated and found.direction is None and found.length == 2
    assert "along y and x" in found.describe()


def test_stack_and_input_untouched():
    stack = np.stack([noisy("x3", s) for s in range(3)]).astype(np.float32)
    before = stack.copy()
    found = noise_correlation(stack, axes="ZYX")
    assert found.direction == "x"
    np.testing.assert_array_equal(stack, before)


def test_too_small_planes_are_refused_with_the_size_needed():
    with pytest.raises(InvalidInputError, match=r"10 x 40 pixels .* at least 22 x 22"):
        noise_correlation(np.random.default_rng(0).normal(size=(10, 40)))
    with pytest.raises(InvalidInputError, match="radius"):
        noise_correlation(noisy("gaussian"), radius=0)
