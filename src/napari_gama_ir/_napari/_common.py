"""What the Restore and Fine-tune widgets share: the job state and its buttons, the close hooks, and the
layer a restore job fills.

:class:`JobWidget` runs one core generator at a time through :func:`~.workers.start_worker`;
:class:`ResultLayer` turns a restore job into a layer, shown as it fills when the result goes to disk.
"""

from __future__ import annotations

from enum import Enum, auto

import napari
from magicgui.widgets import Container
from napari.layers import Image, Layer
from qtpy.QtCore import QEvent, QObject, Signal, Slot

from ..zoo.store import add_models_listener, remove_models_listener
from . import layers
from .workers import report_error, start_worker


class State(Enum):
    """What a widget is doing; its buttons follow it in :meth:`JobWidget._sync_buttons`."""

    IDLE = auto()
    RUNNING = auto()
    CANCELLING = auto()
    DONE = auto()
    FAILED = auto()


class CloseWatcher(QObject):
    """Calls ``on_close`` when the watched widget closes or leaves its dock (napari's "x"), and
    ``on_models_saved`` in the GUI thread when :func:`save_model` runs in any thread (``notify_models_saved``)."""

    models_saved = Signal()

    def __init__(self, on_close, on_models_saved=None) -> None:
        super().__init__()
        self._on_close, self._on_models_saved = on_close, on_models_saved
        self.models_saved.connect(self._deliver)  # direct in the GUI thread, queued from a worker

    def notify_models_saved(self, _path=None) -> None:
        self.models_saved.emit()

    @Slot()
    def _deliver(self) -> None:
        self._on_models_saved()

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 (Qt's name)
        kind = event.type()
        if kind == QEvent.Type.Close or (kind == QEvent.Type.ParentChange and obj.parent() is None):
            self._on_close()
        return False


class JobWidget(Container):
    """A dock widget that runs one core job at a time in a worker and stops it when it closes.

    Subclasses build their fields, then call :meth:`_watch`; they name their buttons in
    :meth:`_buttons` and their status line in :meth:`_show`.
    """

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(labels=True)
        self._viewer = viewer
        self._worker = None
        self._state = State.IDLE
        self._closed = False  # after close, late worker signals must not touch deleted Qt widgets

    def _watch(self, on_layers_changed, on_models_saved) -> None:
        """Follow the viewer's layers and saved models until the widget (or the viewer) closes."""
        events = self._viewer.layers.events
        self._layer_events = (events.inserted, events.removed, events.reordered, events.renamed)
        self._on_layers_changed = on_layers_changed
        for emitter in self._layer_events:
            emitter.connect(on_layers_changed)
        self._hooks = CloseWatcher(self._shutdown, on_models_saved)
        self.native.installEventFilter(self._hooks)
        add_models_listener(self._hooks.notify_models_saved)  # a model saved anywhere shows up at once
        self.native.destroyed.connect(lambda *_: self._shutdown())  # the viewer closed and took the dock along
        self._sync_buttons()

    def _image_layers(self, _widget=None) -> list[tuple[str, Layer]]:
        return [(layer.name, layer) for layer in self._viewer.layers if isinstance(layer, Image)]

    def _alive(self, callback):
        """``callback`` while the widget is open; a no-op once it (or the viewer) has closed."""
        return lambda *args: None if self._closed else callback(*args)

    def _launch(self, gen_fn, kwargs: dict, on_progress, on_done, desc: str, cleanup=None) -> None:
        """Run a core generator through the one worker bridge; ``cleanup()`` runs at its end, even after close."""
        self._set_state(State.RUNNING)
        self._worker = start_worker(
            gen_fn, kwargs, self._alive(on_progress), self._alive(on_done), on_error=self._alive(self._fail),
            on_finished=lambda: self._finished(cleanup), desc=desc,
        )  # fmt: skip

    # --- BioImage.IO export (the Restore widget's model, the Fine-tune panel's result) ---------------
    def _ask_export_path(self, name: str) -> str | None:
        """A save dialog for ``NAME.zip`` (Qt asks before replacing a file); None when cancelled."""
        from qtpy.QtWidgets import QFileDialog

        path, _ = QFileDialog.getSaveFileName(self.native, "Export for BioImage.IO", f"{name}.zip",
                                              "BioImage.IO model package (*.zip)")  # fmt: skip
        return path or None

    def _start_export(self, model, name: str) -> None:
        """Ask where, then write a BioImage.IO package of ``model`` (a name, path or network) in the worker."""
        from ..zoo.bioimageio import iter_export_bioimageio, require_extra

        try:
            require_extra("bioimageio.spec", "onnx")  # the notification says: pip install "napari-gama-ir[bioimageio]"
        except Exception as exc:  # noqa: BLE001
            return self._fail(exc)
        path = self._ask_export_path(name)
        if not path:
            return
        if not path.lower().endswith(".zip"):
            path += ".zip"
        kwargs = {"model": model, "path": path, "overwrite": True}  # the dialog already confirmed a replacement
        self._show(f"exporting {name} for BioImage.IO...")
        self._launch(iter_export_bioimageio, kwargs, self._on_export_progress, self._on_exported,
                     f"GAMA-IR: export {name}")  # fmt: skip

    def _on_export_progress(self, step) -> None:
        progress = getattr(self, "_progress", None)
        if progress is not None:
            progress.max = max(1, step.total)
            progress.value = min(step.done, step.total)
        self._show(f"export: {step.message}")

    def _on_exported(self, path) -> None:
        from napari.utils.notifications import show_info

        self._show(f"exported {path}; open it in Fiji (deepImageJ), ilastik or bioimageio.core")
        show_info(f"GAMA-IR: exported BioImage.IO package {path}")
        self._set_state(State.DONE)

    def _finished(self, cleanup) -> None:
        self._worker = None
        if cleanup is not None:
            cleanup()
        if not self._closed and self._state in (State.RUNNING, State.CANCELLING):  # quit(): no returned/errored
            self._show("cancelled; nothing was added")
            self._set_state(State.IDLE)

    def _fail(self, exc: BaseException) -> None:
        report_error(exc)
        self._show("failed; see the notification")
        self._set_state(State.FAILED)

    def _buttons(self) -> tuple[tuple, object]:
        """(buttons enabled while idle, the Cancel/Stop button)."""
        raise NotImplementedError

    def _show(self, text: str) -> None:
        """Show a one-line status under the buttons."""
        raise NotImplementedError

    def _set_state(self, state: State) -> None:
        self._state = state
        self._sync_buttons()

    def _sync_buttons(self) -> None:
        idle_buttons, cancel_button = self._buttons()
        for button in idle_buttons:
            button.enabled = self._state in (State.IDLE, State.DONE, State.FAILED)
        cancel_button.enabled = self._state == State.RUNNING

    def _shutdown(self) -> None:
        """Widget or viewer closing: stop the job and let go of the viewer's events."""
        if self._closed:
            return
        self._closed = True
        if self._worker is not None:
            self._worker.quit()
        remove_models_listener(self._hooks.notify_models_saved)
        for emitter in self._layer_events:
            emitter.disconnect(self._on_layers_changed)


class ResultLayer:
    """The layer one restore job makes, from its worker's callbacks.

    A big or lazy input's result goes to a zarr store in a new temporary folder: its layer is added as
    soon as the first progress step names the model and is refreshed as planes arrive. Otherwise the
    result stays in RAM and its layer is added when done. A job that fails or is cancelled leaves no
    layer and no folder. ``job`` is what the worker runs: (generator function, its kwargs), from the
    input's ``data`` and ``meta`` (:func:`.layers.layer_to_input`) and :func:`restore`'s ``options``.
    """

    def __init__(self, viewer: napari.viewer.Viewer, data, meta: dict, options: dict) -> None:
        self._viewer, self._meta, self.model_name = viewer, meta, None
        self.store = layers.new_store(data, meta["name"], options.get("dtype"), options.get("axes"))
        self.job = (layers.iter_restore_into, {"data": data, "store": self.store, **options})
        self.layer, self.done = None, False

    def on_progress(self, step) -> None:
        if step.plan is not None:
            self.model_name = step.plan.model_name
            if self.store is not None:
                self._add(self.store.array)
        elif self.layer is not None:
            self.layer.refresh()

    def on_done(self, result) -> None:
        self.done = True
        if self.layer is None:
            self._add(result)
        else:
            self.layer.refresh()

    def on_finished(self) -> None:
        """Cancelled or failed: drop the layer and the store (normally already removed in the worker)."""
        if self.done:
            return
        if self.layer is not None and self.layer in self._viewer.layers:
            self._viewer.layers.remove(self.layer)
        self.layer = None
        if self.store is not None:
            self.store.remove()

    def _add(self, data) -> None:
        path = self.store.path if self.store else None
        layer_data = layers.result_to_layer_tuple(data, self._meta, self.model_name, path=path)
        self.layer = self._viewer.add_layer(Layer.create(*layer_data))
