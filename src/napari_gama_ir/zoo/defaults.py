"""Default models: ``default_model_name`` by channel count alone (``finetune``'s base "default"); ``restore(x)``
without a model chooses from the data itself (zoo.choice), among the models ``default_names`` lists."""

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


def default_names() -> dict[str, str]:
    """The installed models ``restore(x)`` picks without a model name (zoo.choice.choose_model), each with
    the data it is chosen for."""
    available = {card.name for card in list_models()}
    chosen = {
        "photo-gray": "single-channel photo-like data",
        "fluorescence": "Poisson-dominated noise on a dark background",
        "general-gray": "very strong noise or dark images with Gaussian noise",
        "photo-rgb": "RGB data",
    }
    return {name: what for name, what in chosen.items() if name in available}


SPEED_CLASSES = ((3_000_000, "fast"), (30_000_000, "slower"))
"Parameter counts up to which a model is in a speed class; above the last, 'slow'."


def speed_class(parameters: int) -> str:
    """'fast' (the w16 models: about 1.5-2 MP/s on 2 CPU cores), 'slower' (the paper's "S": 4-5x slower on a
    CPU, fine on a GPU) or 'slow', from the parameter count."""
    return next((label for limit, label in SPEED_CLASSES if parameters <= limit), "slow")
