"""Bad data, options and files fail early with a typed error (InvalidInputError is a ValueError,
InvalidDtypeError a TypeError, ModelFileError a ValueError) whose message names the problem, and no
output file is left behind."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import torch

from napari_gama_ir import InvalidDtypeError, InvalidInputError, ModelFileError, restore


def img(shape=(32, 32), dtype=np.float32):
    return np.random.default_rng(0).random(shape).astype(dtype)


def with_value(value, shape=(32, 32)):
    data = img(shape)
    data[3, 4] = value
    return data


def corrupt_tiff(tmp):
    path = tmp / "broken.tif"
    path.write_bytes(b"II*\x00" + b"\x07" * 64)
    return {"data": str(path)}


def text_as_tiff(tmp):
    path = tmp / "notes.tif"
    path.write_text("not an image")
    return {"data": str(path)}


def empty_zarr_folder(tmp):
    (tmp / "empty.zarr").mkdir()
    return {"data": str(tmp / "empty.zarr")}


def png_file(tmp):
    (tmp / "a.bmp").write_bytes(b"BM")
    return {"data": str(tmp / "a.bmp")}


# id: (kwargs for restore, or a function of tmp_path returning them; error class; message fragment)
CASES = {
    "nan": ({"data": with_value(np.nan)}, InvalidInputError, "NaN or inf"),
    "inf": ({"data": with_value(np.inf)}, InvalidInputError, "NaN or inf"),
    "-inf-in-stack": ({"data": np.stack([img(), with_value(-np.inf)])}, InvalidInputError, "NaN or inf"),
    "nan-dask": ({"data": da.full((2, 32, 32), np.nan, dtype=np.float32)}, InvalidInputError, "NaN or inf"),
    "empty": ({"data": np.zeros((0, 32), np.float32)}, InvalidInputError, "empty"),
    "1-d": ({"data": np.zeros(32, np.float32)}, InvalidInputError, "fewer than 2 axes"),
    "0-d": ({"data": np.float32(3)}, InvalidInputError, "fewer than 2 axes"),
    "6-d": ({"data": np.zeros((1, 1, 1, 1, 8, 8), np.float32)}, InvalidInputError, "cannot guess axes"),
    "bool": ({"data": np.zeros((32, 32), bool)}, InvalidDtypeError, "dtype bool"),
    "complex": ({"data": np.zeros((32, 32), np.complex64)}, InvalidDtypeError, "dtype complex64"),
    "object": ({"data": np.empty((32, 32), object)}, InvalidDtypeError, "dtype object"),
    "list": ({"data": [[1, 2], [3, 4]]}, InvalidInputError, "cannot read data of type list"),
    "axes-length": ({"data": img(), "axes": "ZYX"}, InvalidInputError, "has 3 letters"),
    "axes-letter": ({"data": img((2, 32, 32)), "axes": "WYX"}, InvalidInputError, "unknown letters ['W']"),
    "axes-repeated": ({"data": img((2, 32, 32)), "axes": "XYX"}, InvalidInputError, "repeats a letter"),
    "axes-no-y": ({"data": img((2, 32, 32)), "axes": "ZCX"}, InvalidInputError, "must contain Y and X"),
    "axes-not-str": ({"data": img(), "axes": ["Y", "X"]}, InvalidInputError, "must be a string"),
    "channels": ({"data": img((2, 32, 32)), "axes": "CYX", "model": "rgb"}, InvalidInputError, "takes 3 channels but the data has 2"),
    "unknown-model": ({"data": img(), "model": "no-such-model"}, InvalidInputError, "unknown model 'no-such-model'"),
    "model-type": ({"data": img(), "model": 3}, InvalidInputError, "model must be a name, a path or a network"),
    "model-file-missing": (lambda tmp: {"data": img(), "model": str(tmp / "gone.safetensors")}, ModelFileError, "model file not found"),
    "corrupt-tiff": (corrupt_tiff, InvalidInputError, "not a readable TIFF"),
    "text-as-tiff": (text_as_tiff, InvalidInputError, "not a readable TIFF"),
    "missing-file": (lambda tmp: {"data": str(tmp / "nope.tif")}, InvalidInputError, "file not found"),
    "empty-zarr": (empty_zarr_folder, InvalidInputError, "zarr"),
    "png": (png_file, InvalidInputError, "unsupported file type"),
    "out-suffix": (lambda tmp: {"data": img(), "out": str(tmp / "o.bmp")}, InvalidInputError, "unsupported suffix"),
    "out-folder": (lambda tmp: {"data": img(), "out": str(tmp / "no" / "o.tif")}, InvalidInputError, "does not exist"),
    "out-type": ({"data": img(), "out": 5}, InvalidInputError, "out must be None, a path"),
    "tile-0": ({"data": img(), "tile": 0}, InvalidInputError, "tile must be a positive int"),
    "tile-negative": ({"data": img(), "tile": -3}, InvalidInputError, "got -3"),
    "tile-text": ({"data": img(), "tile": "big"}, InvalidInputError, "tile must be"),
    "tile-bool": ({"data": img(), "tile": True}, InvalidInputError, "tile must be"),
    "overlap>=tile": ({"data": img((64, 64)), "tile": 16, "overlap": 16}, InvalidInputError, "overlap 16 must be smaller than the tile 16"),
    "overlap-negative": ({"data": img(), "overlap": -1}, InvalidInputError, "overlap must be"),
    "batch-0": ({"data": img(), "batch_size": 0}, InvalidInputError, "batch_size must be a positive int"),
    "batch-float": ({"data": img(), "batch_size": 2.5}, InvalidInputError, "batch_size must be"),
    "device-tpu": ({"data": img(), "device": "tpu"}, InvalidInputError, "device 'tpu' is not known"),
    "device-cuda": ({"data": img(), "device": "cuda"}, InvalidInputError, "CUDA is not available"),
    "fp16-on-cpu": ({"data": img(), "device": "cpu", "precision": "fp16"}, InvalidInputError, "needs a GPU"),
    "fp8": ({"data": img(), "precision": "fp8"}, InvalidInputError, "precision 'fp8' is not known"),
    "dtype-bool": ({"data": img(), "dtype": bool}, InvalidDtypeError, "dtype bool"),
    "dtype-unknown": ({"data": img(), "dtype": "float99"}, InvalidDtypeError, "float99"),
    "mean-mode": ({"data": img(), "mean_mode": "x"}, InvalidInputError, "mean_mode 'x' is not known; accepted: global, local"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_raises_a_typed_error(case, tiny_model, tiny_rgb_model, tmp_path, user_models_dir):
    kwargs, error, fragment = CASES[case]
    if case == "device-cuda" and torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    kwargs = dict(kwargs(tmp_path) if callable(kwargs) else kwargs)
    kwargs["model"] = {None: tiny_model, "rgb": tiny_rgb_model}.get(kwargs.get("model"), kwargs.get("model"))
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(error) as info:
        result = restore(**kwargs)
        if isinstance(result, da.Array):
            result.compute()
    assert fragment in str(info.value)
    assert isinstance(info.value, ValueError if error is not InvalidDtypeError else TypeError)
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_table_is_large_enough():
    assert len(CASES) >= 25


def test_nan_in_an_unsampled_plane_of_a_lazy_stack_fails_when_computed(tiny_model):
    data = np.random.default_rng(0).random((40, 16, 16)).astype(np.float32)
    data[1, 2, 3] = np.nan  # plane 1 is not among the normaliser's 16 sampled planes
    lazy = restore(da.from_array(data, chunks=(4, 16, 16)), tiny_model)
    with pytest.raises(InvalidInputError, match="NaN or inf"):
        lazy.compute()


def test_overlap_is_only_checked_on_axes_that_are_tiled(tiny_model):
    data = np.random.default_rng(0).random((100, 20)).astype(np.float32)  # a narrow strip
    out = restore(data, tiny_model, tile=48, overlap=24)  # x fits in one 20 px tile: no overlap needed there
    assert out.shape == data.shape
