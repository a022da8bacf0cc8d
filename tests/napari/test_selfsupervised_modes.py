"""The Fine-tune panel offers every self-supervised mode by name; a run in the blind-spot mode trains from the
noisy layer alone, shows the estimated PSNR, and its model's card records the mode and the objective."""

from __future__ import annotations

import numpy as np
import pytest

from napari_gama_ir._napari._common import State
from napari_gama_ir._napari.finetune_widget import ESTIMATED, FinetuneWidget
from napari_gama_ir.training.objectives import SELF_SUPERVISED_MODES

pytestmark = pytest.mark.qt


def test_the_panel_offers_each_mode_and_a_blind_spot_run_records_it(make_napari_viewer, tiny_model, qtbot):
    viewer = make_napari_viewer()
    rng = np.random.default_rng(0)
    viewer.add_image(rng.poisson(30, (64, 64)).astype(np.float32), name="noisy")
    widget = FinetuneWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Fine-tune")
    assert tuple(widget._mode.choices) == ("supervised", *SELF_SUPERVISED_MODES)
    widget._noisy.value = [viewer.layers["noisy"]]
    widget._base.value = tiny_model
    widget._steps.value, widget._patch.value, widget._batch.value = 4, 32, 2
    widget._mode.value = "blind-spot"
    assert widget._clean.native.isHidden()
    widget._start()
    qtbot.waitUntil(lambda: widget._worker is None and widget._state not in (State.RUNNING, State.CANCELLING), timeout=30_000)
    assert widget._state is State.DONE
    training = widget._net.card.training
    assert training["mode"] == "blind-spot" and training["objective"] == "blind-spot" and training["loss"] == "masked mse"
    assert widget._summary.value.startswith(ESTIMATED)
