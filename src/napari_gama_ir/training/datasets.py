"""Turn what a user hands to ``finetune`` (arrays, lists, layer data, folders of TIFFs) into TrainImages."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import InvalidInputError
from ..io.axes import CanonicalLayout, default_axes, normalize_axes
from ..io.files import open_input
from ..io.normalize import Normalizer
from .data import TrainImage


def _as_list(data, role: str) -> list:
    if data is None:
        return []
    if isinstance(data, (str, os.PathLike)) and Path(data).is_dir():
        files = sorted(p for p in Path(data).iterdir() if p.suffix.lower() in (".tif", ".tiff"))
        if not files:
            raise InvalidInputError(f"{role} folder {data} holds no .tif/.tiff files")
        return files
    if isinstance(data, (list, tuple)):
        return list(data)
    return [data]


def _canonical(item, axes: str | None, role: str, index: int):
    src = open_input(item)
    arr = src.array
    if np.dtype(arr.dtype).kind not in "uif":
        raise InvalidInputError(f"{role} image {index} has dtype {arr.dtype}; accepted: integer or float images")
    shape = tuple(int(s) for s in arr.shape)
    ax = normalize_axes(axes or src.axes or default_axes(shape), shape)
    return CanonicalLayout(ax, shape).to_canonical(arr)


def as_train_images(noisy, clean, mode: str, axes: str | None = None) -> list[TrainImage]:
    """Pair noisy and clean inputs (by order; folders by sorted file name) as (planes, C, Y, X) views."""
    noisy_items, clean_items = _as_list(noisy, "noisy"), _as_list(clean, "clean")
    if mode == "synthetic":
        if not clean_items:
            raise InvalidInputError("mode 'synthetic' needs clean images (noise is added on the fly)")
        return [TrainImage(None, _canonical(c, axes, "clean", i), None) for i, c in enumerate(clean_items)]
    if not noisy_items:
        raise InvalidInputError("no noisy images given; pass arrays, napari layer data, or a folder of TIFFs")
    if mode == "supervised":
        if not clean_items:
            raise InvalidInputError("mode 'supervised' needs clean images; without them use mode='self-supervised'")
        if len(clean_items) != len(noisy_items):
            raise InvalidInputError(f"got {len(noisy_items)} noisy but {len(clean_items)} clean images; pairs are matched by order")
        if all(isinstance(p, Path) for p in noisy_items + clean_items):
            names_n, names_c = [p.name for p in noisy_items], [p.name for p in clean_items]
            if names_n != names_c:
                raise InvalidInputError(f"noisy and clean folders hold different file names: {names_n} vs {names_c}")
    images = []
    for i, item in enumerate(noisy_items):
        n = _canonical(item, axes, "noisy", i)
        c = _canonical(clean_items[i], axes, "clean", i) if clean_items else None
        if c is not None and tuple(c.shape) != tuple(n.shape):
            raise InvalidInputError(
                f"pair {i}: noisy {getattr(item, 'name', '')} has (planes, C, Y, X) shape {tuple(n.shape)} but clean has "
                f"{tuple(c.shape)}; pairs must match pixel for pixel"
            )
        images.append(TrainImage(n, c, Normalizer.from_stack(n)))
    shapes = {im.shape[1] for im in images}
    if len(shapes) > 1:
        raise InvalidInputError(f"images have different channel counts {sorted(shapes)}; train one model per channel count")
    return images
