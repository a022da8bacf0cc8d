"""Model files: save_model/load_model round-trip weights and card; a corrupted, truncated, mismatching
or unknown-keyed file raises ModelFileError naming the file; nothing is ever unpickled. The card-in-header
design, the schema, names and crash safety are tested in tests/reliability/test_model_files.py."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from napari_gama_ir import InvalidInputError, ModelCard, ModelFileError, list_models, load_model, save_model


@pytest.fixture
def saved(tiny_model, tmp_path):
    """The tiny model saved as tmp_path/my-model.{safetensors,json}."""
    return save_model(tiny_model, tmp_path / "my-model.safetensors")


@pytest.fixture
def legacy(saved):
    """``saved`` as a model file without an embedded card: its card is my-model.json (as the shipped ones)."""
    save_file(load_file(str(saved)), str(saved), metadata={"format": "pt"})
    return saved


def _same_outputs(a, b):
    x = torch.rand(1, 1, 20, 24, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(a(x), b(x), rtol=0, atol=0)


def test_round_trip_keeps_weights_and_card(tiny_model, saved):
    assert saved.name == "my-model.safetensors" and saved.with_suffix(".json").exists()
    assert sorted(p.name for p in saved.parent.iterdir()) == ["my-model.json", "my-model.safetensors"]  # no temp files
    import os

    umask = os.umask(0o022)
    os.umask(umask)
    for path in saved.parent.iterdir():  # ordinary files, not mkstemp's owner-only ones
        assert path.stat().st_mode & 0o777 == 0o666 & ~umask
    loaded = load_model(saved)
    assert loaded.card == tiny_model.card and loaded.card.name == "my-model"
    assert not loaded.training
    _same_outputs(tiny_model, loaded)
    for variant in (saved.with_suffix(""), saved.with_suffix(".json"), str(saved)):
        assert load_model(variant).card.name == "my-model"


def test_card_json_round_trip():
    card = ModelCard(name="x", preset="tiny", model_args={"width": 8, "enc_blocks": [1, 1], "dec_blocks": [1, 1]}, metrics={"psnr": 30.5})
    assert ModelCard.from_dict(json.loads(card.to_json())) == card


def test_bare_name_goes_to_the_user_folder_and_is_listed(tiny_model, user_models_dir):
    path = save_model(tiny_model, "my-denoiser")
    assert path.parent == user_models_dir
    assert "my-denoiser" in [c.name for c in list_models()]
    _same_outputs(tiny_model, load_model("my-denoiser"))


def test_a_broken_user_card_does_not_hide_the_others(tiny_model, user_models_dir):
    save_model(tiny_model, "good")
    (user_models_dir / "bad.safetensors").write_bytes(b"x")
    (user_models_dir / "bad.json").write_text("{", encoding="utf-8")
    names = [c.name for c in list_models()]
    assert "good" in names and "bad" not in names


def test_unknown_name_lists_what_is_accepted(tiny_model, user_models_dir):
    save_model(tiny_model, "known-one")
    with pytest.raises(InvalidInputError, match="known-one"):
        load_model("no-such-model")


def test_save_needs_a_card_and_a_good_name(tiny_model, tmp_path):
    with pytest.raises(InvalidInputError, match="no card"):
        save_model(torch.nn.Conv2d(1, 1, 1), tmp_path / "a")
    with pytest.raises(InvalidInputError, match="'.hidden' is not accepted"):
        save_model(tiny_model, tmp_path / ".hidden")


def _rewrite_card(saved, **changes):
    card_path = saved.with_suffix(".json")
    data = json.loads(card_path.read_text())
    for key, value in changes.items():
        if value is None:
            data.pop(key)
        else:
            data[key] = value
    card_path.write_text(json.dumps(data))
    return card_path


@pytest.mark.parametrize(
    "corrupt,fragment",
    [
        (lambda p: p.with_suffix(".json").write_text("{not json"), "not valid JSON"),
        (lambda p: p.with_suffix(".json").write_bytes(b"\xff\xfe\x00garbage"), "not valid JSON"),
        (lambda p: p.with_suffix(".json").write_text("[1, 2]"), "must be a JSON object"),
        (lambda p: p.with_suffix(".json").unlink(), "model card not found"),
        (lambda p: _rewrite_card(p, colour="blue"), "unknown model card keys \\['colour'\\]"),
        (lambda p: _rewrite_card(p, format_version=99), "format_version 99"),
        (lambda p: _rewrite_card(p, model_args=None), "lacks \\['model_args'\\]"),
        (lambda p: _rewrite_card(p, architecture="UNet"), "architecture 'UNet'"),
        (lambda p: _rewrite_card(p, model_args={"width": 8, "depth": 3}), "do not build a GAMAIR"),
    ],
    ids=["bad-json", "bad-utf8", "not-object", "no-card", "unknown-key", "version", "missing-key", "architecture", "bad-args"],
)
def test_bad_card_names_the_card_file(legacy, corrupt, fragment):
    corrupt(legacy)
    with pytest.raises(ModelFileError, match=fragment) as info:
        load_model(legacy)
    assert str(legacy.with_suffix(".json")) in str(info.value)


def _truncate(p):
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])


def _drop_tensor(p):
    state = load_file(str(p))
    state.pop("ending.weight")
    save_file(state, str(p))


def _extra_tensor(p):
    state = load_file(str(p))
    state["zz.extra"] = torch.zeros(3)
    save_file(state, str(p))


def _pickle_instead(p):
    p.write_bytes(pickle.dumps({"intro.weight": np.zeros(3)}))


@pytest.mark.parametrize(
    "corrupt,fragment",
    [
        (_truncate, "not a readable safetensors"),
        (lambda p: p.write_bytes(b""), "not a readable safetensors"),
        (_pickle_instead, "not a readable safetensors"),
        (_drop_tensor, "missing tensor 'ending.weight'"),
        (_extra_tensor, "unexpected tensor 'zz.extra'"),
        (lambda p: _rewrite_card(p, model_args={**json.loads(p.with_suffix(".json").read_text())["model_args"], "width": 4}),
         "tensor 'intro.weight' has shape \\(8, 1, 3, 3\\)"),
    ],
    ids=["truncated", "empty", "pickle", "missing-tensor", "extra-tensor", "shape-mismatch"],
)  # fmt: skip
def test_bad_weights_name_the_weights_file(legacy, corrupt, fragment):
    corrupt(legacy)
    with pytest.raises(ModelFileError, match=fragment) as info:
        load_model(legacy)
    assert str(legacy) in str(info.value)


def test_missing_weights_file(saved):
    saved.unlink()
    with pytest.raises(ModelFileError, match="model file not found"):
        load_model(saved)


def test_loading_never_unpickles(saved, monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("load_model must not unpickle")

    monkeypatch.setattr(torch, "load", forbidden)
    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "loads", forbidden)
    assert load_model(saved).card.name == "my-model"


class _Trap:
    """Unpickling this creates the marker file: proof that something unpickled."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_pickle_posing_as_weights_is_never_run(saved):
    marker = saved.parent / "unpickled"
    torch.save({"intro.weight": _Trap(marker)}, saved)  # what a torch.load-based loader would execute
    with pytest.raises(ModelFileError, match="not a readable safetensors"):
        load_model(saved)
    assert not marker.exists()


def test_save_card_replaces_the_card_and_leaves_the_weights(tiny_model, tmp_path):
    """Recording new metrics rewrites the card (embedded and its JSON copy): float16 weights stay float16,
    value for value."""
    from napari_gama_ir.zoo.store import save_card

    path = save_model(tiny_model.half(), tmp_path / "half-model")
    before = load_file(str(path))
    card = load_model(path).card
    card_path = save_card(card.replace(metrics={"summary": "new numbers"}), path)
    assert card_path == path.with_suffix(".json")
    assert json.loads(card_path.read_text())["metrics"] == {"summary": "new numbers"}
    assert load_model(path).card.metrics == {"summary": "new numbers"}
    after = load_file(str(path))
    assert all(t.dtype == torch.float16 and torch.equal(t, after[k]) for k, t in before.items()) and after.keys() == before.keys()


def test_save_card_of_a_model_without_embedded_card_rewrites_the_json_only(legacy):
    from napari_gama_ir.zoo.store import save_card

    before = legacy.read_bytes()
    save_card(load_model(legacy).card.replace(description="new words"), legacy)
    assert legacy.read_bytes() == before and load_model(legacy).card.description == "new words"


# --- card formats: format 2 is written and flat; format 1 still loads ---------------------------------

_PHASE_1 = {"base_model": None, "mode": "synthetic", "steps": 100, "seconds": 60.0, "device": "cpu", "seed": 0,
            "command": "python -m scripts.training.train_shipped general-gray --seed 0", "hardware": "a laptop; ran beside a test"}  # fmt: skip


def _format_1_card(tmp_path, tiny_model):
    """``saved`` rewritten as a user model of format 1: no embedded card, a JSON card with a nested record."""
    path = save_model(tiny_model, tmp_path / "old-model")
    save_file(load_file(str(path)), str(path), metadata={"format": "pt"})
    data = json.loads(path.with_suffix(".json").read_text())
    phase_2 = {**_PHASE_1, "base_model": "general-gray", "steps": 50, "seconds": 30.0, "device": "cuda (NVIDIA H200)",
               "command": "python -m scripts.training.train_shipped general-gray --base weights/general-gray --seed 1"}  # fmt: skip
    data.update(format_version=1, training={**phase_2, "run_note": "chosen by hand", "previous_phase": _PHASE_1,
                                             "total_steps": 150, "total_seconds": 90.0},
                metrics={"summary": "val 1 -> 2 dB", "earlier_summaries": ["val 0 -> 1 dB"], "eval": {"images": ["x"]}})  # fmt: skip
    path.with_suffix(".json").write_text(json.dumps(data))
    return path


def test_a_format_1_card_loads_flattened_without_run_notes(tmp_path, tiny_model):
    card = load_model(_format_1_card(tmp_path, tiny_model)).card
    t = card.training
    assert card.format_version == 2 and "previous_phase" not in t and "run_note" not in t and "hardware" not in t
    assert t["steps"] == 50 and t["total_steps"] == 150 and t["total_seconds"] == 90.0
    assert t["time_by_hardware"] == {"cpu": 60.0, "cuda (NVIDIA H200)": 30.0}
    assert t["phases"] == [{k: _PHASE_1[k] for k in ("steps", "seconds", "device", "command")}]
    assert card.metrics == {"summary": "val 1 -> 2 dB", "eval": {"images": ["x"]}}


def test_save_model_writes_format_2_and_flattens_a_continued_run(tmp_path, tiny_model):
    nested = {**_PHASE_1, "steps": 7, "seconds": 1.0, "command": "second", "previous_phase": {**_PHASE_1, "phases": []},
              "total_steps": 107, "total_seconds": 61.0}  # fmt: skip
    tiny_model.card = tiny_model.card.replace(training=nested, metrics={"summary": "b", "earlier_summaries": ["a"]})
    path = save_model(tiny_model, tmp_path / "continued")
    for data in (json.loads(path.with_suffix(".json").read_text()), load_model(path).card.to_dict()):
        t = data["training"]
        assert data["format_version"] == 2 and "previous_phase" not in t and t["command"] == "second"
        assert [p["command"] for p in t["phases"]] == [_PHASE_1["command"]] and t["total_steps"] == 107
        assert data["metrics"] == {"summary": "b"}
    again = load_model(path)  # a flat card stays as it is when saved again
    assert ModelCard.from_dict(again.card.to_dict()) == again.card


def test_a_format_2_card_is_flat(saved):
    data = json.loads(saved.with_suffix(".json").read_text())
    assert data["format_version"] == 2
    data["training"] = {"steps": 3, "previous_phase": {"steps": 2}}
    with pytest.raises(ModelFileError, match="training.previous_phase.*flat"):
        ModelCard.from_dict(data, source="x.json")
    data["training"] = {"steps": "three"}
    with pytest.raises(ModelFileError, match="training.steps"):
        ModelCard.from_dict(data, source="x.json")
    data["training"] = {"phases": [{"steps": 1, "notes": {"nested": True}}]}
    with pytest.raises(ModelFileError, match="training.phases"):
        ModelCard.from_dict(data, source="x.json")


def test_shipped_cards_are_format_2_small_and_flat():
    from napari_gama_ir.zoo.store import shipped_models_dir

    for path in shipped_models_dir().glob("*.json"):
        data = json.loads(path.read_text())
        assert data["format_version"] == 2 and len(path.read_bytes()) <= 8 * 1024, path.name
        assert "previous_phase" not in data["training"] and "earlier_summaries" not in data["metrics"]
        assert ModelCard.from_dict(data).to_dict() == data
