"""scripts/training/average_models.py (a "model soup" of shipped-model candidates): the written model holds the
mean of its sources' weights, restores like that mean, and says where its weights came from."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from napari_gama_ir import build_model, load_model, restore, save_model
from scripts.training import average_models


def _tiny(seed: int, **kw):
    torch.manual_seed(seed)
    return build_model("tiny", **kw)


def test_the_average_holds_the_mean_weights_and_names_its_sources(tmp_path):
    a, b = _tiny(1), _tiny(2)
    save_model(a, tmp_path / "a")
    save_model(b, tmp_path / "b")
    average_models.main([str(tmp_path / "a"), str(tmp_path / "b"), str(tmp_path / "soup" / "m")])

    soup = load_model(tmp_path / "soup" / "m")
    sa, sb = a.state_dict(), b.state_dict()
    for k, v in soup.state_dict().items():
        if v.is_floating_point():
            torch.testing.assert_close(v, (sa[k] + sb[k]) / 2)
    card = json.loads((tmp_path / "soup" / "m.json").read_text())
    assert str(tmp_path / "a") in card["training"]["weights_from"] and str(tmp_path / "b") in card["training"]["weights_from"]

    x = np.random.default_rng(0).random((48, 40), dtype=np.float32)
    mean_net = _tiny(1)
    mean_net.load_state_dict({k: (sa[k] + sb[k]) / 2 if sa[k].is_floating_point() else sa[k] for k in sa})
    np.testing.assert_allclose(restore(x, soup, axes="YX"), restore(x, mean_net, axes="YX"), atol=1e-6)


def test_models_of_different_architectures_are_refused(tmp_path):
    save_model(_tiny(1), tmp_path / "gray")
    save_model(_tiny(1, in_channels=3), tmp_path / "rgb")
    with pytest.raises(ValueError, match="architecture"):
        average_models.main([str(tmp_path / "gray"), str(tmp_path / "rgb"), str(tmp_path / "m")])
    assert not (tmp_path / "m.safetensors").exists()


def test_one_source_is_refused(tmp_path, capsys):
    save_model(_tiny(1), tmp_path / "a")
    with pytest.raises(SystemExit):
        average_models.main([str(tmp_path / "a"), str(tmp_path / "m")])
    assert "at least two" in capsys.readouterr().err
