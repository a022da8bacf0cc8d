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
    qtbot.waitUntil(lambda: len(widget._plot.loss) >= 3, timeout=TIMEOUT)  # live, while the worker runs
    assert widget._worker is not None and widget._worker.pbar.total == 20  # the Activity dock's bar
    _wait_idle(qtbot, widget)
    assert widget._state is State.DONE and widget._start_button.enabled and not widget._stop_button.enabled
    assert widget._progress.value == widget._progress.max == 20
    assert [s for s, _ in widget._plot.loss] == list(range(1, 21))
    assert len(widget._plot.psnr) >= 3 and widget._plot.psnr[0][0] == 0  # before training, then each validation
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
    qtbot.waitUntil(lambda: len(widget._plot.loss) >= 2, timeout=TIMEOUT)
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
    qtbot.waitUntil(lambda: len(widget._plot.loss) >= 1, timeout=TIMEOUT)
    worker = widget._worker
    with qtbot.waitSignal(worker.finished, timeout=TIMEOUT):
        if close == "widget":
            widget.native.close()
        elif close == "dock":
            viewer.window.remove_dock_widget(widget.native)  # what the dock's "x" button does
        else:
            viewer.close()
    assert worker.abort_requested
