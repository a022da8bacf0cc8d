"""RestorePlan: every "auto" option of ``restore`` resolved once, validated, and printable."""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..errors import InvalidDtypeError, InvalidInputError
from ..io.axes import CanonicalLayout, default_axes, normalize_axes
from ..io.files import OpenedInput, is_zarr_array, open_input, output_target
from ..io.sinks import check_png_output
from ..model.context import check_data as check_context_data, default_context_axis, neighbour_table, plane_channels, with_context
from ..io.normalize import DEFAULT_PERCENTILES, Normalizer
from ..tiling.windows import aligned_tiling
from .options import AUTO, AUTO_OVERLAP, CPU_MAX_TILE, GPU_MAX_TILE, RestoreOptions, check_dtype
from .runtime import free_gpu_bytes, pick_device, pick_precision

CPU_PIXELS_PER_BATCH = 1 << 18  # measured: on 2 cores, batching 512 px planes 4 at a time was 0.46 MP/s, one at a time 0.73
CHUNK_BYTES = 64 << 20  # float32 bytes of input planes per chunk (a 1 GB uint16 run peaked at 2.2 GB RSS with 256 MiB)
GPU_CHUNK_FACTOR = 4  # chunks 4x larger on a GPU: 1.7-1.8x the MP/s in bf16, 1.04-1.09x in fp16 on an H200 (benchmarks.md)
GPU_CHUNK_SHARE, GPU_CHUNK_COPIES = 0.25, 6  # a chunk on the GPU may take a quarter of its free memory
# peak activation bytes per pixel per unit of width in fp16: measured 29.8 ("w16") and 33.6 ("S") on an H200
# with channels-last activations (benchmarks.md, "GPU"); 48 leaves room for the NCHW LayerNorm's temporaries
GPU_BYTES_PER_PIXEL_PER_WIDTH = 48


@dataclass(frozen=True)
class RestorePlan:
    """What ``restore`` will do, with nothing left on "auto"."""

    model_name: str
    axes: str
    shape: tuple[int, ...]
    in_dtype: str
    out_dtype: str
    channel_mode: str  # "joint": channels go through the model together; "separate": one by one
    tile: tuple[int, int]  # as it runs: aligned to the network's grid (tiling.windows.aligned_tiling)
    overlap: tuple[int, int]
    padded: tuple[int, int]  # each plane padded (reflect) to a multiple of ``align``; tiles cover this
    align: int  # the network's 2 ** levels
    batch_size: int
    device: str  # resolved here; on a dask cluster with device "auto" each worker picks its own
    precision: str
    chunk_planes: int
    mean_mode: str
    local_size: int
    output: str  # "numpy", "dask", "tiff", "zarr" or "png"
    out_path: str | None  # the file or store to create; None for numpy, dask, or the caller's zarr array
    distributed: bool
    options: RestoreOptions = field(repr=False)  # what the caller asked for
    normalizer: Normalizer = field(repr=False)
    layout: CanonicalLayout = field(repr=False)
    source: OpenedInput = field(repr=False)
    model: Any = field(repr=False)
    owns_model: bool = field(default=False, repr=False)  # loaded by this plan: free to switch its mode and device
    out_array: Any = field(default=None, repr=False)  # the caller's zarr array (``out=``), written in place
    chunk_path: str = "auto"  # "host" when not even one plane fits on the GPU beside the network (engine.resident)
    self_ensemble: bool = False  # each tile as the mean of its 8 flips and rotations (engine.ensemble)
    model_reason: str = ""  # why the model was chosen for the data (zoo.choice); "" when the caller named it
    context: int = 0  # a context model: each plane restored from this many neighbouring planes on each side
    context_axis: str = ""  # ... along this axis ("Z" or "T"; model.context)
    neighbours: np.ndarray | None = field(default=None, repr=False)
    """For a context model, the (planes, 2k + 1) indices of each canonical plane's neighbours along
    ``context_axis`` (reflected at the ends; :func:`~napari_gama_ir.model.context.neighbour_table`), else None."""

    @property
    def worker_picks_device(self) -> bool:
        """On a dask cluster with device "auto", each worker resolves device (and an "auto" precision) itself."""
        return self.distributed and self.options.device == AUTO

    @property
    def samples_per_plane(self) -> int:
        return self.layout.channels if self.channel_mode == "separate" else 1

    @property
    def tiles_per_image(self) -> int:
        from ..tiling.windows import tile_grid

        return len(tile_grid(self.padded, self.tile, self.overlap))

    def describe(self) -> str:
        """One line in plain words for the CLI and the widget, naming the tile, overlap, batch, device and
        precision that run, e.g. "fluorescence restores 3 planes of 48 x 64 px (ZYX, uint16): each plane
        whole, up to 3 planes per pass, on the CPU in bfloat16; means over the whole plane; result: uint16 array"."""
        y, x = self.layout.yx
        planes = self.layout.planes * self.samples_per_plane
        what = f"{planes} plane{'s' if planes > 1 else ''} of {y} x {x} px ({self.axes}, {self.in_dtype})"
        if self.tile == self.padded:
            tiling, unit = "each plane whole", "plane"
        else:
            overlap = f"{self.overlap[0]}" if self.overlap[0] == self.overlap[1] else f"{self.overlap[0]} x {self.overlap[1]}"
            tiling, unit = f"{self.tiles_per_image} tiles of {self.tile[0]} x {self.tile[1]} px per plane, overlapping by {overlap} px", "tile"
        on_device = f"on {_DEVICE_WORDS.get(self.device.split(':')[0], self.device)} in {_PRECISION_WORDS[self.precision]}"
        if not self.distributed:
            where = on_device
        elif self.worker_picks_device:
            precision = "the precision it picks" if self.options.precision == AUTO else _PRECISION_WORDS[self.precision]
            where = f"on a dask cluster, each worker on the device it picks, in {precision}"
        else:
            where = f"on a dask cluster, {on_device}"
        means = "means over the whole plane" if self.mean_mode == "global" else f"means over {self.local_size} px boxes"
        ensemble = "; each tile 8 times, flipped and turned (self-ensemble)" if self.self_ensemble else ""
        if self.context:
            n = self.context
            ensemble += (f"; using {n} neighbouring plane{'s' if n > 1 else ''} on each side along {self.context_axis} "
                         "(reflected at the ends)")  # fmt: skip
        result = {"numpy": "array", "dask": "lazy dask array", "zarr": "zarr", "tiff": "TIFF", "png": "PNG"}[self.output]
        return (
            f"{self.model_name} restores {what}: {tiling}, {_batch_words(self.batch_size, unit)} per pass, {where}; "
            f"{means}{ensemble}; result: {self.out_dtype} {result}"
            + (f"; model chosen for the data: {self.model_reason}" if self.model_reason else "")
        )


def _batch_words(batch: int, unit: str) -> str:
    return f"1 {unit}" if batch == 1 else f"up to {batch} {unit}s"


_DEVICE_WORDS = {"cpu": "the CPU", "cuda": "the GPU", "mps": "the Apple GPU"}
_PRECISION_WORDS = {"fp32": "32-bit floats", "bf16": "bfloat16", "fp16": "16-bit floats"}


def _resolve_model(model, channels: int, layout_axes: str, canonical=None) -> tuple[Any, bool, str]:
    """The network, whether this plan loaded it itself (and so may switch its mode or device), and why it
    was chosen ("" unless ``model`` is None: then zoo.choice picks it from a sample of ``canonical``, the
    (planes, C, Y, X) data)."""
    from ..zoo.store import load_model

    reason = ""
    if model is None:
        from ..zoo.choice import choose_model, sample_planes

        rgb_last = layout_axes.endswith("C")
        sample = sample_planes(canonical) if canonical is not None and not (channels == 3 and rgb_last) else None
        model, reason = choose_model(sample, channels, rgb_last=rgb_last)
    if isinstance(model, (str, os.PathLike)):
        return load_model(model, device="cpu"), True, reason
    if isinstance(model, torch.nn.Module) and hasattr(model, "card"):
        return model, False, reason
    raise InvalidInputError(
        f"model must be a name, a path or a network from load_model()/build_model(), got {type(model).__name__}"
    )


def _auto_tile(size: int, max_tile: int, overlap: int, multiple: int) -> int:
    """Largest-needed tile <= max_tile that splits ``size`` into equal overlapping tiles (little waste)."""
    if size <= max_tile:
        return size
    n = math.ceil((size - overlap) / (max_tile - overlap))
    tile = math.ceil((size - overlap) / n) + overlap
    return min(size, multiple * math.ceil(tile / multiple))


def plan_restore(data, model=None, options: RestoreOptions | None = None, **overrides) -> RestorePlan:
    """Validate the inputs of :func:`restore` and resolve every "auto" into a :class:`RestorePlan`.

    Parameters
    ----------
    data, model
        As in :func:`restore`.
    options : RestoreOptions, optional
        The options; keywords (``tile=256``) override its fields. With ``normalizer`` the data's
        intensities are not sampled.
    """
    opts = RestoreOptions.create(options, **overrides)
    src = open_input(data)
    arr = src.array
    in_dtype = np.dtype(check_dtype(arr.dtype, "data of dtype"))
    if arr.ndim < 2 or 0 in arr.shape:
        raise InvalidInputError(f"data of shape {tuple(arr.shape)} is empty or has fewer than 2 axes; need at least Y and X")
    shape = tuple(int(s) for s in arr.shape)
    axes = normalize_axes(opts.axes or src.axes or default_axes(shape), shape)
    layout = CanonicalLayout(axes, shape)
    if not src.lazy and in_dtype.kind == "f" and not np.isfinite(arr).all():
        raise InvalidInputError("data contains NaN or inf; replace them first (e.g. numpy.nan_to_num) and try again")

    out_path = output_target(opts.out, opts.overwrite) if isinstance(opts.out, (str, os.PathLike)) else None
    output = "zarr" if is_zarr_array(opts.out) else ("dask" if src.lazy else "numpy") if opts.out is None else (
        {".zarr": "zarr", ".png": "png"}.get(Path(out_path).suffix.lower(), "tiff"))  # fmt: skip
    out_dtype = opts.dtype or str(in_dtype)
    if output == "png":
        check_png_output(layout, out_dtype)
    if is_zarr_array(opts.out):
        if tuple(opts.out.shape) != shape:
            raise InvalidInputError(f"out is a zarr array of shape {tuple(opts.out.shape)}; it must have the data's {shape}")
        if np.dtype(opts.out.dtype) != np.dtype(out_dtype):
            raise InvalidDtypeError(f"out is a zarr array of dtype {opts.out.dtype}; it must have the output dtype {out_dtype}")
    dev = pick_device(opts.device)
    prec = pick_precision(opts.precision, dev)
    net, owns_model, model_reason = _resolve_model(model, layout.channels, axes, layout.to_canonical(arr) if model is None else None)
    if opts.context:  # a 2-D model on the planes' running mean (binning), as an untrained context model
        wide = with_context(net, opts.context, opts.context_axis or default_context_axis(axes))
        net, owns_model = wide, owns_model or wide is not net
    card = net.card
    context, context_axis = check_context_data(card, axes, shape)
    neighbours = neighbour_table(axes, shape, context, context_axis, card.name) if context else None
    per_plane = plane_channels(card)
    if per_plane == layout.channels:
        channel_mode = "joint"
    elif per_plane == 1:
        channel_mode = "separate"
    else:
        raise InvalidInputError(
            f"model {card.name!r} takes {per_plane} channels but the data has {layout.channels} "
            f"(axes {axes!r}, shape {shape}); use a model with 1 or {layout.channels} input channels, or fix axes="
        )

    align = 2 ** len(card.model_args.get("enc_blocks", (2, 2, 2, 2)))
    width = int(card.model_args.get("width", 16))
    free = free_gpu_bytes(dev)
    y, x = layout.yx
    tile, overlap, padded = _resolve_tiling(opts, (y, x), align, width, free, dev)
    batch = _resolve_batch(opts, tile, width, free)
    plane_bytes = 4 * layout.channels * y * x
    chunk_bytes = CHUNK_BYTES * (GPU_CHUNK_FACTOR if dev.type != "cpu" else 1)
    chunk_planes = max(1, min(layout.planes, chunk_bytes // (plane_bytes * (2 * context + 1))))  # gathered planes
    chunk_path = "auto"
    if free is not None:  # on the GPU a chunk holds about 6 float32 copies (input, padded, blended, output...)
        fitting = int(GPU_CHUNK_SHARE * free) // (GPU_CHUNK_COPIES * plane_bytes * (2 * context + 1))
        chunk_planes = max(1, min(chunk_planes, fitting))
        chunk_path = "auto" if fitting >= 1 else "host"  # a huge plane: tiles go to the GPU, the plane stays here

    mode = opts.mean_mode or card.inference.get("mean_mode", "global")
    local_size = int(card.inference.get("local_size", card.model_args.get("local_size", 192)))
    normalizer = opts.normalizer
    if normalizer is None:
        low, high = (card.normalization.get(k, d) for k, d in zip(("low", "high"), DEFAULT_PERCENTILES))
        normalizer = Normalizer.from_stack(layout.to_canonical(arr), low, high, neighbours=neighbours)  # a context model's: the running mean's
    elif normalizer.low.shape != (layout.channels,):
        raise InvalidInputError(
            f"normalizer is for {len(normalizer.low)} channel(s), the data has {layout.channels}; "
            "take it from plan_restore(stack, ...).normalizer"
        )
    if not (np.isfinite(normalizer.low).all() and np.isfinite(normalizer.high).all()):
        raise InvalidInputError("data contains NaN or inf; replace them first (e.g. numpy.nan_to_num) and try again")
    return RestorePlan(
        model_name=card.name, axes=axes, shape=shape, in_dtype=str(in_dtype), out_dtype=out_dtype,
        channel_mode=channel_mode, tile=tile, overlap=overlap, padded=padded, align=align, batch_size=batch,
        device=str(dev), precision=prec, chunk_planes=chunk_planes, mean_mode=mode, local_size=local_size,
        output=output, out_path=out_path, distributed=_active_client() is not None and output != "dask",
        options=opts, normalizer=normalizer, layout=layout, source=src, model=net, owns_model=owns_model,
        out_array=opts.out if is_zarr_array(opts.out) else None, chunk_path=chunk_path,
        self_ensemble=opts.self_ensemble, model_reason=model_reason, context=context, context_axis=context_axis,
        neighbours=neighbours,
    )  # fmt: skip


def _resolve_tiling(opts: RestoreOptions, yx: tuple[int, int], align: int, width: int, free: int | None, dev):
    """The tile and overlap that run (aligned to the network's grid) and the padded plane they cover."""
    overlap = AUTO_OVERLAP if opts.overlap == AUTO else opts.overlap
    if opts.tile == AUTO:
        max_tile = GPU_MAX_TILE if dev.type != "cpu" else CPU_MAX_TILE
        if free is not None:  # the largest tile whose activations fit in half the free GPU memory
            fitting = int(math.sqrt(0.5 * free / (width * GPU_BYTES_PER_PIXEL_PER_WIDTH)))
            max_tile = max(128, min(max_tile, fitting // align * align))
        tile = tuple(_auto_tile(s, max_tile, overlap, align) for s in yx)
    else:
        tile = tuple(min(opts.tile, s) for s in yx)
    tiled = [t for t, s in zip(tile, yx) if t < s]  # an axis the tile covers needs no overlap
    if tiled and overlap >= min(tiled):
        raise InvalidInputError(f"overlap {overlap} must be smaller than the tile {min(tiled)}; lower overlap= or raise tile=")
    padded, tile, overlap = aligned_tiling(yx, tile, tuple(overlap if t < s else 0 for t, s in zip(tile, yx)), align)
    return tile, overlap, padded


def _resolve_batch(opts: RestoreOptions, tile: tuple[int, int], width: int, free: int | None) -> int:
    if opts.batch_size != AUTO:
        return opts.batch_size
    area = tile[0] * tile[1]
    if free is not None:
        return min(64, max(1, int(0.5 * free / (area * width * GPU_BYTES_PER_PIXEL_PER_WIDTH))))
    return min(64, max(1, CPU_PIXELS_PER_BATCH // area))


def _active_client():
    """The active dask.distributed client, or None (also when distributed is not installed)."""
    if "distributed" not in sys.modules:  # no client without the package imported; importing it costs ~0.3 s
        return None
    try:
        from distributed import get_client
    except ImportError:
        return None
    try:
        return get_client()
    except ValueError:
        return None
