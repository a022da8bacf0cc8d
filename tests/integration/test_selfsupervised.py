"""Self-supervised modes through finetune, the CLI and the option check: each trains on noisy images alone,
the card records the mode and the objective it used, and unknown names are refused with the accepted list."""

import numpy as np
import pytest
import tifffile

from napari_gama_ir import InvalidInputError, finetune, restore
from napari_gama_ir.cli import main as cli_main
from napari_gama_ir.training.objectives import DEFAULT_SELF_SUPERVISED, SELF_SUPERVISED_MODES


@pytest.fixture
def noisy():
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:96, 0:96]
    clean = 20 + 15 * np.sin(xx / 6) * np.cos(yy / 8)
    return rng.poisson(clean).astype(np.float32)  # Poisson noise, photons as they are counted


def small(**kw):
    return dict(base="scratch:tiny", patch_size=32, batch_size=2, eval_every=3, val_crop=32, **kw)


@pytest.mark.parametrize("mode", SELF_SUPERVISED_MODES)
def test_each_self_supervised_mode_trains_on_noisy_data_alone(noisy, mode):
    seen = []
    net = finetune(noisy, None, mode=mode, steps=6, progress=seen.append, **small())
    training = net.card.training
    objective = DEFAULT_SELF_SUPERVISED if mode == "self-supervised" else mode
    assert training["mode"] == mode and training["objective"] == objective and training["steps"] == 6
    assert training["loss"] == seen[-1].loss_name and all(np.isfinite(p.loss) for p in seen if p.step)
    v = net.card.metrics["validation"]  # chosen by the estimated PSNR (no clean image), the base model included
    assert np.isfinite(v["psnr_after"]) and v["estimated_psnr_after"] >= v["estimated_psnr_before"]
    out = restore(noisy, net)
    assert out.shape == noisy.shape and np.isfinite(out).all()


def test_modes_train_differently_and_each_repeats_with_the_same_seed(noisy):
    def losses(mode):
        seen = []
        finetune(noisy, None, mode=mode, steps=3, progress=seen.append, **small())
        return [p.loss for p in seen if p.step]

    blind_spot, neighbours, recorrupted = losses("blind-spot"), losses("neighbor2neighbor"), losses("recorrupted")
    assert blind_spot == losses("blind-spot") and recorrupted == losses("recorrupted")
    assert blind_spot == losses("self-supervised")  # the default is the blind-spot objective
    assert len({tuple(blind_spot), tuple(neighbours), tuple(recorrupted)}) == 3


def test_unknown_modes_are_refused_with_the_accepted_names(noisy, tmp_path, capsys):
    with pytest.raises(InvalidInputError, match="mode 'noise2void' is not known; accepted: .*'neighbor2neighbor'.*'blind-spot'"):
        finetune(noisy, None, mode="noise2void", steps=2, **small())
    tifffile.imwrite(tmp_path / "a.tif", noisy)
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["train", "--noisy", str(tmp_path / "a.tif"), "--mode", "noise2void", "-o", str(tmp_path / "m")])
    assert exit_info.value.code == 2 and "'blind-spot'" in capsys.readouterr().err


def test_cli_trains_with_a_named_self_supervised_mode(noisy, tmp_path, user_models_dir):
    from napari_gama_ir import load_model

    tifffile.imwrite(tmp_path / "a.tif", noisy)
    code = cli_main(["train", "--noisy", str(tmp_path / "a.tif"), "--mode", "blind-spot", "--base", "scratch:tiny",
                     "--steps", "3", "--patch-size", "32", "-o", "cli-blind-spot", "-q"])  # fmt: skip
    assert code in (0, None)
    assert load_model("cli-blind-spot").card.training["objective"] == "blind-spot"


def test_without_a_noise_model_the_default_runs_and_recorrupted_refuses():
    flat = np.full((64, 64), 7.0, np.float32)  # no noise to fit a model to
    net = finetune(flat, None, mode="self-supervised", steps=2, **small())
    assert net.card.training["objective"] == "blind-spot"
    with pytest.raises(InvalidInputError, match="mode 'recorrupted' needs the noise model.*accepted: .*'neighbor2neighbor'"):
        finetune(flat, None, mode="recorrupted", steps=2, **small())


def test_a_checkpoint_whose_error_the_estimate_cannot_resolve_is_never_chosen(noisy, monkeypatch):
    # at a few photons SURE can put a restoration's error at 0 or below; such a checkpoint is not "perfect"
    import types

    from napari_gama_ir.estimate import quality

    calls = []

    def estimate(*args, **kwargs):
        calls.append(1)
        return types.SimpleNamespace(mse=0.01 if len(calls) == 1 else 0.0)  # the base model's, then zeros

    monkeypatch.setattr(quality, "estimate_quality", estimate)
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    from napari_gama_ir.model import build_model

    base = build_model("tiny")
    net = finetune(noisy, None, mode="blind-spot", steps=6, **{**small(), "base": base})
    assert len(calls) > 2
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), base.state_dict().values()))
