"""Open inputs lazily (numpy, dask, zarr, memmap, TIFF, zarr store) and stream outputs to disk.

Every writer writes under a temporary name beside the target and renames it at the end, so a failed or
cancelled run never leaves a partial file.
"""

from __future__ import annotations

import os
import queue
import shutil
import signal
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import dask.array as da
import numpy as np

from ..errors import InvalidInputError

TIFF_SUFFIXES = (".tif", ".tiff", ".btf", ".tf8")
ZARR_SUFFIXES = (".zarr", ".ome.zarr")
PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg")  # read whole (they are single pictures); .png is also written


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
    if name.endswith(PICTURE_SUFFIXES):
        return _open_picture(path)
    raise InvalidInputError(
        f"{path}: unsupported file type; accepted: .tif/.tiff (incl. OME-TIFF, BigTIFF), .zarr, .png, .jpg/.jpeg"
    )


def _open_picture(path: Path) -> OpenedInput:
    """A PNG or JPEG as a YX (gray, 8 or 16 bit) or YXC (RGB) numpy array; alpha and palettes become RGB."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as picture:
            picture.load()
            if picture.mode in ("P", "PA", "RGBA", "CMYK", "YCbCr", "LAB", "HSV"):
                picture = picture.convert("RGB")
            elif picture.mode in ("LA", "1"):
                picture = picture.convert("L")
            array = np.asarray(picture)
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise InvalidInputError(f"{path}: not a readable PNG or JPEG ({exc})") from None
    return OpenedInput(array, "YXC" if array.ndim == 3 else "YX", lazy=False, metadata={"source": str(path)})


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
        import tifffile

        try:
            return self._open()[key]
        except (tifffile.TiffFileError, ValueError, OSError, KeyError, IndexError) as exc:
            raise InvalidInputError(f"{self.path}: the TIFF cannot be read, it may be truncated or corrupt ({exc})") from None

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
    if tif.is_imagej:
        meta["format"] = "imagej"
    described = [tif.imagej_metadata or {}, *(tif.shaped_metadata or ()), _ome_calibration(tif)]
    for key in PHYSICAL_KEYS:
        for found in described:
            if key in found:
                meta[key] = found[key]
                break
    return meta


def _ome_calibration(tif) -> dict:
    """Z spacing and unit of an OME-TIFF's first image (its X and Y sizes are in the resolution tags)."""
    if not tif.is_ome:
        return {}
    import tifffile

    try:
        image = tifffile.xml2dict(tif.ome_metadata)["OME"]["Image"]
        pixels = (image[0] if isinstance(image, list) else image)["Pixels"]
    except (KeyError, IndexError, TypeError, ValueError):
        return {}
    found = {}
    if "PhysicalSizeZ" in pixels:
        found["spacing"] = float(pixels["PhysicalSizeZ"])
    unit = pixels.get("PhysicalSizeXUnit", pixels.get("PhysicalSizeZUnit"))
    if unit:
        found["unit"] = str(unit)
    return found


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


ZARR_STORE_MARKERS = (".zarray", ".zgroup", ".zattrs", "zarr.json")


def is_zarr_store(path: Path) -> bool:
    """True for a folder that zarr wrote (v2 or v3 metadata at its top)."""
    return path.is_dir() and any((path / marker).exists() for marker in ZARR_STORE_MARKERS)


def output_target(out, overwrite: bool) -> str:
    """Check, before any work, that ``out`` (a .tif/.tiff or .png file, or a .zarr store) may be created, or replaced
    when ``overwrite``; returns it as a path string. A folder that is not a zarr store is never replaced."""
    path = Path(out).expanduser()
    want_store = path.name.lower().endswith(".zarr")
    if not path.parent.is_dir():
        raise InvalidInputError(f"out={str(out)!r}: folder {path.parent} does not exist; create it or choose another")
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise InvalidInputError(f"out={str(out)!r}: folder {path.parent} is not writable; choose another folder")
    if path.is_symlink():
        raise InvalidInputError(f"out={str(out)!r} is a symbolic link; give the path it points to, or another name")
    if path.exists():
        if path.is_dir() and not is_zarr_store(path):
            raise InvalidInputError(
                f"out={str(out)!r} is an existing folder that is not a zarr store; it is never replaced, "
                "choose another name"
            )
        if path.is_dir() != want_store:
            what = "a zarr store" if path.is_dir() else "a file"
            raise InvalidInputError(f"out={str(out)!r} exists as {what}; choose another name")
        if not overwrite:
            raise InvalidInputError(
                f"out={str(out)!r} exists; pass overwrite=True (gama-ir restore --overwrite) to replace it, "
                "or choose another name"
            )
    return str(path)


def temporary_sibling(target: Path) -> Path:
    """A hidden temporary path beside ``target`` (same file system, so the rename is atomic)."""
    return target.with_name(f".{target.name}.partial-{os.getpid()}-{threading.get_ident()}")


def commit(tmp: Path, target: Path, overwrite: bool = False) -> None:
    """Move a finished temporary file or folder onto ``target``.

    Without ``overwrite`` an existing target (one that appeared while the output was written) is kept and
    the result discarded with an error; with it a file is replaced atomically, and a zarr store is moved
    aside, replaced, then removed. A folder that is not a zarr store is never replaced.
    """
    if target.exists() or target.is_symlink():
        if not overwrite or (target.is_dir() and not target.is_symlink() and not is_zarr_store(target)):
            discard(tmp)
            raise InvalidInputError(f"{target} appeared while restoring and was kept as it is; choose another output")
        if target.is_dir() and not target.is_symlink():
            aside = target.with_name(f".{target.name}.replaced-{os.getpid()}-{threading.get_ident()}")
            os.replace(target, aside)
            try:
                os.replace(tmp, target)
            except BaseException:
                os.replace(aside, target)  # the user's store goes back where it was
                raise
            shutil.rmtree(aside, ignore_errors=True)
            return
        os.replace(tmp, target)
        return
    if tmp.is_dir():
        os.rename(tmp, target)  # fails if a non-empty folder appeared meanwhile
        return
    try:
        os.link(tmp, target)  # fails if a file appeared meanwhile, where os.replace would replace it
    except FileExistsError:
        discard(tmp)
        raise InvalidInputError(f"{target} appeared while restoring and was kept as it is; choose another output") from None
    except OSError:  # a file system without hard links
        os.replace(tmp, target)
        return
    tmp.unlink()


def discard(tmp: Path) -> None:
    """Remove a temporary file or folder left by a failed or cancelled run."""
    if tmp.is_dir() and not tmp.is_symlink():
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        tmp.unlink(missing_ok=True)


@contextmanager
def sigterm_raises_systemexit() -> Iterator[None]:
    """While inside, SIGTERM raises ``SystemExit(143)`` in the main thread, so that the ``except`` and
    ``finally`` clauses of a running job remove its temporary output. A no-op outside the main thread or
    where the program has its own SIGTERM handler."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return

    def terminate(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        if signal.getsignal(signal.SIGTERM) is terminate:  # unless the program installed its own meanwhile
            signal.signal(signal.SIGTERM, signal.SIG_DFL)


IMAGEJ_MAX_BYTES = 4 * 1024**3 - (32 << 20)  # ImageJ cannot read BigTIFF: classic TIFF offsets, minus room for tags
UM_PER_RESOLUTION_UNIT = {2: 25400.0, 3: 10000.0}  # TIFF ResolutionUnit INCH, CENTIMETER in micrometres


def tiff_write_options(target: Path, shape: tuple[int, ...], dtype, axes: str, metadata: dict) -> dict[str, Any]:
    """tifffile.imwrite arguments for the output: OME-TIFF for ``*.ome.tif(f)`` (with physical pixel sizes),
    an ImageJ hyperstack when the input was one (calibration kept, if it fits ImageJ's 4 GB), else a BigTIFF
    whose JSON description keeps axes, spacing and unit."""
    rgb = axes.endswith("C") and shape[-1] in (3, 4)
    axes = axes.replace("C", "S") if rgb else axes
    kwargs: dict[str, Any] = dict(shape=shape, dtype=np.dtype(dtype), photometric="rgb" if rgb else "minisblack")
    if "resolution" in metadata:
        kwargs["resolution"] = metadata["resolution"]
        if "resolutionunit" in metadata:
            kwargs["resolutionunit"] = metadata["resolutionunit"]
    nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    if target.name.lower().endswith((".ome.tif", ".ome.tiff")):
        return {**kwargs, "ome": True, "bigtiff": True, "metadata": {"axes": axes, **_ome_physical_sizes(metadata)}}
    if metadata.get("format") == "imagej" and nbytes < IMAGEJ_MAX_BYTES and np.dtype(dtype).name in ("uint8", "uint16", "float32"):
        calibration = {k: metadata[k] for k in ("spacing", "unit", "finterval") if k in metadata}
        return {**kwargs, "imagej": True, "metadata": {"axes": axes, **calibration}}
    shaped = {"axes": axes, **{k: metadata[k] for k in ("spacing", "unit") if k in metadata}}
    return {**kwargs, "bigtiff": True, "metadata": shaped}


def _ome_physical_sizes(metadata: dict) -> dict[str, Any]:
    """OME Pixels attributes from TIFF resolution tags or ImageJ calibration (micrometres when known)."""
    sizes: dict[str, Any] = {}
    unit = str(metadata.get("unit", "")).replace("\\u00B5", "µ")
    if unit in ("micron", "um", "µm", "\\u00B5m"):
        unit = "µm"
    if "resolution" in metadata:
        (xn, xd), (yn, yd) = (v if isinstance(v, (tuple, list)) else (v, 1) for v in metadata["resolution"])
        per_um = UM_PER_RESOLUTION_UNIT.get(int(metadata.get("resolutionunit", 1)))
        scale, size_unit = (per_um, "µm") if per_um else (1.0, unit or None)
        if xn and yn and size_unit:
            sizes.update(PhysicalSizeX=scale * xd / xn, PhysicalSizeXUnit=size_unit,
                         PhysicalSizeY=scale * yd / yn, PhysicalSizeYUnit=size_unit)  # fmt: skip
    if "spacing" in metadata and unit:
        sizes.update(PhysicalSizeZ=float(metadata["spacing"]), PhysicalSizeZUnit=unit)
    return sizes


class TiffPlaneWriter:
    """Stream planes into one TIFF series from a background thread (tifffile pulls an iterator).

    ``put(plane)`` hands over the next plane in order (shape = one page: Y x X, or Y x X x S for RGB);
    ``close()`` waits for the writer and renames the file; ``abort()`` removes it.
    """

    def __init__(self, target: Path, shape: tuple[int, ...], dtype, axes: str, metadata: dict, page_shape: tuple[int, ...],
                 overwrite: bool = False):  # fmt: skip
        import tifffile

        self.target, self.tmp, self.overwrite = target, temporary_sibling(target), overwrite
        self._queue: queue.Queue = queue.Queue(maxsize=4)
        self._error: BaseException | None = None
        n_pages = int(np.prod(shape)) // int(np.prod(page_shape))
        kwargs = tiff_write_options(target, shape, dtype, axes, metadata)

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
        commit(self.tmp, self.target, self.overwrite)
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
