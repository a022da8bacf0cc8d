"""The Fine-tune dock widget: fields -> ``FinetuneOptions`` -> a worker -> a model to save or use.

Everything it does is reachable from a script: Start is ``iter_finetune(FinetuneOptions(...))`` on the
layers' data (what ``gama-ir train`` runs on folders), Stop sets ``FinetuneOptions.stop`` so training
ends after the current step with the best model so far, Save is ``save_model(net, name)`` and
"Restore with this model" is ``iter_restore`` with that network (planned in the worker).
"""

from __future__ import annotations

import re
import threading
from functools import partial

import napari
from magicgui.widgets import (
    CheckBox, ComboBox, Container, FileEdit, FloatSpinBox, Label, LineEdit, ProgressBar, PushButton, Select, SpinBox,
)  # fmt: skip
from napari.utils.notifications import show_info
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QFrame, QScrollArea

from ..engine.runtime import DEVICES
from ..errors import InvalidInputError
from ..training.finetune import FinetuneOptions, iter_finetune
from ..training.objectives import SELF_SUPERVISED_LOSSES, SELF_SUPERVISED_MODES, is_self_supervised
from ..zoo.store import list_models, save_model, user_models_dir
from . import layers
from ._common import JobWidget, ResultLayer, State
from .correlation_view import NoiseCorrelationView
from .loss_plot import LossPlot
from .workers import report_error

LAYERS, FOLDERS = "layers", "folders"
DEFAULT_BASE = "default (shipped, picked from the data)"
SCRATCH = "scratch:w16"


PANEL_HEIGHT = 720  # px the panel asks for at most; taller content scrolls (the docks must fit a laptop screen)
ESTIMATED = "estimated PSNR (dB), no clean image"


def _special(box, text: str):
    """Show ``text`` instead of the spin box's lowest value (which then means "auto" / "none")."""
    box.native.setSpecialValueText(text)
    return box


def _whole(label: str, maximum: int, step: int, text: str) -> FloatSpinBox:
    """A spin box of whole numbers that shows ``text`` at 0 ("auto"). A float box with no decimals: magicgui's
    SpinBox is superqt's QLargeIntSpinBox, which has no special-value text and would show a bare 0."""
    box = FloatSpinBox(label=label, value=0, min=0, max=maximum, step=step)
    box.native.setDecimals(0)
    return _special(box, text)


class _Scroll(QScrollArea):
    """The panel's scroll area: asks for its content's height up to ``PANEL_HEIGHT``, shrinks to much less."""

    def sizeHint(self):  # noqa: N802 (Qt's name)
        hint = self.widget().sizeHint()
        hint.setHeight(min(hint.height() + 2 * self.frameWidth(), PANEL_HEIGHT))
        hint.setWidth(hint.width() + self.verticalScrollBar().sizeHint().width())
        return hint

    def minimumSizeHint(self):  # noqa: N802 (Qt's name)
        hint = super().minimumSizeHint()
        hint.setWidth(self.widget().minimumSizeHint().width() + self.verticalScrollBar().sizeHint().width())
        return hint


class FinetuneWidget(JobWidget):
    """Fine-tune a GAMA-IR model on image layers (or folders), watch it learn, then save or use it."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(viewer)
        self._stop_event: threading.Event | None = None  # set while training; Stop sets it
        self._net = None  # the trained network, once training has returned
        self._before: float | None = None  # the run's first validation score (dB), shown beside the latest
        self._source = ComboBox(label="data from", choices=(LAYERS, FOLDERS), value=LAYERS)
        self._noisy = Select(label="noisy layer(s)", choices=self._image_layers)
        self._clean = Select(label="clean layer(s)", choices=self._image_layers)
        self._noisy_dir = FileEdit(label="noisy folder", mode="d", visible=False)
        self._clean_dir = FileEdit(label="clean folder", mode="d", visible=False)
        self._mode = ComboBox(label="mode", choices=("supervised", *SELF_SUPERVISED_MODES), value="supervised")
        self._base = ComboBox(label="base model", choices=self._base_choices)
        self._steps = _whole("steps", 1_000_000, 50, "auto (data size)")
        self._use_context = CheckBox(text="use neighbouring planes (Z or T stacks)", value=False, enabled=False)
        self._context = SpinBox(label="planes on each side", value=1, min=1, max=3, visible=False)
        self._patch = _whole("patch size (px)", 1024, 16, "auto (64, or what fits)")
        self._lr = LineEdit(label="learning rate", value="auto")
        self._show_advanced = CheckBox(text="show advanced options", value=False)
        self._batch = SpinBox(label="batch size", value=8, min=1, max=1024)
        self._minutes = _special(FloatSpinBox(label="max minutes", value=0, min=0, max=10_000, step=1), "no limit")
        self._device = ComboBox(label="device", choices=DEVICES, value="auto")
        self._seed = SpinBox(label="seed", value=0, min=0, max=2**31 - 1)
        self._val_fraction = FloatSpinBox(label="validation fraction", value=0.15, min=0.05, max=0.5, step=0.05)
        self._advanced = Container(widgets=[self._patch, self._lr, self._batch, self._minutes, self._device, self._seed,
                                            self._val_fraction], labels=True, visible=False)  # fmt: skip
        self._advanced.margins = (0, 0, 0, 0)
        self._start_button = PushButton(text="Start")
        self._stop_button = PushButton(text="Stop (keeps the best model so far)")
        self._progress = ProgressBar(label="progress", value=0, min=0, max=1)
        self._status = Label(label="", value="")
        self._summary = Label(label="result", value="")
        self._name = LineEdit(label="name", value="")
        self._save_button = PushButton(text="Save to my models")
        self._restore_button = PushButton(text="Restore with this model")
        self._export_button = PushButton(text="Export for BioImage.IO...")
        self._result = Container(widgets=[self._summary, self._name, self._save_button, self._restore_button,
                                          self._export_button],
                                 labels=True, visible=False)  # fmt: skip
        # the fields live in a form inside a scroll area, so that the dock fits a laptop screen (napari docks a
        # magicgui widget's .native, so Container(scrollable=True) would lose its scroll area there)
        self._form = Container(labels=True, widgets=[
            self._source, self._noisy, self._clean, self._noisy_dir, self._clean_dir, self._mode, self._base,
            self._steps, self._use_context, self._context, self._show_advanced, self._advanced, self._start_button, self._stop_button, self._progress,
            self._status, self._result,
        ])  # fmt: skip
        for label in (self._status, self._summary):  # long lines wrap instead of widening the dock
            label.native.setWordWrap(True)
            label.native.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        for layer_list in (self._noisy, self._clean):  # a few rows, then the list scrolls
            rows = layer_list.native.sizeHintForRow(0) if layer_list.native.count() else 0
            layer_list.native.setMaximumHeight(5 * max(rows, layer_list.native.fontMetrics().height() + 2) + 6)
        self._noise_view = NoiseCorrelationView()  # self-supervised: does the first noisy layer's noise share pixels?
        self._noise_view.visible, self._noise_measured = False, None
        self._form.insert(self._form.index(self._base), self._noise_view)
        self._plot = LossPlot()
        self._form.native.layout().insertWidget(self._form.index(self._status) + 1, self._plot)
        self._form.native.layout().addStretch(1)
        self._scroll = _Scroll()
        self._scroll.setWidgetResizable(True)
        self._scroll.setFrameShape(QFrame.Shape.NoFrame)
        self._scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self._scroll.setWidget(self._form.native)
        self.native.layout().addWidget(self._scroll)
        self.margins = (0, 0, 0, 0)
        self._source.changed.connect(self._on_source_changed)
        self._mode.changed.connect(self._on_mode_changed)
        self._noisy.changed.connect(self._on_noisy_changed)
        self._use_context.changed.connect(self._on_noisy_changed)
        self._show_advanced.changed.connect(self._on_advanced_toggled)
        self._start_button.changed.connect(self._start)
        self._stop_button.changed.connect(self._stop)
        self._save_button.changed.connect(self._save)
        self._restore_button.changed.connect(self._restore)
        self._export_button.changed.connect(self._export)
        self._watch(self._on_layers_changed, self._base.reset_choices)  # a model saved anywhere can be the next base

    # --- choices -------------------------------------------------------------------------------
    def reset_choices(self, *_) -> None:
        """napari calls this on the docked widget when layers change; the fields are in the form."""
        self._form.reset_choices()

    def _base_choices(self, _widget=None) -> list[str]:
        return [DEFAULT_BASE, *(card.name for card in list_models()), SCRATCH]

    def _on_layers_changed(self, event=None) -> None:
        self._noisy.reset_choices()
        self._clean.reset_choices()

    def _on_source_changed(self, source: str) -> None:
        self._noisy.visible, self._noisy_dir.visible = source == LAYERS, source == FOLDERS
        self._on_mode_changed(self._mode.value)
        self._on_noisy_changed()

    def _on_noisy_changed(self, *_) -> None:
        """Neighbouring planes are offered for stacks (a first noisy layer with Z or T; folders: checked on Start)."""
        if self._source.value == LAYERS:
            axes = layers.detect_axes(self._noisy.value[0]) if self._noisy.value else ""
            self._use_context.enabled = "Z" in axes or "T" in axes
        else:
            self._use_context.enabled = True
        self._context.visible = self._use_context.enabled and self._use_context.value
        self._update_noise_view()

    def _update_noise_view(self) -> None:
        """Self-supervised runs on layers: the first noisy layer's noise autocorrelation, measured once per layer."""
        layer = self._noisy.value[0] if self._source.value == LAYERS and self._noisy.value else None
        wanted = layer is not None and is_self_supervised(self._mode.value)
        self._noise_view.visible = wanted
        if wanted and layer is not self._noise_measured:
            self._noise_measured = layer
            self._noise_view.measure(layers.layer_data(layer), layers.detect_axes(layer))

    def _on_mode_changed(self, mode: str) -> None:
        supervised = mode == "supervised"  # self-supervised learns from the noisy images alone
        self._clean.visible = supervised and self._source.value == LAYERS
        self._clean_dir.visible = supervised and self._source.value == FOLDERS
        self._update_noise_view()

    def _on_advanced_toggled(self, shown: bool) -> None:
        self._advanced.visible = shown
        self._scroll.updateGeometry()  # the dock may ask for more (or less) height; the rest scrolls

    # --- fields -> kwargs --------------------------------------------------------------------------
    def _options(self) -> dict:
        """The panel's fields as :class:`FinetuneOptions` keyword arguments (the flags of ``gama-ir train``)."""
        supervised = self._mode.value == "supervised"
        if self._source.value == FOLDERS:
            folders = (self._noisy_dir, self._clean_dir)
            noisy, clean = (None if str(f.value) in ("", ".") else str(f.value) for f in folders)
            axes = None  # from the files
        else:
            noisy = [layers.layer_data(layer) for layer in self._noisy.value]
            clean = [layers.layer_data(layer) for layer in self._clean.value]
            axes = layers.detect_axes(self._noisy.value[0]) if self._noisy.value else None
        text = self._lr.value.strip().lower()
        try:
            lr = None if text in ("", "auto") else float(text)
        except ValueError:
            raise InvalidInputError(f"learning rate {text!r} is not a number; use e.g. 2e-4, or 'auto'") from None
        return {
            "noisy": noisy or None,
            "clean": (clean or None) if supervised else None,
            "mode": self._mode.value,
            "base": "default" if self._base.value == DEFAULT_BASE else self._base.value,
            "steps": int(self._steps.value) or None,
            "max_minutes": self._minutes.value or None,
            "patch_size": int(self._patch.value) or None,
            "lr": lr,
            "batch_size": self._batch.value,
            "device": self._device.value,
            "seed": self._seed.value,
            "val_fraction": self._val_fraction.value,
            "axes": axes,
            "context": self._context.value if self._use_context.enabled and self._use_context.value else 0,
        }

    # --- actions -----------------------------------------------------------------------------------
    def _start(self) -> None:
        """Train in a worker; progress fills the bar, the plot and the Activity dock."""
        try:
            opts = FinetuneOptions(**self._options(), stop=threading.Event())
        except Exception as exc:  # noqa: BLE001 - every failure becomes a notification
            return self._fail(exc)
        self._stop_event, self._net, self._before = opts.stop, None, None
        self._plot.clear()
        if is_self_supervised(opts.mode):  # no clean image: the PSNR is estimated (the loss is against noise)
            self._plot.set_labels("training loss (MSE against noise)", ESTIMATED, train_in_db=False, train_unit="MSE")
        else:
            self._plot.set_labels("training PSNR (patches)", "validation PSNR")
        self._progress.value = 0
        self._result.visible = False
        self._status.value = "reading the data and validating the base model..."
        self._launch(iter_finetune, {"opts": opts}, self._on_progress, self._on_trained, "GAMA-IR: fine-tune")

    def _stop(self) -> None:
        """Training: finish after this step with the best model so far. Restoring: cancel."""
        if self._worker is None or self._state is not State.RUNNING:
            return
        self._set_state(State.CANCELLING)
        if self._stop_event is not None:
            self._stop_event.set()
            self._status.value = "stopping after this step; keeping the best model so far..."
        else:
            self._worker.quit()

    def _save(self) -> None:
        """Save the trained model into the user model folder (atomically); model lists update at once."""
        name = self._name.value.strip()
        try:
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
                raise InvalidInputError(f"model name {name!r} is not usable; use letters, digits, '-', '_' or '.'")
            if (user_models_dir() / f"{name}.safetensors").exists():
                raise InvalidInputError(f"a model named {name!r} is already in {user_models_dir()}; choose another name")
            path = save_model(self._net, name, overwrite=False)  # the name was checked to be new just above
        except Exception as exc:  # noqa: BLE001
            return report_error(exc)
        self._status.value = f"saved {path}"
        show_info(f"GAMA-IR: saved model {name!r} to {path.parent}")

    def _restore(self) -> None:
        """Restore the first noisy layer with the trained model into a new layer (planned in the worker)."""
        try:
            layer = self._noisy.value[0] if self._noisy.value else None
            data, axes, meta = layers.layer_to_input(layer)
            output = ResultLayer(self._viewer, data, meta, {"model": self._net, "axes": axes})
        except Exception as exc:  # noqa: BLE001
            return report_error(exc)
        self._stop_event = None  # Stop now cancels
        self._progress.value = 0
        self._status.value = "planning..."
        self._launch(*output.job, partial(self._on_restore_progress, output), partial(self._on_restored, output),
                     f"GAMA-IR: {meta['name']}", output.on_finished)  # fmt: skip

    def _export(self) -> None:
        """Export the trained model (saved or not) as a BioImage.IO package, named as in the name field."""
        if self._net is None:
            return
        self._stop_event = None  # Stop now cancels
        name = self._name.value.strip() or "gama-ir-finetuned"
        self._start_export(self._net, name)

    # --- worker callbacks --------------------------------------------------------------------------
    def _on_progress(self, p) -> None:
        """A training step or a validation: the bar, the plot, and a status line in dB."""
        self._progress.max = max(1, p.total)
        self._progress.value = min(p.step, p.total)
        estimated = p.loss_name in SELF_SUPERVISED_LOSSES  # self-supervised: no clean image to measure against
        val = p.val_estimated_psnr if estimated else p.val_psnr
        train = p.train_psnr if p.train_psnr is not None else p.loss
        self._plot.add(p.step, p.total, train, val)
        if val is not None and self._before is None:
            self._before = val
        if self._plot.val:
            _, latest = self._plot.val[-1]
            name = ESTIMATED if estimated else "validation PSNR (dB)"
            shown = f"{name}: {latest:.2f}" + (f" ({self._before:.2f} before training)" if p.step else " before training")
        else:
            shown = p.message or ("no PSNR estimate: the noise could not be measured" if estimated else "")
        parts = [f"step {p.step}/{p.total}", shown]
        if p.train_psnr is not None:
            parts.insert(1, f"training PSNR {p.train_psnr:.2f} dB")
        self._status.value = "; ".join(part for part in [*parts, f"{p.elapsed:.0f} s"] if part)

    def _on_trained(self, net) -> None:
        self._net = net
        v, steps = net.card.metrics["validation"], net.card.training["steps"]
        if is_self_supervised(net.card.training["mode"]):
            before, after = v.get("estimated_psnr_before"), v.get("estimated_psnr_after")
            scores = f"{before:.2f} -> {after:.2f}" if before is not None and after is not None else "not available"
            self._summary.value = f"{ESTIMATED}: {scores} ({steps} steps)"
        else:
            self._summary.value = f"validation PSNR {v['psnr_before']:.2f} -> {v['psnr_after']:.2f} dB ({steps} steps)"
        self._progress.max, self._progress.value = max(1, steps), max(1, steps)  # done is 100 %, even after Stop
        base = re.sub(r"[^a-z0-9]+", "-", str(net.card.training["base_model"]).lower()).strip("-")
        self._name.value = f"{base}-finetuned"
        self._status.value = f"done: {steps} steps in {net.card.training['seconds']:.0f} s; save it or restore with it"
        self._result.visible = True
        self._set_state(State.DONE)

    def _on_restore_progress(self, output: ResultLayer, p) -> None:
        if p.plan is not None:
            self._status.value = p.message  # the plan's describe(), resolved in the worker
        self._progress.max = max(1, p.total)
        self._progress.value = min(p.done, p.total)
        output.on_progress(p)

    def _on_restored(self, output: ResultLayer, result) -> None:
        output.on_done(result)
        self._set_state(State.DONE)

    # --- state ---------------------------------------------------------------------------------------
    def _buttons(self) -> tuple[tuple, PushButton]:
        return (self._start_button, self._save_button, self._restore_button, self._export_button), self._stop_button

    def _show(self, text: str) -> None:
        self._status.value = text

    def _shutdown(self) -> None:
        """Panel or viewer closing: stop training (nothing is kept) and let go of the viewer's events."""
        stop = getattr(self, "_stop_event", None)  # None too when Python is already tearing the widget down
        if stop is not None:
            stop.set()
        super()._shutdown()
