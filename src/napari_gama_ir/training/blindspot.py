"""Noise2Void-style blind-spot masking (Krull et al., CVPR 2019) for self-supervised training.

A few pixels per patch are replaced by a random other pixel of their neighbourhood; the loss is taken on
those pixels only, against their original noisy values. With pixel-independent noise the network cannot
learn the noise there, only the signal predicted from the surroundings.
"""

from __future__ import annotations

import torch


def blindspot_mask(
    batch: torch.Tensor, fraction: float = 0.002, radius: int = 2, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mask a B x C x H x W batch.

    Returns
    -------
    masked : torch.Tensor
        The batch with masked pixels replaced by a neighbour's value (offset in [-radius, radius]^2,
        never (0, 0)); same shape and dtype.
    mask : torch.Tensor
        1.0 where a pixel was masked, else 0.0; same shape.
    """
    b, c, h, w = batch.shape
    n = max(1, int(round(fraction * h * w)))
    dev = batch.device
    ys = torch.randint(0, h, (b, n), generator=generator).to(dev)
    xs = torch.randint(0, w, (b, n), generator=generator).to(dev)
    offsets = torch.randint(-radius, radius, (b, n, 2), generator=generator).to(dev)
    offsets = offsets + (offsets >= 0).long()  # skip 0: range [-r, -1] U [1, r]
    # Use a random offset per axis but allow 0 on one axis: shift one axis back to 0 half the time.
    zero_axis = torch.randint(0, 3, (b, n), generator=generator).to(dev)  # 0: keep both, 1: dy=0, 2: dx=0
    dy = torch.where(zero_axis == 1, torch.zeros_like(offsets[..., 0]), offsets[..., 0])
    dx = torch.where(zero_axis == 2, torch.zeros_like(offsets[..., 1]), offsets[..., 1])
    src_y = (ys + dy).clamp(0, h - 1)
    src_x = (xs + dx).clamp(0, w - 1)
    # a clamp at the border can land back on the pixel itself: push it the other way
    same = (src_y == ys) & (src_x == xs)
    src_y = torch.where(same, (ys - dy).clamp(0, h - 1), src_y)
    src_x = torch.where(same, (xs - dx).clamp(0, w - 1), src_x)
    masked = batch.clone()
    mask = torch.zeros_like(batch)
    bi = torch.arange(b, device=dev)[:, None].expand(b, n)
    for ch in range(c):
        masked[bi, ch, ys, xs] = batch[bi, ch, src_y, src_x]
        mask[bi, ch, ys, xs] = 1.0
    return masked, mask
