"""Atomic, self-describing training checkpoints: model + optimiser tensors (safetensors), the rest JSON.

``PATH.safetensors`` holds ``model.*`` and ``optim.<param index>.<key>`` tensors plus the torch RNG
state; ``PATH.json`` holds the model card, step, best metric, optimiser hyper-parameters, the numpy RNG
state and the training history. Nothing is pickled.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from ..errors import ModelFileError
from ..zoo.store import _atomic_write


def save_checkpoint(path: str | os.PathLike, model, optimizer, step: int, state: dict, rng: np.random.Generator, extra: dict | None = None) -> Path:
    """Write a checkpoint beside ``path`` (``.safetensors`` + ``.json``), atomically."""
    path = Path(path).with_suffix("")
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    opt = optimizer.state_dict()
    for idx, pstate in opt["state"].items():
        for key, value in pstate.items():
            tensors[f"optim.{idx}.{key}"] = torch.as_tensor(value).detach().cpu().contiguous()
    tensors["rng.torch"] = torch.get_rng_state()
    tensors.update(extra or {})
    meta = {
        "card": model.card.to_dict(),
        "step": step,
        "param_groups": opt["param_groups"],
        "numpy_rng": rng.bit_generator.state,
        **state,
    }
    _atomic_write(path.with_suffix(".safetensors"), lambda tmp: save_file(tensors, tmp))
    _atomic_write(path.with_suffix(".json"), lambda tmp: Path(tmp).write_text(json.dumps(meta, default=_jsonable), encoding="utf-8"))
    return path.with_suffix(".safetensors")


def _jsonable(obj):
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def load_checkpoint(path: str | os.PathLike) -> tuple[dict, dict]:
    """Read a checkpoint; returns (tensors, meta)."""
    path = Path(path).with_suffix("")
    try:
        tensors = load_file(str(path.with_suffix(".safetensors")))
        meta = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelFileError(f"{path}: not a readable checkpoint ({exc})") from None
    return tensors, meta


def model_state(tensors: dict) -> dict:
    """The model's state dict among a checkpoint's tensors (its ``model.*`` keys, prefix removed)."""
    return {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}


def restore_training_state(tensors: dict, meta: dict, model, optimizer, rng: np.random.Generator) -> int:
    """Put model, optimiser and RNG states back; returns the step to continue from."""
    model.load_state_dict(model_state(tensors))
    opt_state: dict = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, idx, name = key.split(".", 2)
            opt_state.setdefault(int(idx), {})[name] = value
    optimizer.load_state_dict({"state": opt_state, "param_groups": meta["param_groups"]})
    torch.set_rng_state(tensors["rng.torch"])
    rng.bit_generator.state = meta["numpy_rng"]
    return int(meta["step"])


def save_weights(state: dict, path: Path) -> None:
    """Write a bare state dict to ``path`` (safetensors), atomically."""
    _atomic_write(Path(path), lambda tmp: save_file({k: v.contiguous() for k, v in state.items()}, tmp))
