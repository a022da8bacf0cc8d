"""scripts/datasets.py (the development data of the shipped models): an exported copy of the photographs,
as a GPU machine gets it, holds the same pixels."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("skimage")
_spec = importlib.util.spec_from_file_location("dev_datasets", Path(__file__).resolve().parents[2] / "scripts" / "datasets.py")
datasets = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(datasets)


@pytest.mark.parametrize("compressed", [False, True])
def test_exported_photographs_read_back_bit_for_bit(tmp_path, monkeypatch, compressed):
    names = ["camera", "coffee"]  # gray and RGB, both bundled with scikit-image
    originals = {name: datasets._photo(name) for name in names}
    datasets.export_photos(tmp_path, names, compressed=compressed)
    written = sorted(p.name for p in (tmp_path / "photos").iterdir())
    assert written == (["camera.png", "coffee.webp"] if compressed else ["camera.npy", "coffee.npy"])
    monkeypatch.setattr(datasets, "CACHE", tmp_path)
    for name, original in originals.items():
        copy = datasets._photo(name)
        assert copy.dtype == original.dtype and np.array_equal(copy, original)
