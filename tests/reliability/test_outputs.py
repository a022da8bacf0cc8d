"""Outputs belong to the user: nothing is replaced without overwrite=True, a folder that is not a zarr store is
never removed, a failed, cancelled or killed run leaves nothing, and inputs are never modified."""

from __future__ import annotations

import errno
import hashlib
import os
import signal
import subprocess
import sys
import threading
import time

from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr

from napari_gama_ir import InvalidInputError, OutputError, RestoreCancelled, restore, save_model
from napari_gama_ir.io import sinks

OPTS = {"device": "cpu", "axes": "ZYX"}


def _names(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def _digest(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


@pytest.mark.parametrize("overwrite", [False, True])
def test_a_folder_that_is_not_a_zarr_store_is_never_removed(tmp_path, tiny_model, noisy_zyx, overwrite):
    folder = tmp_path / "mydata.zarr"
    folder.mkdir()
    (folder / "precious.txt").write_text("x")
    with pytest.raises(InvalidInputError, match="not a zarr store; it is never replaced"):
        restore(noisy_zyx, tiny_model, out=folder, overwrite=overwrite, **OPTS)
    assert (folder / "precious.txt").read_text() == "x" and _names(tmp_path) == ["mydata.zarr"]


def test_an_existing_file_is_refused_without_overwrite(tmp_path, tiny_model, noisy_zyx):
    target = tmp_path / "out.tif"
    target.write_bytes(b"mine")
    with pytest.raises(InvalidInputError, match="exists; pass overwrite=True"):
        restore(noisy_zyx, tiny_model, out=target, **OPTS)
    assert target.read_bytes() == b"mine" and _names(tmp_path) == ["out.tif"]


def test_overwrite_replaces_a_file(tmp_path, tiny_model, noisy_zyx):
    target = tmp_path / "out.tif"
    target.write_bytes(b"mine")
    assert restore(noisy_zyx, tiny_model, out=target, overwrite=True, **OPTS) == str(target)
    np.testing.assert_array_equal(tifffile.imread(target), restore(noisy_zyx, tiny_model, **OPTS))
    assert _names(tmp_path) == ["out.tif"]


@pytest.mark.parametrize("overwrite", [False, True])
def test_an_existing_zarr_store_is_replaced_only_with_overwrite(tmp_path, tiny_model, noisy_zyx, overwrite):
    target = tmp_path / "out.zarr"
    zarr.open_array(str(target), mode="w", shape=(2, 2), dtype="u1")[:] = 7
    if not overwrite:
        with pytest.raises(InvalidInputError, match="exists; pass overwrite=True"):
            restore(noisy_zyx, tiny_model, out=target, **OPTS)
        assert zarr.open_array(str(target), mode="r").shape == (2, 2)
    else:
        restore(noisy_zyx, tiny_model, out=target, overwrite=True, **OPTS)
        assert zarr.open_array(str(target), mode="r").shape == noisy_zyx.shape
    assert _names(tmp_path) == ["out.zarr"]  # nothing moved aside or half-written is left


@pytest.mark.parametrize(("existing", "out"), [("file", "x.zarr"), ("store", "x.tif")])
def test_an_output_of_the_other_kind_is_refused_even_with_overwrite(tmp_path, tiny_model, noisy_zyx, existing, out):
    target = tmp_path / out
    if existing == "file":
        target.write_bytes(b"mine")
    else:
        zarr.open_array(str(target), mode="w", shape=(2,), dtype="u1")
    with pytest.raises(InvalidInputError, match="exists as"):
        restore(noisy_zyx, tiny_model, out=target, overwrite=True, **OPTS)
    assert _names(tmp_path) == [out]


def test_a_missing_output_folder_is_a_typed_error(tmp_path, tiny_model, noisy_zyx):
    with pytest.raises(InvalidInputError, match="does not exist"):
        restore(noisy_zyx, tiny_model, out=tmp_path / "nope" / "o.tif", **OPTS)


@pytest.mark.parametrize("suffix", [".tif", ".zarr"])
def test_a_full_disk_during_writing_is_one_typed_error_and_leaves_nothing(tmp_path, tiny_model, noisy_zyx, monkeypatch, suffix):
    def full(self, first_plane, block):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(sinks.TiffSink if suffix == ".tif" else sinks.ZarrSink, "write", full)
    with pytest.raises(OutputError, match="No space left on device; nothing partial was kept"):
        restore(noisy_zyx, tiny_model, out=tmp_path / f"o{suffix}", **OPTS)
    assert _names(tmp_path) == []


def test_permission_denied_when_creating_the_output_is_a_typed_error(tmp_path, tiny_model, noisy_zyx, monkeypatch):
    def denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))

    monkeypatch.setattr(sinks, "create_zarr_array", denied)
    with pytest.raises(OutputError, match="Permission denied"):
        restore(noisy_zyx, tiny_model, out=tmp_path / "o.zarr", **OPTS)
    assert _names(tmp_path) == []


@pytest.mark.parametrize("suffix", [".tif", ".zarr"])
def test_an_output_that_appears_while_restoring_is_kept(tmp_path, tiny_model, noisy_zyx, suffix):
    target = tmp_path / f"o{suffix}"

    def someone_else_writes(done, total):
        if not target.exists():
            target.write_bytes(b"theirs") if suffix == ".tif" else target.mkdir()

    with pytest.raises(InvalidInputError, match="appeared while restoring"):
        restore(noisy_zyx, tiny_model, out=target, progress=someone_else_writes, **OPTS)
    assert (target.read_bytes() == b"theirs") if suffix == ".tif" else target.is_dir()
    assert _names(tmp_path) == [target.name]


@pytest.mark.parametrize("suffix", [".tif", ".zarr"])
def test_cancel_leaves_no_output(tmp_path, tiny_model, noisy_zyx, suffix):
    cancel = threading.Event()
    with pytest.raises(RestoreCancelled):
        restore(noisy_zyx, tiny_model, out=tmp_path / f"o{suffix}", progress=lambda d, t: cancel.set(), cancel=cancel,
                batch_size=1, **OPTS)  # fmt: skip
    assert _names(tmp_path) == []


def test_a_read_only_zarr_array_is_refused_before_any_work(tmp_path, tiny_model, noisy_zyx):
    path = str(tmp_path / "mine.zarr")
    zarr.open_array(path, mode="w", shape=noisy_zyx.shape, dtype=noisy_zyx.dtype)
    with pytest.raises(InvalidInputError, match="read-only zarr array"):
        restore(noisy_zyx, tiny_model, out=zarr.open_array(path, mode="r"), **OPTS)


@pytest.mark.parametrize(("kwargs", "fragment"), [
    ({"progress": 3}, "progress must be a callable"),
    ({"progress": "print"}, "progress must be a callable"),
    ({"cancel": True}, "cancel must be a threading.Event"),
    ({"cancel": "stop"}, "cancel must be a threading.Event"),
])  # fmt: skip
def test_bad_progress_or_cancel_is_refused_before_any_file_is_made(tmp_path, tiny_model, noisy_zyx, kwargs, fragment):
    with pytest.raises(InvalidInputError, match=fragment):
        restore(noisy_zyx, tiny_model, out=tmp_path / "o.tif", **kwargs, **OPTS)
    assert _names(tmp_path) == []


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_inputs_are_never_modified(tmp_path, tiny_model, dtype):
    data = (np.random.default_rng(1).random((2, 40, 44)) * 200).astype(dtype)
    before = data.copy()
    path = tmp_path / "in.tif"
    tifffile.imwrite(path, data)
    digest = _digest(path)
    restore(data, tiny_model, **OPTS)
    restore(path, tiny_model, out=tmp_path / "o.zarr", **OPTS)
    np.testing.assert_array_equal(data, before)
    assert _digest(path) == digest


def _start_cli_restore(tmp_path, model, planes: int):
    """A ``gama-ir restore`` of a stack large enough to be stopped mid-write; returns (process, output path)."""
    models = tmp_path / "models"
    save_model(model, models / "tiny-cli")
    src, dst = tmp_path / "in.tif", tmp_path / "out.tif"
    tifffile.imwrite(src, np.random.default_rng(0).poisson(50, (planes, 128, 128)).astype(np.uint16))
    env = {**os.environ, "NAPARI_GAMA_IR_MODELS": str(models), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "napari_gama_ir.cli", "restore", str(src), "-o", str(dst), "--model", "tiny-cli",
           "--device", "cpu", "--batch-size", "1", "-q"]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not any(p.name.startswith(".out.tif.partial") for p in tmp_path.iterdir()):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the CLI never started writing"
        time.sleep(0.05)
    time.sleep(0.3)  # well inside the write
    return proc, dst


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_during_cli_restore_leaves_no_partial_file(tmp_path, tiny_model, sig, code):
    proc, dst = _start_cli_restore(tmp_path, tiny_model, planes=300)
    assert proc.poll() is None, "the run ended before the signal; make the stack larger"
    proc.send_signal(sig)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert "no partial output was kept" in err and "Traceback" not in err
    assert not dst.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["in.tif", "models"]


def test_an_upper_case_zarr_suffix_writes_and_replaces_a_zarr_store(tmp_path, tiny_model, noisy_zyx):
    target = tmp_path / "keep.ZARR"
    zarr.open_array(str(target), mode="w", shape=(2,), dtype="u1")
    assert restore(noisy_zyx, tiny_model, out=target, overwrite=True, **OPTS) == str(target)
    assert target.is_dir() and zarr.open_array(str(target), mode="r").shape == noisy_zyx.shape


def test_a_symlinked_output_is_refused_and_its_target_kept(tmp_path, tiny_model, noisy_zyx):
    real = tmp_path / "real.zarr"
    zarr.open_array(str(real), mode="w", shape=(2,), dtype="u1")
    (tmp_path / "link.zarr").symlink_to(real)
    with pytest.raises(InvalidInputError, match="symbolic link"):
        restore(noisy_zyx, tiny_model, out=tmp_path / "link.zarr", overwrite=True, **OPTS)
    assert zarr.open_array(str(real), mode="r").shape == (2,)


def test_a_failed_replacement_puts_the_users_store_back(tmp_path, tiny_model, noisy_zyx, monkeypatch):
    target = tmp_path / "out.zarr"
    zarr.open_array(str(target), mode="w", shape=(2,), dtype="u1")[:] = 7
    real_replace = os.replace

    def moving_the_result_in_fails(src, dst):
        if os.path.basename(src).startswith(".out.zarr.partial") and dst == target:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", moving_the_result_in_fails)
    with pytest.raises(OutputError):
        restore(noisy_zyx, tiny_model, out=target, overwrite=True, **OPTS)
    monkeypatch.undo()
    assert list(zarr.open_array(str(target), mode="r")[:]) == [7, 7] and _names(tmp_path) == ["out.zarr"]


def test_a_programs_own_sigterm_handler_is_left_in_place(tiny_model, noisy_zyx):
    def mine(signum, frame):
        pass

    def install(done, total):
        signal.signal(signal.SIGTERM, mine)

    try:
        restore(noisy_zyx, tiny_model, progress=install, **OPTS)
        assert signal.getsignal(signal.SIGTERM) is mine
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def test_a_store_that_fails_half_created_is_removed(tmp_path, tiny_model, noisy_zyx, monkeypatch):
    def half_created(path, *args, **kwargs):
        os.makedirs(path)
        (Path(path) / "zarr.json").write_text("{")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(sinks, "create_zarr_array", half_created)
    with pytest.raises(OutputError, match="No space left"):
        restore(noisy_zyx, tiny_model, out=tmp_path / "o.zarr", **OPTS)
    assert _names(tmp_path) == []
