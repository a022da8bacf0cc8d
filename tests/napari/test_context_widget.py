"""The Fine-tune panel offers neighbouring planes for stacks only, and passes them on as ``context``."""

from __future__ import annotations

import numpy as np
import pytest

from napari_gama_ir._napari.finetune_widget import FinetuneWidget

pytestmark = pytest.mark.qt
# the viewer is not shown in tests, so ``.visible`` is False for every field: ``isHidden()`` says whether
# the panel hid the field itself


def test_use_neighbouring_planes_is_offered_for_stacks_and_sets_context(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((48, 48), np.float32), name="plane")
    viewer.add_image(np.zeros((5, 48, 48), np.float32), name="stack")
    widget = FinetuneWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Fine-tune")
    widget._mode.value = "self-supervised"
    widget._noisy.value = [viewer.layers["plane"]]
    assert not widget._use_context.enabled and widget._options()["context"] == 0
    widget._noisy.value = [viewer.layers["stack"]]
    assert widget._use_context.enabled and widget._context.native.isHidden() and widget._options()["context"] == 0
    widget._use_context.value = True
    assert not widget._context.native.isHidden() and (widget._context.min, widget._context.max) == (1, 3)
    widget._context.value = 2
    options = widget._options()
    assert options["context"] == 2 and options["axes"] == "ZYX"
    widget._noisy.value = [viewer.layers["plane"]]  # back to a 2-D layer: no context, whatever the box says
    assert widget._options()["context"] == 0 and widget._context.native.isHidden()


@pytest.mark.parametrize("z", [0, 2, 4])
def test_preview_of_a_plane_with_a_context_model_is_that_plane_of_the_whole_run(make_tiny, z):
    import torch

    from napari_gama_ir import restore
    from napari_gama_ir._napari.layers import iter_preview
    from napari_gama_ir.model.context import add_context

    net = add_context(make_tiny(seed=1), 1, "Z")
    with torch.no_grad():
        net.intro.weight.add_(0.05)  # the neighbours count, as after training
    stack = (1000 + 200 * np.random.default_rng(0).random((5, 32, 32))).astype(np.uint16)
    options = dict(model=net, axes="ZYX", precision="fp32", device="cpu", dtype="float32")
    gen = iter_preview(stack, (z, slice(None), slice(None)), "YX", **options)
    while True:
        try:
            next(gen)
        except StopIteration as done:
            preview = done.value
            break
    assert np.allclose(preview, restore(stack, **options)[z], rtol=0, atol=1e-3)


def test_restore_widget_offers_neighbouring_planes_for_stacks_and_sets_context(make_napari_viewer):
    from napari_gama_ir._napari.restore_widget import RestoreWidget

    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((48, 48), np.float32), name="plane")
    viewer.add_image(np.zeros((5, 48, 48), np.float32), name="stack")
    widget = RestoreWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Restore")
    widget._layer.value = viewer.layers["plane"]
    widget._context.value = 1
    assert not widget._context.enabled and widget._options()["context"] == 0  # a 2-D layer has no neighbours
    widget._layer.value = viewer.layers["stack"]
    assert widget._context.enabled and (widget._context.min, widget._context.max) == (0, 3)
    assert widget._options()["context"] == 1 and widget._options()["axes"] == "ZYX"
