"""The command line: every bad input is one line on stderr and exit 2, never a traceback, and nothing a user
owns is replaced without --overwrite."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile

from napari_gama_ir import list_models, save_model
from napari_gama_ir.cli import main


@pytest.fixture
def cli_model(user_models_dir, tiny_model):
    save_model(tiny_model, "tiny-cli")
    return "tiny-cli"


@pytest.fixture
def stack_tif(tmp_path):
    path = tmp_path / "in.tif"
    tifffile.imwrite(path, np.random.default_rng(0).poisson(50, (2, 40, 44)).astype(np.uint16), metadata={"axes": "ZYX"})
    return path


def _error_line(capsys, command: str) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"gama-ir {command}: error: ")
    return last


@pytest.mark.parametrize(("flags", "fragment"), [
    (["--tile", "0"], "tile must be a positive int"),
    (["--overlap", "-3"], "overlap must be a non-negative int"),
    (["--batch-size", "0"], "batch_size must be a positive int"),
    (["--device", "gpu"], "device 'gpu' is not known"),
    (["--dtype", "complex64"], "cannot restore dtype complex64"),
    (["--axes", "TZYX"], "TZYX"),
    (["--model", "no-such-model"], "unknown model 'no-such-model'"),
])  # fmt: skip
def test_bad_restore_flags_are_one_line_and_exit_2(tmp_path, cli_model, stack_tif, capsys, flags, fragment):
    args = ["restore", str(stack_tif), "-o", str(tmp_path / "o.tif"), "-q", *(["--model", cli_model] if "--model" not in flags else []), *flags]
    assert main(args) == 2
    assert fragment in _error_line(capsys, "restore")
    assert not (tmp_path / "o.tif").exists()


@pytest.mark.parametrize("keep", [10, 100, 1000])
def test_a_truncated_tiff_is_one_line_and_leaves_nothing(tmp_path, cli_model, stack_tif, capsys, keep):
    broken = tmp_path / "broken.tif"
    broken.write_bytes(stack_tif.read_bytes()[:keep])
    assert main(["restore", str(broken), "-o", str(tmp_path / "o.tif"), "--model", cli_model, "-q"]) == 2
    assert str(broken) in _error_line(capsys, "restore")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.tif", "in.tif", "user-models"]


def test_restore_refuses_an_existing_output_unless_overwrite(tmp_path, cli_model, stack_tif, capsys):
    out = tmp_path / "o.tif"
    out.write_bytes(b"mine")
    assert main(["restore", str(stack_tif), "-o", str(out), "--model", cli_model, "-q"]) == 2
    assert "--overwrite" in _error_line(capsys, "restore") and out.read_bytes() == b"mine"
    assert main(["restore", str(stack_tif), "-o", str(out), "--model", cli_model, "-q", "--overwrite"]) == 0
    assert tifffile.imread(out).shape == (2, 40, 44)


def test_the_printed_plan_is_the_plan_that_runs(tmp_path, cli_model, stack_tif, capsys):
    assert main(["restore", str(stack_tif), "-o", str(tmp_path / "o.tif"), "--model", cli_model, "-q",
                 "--tile", "30", "--overlap", "5", "--precision", "fp32", "--device", "cpu"]) == 0  # fmt: skip
    plan_line = capsys.readouterr().err.strip().splitlines()[0]
    assert "tiles of 32 x 32 px per plane, overlapping by 8 px" in plan_line  # the tiny net's 4 px grid
    assert "on the CPU in 32-bit floats" in plan_line


@pytest.mark.parametrize(("flags", "fragment"), [
    (["--batch-size", "0"], "batch_size"),
    (["--lr", "-1"], "lr"),
    (["--lr", "nan"], "lr"),
    (["--steps", "-5"], "steps"),
    (["--minutes", "0"], "minutes"),
    (["--patch-size", "0"], "patch"),
])  # fmt: skip
def test_bad_train_flags_are_one_line_and_exit_2(tmp_path, cli_model, stack_tif, capsys, flags, fragment):
    args = ["train", "--noisy", str(stack_tif), "--base", cli_model, "--steps", "2", "-o", "new-model", "-q", *flags]
    assert main(args) == 2
    assert fragment in _error_line(capsys, "train")
    assert "new-model" not in {c.name for c in list_models()}


def test_train_refuses_an_existing_model_unless_overwrite(tmp_path, cli_model, stack_tif, user_models_dir, capsys):
    before = (user_models_dir / f"{cli_model}.safetensors").read_bytes()
    base = ["train", "--noisy", str(stack_tif), "--base", cli_model, "--steps", "2", "--patch-size", "16",
            "--batch-size", "2", "--device", "cpu", "-o", cli_model, "-q"]  # fmt: skip
    assert main(base) == 2
    assert "--overwrite" in _error_line(capsys, "train")
    assert (user_models_dir / f"{cli_model}.safetensors").read_bytes() == before
    assert main([*base, "--overwrite"]) == 0
    assert (user_models_dir / f"{cli_model}.safetensors").read_bytes() != before


def test_models_lists_the_others_when_one_user_card_is_broken(cli_model, user_models_dir, capsys):
    save_model_copy = user_models_dir / "broken.safetensors"
    save_model_copy.write_bytes((user_models_dir / f"{cli_model}.safetensors").read_bytes()[:50])
    (user_models_dir / "broken.json").write_text(json.dumps({"name": 12345, "metrics": [1, 2]}))
    assert main(["models"]) == 0
    captured = capsys.readouterr()
    assert "tiny-cli" in captured.out and "general-gray" in captured.out
    assert "Traceback" not in captured.err
    assert sum("broken" in line for line in captured.err.splitlines()) == 1
