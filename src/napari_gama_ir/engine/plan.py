"""RestorePlan: every "auto" option of ``restore`` resolved once, validated, and printable."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import InvalidDtypeError, InvalidInputError
from ..io.axes import CanonicalLayout, default_axes, normalize_axes
from ..io.files import OpenedInput, is_zarr_array, open_input
from ..io.normalize import Normalizer
from .runtime import free_gpu_bytes, pick_device, pick_precision

CPU_MAX_TILE = 512  # measured: a 1024 px plane as 9 tiles of 384 px ran about 2x faster than whole (caches)
GPU_MAX_TILE = 2048
AUTO_OVERLAP = 32
CPU_PIXELS_PER_BATCH = 1 << 18  # measured: on 2 cores, batching 512 px planes 4 at a time was 0.46 MP/s, one at a time 0.73
CHUNK_BYTES = 64 << 20  # float32 bytes of input planes per chunk (a 1 GB uint16 run peaked at 2.2 GB RSS with 256 MiB)
GPU_CHUNK_FACTOR = 4  # chunks 4x larger on a GPU: 1.7-1.8x the MP/s in bf16, 1.04-1.09x in fp16 on an H200 (benchmarks.md)
GPU_CHUNK_SHARE, GPU_CHUNK_COPIES = 0.25, 6  # a chunk on the GPU may take a quarter of its free memory
# peak activation bytes per pixel per unit of width in fp16: measured 29.8 ("w16") and 33.6 ("S") on an H200
# with channels-last activations (benchmarks.md, "GPU"); 48 leaves room for the NCHW LayerNorm's temporaries
GPU_BYTES_PER_PIXEL_PER_WIDTH = 48
OUTPUT_SUFFIXES = (".tif", ".tiff", ".zarr")


@dataclass(frozen=True)
class RestorePlan:
    """What ``restore`` will do, with nothing left on "auto"."""

    model_name: str
    axes: str
    shape: tuple[int, ...]
    in_dtype: str
    out_dtype: str
    channel_mode: str  # "joint": channels go through the model together; "separate": one by one
    tile: tuple[int, int]
    overlap: tuple[int, int]
    align: int  # the network's 2 ** levels; the engine aligns tiles to it (tiling.windows.aligned_tiling)
    batch_size: int
    device: str
    precision: str
    chunk_planes: int
    mean_mode: str
    local_size: int
    output: str  # "numpy", "dask", "tiff" or "zarr"
    out_path: str | None  # the file or store to create; None for numpy, dask, or the caller's zarr array
    distributed: bool
    device_request: str  # what the caller asked for ("auto" lets each dask worker pick its own)
    normalizer: Normalizer = field(repr=False)
    layout: CanonicalLayout = field(repr=False)
    source: OpenedInput = field(repr=False)
    model: Any = field(repr=False)
    out_array: Any = field(default=None, repr=False)  # the caller's zarr array (``out=``), written in place
    chunk_path: str = "auto"  # "host" when not even one plane fits on the GPU beside the network (engine.resident)
    self_ensemble: bool = False  # each tile as the mean of its 8 flips and rotations (engine.ensemble)

    @property
    def samples_per_plane(self) -> int:
        return self.layout.channels if self.channel_mode == "separate" else 1

    @property
    def tiles_per_image(self) -> int:
        from ..tiling.windows import aligned_tiling, tile_grid

        return len(tile_grid(*aligned_tiling(self.layout.yx, self.tile, self.overlap, self.align)))

    def describe(self) -> str:
        """One line for the CLI and the widget."""
        y, x = self.layout.yx
        tiled = "untiled" if self.tile == (y, x) else f"{self.tile[0]}x{self.tile[1]} px tiles, overlap {self.overlap[0]}"
        where = "dask cluster" if self.distributed else self.device
        return (
            f"{self.model_name} on {self.axes} {self.shape} {self.in_dtype}: {tiled}, batch {self.batch_size}, "
            f"{where} {self.precision}, {self.mean_mode} means{', self-ensemble x8' if self.self_ensemble else ''}, "
            f"-> {self.out_dtype} {self.output}"
        )


def _check_dtype(dtype: np.dtype) -> None:
    if dtype.kind not in "uif":
        raise InvalidDtypeError(
            f"cannot restore data of dtype {dtype}; accepted: unsigned/signed integers (uint8, uint16, ...) and floats"
        )


def _resolve_model(model, channels: int, layout_axes: str, device: torch.device):
    from ..zoo.store import load_model

    if model is None:
        from ..zoo.defaults import default_model_name

        model = default_model_name(channels, rgb_last=layout_axes.endswith("C"))
    if isinstance(model, (str, os.PathLike)):
        return load_model(model, device="cpu")
    if isinstance(model, torch.nn.Module) and hasattr(model, "card"):
        return model
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


def _positive_int_or_auto(name: str, value, accepted: str):
    if value == "auto" or value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0 or (value == 0 and name != "overlap"):
        raise InvalidInputError(f"{name} must be {accepted} or 'auto', got {value!r}")
    return int(value)


def plan_restore(
    data,
    model=None,
    *,
    axes: str | None = None,
    tile="auto",
    overlap="auto",
    batch_size="auto",
    device="auto",
    precision="auto",
    dtype=None,
    out=None,
    mean_mode: str | None = None,
    normalizer: Normalizer | None = None,
    self_ensemble: bool = False,
) -> RestorePlan:
    """Validate the inputs of :func:`restore` and resolve every "auto" into a :class:`RestorePlan`.

    Takes the arguments of :func:`restore` (except ``progress`` and ``cancel``); with ``normalizer``
    the data's intensities are not sampled.
    """
    src = open_input(data)
    arr = src.array
    in_dtype = np.dtype(arr.dtype)
    _check_dtype(in_dtype)
    if arr.ndim < 2 or 0 in arr.shape:
        raise InvalidInputError(f"data of shape {tuple(arr.shape)} is empty or has fewer than 2 axes; need at least Y and X")
    shape = tuple(int(s) for s in arr.shape)
    if axes is None:
        axes = src.axes if src.axes else default_axes(shape)
    axes = normalize_axes(axes, shape)
    layout = CanonicalLayout(axes, shape)
    if not src.lazy and in_dtype.kind == "f" and not np.isfinite(arr).all():
        raise InvalidInputError("data contains NaN or inf; replace them first (e.g. numpy.nan_to_num) and try again")

    if not isinstance(self_ensemble, (bool, np.bool_)):
        raise InvalidInputError(f"self_ensemble must be True or False, got {self_ensemble!r}")
    output, out_path = _resolve_output(out, src.lazy)  # cheap checks before loading a model
    if is_zarr_array(out) and tuple(out.shape) != shape:
        raise InvalidInputError(f"out is a zarr array of shape {tuple(out.shape)}; it must have the data's {shape}")
    dev = pick_device(device)
    prec = pick_precision(precision, dev)
    net = _resolve_model(model, layout.channels, axes, dev)
    card = net.card
    if card.in_channels == layout.channels:
        channel_mode = "joint"
    elif card.in_channels == 1:
        channel_mode = "separate"
    else:
        raise InvalidInputError(
            f"model {card.name!r} takes {card.in_channels} channels but the data has {layout.channels} "
            f"(axes {axes!r}, shape {shape}); use a model with 1 or {layout.channels} input channels, or fix axes="
        )

    try:
        out_dtype = np.dtype(dtype) if dtype is not None else in_dtype
    except TypeError:
        raise InvalidDtypeError(f"dtype {dtype!r} is not a numpy dtype; accepted: e.g. 'uint8', 'uint16', 'float32'") from None
    _check_dtype(out_dtype)
    if is_zarr_array(out) and np.dtype(out.dtype) != out_dtype:
        raise InvalidDtypeError(f"out is a zarr array of dtype {out.dtype}; it must have the output dtype {out_dtype}")
    levels = len(card.model_args.get("enc_blocks", (2, 2, 2, 2)))
    y, x = layout.yx
    ov = _positive_int_or_auto("overlap", overlap, "a non-negative int (pixels)")
    ov = AUTO_OVERLAP if ov is None else ov
    t = _positive_int_or_auto("tile", tile, "a positive int (pixels)")
    width = int(card.model_args.get("width", 16))
    free = free_gpu_bytes(dev)
    max_tile = GPU_MAX_TILE if dev.type != "cpu" else CPU_MAX_TILE
    if free is not None:  # the largest tile whose activations fit in half the free GPU memory
        fitting = int(math.sqrt(0.5 * free / (width * GPU_BYTES_PER_PIXEL_PER_WIDTH)))
        max_tile = max(128, min(max_tile, fitting // 2**levels * 2**levels))
    if t is None:
        tile_yx = (_auto_tile(y, max_tile, ov, 2**levels), _auto_tile(x, max_tile, ov, 2**levels))
    else:
        tile_yx = (min(t, y), min(t, x))
    tiled = [t for t, size in zip(tile_yx, (y, x)) if t < size]  # an axis the tile covers needs no overlap
    if tiled and ov >= min(tiled):
        raise InvalidInputError(f"overlap {ov} must be smaller than the tile {min(tiled)}; lower overlap= or raise tile=")
    overlap_yx = tuple(ov if tile_yx[i] < (y, x)[i] else 0 for i in range(2))

    b = _positive_int_or_auto("batch_size", batch_size, "a positive int")
    if b is None:
        area = tile_yx[0] * tile_yx[1]
        if free is not None:
            b = max(1, int(0.5 * free / (area * width * GPU_BYTES_PER_PIXEL_PER_WIDTH)))
        else:
            b = max(1, CPU_PIXELS_PER_BATCH // area)
        b = min(b, 64)
    plane_bytes = 4 * layout.channels * y * x
    chunk_bytes = CHUNK_BYTES * (GPU_CHUNK_FACTOR if dev.type != "cpu" else 1)
    chunk_planes = max(1, min(layout.planes, chunk_bytes // plane_bytes))
    chunk_path = "auto"
    if free is not None:  # on the GPU a chunk holds about 6 float32 copies (input, padded, blended, output...)
        fitting = int(GPU_CHUNK_SHARE * free) // (GPU_CHUNK_COPIES * plane_bytes)
        chunk_planes = max(1, min(chunk_planes, fitting))
        chunk_path = "auto" if fitting >= 1 else "host"  # a huge plane: tiles go to the GPU, the plane stays here

    mode = mean_mode or card.inference.get("mean_mode", "global")
    if mode not in ("global", "local"):
        raise InvalidInputError(f"mean_mode must be 'global' or 'local', got {mode!r}")
    local_size = int(card.inference.get("local_size", card.model_args.get("local_size", 192)))
    if normalizer is None:
        norm_cfg = card.normalization
        low, high = norm_cfg.get("low", 0.5), norm_cfg.get("high", 99.9)
        normalizer = Normalizer.from_stack(layout.to_canonical(arr), low, high)
    elif not isinstance(normalizer, Normalizer) or normalizer.low.shape != (layout.channels,):
        what = f"{len(normalizer.low)} channels" if isinstance(normalizer, Normalizer) else type(normalizer).__name__
        raise InvalidInputError(
            f"normalizer must be a Normalizer for the data's {layout.channels} channel(s), got {what}; "
            "take it from plan_restore(stack, ...).normalizer"
        )
    if not (np.isfinite(normalizer.low).all() and np.isfinite(normalizer.high).all()):
        raise InvalidInputError("data contains NaN or inf; replace them first (e.g. numpy.nan_to_num) and try again")
    return RestorePlan(
        model_name=card.name, axes=axes, shape=shape, in_dtype=str(in_dtype), out_dtype=str(out_dtype),
        channel_mode=channel_mode, tile=tile_yx, overlap=overlap_yx, align=2**levels, batch_size=b, device=str(dev),
        precision=prec, chunk_planes=chunk_planes, mean_mode=mode, local_size=local_size, output=output,
        out_path=out_path, distributed=_active_client() is not None and output != "dask", device_request=str(device),
        normalizer=normalizer, layout=layout, source=src, model=net, out_array=out if is_zarr_array(out) else None,
        chunk_path=chunk_path, self_ensemble=bool(self_ensemble),
    )  # fmt: skip


def _resolve_output(out, lazy: bool) -> tuple[str, str | None]:
    if out is None:
        return ("dask" if lazy else "numpy"), None
    if is_zarr_array(out):
        return "zarr", None
    if not isinstance(out, (str, os.PathLike)):
        raise InvalidInputError(
            f"out must be None or a path (.tif, .tiff or .zarr) or a zarr array, got {type(out).__name__}"
        )
    path = Path(out).expanduser()
    name = path.name.lower()
    if not name.endswith(OUTPUT_SUFFIXES):
        raise InvalidInputError(f"out={str(out)!r} has an unsupported suffix; accepted: .tif, .tiff, .zarr")
    if not path.parent.exists():
        raise InvalidInputError(f"out={str(out)!r}: folder {path.parent} does not exist")
    kind = "zarr" if name.endswith(".zarr") else "tiff"
    if path.exists() and path.is_dir() != (kind == "zarr"):
        what = "a folder" if path.is_dir() else "a file"
        raise InvalidInputError(f"out={str(out)!r} exists as {what}; remove it or choose another name")
    return ("zarr" if name.endswith(".zarr") else "tiff"), str(path)


def _active_client():
    """The active dask.distributed client, or None (also when distributed is not installed)."""
    try:
        from distributed import get_client
    except ImportError:
        return None
    try:
        return get_client()
    except ValueError:
        return None
