"""The Restore dock widget: fields -> ``restore`` kwargs -> a worker -> a new layer, nothing more.

Run is ``iter_restore(data, plan=plan_restore(...))`` on the layer's data; Preview is the same on the plane on screen.
"""

from __future__ import annotations

import dataclasses
from enum import Enum, auto
from functools import partial
from pathlib import Path

import napari
from magicgui.widgets import ComboBox, Container, FileEdit, Label, LineEdit, ProgressBar, PushButton
from napari.layers import Image, Layer
from qtpy.QtCore import QEvent, QObject, Signal, Slot

from ..engine.plan import plan_restore
from ..engine.restore import iter_restore
from ..engine.runtime import DEVICES, PRECISIONS, pick_device
from ..errors import InvalidInputError
from ..zoo.store import add_models_listener, list_models, remove_models_listener
from . import layers as L
from .workers import report_error, start_worker

AUTO = "auto"
AUTO_MODEL = "auto (shipped default for the data)"
FROM_FILE = "load from file..."
SAME_DTYPE = "same as input"
DTYPES = (SAME_DTYPE, "uint8", "uint16", "float32")


class State(Enum):
    """What the widget is doing; the buttons follow it in :meth:`RestoreWidget._sync_buttons`."""
    IDLE = auto()
    RUNNING = auto()
    CANCELLING = auto()
    DONE = auto()
    FAILED = auto()


class _CloseWatcher(QObject):
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


def _auto_field(label: str, what: str) -> LineEdit:
    return LineEdit(label=label, value=AUTO, tooltip=f'"auto" or {what}; restore() checks the value')


def _auto_or_int(field: LineEdit):
    text = str(field.value).strip().lower()
    return int(text) if text.lstrip("-").isdigit() else text


class RestoreWidget(Container):
    """Restore (denoise) an Image layer with a GAMA-IR model into a new layer."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(labels=True)
        self._viewer = viewer
        self._worker = None
        self._state = State.IDLE
        self._closed = False
        self._cards = {}
        self._layer = ComboBox(label="image", choices=self._image_layers)
        self._axes = ComboBox(label="axes", choices=self._axes_choices)
        self._axes_info = Label(label="", value="")
        self._model = ComboBox(label="model", choices=self._model_choices)
        self._model_file = FileEdit(label="model file", mode="r", filter="*.safetensors", visible=False)
        self._card = Label(label="", value="")
        self._tile = _auto_field("tile (px)", "a tile edge in pixels")
        self._overlap = _auto_field("overlap (px)", "an overlap in pixels")
        self._batch = _auto_field("batch", "tiles per forward pass")
        picked = [(f"auto (picks {pick_device(AUTO)})" if d == AUTO else d, d) for d in DEVICES]
        self._device = ComboBox(label="device", choices=picked, value=AUTO)
        self._precision = ComboBox(label="precision", choices=PRECISIONS, value=AUTO)
        self._dtype = ComboBox(label="output dtype", choices=DTYPES, value=SAME_DTYPE)
        self._preview_button = PushButton(text="Preview (plane on screen)")
        self._run_button = PushButton(text="Run")
        self._cancel_button = PushButton(text="Cancel")
        self._progress = ProgressBar(label="progress", value=0, min=0, max=1)
        self._plan = Label(label="plan", value="")
        self.extend([
            self._layer, self._axes, self._axes_info, self._model, self._model_file, self._card, self._tile,
            self._overlap, self._batch, self._device, self._precision, self._dtype,
            self._preview_button, self._run_button, self._cancel_button, self._progress, self._plan,
        ])  # fmt: skip
        self._plan.native.setWordWrap(True)
        for widget, slot in ((self._layer, self._on_layer_changed), (self._model, self._on_model_changed),
                             (self._preview_button, self._preview), (self._run_button, self._run),
                             (self._cancel_button, self._cancel)):  # fmt: skip
            widget.changed.connect(slot)
        events = viewer.layers.events
        self._layer_events = (events.inserted, events.removed, events.reordered, events.renamed)
        for emitter in self._layer_events:  # fresh (name, layer) pairs: follows adds, removals and renames
            emitter.connect(self._layer.reset_choices)
        self._hooks = _CloseWatcher(self._shutdown, self._model.reset_choices)
        self.native.installEventFilter(self._hooks)
        add_models_listener(self._hooks.notify_models_saved)  # a model saved anywhere shows up at once
        self.native.destroyed.connect(lambda *_: self._shutdown())  # the viewer closed and took the dock along
        self._on_layer_changed(self._layer.value)
        self._on_model_changed(self._model.value)
        self._sync_buttons()

    def _image_layers(self, _widget=None) -> list[tuple[str, Layer]]:
        return [(layer.name, layer) for layer in self._viewer.layers if isinstance(layer, Image)]

    def _model_choices(self, _widget=None) -> list[str]:
        self._cards = {card.name: card for card in list_models()}
        return [AUTO_MODEL, *self._cards, FROM_FILE]

    def _axes_choices(self, _widget=None) -> list[str]:
        try:
            return L.axes_choices(self._layer.value) if self._layer.value is not None else []
        except InvalidInputError as exc:
            self._axes_info.value = str(exc)
            return []

    def _on_layer_changed(self, layer) -> None:
        self._axes.reset_choices()
        if self._axes.choices:
            self._axes.value = L.detect_axes(layer)
            self._axes_info.value = f"detected {self._axes.value}; change it if the layer's axes differ"

    def _on_model_changed(self, value) -> None:
        self._model_file.visible = value == FROM_FILE
        card = self._cards.get(value)
        self._card.value = card.summary() if card else ("picked from the data's channels" if value == AUTO_MODEL else "")

    def _options(self) -> dict:
        """The widget's fields as keyword arguments of :func:`napari_gama_ir.restore`."""
        model = self._model.value
        if model == FROM_FILE:
            model = Path(self._model_file.value)
            if not model.is_file():
                raise InvalidInputError(f"model file {str(model)!r} is not a file; choose a NAME.safetensors file")
        return {
            "model": None if model == AUTO_MODEL else model, "axes": self._axes.value,
            "tile": _auto_or_int(self._tile), "overlap": _auto_or_int(self._overlap), "batch_size": _auto_or_int(self._batch),
            "device": self._device.value, "precision": self._precision.value,
            "dtype": None if self._dtype.value == SAME_DTYPE else self._dtype.value,
        }  # fmt: skip

    def _run(self) -> None:
        """Restore the whole layer in a worker; the result becomes a new layer."""
        try:
            data, _axes, meta = L.layer_to_input(self._layer.value)
            options = self._options()
            plan = plan_restore(data, **options, out=L.output_target(data, meta["name"], options["dtype"]))
        except Exception as exc:  # noqa: BLE001 - every failure becomes a notification
            return self._fail(exc)
        self._start(plan, data, partial(self._on_result, meta, plan.model_name))

    def _preview(self) -> None:
        """Restore the plane on screen (cropped to the visible region) with the stack's normalisation."""
        try:
            layer = self._layer.value
            data, _axes, _meta = L.layer_to_input(layer)
            options = self._options()
            full = plan_restore(data, **options)
            plane, axes, meta = L.current_plane(layer, self._viewer.dims.point, options["axes"])
            plan = plan_restore(plane, **{**options, "model": full.model, "axes": axes})
            plan = dataclasses.replace(plan, normalizer=full.normalizer)  # same statistics as Run
        except Exception as exc:  # noqa: BLE001
            return self._fail(exc)
        self._start(plan, plane, partial(self._on_preview, meta))

    def _start(self, plan, data, on_done) -> None:
        self._plan.value = plan.describe()
        self._progress.value = 0
        self._set_state(State.RUNNING)
        self._worker = start_worker(
            iter_restore, {"data": data, "plan": plan}, self._alive(self._on_progress), self._alive(on_done),
            on_error=self._alive(self._fail), on_finished=self._alive(self._on_finished), desc=f"GAMA-IR: {plan.model_name}",
        )  # fmt: skip

    def _alive(self, callback):
        """``callback`` while the widget is open; a no-op once it (or the viewer) has closed."""
        return lambda *args: None if self._closed else callback(*args)

    def _cancel(self) -> None:
        if self._worker is not None and self._state == State.RUNNING:
            self._set_state(State.CANCELLING)
            self._worker.quit()

    def _on_progress(self, step) -> None:
        self._progress.max = max(1, step.total)
        self._progress.value = min(step.done, step.total)

    def _on_result(self, meta: dict, model_name: str, result) -> None:
        self._viewer.add_layer(Layer.create(*L.result_to_layer_tuple(result, meta, model_name)))
        self._set_state(State.DONE)

    def _on_preview(self, meta: dict, result) -> None:
        if L.PREVIEW_LAYER in self._viewer.layers:
            self._viewer.layers.remove(L.PREVIEW_LAYER)
        data, kwargs, kind = L.result_to_layer_tuple(result, meta, "", name=L.PREVIEW_LAYER)
        self._viewer.add_layer(Layer.create(data, kwargs, kind))
        self._set_state(State.DONE)

    def _on_finished(self) -> None:
        self._worker = None
        if self._state in (State.RUNNING, State.CANCELLING):  # quit() ends without returned/errored
            self._plan.value = "cancelled; nothing was added"
            self._set_state(State.IDLE)

    def _fail(self, exc: BaseException) -> None:
        report_error(exc)
        self._set_state(State.FAILED)

    def _set_state(self, state: State) -> None:
        self._state = state
        self._sync_buttons()

    def _sync_buttons(self) -> None:
        idle = self._state in (State.IDLE, State.DONE, State.FAILED)
        self._run_button.enabled = self._preview_button.enabled = idle
        self._cancel_button.enabled = self._state == State.RUNNING

    def _shutdown(self) -> None:
        """Widget or viewer closing: stop the job and let go of the viewer's events."""
        if self._closed:
            return
        self._closed = True
        if self._worker is not None:
            self._worker.quit()
        remove_models_listener(self._hooks.notify_models_saved)
        for emitter in self._layer_events:
            emitter.disconnect(self._layer.reset_choices)
