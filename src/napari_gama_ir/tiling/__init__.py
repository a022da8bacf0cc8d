"""Tiling: tile positions, blending windows, mergers."""

from .merge import ArrayMerger
from .windows import blend_window, tile_grid, tile_starts

__all__ = ["ArrayMerger", "blend_window", "tile_grid", "tile_starts"]
