"""Structured noise in fine-tuning: a self-supervised run measures the noise autocorrelation of its noisy
images before training, reports it first, masks along the correlated axis (structN2V) and records it in the
card; `gama-ir train` prints the line; `noise_correlation="off"` and bad values behave as documented."""

import json

import numpy as np
import pytest
import tifffile
import torch

from napari_gama_ir import InvalidInputError
from napari_gama_ir.cli import main
from napari_gama_ir.training import finetune
from napari_gama_ir.training.objectives import BlindSpot
from tests.unit.test_correlation import along, cells


def small(**kw):
    return dict(base="scratch:tiny", patch_size=32, batch_size=2, eval_every=5, val_crop=48, steps=5, **kw)


@pytest.fixture
def striped() -> np.ndarray:
    """A 3-plane stack with noise filtered along x over 3 pixels: float32 (3, 96, 96)."""
    rng = np.random.default_rng(0)
    return np.stack([cells(s, 96) + along(rng.normal(0, 0.05, (96, 96)), 3, 1) for s in range(3)]).astype(np.float32)


def test_self_supervised_run_measures_reports_and_records_the_correlation(striped):
    seen = []
    net = finetune(striped, None, mode="blind-spot", axes="ZYX", progress=seen.append, **small())
    first = seen[0].noise_correlation
    assert first.direction == "x" and first.length == 2
    assert all(p.noise_correlation is None for p in seen[1:])
    record = net.card.training["noise_correlation"]
    assert record == {"setting": "auto", "correlated": True, "direction": "x", "length": 2, "summary": first.describe()}
    json.dumps(net.card.training)  # the card stays JSON


def test_off_skips_the_measurement_and_says_so(striped):
    seen = []
    net = finetune(striped, None, mode="blind-spot", axes="ZYX", progress=seen.append, noise_correlation="off", **small())
    assert seen[0].noise_correlation is None
    assert net.card.training["noise_correlation"] == {"setting": "off", "summary": "off"}


def test_supervised_runs_neither_measure_nor_record_it(striped):
    seen = []
    net = finetune(striped, striped, axes="ZYX", progress=seen.append, **small())
    assert seen[0].noise_correlation is None and "noise_correlation" not in net.card.training


def test_bad_setting_is_refused_naming_what_is_accepted(striped):
    with pytest.raises(InvalidInputError, match=r"noise_correlation 'on' is not known; accepted: 'auto', 'off'"):
        finetune(striped, None, mode="blind-spot", axes="ZYX", noise_correlation="on", **small())


def test_blind_spot_masks_the_neighbours_along_the_correlated_axis():
    """structN2V geometry: with noise correlated along x over 2 px, the 2 pixels on each side of a masked
    pixel along x are hidden too; the pixels above and below it stay as they were."""

    class Along:
        direction, length = "x", 2

    inp = torch.arange(1.0, 1 + 64 * 64).reshape(1, 1, 64, 64)  # every pixel a distinct value
    shown = []
    objective = BlindSpot(mask_fraction=0.001, correlation=Along())
    objective(lambda x: shown.append(x) or x, inp, inp, generator=torch.Generator().manual_seed(0))
    changed = (shown[0] != inp)[0, 0]
    ys, xs = np.nonzero(changed.numpy())
    for y, x in zip(ys, xs):
        if 2 <= x < 62 and changed[y, x - 2 : x + 3].all():  # a masked pixel with its line
            assert not changed[max(0, y - 1), x] or y == 0
            break
    else:
        pytest.fail("no masked pixel with its 1 x 5 line along x")
    rows = changed.sum(1)
    assert rows.max() >= 5 and changed.sum(0).max() <= changed.sum() // 5 + 1  # lines along x, not along y


def test_cli_train_prints_the_line_before_training(tmp_path, user_models_dir, capsys, striped):
    tifffile.imwrite(tmp_path / "stack.tif", striped, metadata={"axes": "ZYX"})
    argv = ["train", "--noisy", str(tmp_path / "stack.tif"), "--mode", "blind-spot", "--base", "scratch:tiny",
            "--steps", "3", "--patch-size", "32", "--batch-size", "2", "-o", "striped", "-q"]  # fmt: skip
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "noise is correlated along x over 2 pixels" in err and "masks along x" in err
    card = json.loads((user_models_dir / "striped.json").read_text())
    assert card["training"]["noise_correlation"]["direction"] == "x"
    assert main([*argv[:-3], "--noise-correlation", "off", "-o", "striped-off", "-q"]) == 0
    assert "noise is" not in capsys.readouterr().err
