"""The accelerator path: a chunk crosses the bus once each way, as raw values in and output values out.

On a GPU the host's numpy work (normalising, cutting tiles, blending, casting) would leave the device
idle most of the time, so here all of it runs on the device: the raw chunk is uploaded from pinned
memory, normalised, tiled, blended, mapped back and cast there, and the result comes back by an
asynchronous copy (:class:`PendingBlock`) while the device already works on the next chunk.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from ..errors import InvalidInputError
from ..io.normalize import Normalizer, cast_to, largest_float_below

# numpy dtypes torch holds as they are; unsigned 16/32-bit travel as the signed type of the same bits
_NATIVE = {np.dtype(t): getattr(torch, n) for t, n in [
    ("uint8", "uint8"), ("int8", "int8"), ("int16", "int16"), ("int32", "int32"), ("int64", "int64"),
    ("float16", "float16"), ("float32", "float32"), ("float64", "float64"),
]}  # fmt: skip
_UNSIGNED_AS_SIGNED = {
    np.dtype("uint16"): (np.dtype("int16"), torch.int16, torch.int32, 0xFFFF),
    np.dtype("uint32"): (np.dtype("int32"), torch.int32, torch.int64, 0xFFFFFFFF),
}


def _on_device(dtype: np.dtype, device: torch.device) -> bool:
    """Whether values of ``dtype`` can live on ``device`` (MPS has no 64-bit floats: 64-bit types stay on the host)."""
    return not (device.type == "mps" and dtype.itemsize == 8)


def upload(raw: np.ndarray, device: torch.device) -> torch.Tensor:
    """(k, C, Y, X) raw values of any accepted dtype -> the same values as float32 on ``device``.

    uint16 and uint32 travel as int16 / int32 bit patterns (torch has little support for unsigned
    types) and are widened on the device; other types torch or the device lacks are converted to
    float32 on the host.
    """
    raw = np.ascontiguousarray(raw)
    if not raw.dtype.isnative:  # big-endian files: torch holds native byte order only
        raw = raw.astype(raw.dtype.newbyteorder("="))
    if raw.dtype in _UNSIGNED_AS_SIGNED:
        signed, _, wide, mask = _UNSIGNED_AS_SIGNED[raw.dtype]
        return (_to(raw.view(signed), device).to(wide) & mask).float()
    if raw.dtype not in _NATIVE or not _on_device(raw.dtype, device):
        raw = raw.astype(np.float32)
    return _to(raw, device).float()


def _to(array: np.ndarray, device: torch.device) -> torch.Tensor:
    with warnings.catch_warnings():  # a read-only array (a memmap, a napari layer) is copied below, never written
        warnings.simplefilter("ignore", UserWarning)
        t = torch.from_numpy(array)
    if device.type == "cuda":  # pinned memory: the copy runs asynchronously
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


def normalize(x: torch.Tensor, normalizer: Normalizer) -> torch.Tensor:
    """:meth:`Normalizer.forward` on a (k, C, Y, X) float32 tensor, where it lies."""
    low, high = _bounds(normalizer, x.device)
    return (x - low) / (high - low)


def denormalize(y: torch.Tensor, normalizer: Normalizer) -> torch.Tensor:
    """:meth:`Normalizer.inverse` on a (k, C, Y, X) float32 tensor, where it lies."""
    low, high = _bounds(normalizer, y.device)
    return y * (high - low) + low


def _bounds(normalizer: Normalizer, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    low = torch.as_tensor(normalizer.low, dtype=torch.float32, device=device).view(1, -1, 1, 1)
    high = torch.as_tensor(normalizer.high, dtype=torch.float32, device=device).view(1, -1, 1, 1)
    return low, high


def cast(values: torch.Tensor, dtype) -> torch.Tensor:
    """:func:`~napari_gama_ir.io.normalize.cast_to` on the device where it can run there: rounded and
    clipped to an integer dtype's range, as a tensor holding that dtype's bits (uint16/uint32 as the
    signed type of the same bits). Other dtypes (uint64; 64-bit types on MPS) come back as float32 and
    :meth:`PendingBlock.result` casts them on the host."""
    dtype = np.dtype(dtype)
    if dtype not in _NATIVE and dtype not in _UNSIGNED_AS_SIGNED or not _on_device(dtype, values.device):
        return values
    if dtype.kind == "f":
        return values.to(_NATIVE[dtype])
    info = np.iinfo(dtype)
    rounded = torch.round(values if values.dtype == torch.float64 else values.float())
    high = largest_float_below(info.max, np.float64 if rounded.dtype == torch.float64 else np.float32)
    unsigned = _UNSIGNED_AS_SIGNED.get(dtype)
    out = rounded.clamp(info.min, high).to(unsigned[2] if unsigned else _NATIVE[dtype])
    if high < info.max:  # above the last float under the maximum: saturate at the maximum itself
        out = out.masked_fill(rounded > high, info.max)
    return out.to(unsigned[1]) if unsigned else out  # the signed type keeps the unsigned value's bits


class PendingBlock:
    """Output on its way to the host: the copy is queued behind the device's work; ``result()`` waits."""

    def __init__(self, values: torch.Tensor, dtype, finite: torch.Tensor | None = None) -> None:
        self.dtype = np.dtype(dtype)
        self.finite = finite
        if values.device.type == "cuda":
            self.host = torch.empty(values.shape, dtype=values.dtype, pin_memory=True)
            self.host.copy_(values, non_blocking=True)
            self.event = torch.cuda.Event()
            self.event.record(torch.cuda.current_stream(values.device))  # the copy's stream, on its GPU
        else:
            self.host, self.event = values.cpu(), None

    def result(self) -> np.ndarray:
        """The (k, C, Y, X) block as a numpy array of the output dtype."""
        if self.event is not None:
            self.event.synchronize()
        if self.finite is not None and not bool(self.finite):
            raise InvalidInputError("data contains NaN or inf; replace them first (e.g. numpy.nan_to_num) and try again")
        out = self.host.numpy()
        if out.dtype == self.dtype:
            result = out
        elif self.dtype in _UNSIGNED_AS_SIGNED and out.dtype == _UNSIGNED_AS_SIGNED[self.dtype][0]:
            result = out.view(self.dtype)  # the unsigned bits that cast() kept
        else:
            result = cast_to(out, self.dtype)  # float32 values of a dtype the device does not hold
        if self.event is not None and np.may_share_memory(result, out):
            # an ordinary copy: the pinned block goes back to the cache for the next chunk, and
            # release_host_cache() can give it back to the system at the end
            result = result.copy()
        self.host = None
        return result


def release_host_cache(device) -> None:
    """Give the cached pinned (page-locked) host blocks back to the system after a restore on CUDA.

    PyTorch keeps pinned blocks for reuse; without this a napari session would hold a chunk's worth of
    page-locked RAM (up to a few hundred MiB) for as long as it runs. Blocks still in use (a copy under
    way, another restore running) stay. Uses ``torch.accelerator.memory.empty_host_cache`` where torch has
    it, else the CUDA host allocator's own call of earlier versions; never raises (it runs in a
    ``finally`` and must not hide the error that ended the restore)."""
    if torch.device(device).type != "cuda":
        return
    try:
        from torch.accelerator.memory import empty_host_cache
    except ImportError:
        empty_host_cache = getattr(torch._C, "_host_emptyCache", None)
    if empty_host_cache is None:
        return
    try:
        empty_host_cache()
    except Exception:  # noqa: BLE001 - e.g. after a CUDA error; the restore's own outcome matters more
        pass


class TensorMerger:
    """:class:`~napari_gama_ir.tiling.merge.ArrayMerger` on the device: weighted tiles summed where they lie."""

    def __init__(self, shape: tuple[int, int, int, int], device: torch.device) -> None:
        self.values = torch.zeros(shape, dtype=torch.float32, device=device)
        self.weights = torch.zeros(shape[-2:], dtype=torch.float32, device=device)
        self._windows: dict[tuple[int, int], torch.Tensor] = {}

    def set_window(self, corner: tuple[int, int], window: np.ndarray) -> None:
        window_t = torch.from_numpy(window).to(self.values.device)
        self._windows[corner] = window_t
        y, x = corner
        h, w = window_t.shape
        self.weights[y : y + h, x : x + w] += window_t

    def add(self, values: torch.Tensor, location: tuple[int, int, int]) -> None:
        n, y, x = location
        window = self._windows[(y, x)]
        h, w = window.shape
        self.values[n, :, y : y + h, x : x + w].addcmul_(values, window)

    def finalize(self) -> torch.Tensor:
        return self.values.div_(self.weights)
