"""napari-gama-ir: fast image restoration with GAMA-IR, as a Python library, a CLI and a napari plugin.

This module imports core only (no Qt, napari or magicgui), so scripts and cluster workers stay light.
"""

from .engine.restore import Progress, iter_restore, restore
from .engine.options import RestoreOptions
from .estimate.noise import NoiseEstimate, estimate_noise
from .estimate.quality import QualityEstimate, estimate_quality
from .engine.plan import RestorePlan, plan_restore
from .errors import (
    FinetuneCancelled,
    GamaIRError,
    InvalidDtypeError,
    InvalidInputError,
    ModelFileError,
    OutputError,
    RestoreCancelled,
    RestoreError,
)
from .model.presets import build_model, list_presets
from .training.finetune import FinetuneOptions, FinetuneProgress, finetune, iter_finetune
from .zoo.card import ModelCard
from .zoo.bioimageio import export_bioimageio
from .zoo.store import list_models, load_model, save_model, user_models_dir

__version__ = "0.1.0"

__all__ = [
    "restore",
    "iter_restore",
    "finetune",
    "iter_finetune",
    "FinetuneOptions",
    "FinetuneProgress",
    "plan_restore",
    "estimate_noise",
    "NoiseEstimate",
    "estimate_quality",
    "QualityEstimate",
    "RestoreOptions",
    "RestorePlan",
    "Progress",
    "load_model",
    "save_model",
    "export_bioimageio",
    "list_models",
    "build_model",
    "list_presets",
    "user_models_dir",
    "ModelCard",
    "RestoreCancelled",
    "RestoreError",
    "FinetuneCancelled",
    "GamaIRError",
    "InvalidInputError",
    "InvalidDtypeError",
    "ModelFileError",
    "OutputError",
    "restore_layer",
    "__version__",
]


def __getattr__(name: str):
    """``restore_layer`` (napari's console helper) is imported on first use; it needs no napari itself."""
    if name == "restore_layer":
        from ._napari.layers import restore_layer

        return restore_layer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
