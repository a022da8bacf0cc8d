"""Batches made on the training device: the same geometry and the same noise and normalisation
statistics as the numpy sampler, reproducible from a seed."""

import numpy as np
import pytest
import torch

from napari_gama_ir.training.data import PatchSampler, TrainImage
from napari_gama_ir.training.device_sampler import DevicePatchSampler
from napari_gama_ir.training.noise import NoiseModel

from test_patch_sampler import images


def device_sampler(imgs, noise, seed=0, patch=32):
    return DevicePatchSampler(imgs, patch, np.random.default_rng(seed), noise, torch.device("cpu"))


def test_patches_come_only_from_images_they_fit_in_and_sides_are_clipped():
    sampler = device_sampler(images(), NoiseModel("gaussian", 0, 0))
    # a 32 px crop spans most of the small image's 40 px ramp, a quarter of the large one's 128 px ramp
    spans = [float(c.max() - c.min()) for c in sampler.batch(200, 32)[1]]
    assert any(s > 0.6 for s in spans) and any(s < 0.4 for s in spans)
    _, clean = sampler.batch(20, 96)  # only the large image holds 96 px
    assert clean.shape == (20, 1, 96, 96)
    noisy, clean = sampler.batch(3, 512)
    assert noisy.shape == clean.shape == (3, 1, 128, 128)


def test_same_seed_same_batch_other_seed_other_batch():
    noise = NoiseModel("mixed", 0, 55, 2, 200, clip_probability=0.25)
    a = device_sampler(images(), noise, seed=3).batch(4, 32)
    b = device_sampler(images(), noise, seed=3).batch(4, 32)
    c = device_sampler(images(), noise, seed=4).batch(4, 32)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.equal(a[0], c[0])


@pytest.mark.parametrize("noise", [NoiseModel("gaussian", 25, 25), NoiseModel("poisson-gaussian", 0, 0, 20, 20)])
def test_noise_and_normalisation_match_the_numpy_sampler(noise):
    """On a flat grey image the normalised noisy input and clean target have the same mean and spread."""
    flat = [TrainImage(None, np.full((1, 1, 256, 256), 0.5, np.float32), None)]
    on_device = device_sampler(flat, noise).batch(64, 64)
    on_cpu = PatchSampler(flat, 64, "synthetic", np.random.default_rng(0), noise).batch(64, 64)
    for (name, d), c in zip((("noisy", on_device[0]), ("clean", on_device[1])), on_cpu):
        d, c = d.numpy(), np.asarray(c)
        assert d.mean() == pytest.approx(c.mean(), abs=0.02), name
        if name == "noisy":
            assert d.std() == pytest.approx(c.std(), rel=0.05)
            # the percentile normaliser maps the noisy pixels to about [0, 1]
            assert np.percentile(d, 0.5) == pytest.approx(0.0, abs=0.05) and np.percentile(d, 99.9) == pytest.approx(1.0, abs=0.1)


def test_clipped_samples_stay_in_the_image_range():
    flat = [TrainImage(None, np.full((1, 1, 64, 64), 0.95, np.float32), None)]
    sampler = device_sampler(flat, NoiseModel("gaussian", 50, 50, clip_probability=1.0))
    batch = torch.stack([sampler._noisy(sampler.stacks[0][:, :, :32, :32], [sampler.noise_model.sample_params(sampler.rng)])[0]
                         for _ in range(4)])  # fmt: skip
    assert batch.max() <= 1.0 and batch.min() >= 0.0 and (batch == 1.0).any()
