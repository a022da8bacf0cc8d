"""TIFF outputs keep what the input said: ``*.ome.tif`` is real OME-TIFF with physical pixel sizes, an ImageJ
hyperstack stays one with its calibration, and anything else is a BigTIFF with axes, spacing and unit."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from napari_gama_ir import restore

STACK = np.random.default_rng(0).poisson(50, (3, 2, 40, 44)).astype(np.uint16)


@pytest.fixture
def imagej_input(tmp_path):
    path = tmp_path / "hyperstack.tif"
    tifffile.imwrite(path, STACK, imagej=True, resolution=(5.0, 5.0), metadata={"axes": "ZCYX", "spacing": 0.5, "unit": "um"})
    return path


def test_an_imagej_hyperstack_stays_one_with_its_calibration(tmp_path, tiny_model, imagej_input):
    out = restore(imagej_input, tiny_model, out=tmp_path / "out.tif", device="cpu")
    with tifffile.TiffFile(out) as tif:
        assert tif.is_imagej and tif.series[0].axes == "ZCYX" and tif.series[0].shape == STACK.shape
        assert tif.imagej_metadata["spacing"] == 0.5 and tif.imagej_metadata["unit"] == "um"
        assert tif.pages[0].tags["XResolution"].value == (5, 1)


@pytest.mark.parametrize("name", ["out.ome.tif", "out.OME.TIFF"])
def test_an_ome_name_writes_ome_tiff_with_physical_sizes(tmp_path, tiny_model, imagej_input, name):
    out = restore(imagej_input, tiny_model, out=tmp_path / name, device="cpu")
    with tifffile.TiffFile(out) as tif:
        assert tif.is_ome and tif.series[0].axes == "ZCYX" and tif.series[0].shape == STACK.shape
        pixels = tifffile.xml2dict(tif.ome_metadata)["OME"]["Image"]["Pixels"]
    assert pixels["PhysicalSizeX"] == pytest.approx(0.2) and pixels["PhysicalSizeXUnit"] == "µm"
    assert pixels["PhysicalSizeZ"] == pytest.approx(0.5)
    again = restore(out, tiny_model, out=tmp_path / "again.tif", device="cpu")  # OME calibration is read back
    with tifffile.TiffFile(again) as tif:
        assert tif.shaped_metadata[0]["spacing"] == pytest.approx(0.5)


def test_a_plain_array_writes_a_bigtiff_with_axes(tmp_path, tiny_model):
    out = restore(STACK[:, 0], tiny_model, axes="ZYX", out=tmp_path / "out.tif", device="cpu")
    with tifffile.TiffFile(out) as tif:
        assert tif.is_bigtiff and not tif.is_imagej and tif.series[0].axes == "ZYX"
