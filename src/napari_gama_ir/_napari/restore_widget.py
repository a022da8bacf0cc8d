"""The Restore dock widget: fields -> ``restore`` kwargs -> a worker -> a new layer, nothing more.

Run is ``iter_restore(data, **kwargs)`` on the layer's data (planning included, in the worker); Preview
is the same on the plane on screen, with the whole stack's normalisation (:func:`.layers.iter_preview`).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import napari
from magicgui.widgets import CheckBox, ComboBox, FileEdit, Label, LineEdit, ProgressBar, PushButton, SpinBox
from napari.layers import Layer

from ..engine.options import RestoreOptions
from ..engine.runtime import DEVICES, PRECISIONS, pick_device
from ..errors import InvalidInputError
from ..zoo.store import list_models
from . import layers
from ._common import JobWidget, ResultLayer, State

AUTO = "auto"
AUTO_MODEL = "auto (chosen for the data)"
FROM_FILE = "load from file..."
SAME_DTYPE = "same as input"
DTYPES = (SAME_DTYPE, "uint8", "uint16", "float32")


def _auto_field(label: str, what: str) -> LineEdit:
    return LineEdit(label=label, value=AUTO, tooltip=f'"auto" or {what}')


def _auto_or_int(field: LineEdit):
    text = str(field.value).strip().lower()
    return int(text) if text.lstrip("-").isdigit() else text


class RestoreWidget(JobWidget):
    """Restore (denoise) an Image layer with a GAMA-IR model into a new layer."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(viewer)
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
        self._context = SpinBox(label="neighbouring planes", value=0, min=0, max=3, enabled=False,
                                tooltip="restore each plane from the mean of itself and this many planes on each side along Z "
                                "(else T): binning before the network, for finely sampled stacks; 0: plane by plane")  # fmt: skip
        self._ensemble = CheckBox(text="self-ensemble (8 passes per tile: slower, a little more accurate)", value=False,
                                  tooltip="each tile as the mean over its 8 flips and 90-degree rotations")  # fmt: skip
        self._estimate = CheckBox(text="estimate the noise and the result's PSNR (2 more restores of a 512 px crop)",
                                  value=True, tooltip="from the noisy data alone (SURE); good for comparing models")  # fmt: skip
        self._removed = CheckBox(text="also add the removed noise (noisy - restored)", value=False,
                                 tooltip="structure in this layer was removed along with the noise")  # fmt: skip
        self._preview_button = PushButton(text="Preview (plane on screen)")
        self._run_button = PushButton(text="Run")
        self._cancel_button = PushButton(text="Cancel")
        self._export_button = PushButton(text="Export for BioImage.IO...")
        self._progress = ProgressBar(label="progress", value=0, min=0, max=1)
        self._plan = Label(label="plan", value="")
        self._estimate_line = Label(label="estimate", value="")
        self.extend([
            self._layer, self._axes, self._axes_info, self._model, self._model_file, self._card, self._tile,
            self._overlap, self._batch, self._device, self._precision, self._dtype, self._context, self._ensemble, self._estimate,
            self._removed, self._preview_button, self._run_button, self._cancel_button, self._progress, self._plan,
            self._estimate_line,
        ])  # fmt: skip
        self.insert(self.index(self._card) + 1, self._export_button)  # acts on the model above it
        self._export_button.changed.connect(self._export)
        self._plan.native.setWordWrap(True)
        self._estimate_line.native.setWordWrap(True)
        self._last_plan, self._preview_step = None, None
        self._follow_slice = self._alive(self._on_slice_changed)
        self._viewer.dims.events.current_step.connect(self._follow_slice)
        self._axes.changed.connect(self._on_axes_changed)
        for widget, slot in ((self._layer, self._on_layer_changed), (self._model, self._on_model_changed),
                             (self._preview_button, self._preview), (self._run_button, self._run),
                             (self._cancel_button, self._cancel)):  # fmt: skip
            widget.changed.connect(slot)
        self._watch(self._layer.reset_choices, self._refresh_models)  # fresh (name, layer) pairs on any change
        self._on_layer_changed(self._layer.value)
        self._on_axes_changed(self._axes.value)
        self._on_model_changed(self._model.value)

    def _buttons(self) -> tuple[tuple, PushButton]:
        return (self._run_button, self._preview_button, self._export_button), self._cancel_button

    def _export(self) -> None:
        """Export the chosen model (the shipped default gray model for "auto") as a BioImage.IO package."""
        try:
            model = self._model.value
            if model == FROM_FILE:
                model = Path(self._model_file.value)
                if not model.is_file():
                    raise InvalidInputError(f"model file {str(model)!r} is not a file; choose a NAME.safetensors file")
            elif model == AUTO_MODEL:  # the model "auto" picks for the selected layer (a small sample of it)
                from ..io.axes import CanonicalLayout
                from ..zoo.choice import choose_model, sample_planes

                data, axes, _meta = layers.layer_to_input(self._layer.value)
                layout = CanonicalLayout(self._axes.value or axes, tuple(data.shape))
                rgb_last = layout.axes.endswith("C")
                sample = None if layout.channels == 3 and rgb_last else sample_planes(layout.to_canonical(data))
                model, _reason = choose_model(sample, layout.channels, rgb_last=rgb_last)
        except Exception as exc:  # noqa: BLE001
            return self._fail(exc)
        self._start_export(model, Path(str(model)).stem if isinstance(model, Path) else str(model))

    def _model_choices(self, _widget=None) -> list[str]:
        self._cards = {card.name: card for card in list_models()}
        return [AUTO_MODEL, *self._cards, FROM_FILE]

    def _refresh_models(self, *_) -> None:
        """List the models anew after a save, keeping the choice; magicgui's reset_choices would keep the old
        items in place and append a new model after "load from file...", so the list is rebuilt."""
        value = self._model.value
        self._model.choices = ()
        self._model.choices = self._model_choices
        if value in self._model.choices:
            self._model.value = value

    def _axes_choices(self, _widget=None) -> list[str]:
        try:
            return layers.axes_choices(self._layer.value) if self._layer.value is not None else []
        except InvalidInputError as exc:
            self._axes_info.value = str(exc)
            return []

    def _on_layer_changed(self, layer) -> None:
        self._axes.reset_choices()
        if self._axes.choices:
            self._axes.value = layers.detect_axes(layer)
            self._axes_info.value = f"detected {self._axes.value}; change it if the layer's axes differ"

    def _on_axes_changed(self, axes) -> None:
        self._context.enabled = bool(axes) and ("Z" in axes or "T" in axes)  # only stacks have neighbouring planes

    def _on_model_changed(self, value) -> None:
        self._model_file.visible = value == FROM_FILE
        card = self._cards.get(value)
        self._card.value = card.summary() if card else ("chosen from the data's channels, noise and background when it runs" if value == AUTO_MODEL else "")

    def _options(self) -> dict:
        """The widget's fields as keyword arguments of :func:`napari_gama_ir.restore`."""
        model = self._model.value
        if model == FROM_FILE:
            model = Path(self._model_file.value)
            if not model.is_file():
                raise InvalidInputError(f"model file {str(model)!r} is not a file; choose a NAME.safetensors file")
        fields = {
            "axes": self._axes.value, "tile": _auto_or_int(self._tile), "overlap": _auto_or_int(self._overlap),
            "batch_size": _auto_or_int(self._batch), "device": self._device.value, "precision": self._precision.value,
            "dtype": None if self._dtype.value == SAME_DTYPE else self._dtype.value, "self_ensemble": self._ensemble.value,
            "context": self._context.value if self._context.enabled else 0,
        }  # fmt: skip
        checked = RestoreOptions(**fields)  # the same validation as restore(), here, before a worker starts
        return {"model": None if model == AUTO_MODEL else model, **{k: getattr(checked, k) for k in fields}}

    def _run(self) -> None:
        """Restore the whole layer in a worker (which also plans); the result becomes a new layer."""
        try:
            data, _axes, meta = layers.layer_to_input(self._layer.value)
            options = self._options()
            output = ResultLayer(self._viewer, data, meta, options)
        except Exception as exc:  # noqa: BLE001 - every failure becomes a notification
            return self._fail(exc)
        job, kwargs = output.job
        estimate_on = (data, None, options["axes"]) if self._estimate.value else None
        kwargs = {"job": job, "estimate_on": estimate_on, **kwargs}
        done = partial(self._on_restored, output, data, meta)
        self._start(layers.iter_and_estimate, kwargs, output.on_progress, done, output.on_finished, meta["name"])

    def _on_restored(self, output: ResultLayer, data, meta: dict, result_and_estimate) -> None:
        result, estimate = result_and_estimate
        output.on_done(result)
        added = [output.layer.name]
        if self._removed.value and self._last_plan is not None:
            plan = self._last_plan
            noise = layers.removed_noise_layer_tuple(data, output.layer.data, plan.normalizer, plan.axes, meta, plan.model_name)
            added.append(self._viewer.add_layer(Layer.create(*noise)).name)
        self._plan.value = f"Added {' and '.join(map(repr, added))}.\n{self._plan.value}"
        self._show_estimate(estimate)

    def _show_estimate(self, estimate) -> None:
        self._estimate_line.value = estimate.describe() if estimate is not None else ""

    def _preview(self) -> None:
        """Restore the plane on screen (cropped to the visible region) with the stack's normalisation."""
        try:
            layer = self._layer.value
            data, options = layers.layer_data(layer), self._options()
            index, axes, meta = layers.plane_on_screen(layer, self._viewer.dims.point, options["axes"])
        except Exception as exc:  # noqa: BLE001
            return self._fail(exc)
        # with neighbouring planes the estimate needs a run of planes: the whole stack's (it samples a crop)
        where = (data, None, options["axes"]) if options["context"] else (data, index, axes)
        estimate_on = where if self._estimate.value else None
        kwargs = {"job": layers.iter_preview, "estimate_on": estimate_on, "data": data, "index": index, "plane_axes": axes,
                  **options}  # fmt: skip
        self._start(layers.iter_and_estimate, kwargs, None, partial(self._on_preview, meta), None, layers.PREVIEW_LAYER)

    def _start(self, gen_fn, kwargs: dict, on_progress, on_done, cleanup, what: str) -> None:
        self._plan.value = "planning..."
        self._estimate_line.value, self._last_plan = "", None
        self._progress.value = 0
        self._launch(gen_fn, kwargs, partial(self._on_progress, on_progress), partial(self._on_done, on_done),
                     f"GAMA-IR: {what}", cleanup)  # fmt: skip

    def _cancel(self) -> None:
        if self._worker is not None and self._state is State.RUNNING:
            self._set_state(State.CANCELLING)
            self._worker.quit()

    def _on_progress(self, then, step) -> None:
        if step.plan is not None:
            self._last_plan = step.plan
            self._plan.value = step.message  # the plan's describe(), resolved in the worker
        self._progress.max = max(1, step.total)
        self._progress.value = min(step.done, step.total)
        if then is not None:
            then(step)

    def _on_done(self, then, result) -> None:
        then(result)
        self._set_state(State.DONE)

    def _on_preview(self, meta: dict, result_and_estimate) -> None:
        result, estimate = result_and_estimate
        self._show_estimate(estimate)
        if layers.PREVIEW_LAYER in self._viewer.layers:
            self._viewer.layers.remove(layers.PREVIEW_LAYER)
        data, kwargs, kind = layers.result_to_layer_tuple(result, meta, "", name=layers.PREVIEW_LAYER)
        self._viewer.add_layer(Layer.create(data, kwargs, kind))
        self._preview_step = self._slice()

    def _shutdown(self) -> None:
        if not self._closed:
            self._viewer.dims.events.current_step.disconnect(self._follow_slice)
        super()._shutdown()

    def _slice(self) -> tuple:
        """Where the viewer stands along the axes that are not on screen (z, t, ...)."""
        shown = set(self._viewer.dims.displayed)
        return tuple(s for i, s in enumerate(self._viewer.dims.current_step) if i not in shown)

    def _on_slice_changed(self, _event=None) -> None:
        """A preview shows one plane: moving to another slice removes it rather than show it on the wrong one."""
        if self._preview_step is not None and self._slice() != self._preview_step:
            self._preview_step = None
            if layers.PREVIEW_LAYER in self._viewer.layers:
                self._viewer.layers.remove(layers.PREVIEW_LAYER)

    def _show(self, text: str) -> None:
        self._plan.value = text
