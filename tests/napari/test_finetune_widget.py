"""The Fine-tune panel in a real viewer: it trains from layers with live progress, stops cleanly with a
model, saves it where the Restore widget sees it at once, restores with it, and recovers from bad input.

Tests set the panel's private fields and call its actions (``_start``, ``_stop``, ``_save``, ``_restore``)
directly, then wait on the worker, as the napari plugin template does.
"""

from __future__ import annotations

import numpy as np
import pytest

from napari_gama_ir import list_models

from napari_gama_ir._napari._common import State
from napari_gama_ir._napari.finetune_widget import DEFAULT_BASE, FinetuneWidget
from napari_gama_ir._napari.restore_widget import RestoreWidget
from napari_gama_ir.zoo.store import user_models_dir

pytestmark = pytest.mark.qt
TIMEOUT = 30_000


@pytest.fixture
def pair():
    """A 64 x 64 clean image with smooth structure and its noisy version (float32)."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:64, :64]
    clean = (100 + 50 * np.sin(yy / 6) * np.cos(xx / 9)).astype(np.float32)
    return (clean + rng.normal(0, 15, clean.shape)).astype(np.float32), clean


@pytest.fixture
def panel(make_napari_viewer, tiny_model, pair):
    """A viewer with noisy/clean layers and a docked Fine-tune panel set up for a quick run from a tiny model."""
    viewer = make_napari_viewer()
    noisy, clean = pair
    viewer.add_image(noisy, name="noisy")
    viewer.add_image(clean, name="clean")
    widget = FinetuneWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Fine-tune")
    widget._noisy.value = [viewer.layers["noisy"]]
    widget._clean.value = [viewer.layers["clean"]]
    widget._base.value = tiny_model
    widget._steps.value, widget._patch.value, widget._batch.value = 20, 32, 4
    return viewer, widget


def _wait_idle(qtbot, widget) -> None:
    busy = (State.RUNNING, State.CANCELLING)
    qtbot.waitUntil(lambda: widget._worker is None and widget._state not in busy, timeout=TIMEOUT)


def test_training_updates_progress_and_plot_then_saves_and_restores(panel, qtbot, tiny_model):
    viewer, widget = panel
    restore = RestoreWidget(viewer)
    viewer.window.add_dock_widget(restore, name="Restore")
    choices = widget._base.choices
    assert choices[0] == DEFAULT_BASE and tiny_model in choices and choices[-1] == "scratch:w16"
    assert all(c.name in choices for c in list_models())  # shipped and user models
    widget._start()
    assert widget._state is State.RUNNING and not widget._start_button.enabled and widget._stop_button.enabled
    qtbot.waitUntil(lambda: len(widget._plot.train) >= 3, timeout=TIMEOUT)  # live, while the worker runs
    assert widget._worker is not None and widget._worker.pbar.total == 20  # the Activity dock's bar
    _wait_idle(qtbot, widget)
    assert widget._state is State.DONE and widget._start_button.enabled and not widget._stop_button.enabled
    assert widget._progress.value == widget._progress.max == 20
    assert [s for s, _ in widget._plot.train] == list(range(1, 21))
    assert len(widget._plot.val) >= 3 and widget._plot.val[0][0] == 0  # before training, then each validation
    assert "validation PSNR" in widget._summary.value and "->" in widget._summary.value
    assert not widget._result.native.isHidden() and widget._name.value == f"{tiny_model}-finetuned"

    widget._name.value = "my-cells"
    widget._save()
    assert (user_models_dir() / "my-cells.safetensors").is_file() and (user_models_dir() / "my-cells.json").is_file()
    assert "my-cells" in restore._model.choices and "my-cells" in widget._base.choices  # at once, no refresh

    widget._restore()
    _wait_idle(qtbot, widget)
    out = viewer.layers["noisy restored (my-cells)"]
    assert out.data.shape == (64, 64) and out.data.dtype == np.float32


def test_stop_ends_training_early_and_keeps_a_model(panel, qtbot, tiny_model):
    viewer, widget = panel
    widget._steps.value = 100_000
    widget._mode.value = "self-supervised"  # noisy images alone; the clean picker hides
    assert widget._clean.native.isHidden()
    widget._start()
    qtbot.waitUntil(lambda: len(widget._plot.train) >= 2, timeout=TIMEOUT)
    widget._stop()
    assert widget._state is State.CANCELLING and not widget._stop_button.enabled
    _wait_idle(qtbot, widget)
    assert widget._state is State.DONE and widget._net is not None
    card = widget._net.card
    assert 2 <= card.training["steps"] < 100_000 and card.training["mode"] == "self-supervised"
    assert card.training["base_model"] == tiny_model
    widget._name.value = "stopped"
    widget._save()
    assert (user_models_dir() / "stopped.safetensors").is_file()


def test_bad_input_notifies_and_the_panel_works_again(panel, qtbot, errors):
    viewer, widget = panel
    widget._clean.value = [viewer.add_image(np.zeros((48, 64), np.float32), name="other shape")]
    widget._start()
    _wait_idle(qtbot, widget)
    assert widget._state is State.FAILED and widget._start_button.enabled and widget._result.native.isHidden()
    assert "pairs must match" in errors[-1]
    widget._lr.value = "fast"
    widget._start()
    assert widget._state is State.FAILED and "learning rate 'fast'" in errors[-1]

    widget._lr.value = "1e-3"
    widget._clean.value = [viewer.layers["clean"]]
    widget._steps.value = 5
    widget._start()
    _wait_idle(qtbot, widget)
    assert widget._state is State.DONE and widget._net.card.training["steps"] == 5
    widget._name.value = "../outside"
    widget._save()
    assert "not usable" in errors[-1] and not list(user_models_dir().glob("*outside*"))


@pytest.mark.parametrize("close", ["widget", "dock", "viewer"])
def test_closing_the_panel_or_viewer_stops_training(panel, qtbot, close):
    viewer, widget = panel
    widget._steps.value = 100_000
    widget._start()
    qtbot.waitUntil(lambda: len(widget._plot.train) >= 1, timeout=TIMEOUT)
    worker = widget._worker
    with qtbot.waitSignal(worker.finished, timeout=TIMEOUT):
        if close == "widget":
            widget.native.close()
        elif close == "dock":
            viewer.window.remove_dock_widget(widget.native)  # what the dock's "x" button does
        else:
            viewer.close()
    assert worker.abort_requested


def test_auto_fields_read_auto_and_advanced_options_fold_away(panel):
    viewer, widget = panel
    widget._steps.value = widget._patch.value = 0
    assert widget._steps.native.text() == "auto (data size)"  # not a bare 0
    assert widget._patch.native.text().startswith("auto")
    assert widget._options()["steps"] is None and widget._options()["patch_size"] is None
    widget._steps.value = 20
    assert widget._steps.native.text() == "20" and widget._options()["steps"] == 20  # an int, as FinetuneOptions wants
    form = widget._form.native
    assert not widget._patch.native.isVisibleTo(form) and not widget._lr.native.isVisibleTo(form)  # folded by default
    widget._show_advanced.value = True
    assert widget._patch.native.isVisibleTo(form) and widget._lr.native.isVisibleTo(form)


def test_the_panel_fits_a_laptop_screen(panel):
    """Folded, the panel asks for under 1000 px and can shrink further: its fields scroll."""
    viewer, widget = panel
    assert widget.native.sizeHint().height() < 1000
    assert widget.native.minimumSizeHint().height() < 300
    widget._show_advanced.value = True
    widget._result.visible = True
    assert widget._form.native.sizeHint().height() > widget.native.sizeHint().height()  # the rest scrolls
    assert widget.native.sizeHint().height() < 1000
    assert widget._scroll.isAncestorOf(widget._start_button.native)  # napari docks .native: the scroll area is in it


def test_supervised_run_shows_psnr_in_db_on_labelled_axes(panel, qtbot):
    viewer, widget = panel
    widget._start()
    _wait_idle(qtbot, widget)
    assert widget._state is State.DONE
    assert widget._progress.value == widget._progress.max
    status = widget._status.value
    plot = widget._plot
    legend = plot.legend()
    assert legend[0].startswith("training PSNR") and legend[0].endswith(" dB")
    assert legend[1].startswith("validation PSNR") and legend[1].endswith(" dB")
    assert all(v > 0 for _, v in plot.train + plot.val)  # a PSNR, not minus one
    assert plot.axis_labels() == {"x": "step", "left": "dB", "right": ""}
    assert plot.ticks("x")[0] == "0" and float(plot.ticks("x")[-1]) >= 20 and len(plot.ticks("x")) >= 3
    low, high = float(plot.ticks("left")[0]), float(plot.ticks("left")[-1])
    assert len(plot.ticks("left")) >= 3 and low <= min(v for _, v in plot.val) <= max(v for _, v in plot.val) <= high
    assert plot.ticks("right") == []  # the training PSNR shares the dB axis
    widget._status.value = status
    widget._start()  # a second run starts from an empty plot
    assert plot.train == [] and plot.val == []
    _wait_idle(qtbot, widget)


def test_status_line_shows_psnr_in_db_not_a_loss(panel):
    """The status line as progress arrives: training and validation PSNR in dB (supervised), the estimated
    PSNR without a clean image (self-supervised); never the raw loss (minus the PSNR, or a masked MSE)."""
    from napari_gama_ir.training import FinetuneProgress

    viewer, widget = panel
    widget._before = None
    widget._on_progress(FinetuneProgress(0, 20, float("nan"), 1e-3, 0.5, 16.5, 0.5, 16.5, "validation before training", None, "psnr"))
    assert widget._status.value == "step 0/20; validation PSNR (dB): 16.50 before training; 0 s"
    widget._on_progress(FinetuneProgress(3, 20, -18.25, 1e-3, 1.4, None, None, 16.5, "", None, "psnr"))
    assert widget._status.value == "step 3/20; training PSNR 18.25 dB; validation PSNR (dB): 16.50 (16.50 before training); 1 s"
    widget._on_progress(FinetuneProgress(10, 20, -18.5, 1e-3, 3, 17.75, 0.6, 17.75, "", None, "psnr"))
    assert "validation PSNR (dB): 17.75 (16.50 before training)" in widget._status.value
    assert widget._plot.train == [(3, 18.25), (10, 18.5)] and widget._plot.val == [(0, 16.5), (10, 17.75)]

    widget._plot.clear()
    widget._before = None
    widget._on_progress(FinetuneProgress(0, 20, float("nan"), 1e-3, 0.5, 12.0, None, 12.0, "validation before training", 21.0, "masked mse"))
    widget._on_progress(FinetuneProgress(10, 20, 0.031, 1e-3, 3, 12.5, None, 12.5, "", 23.5, "masked mse"))
    assert widget._status.value == "step 10/20; estimated PSNR (dB), no clean image: 23.50 (21.00 before training); 3 s"
    assert widget._plot.val == [(0, 21.0), (10, 23.5)] and widget._plot.train == [(10, 0.031)]  # not the blind-spot score


def test_after_stop_the_final_validation_is_plotted_and_the_bar_is_full(panel, qtbot):
    viewer, widget = panel
    widget._steps.value = 100_000
    widget._start()
    qtbot.waitUntil(lambda: len(widget._plot.train) >= 3, timeout=TIMEOUT)
    widget._stop()
    _wait_idle(qtbot, widget)
    steps = widget._net.card.training["steps"]
    assert widget._state is State.DONE and steps < 100_000
    last_step, last_val = widget._plot.val[-1]
    assert last_step == steps  # the validation after Stop, which the result line reports
    assert widget._plot.train[-1][0] == steps and widget._plot.total == steps  # the x axis ends where training did
    after = widget._net.card.metrics["validation"]["psnr_after"]
    assert f"{after:.2f} dB" in widget._summary.value
    assert max(v for _, v in widget._plot.val) == pytest.approx(after, abs=1e-6)  # the kept model is a plotted point
    assert widget._progress.value == widget._progress.max  # 100 %, not where Stop happened out of 100 000


def test_self_supervised_run_shows_the_estimated_psnr(panel, qtbot, tmp_path):
    viewer, widget = panel
    widget._mode.value = "self-supervised"
    widget._start()
    _wait_idle(qtbot, widget)
    assert widget._state is State.DONE and widget._progress.value == widget._progress.max
    plot = widget._plot
    assert plot.val_label == "estimated PSNR (dB), no clean image"
    assert plot.legend()[1].startswith("estimated PSNR (dB), no clean image: ") and plot.legend()[1].endswith(" dB")
    assert len(plot.val) >= 3 and all(5 < v < 80 for _, v in plot.val)  # a plausible PSNR in dB
    assert plot.axis_labels()["left"] == "dB" and plot.axis_labels()["right"] == "MSE" and plot.ticks("right")
    v = widget._net.card.metrics["validation"]
    assert widget._summary.value == (f"estimated PSNR (dB), no clean image: {v['estimated_psnr_before']:.2f} -> "
                                     f"{v['estimated_psnr_after']:.2f} (20 steps)")  # fmt: skip
    assert plot.val[0] == (0, pytest.approx(v["estimated_psnr_before"]))
    widget.native.grab().save(str(tmp_path / "panel.png"))  # paints (axes, ticks, legend) without errors
