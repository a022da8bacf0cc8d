"""Shared fixtures: a seeded tiny network whose blocks act, small arrays, and an isolated user-model folder."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_gama_ir import build_model

# One intra-op thread: the test machine has 2 cores shared with other jobs, and two OpenMP threads
# fighting a busy core make small convolutions 10-50x slower than one thread does.
torch.set_num_threads(1)


def activate(net: torch.nn.Module, value: float = 0.5) -> torch.nn.Module:
    """Set every block's residual scales (beta, gamma; 0 at init) to ``value`` so the blocks change the output."""
    with torch.no_grad():
        for name, param in net.named_parameters():
            if name.endswith(("beta", "gamma")):
                param.fill_(value)
    return net


def make_tiny(seed: int = 0, **overrides) -> torch.nn.Module:
    """A seeded "tiny" network with active blocks; ``overrides`` go to :func:`build_model`."""
    torch.manual_seed(seed)
    return activate(build_model("tiny", **overrides))


@pytest.fixture(name="make_tiny", scope="session")
def make_tiny_fixture():
    """The :func:`make_tiny` factory, for tests that need variants (local means, other channels)."""
    return make_tiny


@pytest.fixture
def tiny_model() -> torch.nn.Module:
    """The "tiny" preset, one channel, seeded, with beta = gamma = 0.5."""
    return make_tiny()


@pytest.fixture
def tiny_rgb_model() -> torch.nn.Module:
    """The "tiny" preset with three input and output channels."""
    return make_tiny(in_channels=3)


@pytest.fixture
def user_models_dir(tmp_path, monkeypatch):
    """An empty user-model folder, set through NAPARI_GAMA_IR_MODELS for the test's duration."""
    folder = tmp_path / "user-models"
    folder.mkdir()
    monkeypatch.setenv("NAPARI_GAMA_IR_MODELS", str(folder))
    return folder


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture
def noisy_2d(rng) -> np.ndarray:
    """A 48 x 56 uint16 Poisson image."""
    return rng.poisson(200, (48, 56)).astype(np.uint16)


@pytest.fixture
def noisy_zyx(rng) -> np.ndarray:
    """A 3 x 40 x 44 uint16 stack."""
    return rng.poisson(200, (3, 40, 44)).astype(np.uint16)


@pytest.fixture
def rgb(rng) -> np.ndarray:
    """A 36 x 40 x 3 uint8 RGB image (YXC)."""
    return rng.integers(0, 256, (36, 40, 3), dtype=np.uint8)


@pytest.fixture
def without_bioimageio(monkeypatch):
    """Imports of ``bioimageio.*`` fail, as where the ``[bioimageio]`` extra is not installed."""
    import builtins

    real_import = builtins.__import__

    def no_bioimageio(name, *args, **kwargs):
        if name.startswith("bioimageio"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_bioimageio)
