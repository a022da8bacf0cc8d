"""The Restore widget in a real viewer: it docks, follows layers, runs (big results fill a zarr store shown as it
fills), previews, cancels (cleaning up in the worker, leaving no layer or store) and recovers from errors.

Tests drive the widget's private fields and actions (``_run``, ``_preview``, ``_cancel``) directly and
assert on ``viewer.layers``, as the napari plugin template does.
"""

from __future__ import annotations

import tempfile
import threading

import numpy as np
import pytest
import zarr

from napari_gama_ir import Progress, restore
from napari_gama_ir._napari import layers
from napari_gama_ir._napari._common import State
from napari_gama_ir._napari.restore_widget import FROM_FILE, RestoreWidget
from napari_gama_ir.errors import InvalidInputError

pytestmark = pytest.mark.qt
TIMEOUT = 30_000


@pytest.fixture
def viewer_widget(make_napari_viewer, tiny_model):
    viewer = make_napari_viewer()
    widget = RestoreWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Restore")
    widget._model.value = tiny_model
    return viewer, widget


def _names(widget) -> list[str]:
    combo = widget._layer.native
    return [combo.itemText(i) for i in range(combo.count())]


def _wait_idle(qtbot, widget) -> None:
    qtbot.waitUntil(lambda: widget._worker is None and widget._state is not State.RUNNING, timeout=TIMEOUT)


def test_widget_follows_added_removed_and_renamed_image_layers(viewer_widget):
    viewer, widget = viewer_widget
    assert _names(widget) == []
    viewer.add_image(np.zeros((4, 16, 16), np.uint16), name="a")
    viewer.add_labels(np.zeros((16, 16), np.uint8), name="labels")
    viewer.add_image(np.zeros((16, 16, 3), np.uint8), name="photo", rgb=True)
    assert _names(widget) == ["a", "photo"]
    widget._layer.value = viewer.layers["photo"]
    assert widget._axes.value == "YXC"
    widget._layer.value = viewer.layers["a"]
    assert widget._axes.value == "ZYX" and "TYX" in widget._axes.choices
    viewer.layers["a"].name = "renamed"
    assert sorted(_names(widget)) == ["photo", "renamed"]
    viewer.layers.remove("photo")
    assert _names(widget) == ["renamed"]


def test_run_adds_restored_layer_with_input_metadata(viewer_widget, qtbot, stack, tiny_model):
    viewer, widget = viewer_widget
    before = stack.copy()
    layer = viewer.add_image(stack, name="noisy", scale=(2.0, 0.5, 0.5), translate=(1, 2, 3), contrast_limits=(100, 300))
    widget._layer.value = layer
    widget._tile.value, widget._overlap.value, widget._batch.value = 32, 8, 4  # "auto" by default
    widget._run()
    assert widget._state is State.RUNNING and not widget._run_button.enabled and widget._cancel_button.enabled
    worker = widget._worker
    _wait_idle(qtbot, widget)
    assert worker.pbar.total == widget._progress.max and worker.pbar.n == worker.pbar.total  # Activity dock
    assert widget._state is State.DONE and widget._run_button.enabled and not widget._cancel_button.enabled
    out = viewer.layers[f"noisy restored ({tiny_model})"]
    assert out.data.shape == stack.shape and out.data.dtype == np.uint16
    np.testing.assert_allclose(out.scale, (2.0, 0.5, 0.5))
    np.testing.assert_allclose(out.translate, (1, 2, 3))
    assert tuple(out.contrast_limits) == (100, 300)
    np.testing.assert_array_equal(layer.data, before)  # the input is never modified
    assert widget._progress.value == widget._progress.max > 1
    assert "tiles of 32 x 32 px" in widget._plan.value


def test_self_ensemble_box_restores_as_the_api_does(viewer_widget, qtbot, stack, tiny_model):
    viewer, widget = viewer_widget
    viewer.add_image(stack, name="noisy")
    widget._tile.value, widget._overlap.value = 32, 8
    widget._ensemble.value = True
    widget._run()
    _wait_idle(qtbot, widget)
    assert "(self-ensemble)" in widget._plan.value
    expected = restore(stack, tiny_model, axes="ZYX", tile=32, overlap=8, self_ensemble=True)
    np.testing.assert_array_equal(viewer.layers[f"noisy restored ({tiny_model})"].data, expected)
    assert not np.array_equal(expected, restore(stack, tiny_model, axes="ZYX", tile=32, overlap=8))


@pytest.fixture
def big(monkeypatch, tmp_path):
    """Every result counts as big (a zarr store in a temporary folder under ``tmp_path``); returns that folder."""
    monkeypatch.setattr(layers, "ZARR_THRESHOLD_BYTES", 0)
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    return tmp_path / "tmp"


def test_large_or_lazy_results_fill_a_zarr_store_shown_as_it_fills(viewer_widget, qtbot, stack, big, tiny_model):
    viewer, widget = viewer_widget
    widget._layer.value = viewer.add_image(stack, name="noisy")
    widget._tile.value, widget._overlap.value, widget._batch.value = 32, 8, 1  # several progress steps
    widget._run()
    name = f"noisy restored ({tiny_model})"
    seen = []
    widget._worker.yielded.connect(lambda step: seen.append([lay.name for lay in viewer.layers]))
    _wait_idle(qtbot, widget)
    assert len(seen) > 2 and all(names == ["noisy", name] for names in seen)  # added with the plan, then filled
    out = viewer.layers[name]
    assert isinstance(out.data, zarr.Array) and out.metadata["napari_gama_ir"]["path"].endswith(".zarr")
    assert out.data.shape == stack.shape and out.data.dtype == np.uint16
    np.testing.assert_array_equal(out.data[:], restore(stack, tiny_model, axes="ZYX", tile=32, overlap=8))
    assert [lay.name for lay in viewer.layers] == ["noisy", name]
    assert widget._plan.value.startswith(f"Added {name!r}.\n{tiny_model} restores 3 planes")
    assert widget._estimate_line.value.startswith("estimated PSNR")


def test_preview_restores_the_plane_on_screen_into_a_preview_layer(viewer_widget, qtbot, stack, tiny_model):
    viewer, widget = viewer_widget
    widget._layer.value = viewer.add_image(stack, name="noisy", scale=(2.0, 0.5, 0.5))
    viewer.dims.set_current_step(0, 2)
    widget._preview()
    _wait_idle(qtbot, widget)
    preview = viewer.layers[layers.PREVIEW_LAYER]
    assert preview.data.shape == (48, 64) and preview.data.dtype == np.uint16
    np.testing.assert_allclose(preview.scale, (0.5, 0.5))
    whole = restore(stack, tiny_model, axes="ZYX")  # the plane as Run restores it: the stack's normalisation
    np.testing.assert_allclose(preview.data, whole[2], atol=1)
    assert widget._plan.value.startswith(f"{tiny_model} restores 1 plane of 48 x 64 px (YX, uint16)")  # the plan, resolved in the worker
    widget._preview()  # a second preview replaces the first
    _wait_idle(qtbot, widget)
    assert [lay.name for lay in viewer.layers] == ["noisy", layers.PREVIEW_LAYER]
    viewer.dims.set_current_step(0, 1)  # another z: the preview of z = 2 goes away
    assert [lay.name for lay in viewer.layers] == ["noisy"]


def _start_long_run(viewer, widget):
    widget._layer.value = viewer.add_image(np.ones((8, 128, 128), np.float32), name="big")
    widget._tile.value, widget._overlap.value, widget._batch.value = 32, 0, 1  # 128 batches
    widget._run()


def test_cancel_stops_between_batches_and_adds_no_layer(viewer_widget, qtbot):
    viewer, widget = viewer_widget
    _start_long_run(viewer, widget)
    buttons = []

    def cancel_after_first_batch(step):
        if step.done and widget._state is State.RUNNING:
            widget._cancel()
            buttons.append((widget._state, widget._run_button.enabled, widget._cancel_button.enabled))

    widget._worker.yielded.connect(cancel_after_first_batch)
    _wait_idle(qtbot, widget)
    assert buttons == [(State.CANCELLING, False, False)]
    assert widget._state is State.IDLE and widget._run_button.enabled and not widget._cancel_button.enabled
    assert 0 < widget._progress.value < widget._progress.max
    assert [lay.name for lay in viewer.layers] == ["big"]


def test_cancel_drops_the_filling_layer_and_its_store_and_cleans_up_in_the_worker(
    viewer_widget, qtbot, big, monkeypatch, tiny_model
):
    viewer, widget = viewer_widget
    closed_in_main_thread = []
    real = layers.iter_restore

    def watched(data, **options):
        try:
            return (yield from real(data, **options))
        finally:  # core's cleanup (sink abort, reader thread) runs here
            closed_in_main_thread.append(threading.current_thread() is threading.main_thread())

    monkeypatch.setattr(layers, "iter_restore", watched)
    _start_long_run(viewer, widget)
    while_filling = []

    def cancel_after_first_batch(step):
        if step.done and widget._state is State.RUNNING:
            while_filling.extend(lay.name for lay in viewer.layers)
            widget._cancel()

    widget._worker.yielded.connect(cancel_after_first_batch)
    _wait_idle(qtbot, widget)
    assert while_filling == ["big", f"big restored ({tiny_model})"]
    assert [lay.name for lay in viewer.layers] == ["big"] and list(big.iterdir()) == []
    assert closed_in_main_thread == [False]


@pytest.mark.parametrize("close", ["widget", "dock", "viewer"])
def test_closing_the_widget_or_viewer_stops_the_job(viewer_widget, qtbot, close, big):
    viewer, widget = viewer_widget
    _start_long_run(viewer, widget)
    worker = widget._worker
    with qtbot.waitSignal(worker.finished, timeout=TIMEOUT):
        if close == "widget":
            widget.native.close()
        elif close == "dock":
            viewer.window.remove_dock_widget(widget.native)  # what the dock's "x" button does
        else:
            viewer.close()
    assert worker.abort_requested and list(big.iterdir()) == []  # no store left behind
    assert close == "viewer" or [lay.name for lay in viewer.layers] == ["big"]


def test_bad_input_notifies_and_the_widget_works_again(viewer_widget, qtbot, errors, stack, tiny_model):
    viewer, widget = viewer_widget
    bad = stack.astype(np.float32)
    bad[0, 0, 0] = np.nan
    widget._layer.value = viewer.add_image(bad, name="nan")
    widget._run()
    assert widget._state is State.RUNNING  # planning, and so the check, happens in the worker
    _wait_idle(qtbot, widget)
    assert widget._state is State.FAILED and widget._run_button.enabled
    assert "NaN" in errors[-1]
    widget._layer.value = viewer.add_image(stack, name="good")
    widget._run()
    _wait_idle(qtbot, widget)
    assert widget._state is State.DONE and f"good restored ({tiny_model})" in viewer.layers


def test_error_in_the_worker_becomes_a_notification(viewer_widget, qtbot, errors, stack, monkeypatch, big):
    viewer, widget = viewer_widget

    def failing(data, **options):
        yield Progress(0, 2, "starting")
        raise InvalidInputError("out of memory on cuda even with batch 1; use device='cpu'")

    monkeypatch.setattr(layers, "iter_restore", failing)
    widget._layer.value = viewer.add_image(stack, name="noisy")
    widget._run()
    _wait_idle(qtbot, widget)
    assert widget._state is State.FAILED and widget._run_button.enabled
    assert errors == ["out of memory on cuda even with batch 1; use device='cpu'"]
    assert [lay.name for lay in viewer.layers] == ["noisy"] and list(big.iterdir()) == []  # no store left


def test_model_from_file_and_auto_fields_become_restore_kwargs(viewer_widget, tmp_path, errors):
    _viewer, widget = viewer_widget
    widget._model.value = FROM_FILE
    assert not widget._model_file.native.isHidden()
    with pytest.raises(InvalidInputError, match="not a file"):
        widget._options()
    path = tmp_path / "models" / "tiny-test.safetensors"
    widget._model_file.value = path
    opts = widget._options()
    assert opts["model"] == path
    fields = ("tile", "overlap", "batch_size", "device", "precision", "dtype", "self_ensemble")
    assert [opts[k] for k in fields] == ["auto", "auto", "auto", "auto", "auto", None, False]


def test_widget_opened_from_the_plugins_menu_sees_the_viewers_layers(make_napari_viewer, stack):
    viewer = make_napari_viewer()
    _dock, widget = viewer.window.add_plugin_dock_widget("napari-gama-ir", "Restore")  # napari hands it a proxy viewer
    viewer.add_image(stack, name="noisy")
    assert _names(widget) == ["noisy"] and widget._axes.value == "ZYX"


def test_a_model_saved_elsewhere_appears_before_load_from_file(viewer_widget, tiny_model, qtbot):
    from napari_gama_ir import build_model, save_model

    _viewer, widget = viewer_widget
    save_model(build_model("tiny"), "another-tiny")
    qtbot.waitUntil(lambda: "another-tiny" in widget._model.choices, timeout=5000)
    assert widget._model.choices[-1] == FROM_FILE and widget._model.value == tiny_model


def test_the_removed_noise_layer_is_noisy_minus_restored_in_range_units(viewer_widget, qtbot, stack, tiny_model):
    viewer, widget = viewer_widget
    widget._layer.value = viewer.add_image(stack, name="noisy")
    widget._removed.value, widget._estimate.value = True, False
    widget._run()
    _wait_idle(qtbot, widget)
    restored = viewer.layers[f"noisy restored ({tiny_model})"].data
    removed = viewer.layers[f"noisy removed noise ({tiny_model})"]
    normalizer = restore.__globals__["plan_restore"](stack, tiny_model, axes="ZYX").normalizer
    expected = (stack.astype(np.float64) - np.asarray(restored, np.float64)) / (normalizer.high - normalizer.low)[0]
    np.testing.assert_allclose(np.asarray(removed.data), expected, rtol=1e-5, atol=1e-6)
    assert widget._estimate_line.value == "" and "removed noise" in widget._plan.value


def test_preview_shows_the_estimate_line(viewer_widget, qtbot, stack):
    viewer, widget = viewer_widget
    widget._layer.value = viewer.add_image(stack, name="noisy")
    widget._preview()
    _wait_idle(qtbot, widget)
    assert "estimated PSNR" in widget._estimate_line.value and "noise" in widget._estimate_line.value


@pytest.mark.parametrize("action", ["run", "preview"])
def test_neighbouring_planes_restore_and_preview_as_the_api_does(viewer_widget, qtbot, stack, tiny_model, action):
    viewer, widget = viewer_widget
    viewer.add_image(stack, name="noisy")
    widget._context.value = 1
    widget._estimate.value = True  # the estimate needs a run of planes: it samples the whole stack
    widget._run() if action == "run" else widget._preview()
    _wait_idle(qtbot, widget)
    assert "using 1 neighbouring plane on each side along Z" in widget._plan.value
    from napari_gama_ir import estimate_quality

    binning, plain = (estimate_quality(stack, tiny_model, axes="ZYX", context=k).psnr() for k in (1, 0))
    assert f"-> {binning:.1f} dB restored" in widget._estimate_line.value and f"{binning:.1f}" != f"{plain:.1f}"
    expected = restore(stack, tiny_model, axes="ZYX", context=1)
    if action == "run":
        np.testing.assert_array_equal(viewer.layers[f"noisy restored ({tiny_model})"].data, expected)
    else:
        z = int(viewer.dims.current_step[0])
        np.testing.assert_allclose(viewer.layers[layers.PREVIEW_LAYER].data, expected[z], atol=1e-3 * np.ptp(stack))
