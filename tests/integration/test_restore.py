"""restore() on every kind of input (numpy, dask, memmap, zarr, TIFF and zarr paths): same shape, axes,
dtype and metadata out; numpy in gives numpy, lazy in gives lazy; files are streamed and named by the
returned path, or fill a caller's zarr array in place; the input is never modified; progress counts up to
its total and its first step carries the plan; a stack's normalizer restores a plane as in the stack; cancel
leaves nothing; an out-of-memory forward pass is retried with smaller batches and gives the same result."""

from __future__ import annotations

import threading

import dask.array as da
import numpy as np
import pytest
import tifffile
import torch
import zarr

from napari_gama_ir import RestoreCancelled, plan_restore, restore, save_model
from napari_gama_ir.engine import restore as engine
from napari_gama_ir.errors import InvalidInputError

OPTS = dict(tile=32, overlap=8, batch_size=4)  # several tiles per plane, several batches


def test_numpy_in_numpy_out(tiny_model, noisy_2d):
    before = noisy_2d.copy()
    out = restore(noisy_2d, tiny_model, **OPTS)
    assert isinstance(out, np.ndarray) and out.shape == noisy_2d.shape and out.dtype == noisy_2d.dtype
    np.testing.assert_array_equal(noisy_2d, before)
    assert not np.array_equal(out, noisy_2d)  # the network did something
    np.testing.assert_array_equal(restore(noisy_2d, tiny_model, **OPTS), out)  # deterministic


def test_restore_by_model_name(tiny_model, noisy_2d, user_models_dir):
    save_model(tiny_model, "test-gray")
    np.testing.assert_array_equal(restore(noisy_2d, "test-gray", **OPTS), restore(noisy_2d, tiny_model, **OPTS))


def test_caller_model_is_left_as_it_was(make_tiny, noisy_2d):
    net = make_tiny(mean_mode="local", local_size=24)
    restore(noisy_2d, net, mean_mode="global", **OPTS)
    assert {m.mean_mode for m in net.modules() if hasattr(m, "mean_mode")} == {"local"}


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "int16", "float32", "float64"])
def test_dtype_is_kept(tiny_model, rng, dtype):
    data = (rng.random((2, 24, 20)) * 200).astype(dtype)
    before = data.copy()
    out = restore(data, tiny_model, axes="ZYX")
    assert out.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(data, before)


def test_dtype_override(tiny_model, noisy_2d):
    as_float = restore(noisy_2d, tiny_model, dtype="float32", **OPTS)
    assert as_float.dtype == np.float32
    as_int = restore(noisy_2d, tiny_model, **OPTS)
    np.testing.assert_array_equal(as_int, np.clip(np.rint(as_float), 0, 65535).astype(np.uint16))


def test_float_input_that_is_already_float32_is_not_modified(tiny_model, rng):
    data = rng.random((30, 34), dtype=np.float32)
    before = data.copy()
    restore(data, tiny_model, tile=16, overlap=4)
    np.testing.assert_array_equal(data, before)


def test_dask_in_lazy_out_equals_numpy(tiny_model, noisy_zyx):
    lazy = da.from_array(noisy_zyx, chunks=(1, 20, 44))
    out = restore(lazy, tiny_model, **OPTS)
    assert isinstance(out, da.Array) and out.shape == noisy_zyx.shape and out.dtype == noisy_zyx.dtype
    np.testing.assert_array_equal(out.compute(), restore(noisy_zyx, tiny_model, **OPTS))


def test_memmap_in(tiny_model, noisy_zyx, tmp_path):
    mm = np.memmap(tmp_path / "stack.raw", dtype=noisy_zyx.dtype, mode="w+", shape=noisy_zyx.shape)
    mm[:] = noisy_zyx
    mm.flush()
    ro = np.memmap(tmp_path / "stack.raw", dtype=noisy_zyx.dtype, mode="r", shape=noisy_zyx.shape)
    out = restore(ro, tiny_model, **OPTS)
    assert type(out) is np.ndarray
    np.testing.assert_array_equal(out, restore(noisy_zyx, tiny_model, **OPTS))


def test_zarr_array_in(tiny_model, noisy_zyx, tmp_path):
    z = zarr.open_array(str(tmp_path / "in.zarr"), mode="w", shape=noisy_zyx.shape, chunks=(1, 40, 44), dtype=noisy_zyx.dtype)
    z[:] = noisy_zyx
    out = restore(z, tiny_model, **OPTS)
    assert isinstance(out, da.Array)
    np.testing.assert_array_equal(np.asarray(out), restore(noisy_zyx, tiny_model, **OPTS))


def test_zarr_path_in_reads_its_axes(tiny_model, noisy_zyx, tmp_path):
    z = zarr.open_array(str(tmp_path / "in.zarr"), mode="w", shape=noisy_zyx.shape, dtype=noisy_zyx.dtype)
    z[:] = noisy_zyx
    z.attrs["_ARRAY_DIMENSIONS"] = ["Z", "Y", "X"]
    out = restore(str(tmp_path / "in.zarr"), tiny_model, **OPTS)
    np.testing.assert_array_equal(out.compute(), restore(noisy_zyx, tiny_model, **OPTS))


def test_tiff_path_to_tiff_keeps_axes_resolution_and_spacing(tiny_model, noisy_zyx, tmp_path):
    src, dst = tmp_path / "in.tif", tmp_path / "out.tif"
    tifffile.imwrite(src, noisy_zyx, imagej=True, resolution=(2.0, 4.0), metadata={"axes": "ZYX", "spacing": 0.5, "unit": "um"})
    lazy = restore(src, tiny_model, **OPTS)
    assert isinstance(lazy, da.Array)
    expected = restore(noisy_zyx, tiny_model, **OPTS)
    np.testing.assert_array_equal(lazy.compute(), expected)
    assert restore(src, tiny_model, out=dst, **OPTS) == str(dst)
    with tifffile.TiffFile(dst) as tif:
        assert tif.series[0].axes == "ZYX"
        np.testing.assert_array_equal(tif.asarray(), expected)
        tags = tif.pages[0].tags
        assert tags["XResolution"].value == (2, 1) and tags["YResolution"].value == (4, 1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.tif", "out.tif"]


def test_pixel_size_survives_restored_files_restored_again(tiny_model, noisy_zyx, tmp_path):
    """spacing/unit of an ImageJ TIFF go into the output TIFF and zarr, and are read back from both."""
    from napari_gama_ir.io.files import open_input

    src = tmp_path / "in.tif"
    tifffile.imwrite(src, noisy_zyx, imagej=True, resolution=(2.0, 4.0), metadata={"axes": "ZYX", "spacing": 0.5, "unit": "um"})
    first = restore(src, tiny_model, out=tmp_path / "once.tif", **OPTS)
    as_zarr = restore(first, tiny_model, out=tmp_path / "twice.zarr", **OPTS)
    assert zarr.open_array(as_zarr, mode="r").attrs["spacing"] == 0.5
    again = restore(as_zarr, tiny_model, out=tmp_path / "thrice.tif", **OPTS)
    for path in (first, as_zarr, again):
        meta = open_input(path).metadata
        assert (meta["spacing"], meta["unit"]) == (0.5, "um"), path


def test_numpy_to_tiff_and_zarr_files(tiny_model, noisy_zyx, tmp_path):
    expected = restore(noisy_zyx, tiny_model, **OPTS)
    tif = restore(noisy_zyx, tiny_model, out=tmp_path / "o.tiff", **OPTS)
    assert tif == str(tmp_path / "o.tiff")
    np.testing.assert_array_equal(tifffile.imread(tif), expected)
    store = restore(noisy_zyx, tiny_model, out=str(tmp_path / "o.zarr"), **OPTS)
    assert store == str(tmp_path / "o.zarr")
    z = zarr.open_array(store, mode="r")
    assert z.dtype == noisy_zyx.dtype and list(z.attrs["_ARRAY_DIMENSIONS"]) == ["Z", "Y", "X"]
    np.testing.assert_array_equal(z[:], expected)
    # with overwrite=True, writing again replaces the store
    restore(noisy_zyx[:, ::-1], tiny_model, out=str(tmp_path / "o.zarr"), overwrite=True, **OPTS)
    assert not np.array_equal(zarr.open_array(store, mode="r")[:], expected)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.tiff", "o.zarr"]


def test_a_callers_zarr_array_is_filled_in_place_and_returned(tiny_model, noisy_zyx, tmp_path):
    z = zarr.open_array(str(tmp_path / "mine.zarr"), mode="w", shape=noisy_zyx.shape, chunks=(1, 40, 44), dtype=np.uint16)
    assert restore(noisy_zyx, tiny_model, out=z, **OPTS) is z
    np.testing.assert_array_equal(z[:], restore(noisy_zyx, tiny_model, **OPTS))
    assert [p.name for p in tmp_path.iterdir()] == ["mine.zarr"]  # written where it is: no temporary sibling
    with pytest.raises(ValueError, match=r"zarr array of shape \(3, 40, 40\)"):
        restore(noisy_zyx, tiny_model, out=zarr.zeros((3, 40, 40), dtype=np.uint16))
    with pytest.raises(TypeError, match="zarr array of dtype float32; it must have the output dtype uint16"):
        restore(noisy_zyx, tiny_model, out=zarr.zeros(noisy_zyx.shape, dtype=np.float32))


def test_a_stacks_normalizer_restores_one_plane_as_the_whole_stack_does(tiny_model, noisy_zyx):
    stack = noisy_zyx.copy()
    stack[0] //= 4  # a darker plane moves the stack's percentiles away from plane 1's own
    normalizer = plan_restore(stack, tiny_model, **OPTS).normalizer
    plane = restore(stack[1], tiny_model, axes="YX", normalizer=normalizer, **OPTS)
    np.testing.assert_allclose(plane, restore(stack, tiny_model, **OPTS)[1], atol=1)  # batching may round apart
    with pytest.raises(ValueError, match="normalizer must be a Normalizer"):
        restore(stack[1], tiny_model, normalizer=(0, 1))


def test_the_first_progress_step_carries_the_plan(tiny_model, noisy_zyx):
    steps = engine.iter_restore(noisy_zyx, tiny_model, **OPTS)
    first = next(steps)
    assert first.plan.model_name == tiny_model.card.name and first.message == first.plan.describe()
    assert next(steps).plan is None
    steps.close()


def test_rgb_tiff_stays_rgb(tiny_rgb_model, rgb, tmp_path):
    out = restore(rgb, tiny_rgb_model, out=tmp_path / "rgb.tif", tile=16, overlap=4)
    with tifffile.TiffFile(out) as tif:
        assert tif.series[0].shape == rgb.shape and tif.pages[0].photometric == tifffile.PHOTOMETRIC.RGB
        np.testing.assert_array_equal(tif.asarray(), restore(rgb, tiny_rgb_model, tile=16, overlap=4))


def test_progress_counts_up_to_the_total(tiny_model, noisy_zyx):
    calls = []
    restore(noisy_zyx, tiny_model, progress=lambda done, total: calls.append((done, total)), **OPTS)
    done = [d for d, _ in calls]
    totals = {t for _, t in calls}
    assert len(totals) == 1 and done[0] == 0 and done[-1] == totals.pop()
    assert done == sorted(done) and len(set(done)) == len(done)
    assert len(calls) > 3


@pytest.mark.parametrize("out", [None, "o.tif", "o.zarr"])
def test_cancel_after_the_first_batch_leaves_nothing(tiny_model, noisy_zyx, tmp_path, out):
    cancel = threading.Event()
    seen = []

    def progress(done, total):
        seen.append(done)
        if done > 0:
            cancel.set()

    target = None if out is None else tmp_path / out
    with pytest.raises(RestoreCancelled):
        restore(noisy_zyx, tiny_model, out=target, progress=progress, cancel=cancel, **OPTS)
    assert seen[-1] > 0 and seen[-1] < 3 * 4  # stopped after one batch of 4 of 3 x 4 tiles
    assert list(tmp_path.iterdir()) == []  # neither the file nor a hidden .partial one


def test_iter_restore_close_removes_partial_output(tiny_model, noisy_zyx, tmp_path):
    gen = engine.iter_restore(noisy_zyx, tiny_model, out=tmp_path / "o.tif", **OPTS)
    next(gen), next(gen)
    gen.close()
    assert list(tmp_path.iterdir()) == []


def test_error_during_restore_leaves_no_file(tiny_model, noisy_zyx, tmp_path, monkeypatch):
    calls = []

    def failing(net, batch, settings):  # a generator, as engine._predict is
        calls.append(1)
        if len(calls) > 1:
            raise RuntimeError("disk on fire")
        return batch
        yield

    monkeypatch.setattr(engine, "_predict", failing)
    with pytest.raises(RuntimeError, match="disk on fire"):
        restore(noisy_zyx, tiny_model, out=tmp_path / "o.zarr", **OPTS)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("error", [torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB"), RuntimeError("CUDA out of memory")])
def test_out_of_memory_halves_the_batch_and_gives_the_same_result(tiny_model, noisy_zyx, monkeypatch, error):
    expected = restore(noisy_zyx, tiny_model, **{**OPTS, "batch_size": 1})
    real = engine._predict
    sizes = []

    def small_gpu(net, batch, settings):
        sizes.append(len(batch))
        if len(batch) > 1:
            raise error
        return real(net, batch, settings)

    monkeypatch.setattr(engine, "_predict", small_gpu)
    calls = []
    out = restore(noisy_zyx, tiny_model, progress=lambda d, t: calls.append((d, t)), **{**OPTS, "batch_size": 8})
    np.testing.assert_array_equal(out, expected)
    assert sizes[:3] == [8, 4, 2] and set(sizes[3:]) == {1}
    assert calls[-1][0] == calls[-1][1]


def test_out_of_memory_with_batch_one_and_small_tiles_is_reported(tiny_model, noisy_2d, monkeypatch):
    def no_gpu(net, batch, settings):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(engine, "_predict", no_gpu)
    with pytest.raises(ValueError, match="out of memory"):
        restore(noisy_2d, tiny_model, batch_size=2)


def test_out_of_memory_shrinks_whole_plane_tiles(tiny_model, rng, monkeypatch):
    data = rng.poisson(100, (150, 140)).astype(np.uint16)
    real = engine._predict
    tiles = []

    def small_gpu(net, batch, settings):
        tiles.append(batch.shape[-2:])
        if batch.shape[-1] > 80:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        return real(net, batch, settings)

    monkeypatch.setattr(engine, "_predict", small_gpu)
    out = restore(data, tiny_model, batch_size=1)  # auto: one 150 x 140 tile, no overlap
    assert out.shape == data.shape
    assert tiles[0] == (152, 140)  # the whole plane, padded to a multiple of 4
    assert set(tiles[1:]) == {(76, 72)}  # then halved (and aligned)
    # 3 x 3 tiles: the halved tiles overlap (by 20 px) to blend; without overlap 2 x 2 would cover the plane
    assert len(tiles) - 1 == 9


@pytest.mark.parametrize(
    "axes,shape",
    [("CYX", (2, 30, 26)), ("TZYX", (2, 3, 20, 18)), ("TCZYX", (2, 2, 2, 20, 18)), ("ZYXC", (2, 20, 18, 2)), ("XY", (26, 30))],
)  # fmt: skip
def test_axes_orders_come_back_right(tiny_model, rng, axes, shape):
    data = rng.poisson(100, shape).astype(np.uint16)
    out = restore(data, tiny_model, axes=axes, tile=16, overlap=4)
    assert out.shape == shape and out.dtype == data.dtype
    # the same stack in canonical order (stack axes, then channels, then YX) restores to the same values
    order = [axes.index(a) for a in "TZCYX" if a in axes]
    canonical_axes = "".join(axes[i] for i in order)
    again = restore(data.transpose(order), tiny_model, axes=canonical_axes, tile=16, overlap=4)
    np.testing.assert_array_equal(again, out.transpose(order))


def test_channels_of_a_one_channel_model_are_restored_separately(tiny_model, rng):
    data = rng.poisson(100, (2, 2, 3, 20, 18)).astype(np.uint16)  # TCZYX
    out = restore(data, tiny_model, axes="TCZYX", tile=16, overlap=4)
    for c in range(2):
        alone = restore(data[:, c], tiny_model, axes="TZYX", tile=16, overlap=4)
        np.testing.assert_array_equal(out[:, c], alone)


def test_rgb_with_an_rgb_model(tiny_rgb_model, rgb):
    out = restore(rgb, tiny_rgb_model, tile=16, overlap=4)
    assert out.shape == rgb.shape and out.dtype == np.uint8
    # joint: channels mix inside the network, so a channel alone restores differently
    assert not np.array_equal(out[..., 0], out[..., 1])


def test_rgb_with_a_gray_model_restores_each_channel(tiny_model, rgb):
    out = restore(rgb, tiny_model, tile=16, overlap=4)
    assert out.shape == rgb.shape and out.dtype == np.uint8
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], restore(rgb[..., c], tiny_model, tile=16, overlap=4))


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_ome_zarr_group_in(tiny_model, noisy_zyx, tmp_path, zarr_format):
    group = zarr.open_group(str(tmp_path / "in.ome.zarr"), mode="w", zarr_format=zarr_format)
    group.create_array("0", shape=noisy_zyx.shape, dtype=noisy_zyx.dtype)[:] = noisy_zyx
    group.create_array("1", shape=(3, 20, 22), dtype=noisy_zyx.dtype)  # a coarser level, not read
    multiscales = [{"axes": [{"name": a, "type": "space"} for a in "zyx"], "datasets": [{"path": "0"}, {"path": "1"}]}]
    if zarr_format == 2:  # OME-Zarr 0.4
        group.attrs["multiscales"] = multiscales
    else:  # OME-Zarr 0.5 nests its metadata under "ome"
        group.attrs["ome"] = {"version": "0.5", "multiscales": multiscales}
    plan = plan_restore(str(tmp_path / "in.ome.zarr"), tiny_model, **OPTS)
    assert plan.axes == "ZYX" and plan.shape == noisy_zyx.shape
    out = restore(str(tmp_path / "in.ome.zarr"), tiny_model, **OPTS)
    np.testing.assert_array_equal(out.compute(), restore(noisy_zyx, tiny_model, **OPTS))


def test_dask_in_streams_to_a_tiff(tiny_model, noisy_zyx, tmp_path):
    lazy = da.from_array(noisy_zyx, chunks=(1, 40, 44))
    path = restore(lazy, tiny_model, out=tmp_path / "o.tif", **OPTS)
    np.testing.assert_array_equal(tifffile.imread(path), restore(noisy_zyx, tiny_model, **OPTS))


def test_float_model_output_through_restore_is_the_inverse_normalised_prediction(noisy_2d, monkeypatch):
    """End to end with a stand-in network 2 x: restore returns 2 * data - low, the normaliser's exact inverse."""
    from napari_gama_ir import build_model
    from napari_gama_ir.io.normalize import Normalizer

    net = build_model("tiny")
    def doubled(net, batch, settings):  # a generator, as engine._predict is
        return 2 * batch
        yield

    monkeypatch.setattr(engine, "_predict", doubled)
    data = noisy_2d.astype(np.float32)
    out = restore(data, net, tile=24, overlap=8, batch_size=3)
    low = Normalizer.from_stack(data[None, None]).low[0]
    np.testing.assert_allclose(out, 2 * data - low, rtol=1e-5, atol=1e-3)


def test_self_ensemble_result_turns_with_the_image_through_tiles_and_chunks(tiny_model, rng):
    """The 8-view mean is symmetric where the network is not: a turned or mirrored stack restores to the
    turned or mirrored result, tiled (square tiles on a square plane) and in several chunks."""
    data = rng.random((3, 48, 48), dtype=np.float32)
    opts = dict(axes="ZYX", tile=32, overlap=16, batch_size=3)
    plain = restore(data, tiny_model, **opts)
    mean = restore(data, tiny_model, self_ensemble=True, **opts)
    turned = restore(np.ascontiguousarray(np.rot90(data, 1, (1, 2))), tiny_model, self_ensemble=True, **opts)
    mirrored = restore(np.ascontiguousarray(data[:, :, ::-1]), tiny_model, self_ensemble=True, **opts)
    np.testing.assert_allclose(turned, np.rot90(mean, 1, (1, 2)), rtol=0, atol=1e-5)
    np.testing.assert_allclose(mirrored, mean[:, :, ::-1], rtol=0, atol=1e-5)
    assert np.abs(mean - plain).max() > 1e-3  # the option changes the result
    lazy = restore(da.from_array(data, chunks=(1, 48, 48)), tiny_model, self_ensemble=True, **opts)
    np.testing.assert_array_equal(lazy.compute(), mean)


def test_self_ensemble_is_in_the_plan_and_must_be_a_bool(tiny_model, noisy_2d):
    assert "(self-ensemble)" in plan_restore(noisy_2d, tiny_model, self_ensemble=True).describe()
    assert "self-ensemble" not in plan_restore(noisy_2d, tiny_model).describe()
    with pytest.raises(InvalidInputError, match="self_ensemble must be True or False, got 'yes'"):
        restore(noisy_2d, tiny_model, self_ensemble="yes")
