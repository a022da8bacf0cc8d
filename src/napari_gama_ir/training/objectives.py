"""Self-supervised objectives: what a training step asks of the network when there is no clean image.

Each objective is a small callable ``objective(forward, inp, target, centre=slice(None), generator=None)``
that returns a scalar loss with a gradient. ``forward(x)`` is the network (under the run's autocast, in
float32 out); ``inp`` is the network input, (B, Cin, H, W) float32 on the training device, and ``target`` the
noisy plane being restored, (B, C, H, W). ``centre`` selects the input channels that hold that plane: all of
them for a 2-D model (``Cin == C``); ``k*C:(k+1)*C`` for a context model that also sees k planes on each
side. Every objective hides the centre plane's noise from the pixel it is scored on (the noisy value of a
scored pixel is never visible to the network for that pixel, or is recorrupted independently of its target);
the other input channels pass as they are, or get the same spatial sub-sampling. ``generator`` (a CPU
``torch.Generator``) makes the random choices reproducible.

An optional ``correlation`` (anything with ``.direction``, "y", "x" or None, and ``.length`` in pixels, 0 for
white noise, e.g. ``estimate.correlation.noise_correlation``'s result) describes noise correlated along one
image axis; each objective keeps the pixels it scores independent of the noise it shows, see its class.

The modes (``finetune(mode=...)``) and their objectives:

- ``"neighbor2neighbor"``: :class:`Neighbor2Neighbor` (Huang et al., CVPR 2021).
- ``"recorrupted"``: :class:`Recorrupted`, Recorrupted-to-Recorrupted (Pang et al., CVPR 2021); needs the
  noise model (:func:`~napari_gama_ir.estimate.noise.estimate_noise`).
- ``"blind-spot"``: :class:`BlindSpot`, Noise2Void (Krull et al., CVPR 2019).
- ``"self-supervised"``: the one that measured best at 5 CPU-minutes (``DEFAULT_SELF_SUPERVISED``,
  benchmarks/selfsupervised.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn.functional as F

from .blindspot import blindspot_mask

Forward = Callable[[torch.Tensor], torch.Tensor]

DEFAULT_SELF_SUPERVISED = "blind-spot"
"What mode 'self-supervised' means: the objective that measured best (docs/training.md, 'Self-supervised modes')."
SELF_SUPERVISED_MODES = ("self-supervised", "neighbor2neighbor", "recorrupted", "blind-spot")
"The finetune modes that train on noisy images alone."


def is_self_supervised(mode: str) -> bool:
    """Whether ``mode`` trains on noisy images alone (the target is the noisy image itself)."""
    return mode in SELF_SUPERVISED_MODES


def resolve_mode(mode: str) -> str:
    """The objective a self-supervised mode name stands for ('self-supervised' -> the default one)."""
    return DEFAULT_SELF_SUPERVISED if mode == "self-supervised" else mode


def _direction(correlation: Any) -> str | None:
    """The axis ("y" or "x") along which the noise is correlated, None when it is white (or not given)."""
    if correlation is None or not getattr(correlation, "length", 0) or getattr(correlation, "direction", None) is None:
        return None
    return correlation.direction


@dataclass
class BlindSpot:
    """Noise2Void: a ``mask_fraction`` of the centre plane's pixels is replaced by a random neighbour's value
    (:func:`~.blindspot.blindspot_mask`); the loss is the MSE on those pixels against their noisy values.

    With noise correlated along an axis (``correlation``), the masked pixel's neighbours along that axis, up to
    ``correlation.length`` pixels on each side, are replaced too, by values of random pixels of the same patch
    (structN2V, Broaddus et al., ISBI 2020), so that no pixel carrying the same noise stays visible.
    Only the network's predictions at masked pixels train it: at inference it sees every pixel.
    """

    mask_fraction: float = 0.002
    correlation: Any = None
    name = "blind-spot"
    loss_name = "masked mse"

    def __call__(self, forward: Forward, inp, target, centre: slice = slice(None), generator=None) -> torch.Tensor:
        masked, mask = blindspot_mask(inp[:, centre], self.mask_fraction, generator=generator)
        direction = _direction(self.correlation)
        if direction is not None:
            masked = _mask_lines(masked, mask, direction, int(self.correlation.length), generator)
        full = inp.clone()
        full[:, centre] = masked
        pred = forward(full)
        mask = mask.to(pred.device)
        return (((pred - target) ** 2) * mask).sum() / mask.sum().clamp_min(1)


def _mask_lines(masked: torch.Tensor, mask: torch.Tensor, direction: str, length: int, generator) -> torch.Tensor:
    """structN2V: every masked pixel and the ``length`` pixels on each side of it along ``direction`` ("y" or
    "x") get the values of random pixels of the same patch and channel (a masked pixel's blind-spot value, taken
    from a neighbour that may lie on that line, would carry the same noise). (B, C, H, W) in, the same out."""
    b, c, h, w = masked.shape
    out = masked.clone()
    line = torch.zeros_like(mask, dtype=torch.bool)
    dim = 2 if direction == "y" else 3
    for shift in range(1, length + 1):
        for s in (shift, -shift):
            shifted = torch.roll(mask.bool(), s, dims=dim)
            edge = [slice(None)] * 4  # torch.roll wraps around: the wrapped rows/columns are not neighbours
            edge[dim] = slice(0, s) if s > 0 else slice(s, None)
            shifted[tuple(edge)] = False
            line |= shifted
    line |= mask.bool()  # the masked pixel too: its blind-spot value may come from a neighbour on that line
    flat = out.reshape(b * c, h * w)
    picks = torch.randint(0, h * w, (b * c, h * w), generator=generator).to(out.device)
    random_values = torch.gather(flat, 1, picks).reshape(b, c, h, w)
    return torch.where(line.to(out.device), random_values, out)


@dataclass
class Neighbor2Neighbor:
    """Neighbor2Neighbor: two sub-images g1(y), g2(y) of half the size from each 2 x 2 cell of the noisy
    input, one pixel each, the two pixels adjacent (their noise is independent), and the loss

        |f(g1 y) - g2 y|^2 + gamma |f(g1 y) - g2 y - (g1 f(y) - g2 f(y))|^2

    with f(y), the network on the whole input, taken without gradient (the regulariser pulls the
    sub-sampled training towards the full-resolution output used at inference). ``target`` gives g2 y; every
    input channel (context planes too) gets the same sub-sampling g1, so the centre plane's pixel scored at
    each position (taken by g2) is never in the network's input.

    With noise correlated along an axis (``correlation``), the two pixels of a cell are always adjacent across
    that axis (a stripe along x: the pair is one above the other), so that they never share noise.
    Inputs need even height and width.
    """

    gamma: float = 2.0
    correlation: Any = None
    name = "neighbor2neighbor"
    loss_name = "neighbour mse"

    def __call__(self, forward: Forward, inp, target, centre: slice = slice(None), generator=None) -> torch.Tensor:
        g1, g2 = neighbour_masks(inp.shape[0], inp.shape[2], inp.shape[3], _direction(self.correlation), generator)
        g1, g2 = g1.to(inp.device), g2.to(inp.device)
        with torch.no_grad():
            full = forward(inp)
        pred = forward(subsample(inp, g1))
        noisy_target = subsample(target, g2)
        exp_diff = subsample(full, g1) - subsample(full, g2)
        diff = pred - noisy_target
        return torch.mean(diff**2) + self.gamma * torch.mean((diff - exp_diff) ** 2)


def neighbour_masks(b: int, h: int, w: int, correlated: str | None = None, generator=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Neighbor2Neighbor's random neighbour sub-sampler: for each 2 x 2 cell of a (b, h, w) grid, the flat
    index (0..3, row-major in the cell) of the pixel g1 takes and of an adjacent one g2 takes.
    ``correlated`` "x": g2 is the pixel above/below g1's; "y": beside it; None: either. Two (b, h//2, w//2)
    int64 tensors."""
    cells = (b, h // 2, w // 2)
    first = torch.randint(0, 4, cells, generator=generator)
    # in a 2 x 2 cell the adjacent pixels of index i are i ^ 1 (beside it) and i ^ 2 (above or below)
    if correlated == "x":
        flip = torch.full(cells, 2)
    elif correlated == "y":
        flip = torch.full(cells, 1)
    else:
        flip = 1 + torch.randint(0, 2, cells, generator=generator)
    return first, first ^ flip


def subsample(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """The (B, C, H/2, W/2) sub-image that takes from each 2 x 2 cell of ``x`` (B, C, H, W) the pixel
    ``index`` (B, H/2, W/2; 0..3 row-major in the cell) names; every channel the same pixel."""
    b, c, h, w = x.shape
    cells = F.pixel_unshuffle(x[:, :, : h // 2 * 2, : w // 2 * 2], 2).reshape(b, c, 4, h // 2, w // 2)
    return torch.gather(cells, 2, index[:, None, None].expand(b, c, 1, h // 2, w // 2)).squeeze(2)


@dataclass
class Recorrupted:
    """Recorrupted-to-Recorrupted: with noise z drawn from the noise model's variance at each pixel,
    the input is y + alpha z and the target y - z / alpha; the two recorrupted images have independent noise
    (for Gaussian noise exactly), so the MSE between f(input) and the target trains f towards the clean image.

    ``gain`` and ``read_var`` give the noise variance of the normalised data, var = gain * signal + read_var,
    with the signal taken as the 3 x 3 mean of the noisy target (at least 0). Only the centre plane is
    recorrupted; context planes pass as they are. With ``correlation``, z is smoothed along the correlated
    axis by a box of ``length + 1`` pixels and rescaled to the same variance, so that the added noise is
    correlated like the data's.
    """

    gain: float
    read_var: float
    alpha: float = 0.5
    correlation: Any = None
    name = "recorrupted"
    loss_name = "recorrupted mse"

    def __call__(self, forward: Forward, inp, target, centre: slice = slice(None), generator=None) -> torch.Tensor:
        signal = F.avg_pool2d(F.pad(target, (1, 1, 1, 1), mode="replicate"), 3, stride=1).clamp_min(0)
        std = (self.gain * signal + self.read_var).clamp_min(0).sqrt()
        z = torch.randn(target.shape, generator=generator).to(target.device)
        direction = _direction(self.correlation)
        if direction is not None:
            k = int(self.correlation.length) + 1
            kernel = (k, 1) if direction == "y" else (1, k)
            pad = (0, 0, k // 2, k - 1 - k // 2) if direction == "y" else (k // 2, k - 1 - k // 2, 0, 0)
            z = F.avg_pool2d(F.pad(z, pad, mode="reflect"), kernel, stride=1) * k**0.5
        z = z * std
        noisier = inp.clone()
        noisier[:, centre] = inp[:, centre] + self.alpha * z
        return torch.mean((forward(noisier) - (target - z / self.alpha)) ** 2)


def make_objective(mode: str, *, mask_fraction: float = 0.002, correlation: Any = None, noise=None):
    """The objective of a self-supervised ``mode`` (see the module docstring).

    ``noise``: for "recorrupted", the noise model of the normalised training data, anything with ``gain``
    and ``sigma`` (a :class:`~napari_gama_ir.estimate.noise.NoiseEstimate`); the other modes ignore it.
    """
    name = resolve_mode(mode)
    if name == "blind-spot":
        return BlindSpot(mask_fraction, correlation)
    if name == "neighbor2neighbor":
        return Neighbor2Neighbor(correlation=correlation)
    if name == "recorrupted":
        if noise is None:
            raise ValueError("mode 'recorrupted' needs the noise model of the normalised data (noise=)")
        return Recorrupted(float(noise.gain), float(noise.sigma) ** 2, correlation=correlation)
    raise ValueError(f"mode {mode!r} is not self-supervised; accepted: {', '.join(SELF_SUPERVISED_MODES)}")


SELF_SUPERVISED_LOSSES = tuple(o.loss_name for o in (BlindSpot, Neighbor2Neighbor, Recorrupted))
"``FinetuneProgress.loss_name`` of self-supervised runs (their loss is against noise, their PSNR estimated)."
