"""Normalizer: per-channel robust percentiles from a bounded sample of the stack, an exact inverse,
constant channels kept finite, and a cast back that rounds and clips integers to their range."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest

from napari_gama_ir.io.normalize import MAX_SAMPLE_PLANES, Normalizer, cast_to


def test_percentiles_are_per_channel():
    rng = np.random.default_rng(0)
    stack = np.stack([rng.uniform(0, 1, (4, 32, 32)), rng.uniform(100, 300, (4, 32, 32))], axis=1)
    norm = Normalizer.from_stack(stack, 0.0, 100.0)
    np.testing.assert_allclose(norm.low, stack.min(axis=(0, 2, 3)), rtol=1e-6)
    np.testing.assert_allclose(norm.high, stack.max(axis=(0, 2, 3)), rtol=1e-6)
    scaled = norm.forward(stack)
    assert scaled.dtype == np.float32
    np.testing.assert_allclose(scaled.min(axis=(0, 2, 3)), 0.0, atol=1e-6)
    np.testing.assert_allclose(scaled.max(axis=(0, 2, 3)), 1.0, atol=1e-6)


def test_robust_percentiles_ignore_a_few_hot_pixels():
    stack = np.random.default_rng(1).uniform(0, 1, (1, 1, 100, 100))
    stack[0, 0, :3, :3] = 1e6
    norm = Normalizer.from_stack(stack, 0.5, 99.9)
    assert norm.high[0] < 2.0


def test_inverse_undoes_forward():
    stack = np.random.default_rng(2).uniform(-50, 4000, (3, 2, 16, 16)).astype(np.float32)
    norm = Normalizer.from_stack(stack)
    np.testing.assert_allclose(norm.inverse(norm.forward(stack)), stack, rtol=1e-5, atol=1e-2)
    # channel last (YXC planes)
    yxc = stack[0].transpose(1, 2, 0)
    np.testing.assert_allclose(norm.inverse(norm.forward(yxc, channel_axis=2), channel_axis=2), yxc, rtol=1e-5, atol=1e-2)


@pytest.mark.parametrize("value", [7.0, 1e-30, 1e30, -3e12])
def test_constant_float_channel_gets_a_range_relative_to_its_magnitude(value):
    """A fixed range of 1 would swamp 1e-30 and vanish in 1e30's rounding (high == low: NaN)."""
    stack = np.full((2, 1, 8, 8), value)
    norm = Normalizer.from_stack(stack)
    assert 0 < norm.scale[0] <= 1e-12 * abs(value)
    np.testing.assert_array_equal(norm.forward(stack), 0.0)
    np.testing.assert_array_equal(norm.inverse(norm.forward(stack), dtype=np.float64), value)


def test_constant_integer_and_zero_channels_get_unit_scale():
    for stack in (np.full((2, 1, 8, 8), 7, np.uint16), np.zeros((1, 1, 8, 8), np.float32)):
        norm = Normalizer.from_stack(stack)
        assert norm.high[0] - norm.low[0] == 1.0
        np.testing.assert_array_equal(norm.forward(stack), 0.0)
        np.testing.assert_array_equal(norm.inverse(norm.forward(stack)), stack)
    assert Normalizer.from_bounds([5.0], [5.0]).scale[0] == 1.0  # from_bounds' default: unit 1


@pytest.mark.parametrize("scale", [1e-10, 1e-5, 1e5, 1e10])
def test_flat_test_is_relative_so_any_scale_normalises_alike(scale):
    stack = np.random.default_rng(4).uniform(0.2, 0.9, (1, 1, 32, 32))
    base = Normalizer.from_stack(stack).forward(stack)
    for dtype in (np.float32, np.float64):
        scaled = (stack * scale).astype(dtype)
        np.testing.assert_allclose(Normalizer.from_stack(scaled).forward(scaled), base, atol=1e-5)


def test_forward_clips_to_the_normalized_limit_and_stays_finite():
    from napari_gama_ir.io.normalize import NORMALIZED_LIMIT

    stack = np.random.default_rng(5).uniform(0, 1, (1, 1, 16, 16))
    norm = Normalizer.from_stack(stack)
    for dtype, big in ((np.float32, 3e38), (np.float64, 1e300)):
        x = stack.astype(dtype)
        x[0, 0, 0, :2] = big, -big
        y = norm.forward(x)
        assert y.dtype == np.float32 and np.isfinite(y).all()
        assert y[0, 0, 0, 0] == NORMALIZED_LIMIT and y[0, 0, 0, 1] == -NORMALIZED_LIMIT


def test_wide_data_is_normalised_and_inverted_in_float64():
    """float32 would keep nothing of 1e10 + a pattern of amplitude 1 (its step there is 1024)."""
    stack = 1e10 + np.random.default_rng(6).uniform(0, 1, (1, 1, 16, 16))
    norm = Normalizer.from_stack(stack)
    np.testing.assert_allclose(norm.inverse(norm.forward(stack), dtype=np.float64), stack, rtol=0, atol=1e-6)
    big_int = (2_000_000_000 + np.arange(256, dtype=np.int32)).reshape(1, 1, 16, 16)
    norm = Normalizer.from_stack(big_int)
    np.testing.assert_array_equal(cast_to(norm.inverse(norm.forward(big_int), dtype=np.int32), np.int32), big_int)


def test_dask_and_numpy_stacks_give_the_same_statistics_from_a_bounded_sample():
    stack = np.random.default_rng(3).poisson(50, (40, 1, 24, 24)).astype(np.uint16)
    stack[1] = 60000  # plane 1 is never among the 16 evenly spaced samples of 40 planes
    sampled = np.unique(np.linspace(0, 39, MAX_SAMPLE_PLANES).round().astype(int))
    assert 1 not in sampled
    a = Normalizer.from_stack(stack)
    b = Normalizer.from_stack(da.from_array(stack, chunks=(5, 1, 24, 24)))
    np.testing.assert_array_equal(a.low, b.low)
    np.testing.assert_array_equal(a.high, b.high)
    assert a.high[0] < 1000


def test_to_dict_round_trips_through_from_bounds():
    norm = Normalizer.from_bounds([1.0, 2.0], [3.0, 10.0])
    again = Normalizer.from_bounds(**norm.to_dict())
    np.testing.assert_array_equal(again.low, norm.low)
    np.testing.assert_array_equal(again.high, norm.high)


@pytest.mark.parametrize(
    "dtype,values,expected",
    [("uint8", [-3.0, 0.4, 0.6, 254.5, 300.0], [0, 0, 1, 254, 255]),
     ("uint16", [-1.0, 65535.7, 1000.49], [0, 65535, 1000]),
     ("int16", [-40000.0, -2.5, 40000.0], [-32768, -2, 32767]),
     ("float32", [-1.5, 2.25], [-1.5, 2.25]),
     ("float16", [1e6, -1e6, 2.5], [65504, -65504, 2.5])],  # a narrower float saturates, never inf
)  # fmt: skip
def test_cast_to_rounds_and_clips(dtype, values, expected):
    out = cast_to(np.array(values, np.float32), dtype)
    assert out.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(out, np.array(expected, dtype))


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16, np.uint32, np.int32])
def test_values_beyond_an_integer_range_saturate_on_host_and_device(dtype):
    """float32 cannot hold 2**31 - 1 or 2**32 - 1: values above the range must still give the maximum,
    not wrap around (the host cast and the device path's cast alike)."""
    import torch

    from napari_gama_ir.engine.resident import cast

    info = np.iinfo(dtype)
    values = np.array([1e10, -1e10, float(info.max), 3.4, 2.6], np.float32)
    expected = np.array([info.max, info.min, info.max, 3, 3], dtype)
    np.testing.assert_array_equal(cast_to(values, dtype), expected)
    on_device = cast(torch.from_numpy(values), dtype).numpy()
    np.testing.assert_array_equal(on_device.view(dtype) if on_device.dtype != dtype else on_device, expected)


@pytest.mark.parametrize("lazy", [False, True])
def test_with_neighbours_the_percentiles_are_the_running_means(lazy):
    rng = np.random.default_rng(5)
    stack = rng.normal(10, 3, (6, 2, 24, 24)).astype(np.float32)  # noisy planes: the mean of 3 has a narrower range
    table = np.array([[1, 0, 1], [0, 1, 2], [1, 2, 3], [2, 3, 4], [3, 4, 5], [4, 5, 4]])
    binned = stack[table].mean(axis=1)
    data = da.from_array(stack, chunks=(1, 2, 24, 24)) if lazy else stack
    norm = Normalizer.from_stack(data, 0.5, 99.9, neighbours=table)
    expected = Normalizer.from_stack(binned, 0.5, 99.9)
    np.testing.assert_allclose(norm.low, expected.low, rtol=1e-6)
    np.testing.assert_allclose(norm.high, expected.high, rtol=1e-6)
    assert (norm.scale < Normalizer.from_stack(stack, 0.5, 99.9).scale).all()
