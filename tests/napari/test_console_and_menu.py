"""Scripting from napari's console and the layer-menu command restore layers with their metadata, and
reject layers without pixels with a notification (menu) or an InvalidInputError (console)."""

from __future__ import annotations

import numpy as np
import pytest
from napari.layers import Layer

from napari_gama_ir._napari.contributions import restore_with_defaults

pytestmark = pytest.mark.qt


def test_console_way_from_the_readme(make_napari_viewer, stack, tiny_model):
    viewer = make_napari_viewer()
    viewer.add_image(stack, name="noisy", scale=(2.0, 0.5, 0.5))
    # what README.md's napari section shows, with the test's model instead of the shipped default
    from napari_gama_ir import load_model, restore, restore_layer

    net = load_model(tiny_model)
    viewer.add_image(restore(viewer.layers["noisy"].data, net, axes="ZYX"), name="restored")
    viewer.add_layer(Layer.create(*restore_layer(viewer.layers["noisy"], model=net)))
    assert viewer.layers["restored"].data.shape == stack.shape
    out = viewer.layers[f"noisy restored ({tiny_model})"]
    np.testing.assert_array_equal(out.data, viewer.layers["restored"].data)
    np.testing.assert_allclose(out.scale, (2.0, 0.5, 0.5))


def test_restore_layer_rejects_layers_without_pixels(make_napari_viewer, tiny_model):
    from napari_gama_ir import InvalidInputError, restore_layer

    viewer = make_napari_viewer()
    points = viewer.add_points(np.zeros((3, 2)), name="points")
    with pytest.raises(InvalidInputError, match="only Image layers.*Points layer 'points'"):
        restore_layer(points, model=tiny_model)


def test_layers_filters_menu_command_restores_the_selected_layer(make_napari_viewer, qtbot, stack, tiny_model, monkeypatch):
    from napari._app_model import get_app_model

    from napari_gama_ir.zoo import choice

    monkeypatch.setattr(choice, "choose_model", lambda *a, **k: (tiny_model, "the test's model"))  # plays "auto"
    viewer = make_napari_viewer()
    viewer.add_image(stack, name="noisy")
    app = get_app_model()
    menu = [getattr(item, "command", None) for item in app.menus.get_menu("napari/layers/filter")]
    assert "napari-gama-ir.restore_with_defaults" in [c.id for c in menu if c is not None]
    worker = app.commands.execute_command("napari-gama-ir.restore_with_defaults").result()  # as the menu does
    with qtbot.waitSignal(worker.finished, timeout=30_000):
        pass
    assert viewer.layers[-1].name == f"noisy restored ({tiny_model})"
    assert viewer.layers[-1].data.shape == stack.shape


def test_menu_command_on_a_labels_layer_notifies(make_napari_viewer, errors):
    viewer = make_napari_viewer()
    viewer.add_labels(np.zeros((8, 8), np.uint8), name="cells")
    assert restore_with_defaults(viewer) is None
    assert "only Image layers" in errors[-1] and "Labels layer 'cells'" in errors[-1]
    assert [lay.name for lay in viewer.layers] == ["cells"]
