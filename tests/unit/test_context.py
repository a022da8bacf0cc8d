"""Context models (neighbouring planes as input): made from a 2-D model they restore exactly as it does,
their card records the context and survives a save, and the neighbour tables reflect at the stack's ends."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from napari_gama_ir import InvalidInputError, load_model, save_model
from napari_gama_ir.engine import runtime
from napari_gama_ir.errors import ModelFileError
from napari_gama_ir.model.context import add_context, context_indices, gather_context, gather_planes, neighbour_table
from napari_gama_ir.zoo.card import ModelCard


@pytest.mark.parametrize("planes, channels", [(1, 1), (2, 1), (1, 3)])
def test_add_context_centre_start_restores_exactly_as_the_2d_model(make_tiny, planes, channels):
    net = make_tiny(seed=3, in_channels=channels)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    wide = add_context(net, planes, "Z", start="centre")
    x = torch.randn(2, channels * (2 * planes + 1), 32, 40, generator=torch.Generator().manual_seed(0))
    centre = x[:, planes * channels : (planes + 1) * channels]
    with torch.no_grad():
        assert torch.equal(wide(x), net(centre))
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in before.items())  # the 2-D model is untouched
    assert wide.card.context == {"planes": planes, "axis": "Z"} and net.card.context == {}
    assert wide.card.model_args["in_channels"] == channels * (2 * planes + 1) and wide.card.out_channels == channels


@pytest.mark.parametrize("planes, channels", [(1, 1), (2, 1), (1, 3)])
def test_add_context_mean_start_restores_the_mean_of_the_planes(make_tiny, planes, channels):
    net = make_tiny(seed=3, in_channels=channels)
    wide = add_context(net, planes, "Z")  # the default start: the 2-D model on the planes' running mean
    x = torch.randn(2, channels * (2 * planes + 1), 32, 40, generator=torch.Generator().manual_seed(0))
    mean = x.reshape(2, 2 * planes + 1, channels, 32, 40).mean(1)
    with torch.no_grad():
        assert torch.allclose(wide(x), net(mean), atol=1e-5)
        assert not torch.allclose(wide(x), net(x[:, planes * channels : (planes + 1) * channels]), atol=1e-3)
    with pytest.raises(InvalidInputError, match="'mean', 'centre'"):
        add_context(net, planes, "Z", start="zeros")


def test_a_trained_context_model_uses_its_neighbours(make_tiny):
    wide = add_context(make_tiny(), 1, "T")
    with torch.no_grad():
        wide.intro.weight[:, 0] += 0.1  # as training would: the plane before now counts
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    other = x.clone()
    other[:, 0] += 1
    with torch.no_grad():
        assert not torch.allclose(wide(x), wide(other))


@pytest.mark.parametrize("planes, axis, match", [
    (0, "Z", "at least 1"), (-1, "Z", "an int 0..7"), (1.5, "Z", "an int 0..7"), (8, "Z", "an int 0..7"),
    (True, "Z", "an int 0..7"), (1, "Q", "'Z', 'T'"), (1, None, "'Z', 'T'"),
])  # fmt: skip
def test_add_context_refuses_bad_arguments(tiny_model, planes, axis, match):
    with pytest.raises(InvalidInputError, match=match):
        add_context(tiny_model, planes, axis)


def test_add_context_refuses_a_context_model(tiny_model):
    with pytest.raises(InvalidInputError, match="needs a 2-D model"):
        add_context(add_context(tiny_model, 1, "Z"), 1, "Z")


def test_context_indices_reflect_at_both_ends_within_each_stack():
    # a TZ stack of 2 x 4 planes, 1 neighbour each side along Z (position 1): flat plane t * 4 + z
    table = context_indices((2, 4), 1, 1)
    assert table.tolist() == [[1, 0, 1], [0, 1, 2], [1, 2, 3], [2, 3, 2], [5, 4, 5], [4, 5, 6], [5, 6, 7], [6, 7, 6]]
    along_t = context_indices((3, 2), 0, 2)  # T is the first axis: neighbours are 2 planes apart
    assert along_t[0].tolist() == [4, 2, 0, 2, 4] and along_t[5].tolist() == [1, 3, 5, 3, 1]


def test_neighbour_table_refuses_data_without_enough_planes():
    assert neighbour_table("ZYX", (3, 8, 8), 2, "Z", "x").tolist()[0] == [2, 1, 0, 1, 2]
    with pytest.raises(InvalidInputError, match="has 2 plane.*at least 3"):
        neighbour_table("ZYX", (2, 8, 8), 2, "Z", "context 2")
    with pytest.raises(InvalidInputError, match="single 2-D image"):
        neighbour_table("YX", (8, 8), 1, "Z", "context 1")
    with pytest.raises(InvalidInputError, match="no Z axis"):
        neighbour_table("TYX", (5, 8, 8), 1, "Z", "context 1")


def test_gather_context_and_gather_planes_are_plane_major():
    stack = np.arange(4 * 2 * 3 * 3, dtype=np.float32).reshape(4, 2, 3, 3)  # Z, C, Y, X
    got = gather_context(stack, 0, 1)
    assert np.array_equal(got, stack[[1, 0, 1]])
    gathered = gather_planes(stack, np.array([[1, 0, 1], [2, 3, 2]]))
    assert gathered.shape == (2, 6, 3, 3) and np.array_equal(gathered[1, 2:4], stack[3])
    separate = gather_planes(stack, np.array([[1, 0, 1]]), separate=True)  # each channel with its own neighbours
    assert separate.shape == (2, 3, 3, 3) and np.array_equal(separate[1], stack[[1, 0, 1], 1])
    tensor = gather_planes(torch.from_numpy(stack), np.array([[1, 0, 1]]), separate=True)
    assert torch.equal(tensor, torch.from_numpy(separate))


def test_a_context_model_file_round_trips(tmp_path, tiny_model):
    wide = add_context(tiny_model, 2, "T")
    path = save_model(wide, tmp_path / "ctx")
    card = json.loads(path.with_suffix(".json").read_text())
    assert card["context"] == {"planes": 2, "axis": "T"} and card["model_args"]["context"] == 2
    loaded = load_model(path)
    assert loaded.card.context == {"planes": 2, "axis": "T"} and loaded.context == 2
    x = torch.randn(1, 5, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded(x), wide(x))
    assert "2 neighbouring planes on each side along T" in loaded.card.summary()


def test_a_2d_card_has_no_context_key(tmp_path, tiny_model):
    path = save_model(tiny_model, tmp_path / "plain")
    assert "context" not in json.loads(path.with_suffix(".json").read_text())
    assert load_model(path).card.context == {}


@pytest.mark.parametrize("change, match", [
    ({"context": {"planes": 2, "axis": "Z"}}, "model_args.context"),
    ({"context": {"planes": 1, "axis": "X"}}, "context.axis"),
    ({"context": {"planes": 1}}, "both 'planes' and 'axis'"),
    ({"context": {"planes": 1, "axis": "Z", "extra": 1}}, "unknown keys"),
    ({"context": {}}, "model_args.context"),
])  # fmt: skip
def test_the_card_schema_checks_the_context(tiny_model, change, match):
    data = add_context(tiny_model, 1, "Z").card.to_dict()
    with pytest.raises(ModelFileError, match=match):
        ModelCard.from_dict({**data, **change})


@pytest.mark.parametrize("precision", ["fp32", pytest.param("bf16", marks=pytest.mark.skipif(
    not runtime.cpu_has_bf16(), reason="this CPU has no native bfloat16"))])  # fmt: skip
def test_an_untrained_mean_start_context_model_restores_as_binning_does(make_tiny, precision):
    # restore normalises a context model's data by the running mean's percentiles, so the 'mean' start is
    # exactly the 2-D model on the 3-plane running mean (reflected at the ends), normalisation included
    from napari_gama_ir import restore

    net = make_tiny(seed=4)
    stack = np.random.default_rng(6).poisson(20 * np.random.default_rng(7).uniform(0.2, 1, (5, 32, 32))).astype(np.uint16)
    padded = np.pad(stack.astype(np.float32), ((1, 1), (0, 0), (0, 0)), mode="reflect")
    binned = (padded[:-2] + padded[1:-1] + padded[2:]) / 3
    got = restore(stack, add_context(net, 1, "Z"), axes="ZYX", dtype="float32", device="cpu", precision=precision)
    binning = restore(binned, net, axes="ZYX", device="cpu", precision=precision)
    if precision == "fp32":
        np.testing.assert_allclose(got, binning, rtol=1e-4, atol=1e-3)
    else:  # bf16 rounds the body's activations; the first layer and the residual stay exact (runtime.bf16_copy)
        rounding = np.abs(binning - restore(binned, net, axes="ZYX", device="cpu", precision="fp32")).mean()
        assert np.abs(got - binning).mean() < 0.25 * rounding
