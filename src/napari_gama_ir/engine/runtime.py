"""Where and how the network runs: device pick, autocast, CPU threads, out-of-memory back-off, per-process
model cache."""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import os
import threading
import time
import weakref
from contextlib import nullcontext
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import InvalidInputError

DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "fp16", "bf16")


def check_device_name(device: str | torch.device) -> str:
    """``device`` as a name of :data:`DEVICES` or ``cuda:N``, else an :class:`InvalidInputError` (whether it
    exists on this machine is :func:`pick_device`'s question)."""
    name = str(device)
    base, colon, index = name.partition(":")
    if base not in DEVICES or (colon and not (base == "cuda" and index.isdigit())):
        raise InvalidInputError(f"device {name!r} is not known; accepted: {', '.join(DEVICES)} or 'cuda:N'")
    return name


def pick_device(device: str | torch.device = "auto") -> torch.device:
    """Resolve "auto" to CUDA, then MPS, then CPU; check that an explicit choice exists here."""
    name = check_device_name(device)
    base = name.split(":")[0]
    if base == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if base == "cuda" and not torch.cuda.is_available():
        raise InvalidInputError(f"device {name!r} was asked for but CUDA is not available here; use device='cpu' or 'auto'")
    if base == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise InvalidInputError(f"device {name!r} was asked for but MPS is not available here; use device='cpu' or 'auto'")
    return torch.device(name)


def pick_precision(precision: str, device: torch.device) -> str:
    """"auto" is bf16 on CUDA GPUs that support it, else fp16 on CUDA; on the CPU bf16 where oneDNN runs it
    natively (1.35-1.5x faster than fp32 here, held-out PSNR within 0.03 dB, docs/benchmarks.md), else fp32."""
    if precision not in PRECISIONS:
        raise InvalidInputError(f"precision {precision!r} is not known; accepted: {', '.join(PRECISIONS)}")
    if precision != "auto":
        if device.type == "cpu" and precision == "fp16":
            raise InvalidInputError("precision 'fp16' needs a GPU; on the CPU use 'fp32', 'bf16' or 'auto'")
        if device.type == "cpu" and precision == "bf16" and not cpu_has_bf16():
            raise InvalidInputError("precision 'bf16' needs a GPU or a CPU with native bfloat16 (AVX512-BF16, AMX); use 'fp32' or 'auto'")
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if device.type == "cpu" and cpu_has_bf16():
        return "bf16"
    return "fp32"


def cpu_has_bf16() -> bool:
    """True when oneDNN runs bfloat16 natively on this CPU (AVX512-BF16 or AMX)."""
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def autocast(device: torch.device, precision: str):
    """Autocast context for fp16/bf16 (GPU, or a CPU with native bf16); a no-op for fp32."""
    if precision == "fp32":
        return nullcontext()
    dtype = torch.float16 if precision == "fp16" else torch.bfloat16
    return torch.autocast(device_type=device.type, dtype=dtype)


def runs_in_bf16_weights(device: torch.device, precision: str) -> bool:
    """True where bf16 inference runs a copy with bf16 weights and activations instead of autocast: the CPU,
    where autocast's casts around every operator cost 15-20 % of the pass (docs/benchmarks.md, "Backends")."""
    return device.type == "cpu" and precision == "bf16"


_COPIES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # a caller's model -> {key: (versions, copy)}


def _tensor_versions(net: nn.Module) -> tuple[tuple[int, int], ...] | None:
    """Where ``net``'s tensors live and their version counters: in-place changes bump the counters, and
    ``param.data = ...`` moves the memory. None for inference tensors, which keep no counter."""
    try:
        return tuple((t.data_ptr(), t._version) for t in (*net.parameters(), *net.buffers()))
    except RuntimeError:
        return None


def _kept_copy(net: nn.Module, key: tuple, make) -> nn.Module:
    """``make()``, a copy of ``net``, kept per ``key`` while ``net`` lives and its tensors are unchanged
    (training or ``load_state_dict`` makes a fresh one)."""
    versions = _tensor_versions(net)
    if versions is None:
        return make()
    with _CACHE_LOCK:
        copies = _COPIES.setdefault(net, {})
        kept = copies.get(key)
        if kept is None or kept[0] != versions:
            kept = copies[key] = (versions, make())
        return kept[1]


def private_copy(net: nn.Module, mean_mode: str, local_size: int, device: torch.device) -> nn.Module:
    """A copy of a caller's ``net`` to restore with, in eval mode, on ``device``, with GAMA's ``mean_mode``: the
    caller's model is never changed (other threads may be restoring with it in another mode or on another
    device). Kept between restores while ``net`` is unchanged (:func:`_kept_copy`)."""

    def make() -> nn.Module:
        out = copy.deepcopy(net)
        out.set_mean_mode(mean_mode, local_size)
        return out.eval().to(device)

    return _kept_copy(net, ("run", mean_mode, local_size, str(device)), make)


def bf16_copy(net: nn.Module) -> nn.Module:
    """A copy of ``net`` with bfloat16 weights, in eval mode, kept while ``net`` is unchanged (:func:`_kept_copy`).

    A GAMAIR keeps its first and last convolutions (``intro``, ``ending``: few operations) and a context model's
    plane mix in float32: the input's planes and the output stay at the input's precision (with bf16 weights
    on all planes, a context model's mean start restored 0.04 dB below binning)."""

    def make() -> nn.Module:
        out = copy.deepcopy(net).to(torch.bfloat16).eval()
        for name in ("intro", "ending", "plane_mix"):  # back to the original's float32 values, not bf16's rounding
            part, original = getattr(out, name, None), getattr(net, name, None)
            if isinstance(part, nn.Module):
                part.float().load_state_dict(original.state_dict())
            elif isinstance(part, nn.Parameter):
                part.data = original.detach().float().clone()
        return out

    return _kept_copy(net, ("bf16",), make)


def is_out_of_memory(exc: BaseException) -> bool:
    """True for CUDA/MPS out-of-memory errors (torch raises several kinds)."""
    if isinstance(exc, getattr(torch.cuda, "OutOfMemoryError", ())):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def free_gpu_bytes(device: torch.device) -> int | None:
    """Free memory on a CUDA device, or None elsewhere: the driver's free memory plus what PyTorch's caching
    allocator holds unused (after a large job that cache can be most of the card)."""
    if device.type != "cuda":
        return None
    free, _total = torch.cuda.mem_get_info(device)
    cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    return int(free + max(0, cached))


# --- a model that travels to dask workers as bytes and is built once per process -----------------


@dataclass(frozen=True)
class ModelSpec:
    """A model as plain bytes (card JSON + safetensors), cheap to send to dask workers."""

    card_json: str
    weights: bytes

    @classmethod
    def from_model(cls, net: nn.Module) -> "ModelSpec":
        from safetensors.torch import save

        state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
        return cls(net.card.to_json(), save(state))

    @property
    def key(self) -> str:
        return hashlib.sha1(self.weights + self.card_json.encode()).hexdigest()


_CACHE: dict[tuple[str, str, str], nn.Module] = {}
CACHE_SIZE = 2  # models kept per process (a worker rarely alternates between more)
_CACHE_LOCK = threading.Lock()
FORWARD_LOCK = threading.Lock()  # one forward pass at a time per process: torch already uses every core


def cached_model(spec: ModelSpec, device: torch.device, mean_mode: str, local_size: int) -> nn.Module:
    """Build the network described by ``spec`` once per process and device."""
    from safetensors.torch import load

    from ..model.gama_ir import GAMAIR
    from ..zoo.card import ModelCard

    key = (spec.key, str(device), f"{mean_mode}:{local_size}")
    with _CACHE_LOCK:
        net = _CACHE.get(key)
        if net is None:
            card = ModelCard.from_dict(json.loads(spec.card_json))
            net = GAMAIR(**card.model_args)
            net.load_state_dict(load(spec.weights))
            net.set_mean_mode(mean_mode, local_size)
            net.card = card
            net.eval().to(device)
            while len(_CACHE) >= CACHE_SIZE:
                _CACHE.pop(next(iter(_CACHE)))  # oldest first (dicts keep insertion order)
            _CACHE[key] = net
        return net


# --- CPU threads sized to the cores other processes leave free --------------------------------------

CORE_WINDOW_S = 0.1  # shortest window over which the other processes' load is measured


def _system_busy_s() -> float | None:
    """CPU seconds spent by the whole machine since boot, not idle (Linux /proc/stat); None elsewhere."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:9]]  # user nice system idle iowait irq softirq steal
    except (OSError, ValueError):
        return None
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS tells it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


class CoreMeter:
    """Torch's thread count for the next CPU forward pass: the cores that other processes leave free.

    Between two calls of :meth:`threads` the machine's busy CPU time (/proc/stat) minus this process's own
    CPU time is the other processes' load; the threads are the usable cores minus that load (rounded),
    at least 1 and at most ``cap`` (torch's thread count when the meter was made: a user's
    ``torch.set_num_threads`` stays a ceiling). An OpenMP team larger than the free cores spins against
    the other processes: on 2 busy cores, 2 threads ran a forward pass 2-3x slower than 1 (the busy-core
    section of ``benchmarks/throughput.py`` compares both). Where /proc/stat is missing (macOS, Windows)
    the count stays ``cap``.
    """

    def __init__(self, cap: int | None = None, mark: tuple | None = None) -> None:
        self.cap = max(1, cap or torch.get_num_threads())
        self.last = self.cap
        self._mark = mark or self._now()  # the window's start: now, or an earlier snapshot of _now()

    @staticmethod
    def _now() -> tuple[float, float | None, float]:
        return time.monotonic(), _system_busy_s(), time.process_time()

    def threads(self) -> int:
        """The thread count to use now (the last one while the window is shorter than :data:`CORE_WINDOW_S`)."""
        (t0, busy0, own0), now = self._mark, self._now()
        t1, busy1, own1 = now
        if busy0 is not None and busy1 is not None and t1 - t0 >= CORE_WINDOW_S:
            others = max(0.0, ((busy1 - busy0) - (own1 - own0)) / (t1 - t0))  # cores busy with other processes
            self.last = max(1, min(self.cap, usable_cores() - round(others)))
            self._mark = now
        return self.last


_METER: CoreMeter | None = None
_IMPORT_MARK = CoreMeter._now()  # the first window starts here, so that a session's first forward pass is sized too
ADAPT_THREADS = True  # False keeps torch's thread count as it is (benchmarks compare both)


@contextlib.contextmanager
def cpu_threads(device: torch.device):
    """For a CPU forward pass, torch's intra-op threads set to :meth:`CoreMeter.threads` and put back after;
    elsewhere a no-op. Hold ``FORWARD_LOCK`` around it (the thread count is process-wide)."""
    global _METER
    if device.type != "cpu" or not ADAPT_THREADS:
        yield
        return
    before = torch.get_num_threads()
    if _METER is None or _METER.cap != before:  # first use, or the user set another count since
        _METER = CoreMeter(before, mark=_METER._mark if _METER else _IMPORT_MARK)
    n = _METER.threads()
    if n != before:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if n != before:
            torch.set_num_threads(before)
