"""napari layers <-> restore(): layer -> (array, axes, metadata); result -> LayerDataTuple.

Everything here reads layer attributes duck-typed and imports no napari, so :func:`restore_layer`
(exported lazily as ``napari_gama_ir.restore_layer``) works in napari's console without any import
cost and on anything that looks like an Image layer. The generators (:func:`iter_restore_into`,
:func:`iter_preview`) are what the widgets run in their workers.
"""

from __future__ import annotations

import math
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..engine.plan import plan_restore
from ..engine.restore import iter_restore
from ..errors import InvalidInputError
from ..io.axes import CanonicalLayout, default_axes, normalize_axes
from ..io.files import open_input
from ..io.sinks import create_zarr_array

ZARR_THRESHOLD_BYTES = 2 << 30
"Results larger than this (2 GiB), or of a lazy (dask/zarr) layer, go to a zarr store on disk, not RAM."
PREVIEW_LAYER = "preview"
AXES_CHOICES = {
    2: ("YX",),
    3: ("ZYX", "TYX", "CYX", "YXC"),
    4: ("TZYX", "ZCYX", "CZYX", "ZYXC", "TYXC"),
    5: ("TCZYX", "TZCYX", "CTZYX", "TZYXC"),
}


def layer_data(layer):
    """The array behind an Image layer (level 0 of a multiscale one); other layers raise."""
    kind = layer.__class__.__name__  # not type(): napari hands plugins proxies of its layers
    if kind != "Image":
        what = "nothing" if layer is None else f"the {kind} layer {getattr(layer, 'name', '')!r}"
        raise InvalidInputError(
            f"only Image layers can be restored, got {what}; select an Image layer (labels, points, shapes "
            "and surfaces hold no pixels to denoise)"
        )
    data = layer.data[0] if getattr(layer, "multiscale", False) else layer.data
    if len(data.shape) < 2:
        raise InvalidInputError(f"layer {layer.name!r} has shape {tuple(data.shape)}; need at least Y and X axes")
    return data


def detect_axes(layer) -> str:
    """Axes of a layer's data: from its axis labels when they are T/Z/C/Y/X letters, else from rgb and ndim."""
    ndim = len(layer_data(layer).shape)
    rgb = bool(getattr(layer, "rgb", False))
    labels = [str(a).upper() for a in getattr(layer, "axis_labels", ())]
    letters = "".join(labels) + ("C" if rgb else "")
    if all(len(a) == 1 and a in "TZCYX" for a in labels) and len(letters) == ndim == len(set(letters)):
        return letters
    if rgb:
        return "TZ"[5 - ndim :] + "YXC" if ndim <= 5 else default_axes(layer_data(layer).shape)
    return default_axes(tuple(layer_data(layer).shape), rgb=False)


def axes_choices(layer) -> list[str]:
    """The detected axes first, then the other readings of a layer's ndim (for the override)."""
    detected = detect_axes(layer)
    return [detected] + [a for a in AXES_CHOICES.get(len(detected), ()) if a != detected]


def layer_to_input(layer) -> tuple[object, str, dict]:
    """An Image layer as ``(data, axes, metadata)``; metadata is what the result layer copies."""
    data = layer_data(layer)
    meta = {
        "name": layer.name,
        "scale": tuple(layer.scale),
        "translate": tuple(layer.translate),
        "axis_labels": tuple(getattr(layer, "axis_labels", ())),
        "units": tuple(getattr(layer, "units", ())) or None,
        "contrast_limits": tuple(layer.contrast_limits),
        "colormap": getattr(getattr(layer, "colormap", None), "name", "gray"),
        "rgb": bool(getattr(layer, "rgb", False)),
        "blending": getattr(layer, "blending", "translucent"),
    }
    return data, detect_axes(layer), meta


@dataclass
class TempStore:
    """A zarr array for a result, in a new temporary folder that :meth:`remove` deletes."""

    path: Path
    "The ``.zarr`` store; its folder is ``path.parent``."
    array: Any

    def remove(self) -> None:
        shutil.rmtree(self.path.parent, ignore_errors=True)


def new_store(data, name: str, dtype=None, axes: str | None = None) -> TempStore | None:
    """None to restore into RAM; else an empty zarr array for the result (big or lazy data), one chunk per plane."""
    dtype = np.dtype(dtype or data.dtype)
    shape = tuple(int(s) for s in data.shape)
    if isinstance(data, np.ndarray) and math.prod(shape) * dtype.itemsize <= ZARR_THRESHOLD_BYTES:
        return None
    layout = CanonicalLayout(normalize_axes(axes or default_axes(shape), shape), shape)
    folder = Path(tempfile.mkdtemp(prefix="napari-gama-ir-"))
    path = folder / ("".join(c if c.isalnum() or c in "-_" else "_" for c in name) + ".zarr")
    try:
        return TempStore(path, create_zarr_array(path, layout, dtype))
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


def iter_restore_into(data, store: TempStore | None = None, **options):
    """:func:`iter_restore` writing into ``store`` (None: into RAM); returns the result.

    The store is removed here, in the thread that runs the job, when the job fails or is closed.
    """
    if store is None:
        return (yield from iter_restore(data, **options))
    try:
        return (yield from iter_restore(data, **options, out=store.array))
    except BaseException:
        store.remove()
        raise


def iter_preview(data, index: tuple, plane_axes: str, **options):
    """Restore ``data[index]`` (the plane on screen, ``plane_axes``) with the normalisation of all of ``data``.

    The widget's Preview: ``restore(plane, normalizer=plan_restore(data, ...).normalizer)``, so the plane
    looks as it will in the whole run. ``options`` are :func:`restore`'s for ``data``.
    """
    stack = plan_restore(data, **options)
    options.update(model=stack.model, axes=plane_axes, normalizer=stack.normalizer)
    if stack.context:  # a context model: the plane with its neighbours (reflected at the ends), the centre kept
        from ..model.context import reflect

        pos, k = stack.axes.index(stack.context_axis), stack.context
        near = reflect(np.arange(index[pos] - k, index[pos] + k + 1), data.shape[pos])
        planes = np.stack([np.asarray(data[(*index[:pos], int(j), *index[pos + 1 :])]) for j in near])
        options["axes"] = stack.context_axis + plane_axes
        return (yield from iter_restore(planes, **options))[k]
    plane = np.asarray(data[index])
    return (yield from iter_restore(plane, **options))


def result_to_layer_tuple(result, meta: dict, model_name: str, name: str | None = None, path=None) -> tuple:
    """A restored array (or the path of a zarr result) -> ``(data, kwargs, "image")`` with the input's look.

    ``path`` names the store a zarr array came from (kept in the layer's metadata).
    """
    if isinstance(result, str):
        path, result = result, open_input(result).array
    kwargs = {k: v for k, v in meta.items() if k != "name" and v is not None}
    kwargs["name"] = name or f"{meta['name']} restored ({model_name})"
    path = None if path is None else str(path)
    kwargs["metadata"] = {"napari_gama_ir": {"source_layer": meta["name"], "model": model_name, "path": path}}
    return result, kwargs, "image"


REMOVED_NOISE_LIMITS = (-0.25, 0.25)  # contrast of the removed-noise layer, in units of the data's robust range


def removed_noise_array(data, restored, normalizer, axes: str):
    """What restoring took away, ``(noisy - restored) / (high - low)`` per channel, as a lazy float32 dask
    array of the data's shape: in units of the data's robust range (the normaliser's percentiles), so noise
    looks alike in any data, and structure that was removed along with it stands out."""
    import dask.array as da

    if isinstance(restored, str):  # a zarr store's path
        restored = open_input(restored).array
    shape = tuple(int(s) for s in data.shape)
    scale = 1.0 / (np.asarray(normalizer.high, np.float64) - np.asarray(normalizer.low, np.float64))
    if "C" in axes:
        scale = scale.reshape([-1 if a == "C" else 1 for a in axes])
    else:
        scale = scale.reshape(())
    noisy = da.asarray(data).astype(np.float32)
    return ((noisy - da.asarray(restored).astype(np.float32)) * scale.astype(np.float32)).reshape(shape)


def removed_noise_layer_tuple(data, restored, normalizer, axes: str, meta: dict, model_name: str) -> tuple:
    """:func:`removed_noise_array` as a gray layer with the input's scale and translate."""
    kwargs = {k: v for k, v in meta.items() if k in ("scale", "translate", "axis_labels", "units") and v is not None}
    kwargs.update(name=f"{meta['name']} removed noise ({model_name})", colormap="gray",
                  contrast_limits=REMOVED_NOISE_LIMITS, rgb=False)  # fmt: skip
    if meta.get("rgb"):  # the channel axis is shown as a slider: give it no scale of its own
        kwargs.update(scale=(*meta["scale"], 1.0), translate=(*meta["translate"], 0.0))
    kwargs["metadata"] = {"napari_gama_ir": {"source_layer": meta["name"], "model": model_name, "removed_noise": True}}
    return removed_noise_array(data, restored, normalizer, axes), kwargs, "image"


def iter_and_estimate(job, estimate_on: tuple | None = None, **kwargs):
    """Run the generator function ``job(**kwargs)``; then, when ``estimate_on`` is ``(data, index, axes)``,
    estimate the quality of restoring ``data[index]`` (``index`` None: all of it) without a clean image, in
    this (the worker's) thread. Returns ``(result, QualityEstimate or None)``."""
    result = yield from job(**kwargs)
    if estimate_on is None:
        return result, None
    from ..estimate.quality import estimate_quality

    data, index, axes = estimate_on
    data = data if index is None else np.asarray(data[index])
    context = {k: kwargs[k] for k in ("context", "context_axis") if k in kwargs}
    return result, estimate_quality(data, kwargs.get("model"), axes=axes, device=kwargs.get("device", "auto"), **context)


def plane_on_screen(layer, point, axes: str) -> tuple[tuple, str, dict]:
    """Where the plane at the viewer's ``point`` (world coordinates) is, cropped to the visible region.

    Returns the index of that plane in the layer's data (read it in the worker), its axes ("YX", or
    "YXC"/"CYX" with channels) and the metadata that puts a 2-D preview layer on top of it.
    """
    data, _, meta = layer_to_input(layer)
    at = layer.world_to_data(point)
    corners = np.asarray(getattr(layer, "corner_pixels", np.zeros((2, len(at)))), dtype=int)
    index, starts = [], {}
    for i, a in enumerate(axes):
        if a in "YX":
            lo, hi = int(corners[0][i]), int(corners[1][i]) + 1
            lo, hi = (lo, min(hi, data.shape[i])) if hi - lo >= 16 else (0, data.shape[i])
            index.append(slice(lo, hi))
            starts[a] = lo
        elif a == "C":
            index.append(slice(None))
        else:
            index.append(min(max(int(round(at[i])), 0), data.shape[i] - 1))
    kept = "".join(a for a in axes if a in "CYX")
    dims = [i for i, a in enumerate(axes) if a in "YX" or (a == "C" and not meta["rgb"])]  # the layer's own dims
    scale = tuple(meta["scale"][i] for i in dims)
    translate = tuple(meta["translate"][i] + starts.get(axes[i], 0) * meta["scale"][i] for i in dims)
    preview = {**meta, "scale": scale, "translate": translate, "name": PREVIEW_LAYER}
    preview.update(axis_labels=None, units=None)
    return tuple(index), kept, preview


def restore_layer(layer, model=None, *, removed_noise: bool = False, **options):
    """Restore a napari Image layer; return a layer-data tuple with the input's scale, translate and look.

    Parameters
    ----------
    layer : napari.layers.Image
        Any object with an Image layer's ``data``, ``name``, ``scale``, ``translate``,
        ``contrast_limits`` (and optionally ``rgb``, ``axis_labels``, ``units``, ``multiscale``).
    model : str, PathLike, GAMAIR or None
        As in :func:`napari_gama_ir.restore`; None picks a fast shipped model for the data (its noise and background).
    removed_noise : bool
        Also return the noise the restoration removed, ``(noisy - restored) / (high - low)``, as a second
        layer (lazy, in units of the data's robust range): structure in it was removed along with the noise.
    **options
        Any other keyword of :func:`napari_gama_ir.restore` (``axes`` defaults to the layer's).
        Unless ``out`` is given, large or lazy layers are written to a zarr store in a new temporary
        folder (its path is in the layer's metadata), never returned as a lazy array.

    Returns
    -------
    tuple or list of tuple
        ``(data, kwargs, "image")``, named ``"<input> restored (<model>)"``; with ``removed_noise`` a list of
        that and the removed-noise layer's tuple.

    Raises
    ------
    InvalidInputError
        Not an Image layer, or anything :func:`napari_gama_ir.restore` rejects.

    Examples
    --------
    In napari's console:

    >>> from napari.layers import Layer  # doctest: +SKIP
    >>> from napari_gama_ir import restore_layer  # doctest: +SKIP
    >>> viewer.add_layer(Layer.create(*restore_layer(viewer.layers["noisy"])))  # doctest: +SKIP
    """
    data, axes, meta = layer_to_input(layer)
    options.setdefault("axes", axes)
    store = None
    if options.get("out") is None:
        options.pop("out", None)
        store = new_store(data, meta["name"], options.get("dtype"), options["axes"])
    steps = iter_restore_into(data, store, model=model, **options)
    plan = None
    while True:
        try:
            step = next(steps)
        except StopIteration as stop:
            restored = result_to_layer_tuple(stop.value, meta, plan.model_name, path=store.path if store else None)
            if not removed_noise:
                return restored
            noise = removed_noise_layer_tuple(data, restored[0], plan.normalizer, plan.axes, meta, plan.model_name)
            return [restored, noise]
        plan = plan or step.plan
