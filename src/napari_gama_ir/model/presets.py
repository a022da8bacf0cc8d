"""Named architectures: ``PRESETS`` maps a name to ``GAMAIR`` keyword arguments.

"S" and "L" follow the sizes reported for the paper; the others are ours, small enough to train and run
on a laptop CPU, and named for their size, not for the paper's variants.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from .gama_ir import GAMAIR

PRESETS: dict[str, dict[str, Any]] = {
    # The paper's GAMA-IR-S and -L (per-level split unknown; [default] from ../shared/gama-ir.md).
    "S": dict(width=42, enc_blocks=(2, 2, 2, 2), middle_blocks=2, dec_blocks=(2, 2, 2, 2)),
    "L": dict(width=80, enc_blocks=(2, 2, 2, 2), middle_blocks=3, dec_blocks=(2, 2, 2, 2)),
    # Ours, for CPU-trained models.
    "w16": dict(width=16, enc_blocks=(1, 1, 1, 1), middle_blocks=2, dec_blocks=(1, 1, 1, 1)),
    "w24": dict(width=24, enc_blocks=(1, 1, 2, 2), middle_blocks=2, dec_blocks=(1, 1, 1, 1)),
    # For tests: a few thousand parameters, two levels.
    "tiny": dict(width=8, enc_blocks=(1, 1), middle_blocks=1, dec_blocks=(1, 1)),
}


def list_presets() -> list[str]:
    """Names of the registered architecture presets."""
    return list(PRESETS)


def build_model(preset: str = "S", in_channels: int = 1, out_channels: int | None = None, **overrides: Any) -> nn.Module:
    """Build an untrained GAMA-IR network from a preset.

    Parameters
    ----------
    preset : str
        One of :func:`list_presets` ("S", "L", "w16", "w24", "tiny").
    in_channels : int
        Input channels (1 grayscale, 3 RGB).
    out_channels : int or None
        Output channels; None means ``in_channels``.
    **overrides
        Any :class:`~napari_gama_ir.model.gama_ir.GAMAIR` argument; overrides win over the preset.

    Returns
    -------
    GAMAIR
        The network, in eval mode, with ``net.card`` set to a fresh :class:`ModelCard`.

    Examples
    --------
    >>> net = build_model("tiny", in_channels=1)
    >>> net.card.preset
    'tiny'
    """
    from ..errors import InvalidInputError
    from ..zoo.card import ModelCard

    if preset not in PRESETS:
        raise InvalidInputError(f"unknown preset {preset!r}; accepted: {', '.join(PRESETS)}")
    if not isinstance(in_channels, int) or in_channels < 1:
        raise InvalidInputError(f"in_channels must be a positive int, got {in_channels!r}")
    args = {**PRESETS[preset], **overrides, "in_channels": in_channels, "out_channels": out_channels or in_channels}
    net = GAMAIR(**args)
    net.eval()
    net.card = ModelCard(name=f"untrained-{preset}", preset=preset, model_args=_jsonable(args))
    return net


def _jsonable(args: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in args.items()}
