"""Axes: shape rules when nothing says otherwise, validation with messages that name the problem,
file-letter aliases, and a lossless round trip to the canonical (planes, C, Y, X) view."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest

from napari_gama_ir import InvalidInputError
from napari_gama_ir.io.axes import CanonicalLayout, default_axes, normalize_axes


@pytest.mark.parametrize(
    "shape,axes",
    [((64, 64), "YX"), ((32, 32, 3), "YXC"), ((32, 32, 4), "YXC"), ((5, 32, 32), "ZYX"), ((3, 32, 32), "ZYX"),
     ((5, 32, 32, 3), "ZYXC"), ((2, 5, 32, 32), "TZYX"), ((2, 3, 5, 32, 32), "TCZYX")],
)  # fmt: skip
def test_default_axes_from_shape(shape, axes):
    assert default_axes(shape) == axes


def test_rgb_flag_overrides_the_last_axis_rule():
    assert default_axes((32, 32, 3), rgb=False) == "ZYX"
    assert default_axes((32, 32, 5), rgb=True) == "YXC"


@pytest.mark.parametrize("shape", [(5,), (1, 2, 3, 4, 5, 6)])
def test_default_axes_needs_2_to_5_dims(shape):
    with pytest.raises(InvalidInputError, match="pass axes="):
        default_axes(shape)


@pytest.mark.parametrize(
    "axes,shape,expected",
    [("zyx", (2, 8, 8), "ZYX"), ("YXS", (8, 8, 3), "YXC"), ("QYX", (2, 8, 8), "ZYX"), ("IQYX", (2, 3, 8, 8), "ZTYX"),
     ("TZCYX", (1, 2, 3, 8, 8), "TZCYX")],
)  # fmt: skip
def test_normalize_axes_resolves_case_and_aliases(axes, shape, expected):
    assert normalize_axes(axes, shape) == expected


@pytest.mark.parametrize(
    "axes,shape,fragment",
    [("ZYX", (8, 8), "has 3 letters"), ("YXW", (8, 8, 2), "unknown letters"), ("YYX", (2, 8, 8), "repeats"),
     ("ZCX", (2, 2, 8), "must contain Y and X"), (3, (8, 8), "must be a string")],
)  # fmt: skip
def test_normalize_axes_rejects(axes, shape, fragment):
    with pytest.raises(InvalidInputError, match=fragment):
        normalize_axes(axes, shape)


LAYOUTS = [("YX", (7, 5)), ("ZYX", (3, 7, 5)), ("YXC", (7, 5, 3)), ("CYX", (2, 7, 5)), ("TZYX", (2, 3, 7, 5)),
           ("TCZYX", (2, 3, 4, 7, 5)), ("XYZ", (5, 7, 3)), ("ZYXC", (2, 7, 5, 4)), ("YCXZ", (7, 2, 5, 3))]  # fmt: skip


@pytest.mark.parametrize("axes,shape", LAYOUTS)
def test_canonical_round_trip(axes, shape):
    layout = CanonicalLayout(axes, shape)
    arr = np.arange(np.prod(shape)).reshape(shape)
    canonical = layout.to_canonical(arr)
    planes = int(np.prod([shape[axes.index(a)] for a in axes if a in "TZ"]))
    channels = shape[axes.index("C")] if "C" in axes else 1
    assert canonical.shape == layout.canonical_shape == (planes, channels, shape[axes.index("Y")], shape[axes.index("X")])
    np.testing.assert_array_equal(layout.from_canonical(canonical), arr)
    lazy = layout.from_canonical(layout.to_canonical(da.from_array(arr, chunks=2)))
    np.testing.assert_array_equal(lazy.compute(), arr)


def test_canonical_view_puts_each_pixel_where_it_belongs():
    layout = CanonicalLayout("XYZ", (5, 7, 3))
    arr = np.random.default_rng(0).random((5, 7, 3))
    canonical = layout.to_canonical(arr)
    assert canonical[2, 0, 4, 1] == arr[1, 4, 2]  # plane z=2, y=4, x=1
    rgb = CanonicalLayout("YXC", (7, 5, 3))
    assert rgb.to_canonical(np.arange(105).reshape(7, 5, 3))[0, 2, 3, 4] == np.arange(105).reshape(7, 5, 3)[3, 4, 2]


@pytest.mark.parametrize("axes,shape", LAYOUTS)
def test_canonical_view_of_numpy_never_copies_the_input(axes, shape):
    """Reshapes that need a copy (stack axes split by C, e.g. TCZYX) become lazy instead of a full copy."""
    arr = np.arange(np.prod(shape)).reshape(shape)
    canonical = CanonicalLayout(axes, shape).to_canonical(arr)
    if isinstance(canonical, np.ndarray):
        assert np.shares_memory(canonical, arr)
    else:
        assert isinstance(canonical, da.Array) and canonical.chunks[0] == (1,) * canonical.shape[0]
