"""The "Export for BioImage.IO..." actions in a real viewer: the Restore widget's chosen model and the
Fine-tune panel's trained model become packages in a worker; a missing extra is a notification naming it."""

from __future__ import annotations

import zipfile

import pytest

from napari_gama_ir import load_model
from napari_gama_ir._napari._common import State
from napari_gama_ir._napari.finetune_widget import FinetuneWidget
from napari_gama_ir._napari.restore_widget import RestoreWidget

pytest.importorskip("bioimageio.spec", reason='needs the extra: pip install "napari-gama-ir[bioimageio]"')
pytest.importorskip("onnx")

pytestmark = pytest.mark.qt
TIMEOUT = 60_000


def _wait_idle(qtbot, widget) -> None:
    qtbot.waitUntil(lambda: widget._worker is None and widget._state is not State.RUNNING, timeout=TIMEOUT)


def test_restore_widget_exports_the_chosen_model(make_napari_viewer, qtbot, tiny_model, tmp_path, monkeypatch, errors):
    viewer = make_napari_viewer()
    widget = RestoreWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Restore")
    widget._model.value = tiny_model
    asked = []
    monkeypatch.setattr(RestoreWidget, "_ask_export_path", lambda self, name: asked.append(name) or str(tmp_path / "shared"))
    widget._export_button.clicked.emit()
    assert widget._state is State.RUNNING and not widget._run_button.enabled  # one job at a time
    _wait_idle(qtbot, widget)
    assert errors == [] and asked == [tiny_model]
    package = tmp_path / "shared.zip"  # ".zip" added to the chosen name
    assert widget._state is State.DONE and str(package) in widget._plan.value
    assert "rdf.yaml" in zipfile.ZipFile(package).namelist()
    assert load_model(package).card.name == tiny_model
    assert widget._progress.value == widget._progress.max


def test_finetune_panel_exports_the_trained_model(make_napari_viewer, qtbot, tiny_model, tmp_path, monkeypatch, errors):
    viewer = make_napari_viewer()
    widget = FinetuneWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Fine-tune")
    widget._net = load_model(tiny_model)  # as training returns it (not saved under a new name yet)
    widget._name.value = "lab-model"
    monkeypatch.setattr(FinetuneWidget, "_ask_export_path", lambda self, name: str(tmp_path / f"{name}.zip"))
    widget._export_button.clicked.emit()
    _wait_idle(qtbot, widget)
    assert errors == []
    assert "exported" in widget._status.value
    assert load_model(tmp_path / "lab-model.zip").card.model_args == widget._net.card.model_args


def test_missing_extra_is_a_notification_naming_it(make_napari_viewer, tiny_model, monkeypatch, errors, without_bioimageio):
    viewer = make_napari_viewer()
    widget = RestoreWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Restore")
    widget._model.value = tiny_model
    monkeypatch.setattr(RestoreWidget, "_ask_export_path", lambda self, name: pytest.fail("no dialog without the extra"))
    widget._export_button.clicked.emit()
    assert len(errors) == 1 and 'pip install "napari-gama-ir[bioimageio]"' in errors[0]
    assert widget._state is State.FAILED and widget._export_button.enabled
