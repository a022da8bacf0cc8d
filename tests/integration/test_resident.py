"""The accelerator path (engine.resident: normalise, tile, blend and cast where the network runs, the
result copied back while the next chunk computes) gives what the host path gives. Run here on the CPU
with ``chunk_path="device"``; tests/integration/test_gpu.py runs it on CUDA."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from napari_gama_ir import InvalidInputError, restore
from napari_gama_ir.engine import resident
from napari_gama_ir.engine import restore as engine

OPTS = dict(tile=32, overlap=8, batch_size=3, device="cpu", precision="fp32")


@pytest.fixture
def force_resident(monkeypatch):
    """Every restore() in the test takes the accelerator path on the CPU."""
    plain = engine._settings
    monkeypatch.setattr(engine, "_settings", lambda plan: dataclasses.replace(plain(plan), chunk_path="device"))


def _host(data, net, **kw):
    return restore(data, net, **{**OPTS, **kw})


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "int16", "uint32", "float32", "float64", ">u2"])
def test_resident_matches_host_path(tiny_model, rng, monkeypatch, dtype):
    scale = {"uint8": 250, "int16": 3000, "uint32": 4e9}.get(dtype, 60000)
    offset = -1500 if dtype == "int16" else 0  # negative values too
    data = (rng.random((5, 40, 44)) * scale + offset).astype(dtype)  # 5 planes in chunks of 2: three chunks in flight
    host = _host(data, tiny_model, axes="ZYX")
    monkeypatch.setattr("napari_gama_ir.engine.plan.CHUNK_BYTES", 2 * 4 * 40 * 44)
    plain = engine._settings
    monkeypatch.setattr(engine, "_settings", lambda plan: dataclasses.replace(plain(plan), chunk_path="device"))
    before = data.copy()
    out = _host(data, tiny_model, axes="ZYX")
    np.testing.assert_array_equal(data, before)
    assert out.dtype == np.dtype(dtype) and out.shape == data.shape
    diff = np.abs(out.astype(np.float64) - host.astype(np.float64))
    # float32 arithmetic in a different order: integers may round the other way (1 step, or a few float32
    # ulps of 4e9 for uint32), floats differ in their last bits
    assert diff.max() <= (max(1, 1e-6 * scale) if np.dtype(dtype).kind in "ui" else 1e-5 * scale)


def test_resident_extremes_of_uint16_survive_the_signed_transport():
    raw = np.array([0, 1, 32767, 32768, 65534, 65535], np.uint16).reshape(1, 1, 2, 3)
    x = resident.upload(raw, torch.device("cpu"))
    assert x.dtype == torch.float32 and x.flatten().tolist() == [0, 1, 32767, 32768, 65534, 65535]
    back = resident.PendingBlock(resident.cast(x + 0.4, "uint16"), "uint16").result()
    np.testing.assert_array_equal(back, raw)
    over = resident.PendingBlock(resident.cast(x * 2 - 10, "uint16"), "uint16").result()  # clipped, not wrapped
    np.testing.assert_array_equal(over.ravel(), [0, 0, 65524, 65526, 65535, 65535])


@pytest.mark.parametrize("channels_of_model", [1, 3])
def test_resident_rgb_matches_host(make_tiny, rgb, monkeypatch, channels_of_model):
    net = make_tiny(in_channels=channels_of_model)  # 1: the model runs on each channel separately
    host = restore(rgb, net, axes="YXC", **OPTS)
    plain = engine._settings
    monkeypatch.setattr(engine, "_settings", lambda plan: dataclasses.replace(plain(plan), chunk_path="device"))
    out = restore(rgb, net, axes="YXC", **OPTS)
    assert out.shape == rgb.shape and out.dtype == np.uint8
    assert np.abs(out.astype(int) - host.astype(int)).max() <= 1


def test_resident_rejects_nan(tiny_model, force_resident):
    data = np.ones((2, 32, 32), np.float32)
    data[1, 3, 4] = np.nan
    with pytest.raises(InvalidInputError, match="NaN"):
        restore(data, tiny_model, axes="ZYX", **OPTS)


def test_resident_progress_reaches_total(tiny_model, noisy_zyx, force_resident):
    seen = []
    restore(noisy_zyx, tiny_model, axes="ZYX", progress=lambda d, t: seen.append((d, t)), **OPTS)
    assert seen[-1][0] == seen[-1][1] > 0 and [d for d, _ in seen] == sorted(d for d, _ in seen)


@pytest.mark.parametrize("out_dtype", ["uint8", "int16", "uint32", "uint64", "int64", "float16", "float64"])
def test_resident_output_dtypes_match_host(tiny_model, noisy_zyx, monkeypatch, out_dtype):
    host = restore(noisy_zyx, tiny_model, axes="ZYX", dtype=out_dtype, **OPTS)
    plain = engine._settings
    monkeypatch.setattr(engine, "_settings", lambda plan: dataclasses.replace(plain(plan), chunk_path="device"))
    out = restore(noisy_zyx, tiny_model, axes="ZYX", dtype=out_dtype, **OPTS)
    assert out.dtype == np.dtype(out_dtype)
    assert np.abs(out.astype(np.float64) - host.astype(np.float64)).max() <= (1 if out_dtype[0] in "ui" else 0.5)


def test_resident_takes_a_float64_normalizer_and_read_only_input(tiny_model, noisy_zyx, force_resident):
    from napari_gama_ir.io.normalize import Normalizer

    norm = Normalizer(np.array([150.0]), np.array([250.0]))  # float64 bounds, built directly
    data = noisy_zyx.copy()
    data.flags.writeable = False
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = restore(data, tiny_model, axes="ZYX", normalizer=norm, **OPTS)
    assert out.shape == data.shape and out.dtype == data.dtype


def test_plan_keeps_huge_planes_on_the_host(tiny_model, monkeypatch):
    """On a GPU a chunk may take a quarter of the free memory; a plane larger than that goes through the host
    path (tiles still run on the GPU), and smaller planes come in chunks that fit."""
    from napari_gama_ir import plan_restore
    from napari_gama_ir.engine import plan as plan_module

    data = np.zeros((40, 256, 256), np.uint16)
    plane = 4 * 256 * 256
    monkeypatch.setattr(plan_module, "free_gpu_bytes", lambda dev: 6 * plane * 4 * 10)  # room for 10 planes
    roomy = plan_restore(data, tiny_model, axes="ZYX", device="cpu")
    assert roomy.chunk_path == "auto" and roomy.chunk_planes == 10
    monkeypatch.setattr(plan_module, "free_gpu_bytes", lambda dev: plane)  # not even one plane
    tight = plan_restore(data, tiny_model, axes="ZYX", device="cpu")
    assert tight.chunk_path == "host" and tight.chunk_planes == 1
    assert not engine._settings(tight).resident


def test_self_ensemble_on_the_accelerator_path_matches_the_host_path(tiny_model, rng, monkeypatch):
    data = rng.random((2, 40, 44), dtype=np.float32)
    host = _host(data, tiny_model, axes="ZYX", self_ensemble=True)
    assert np.abs(host - _host(data, tiny_model, axes="ZYX")).max() > 1e-3
    plain = engine._settings
    monkeypatch.setattr(engine, "_settings", lambda plan: dataclasses.replace(plain(plan), chunk_path="device"))
    np.testing.assert_allclose(_host(data, tiny_model, axes="ZYX", self_ensemble=True), host, rtol=0, atol=1e-5)
