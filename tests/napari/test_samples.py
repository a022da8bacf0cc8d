"""The three shipped samples load offline, from core and through napari's File > Open Sample."""

from __future__ import annotations

import numpy as np
import pytest

from napari_gama_ir.samples import list_samples, load_sample

EXPECTED = {
    "fluorescence-2d": ((512, 512), np.uint16, "YX"),
    "fluorescence-3d": ((60, 60, 50), np.uint16, "ZYX"),
    "photo-rgb": ((320, 320, 3), np.uint8, "YXC"),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_load_sample_gives_noisy_and_clean_images(name):
    shape, dtype, axes = EXPECTED[name]
    s = load_sample(name)
    assert s["axes"] == axes and len(s["scale"]) == len(axes.replace("C", ""))
    for kind in ("noisy", "clean"):
        assert s[kind].shape == shape and s[kind].dtype == dtype
    assert not np.array_equal(s["noisy"], s["clean"]) and s["description"]


def test_list_samples():
    assert list_samples() == sorted(EXPECTED)


@pytest.mark.qt
def test_samples_open_in_napari(make_napari_viewer):
    viewer = make_napari_viewer()
    for name in list_samples():
        viewer.layers.clear()
        viewer.open_sample("napari-gama-ir", name)
        assert [lay.name for lay in viewer.layers] == ["noisy", "clean"]
        assert viewer.layers["noisy"].data.shape == EXPECTED[name][0]
        assert viewer.layers["noisy"].rgb == name.endswith("rgb")
