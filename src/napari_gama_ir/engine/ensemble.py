"""Geometric self-ensemble: the network's mean over the 8 flips and 90-degree rotations of its input.

Every model here was trained on patches flipped and rotated at random, so each of the 8 views of a
tile gives an equally good estimate; their mean cancels part of the error that does not turn with the
view (the "self-ensemble" of Timofte et al. 2016 and EDSR+). It costs 8 forward passes per tile for
+0.04 to +0.20 dB PSNR on the held-out sets (docs/benchmarks.md, "Self-ensemble").
"""

from __future__ import annotations

from typing import Generator

import torch

VIEWS = 8  # the dihedral group of the square: 4 rotations, each with and without a mirror


def _view(x: torch.Tensor, turns: int, mirror: bool) -> torch.Tensor:
    x = torch.rot90(x, turns, (-2, -1))
    return x.flip(-1) if mirror else x


def _unview(y: torch.Tensor, turns: int, mirror: bool) -> torch.Tensor:
    y = y.flip(-1) if mirror else y
    return torch.rot90(y, -turns, (-2, -1))


def iter_self_ensemble(net, x: torch.Tensor, run_view=None) -> Generator[None, None, torch.Tensor]:
    """Mean of ``net`` over the 8 rotated and mirrored views of ``x``, each turned back; yields after each
    view (a point where a caller may stop) and returns the mean.

    ``x`` is an (N, C, H, W) tensor on the network's device (H and W on the network's grid; a 90-degree
    turn swaps them, which a fully convolutional network with global means accepts). The mean is an
    (N, C', H, W) float32 tensor. The views run one after another, so peak memory is that of one pass
    plus the float32 sum. ``run_view(fn)`` runs each view's forward pass (e.g. under a lock and autocast);
    default: directly.
    """
    total = None
    for turns in range(4):
        for mirror in (False, True):
            forward = lambda: net(_view(x, turns, mirror).contiguous()).float()  # noqa: E731 - bound per view
            y = _unview(run_view(forward) if run_view else forward(), turns, mirror)
            total = y if total is None else total.add_(y)  # rot90 always returns a new tensor
            yield
    return total.div_(VIEWS)


def self_ensemble(net, x: torch.Tensor) -> torch.Tensor:
    """:func:`iter_self_ensemble` run to its end."""
    views = iter_self_ensemble(net, x)
    while True:
        try:
            next(views)
        except StopIteration as done:
            return done.value
