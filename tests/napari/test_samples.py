"""The three shipped samples load offline, from core and through napari's File > Open Sample."""

from __future__ import annotations

import numpy as np
import pytest

from napari_gama_ir.samples import list_samples, load_sample, sample_info

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
        label = sample_info(name)["label"]
        assert [lay.name for lay in viewer.layers] == [f"{label} clean", f"{label} noisy"]
        noisy = viewer.layers[f"{label} noisy"]
        assert viewer.layers.selection.active is noisy and not viewer.layers[f"{label} clean"].visible
        assert noisy.data.shape == EXPECTED[name][0] and noisy.rgb == name.endswith("rgb")
    viewer.open_sample("napari-gama-ir", "fluorescence-3d")  # a second sample: its own names, no " [1]"
    assert [str(u) for u in viewer.layers["nucleus 3-D noisy"].units] == ["micrometer"] * 3
    assert [lay.name for lay in viewer.layers] == ["photo clean", "photo noisy", "nucleus 3-D clean", "nucleus 3-D noisy"]
