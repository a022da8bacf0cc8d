"""Training patches: each is drawn from an image it fits in, and a larger side than any image allows is clipped."""

import numpy as np

from napari_gama_ir.training.data import PatchSampler, TrainImage
from napari_gama_ir.training.noise import NoiseModel


def images():
    """A small image that varies along X only and a large one that varies along Y only."""
    small = np.broadcast_to(np.linspace(0, 1, 40, dtype=np.float32), (1, 1, 40, 40))
    large = np.broadcast_to(np.linspace(0, 1, 128, dtype=np.float32)[:, None], (1, 1, 128, 160))
    return [TrainImage(None, small, None), TrainImage(None, large, None)]


def varies_along_x(patch):
    return np.ptp(patch[0], axis=1).mean() > np.ptp(patch[0], axis=0).mean()


def test_patches_come_only_from_images_they_fit_in():
    sampler = PatchSampler(images(), 32, "synthetic", np.random.default_rng(0), NoiseModel("gaussian", 0, 0), augment_patches=False)
    from_small = [varies_along_x(sampler.sample(32)[1]) for _ in range(200)]
    assert any(from_small) and not all(from_small)  # both images are used at 32 px
    for _ in range(50):
        _, clean = sampler.sample(96)
        assert clean.shape == (1, 96, 96) and not varies_along_x(clean)  # only the large image holds 96 px


def test_a_side_larger_than_every_image_is_clipped_to_the_largest_that_fits():
    sampler = PatchSampler(images(), 32, "synthetic", np.random.default_rng(0), NoiseModel("gaussian", 0, 0))
    noisy, clean = sampler.batch(3, 512)
    assert noisy.shape == clean.shape == (3, 1, 128, 128)
