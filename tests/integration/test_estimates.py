"""Noise and quality estimates from the noisy data alone, checked against the known truth of synthetic noise."""

from __future__ import annotations

import numpy as np
import pytest

from napari_gama_ir import InvalidInputError, NoiseEstimate, estimate_noise, estimate_quality, restore


def _clean(size: int = 192) -> np.ndarray:
    """A smooth image with edges, in [0, 1]."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    image = 0.5 + 0.3 * np.sin(6 * xx) * np.cos(4 * yy)
    image[size // 4 : size // 2, size // 4 : size // 2] += 0.15
    return image


@pytest.mark.parametrize("sigma", [0.03, 0.1, 0.2])
def test_gaussian_noise_sigma_is_recovered(sigma):
    noisy = _clean() + np.random.default_rng(0).normal(0, sigma, (192, 192))
    est = estimate_noise(noisy.astype(np.float32))
    assert est.sigma == pytest.approx(sigma, rel=0.1)
    assert est.kind == "gaussian" and "Gaussian noise" in est.describe(1.0)


@pytest.mark.parametrize("photons", [5, 20, 100])
def test_poisson_gaussian_gain_and_read_noise_are_recovered(photons):
    rng = np.random.default_rng(1)
    clean = np.tile(_clean(), (2, 2))  # more pixels: a tighter fit
    noisy = (rng.poisson(photons * clean) + rng.normal(0, 2, clean.shape)) / photons
    est = estimate_noise(noisy)
    assert est.gain == pytest.approx(1 / photons, rel=0.25 if photons == 5 else 0.15)  # read noise dominates at 5
    assert est.sigma == pytest.approx(2 / photons, rel=0.35)
    if photons >= 20:  # at 5 photons the read noise (4 photons^2) outweighs the shot noise at mid levels
        assert est.kind == "poisson-gaussian" and "photons per unit" in est.describe()


def test_a_stack_and_integer_data_with_clipped_zeros():
    rng = np.random.default_rng(2)
    clean = np.stack([_clean(128) * 40] * 3)
    clean[:, :40] = 0  # a dark band: Poisson counts of 0 are clipped, not noise-free signal
    noisy = rng.poisson(clean).astype(np.uint16)
    est = estimate_noise(noisy, axes="ZYX")
    assert est.gain == pytest.approx(1.0, rel=0.15)


@pytest.mark.parametrize(("data", "fragment"), [
    (np.zeros((1, 1)), "too small"),
    (np.full((64, 64), np.nan), "NaN or inf"),
    (np.zeros((8, 8)), "too few"),
])  # fmt: skip
def test_bad_data_is_a_typed_error(data, fragment):
    with pytest.raises(InvalidInputError, match=fragment):
        estimate_noise(data)


def test_sure_tracks_the_true_error_of_a_restoration(tiny_model):
    """Over independent noise draws, the estimated MSE of restore() matches its true MSE on average."""
    clean, sigma = _clean(160), 0.08
    errors_db = []
    for k in range(4):
        noisy = (clean + np.random.default_rng(10 + k).normal(0, sigma, clean.shape)).astype(np.float32)
        known = NoiseEstimate(gain=0.0, sigma=sigma, levels=np.array([0.5]), variances=np.array([sigma**2]))
        est = estimate_quality(noisy, tiny_model, noise=known, device="cpu", seed=k)
        true = restore(noisy, tiny_model, device="cpu", precision="fp32").astype(np.float64)
        errors_db.append(est.psnr(1.0) - 10 * np.log10(1 / np.mean((true - clean) ** 2)))
        assert est.noisy_mse == pytest.approx(sigma**2)
    assert abs(np.mean(errors_db)) < 0.5 and max(map(abs, errors_db)) < 1.0


def test_quality_estimate_of_a_stack_samples_planes_and_describes_itself(tiny_model):
    stack = np.stack([_clean(96)] * 3) + np.random.default_rng(3).normal(0, 0.05, (3, 96, 96))
    est = estimate_quality(stack.astype(np.float32), tiny_model, axes="ZYX", planes=2, region=64, device="cpu")
    assert est.pixels == 2 * 64 * 64 and est.mse >= 0
    assert "estimated PSNR" in est.describe(1.0) and "untrained-tiny" in est.describe(1.0)


@pytest.mark.parametrize(("kwargs", "fragment"), [
    ({"region": 4}, "region must be an int >= 16"),
    ({"planes": 0}, "planes must be an int >= 1"),
    ({"noise": 0.1}, "noise must be a NoiseEstimate"),
])  # fmt: skip
def test_bad_quality_arguments_are_typed_errors(tiny_model, kwargs, fragment):
    with pytest.raises(InvalidInputError, match=fragment):
        estimate_quality(_clean(64), tiny_model, device="cpu", **kwargs)


def test_cli_restore_estimate_prints_one_line(tmp_path, tiny_model, user_models_dir, capsys):
    import tifffile

    from napari_gama_ir import save_model
    from napari_gama_ir.cli import main

    save_model(tiny_model, "tiny-est")
    src = tmp_path / "in.tif"
    tifffile.imwrite(src, (_clean(96) + np.random.default_rng(4).normal(0, 0.05, (96, 96))).astype(np.float32))
    assert main(["restore", str(src), "-o", str(tmp_path / "o.tif"), "--model", "tiny-est", "-q", "--estimate"]) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("estimated PSNR")]
    assert len(lines) == 1 and "Gaussian noise" in lines[0]


def test_a_small_image_fits_with_fewer_level_sets():
    noisy = _clean(40) + np.random.default_rng(5).normal(0, 0.1, (40, 40))
    assert estimate_noise(noisy).sigma == pytest.approx(0.1, rel=0.3)


def test_clipped_data_is_flagged_instead_of_estimated(tiny_model):
    rng = np.random.default_rng(6)
    clean = _clean(128) * 20 - 6  # a third of the image below 0: clipped to 0 by the camera
    noisy = np.clip(rng.poisson(np.clip(clean, 0, None)) + rng.normal(0, 2, clean.shape), 0, None).astype(np.uint16)
    est = estimate_quality(noisy, tiny_model, device="cpu")
    assert not est.reliable and est.clipped_fraction > 0.1
    assert est.describe().startswith("no reliable estimate:")
    assert estimate_quality(_clean(128) + rng.normal(0, 0.05, (128, 128)), tiny_model, device="cpu").reliable


@pytest.mark.parametrize(("training", "noise", "fragment"), [
    ({"kind": "gaussian", "sigma_max": 55}, (0.0, 0.5), "above the 55 of 255"),
    ({"kind": "gaussian", "sigma_max": 55}, (0.1, 0.0), "Poisson-dominated"),
    ({"kind": "poisson-gaussian", "sigma_max": 40, "peak_min": 1, "peak_max": 300}, (1e-4, 0.0), "photons at its brightest"),
    ({"kind": "poisson-gaussian", "sigma_max": 40, "peak_min": 1, "peak_max": 300}, (0.02, 0.01), ""),
    ({}, (0.0, 0.5), ""),
])  # fmt: skip
def test_noise_outside_the_models_training_is_named(tiny_model, training, noise, fragment):
    from napari_gama_ir.estimate.quality import outside_training

    card = tiny_model.card.replace(training={"noise": training} if training else {})
    gain, sigma = noise
    est = NoiseEstimate(gain=gain, sigma=sigma, levels=np.array([0.5]), variances=np.array([gain * 0.5 + sigma**2]))
    said = outside_training(est, card, data_range=1.0)
    assert (fragment in said) if fragment else said == ""
