"""Which shipped model ``restore(x)`` uses when no model is named."""

from __future__ import annotations

from ..errors import InvalidInputError
from .store import list_models

# First match wins; later work adds names here as models ship.
PREFERENCES = {
    "rgb": ("photo-rgb",),
    "gray": ("fluorescence", "general-gray", "photo-gray"),
}


def default_model_name(channels: int, rgb_last: bool = False) -> str:
    """Name of the default model for data with ``channels`` channels (RGB when 3 and channel-last)."""
    available = {card.name: card for card in list_models()}
    kind = "rgb" if channels == 3 and rgb_last else "gray"
    for name in PREFERENCES[kind]:
        if name in available:
            return name
    for name in PREFERENCES["gray"]:  # a gray model restores each channel of RGB data separately
        if name in available:
            return name
    raise InvalidInputError(
        "no default model is installed (weights/ is missing from this installation); reinstall napari-gama-ir "
        "or pass model= a path to NAME.safetensors"
    )
