"""Where restored planes go: a numpy array, a zarr store, or a TIFF, written in plane order.

Planes arrive in the canonical order of :class:`~napari_gama_ir.io.axes.CanonicalLayout` as
(k, C, Y, X) blocks. File sinks write under a temporary name and rename in ``finish()``; ``abort()``
removes what was written. An array the caller passed in (``restore(..., out=zarr_array)``) is the
caller's: it is written in place, and what was written stays there.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InvalidInputError
from .axes import CanonicalLayout
from .files import TiffPlaneWriter, commit, discard, temporary_sibling


class _PlaneIndexer:
    """Maps canonical plane numbers to index tuples into an array with the layout's own axes."""

    def __init__(self, layout: CanonicalLayout) -> None:
        self.layout = layout
        self.stack_shape = tuple(layout.shape[layout.axes.index(a)] for a in layout.stack_axes)
        rest = [a for a in layout.axes if a in "CYX"]
        canonical_rest = [a for a in "CYX" if a in layout.axes]
        self.rest_order = tuple(canonical_rest.index(a) for a in rest)

    def index(self, plane: int) -> tuple:
        coords = dict(zip(self.layout.stack_axes, np.unravel_index(plane, self.stack_shape))) if self.stack_shape else {}
        return tuple(int(coords[a]) if a in coords else slice(None) for a in self.layout.axes)

    def to_layout(self, plane_cyx: np.ndarray) -> np.ndarray:
        """(C, Y, X) -> the layout's order of its C, Y, X axes (C dropped when the data has none)."""
        arr = plane_cyx if "C" in self.layout.axes else plane_cyx[0]
        return arr.transpose(self.rest_order)


def create_zarr_array(path, layout: CanonicalLayout, dtype, metadata: dict | None = None):
    """A new zarr array at ``path`` of the layout's shape, one chunk per plane, its axes in ``_ARRAY_DIMENSIONS``
    and the input's pixel size (``spacing``, ``unit``, ``finterval``) in its attributes."""
    import zarr

    from .files import PHYSICAL_KEYS

    chunks = tuple(1 if a in layout.stack_axes else s for a, s in zip(layout.axes, layout.shape))
    array = zarr.open_array(str(path), mode="w", shape=layout.shape, chunks=chunks, dtype=dtype)
    array.attrs.update({"_ARRAY_DIMENSIONS": list(layout.axes), **{k: (metadata or {})[k] for k in PHYSICAL_KEYS if k in (metadata or {})}})
    return array


class ArraySink:
    """Collect planes into an array of the input's shape and axes: a new numpy array, or the caller's ``into``
    (e.g. a zarr array), which is written plane by plane in place and left as it is on ``abort()``."""

    def __init__(self, layout: CanonicalLayout, dtype, into=None) -> None:
        self.array = np.empty(layout.shape, dtype=dtype) if into is None else into
        self._indexer = _PlaneIndexer(layout)

    def write(self, first_plane: int, block: np.ndarray) -> None:
        for i, plane in enumerate(block):
            self.array[self._indexer.index(first_plane + i)] = self._indexer.to_layout(plane)

    def finish(self):
        return self.array

    def abort(self) -> None:
        self.array = None


class ZarrSink(ArraySink):
    """Write planes into a zarr array (input shape and axes, one chunk per plane) on disk."""

    def __init__(self, layout: CanonicalLayout, dtype, path: str, metadata: dict | None = None, overwrite: bool = False) -> None:
        self.target, self.overwrite = Path(path), overwrite
        self.tmp = temporary_sibling(self.target)
        try:
            self.array = create_zarr_array(self.tmp, layout, dtype, metadata)
        except BaseException:
            discard(self.tmp)
            raise
        self._indexer = _PlaneIndexer(layout)

    def finish(self) -> str:
        commit(self.tmp, self.target, self.overwrite)
        return str(self.target)

    def abort(self) -> None:
        discard(self.tmp)


def check_png_output(layout: CanonicalLayout, dtype) -> None:
    """A PNG holds one picture: 8-bit gray or RGB, or 16-bit gray."""
    dtype = np.dtype(dtype)
    rgb = layout.axes.endswith("C") and layout.channels in (3, 4)
    if layout.planes != 1 or ("C" in layout.axes and not rgb) or dtype.name not in ("uint8", "uint16") or (
        rgb and dtype.name != "uint8"
    ):  # fmt: skip
        raise InvalidInputError(
            f"a .png holds one 8-bit gray or RGB or 16-bit gray picture, not {layout.axes} {layout.shape} {dtype}; "
            "write a .tif instead, or pass dtype='uint8'"
        )


class PngSink(ArraySink):
    """Collect the picture, then write it as a PNG under a temporary name and rename it."""

    def __init__(self, layout: CanonicalLayout, dtype, path: str, overwrite: bool = False) -> None:
        super().__init__(layout, dtype)
        self.target, self.overwrite = Path(path), overwrite
        self.tmp = temporary_sibling(self.target)

    def finish(self) -> str:
        from PIL import Image

        try:
            Image.fromarray(self.array).save(self.tmp, format="PNG")
        except BaseException:
            discard(self.tmp)
            raise
        commit(self.tmp, self.target, self.overwrite)
        return str(self.target)

    def abort(self) -> None:
        discard(self.tmp)


class TiffSink:
    """Stream planes into a BigTIFF with the input's metadata.

    Page order is canonical: the stack axes in input order, then C, then Y X; RGB data whose channel
    axis is last keeps it as samples ("YXS" pages).
    """

    def __init__(self, layout: CanonicalLayout, dtype, path: str, metadata: dict, overwrite: bool = False) -> None:
        self.samples = layout.axes.endswith("C") and layout.channels in (3, 4)
        stack = tuple(layout.shape[layout.axes.index(a)] for a in layout.stack_axes)
        y, x = layout.yx
        if self.samples:
            axes, shape, page = layout.stack_axes + "YXC", (*stack, y, x, layout.channels), (y, x, layout.channels)
        elif "C" in layout.axes:
            axes, shape, page = layout.stack_axes + "CYX", (*stack, layout.channels, y, x), (y, x)
        else:
            axes, shape, page = layout.stack_axes + "YX", (*stack, y, x), (y, x)
        self.axes = axes
        self._writer = TiffPlaneWriter(Path(path), shape, dtype, axes, metadata, page, overwrite)

    def write(self, first_plane: int, block: np.ndarray) -> None:
        for plane in block:
            if self.samples:
                self._writer.put(plane.transpose(1, 2, 0))
            else:
                for channel in plane:
                    self._writer.put(channel)

    def finish(self) -> str:
        return str(self._writer.close())

    def abort(self) -> None:
        self._writer.abort()
