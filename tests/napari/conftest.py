"""Fixtures for the napari tests: a tiny seeded model in a temporary user-model folder, and error capture."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_gama_ir import build_model, save_model
from napari_gama_ir.zoo.store import USER_MODELS_ENV

TINY = "tiny-test"


@pytest.fixture
def tiny_model(tmp_path, monkeypatch) -> str:
    """Name of a tiny untrained model saved into a temporary user model folder (no shipped model needed)."""
    monkeypatch.setenv(USER_MODELS_ENV, str(tmp_path / "models"))
    torch.manual_seed(0)
    save_model(build_model("tiny"), TINY)
    return TINY


@pytest.fixture
def errors(monkeypatch) -> list[str]:
    """Messages the plugin shows as napari error notifications."""
    shown: list[str] = []
    monkeypatch.setattr("napari_gama_ir._napari.workers.show_error", shown.append)
    return shown


@pytest.fixture
def stack() -> np.ndarray:
    """A small noisy ZYX uint16 stack."""
    return np.random.default_rng(0).poisson(200, (3, 48, 64)).astype(np.uint16)
