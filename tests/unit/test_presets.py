"""Every registered preset builds, runs forward and backward on a small image, and stays finite
(timm's test_model_forward/backward pattern: a new preset is covered without writing a test)."""

from __future__ import annotations

import pytest
import torch

from napari_gama_ir import InvalidInputError, build_model, list_presets


@pytest.mark.parametrize("preset", list_presets())
def test_forward_backward_finite(preset):
    torch.manual_seed(0)
    net = build_model(preset)
    assert net.card.preset == preset and not net.training
    x = torch.rand(1, 1, 32, 32)
    y = net(x)
    assert y.shape == x.shape and torch.isfinite(y).all()
    y.square().mean().backward()
    grads = [p.grad for p in net.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("preset", list_presets())
def test_preset_card_rebuilds_the_same_architecture(preset):
    from napari_gama_ir.model.gama_ir import GAMAIR

    net = build_model(preset, in_channels=3)
    twin = GAMAIR(**net.card.model_args)
    assert {k: v.shape for k, v in twin.state_dict().items()} == {k: v.shape for k, v in net.state_dict().items()}
    assert net.card.in_channels == 3 and net.card.out_channels == 3


def test_overrides_win_over_the_preset():
    net = build_model("tiny", width=4)
    assert net.card.model_args["width"] == 4
    assert net.intro.out_channels == 4


@pytest.mark.parametrize("kwargs", [{"preset": "XL"}, {"preset": "tiny", "in_channels": 0}])
def test_bad_preset_arguments(kwargs):
    with pytest.raises(InvalidInputError):
        build_model(**kwargs)
