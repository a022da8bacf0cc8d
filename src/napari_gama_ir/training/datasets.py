"""Turn what a user hands to ``finetune`` (arrays, lists, layer data, folders of TIFFs) into TrainImages."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import InvalidDtypeError, InvalidInputError
from ..io.axes import CanonicalLayout, default_axes, normalize_axes
from ..io.files import open_input
from ..io.normalize import Normalizer
from .data import TrainImage, non_finite_error


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


EAGER_CHECK_PLANES = 16  # planes per np.isfinite pass over an in-memory array (bounds the temporary memory)


def _canonical(item, axes: str | None, role: str, index: int, context: tuple[int, str] = (0, "")):
    """One input as ``(view, neighbours)``: a (planes, C, Y, X) view, checked (readable, numeric, not empty,
    finite when in memory), and with ``context = (k, axis)``, k > 0, each plane's neighbour table
    (:func:`~napari_gama_ir.model.context.neighbour_table`), else None."""
    try:
        src = open_input(item)
        arr = src.array
        if np.dtype(arr.dtype).kind not in "uif":
            raise InvalidDtypeError(f"{role} image {index} has dtype {arr.dtype}; accepted: integer or float images")
        shape = tuple(int(s) for s in arr.shape)
        ax = normalize_axes(axes or src.axes or default_axes(shape), shape)
        view = CanonicalLayout(ax, shape).to_canonical(arr)
    except InvalidDtypeError:
        raise
    except InvalidInputError as exc:
        raise InvalidInputError(f"{role} image {index}: {exc}") from None
    if 0 in view.shape:
        raise InvalidInputError(f"{role} image {index} is empty ((planes, C, Y, X) shape {tuple(view.shape)}); accepted: images with pixels")
    if not src.lazy and not isinstance(view, np.memmap) and np.dtype(view.dtype).kind == "f":
        # in memory: check every pixel now; lazy inputs are checked where training reads them (TrainImage.read)
        for start in range(0, view.shape[0], EAGER_CHECK_PLANES):
            with np.errstate(over="ignore", invalid="ignore"):  # float64 beyond float32's range is inf in training
                ok = np.isfinite(np.asarray(view[start : start + EAGER_CHECK_PLANES], np.float32))
            ok = ok.reshape(ok.shape[0], -1).all(1)
            if not ok.all():
                where = f"first in plane {start + int(np.argmin(ok))} of {view.shape[0]}"
                raise non_finite_error(role, index, where)
    planes, axis = context
    if not planes:
        return view, None
    from ..model.context import neighbour_table

    what = f"context {planes} (neighbouring planes on each side along {axis}) for {role} image {index}"
    return view, neighbour_table(ax, shape, planes, axis, what)


def _normalizer(view, role: str, index: int, neighbours: np.ndarray | None) -> Normalizer:
    """The image's normaliser (with ``neighbours``, a context model's: the running mean's percentiles); NaN or
    inf in the pixels it samples (lazy inputs) is refused here."""
    norm = Normalizer.from_stack(view, neighbours=neighbours)
    if not (np.isfinite(norm.low).all() and np.isfinite(norm.high).all()):
        raise non_finite_error(role, index, "in the pixels sampled for its intensity range")
    return norm


def first_axes(noisy, clean, mode: str, axes: str | None) -> str:
    """Axes of the first training image (the clean one in mode 'synthetic'), as ``as_train_images`` reads it."""
    items = _as_list(clean if mode == "synthetic" else noisy, "clean" if mode == "synthetic" else "noisy")
    if not items:
        return ""
    try:
        src = open_input(items[0])
        shape = tuple(int(s) for s in src.array.shape)
        return normalize_axes(axes or src.axes or default_axes(shape), shape)
    except InvalidInputError:
        return ""  # as_train_images reports it


def as_train_images(noisy, clean, mode: str, axes: str | None = None, prefix: str = "",
                    context: tuple[int, str] = (0, "")) -> list[TrainImage]:  # fmt: skip
    """Pair noisy and clean inputs (by order; folders by sorted file name) as (planes, C, Y, X) views.

    ``prefix`` goes before "noisy"/"clean" in error messages ("val_images " for explicit validation images).
    ``context = (k, axis)`` with k > 0: each image also gets its planes' neighbours (``TrainImage.neighbours``).
    """
    roles = (prefix + "noisy", prefix + "clean")
    noisy_items, clean_items = _as_list(noisy, roles[0]), _as_list(clean, roles[1])
    if mode == "synthetic":
        if not clean_items:
            raise InvalidInputError(f"mode 'synthetic' needs {roles[1]} images (noise is added on the fly), got none")
        if noisy_items:
            raise InvalidInputError(f"mode 'synthetic' makes its own noisy inputs from the clean images; pass {roles[0]}=None")
        views = [_canonical(c, axes, roles[1], i, context) for i, c in enumerate(clean_items)]
        return [TrainImage(None, v, None, index=i, prefix=prefix, neighbours=table) for i, (v, table) in enumerate(views)]
    if not noisy_items:
        raise InvalidInputError(f"no {roles[0]} images given; pass arrays, napari layer data, or a folder of TIFFs")
    if mode == "supervised":
        if not clean_items:
            raise InvalidInputError(f"mode 'supervised' needs {roles[1]} images; without them use mode='self-supervised'")
        if len(clean_items) != len(noisy_items):
            raise InvalidInputError(f"got {len(noisy_items)} {roles[0]} but {len(clean_items)} {roles[1]} images; pairs are matched by order")
        if all(isinstance(p, Path) for p in noisy_items + clean_items):
            names_n, names_c = [p.name for p in noisy_items], [p.name for p in clean_items]
            if names_n != names_c:
                raise InvalidInputError(f"{roles[0]} and {roles[1]} folders hold different file names: {names_n} vs {names_c}")
    elif clean_items and len(clean_items) != len(noisy_items):
        raise InvalidInputError(f"got {len(noisy_items)} {roles[0]} but {len(clean_items)} {roles[1]} images; pairs are matched by order")
    images = []
    for i, item in enumerate(noisy_items):
        n, table = _canonical(item, axes, roles[0], i, context)
        c = _canonical(clean_items[i], axes, roles[1], i)[0] if clean_items else None
        if c is not None and tuple(c.shape) != tuple(n.shape):
            raise InvalidInputError(
                f"pair {i}: {roles[0]} {getattr(item, 'name', '')} has (planes, C, Y, X) shape {tuple(n.shape)} but {roles[1]} has "
                f"{tuple(c.shape)}; pairs must match pixel for pixel"
            )
        images.append(TrainImage(n, c, _normalizer(n, roles[0], i, table), index=i, prefix=prefix, neighbours=table))
    shapes = {im.shape[1] for im in images}
    if len(shapes) > 1:
        raise InvalidInputError(f"{roles[0]} images have different channel counts {sorted(shapes)}; train one model per channel count")
    return images
