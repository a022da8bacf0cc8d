"""Blind-spot masking (Noise2Void): masked pixels take a neighbour's value, never their own; the mask marks them."""

import torch

from napari_gama_ir.training.blindspot import blindspot_mask


def test_masked_pixels_come_from_a_neighbour_and_only_they_change():
    g = torch.Generator().manual_seed(0)
    batch = torch.arange(2 * 1 * 32 * 32, dtype=torch.float32).reshape(2, 1, 32, 32)  # every value unique
    masked, mask = blindspot_mask(batch, fraction=0.05, radius=2, generator=g)
    assert masked.shape == batch.shape and mask.shape == batch.shape
    assert mask.sum() > 0
    unchanged = mask == 0
    assert torch.equal(masked[unchanged], batch[unchanged])
    for b, _, y, x in mask.nonzero().tolist():
        value = masked[b, 0, y, x]
        assert value != batch[b, 0, y, x], "a masked pixel kept its own value"
        window = batch[b, 0, max(0, y - 2) : y + 3, max(0, x - 2) : x + 3]
        assert (window == value).any(), "replacement does not come from the 5x5 neighbourhood"


def test_fraction_sets_the_number_of_masked_pixels_per_image():
    batch = torch.rand(3, 1, 64, 64)
    _, mask = blindspot_mask(batch, fraction=0.01, generator=torch.Generator().manual_seed(1))
    per_image = mask.flatten(1).sum(1)
    assert torch.all(per_image <= round(0.01 * 64 * 64)) and torch.all(per_image >= 30)
