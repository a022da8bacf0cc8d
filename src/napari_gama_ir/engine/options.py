"""RestoreOptions: every option of ``restore`` defined, documented and validated in one place.

``restore``, ``iter_restore``, ``plan_restore``, the ``gama-ir restore`` command line and the napari
Restore widget all take these fields; :func:`~napari_gama_ir.engine.plan.plan_restore` resolves each
"auto" once, against the data and the machine, into a :class:`~napari_gama_ir.engine.plan.RestorePlan`.
"""

from __future__ import annotations

import dataclasses
import os
import textwrap
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import InvalidDtypeError, InvalidInputError
from ..io.files import is_zarr_array
from ..io.normalize import Normalizer
from ..model.context import MAX_CONTEXT, check_axis, check_planes
from ..model.gama_ir import MEAN_MODES
from .runtime import DEVICES, PRECISIONS, check_device_name

AUTO = "auto"
CPU_MAX_TILE = 512  # measured: a 1024 px plane as 9 tiles of 384 px ran about 2x faster than whole (caches)
GPU_MAX_TILE = 2048
AUTO_OVERLAP = 32
OUTPUT_SUFFIXES = (".tif", ".tiff", ".zarr", ".png")


def _option(default, help: str, cli: str | None = None):
    """A field of :class:`RestoreOptions`; ``cli`` is how the command line reads it ("int_or_auto", "flag",
    "str", "choice"), None when the option has no flag (arrays, objects)."""
    return field(default=default, metadata={"help": help, "cli": cli})


@dataclass(frozen=True)
class RestoreOptions:
    """How to restore: each field is a keyword of ``restore``, a ``gama-ir restore`` flag and a widget field.

    Construct it with keywords (``RestoreOptions(tile=256)``) or pass the keywords straight to ``restore``;
    bad values raise :class:`~napari_gama_ir.InvalidInputError` (or ``InvalidDtypeError``) here, before any
    work, naming the option and what it accepts.
    """

    axes: str | None = _option(
        None, "axes of the data, e.g. ZYX, TZYX, YXC (default: from the file's metadata, else from the shape)", "str"
    )
    tile: int | str = _option(
        AUTO,
        f'tile edge in pixels, or "auto": whole planes up to {CPU_MAX_TILE} px on the CPU ({GPU_MAX_TILE} px on a '
        "GPU, or what half its free memory holds), else equal tiles that just cover the plane; rounded up to the "
        "network's grid (2**levels px), and the plan shows the tile that runs",
        "int_or_auto",
    )
    overlap: int | str = _option(
        AUTO, f'overlap of neighbouring tiles in pixels, or "auto" ({AUTO_OVERLAP} px); rounded up to the grid',
        "int_or_auto",
    )
    batch_size: int | str = _option(
        AUTO, 'tiles per forward pass, or "auto" (from free GPU memory; about 0.25 MP on the CPU)', "int_or_auto"
    )
    device: str = _option(AUTO, f"{', '.join(DEVICES)} or cuda:N; \"auto\" picks CUDA, then MPS, then the CPU", "str")
    precision: str = _option(
        AUTO,
        f"{', '.join(PRECISIONS)}; \"auto\" is bf16 (else fp16) autocast on CUDA, bf16 on a CPU with native "
        "bfloat16, fp32 elsewhere; an explicit choice runs as given everywhere, dask workers included",
        "choice",
    )
    dtype: Any = _option(None, "output dtype, e.g. uint8, uint16, float32 (default: the input's)", "str")
    out: Any = _option(
        None,
        "a .tif/.tiff or .zarr path to stream the result to (written under a temporary name, renamed at the end), "
        "a .png for one 8-bit gray or RGB or 16-bit gray image, or a zarr array of the data's shape and the output "
        "dtype to fill in place",
    )
    overwrite: bool = _option(
        False,
        "replace an existing output file or zarr store; without it an existing output is refused "
        "(a folder that is not a zarr store is never replaced)",
        "flag",
    )
    mean_mode: str | None = _option(None, "GAMA means at inference: global or local (default: the model card's)", "choice")
    normalizer: Normalizer | None = _option(
        None,
        "intensity normalisation to use instead of percentiles sampled from the data, e.g. "
        "plan_restore(stack).normalizer to restore one plane exactly as the whole stack would be",
    )
    self_ensemble: bool = _option(
        False, "each tile as the mean of its 8 flips and 90-degree rotations: 8x the time, +0.04 to +0.20 dB", "flag"
    )
    context: int = _option(
        0,
        f"neighbouring planes on each side (0-{MAX_CONTEXT}): a 2-D model restores each plane from the mean of itself "
        "and these planes along context_axis (binning before the network; 1: 3 planes), reflected at the stack's ends; "
        "for stacks whose planes are closer than the structures, e.g. 1.1-2.0 dB above plane by plane on a finely "
        "sampled Z-stack and a time-lapse; 0: plane by plane, or a context model's own planes",
        "int",
    )
    context_axis: str | None = _option(None, "Z or T, the axis of context (default: Z where the data has Z, else T)", "str")

    def __post_init__(self) -> None:
        for name in ("tile", "overlap", "batch_size"):
            object.__setattr__(self, name, _int_or_auto(name, getattr(self, name), minimum=0 if name == "overlap" else 1))
        if self.axes is not None and not isinstance(self.axes, str):
            raise InvalidInputError(f"axes must be a string of axis letters such as 'ZYX', or None; got {self.axes!r}")
        _one_of("precision", self.precision, PRECISIONS)
        object.__setattr__(self, "device", check_device_name(self.device))  # also takes a torch.device
        if self.mean_mode is not None:
            _one_of("mean_mode", self.mean_mode, MEAN_MODES)
        for name in ("overwrite", "self_ensemble"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise InvalidInputError(f"{name} must be True or False, got {getattr(self, name)!r}")
            object.__setattr__(self, name, bool(getattr(self, name)))
        if self.dtype is not None:
            object.__setattr__(self, "dtype", check_dtype(self.dtype, "dtype"))
        object.__setattr__(self, "context", check_planes(self.context))
        if self.context_axis is not None:
            object.__setattr__(self, "context_axis", check_axis(self.context_axis))
        if self.normalizer is not None:
            _check_normalizer(self.normalizer)
        _check_out(self.out)

    @classmethod
    def create(cls, options: "RestoreOptions | None" = None, **overrides: Any) -> "RestoreOptions":
        """``options`` (or the defaults) with ``overrides`` applied; an unknown keyword is an error."""
        if options is not None and not isinstance(options, cls):
            raise InvalidInputError(f"options must be a RestoreOptions or None, got {type(options).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise InvalidInputError(f"unknown restore option(s) {unknown}; accepted: {', '.join(sorted(known))}")
        return dataclasses.replace(options or cls(), **overrides)

    @classmethod
    def describe_fields(cls) -> str:
        """The options as a numpy-docstring parameter list (for ``restore``'s help)."""
        lines = []
        for f in dataclasses.fields(cls):
            lines.append(f"    {f.name} : default {f.default!r}")
            lines.append(textwrap.fill(f.metadata["help"] + ".", 100, initial_indent=" " * 8, subsequent_indent=" " * 8))
        return "\n".join(lines)


def check_dtype(value, name: str) -> str:
    """``value`` as a numpy dtype name that can be restored (integers and floats), else a typed error."""
    try:
        dtype = np.dtype(value)
    except TypeError:
        raise InvalidDtypeError(f"{name} {value!r} is not a numpy dtype; accepted: e.g. 'uint8', 'uint16', 'float32'") from None
    if dtype.kind not in "uif":
        raise InvalidDtypeError(
            f"cannot restore {name} {dtype}; accepted: unsigned/signed integers (uint8, uint16, ...) and floats"
        )
    return str(dtype)


def _int_or_auto(name: str, value, minimum: int):
    if value is None or (isinstance(value, str) and value == AUTO):
        return AUTO
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < minimum:
        what = "a non-negative int" if minimum == 0 else "a positive int"
        raise InvalidInputError(f"{name} must be {what} (pixels) or 'auto', got {value!r}")
    return int(value)


def _check_normalizer(normalizer) -> None:
    if not isinstance(normalizer, Normalizer):
        raise InvalidInputError(
            f"normalizer must be a Normalizer (e.g. plan_restore(stack).normalizer) or None, got {type(normalizer).__name__}"
        )
    low, high = normalizer.low, normalizer.high
    if not (isinstance(low, np.ndarray) and isinstance(high, np.ndarray)) or low.ndim != 1 or low.shape != high.shape or low.dtype.kind != "f" or high.dtype.kind != "f":
        raise InvalidInputError("normalizer.low and .high must be 1-D float arrays of one value per channel; "
                                "take the normalizer from plan_restore(stack).normalizer")  # fmt: skip
    if not (np.isfinite(low).all() and np.isfinite(high).all() and (high > low).all()):
        raise InvalidInputError(f"normalizer needs finite low < high per channel, got low {low}, high {high}")


def _one_of(name: str, value, accepted: tuple[str, ...]) -> None:
    if not isinstance(value, str) or value not in accepted:
        raise InvalidInputError(f"{name} {value!r} is not known; accepted: {', '.join(accepted)}")


def _check_out(out) -> None:
    if out is None:
        return
    if is_zarr_array(out):
        if getattr(out, "read_only", False):
            raise InvalidInputError("out is a read-only zarr array; open it with mode='r+' or 'a', or pass a path")
        return
    if not isinstance(out, (str, os.PathLike)):
        raise InvalidInputError(f"out must be None, a path (.tif, .tiff, .zarr or .png) or a zarr array, got {type(out).__name__}")
    if not os.fspath(out).lower().endswith(OUTPUT_SUFFIXES):
        raise InvalidInputError(f"out={os.fspath(out)!r} has an unsupported suffix; accepted: {', '.join(OUTPUT_SUFFIXES)}")
