"""The npe2 manifest is valid, importable, and contributes to menus napari lets plugins use."""

from __future__ import annotations

import pytest
from npe2 import PluginManifest

pytestmark = pytest.mark.qt


def test_manifest_validates_and_imports():
    manifest = PluginManifest.from_distribution("napari-gama-ir")
    manifest.validate_imports()
    assert [w.display_name for w in manifest.contributions.widgets] == ["Restore", "Fine-tune"]
    assert {s.key for s in manifest.contributions.sample_data} == {"fluorescence-2d", "fluorescence-3d", "photo-rgb"}


def test_layer_menu_contribution_is_in_a_contributable_menu():
    from napari._app_model.constants import MenuId

    manifest = PluginManifest.from_distribution("napari-gama-ir")
    for menu_id in manifest.contributions.menus:
        assert menu_id in MenuId.contributables()
    (item,) = manifest.contributions.menus["napari/layers/filter"]
    assert item.command == "napari-gama-ir.restore_with_defaults"
