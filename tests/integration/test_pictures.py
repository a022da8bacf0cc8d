"""PNG and JPEG pictures: read by restore and gama-ir restore (8 and 16 bit, gray and RGB), and PNG written."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from napari_gama_ir import InvalidInputError, restore
from napari_gama_ir.cli import main

RNG = np.random.default_rng(0)
GRAY8 = RNG.integers(0, 256, (40, 44), dtype=np.uint8)
GRAY16 = RNG.integers(0, 65536, (40, 44), dtype=np.uint16)
RGB8 = RNG.integers(0, 256, (40, 44, 3), dtype=np.uint8)


@pytest.mark.parametrize("picture", [GRAY8, GRAY16, RGB8], ids=["gray8", "gray16", "rgb8"])
def test_a_png_restores_to_a_png_of_the_same_kind(tmp_path, tiny_model, tiny_rgb_model, picture):
    src, dst = tmp_path / "in.png", tmp_path / "out.png"
    Image.fromarray(picture).save(src)
    model = tiny_rgb_model if picture.ndim == 3 else tiny_model
    assert restore(src, model, out=dst, device="cpu") == str(dst)
    written = np.asarray(Image.open(dst))
    assert written.shape == picture.shape and written.dtype == picture.dtype
    np.testing.assert_array_equal(written, restore(picture, model, device="cpu"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png", "out.png"]


def test_a_jpeg_and_a_palette_png_are_read_as_rgb(tmp_path, tiny_rgb_model):
    Image.fromarray(RGB8).save(tmp_path / "in.jpg", quality=95)
    Image.fromarray(RGB8).convert("P").save(tmp_path / "palette.png")
    for name in ("in.jpg", "palette.png"):
        assert restore(tmp_path / name, tiny_rgb_model, device="cpu").shape == (40, 44, 3)


@pytest.mark.parametrize(("data", "axes", "kwargs"), [
    (np.zeros((2, 40, 44), np.uint8), "ZYX", {}),
    (np.zeros((40, 44), np.float32), "YX", {}),
    (np.zeros((40, 44, 3), np.uint16), "YXC", {}),
])  # fmt: skip
def test_what_a_png_cannot_hold_is_refused_before_work(tmp_path, tiny_model, tiny_rgb_model, data, axes, kwargs):
    model = tiny_rgb_model if axes == "YXC" else tiny_model
    with pytest.raises(InvalidInputError, match="a .png holds one"):
        restore(data, model, axes=axes, out=tmp_path / "out.png", device="cpu", **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_cli_restores_a_jpeg_into_a_png(tmp_path, tiny_rgb_model, user_models_dir):
    from napari_gama_ir import save_model

    save_model(tiny_rgb_model, "tiny-rgb")
    Image.fromarray(RGB8).save(tmp_path / "photo.jpg")
    assert main(["restore", str(tmp_path / "photo.jpg"), "-o", str(tmp_path / "photo.png"), "--model", "tiny-rgb", "-q"]) == 0
    assert np.asarray(Image.open(tmp_path / "photo.png")).shape == (40, 44, 3)


def test_a_broken_picture_is_a_typed_error(tmp_path, tiny_model):
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    with pytest.raises(InvalidInputError, match="not a readable PNG or JPEG"):
        restore(tmp_path / "broken.png", tiny_model)
