"""Tiling: tile positions, blending windows, mergers."""

from .merge import ArrayMerger
from .windows import aligned_tiling, blend_window, tile_grid, tile_starts

__all__ = ["ArrayMerger", "aligned_tiling", "blend_window", "tile_grid", "tile_starts"]
