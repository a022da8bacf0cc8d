"""Self-supervised objectives: shapes, the centre plane's own noise hidden from the pixel scored, context
planes passed through, reproducible with a generator, gradients reaching the network."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from napari_gama_ir.training.objectives import (
    BlindSpot,
    Neighbor2Neighbor,
    Recorrupted,
    make_objective,
    neighbour_masks,
    resolve_mode,
    subsample,
)


class Correlation:  # what estimate.correlation.noise_correlation returns, as far as the objectives read it
    def __init__(self, direction, length):
        self.direction, self.length = direction, length


class Recorder(torch.nn.Module):
    """A 1 x 1 convolution from Cin to C channels that keeps every input it was given."""

    def __init__(self, cin=1, cout=1):
        super().__init__()
        self.conv = torch.nn.Conv2d(cin, cout, 1)
        self.seen = []

    def forward(self, x):
        self.seen.append(x.detach().clone())
        return self.conv(x)


def objectives():
    return [BlindSpot(0.05), Neighbor2Neighbor(), Recorrupted(gain=0.01, read_var=1e-3)]


@pytest.mark.parametrize("objective", objectives(), ids=lambda o: type(o).__name__)
def test_loss_is_a_scalar_with_gradients_and_repeats_with_the_same_generator(objective):
    torch.manual_seed(0)
    inp = torch.rand(2, 3, 16, 16)  # a context input: one plane each side of the centre
    target = inp[:, 1:2].clone()
    net = Recorder(3, 1)
    losses = []
    for _ in range(2):
        net.zero_grad()
        loss = objective(net, inp, target, centre=slice(1, 2), generator=torch.Generator().manual_seed(3))
        loss.backward()
        losses.append(loss.item())
        assert loss.ndim == 0 and torch.isfinite(loss)
        assert net.conv.weight.grad is not None and net.conv.weight.grad.abs().sum() > 0
    assert losses[0] == losses[1]
    other = objective(net, inp, target, centre=slice(1, 2), generator=torch.Generator().manual_seed(4)).item()
    assert other != losses[0]


@pytest.mark.parametrize("objective", objectives(), ids=lambda o: type(o).__name__)
def test_inputs_stay_unmodified(objective):
    inp, target = torch.rand(1, 1, 16, 16), torch.rand(1, 1, 16, 16)
    before = inp.clone(), target.clone()
    objective(Recorder(), inp, target, generator=torch.Generator().manual_seed(0))
    assert torch.equal(inp, before[0]) and torch.equal(target, before[1])


def test_blind_spot_hides_the_scored_pixels_and_leaves_context_planes_as_they_are():
    inp = torch.arange(3 * 32 * 32, dtype=torch.float32).reshape(1, 3, 32, 32)  # every value unique
    net = Recorder(3, 1)
    BlindSpot(0.02)(net, inp, inp[:, 1:2], centre=slice(1, 2), generator=torch.Generator().manual_seed(0))
    seen = net.seen[0]
    assert torch.equal(seen[:, 0], inp[:, 0]) and torch.equal(seen[:, 2], inp[:, 2])
    changed = seen[:, 1] != inp[:, 1]
    assert 10 <= changed.sum() <= round(0.02 * 32 * 32)


def test_structured_blind_spot_hides_the_line_along_the_correlation():
    inp = torch.arange(64 * 64, dtype=torch.float32).reshape(1, 1, 64, 64)
    net = Recorder()
    BlindSpot(0.002, Correlation("x", 3))(net, inp, inp, generator=torch.Generator().manual_seed(0))
    changed = (net.seen[0] != inp)[0, 0]
    for y, x in changed.nonzero().tolist():  # some of them are the masked pixels; each has its line hidden
        if 3 <= x < 61 and changed[y, x - 3 : x + 4].all():
            break
    else:
        pytest.fail("no masked pixel has its 3 neighbours on each side along x replaced")


def test_neighbour_pairs_are_adjacent_distinct_pixels_and_follow_the_correlation():
    g1, g2 = neighbour_masks(4, 32, 32, generator=torch.Generator().manual_seed(0))
    assert g1.shape == (4, 16, 16) and torch.all(g1 != g2)
    assert set(torch.unique(g1 ^ g2).tolist()) == {1, 2}  # beside or above/below, never diagonal
    _, across_x = neighbour_masks(4, 32, 32, "x", generator=torch.Generator().manual_seed(0))
    g1x, _ = neighbour_masks(4, 32, 32, "x", generator=torch.Generator().manual_seed(0))
    assert torch.all(g1x ^ across_x == 2)  # noise shared along a row: the pair is one above the other


def test_subsample_takes_one_pixel_of_each_cell_for_every_channel():
    x = torch.arange(2 * 3 * 4 * 6, dtype=torch.float32).reshape(2, 3, 4, 6)
    index = torch.tensor([[[0, 1, 2], [3, 0, 1]]]).expand(2, 2, 3)
    out = subsample(x, index)
    assert out.shape == (2, 3, 2, 3)
    assert out[0, 1, 0, 1] == x[0, 1, 0, 3] and out[1, 2, 1, 0] == x[1, 2, 3, 1]  # index 1: top right; 3: bottom right


def test_neighbor2neighbor_never_shows_the_pixel_it_scores():
    inp = torch.arange(3 * 16 * 16, dtype=torch.float32).reshape(1, 3, 16, 16)
    target = inp[:, 1:2]
    net = Recorder(3, 1)
    gen = torch.Generator().manual_seed(0)
    Neighbor2Neighbor()(net, inp, target, centre=slice(1, 2), generator=gen)
    full, sub = net.seen  # the whole input (no gradient) for the regulariser, then g1's sub-image
    assert torch.equal(full, inp) and sub.shape == (1, 3, 8, 8)
    g1, g2 = neighbour_masks(1, 16, 16, generator=torch.Generator().manual_seed(0))
    assert torch.equal(sub, subsample(inp, g1))  # context planes get the same sub-sampling
    scored = set(subsample(target, g2).flatten().tolist())
    assert not scored & set(sub[:, 1].flatten().tolist())


def test_recorrupted_adds_noise_to_the_centre_plane_only_with_the_modelled_variance():
    torch.manual_seed(0)
    inp = torch.full((4, 3, 64, 64), 0.5)
    net = Recorder(3, 1)
    objective = Recorrupted(gain=0.02, read_var=0.0001, alpha=0.5)
    objective(net, inp, inp[:, 1:2], centre=slice(1, 2), generator=torch.Generator().manual_seed(0))
    seen = net.seen[0]
    assert torch.equal(seen[:, [0, 2]], inp[:, [0, 2]])
    added = (seen[:, 1] - 0.5) / 0.5  # alpha z
    assert abs(added.var().item() - (0.02 * 0.5 + 0.0001)) < 0.001


def test_modes_name_their_objectives():
    assert resolve_mode("self-supervised") == "blind-spot"
    assert isinstance(make_objective("blind-spot", mask_fraction=0.01), BlindSpot)
    assert isinstance(make_objective("neighbor2neighbor"), Neighbor2Neighbor)
    with pytest.raises(ValueError, match="noise model"):
        make_objective("recorrupted")
    with pytest.raises(ValueError, match="accepted"):
        make_objective("supervised")
    recorrupted = make_objective("recorrupted", noise=SimpleNamespace(gain=0.1, sigma=0.2))  # a NoiseEstimate's fields
    assert np.isclose(recorrupted.gain, 0.1) and np.isclose(recorrupted.read_var, 0.04)
