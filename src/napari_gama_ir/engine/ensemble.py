"""Geometric self-ensemble: the network's mean over the 8 flips and 90-degree rotations of its input.

Every model here was trained on patches flipped and rotated at random, so each of the 8 views of a
tile gives an equally good estimate; their mean cancels part of the error that does not turn with the
view (the "self-ensemble" of Timofte et al. 2016 and EDSR+). It costs 8 forward passes per tile for
+0.04 to +0.20 dB PSNR on the held-out sets (docs/benchmarks.md, "Self-ensemble").
"""

from __future__ import annotations

import torch

VIEWS = 8  # the dihedral group of the square: 4 rotations, each with and without a mirror


def _view(x: torch.Tensor, turns: int, mirror: bool) -> torch.Tensor:
    x = torch.rot90(x, turns, (-2, -1))
    return x.flip(-1) if mirror else x


def _unview(y: torch.Tensor, turns: int, mirror: bool) -> torch.Tensor:
    y = y.flip(-1) if mirror else y
    return torch.rot90(y, -turns, (-2, -1))


def self_ensemble(net, x: torch.Tensor) -> torch.Tensor:
    """Mean of ``net`` over the 8 rotated and mirrored views of ``x``, each turned back.

    ``x`` is an (N, C, H, W) tensor on the network's device (H and W on the network's grid; a 90-degree
    turn swaps them, which a fully convolutional network with global means accepts). Returns the
    (N, C', H, W) float32 mean. The views run one after another, so peak memory is that of one pass
    plus the float32 sum.
    """
    total = None
    for turns in range(4):
        for mirror in (False, True):
            y = _unview(net(_view(x, turns, mirror).contiguous()).float(), turns, mirror)
            total = y if total is None else total.add_(y)  # rot90 always returns a new tensor
    return total.div_(VIEWS)
