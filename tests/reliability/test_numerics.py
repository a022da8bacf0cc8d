"""restore's numerics at any scale, never silently wrong.

- Normalisation is exact at any finite scale: float data x 1e-10 and x 1e10 (float32 and float64) restore
  to the PSNR of the unscaled data within 0.1 dB, on the host path and on the device path (engine.resident,
  run here on the CPU with ``chunk_path="device"``).
- One extreme pixel (1e20, -1e20, float32's 3e38, float64's 1e300) never poisons the output: the network
  input is clipped to ``±NORMALIZED_LIMIT``, and beyond the network's 16-px grid cell around the pixel the
  result matches the one without it.
- A model that produces NaN or inf raises RestoreError; nothing is written (an output file is removed).
- Constant images at 0, 1e-30 and 1e30 come back finite and as themselves; integer extremes saturate.
"""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest
import torch

from napari_gama_ir import GamaIRError, RestoreError, load_model, restore
from napari_gama_ir.engine import restore as engine
from napari_gama_ir.io.normalize import NORMALIZED_LIMIT

MODEL = "general-gray"
OPTS = dict(device="cpu", precision="fp32")


def _clean(size: int) -> np.ndarray:
    """A smooth image in about [0.2, 0.9] (float64)."""
    yy, xx = np.mgrid[0:size, 0:size] / 64.0
    return 0.5 + 0.3 * np.sin(2 * np.pi * xx * 1.5) * np.cos(2 * np.pi * yy) + 0.1 * xx


CLEAN = _clean(64)
NOISY = CLEAN + np.random.default_rng(0).normal(0, 0.1, CLEAN.shape)  # PSNR about 20 dB


def _psnr(a, b, peak: float = 1.0) -> float:
    return float(10 * np.log10(peak**2 / np.mean((np.asarray(a, np.float64) - b) ** 2)))


@pytest.fixture(scope="module")
def net():
    return load_model(MODEL)


@pytest.fixture(scope="module")
def unscaled_psnr(net) -> float:
    psnr = _psnr(restore(NOISY.astype(np.float32), net, **OPTS), CLEAN)
    assert psnr > 30  # the model does restore: the noisy input is at about 20 dB
    return psnr


@pytest.fixture
def device_path(monkeypatch):
    """Every restore() in the test takes the accelerator path (engine.resident) on the CPU."""
    plain = engine._settings
    monkeypatch.setattr(engine, "_settings", lambda plan: dataclasses.replace(plain(plan), chunk_path="device"))


SCALES = [1e-10, 1e-5, 1.0, 1e5, 1e10]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("scale", SCALES)
def test_any_scale_restores_to_the_same_psnr(net, unscaled_psnr, scale, dtype):
    out = restore((NOISY * scale).astype(dtype), net, **OPTS)
    assert out.dtype == dtype and np.isfinite(out).all()
    assert abs(_psnr(out / scale, CLEAN) - unscaled_psnr) < 0.1


@pytest.mark.parametrize("scale", [1e-300, 1e300])
def test_float64_at_the_ends_of_its_range(net, unscaled_psnr, scale):
    out = restore(NOISY * scale, net, **OPTS)
    assert out.dtype == np.float64 and np.isfinite(out).all()
    assert abs(_psnr(out / scale, CLEAN) - unscaled_psnr) < 0.1


def test_float64_offset_far_above_its_range(net, unscaled_psnr):
    """1e10 + a pattern of amplitude 1: float32 (a step of 1024 there) would keep nothing of it."""
    out = restore(1e10 + NOISY, net, **OPTS)
    assert abs(_psnr(out - 1e10, CLEAN) - unscaled_psnr) < 0.1


@pytest.mark.parametrize("dtype,scale", [(np.float32, 1e-10), (np.float32, 1e10), (np.float64, 1e-300), (np.float64, 1e300)])
def test_any_scale_on_the_device_path(net, unscaled_psnr, device_path, dtype, scale):
    out = restore((NOISY * scale).astype(dtype), net, **OPTS)
    assert out.dtype == dtype and np.isfinite(out).all()
    assert abs(_psnr(out / scale, CLEAN) - unscaled_psnr) < 0.1


# --- one extreme pixel ------------------------------------------------------------------------------

BIG = _clean(128) + np.random.default_rng(1).normal(0, 0.1, (128, 128))
AT = (60, 70)
FAR = np.maximum(*np.abs(np.mgrid[0:128, 0:128] - np.array(AT)[:, None, None])) > 16  # beyond one 16-px cell


def _with_outlier(dtype, value):
    data = BIG.astype(dtype)
    data[AT] = value
    return data


@pytest.mark.parametrize(
    "dtype,value",
    [(np.float32, 1e20), (np.float32, -1e20), (np.float32, 3e38), (np.float64, 1e300), (np.float64, -1e300)],
)
def test_one_extreme_pixel_never_poisons_the_output(net, dtype, value):
    reference = restore(BIG.astype(dtype), net, **OPTS)
    out = restore(_with_outlier(dtype, value), net, **OPTS)
    assert np.isfinite(out).all()
    assert _psnr(out[FAR], reference[FAR]) > 40
    assert np.abs(out[FAR] - reference[FAR]).max() < 0.02  # of a range of about 1
    assert abs(float(out[AT])) <= NORMALIZED_LIMIT * 2  # clipped at about 1000x the range, not 1e20


@pytest.mark.parametrize("dtype,value", [(np.float32, 1e20), (np.float64, -1e300)])
def test_one_extreme_pixel_on_the_device_path(net, device_path, dtype, value):
    reference = restore(BIG.astype(dtype), net, **OPTS)
    out = restore(_with_outlier(dtype, value), net, **OPTS)
    assert np.isfinite(out).all()
    assert _psnr(out[FAR], reference[FAR]) > 40


def test_one_extreme_pixel_in_bf16(net):
    out = restore(_with_outlier(np.float32, 1e20), net, device="cpu", precision="bf16")
    reference = restore(BIG.astype(np.float32), net, device="cpu", precision="bf16")
    assert np.isfinite(out).all()
    assert _psnr(out[FAR], reference[FAR]) > 40


def test_a_hot_pixel_in_dim_uint16_data(net):
    dim = np.random.default_rng(2).poisson(20 * _clean(128)).astype(np.uint16)
    reference = restore(dim, net, **OPTS)
    hot = dim.copy()
    hot[AT] = 65535
    out = restore(hot, net, **OPTS)
    assert np.abs(out[FAR].astype(int) - reference[FAR]).max() <= 1


# --- a model that produces NaN or inf -----------------------------------------------------------------


@pytest.fixture(params=["nan", "inf"])
def broken(net, request):
    """The shipped model with one bias of the last convolution set to NaN (or inf): every output NaN."""
    bad = copy.deepcopy(net)
    last = [m for m in bad.modules() if isinstance(m, torch.nn.Conv2d)][-1]
    with torch.no_grad():
        last.bias.fill_(float(request.param))
    return bad


@pytest.mark.parametrize("dtype", [np.float32, np.uint16])
def test_non_finite_model_output_raises_for_arrays(broken, dtype):
    data = (NOISY * (1000 if dtype == np.uint16 else 1)).clip(0).astype(dtype)
    with pytest.raises(RestoreError, match=rf"NaN or inf.*model {MODEL}") as info:
        restore(data, broken, **OPTS)
    assert isinstance(info.value, GamaIRError) and isinstance(info.value, RuntimeError)


def test_non_finite_model_output_raises_on_the_device_path(broken, device_path):
    with pytest.raises(RestoreError, match="NaN or inf"):
        restore(NOISY.astype(np.float32), broken, **OPTS)


def test_non_finite_model_output_leaves_no_file(broken, tmp_path):
    target = tmp_path / "x.tif"
    with pytest.raises(RestoreError):
        restore((NOISY * 1000).clip(0).astype(np.uint16), broken, out=target, **OPTS)
    assert list(tmp_path.iterdir()) == []  # neither the file nor a temporary one


def test_a_model_built_in_memory_is_named_by_its_card(make_tiny):
    tiny = make_tiny()
    with torch.no_grad():
        [m for m in tiny.modules() if isinstance(m, torch.nn.Conv2d)][-1].bias.fill_(float("nan"))
    with pytest.raises(RestoreError, match=f"model {tiny.card.name}"):
        restore(NOISY.astype(np.float32), tiny, **OPTS)


# --- constant images and integer extremes ------------------------------------------------------------


@pytest.mark.parametrize("dtype,value", [(np.float32, 0.0), (np.float32, 1e-30), (np.float32, 1e30), (np.float64, 1e300)])
def test_constant_images_come_back_finite_and_as_themselves(net, dtype, value):
    out = restore(np.full((48, 48), value, dtype), net, **OPTS)
    assert out.dtype == dtype and np.isfinite(out).all()
    np.testing.assert_allclose(out, value, rtol=1e-5, atol=0.05 if value == 0 else 0)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_constant_integer_images_come_back_as_themselves(net, dtype):
    value = np.iinfo(dtype).max // 3
    np.testing.assert_array_equal(restore(np.full((48, 48), value, dtype), net, **OPTS), value)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int32])
def test_integer_extremes_saturate_and_match_the_float_result(net, dtype):
    """Data spanning the whole integer range: the output stays in range (no wrap-around) and equals the
    float64 restore of the same values, rounded (int32 needs float64 arithmetic for that)."""
    info = np.iinfo(dtype)
    values = info.min + NOISY.clip(0, 1) * (float(info.max) - info.min)
    data = np.rint(values).astype(dtype)
    data[0, :4] = [info.min, info.max, info.min, info.max]
    out = restore(data, net, **OPTS)
    assert out.dtype == dtype
    expected = restore(data.astype(np.float64), net, **OPTS).clip(info.min, info.max)
    assert np.abs(out.astype(np.float64) - np.rint(expected)).max() <= 1


def test_int32_far_above_zero_keeps_its_small_steps(net):
    """2e9 + a few hundred steps: float32 (a step of 128 there) would flatten it."""
    data = (2_000_000_000 + np.rint(NOISY * 300)).astype(np.int32)
    out = restore(data, net, **OPTS)
    expected = restore(NOISY * 300, net, **OPTS)
    assert np.abs((out.astype(np.float64) - 2_000_000_000) - expected).max() <= 1
