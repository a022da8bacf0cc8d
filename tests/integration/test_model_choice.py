"""``restore(x)`` without a model chooses the shipped model from the data (zoo.choice), and says why."""

from __future__ import annotations

import numpy as np
import pytest

from napari_gama_ir import plan_restore
from napari_gama_ir.zoo.choice import choose_model, data_features


def _photo_like(size: int = 256, sigma: float = 25 / 255, seed: int = 0) -> np.ndarray:
    """Mid-grey smooth shading with edges (intensities spread over the range), plus Gaussian noise."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    clean = 0.5 + 0.25 * np.sin(5 * xx + 1) * np.cos(3 * yy) + 0.2 * (xx - 0.5)
    clean[size // 5 : size // 2, size // 3 : 2 * size // 3] += 0.2
    clean[3 * size // 5 :, : size // 4] -= 0.25
    return (clean + np.random.default_rng(seed).normal(0, sigma, clean.shape)).astype(np.float32)


def _fluorescence_like(size: int = 256, photons: float = 50, read: float = 1.0, seed: int = 1) -> np.ndarray:
    """Dark background, sparse bright blobs; Poisson noise with ``photons`` at the brightest level plus
    Gaussian read noise of ``read`` photons, as uint16 counts."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    clean = np.full((size, size), 0.03)
    for cy, cx, r in rng.uniform((0, 0, 6), (size, size, 14), (25, 3)):
        clean += 0.9 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r**2))
    counts = rng.poisson(np.clip(clean, 0, 1) * photons) + rng.normal(0, read, clean.shape) + 100  # camera offset
    return np.clip(counts, 0, None).round().astype(np.uint16)


def test_gray_photo_with_gaussian_noise_gets_a_photo_model():
    name, reason = choose_model(_photo_like(), channels=1)
    assert name == "photo-gray"
    assert "Gaussian-like" in reason and "photo-like" in reason


def test_fluorescence_with_poisson_gaussian_noise_gets_the_fluorescence_model():
    data = _fluorescence_like()
    features = data_features(data)
    assert features["median"] < 0.25 and features["poisson_share"] > 0.5
    name, reason = choose_model(data, channels=1)
    assert name == "fluorescence"
    assert "Poisson-dominated" in reason and "dark background" in reason


def test_very_noisy_data_gets_the_general_model():
    name, reason = choose_model(_photo_like(sigma=0.8), channels=1)
    assert name == "general-gray" and "very strong noise" in reason


def test_rgb_keeps_photo_rgb():
    assert choose_model(None, channels=3, rgb_last=True) == ("photo-rgb", "RGB data")
    rgb = np.stack([_photo_like(96, seed=s) for s in range(3)], axis=-1)
    plan = plan_restore(rgb, device="cpu")
    assert plan.model_name == "photo-rgb" and plan.model_reason == "RGB data"


def test_flat_data_falls_back_to_the_default():
    name, reason = choose_model(np.full((64, 64), 7.0), channels=1)
    assert name == "fluorescence" and reason.startswith("the default for single-channel data")


@pytest.mark.parametrize(("make", "expected"), [(_photo_like, "photo-gray"), (_fluorescence_like, "fluorescence")])
def test_plan_names_the_choice_and_why_only_when_chosen(make, expected):
    data = make()
    chosen = plan_restore(data, device="cpu")
    assert chosen.model_name == expected and chosen.model_reason
    line = chosen.describe()
    assert line.startswith(f"{expected} restores") and line.endswith(f"; model chosen for the data: {chosen.model_reason}")
    other = "fluorescence" if expected == "photo-gray" else "photo-gray"
    named = plan_restore(data, other, device="cpu")  # an explicit model is never overridden
    assert named.model_name == other and named.model_reason == ""
    assert "chosen for the data" not in named.describe()


def test_a_given_network_is_never_replaced(tiny_model):
    plan = plan_restore(_fluorescence_like(64), tiny_model, device="cpu")
    assert plan.model is tiny_model and plan.model_reason == "" and "chosen" not in plan.describe()


def test_stack_sampling_is_cheap_and_uses_a_few_planes():
    from napari_gama_ir.zoo.choice import SAMPLE_PLANES, sample_planes

    stack = np.stack([_photo_like(64, seed=s) for s in range(10)])[:, None]  # (planes, C, Y, X)
    sample = sample_planes(stack)
    assert sample.shape == (SAMPLE_PLANES, 64, 64)
    assert choose_model(sample, channels=1)[0] == "photo-gray"
