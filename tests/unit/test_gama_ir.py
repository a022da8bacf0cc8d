"""The GAMA-IR network keeps any input size, has a global receptive field only through GAMA (finite with
local means), and "S" has the parameter count the paper's size implies (about 10.4 M)."""

from __future__ import annotations

import pytest
import torch

from napari_gama_ir import build_model
from napari_gama_ir.model import GAMA


@pytest.mark.parametrize("shape", [(1, 1, 7, 5), (1, 1, 13, 17), (1, 1, 3, 3), (1, 1, 1, 1), (2, 1, 31, 4), (1, 1, 64, 64)])
def test_output_shape_equals_input_shape(tiny_model, shape):
    x = torch.randn(shape)
    with torch.no_grad():
        y = tiny_model(x)
    assert y.shape == x.shape
    assert torch.isfinite(y).all()


def test_output_channels_follow_out_channels(make_tiny):
    net = make_tiny(in_channels=3, out_channels=1)
    with torch.no_grad():
        assert net(torch.randn(1, 3, 13, 11)).shape == (1, 1, 13, 11)


def _corner_response(net, size: int = 128) -> float:
    """How much the bottom-right output pixel moves when the top-left input pixel changes.

    Float64, so that the cumulative-sum rounding of local box means (about 1e-8 in float32) cannot be
    mistaken for a real path from corner to corner (about 4e-8 through GAMA, second order).
    """
    net = net.double()
    torch.manual_seed(1)
    x = torch.rand(1, 1, size, size, dtype=torch.float64)
    x2 = x.clone()
    x2[..., 0, 0] += 10.0
    with torch.no_grad():
        return float((net(x2) - net(x))[..., -1, -1].abs())


def test_global_receptive_field_comes_from_gama(make_tiny):
    assert _corner_response(make_tiny()) > 1e-9
    # Without GAMA the tiny network sees about 16 pixels, far less than 128: no path at all.
    assert _corner_response(make_tiny(use_gama=False)) == 0.0


def test_local_means_give_a_finite_receptive_field(make_tiny):
    net = make_tiny(mean_mode="local", local_size=8)
    assert _corner_response(net) < 1e-13  # rounding only
    # The same weights with global means see the whole image again.
    net.set_mean_mode("global")
    assert _corner_response(net) > 1e-9


def test_gama_unit_has_150_parameters():
    assert sum(p.numel() for p in GAMA().parameters()) == 150


def test_gama_local_mean_equals_global_when_the_box_covers_the_axis():
    torch.manual_seed(0)
    x = torch.randn(2, 4, 9, 6)
    unit = GAMA(mean_mode="global")
    local = GAMA(mean_mode="local", local_size=64)
    local.load_state_dict(unit.state_dict())
    torch.testing.assert_close(local(x), unit(x), rtol=1e-5, atol=1e-5)


def test_s_preset_parameter_count():
    n = sum(p.numel() for p in build_model("S").parameters())
    assert 10.3e6 <= n <= 10.5e6


def test_unknown_mean_mode_is_rejected(tiny_model):
    with pytest.raises(ValueError, match="mean_mode"):
        tiny_model.set_mean_mode("median")
    with pytest.raises(ValueError, match="mean_mode"):
        GAMA(mean_mode="median")


@pytest.mark.parametrize("mean_mode", ["global", "local"])
def test_cpu_inference_fast_path_equals_the_training_path(make_tiny, mean_mode):
    """Inference (oneDNN 1x1 convs with the residual added in the kernel, GAMA added in place) computes
    what the autograd path computes, and leaves the input alone."""
    net = make_tiny(in_channels=1, mean_mode=mean_mode, local_size=24)
    torch.manual_seed(0)
    with torch.no_grad():
        for p in net.parameters():  # beta and gamma start at 0; give every path a real contribution
            p.normal_(0, 0.2)
    x = torch.rand(2, 1, 40, 36)
    kept = x.clone()
    expected = net(x).detach()  # gradients on: the plain path
    with torch.inference_mode():
        fast = net(x)
    torch.testing.assert_close(fast, expected, rtol=1e-5, atol=1e-5)
    assert torch.equal(x, kept)


def test_gama_gives_the_same_result_in_either_memory_format():
    """The channels-last route (means as matrix products) equals the plain one, values and gradients."""
    torch.manual_seed(0)
    gama = GAMA()
    x = torch.randn(2, 12, 19, 23, requires_grad=True)
    x_last = x.detach().contiguous(memory_format=torch.channels_last).requires_grad_(True)
    plain, last = gama(x), gama(x_last)
    torch.testing.assert_close(last, plain, rtol=1e-5, atol=1e-5)
    weights = torch.randn_like(plain)
    (plain * weights).sum().backward()
    (last * weights).sum().backward()
    torch.testing.assert_close(x_last.grad, x.grad, rtol=1e-5, atol=1e-5)


def test_bf16_model_runs_on_the_cpu_and_stays_bf16(make_tiny):
    """A model cast to bf16 (no autocast) keeps bf16 through the inference fast paths."""
    net = make_tiny().to(torch.bfloat16)
    x = torch.rand(1, 1, 32, 32, dtype=torch.bfloat16)
    with torch.inference_mode():
        y = net(x)
        expected = make_tiny()(x.float())
    assert y.dtype == torch.bfloat16
    assert (y.float() - expected).abs().max() < 0.05


@pytest.mark.parametrize("trainable", [("beta", "gamma"), ("bias", "beta", "gamma")])
def test_fine_tuning_a_few_parameters_gets_their_gradients(make_tiny, monkeypatch, trainable):
    """With the rest frozen, the CPU fast paths step aside so that biases, beta and gamma still learn."""
    import napari_gama_ir.model.gama_ir as gama_ir

    def grads(fast: bool) -> dict:
        monkeypatch.setattr(gama_ir, "_MKLDNN_POINTWISE", fast)
        net = make_tiny()
        for name, p in net.named_parameters():
            p.requires_grad_(name.endswith(trainable))
        net(torch.rand(2, 1, 24, 24, generator=torch.Generator().manual_seed(0))).square().mean().backward()
        return {n: p.grad for n, p in net.named_parameters() if p.requires_grad}

    fast, plain = grads(True), grads(False)
    assert all(g is not None for g in fast.values())
    for name in plain:
        torch.testing.assert_close(fast[name], plain[name], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("preset", ["tiny", "w16"])
def test_nchw_memory_gives_the_channels_last_result(preset, monkeypatch):
    """The plain NCHW layout (an option on GPUs, GPU_CHANNELS_LAST) computes the same network."""
    from napari_gama_ir.model import gama_ir

    torch.manual_seed(0)
    net = build_model(preset)
    with torch.no_grad():
        for name, param in net.named_parameters():
            if name.endswith(("beta", "gamma")):
                param.fill_(0.5)
        x = torch.rand(2, 1, 48, 40)
        channels_last = net(x)
        monkeypatch.setattr(gama_ir, "_use_channels_last", lambda device: False)
        nchw = net(x)
    torch.testing.assert_close(nchw, channels_last, atol=2e-5, rtol=1e-4)
