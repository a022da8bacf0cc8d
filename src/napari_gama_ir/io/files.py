"""Open inputs lazily (numpy, dask, zarr, memmap, TIFF, zarr store) and stream outputs to disk.

Every writer writes under a temporary name beside the target and renames it at the end, so a failed or
cancelled run never leaves a partial file.
"""

from __future__ import annotations

import os
import queue
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np

from ..errors import InvalidInputError

TIFF_SUFFIXES = (".tif", ".tiff", ".btf", ".tf8")
ZARR_SUFFIXES = (".zarr", ".ome.zarr")


@dataclass
class OpenedInput:
    """A lazily readable input and what its source says about it."""

    array: Any
    "numpy array (in memory, or a memmap) or dask array."
    axes: str | None
    "Axes from file metadata, or None when only the shape can tell."
    lazy: bool
    "True when the caller gave something not in memory (dask, zarr, a file path)."
    metadata: dict = field(default_factory=dict)
    "What to keep in an output file: 'resolution', 'resolutionunit', 'spacing', 'unit', 'source'."


PHYSICAL_KEYS = ("spacing", "unit", "finterval")
"Pixel-size metadata carried from an input file to the output (besides the TIFF resolution tags)."


def open_input(data) -> OpenedInput:
    """Wrap ``data`` for reading, without loading it.

    Parameters
    ----------
    data : array-like or str or PathLike
        numpy array or memmap, dask array, zarr array, or a path to a TIFF (OME, BigTIFF, ImageJ)
        or a zarr store (OME-Zarr: its first multiscale level).
    """
    if isinstance(data, (str, os.PathLike)):
        return _open_path(Path(data).expanduser())
    if isinstance(data, da.Array):
        return OpenedInput(data, None, lazy=True)
    if isinstance(data, np.ndarray):
        return OpenedInput(data, None, lazy=False)
    if is_zarr_array(data):
        return OpenedInput(da.from_zarr(data), _zarr_axes(data), lazy=True)
    if hasattr(data, "__array__") and hasattr(data, "shape"):
        return OpenedInput(np.asarray(data), None, lazy=False)
    raise InvalidInputError(
        f"cannot read data of type {type(data).__name__}; accepted: numpy array, dask array, zarr array, "
        "or a path to a .tif/.tiff or .zarr"
    )


def is_zarr_array(obj) -> bool:
    return type(obj).__module__.startswith("zarr") and hasattr(obj, "shape") and hasattr(obj, "dtype")


def _zarr_axes(arr) -> str | None:
    axes = arr.attrs.get("_ARRAY_DIMENSIONS") or arr.attrs.get("axes")
    if isinstance(axes, (list, tuple)) and all(isinstance(a, str) and len(a) == 1 for a in axes):
        return "".join(axes).upper()
    return None


def _open_path(path: Path) -> OpenedInput:
    if not path.exists():
        raise InvalidInputError(f"{path}: file not found")
    name = path.name.lower()
    if name.endswith(TIFF_SUFFIXES):
        return _open_tiff(path)
    if name.endswith(ZARR_SUFFIXES) or path.is_dir():
        return _open_zarr(path)
    raise InvalidInputError(f"{path}: unsupported file type; accepted: .tif/.tiff (incl. OME-TIFF, BigTIFF) or .zarr")


class TiffSource:
    """The first series of a TIFF (full resolution of a pyramid) as an array-like that reads on demand.

    The open file stays out of pickles: a dask graph over it travels to dask.distributed workers, which
    reopen the file by path (on a cluster: a path all workers can read).
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._array = None
        array = self._open()
        self.shape, self.dtype, self.chunks = tuple(array.shape), np.dtype(array.dtype), tuple(array.chunks)
        self.ndim = len(self.shape)

    def _open(self):
        if self._array is None:
            import tifffile
            import zarr

            self._array = zarr.open(tifffile.imread(self.path, aszarr=True, series=0, level=0), mode="r")
        return self._array

    def __getitem__(self, key) -> np.ndarray:
        return self._open()[key]

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_array": None}

    def __dask_tokenize__(self):
        stat = self.path.stat()
        return ("TiffSource", str(self.path.resolve()), stat.st_mtime_ns, stat.st_size)


def _open_tiff(path: Path) -> OpenedInput:
    import tifffile
    import zarr

    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            axes = series.axes
            meta = _tiff_metadata(tif, series)
        source = TiffSource(path)
        arr = da.from_array(source, chunks=source.chunks, asarray=True, meta=np.empty((0,) * source.ndim, source.dtype))
    except (tifffile.TiffFileError, ValueError, OSError, KeyError, IndexError) as exc:
        raise InvalidInputError(f"{path}: not a readable TIFF ({exc})") from None
    meta["source"] = str(path)
    return OpenedInput(arr, axes, lazy=True, metadata=meta)


def _tiff_metadata(tif, series) -> dict:
    meta: dict = {}
    page = series.pages[0] if series.pages else None
    if page is not None:
        tags = page.tags
        if "XResolution" in tags and "YResolution" in tags:
            meta["resolution"] = (tags["XResolution"].value, tags["YResolution"].value)
            if "ResolutionUnit" in tags:
                meta["resolutionunit"] = int(tags["ResolutionUnit"].value)
    # ImageJ hyperstacks keep spacing/unit in their description; tifffile's own ("shaped") files, which
    # restore writes, keep them in a JSON description
    described = [tif.imagej_metadata or {}, *(tif.shaped_metadata or ())]
    for key in PHYSICAL_KEYS:
        for found in described:
            if key in found:
                meta[key] = found[key]
                break
    return meta


def _open_zarr(path: Path) -> OpenedInput:
    import zarr

    try:
        node = zarr.open(str(path), mode="r")
    except Exception as exc:  # zarr raises many kinds for a non-store folder
        raise InvalidInputError(f"{path}: not a readable zarr store ({exc})") from None
    axes = None
    if not hasattr(node, "shape"):  # a group: OME-Zarr multiscales or the first array
        ms = node.attrs.get("multiscales") or (node.attrs.get("ome") or {}).get("multiscales")  # OME-Zarr 0.4 | 0.5
        if ms:
            axes = "".join(a["name"] if isinstance(a, dict) else a for a in ms[0].get("axes", [])).upper() or None
            node = node[ms[0]["datasets"][0]["path"]]
        else:
            arrays = list(node.array_keys())
            if not arrays:
                raise InvalidInputError(f"{path}: zarr group holds no array")
            node = node[arrays[0]]
    axes = axes or _zarr_axes(node)
    physical = {k: node.attrs[k] for k in PHYSICAL_KEYS if k in node.attrs}
    return OpenedInput(da.from_zarr(node), axes, lazy=True, metadata={**physical, "source": str(path)})


def temporary_sibling(target: Path) -> Path:
    """A hidden temporary path beside ``target`` (same file system, so the rename is atomic)."""
    return target.with_name(f".{target.name}.partial-{os.getpid()}-{threading.get_ident()}")


def commit(tmp: Path, target: Path) -> None:
    """Move a finished temporary file or folder onto ``target``."""
    if target.is_dir() and not target.is_symlink():
        shutil.rmtree(target)
    os.replace(tmp, target)


def discard(tmp: Path) -> None:
    """Remove a temporary file or folder left by a failed or cancelled run."""
    if tmp.is_dir():
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        tmp.unlink(missing_ok=True)


class TiffPlaneWriter:
    """Stream planes into one TIFF series from a background thread (tifffile pulls an iterator).

    ``put(plane)`` hands over the next plane in order (shape = one page: Y x X, or Y x X x S for RGB);
    ``close()`` waits for the writer and renames the file; ``abort()`` removes it.
    """

    def __init__(self, target: Path, shape: tuple[int, ...], dtype, axes: str, metadata: dict, page_shape: tuple[int, ...]):
        import tifffile

        self.target, self.tmp = target, temporary_sibling(target)
        self._queue: queue.Queue = queue.Queue(maxsize=4)
        self._error: BaseException | None = None
        n_pages = int(np.prod(shape)) // int(np.prod(page_shape))
        photometric = "rgb" if axes.endswith("C") and shape[-1] in (3, 4) else "minisblack"
        kwargs: dict[str, Any] = dict(shape=shape, dtype=np.dtype(dtype), photometric=photometric, bigtiff=True)
        if "resolution" in metadata:
            kwargs["resolution"] = metadata["resolution"]
            if "resolutionunit" in metadata:
                kwargs["resolutionunit"] = metadata["resolutionunit"]
        tiff_meta = {"axes": axes.replace("C", "S") if photometric == "rgb" else axes}
        for key in ("spacing", "unit"):
            if key in metadata:
                tiff_meta[key] = metadata[key]
        kwargs["metadata"] = tiff_meta

        def pages():
            for _ in range(n_pages):
                item = self._queue.get()
                if item is None:
                    raise RuntimeError("aborted")
                yield item

        def run():
            try:
                tifffile.imwrite(self.tmp, data=pages(), **kwargs)
            except BaseException as exc:  # surfaced in close()
                self._error = exc

        self._thread = threading.Thread(target=run, name="gama-ir-tiff-writer", daemon=True)
        self._thread.start()

    def put(self, page: np.ndarray) -> None:
        while True:
            if self._error is not None:
                raise self._error
            try:
                self._queue.put(np.ascontiguousarray(page), timeout=0.5)
                return
            except queue.Full:
                continue

    def close(self) -> Path:
        self._thread.join()
        if self._error is not None:
            discard(self.tmp)
            raise self._error
        commit(self.tmp, self.target)
        return self.target

    def abort(self) -> None:
        if self._thread.is_alive():
            try:
                self._queue.put_nowait(None)
            except queue.Full:
                while not self._queue.empty():  # unblock the writer
                    self._queue.get_nowait()
                self._queue.put_nowait(None)
            self._thread.join(timeout=10)
        discard(self.tmp)
