"""The GAMA-IR network and its presets."""

from .gama_ir import GAMA, GAMAIR, GAMABlock, LayerNorm2d, SimpleGate
from .presets import PRESETS, build_model, list_presets

__all__ = ["GAMA", "GAMAIR", "GAMABlock", "LayerNorm2d", "SimpleGate", "PRESETS", "build_model", "list_presets"]
