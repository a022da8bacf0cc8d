"""The gama-ir command line: restore file to file with metadata kept, list models, one-line errors with exit 2."""

import json
import subprocess
import sys

import numpy as np
import tifffile

from napari_gama_ir import build_model, save_model
from napari_gama_ir.cli import main


def _tiny(user_models_dir):
    save_model(build_model("tiny"), "tiny-cli")
    return "tiny-cli"


def test_restore_tif_to_tif_keeps_axes_resolution_and_dtype(tmp_path, user_models_dir, capsys):
    model = _tiny(user_models_dir)
    data = np.random.default_rng(0).poisson(50, (3, 40, 52)).astype(np.uint16)
    src, dst = tmp_path / "in.tif", tmp_path / "out.tif"
    tifffile.imwrite(src, data, metadata={"axes": "ZYX"}, resolution=(4.0, 4.0))
    assert main(["restore", str(src), "-o", str(dst), "--model", model, "-q"]) == 0
    with tifffile.TiffFile(dst) as tif:
        assert tif.series[0].axes == "ZYX"
        assert tif.series[0].shape == (3, 40, 52) and tif.series[0].dtype == np.uint16
        assert tif.pages[0].tags["XResolution"].value == (4, 1)
    err = capsys.readouterr().err
    assert "tiny-cli restores 3 planes of 40 x 52 px (ZYX, uint16)" in err  # the plan is printed before the work


def test_self_ensemble_flag_reaches_the_plan_and_changes_the_result(tmp_path, user_models_dir, capsys):
    model = _tiny(user_models_dir)
    src = tmp_path / "in.tif"
    tifffile.imwrite(src, np.random.default_rng(0).random((40, 52), dtype=np.float32))
    assert main(["restore", str(src), "-o", str(tmp_path / "plain.tif"), "--model", model, "-q"]) == 0
    assert "self-ensemble" not in capsys.readouterr().err
    assert main(["restore", str(src), "-o", str(tmp_path / "mean.tif"), "--model", model, "-q", "--self-ensemble"]) == 0
    assert "(self-ensemble)" in capsys.readouterr().err
    assert not np.array_equal(tifffile.imread(tmp_path / "plain.tif"), tifffile.imread(tmp_path / "mean.tif"))


def test_models_lists_user_models(user_models_dir, capsys):
    _tiny(user_models_dir)
    assert main(["models"]) == 0
    assert "tiny-cli" in capsys.readouterr().out


def test_bad_input_is_one_line_and_exit_2(tmp_path, user_models_dir, capsys):
    assert main(["restore", str(tmp_path / "missing.tif"), "-o", str(tmp_path / "o.tif")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "file not found" in err[0]
    src = tmp_path / "in.tif"
    tifffile.imwrite(src, np.zeros((8, 8), np.uint8))
    assert main(["restore", str(src), "-o", str(tmp_path / "o.bmp")]) == 2
    assert "accepted: .tif, .tiff, .zarr" in capsys.readouterr().err


def test_subprocess_error_has_no_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "napari_gama_ir.cli", "restore", str(tmp_path / "nope.tif"), "-o", str(tmp_path / "o.tif")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "file not found" in proc.stderr


def test_train_from_folders_saves_a_user_model(tmp_path, user_models_dir, capsys):
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:64, 0:64]
    (tmp_path / "noisy").mkdir()
    (tmp_path / "clean").mkdir()
    for i in range(3):
        clean = (1000 + 500 * np.sin(xx / (4 + i)) * np.cos(yy / 6)).astype(np.uint16)
        tifffile.imwrite(tmp_path / "clean" / f"img{i}.tif", clean)
        tifffile.imwrite(tmp_path / "noisy" / f"img{i}.tif", (clean + rng.normal(0, 100, clean.shape)).astype(np.uint16))
    argv = ["train", "--noisy", str(tmp_path / "noisy"), "--clean", str(tmp_path / "clean"), "--base", "scratch:tiny",
            "--steps", "12", "--patch-size", "32", "48", "--batch-size", "2", "-o", "cli-trained", "-q"]  # fmt: skip
    assert main(argv) == 0
    assert "validation PSNR" in capsys.readouterr().out
    assert (user_models_dir / "cli-trained.safetensors").exists() and (user_models_dir / "cli-trained.json").exists()
    training = json.loads((user_models_dir / "cli-trained.json").read_text())["training"]
    assert training["patch_size"] == [32, 48] and training["precision"] == "fp32"  # "auto" on the CPU
    assert main([*argv[:-3], "--precision", "fp16", "-o", "cli-fp16", "-q"]) == 2
    assert "'fp16' needs a GPU" in capsys.readouterr().err
    (tmp_path / "clean" / "img2.tif").rename(tmp_path / "clean" / "other.tif")
    assert main([*argv, "--overwrite"]) == 2
    assert "different file names" in capsys.readouterr().err
