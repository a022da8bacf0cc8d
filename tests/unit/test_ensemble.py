"""The geometric self-ensemble: 8 views turned back exactly, and a result that turns with its input."""

import torch

from napari_gama_ir.engine.ensemble import VIEWS, self_ensemble


def test_views_are_turned_back_exactly():
    x = torch.arange(2 * 3 * 4 * 6, dtype=torch.float32).reshape(2, 3, 4, 6)
    calls = []

    def identity(view):
        calls.append(tuple(view.shape))
        return view.clone()

    torch.testing.assert_close(self_ensemble(identity, x), x, rtol=0, atol=0)
    assert len(calls) == VIEWS and calls.count((2, 3, 6, 4)) == VIEWS // 2  # odd turns swap H and W


def test_the_mean_turns_with_the_input_where_the_network_alone_does_not(make_tiny):
    net = make_tiny(seed=3).eval()
    x = torch.rand(1, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        plain, turned = net(x), net(torch.rot90(x, 1, (-2, -1)))
        assert (torch.rot90(plain, 1, (-2, -1)) - turned).abs().max() > 1e-3  # the network alone is not symmetric
        mean, mean_turned = self_ensemble(net, x), self_ensemble(net, torch.rot90(x, 1, (-2, -1)))
        mirrored = self_ensemble(net, x.flip(-2))
    torch.testing.assert_close(mean_turned, torch.rot90(mean, 1, (-2, -1)), rtol=0, atol=1e-5)
    torch.testing.assert_close(mirrored, mean.flip(-2), rtol=0, atol=1e-5)
    assert mean.dtype == torch.float32 and mean.shape == x.shape
