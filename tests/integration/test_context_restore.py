"""Context models end to end: restore() gives each plane the network's output on it and its neighbours
(reflected at the stack's ends) through tiles, chunks, dask and the CLI; finetune(context=k) trains one;
every bad input is a typed error, never a silent plane-by-plane restore."""

from __future__ import annotations

import json

import dask.array as da
import numpy as np
import pytest
import tifffile
import torch

from napari_gama_ir import InvalidInputError, finetune, load_model, restore, save_model
from napari_gama_ir.cli import main
from napari_gama_ir.engine.plan import plan_restore
from napari_gama_ir.engine.restore import TileSettings, iter_tiles
from napari_gama_ir.model.context import add_context


def _context_model(make_tiny, planes: int, axis: str = "Z", channels: int = 1):
    """A context model whose neighbour weights are not zero (as after training)."""
    net = add_context(make_tiny(seed=1, in_channels=channels), planes, axis)
    with torch.no_grad():
        net.intro.weight.add_(0.05 * torch.randn(net.intro.weight.shape, generator=torch.Generator().manual_seed(2)))
    return net


def _stack(shape, seed=0):
    rng = np.random.default_rng(seed)
    return (1000 + 200 * rng.random(shape)).astype(np.uint16)


def _drain(gen):
    while True:
        try:
            next(gen)
        except StopIteration as done:
            return done.value


def test_whole_planes_are_the_network_on_each_plane_and_its_reflected_neighbours(make_tiny):
    net = _context_model(make_tiny, 2)
    stack = _stack((5, 32, 40))
    plan = plan_restore(stack, net, axes="ZYX", precision="fp32", device="cpu")
    assert "using 2 neighbouring planes on each side along Z (reflected at the ends)" in plan.describe()
    got = restore(stack, net, axes="ZYX", precision="fp32", device="cpu", dtype="float32")
    norm = plan.normalizer
    x = norm.forward(stack[:, None])  # Z, 1, Y, X
    order = [[2, 1, 0, 1, 2], [1, 0, 1, 2, 3], [0, 1, 2, 3, 4], [1, 2, 3, 4, 3], [2, 3, 4, 3, 2]]  # by hand
    with torch.no_grad():
        want = net(torch.from_numpy(np.stack([x[i, 0] for i in order]).astype(np.float32))).numpy()
    assert np.allclose(got, norm.inverse(want)[:, 0], rtol=0, atol=1e-3)


@pytest.mark.parametrize("lazy", [False, True])
def test_tiles_and_chunks_read_each_chunk_with_its_neighbours(make_tiny, monkeypatch, lazy):
    net = _context_model(make_tiny, 1)
    stack = _stack((6, 40, 44), seed=1)
    monkeypatch.setattr("napari_gama_ir.engine.plan.CHUNK_BYTES", 2 * 3 * 4 * 40 * 44)  # 2 planes (x 3 gathered) per chunk
    kwargs = dict(axes="ZYX", tile=32, overlap=8, precision="fp32", device="cpu", dtype="float32")
    plan = plan_restore(stack, net, **kwargs)
    assert plan.chunk_planes == 2 and plan.tiles_per_image > 1
    data = da.from_array(stack, chunks=(1, 40, 44)) if lazy else stack
    got = restore(data, net, **kwargs)
    got = got.compute() if lazy else got
    x = plan.normalizer.forward(stack[:, None]).astype(np.float32)
    order = [[1, 0, 1], [0, 1, 2], [1, 2, 3], [2, 3, 4], [3, 4, 5], [4, 5, 4]]
    gathered = np.stack([x[i, 0] for i in order])  # 6 x 3 x Y x X, by hand
    settings = TileSettings(plan.tile, plan.overlap, 1, "cpu", "fp32", align=plan.align)
    want = plan.normalizer.inverse(_drain(iter_tiles(net, gathered, settings)))[:, 0]
    assert np.allclose(got, want, rtol=0, atol=1e-3)


def test_the_device_path_gathers_neighbours_as_the_host_path_does(make_tiny, monkeypatch):
    import dataclasses

    from napari_gama_ir.engine import restore as engine

    net = _context_model(make_tiny, 1)
    stack = _stack((5, 2, 32, 32), seed=4)  # Z, C, Y, X with a 1-channel model: each channel on its own
    monkeypatch.setattr("napari_gama_ir.engine.plan.CHUNK_BYTES", 2 * 3 * 4 * 2 * 32 * 32)
    kwargs = dict(axes="ZCYX", precision="fp32", device="cpu", dtype="float32")
    host = restore(stack, net, **kwargs)
    plain = engine._settings
    monkeypatch.setattr(engine, "_settings", lambda plan: dataclasses.replace(plain(plan), chunk_path="device"))
    assert np.allclose(restore(stack, net, **kwargs), host, rtol=0, atol=1e-3)  # float32 rounding at ~1000


def test_a_t_model_on_tzyx_takes_neighbours_along_t_and_keeps_the_axes(make_tiny):
    net = _context_model(make_tiny, 1, "T")
    stack = _stack((3, 2, 32, 32), seed=2)  # T, Z, Y, X
    got = restore(stack, net, axes="TZYX", precision="fp32", device="cpu", dtype="float32")
    # frame t, plane z is restored from frames t-1, t, t+1 of plane z: the same as a TYX stack of that plane
    for z in range(2):
        alone = restore(np.ascontiguousarray(stack[:, z]), net, axes="TYX", precision="fp32", device="cpu", dtype="float32",
                        normalizer=plan_restore(stack, net, axes="TZYX").normalizer)  # fmt: skip
        assert np.allclose(got[:, z], alone, rtol=0, atol=1e-3)


def test_a_1_channel_context_model_restores_each_channel_with_its_own_neighbours(make_tiny):
    net = _context_model(make_tiny, 1)
    stack = _stack((4, 2, 32, 32), seed=3)  # Z, C, Y, X
    got = restore(stack, net, axes="ZCYX", precision="fp32", device="cpu", dtype="float32")
    for c in range(2):
        alone = restore(np.ascontiguousarray(stack[:, c]), net, axes="ZYX", precision="fp32", device="cpu", dtype="float32")
        assert np.allclose(got[:, c], alone, rtol=0, atol=2e-2)  # each channel normalised on its own here and there


@pytest.mark.parametrize("data, axes, match", [
    (np.zeros((32, 32), np.uint16), "YX", "single 2-D image"),
    (np.zeros((4, 32, 32), np.uint16), "TYX", "has no Z axis.*axes= if its T axis is really Z"),
    (np.zeros((2, 32, 32), np.uint16), "ZYX", "has 2 plane.*at least 3"),
    (np.zeros((32, 32, 3), np.uint8), "YXC", "single 2-D image"),
])  # fmt: skip
def test_a_context_model_refuses_data_it_cannot_restore(make_tiny, data, axes, match):
    net = _context_model(make_tiny, 2)
    with pytest.raises(InvalidInputError, match=match):
        restore(data, net, axes=axes)


def test_finetune_with_context_trains_a_context_model_that_restores_stacks(tmp_path, tiny_model):
    rng = np.random.default_rng(0)
    zz, yy, xx = np.mgrid[:6, :48, :48]
    clean = (100 + 50 * np.sin(yy / 5 + zz / 3) * np.cos(xx / 7)).astype(np.float32)
    noisy = (clean + rng.normal(0, 10, clean.shape)).astype(np.float32)
    kwargs = dict(base=tiny_model, steps=3, patch_size=16, batch_size=2, axes="ZYX", val_crop=32)
    for mode, target in (("self-supervised", None), ("blind-spot", None), ("supervised", clean)):
        net = finetune(noisy, target, mode=mode, context=1, **kwargs)
        assert net.card.context == {"planes": 1, "axis": "Z"} and net.context == 1, mode
        assert net.card.training["context_start"] == "mean", mode
    centre = finetune(noisy, mode="self-supervised", context=1, context_start="centre", **kwargs)
    assert centre.card.training["context_start"] == "centre"
    loaded = load_model(save_model(net, tmp_path / "ctx"))
    out = restore(noisy, loaded, axes="ZYX")
    assert out.shape == noisy.shape
    again = finetune(noisy, mode="self-supervised", **{**kwargs, "base": loaded}, context=1)  # continues it
    assert again.card.context == {"planes": 1, "axis": "Z"} and "context_start" not in again.card.training
    with pytest.raises(InvalidInputError, match="sees 1 neighbouring plane.*context 2"):
        finetune(noisy, mode="self-supervised", **{**kwargs, "base": loaded}, context=2)


@pytest.mark.parametrize("data, options, match", [
    (np.zeros((48, 48), np.float32), {"context": 1}, "single 2-D image"),
    (np.zeros((6, 48, 48), np.float32), {"context": 1, "context_axis": "T", "axes": "ZYX"}, "has no T axis"),
    (np.zeros((2, 48, 48), np.float32), {"context": 2, "axes": "ZYX"}, "has 2 plane.*at least 3"),
    (np.zeros((6, 48, 48), np.float32), {"context": -1, "axes": "ZYX"}, "context must be an int 0..7"),
    (np.zeros((6, 48, 48), np.float32), {"context": "2", "axes": "ZYX"}, "context must be an int 0..7"),
    (np.zeros((6, 48, 48), np.float32), {"context": 1, "context_axis": "X", "axes": "ZYX"}, "context_axis must be one of"),
    (np.zeros((6, 48, 48), np.float32), {"context": 1, "context_start": "zeros", "axes": "ZYX"}, "context_start must be one of"),
])  # fmt: skip
def test_finetune_refuses_context_it_cannot_use(tiny_model, data, options, match):
    with pytest.raises(InvalidInputError, match=match):
        finetune(data, mode="self-supervised", base=tiny_model, steps=1, **options)


def test_cli_trains_and_restores_with_context(tmp_path, user_models_dir, capsys):
    rng = np.random.default_rng(0)
    zz, yy, xx = np.mgrid[:5, :48, :48]
    stack = (1000 + 400 * np.sin(yy / 5 + zz / 3) * np.cos(xx / 7) + rng.normal(0, 50, zz.shape)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "stack.tif", stack, imagej=True, metadata={"axes": "ZYX"})
    argv = ["train", "--noisy", str(tmp_path / "stack.tif"), "--base", "scratch:tiny", "--steps", "2", "--patch-size", "16",
            "--batch-size", "2", "--context", "1", "--context-axis", "Z", "-o", "cli-ctx", "-q"]  # fmt: skip
    assert main(argv) == 0
    card = json.loads((user_models_dir / "cli-ctx.json").read_text())
    assert card["context"] == {"planes": 1, "axis": "Z"}
    capsys.readouterr()
    assert main(["restore", str(tmp_path / "stack.tif"), "-o", str(tmp_path / "out.tif"), "--model", "cli-ctx", "-q"]) == 0
    assert "using 1 neighbouring plane on each side along Z" in capsys.readouterr().err
    assert tifffile.imread(tmp_path / "out.tif").shape == stack.shape
    tifffile.imwrite(tmp_path / "plane.tif", stack[0])
    assert main(["restore", str(tmp_path / "plane.tif"), "-o", str(tmp_path / "o2.tif"), "--model", "cli-ctx", "-q"]) == 2
    assert "single 2-D image" in capsys.readouterr().err
    assert main(["models", "cli-ctx"]) == 0
    assert "1 neighbouring plane(s) on each side along Z" in capsys.readouterr().out


def test_quality_estimate_restores_consecutive_planes_along_the_models_axis(make_tiny):
    from napari_gama_ir import estimate_quality

    rng = np.random.default_rng(0)
    zz, yy, xx = np.mgrid[:7, :64, :64]
    noisy = (100 + 50 * np.sin(yy / 5 + zz / 3) * np.cos(xx / 7) + rng.normal(0, 10, zz.shape)).astype(np.float32)
    for net, data, axes in ((_context_model(make_tiny, 1), noisy, "ZYX"), (_context_model(make_tiny, 1, "T"), noisy[:, None], "TZYX")):
        q = estimate_quality(data, net, axes=axes)
        assert 5 < q.psnr() < 80 and np.isfinite(q.mse)
    with pytest.raises(InvalidInputError, match="has no T axis"):
        estimate_quality(noisy, _context_model(make_tiny, 1, "T"), axes="ZYX")


def test_self_supervised_fine_tuning_of_a_fine_tuned_model_estimates_its_quality(tiny_model):
    """A fine-tuned model's card records its noise as text ("real (as given)"); the quality estimate that
    picks self-supervised checkpoints reads it without failing (2-D and context runs alike)."""
    rng = np.random.default_rng(1)
    noisy = (100 + rng.normal(0, 10, (4, 48, 48))).astype(np.float32)
    kwargs = dict(mode="self-supervised", steps=2, patch_size=16, batch_size=2, axes="ZYX", val_crop=32)
    once = finetune(noisy, base=tiny_model, **kwargs)
    assert once.card.training["noise"] == "real (as given)"
    twice = finetune(noisy, base=once, **kwargs)
    assert "estimated_psnr_after" in twice.card.metrics["validation"]


def test_restore_context_option_is_binning_before_a_2d_model(make_tiny, tmp_path, capsys):
    net = make_tiny(seed=2)
    stack = (1000 + 300 * np.random.default_rng(1).random((6, 32, 32))).astype(np.uint16)
    padded = np.pad(stack.astype(np.float32), ((1, 1), (0, 0), (0, 0)), mode="reflect")
    binned = (padded[:-2] + padded[1:-1] + padded[2:]) / 3
    options = dict(axes="ZYX", precision="fp32", device="cpu", dtype="float32")
    got = restore(stack, net, context=1, **options)
    np.testing.assert_allclose(got, restore(binned, net, **options), rtol=1e-5, atol=1e-2)
    assert not np.allclose(got, restore(stack, net, **options), atol=1)  # not plane by plane
    assert net.card.context == {} and net.in_channels == 1  # the caller's model is left as it was
    tzyx = np.stack([stack, stack[::-1], stack // 2]).astype(np.float32)  # 3 frames of 6 planes
    t_options = {**options, "axes": "TZYX"}
    padded = np.pad(tzyx, ((1, 1), (0, 0), (0, 0), (0, 0)), mode="reflect")
    along_t = restore(tzyx, net, context=1, context_axis="T", **t_options)  # neighbours along T, not Z
    np.testing.assert_allclose(along_t, restore((padded[:-2] + padded[1:-1] + padded[2:]) / 3, net, **t_options), rtol=1e-5, atol=1e-2)
    tifffile.imwrite(tmp_path / "stack.tif", stack, imagej=True, metadata={"axes": "ZYX"})
    assert main(["restore", str(tmp_path / "stack.tif"), "-o", str(tmp_path / "out.tif"), "--model", "fluorescence", "--context", "1"]) == 0
    assert "using 1 neighbouring plane on each side along Z" in capsys.readouterr().err


@pytest.mark.parametrize("data, options, match", [
    (np.zeros((48, 48), np.float32), {"context": 1}, "single 2-D image"),
    (np.zeros((4, 48, 48), np.float32), {"context": 1, "axes": "TYX", "context_axis": "Z"}, "no Z axis"),
    (np.zeros((2, 48, 48), np.float32), {"context": 2, "axes": "ZYX"}, "at least 3"),
    (np.zeros((4, 48, 48), np.float32), {"context": -1, "axes": "ZYX"}, "an int 0..7"),
    (np.zeros((4, 48, 48), np.float32), {"context": 1, "axes": "ZYX", "context_axis": "Y"}, "context_axis must be one of"),
])  # fmt: skip
def test_restore_refuses_context_the_data_cannot_give(tiny_model, data, options, match):
    with pytest.raises(InvalidInputError, match=match):
        restore(data, tiny_model, device="cpu", **options)


def test_restore_context_option_with_a_context_model_must_be_its_own(make_tiny):
    wide = add_context(make_tiny(), 1, "Z")
    stack = np.random.default_rng(0).random((4, 32, 32)).astype(np.float32)
    same = restore(stack, wide, axes="ZYX", context=1, device="cpu", precision="fp32")
    assert np.array_equal(same, restore(stack, wide, axes="ZYX", device="cpu", precision="fp32"))
    with pytest.raises(InvalidInputError, match="accepted: context=0 .*or context=1"):
        restore(stack, wide, axes="ZYX", context=2, device="cpu")


def test_quality_estimate_of_binning_restores_runs_of_planes(make_tiny):
    from napari_gama_ir import estimate_quality

    rng = np.random.default_rng(3)
    clean = 0.5 + 0.3 * np.sin(np.mgrid[:6, :64, :64][1] / 5)
    noisy = (clean + rng.normal(0, 0.1, clean.shape)).astype(np.float32)
    net = make_tiny(seed=5)
    binned = estimate_quality(noisy, net, axes="ZYX", context=1, region=64, device="cpu")
    plain = estimate_quality(noisy, net, axes="ZYX", region=64, device="cpu")
    assert binned.model_name == plain.model_name and binned.mse != plain.mse and np.isfinite(binned.mse)
