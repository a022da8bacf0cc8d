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

from ..errors import InvalidInputError, RestoreError
from ..io.normalize import NORMALIZED_LIMIT, Normalizer, cast_to, exceeds_float32, largest_float_below

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


def has_float64(device: torch.device) -> bool:
    """Whether ``device`` computes in float64 (MPS does not)."""
    return torch.device(device).type != "mps"


def upload(raw: np.ndarray, device: torch.device) -> torch.Tensor:
    """(k, C, Y, X) raw values of any accepted dtype -> the same values as float32 on ``device``, or as
    float64 for the types float32 cannot hold exactly (float64, 32/64-bit integers) where the device
    computes in float64, so that :func:`normalize` is exact at any scale.

    uint16 and uint32 travel as int16 / int32 bit patterns (torch has little support for unsigned
    types) and are widened on the device; other types torch or the device lacks are converted to
    float32 (float64 where the device has it) on the host.
    """
    raw = np.ascontiguousarray(raw)
    if not raw.dtype.isnative:  # big-endian files: torch holds native byte order only
        raw = raw.astype(raw.dtype.newbyteorder("="))
    wide = exceeds_float32(raw.dtype) and has_float64(device)
    if raw.dtype in _UNSIGNED_AS_SIGNED:
        signed, _, as_int, mask = _UNSIGNED_AS_SIGNED[raw.dtype]
        widened = _to(raw.view(signed), device).to(as_int) & mask
        return widened.double() if wide else widened.float()
    if raw.dtype not in _NATIVE or not _on_device(raw.dtype, device):
        raw = raw.astype(np.float64 if wide else np.float32)
    return _to(raw, device).double() if wide else _to(raw, device).float()


def _to(array: np.ndarray, device: torch.device) -> torch.Tensor:
    with warnings.catch_warnings():  # a read-only array (a memmap, a napari layer) is copied below, never written
        warnings.simplefilter("ignore", UserWarning)
        t = torch.from_numpy(array)
    if device.type == "cuda":  # pinned memory: the copy runs asynchronously
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


def float64_on_host(dtype, normalizer: Normalizer, device: torch.device) -> bool:
    """True where :func:`normalize` or :func:`denormalize` of values of ``dtype`` on ``device`` would not
    be exact: float64 work on a device without float64 (MPS). Then ``normalizer.forward`` runs on the
    host and the normalised values travel (input), or :meth:`PendingBlock.result` inverts the normalised
    output on the host."""
    return normalizer.work_dtype(dtype) == np.float64 and not has_float64(device)


def normalize(x: torch.Tensor, normalizer: Normalizer) -> torch.Tensor:
    """:meth:`Normalizer.forward` on a (k, C, Y, X) float tensor, where it lies: float32 out, clipped to
    ``±NORMALIZED_LIMIT``; float64 arithmetic where ``x`` is float64 or the bounds need it."""
    work = torch.float64 if x.dtype == torch.float64 or not normalizer.float32_safe() else torch.float32
    if not has_float64(x.device):
        work = torch.float32
    low, scale = _bounds(normalizer, x.device, work)
    y = x.to(work) - low
    return y.div_(scale).clamp_(-NORMALIZED_LIMIT, NORMALIZED_LIMIT).float()


def denormalize(y: torch.Tensor, normalizer: Normalizer, dtype=np.float32) -> torch.Tensor:
    """:meth:`Normalizer.inverse` on a (k, C, Y, X) float32 tensor, where it lies: float32, or float64
    where the output ``dtype`` or the bounds need it (see :func:`float64_on_host` for MPS)."""
    work = torch.float64 if normalizer.work_dtype(dtype) == np.float64 and has_float64(y.device) else torch.float32
    low, scale = _bounds(normalizer, y.device, work)
    return torch.addcmul(low, y.to(work), scale)


def _bounds(normalizer: Normalizer, device: torch.device, dtype=torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """``low`` and ``high - low`` as (1, C, 1, 1) tensors of ``dtype`` on ``device``."""
    low = torch.as_tensor(normalizer.low, dtype=dtype, device=device).view(1, -1, 1, 1)
    scale = torch.as_tensor(normalizer.scale, dtype=dtype, device=device).view(1, -1, 1, 1)
    return low, scale


def non_finite_output(net) -> RestoreError:
    """The error for a network output holding NaN or inf, naming the model where it has a card."""
    card = getattr(net, "card", None)
    name = getattr(card, "name", None) or f"an unnamed {type(net).__name__} built in memory"
    return RestoreError(
        f"the model produced NaN or inf on this data (model {name}); nothing was written from it and an "
        "output file is removed. Check the model's weights (load_model refuses NaN weights; a model built "
        "or changed in memory is not checked), or restore with precision='fp32'"
    )


def cast(values: torch.Tensor, dtype) -> torch.Tensor:
    """:func:`~napari_gama_ir.io.normalize.cast_to` on the device where it can run there: rounded and
    clipped to an integer dtype's range, as a tensor holding that dtype's bits (uint16/uint32 as the
    signed type of the same bits). A float dtype narrower than ``values`` saturates at its largest
    finite value. Other dtypes (uint64; 64-bit types on MPS) come back as the values are and
    :meth:`PendingBlock.result` casts them on the host."""
    dtype = np.dtype(dtype)
    if dtype not in _NATIVE and dtype not in _UNSIGNED_AS_SIGNED or not _on_device(dtype, values.device):
        return values
    if dtype.kind == "f":
        target = _NATIVE[dtype]
        if torch.finfo(target).max < torch.finfo(values.dtype).max:  # saturate, as cast_to does, not inf
            big = torch.finfo(target).max
            values = values.clamp(-big, big)
        return values.to(target)
    info = np.iinfo(dtype)
    rounded = torch.round(values if values.dtype == torch.float64 else values.float())
    high = largest_float_below(info.max, np.float64 if rounded.dtype == torch.float64 else np.float32)
    unsigned = _UNSIGNED_AS_SIGNED.get(dtype)
    out = rounded.clamp(info.min, high).to(unsigned[2] if unsigned else _NATIVE[dtype])
    if high < info.max:  # above the last float under the maximum: saturate at the maximum itself
        out = out.masked_fill(rounded > high, info.max)
    return out.to(unsigned[1]) if unsigned else out  # the signed type keeps the unsigned value's bits


class PendingBlock:
    """Output on its way to the host: the copy is queued behind the device's work; ``result()`` waits.

    ``finite`` (the input's) and ``output_finite`` (the network's output's) are 0-d bool tensors reduced on
    the device and read only here, so checking them costs no extra synchronisation. ``normalizer``: the
    values are still normalised and are inverted on the host (see :func:`float64_on_host`).
    """

    def __init__(
        self, values: torch.Tensor, dtype, finite: torch.Tensor | None = None,
        output_finite: torch.Tensor | None = None, error: RestoreError | None = None,
        normalizer: Normalizer | None = None,
    ) -> None:  # fmt: skip
        self.dtype = np.dtype(dtype)
        self.finite = finite
        self.output_finite, self.error, self.normalizer = output_finite, error, normalizer
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
        if self.output_finite is not None and not bool(self.output_finite):
            self.host = None
            raise self.error or RestoreError("the model produced NaN or inf on this data; nothing was written from it")
        out = self.host.numpy()
        if self.normalizer is not None:
            result = cast_to(self.normalizer.inverse(out, dtype=self.dtype), self.dtype)
        elif out.dtype == self.dtype:
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
