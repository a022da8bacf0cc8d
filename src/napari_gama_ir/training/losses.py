"""Losses and metrics on B x C x H x W tensors in the normalised range."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def psnr_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over the batch of 10*log10 of each sample's MSE (minimising it maximises PSNR)."""
    err = (pred - target) ** 2
    if mask is None:
        mse = err.flatten(1).mean(1)
    else:
        mse = (err * mask).flatten(1).sum(1) / mask.flatten(1).sum(1).clamp(min=1)
    return 10 * torch.log10(mse + 1e-10).mean()


def l1_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean absolute error (over masked pixels only when ``mask`` is given)."""
    err = (pred - target).abs()
    if mask is None:
        return err.mean()
    return (err * mask).sum() / mask.sum().clamp(min=1)


def mse_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean squared error (over masked pixels only when ``mask`` is given)."""
    err = (pred - target) ** 2
    if mask is None:
        return err.mean()
    return (err * mask).sum() / mask.sum().clamp(min=1)


LOSSES = {"psnr": psnr_loss, "l1": l1_loss, "mse": mse_loss}


def psnr(pred, target, data_range: float = 1.0) -> float:
    """PSNR in dB of numpy arrays or tensors."""
    pred, target = torch.as_tensor(pred, dtype=torch.float64), torch.as_tensor(target, dtype=torch.float64)
    mse = torch.mean((pred - target) ** 2).item()
    return float("inf") if mse == 0 else 10 * torch.log10(torch.tensor(data_range**2 / mse)).item()


def ssim(pred, target, data_range: float = 1.0, window: int = 7) -> float:
    """Mean SSIM of two 2-D (or C x H x W) images, uniform 7x7 window (scikit-image's default)."""
    x = torch.as_tensor(pred, dtype=torch.float64)
    y = torch.as_tensor(target, dtype=torch.float64)
    while x.ndim < 4:
        x, y = x[None], y[None]
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    k = torch.ones(x.shape[1], 1, window, window, dtype=x.dtype) / window**2

    def blur(t):
        return F.conv2d(t, k, groups=t.shape[1])

    mx, my = blur(x), blur(y)
    n = window**2
    cov = n / (n - 1)  # sample covariance, as scikit-image
    vx, vy, vxy = cov * (blur(x * x) - mx**2), cov * (blur(y * y) - my**2), cov * (blur(x * y) - mx * my)
    s = ((2 * mx * my + c1) * (2 * vxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return s.mean().item()
