"""Model files: cards, saving, loading, listing."""

from .card import ModelCard
from .store import list_models, load_model, save_model, shipped_models_dir, user_models_dir

__all__ = ["ModelCard", "list_models", "load_model", "save_model", "shipped_models_dir", "user_models_dir"]
