"""Where and how the network runs: device pick, autocast, out-of-memory back-off, per-process model cache."""

from __future__ import annotations

import hashlib
import json
import threading
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
