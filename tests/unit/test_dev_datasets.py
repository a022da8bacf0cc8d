"""scripts/_dev/datasets.py (the development data of the shipped models): an exported copy of the photographs,
as a GPU machine gets it, holds the same pixels."""

from __future__ import annotations


import numpy as np
import pytest

pytest.importorskip("skimage")
from scripts._dev import datasets  # noqa: E402 - after the skips above


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


def test_fluorescence_extras_reach_training_only(monkeypatch):
    """--timelapse-frames and --without-nuclei-train change the training split alone: validation and the
    held-out images stay the same, so numbers before and after compare."""
    monkeypatch.setattr(datasets, "bbbc007", lambda: {f"img{i:02d}": np.full((4, 4), i, np.float32) for i in range(14)})
    monkeypatch.setattr(datasets, "nuclei", lambda which: np.zeros((2, 4), np.float32))
    monkeypatch.setattr(datasets, "timelapse_frames", lambda: {"timelapse-00": np.ones((4, 4), np.float32)})
    plain = {which: sorted(datasets.fluorescence_split(which)) for which in ("train", "val", "eval")}
    for which in ("val", "eval"):
        assert sorted(datasets.fluorescence_split(which, timelapse=True, noisy_nuclei=False)) == plain[which]
    train = sorted(datasets.fluorescence_split("train", timelapse=True, noisy_nuclei=False))
    assert train == sorted(set(plain["train"]) - {"nuclei-train"} | {"timelapse-00"})
    held_out = {f"bbbc007-img{i:02d}" for i in datasets.BBBC007_SPLIT["eval"]}
    assert held_out <= set(plain["eval"]) and not held_out & set(train)
