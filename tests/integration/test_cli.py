"""The gama-ir command line: restore file to file with metadata kept, list models, one-line errors with exit 2."""

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
    assert "tiny-cli on ZYX" in err  # the plan is printed before the work


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
    assert main(["restore", str(src), "-o", str(tmp_path / "o.png")]) == 2
    assert "accepted: .tif, .tiff, .zarr" in capsys.readouterr().err


def test_subprocess_error_has_no_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "napari_gama_ir.cli", "restore", str(tmp_path / "nope.tif"), "-o", str(tmp_path / "o.tif")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "file not found" in proc.stderr
