"""Model files are trustworthy: the card travels inside the safetensors header (one file, one rename per
save), every card is checked against one schema before anything is built, names are file stems that obey
one rule, a broken user model never hides the others, weights with NaN or inf are refused, and a save
killed with SIGKILL at any moment leaves a loadable model."""

from __future__ import annotations

import json
import logging
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from napari_gama_ir import InvalidInputError, ModelCard, ModelFileError, build_model, list_models, load_model, save_model
from napari_gama_ir.model.gama_ir import GAMAIR
from napari_gama_ir.model.presets import PRESETS
from napari_gama_ir.zoo import store
from napari_gama_ir.zoo.card import MAX_PARAMETERS, parameter_count
from napari_gama_ir.zoo.store import CARD_METADATA_KEY, save_card, shipped_models_dir

LOGGER = "napari_gama_ir.zoo.store"


def _tiny(seed: int = 0, **overrides) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model("tiny", **overrides)


def _embedded(path: Path) -> dict | None:
    with safe_open(str(path), framework="pt") as f:
        text = (f.metadata() or {}).get(CARD_METADATA_KEY)
    return None if text is None else json.loads(text)


def _rewrite_embedded(path: Path, change) -> None:
    """Rewrite the card embedded in ``path`` with ``change(card_dict)`` (the JSON copy is left alone)."""
    with safe_open(str(path), framework="pt") as f:
        metadata = dict(f.metadata())
    data = json.loads(metadata[CARD_METADATA_KEY])
    change(data)
    metadata[CARD_METADATA_KEY] = json.dumps(data)
    save_file(load_file(str(path)), str(path), metadata=metadata)


def _make_legacy(path: Path) -> None:
    """Drop the embedded card: the file takes its card from NAME.json, as the shipped ones do."""
    save_file(load_file(str(path)), str(path), metadata={"format": "pt"})


def _hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.fixture
def saved(user_models_dir) -> Path:
    return save_model(_tiny(), "good-model")


# --- one file commits a save ---------------------------------------------------------------------------


def test_the_card_is_embedded_and_copied_beside(saved):
    embedded = _embedded(saved)
    assert embedded == json.loads(saved.with_suffix(".json").read_text()) == load_model(saved).card.to_dict()
    assert embedded["name"] == "good-model"
    with safe_open(str(saved), framework="pt") as f:
        assert f.metadata()["format"] == "pt"
    assert sorted(p.name for p in saved.parent.iterdir()) == ["good-model.json", "good-model.safetensors"]


@pytest.mark.parametrize("json_copy", ["missing", "garbage", "other-card"])
def test_the_embedded_card_wins_and_nothing_is_rewritten(saved, json_copy):
    card_path = saved.with_suffix(".json")
    if json_copy == "missing":
        card_path.unlink()
    elif json_copy == "garbage":
        card_path.write_text("{not json")
    else:  # a stale copy from a save interrupted between the two files: another architecture
        other = json.loads(card_path.read_text())
        card_path.write_text(json.dumps({**other, "model_args": {**other["model_args"], "width": 16}, "description": "stale"}))
    before = {p.name: p.read_bytes() for p in saved.parent.iterdir()}
    net = load_model("good-model")
    assert net.card.model_args["width"] == 8 and net.card.description == ""
    assert [c.name for c in list_models() if c.name == "good-model"] == ["good-model"]
    assert load_model(saved).card == net.card
    assert {p.name: p.read_bytes() for p in saved.parent.iterdir()} == before  # nothing repaired or rewritten


def test_a_file_without_embedded_card_uses_the_json(saved):
    _make_legacy(saved)
    card_path = saved.with_suffix(".json")
    card_path.write_text(json.dumps({**json.loads(card_path.read_text()), "description": "from the json"}))
    assert load_model("good-model").card.description == "from the json"
    card_path.unlink()
    with pytest.raises(ModelFileError, match="model card not found") as info:
        load_model("good-model")
    assert str(card_path) in str(info.value)


def test_shipped_models_validate_and_are_not_touched():
    folder = shipped_models_dir()
    before = {p.name: (p.stat().st_mtime_ns, p.stat().st_size) for p in folder.iterdir()}
    names = {c.name for c in list_models()}
    shipped = {p.stem for p in folder.glob("*.safetensors")}
    assert shipped <= names
    assert all(_embedded(folder / f"{name}.safetensors") is None for name in shipped)  # legacy files, left as they are
    assert load_model("photo-gray").card.name == "photo-gray"
    assert {p.name: (p.stat().st_mtime_ns, p.stat().st_size) for p in folder.iterdir()} == before


def test_an_existing_model_is_replaced_only_with_overwrite(saved):
    before = saved.read_bytes()
    other = _tiny(1, width=16)
    with pytest.raises(InvalidInputError, match="overwrite=True") as info:
        save_model(other, "good-model")
    assert str(saved) in str(info.value) and saved.read_bytes() == before
    assert save_model(other, saved, overwrite=True) == saved
    assert load_model("good-model").card.model_args["width"] == 16
    assert json.loads(saved.with_suffix(".json").read_text())["model_args"]["width"] == 16


def _fail_in_save_file(monkeypatch):
    real = store._write_safetensors

    def half_written(state, filename, metadata=None):
        real(state, filename, metadata=metadata)
        Path(filename).write_bytes(Path(filename).read_bytes()[:100])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(store, "_write_safetensors", half_written)


def _fail_in_replace(monkeypatch):
    def refuse(src, dst):
        raise PermissionError(13, "Permission denied", str(dst))

    monkeypatch.setattr(store.os, "replace", refuse)


def _interrupt_in_save_file(monkeypatch):
    def interrupted(state, filename, metadata=None):
        Path(filename).write_bytes(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(store, "_write_safetensors", interrupted)


@pytest.mark.parametrize("fail", [_fail_in_save_file, _fail_in_replace, _interrupt_in_save_file])
def test_a_failed_save_keeps_the_old_model_and_leaves_no_temp_file(saved, fail):
    before = {p.name: p.read_bytes() for p in saved.parent.iterdir()}
    card = load_model(saved).card
    with pytest.MonkeyPatch.context() as patch:
        fail(patch)
        with pytest.raises((OSError, KeyboardInterrupt)):
            save_model(_tiny(1, width=16), "good-model", overwrite=True)
        with pytest.raises((OSError, KeyboardInterrupt)):
            save_model(_tiny(1), "new-model")
        with pytest.raises((OSError, KeyboardInterrupt)):
            save_card(card.replace(description="x"), saved)
    assert {p.name: p.read_bytes() for p in saved.parent.iterdir()} == before  # no temp file, nothing half-written
    assert load_model("good-model").card.model_args["width"] == 8


def test_a_failed_json_copy_leaves_a_loadable_model(user_models_dir, monkeypatch, caplog):
    real = store._atomic_write

    def no_json(target, write):
        if target.suffix == ".json":
            raise OSError(28, "No space left on device")
        real(target, write)

    monkeypatch.setattr(store, "_atomic_write", no_json)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        path = save_model(_tiny(), "no-copy")
    assert "JSON card copy could not be written" in caplog.text
    assert sorted(p.name for p in user_models_dir.iterdir()) == ["no-copy.safetensors"]
    assert load_model("no-copy").card.name == "no-copy" and [c.name for c in list_models() if c.name == "no-copy"]
    assert path == user_models_dir / "no-copy.safetensors"


def test_save_card_rewrites_the_embedded_card(saved):
    card = load_model(saved).card
    save_card(card.replace(metrics={"summary": "val PSNR 1 -> 2 dB"}, name="ignored"), "good-model")
    assert _embedded(saved)["metrics"] == {"summary": "val PSNR 1 -> 2 dB"} and _embedded(saved)["name"] == "good-model"
    assert json.loads(saved.with_suffix(".json").read_text())["metrics"] == {"summary": "val PSNR 1 -> 2 dB"}
    with pytest.raises(InvalidInputError, match="do not match"):
        save_card(card.replace(model_args={**card.model_args, "width": 16}), saved)
    assert load_model(saved).card.metrics == {"summary": "val PSNR 1 -> 2 dB"} and _hidden(saved.parent) == []


def test_save_card_of_a_legacy_model_refuses_a_card_its_tensors_do_not_fit(saved):
    _make_legacy(saved)
    card = load_model(saved).card
    with pytest.raises(InvalidInputError, match="do not match"):
        save_card(card.replace(model_args={**card.model_args, "width": 16}), saved)
    assert load_model(saved).card.model_args == card.model_args


def test_hidden_and_temporary_files_are_not_models(saved):
    folder = saved.parent
    (folder / ".good-model.safetensors.abc123.tmp").write_bytes(saved.read_bytes()[:50])
    (folder / ".hidden.safetensors").write_bytes(saved.read_bytes())
    (folder / "notes.txt").write_text("not a model")
    assert [c.name for c in list_models() if c.name in ("good-model", ".hidden", "hidden")] == ["good-model"]
    with pytest.raises(InvalidInputError):
        load_model(".hidden")


# --- a kill -9 at any moment leaves a loadable model -------------------------------------------------

_SAVER = textwrap.dedent(
    """
    import os, sys
    import torch
    torch.set_num_threads(1)
    from napari_gama_ir import build_model, save_model
    path = sys.argv[1]
    torch.manual_seed(0)
    nets = [build_model("tiny"), build_model("tiny", width=12, enc_blocks=(1, 1, 1), dec_blocks=(1, 2, 1))]
    print("ready", flush=True)
    for _ in sys.stdin:  # one line: fork a child that saves the two architectures alternately until killed
        pid = os.fork()
        if pid == 0:
            try:
                i = 0
                while True:
                    save_model(nets[i % 2], path, overwrite=True)
                    if i == 0:
                        os.write(1, b"saved\\n")
                    i += 1
            finally:
                os._exit(1)
        print(f"child {pid}", flush=True)
        os.waitpid(pid, 0)
        print("reaped", flush=True)
    """
)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_kill_9_during_saves_always_leaves_a_loadable_model(user_models_dir):
    """A saver process is killed with SIGKILL 12 times at seeded random moments while it rewrites one model
    with two architectures in turn; after each kill the model loads and lists cleanly. Temporary files a
    SIGKILL leaves behind are hidden, and list_models ignores them."""
    path = user_models_dir / "contested.safetensors"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    server = subprocess.Popen([sys.executable, "-c", _SAVER, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True, env=env, bufsize=1)  # fmt: skip
    rng = random.Random(1234)
    widths = set()
    try:
        assert server.stdout.readline().strip() == "ready"
        for _ in range(12):
            server.stdin.write("go\n")
            server.stdin.flush()
            pid, saved_once = None, False
            while pid is None or not saved_once:
                line = server.stdout.readline().strip()
                assert line, "the saver process died"
                if line.startswith("child "):
                    pid = int(line.split()[1])
                elif line == "saved":
                    saved_once = True
            time.sleep(rng.uniform(0.0, 0.06))
            os.kill(pid, signal.SIGKILL)
            assert server.stdout.readline().strip() == "reaped"
            net = load_model(path)
            widths.add(net.card.model_args["width"])
            assert [c.name for c in list_models() if c.name == "contested"] == ["contested"]
            visible = sorted(p.name for p in user_models_dir.iterdir() if not p.name.startswith("."))
            assert visible == ["contested.json", "contested.safetensors"]
            hidden = _hidden(user_models_dir)
            assert all(name.startswith(".contested.") and name.endswith(".tmp") for name in hidden), hidden
    finally:
        server.stdin.close()
        server.kill()
        server.wait()
    assert widths <= {8, 12}


# --- one schema, checked before anything is built --------------------------------------------------------


def _set(field: str, value):
    def change(data):
        node = data
        *parents, key = field.split(".")
        for parent in parents:
            node = node[parent]
        if value is _DELETE:
            node.pop(key)
        else:
            node[key] = value

    return change


_DELETE = object()

BAD_FIELDS = [
    ("preset", 3, "'preset'"),
    ("model_args", [8], "'model_args'"),
    ("model_args.width", 0, "model_args.width"),
    ("model_args.width", 300, "model_args.width"),
    ("model_args.width", 7, "model_args.width"),
    ("model_args.width", "8", "model_args.width"),
    ("model_args.width", True, "model_args.width"),
    ("model_args.in_channels", 0, "model_args.in_channels"),
    ("model_args.in_channels", 17, "model_args.in_channels"),
    ("model_args.out_channels", 0, "model_args.out_channels"),
    ("model_args.enc_blocks", [1, -1], "model_args.enc_blocks"),
    ("model_args.enc_blocks", [1, 65], "model_args.enc_blocks"),
    ("model_args.enc_blocks", "11", "model_args.enc_blocks"),
    ("model_args.enc_blocks", [1] * 9, "model_args.enc_blocks"),
    ("model_args.dec_blocks", [1, 1, 1], "model_args.dec_blocks"),
    ("model_args.middle_blocks", 65, "model_args.middle_blocks"),
    ("model_args.expand", 0, "model_args.expand"),
    ("model_args.kernel_size", 4, "model_args.kernel_size"),
    ("model_args.use_gama", "yes", "model_args.use_gama"),
    ("model_args.mean_mode", "box", "model_args.mean_mode"),
    ("model_args.local_size", 0, "model_args.local_size"),
    ("model_args.local_size", 9000, "model_args.local_size"),
    ("model_args.depth", 3, "do not build a GAMAIR"),
    ("normalization.method", "zscore", "normalization.method"),
    ("normalization.low", -1, "normalization.low"),
    ("normalization.high", 101, "normalization.high"),
    ("normalization.low", 99.95, "normalization.low"),
    ("normalization.high", float("nan"), "normalization.high"),
    ("normalization.scale", 2, "normalization"),
    ("inference.mean_mode", "x", "inference.mean_mode"),
    ("inference.local_size", 0, "inference.local_size"),
    ("inference.tile", 256, "inference"),
    ("metrics.summary", 31.2, "metrics.summary"),
    ("metrics", [], "'metrics'"),
    ("training", "a string", "'training'"),
    ("description", 5, "'description'"),
    ("axes_hint", [], "'axes_hint'"),
    ("domain", None, "'domain'"),
    ("license", 3, "'license'"),
    ("format_version", 3, "format_version 3"),
    ("format_version", "1", "format_version '1'"),
    ("architecture", "UNet", "architecture 'UNet'"),
    ("preset", _DELETE, "lacks \\['preset'\\]"),
    ("colour", "blue", "unknown model card keys \\['colour'\\]"),
    ("model_args", {"width": 256, "enc_blocks": [4, 4, 4, 4], "dec_blocks": [4, 4, 4, 4]}, "parameters"),
]


@pytest.mark.parametrize("field,value,fragment", BAD_FIELDS, ids=[f"{f}={v!r}"[:40] for f, v, _ in BAD_FIELDS])
def test_a_card_outside_the_schema_is_refused_naming_file_and_field(saved, monkeypatch, field, value, fragment):
    _rewrite_embedded(saved, _set(field, value))
    monkeypatch.setattr(store, "GAMAIR", None)  # nothing may be built from a refused card
    with pytest.raises(ModelFileError, match=fragment) as info:
        load_model(saved)
    message = str(info.value)
    assert str(saved) in message and ("accepted" in message or "lacks" in message)


def test_a_card_outside_the_schema_is_refused_in_the_json_too(saved):
    _make_legacy(saved)
    card_path = saved.with_suffix(".json")
    card_path.write_text(json.dumps({**json.loads(card_path.read_text()), "normalization": {"low": 60, "high": 40}}))
    with pytest.raises(ModelFileError, match="normalization.low is 60; accepted: a number 0..100 below high") as info:
        load_model(saved)
    assert str(card_path) in str(info.value)


def test_an_oversized_network_is_refused_before_allocating(saved, monkeypatch):
    built = []
    monkeypatch.setattr(torch.nn.Module, "__init__", lambda self, *a, **k: built.append(self))
    _rewrite_embedded(saved, _set("model_args", {"width": 256, "enc_blocks": [8] * 8, "dec_blocks": [8] * 8}))
    with pytest.raises(ModelFileError, match=f"accepted: at most {MAX_PARAMETERS:,}"):
        load_model(saved)
    assert built == []


@pytest.mark.parametrize(
    "args",
    [*PRESETS.values(), {}, {"width": 8, "enc_blocks": [], "dec_blocks": []},
     {"width": 6, "enc_blocks": [0, 3], "dec_blocks": [2, 0], "middle_blocks": 0, "expand": 3, "kernel_size": 3,
      "use_gama": False, "in_channels": 3, "out_channels": 2}],
    ids=[*PRESETS, "defaults", "no-levels", "odd-settings"],
)  # fmt: skip
def test_the_parameter_count_is_computed_exactly_without_building(args):
    with torch.device("meta"):
        net = GAMAIR(**args)
    assert parameter_count(args) == sum(p.numel() for p in net.parameters())


def test_valid_edge_cases_load_and_summarise(user_models_dir):
    net = _tiny(in_channels=3, out_channels=2, mean_mode="local", local_size=1, kernel_size=1, expand=1)
    net.card = net.card.replace(
        inference={"mean_mode": "local", "local_size": 64}, normalization={"method": "percentile", "low": 0, "high": 100},
        metrics={"summary": "", "nested": {"a": [1, None, "x"]}}, training={"anything": [1.5, {"b": None}]},
    )  # fmt: skip
    path = save_model(net, "edge.v2_final-1")
    card = load_model(path).card
    assert card.summary() == "edge.v2_final-1 | tiny, RGB" and card.out_channels == 2
    for card in list_models():
        assert isinstance(card.summary(), str)


def test_save_refuses_a_card_outside_the_schema_and_writes_nothing(user_models_dir):
    net = _tiny()
    net.card = net.card.replace(normalization={"method": "percentile", "low": 50, "high": 10})
    with pytest.raises(ModelFileError, match="normalization.low"):
        save_model(net, "bad-card")
    net.card = net.card.replace(normalization={}, training={"when": object()})
    with pytest.raises(InvalidInputError, match="JSON"):
        save_model(net, "bad-card")
    assert list(user_models_dir.iterdir()) == []


def test_save_refuses_weights_that_do_not_match_the_card(user_models_dir):
    net = _tiny()
    net.card = net.card.replace(model_args={**net.card.model_args, "width": 16})
    with pytest.raises(InvalidInputError, match="do not match its card"):
        save_model(net, "mismatch")
    assert list(user_models_dir.iterdir()) == []


# --- names are file stems ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["", "../x", "a b*?\n", ".hidden", "x..y", "a" * 129, "sub/../x", "é"])
def test_bad_names_are_refused_naming_value_and_rule(user_models_dir, name):
    with pytest.raises(InvalidInputError) as info:
        save_model(_tiny(), name)
    message = str(info.value)
    assert repr(name) in message and ("letters, digits" in message)
    assert list(user_models_dir.iterdir()) == []


@pytest.mark.parametrize("target", ["x.safetensors", "x.json", "x", "dir/x"])
def test_a_path_names_the_model_by_its_stem(tmp_path, target):
    net = _tiny()
    net.card = net.card.replace(name="something-else")
    path = save_model(net, tmp_path / target)
    assert path.name == "x.safetensors" and net.card.name == "x" and load_model(path).card.name == "x"


def test_a_bad_stem_in_a_path_is_refused(tmp_path):
    with pytest.raises(InvalidInputError, match="'a b' is not accepted"):
        save_model(_tiny(), tmp_path / "a b.safetensors")


@pytest.mark.parametrize("planted", ["../planted", "/etc/passwd", "other-model", "bad name"])
def test_the_file_stem_wins_over_the_cards_name(saved, planted):
    _rewrite_embedded(saved, _set("name", planted))
    legacy = save_model(_tiny(), "legacy-model")
    _make_legacy(legacy)
    legacy_card = legacy.with_suffix(".json")
    legacy_card.write_text(json.dumps({**json.loads(legacy_card.read_text()), "name": planted}))
    names = [c.name for c in list_models()]
    assert "good-model" in names and "legacy-model" in names and planted not in names
    assert load_model("good-model").card.name == "good-model" and load_model("legacy-model").card.name == "legacy-model"


@pytest.mark.parametrize("name", ["a b", "..", "x..y", ".hidden"])
def test_loading_by_a_bad_name_never_leaves_the_model_folders(saved, name):
    with pytest.raises((InvalidInputError, ModelFileError)):
        load_model(name)


# --- a broken user model never hides the others ------------------------------------------------------


def _garbage(folder, good):
    (folder / "broken.safetensors").write_bytes(b"\x00garbage")


def _truncated(folder, good):
    (folder / "broken.safetensors").write_bytes(good.read_bytes()[:-100])


def _bad_embedded_json(folder, good):
    save_file(load_file(str(good)), str(folder / "broken.safetensors"), metadata={CARD_METADATA_KEY: "{nope"})


def _bad_schema(folder, good):
    path = folder / "broken.safetensors"
    path.write_bytes(good.read_bytes())
    _rewrite_embedded(path, _set("model_args.width", -8))


def _no_card(folder, good):
    save_file(load_file(str(good)), str(folder / "broken.safetensors"))


def _bad_stem(folder, good):
    (folder / "broken name.safetensors").write_bytes(good.read_bytes())


@pytest.mark.parametrize("breakage", [_garbage, _truncated, _bad_embedded_json, _bad_schema, _no_card, _bad_stem])
def test_a_broken_user_model_is_skipped_with_one_warning(saved, caplog, breakage):
    breakage(saved.parent, saved)
    broken = next(p for p in saved.parent.glob("*.safetensors") if p.name.startswith("broken"))
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        names = [c.name for c in list_models()]
        list_models()  # the same broken file is reported once
    assert "good-model" in names and broken.stem not in names and "photo-gray" in names
    records = [r for r in caplog.records if r.name == LOGGER]
    assert len(records) == 1 and broken.name in records[0].getMessage() and "\n" not in records[0].getMessage()
    with pytest.raises(ModelFileError) as info:
        load_model(broken)
    assert str(broken.name) in str(info.value)


def test_a_broken_user_model_shadowing_a_shipped_name_is_reported_not_hidden(user_models_dir, caplog):
    (user_models_dir / "photo-gray.safetensors").write_bytes(b"broken")
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        names = [c.name for c in list_models()]
    assert "photo-gray" not in names and "photo-rgb" in names and "photo-gray.safetensors" in caplog.text
    with pytest.raises(ModelFileError, match="not a readable safetensors") as info:
        load_model("photo-gray")  # the user's file, as the listing said
    assert str(user_models_dir) in str(info.value)


# --- NaN and inf weights are refused ---------------------------------------------------------------------


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("legacy", [False, True], ids=["embedded", "legacy"])
def test_weights_with_nan_or_inf_are_refused_at_load(saved, bad, legacy):
    if legacy:
        _make_legacy(saved)
    with safe_open(str(saved), framework="pt") as f:
        metadata = f.metadata()
    state = load_file(str(saved))
    state["ending.bias"][0] = bad
    save_file(state, str(saved), metadata=metadata)
    with pytest.raises(ModelFileError, match="tensor 'ending.bias' holds NaN or inf") as info:
        load_model(saved)
    assert str(saved) in str(info.value)


def test_weights_with_nan_are_not_saved(user_models_dir):
    net = _tiny()
    with torch.no_grad():
        net.intro.weight[0, 0, 0, 0] = float("nan")
    with pytest.raises(InvalidInputError, match="tensor 'intro.weight' holds NaN or inf"):
        save_model(net, "nan-model")
    assert list(user_models_dir.iterdir()) == []


def test_a_card_round_trips_through_a_dict():
    card = ModelCard(name="x", preset="tiny", model_args={"width": 8, "enc_blocks": [1, 1], "dec_blocks": [1, 1]})
    assert ModelCard.from_dict(json.loads(card.to_json())) == card
    with pytest.raises(ModelFileError, match="<dict>: model card field 'name'"):
        ModelCard.from_dict({**card.to_dict(), "name": "../x"})
