"""Training and fine-tuning engine (no Qt)."""

from .finetune import FinetuneOptions, FinetuneProgress, finetune, iter_finetune, run_finetune
from .noise import NoiseModel

__all__ = ["FinetuneOptions", "FinetuneProgress", "finetune", "iter_finetune", "run_finetune", "NoiseModel"]
