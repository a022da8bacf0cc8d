"""Mergers accumulate weighted tile predictions and return their normalised sum."""

from __future__ import annotations

import numpy as np


class ArrayMerger:
    """In-memory merger for a batch of images of shape (N, C, Y, X), all tiled the same way.

    ``add(values, location)`` adds ``values`` (C, h, w) at ``location`` = (n, y, x); ``finalize()``
    divides by the summed window weights, which are the same for every image and counted once.
    """

    def __init__(self, shape: tuple[int, int, int, int]) -> None:
        self.values = np.zeros(shape, dtype=np.float32)
        self.weights = np.zeros(shape[-2:], dtype=np.float32)
        self._windows: dict[tuple[int, int], np.ndarray] = {}

    def set_window(self, corner: tuple[int, int], window: np.ndarray) -> None:
        """Register the window of the tile at ``corner`` (y, x) once; it applies to every image."""
        self._windows[corner] = window
        y, x = corner
        h, w = window.shape
        self.weights[y : y + h, x : x + w] += window

    def add(self, values: np.ndarray, location: tuple[int, int, int]) -> None:
        n, y, x = location
        window = self._windows[(y, x)]
        h, w = window.shape
        self.values[n, :, y : y + h, x : x + w] += values * window

    def finalize(self) -> np.ndarray:
        self.values /= self.weights
        return self.values
