"""Cancel acts within one forward pass, also between the 8 passes of the self-ensemble."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from napari_gama_ir import RestoreCancelled, restore


@pytest.mark.parametrize("self_ensemble", [True, False])
def test_cancel_stops_after_the_forward_pass_under_way(tiny_model, self_ensemble):
    passes: list[int] = []
    tiny_model.register_forward_hook(lambda *_: passes.append(1))  # hooks travel with restore's private copy
    image = np.random.default_rng(0).random((64, 64), dtype=np.float32)
    cancel, steps = threading.Event(), []

    def progress(done, total):
        steps.append(done)
        if len(steps) == 2:  # the first step is the plan; the second follows the first forward pass
            cancel.set()

    with pytest.raises(RestoreCancelled):
        restore(image, tiny_model, tile=32, overlap=8, batch_size=16, self_ensemble=self_ensemble, device="cpu",
                progress=progress, cancel=cancel)  # fmt: skip
    assert len(passes) == 1  # one batch holds all tiles: without the ensemble that is the whole job's one pass


def test_the_self_ensemble_reports_progress_between_its_passes(tiny_model):
    steps: list[int] = []
    image = np.random.default_rng(0).random((64, 64), dtype=np.float32)
    restore(image, tiny_model, tile=32, overlap=8, batch_size=16, self_ensemble=True, device="cpu",
            progress=lambda done, total: steps.append(done))  # fmt: skip
    assert steps == [0] * (1 + 8) + [9]  # the plan, a step after each of the 8 views, then the batch's 9 tiles
