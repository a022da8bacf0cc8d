"""ModelCard: everything needed to rebuild a model and to know what it is for (``<name>.json``)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ModelFileError

FORMAT_VERSION = 1
DEFAULT_NORMALIZATION = {"method": "percentile", "low": 0.5, "high": 99.9}


@dataclass(frozen=True)
class ModelCard:
    """The JSON card saved beside a model's safetensors weights."""

    name: str
    "Model name (lowercase, hyphenated), also the file stem."
    preset: str
    "Architecture preset the model was built from."
    model_args: dict[str, Any]
    "Keyword arguments of GAMAIR, enough to rebuild the network."
    architecture: str = "GAMAIR"
    format_version: int = FORMAT_VERSION
    description: str = ""
    "One line: what the model restores."
    axes_hint: str = "YX"
    "Axes of one sample the model expects: 'YX' (grayscale) or 'YXC' (RGB)."
    domain: str = "general"
    "What data it fits: 'photo', 'fluorescence' or 'general'."
    normalization: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_NORMALIZATION))
    "How restore() and finetune() scale data to the network's range (shared by both)."
    inference: dict[str, Any] = field(default_factory=dict)
    "Inference settings the model was validated with, e.g. {'mean_mode': 'local', 'local_size': 192}."
    training: dict[str, Any] = field(default_factory=dict)
    "Data, noise model, steps, wall time, device, base model, seed, command."
    metrics: dict[str, Any] = field(default_factory=dict)
    "Held-out metrics and what they were measured on."
    license: str = "BSD-3-Clause"

    @property
    def in_channels(self) -> int:
        return int(self.model_args.get("in_channels", 1))

    @property
    def out_channels(self) -> int:
        return int(self.model_args.get("out_channels") or self.in_channels)

    def summary(self) -> str:
        """One line for pickers and listings."""
        psnr = self.metrics.get("summary", "")
        kind = "RGB" if self.in_channels == 3 else f"{self.in_channels}-channel" if self.in_channels > 1 else "gray"
        parts = [self.name, f"{self.preset}, {kind}", self.description, psnr]
        return " | ".join(p for p in parts if p)

    def replace(self, **changes: Any) -> "ModelCard":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "<dict>") -> "ModelCard":
        if not isinstance(data, dict):
            raise ModelFileError(f"{source}: a model card must be a JSON object, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ModelFileError(f"{source}: unknown model card keys {unknown}; accepted: {sorted(known)}")
        version = data.get("format_version", FORMAT_VERSION)
        if version != FORMAT_VERSION:
            raise ModelFileError(f"{source}: model card format_version {version!r} is not supported (this is {FORMAT_VERSION})")
        missing = [k for k in ("name", "preset", "model_args") if k not in data]
        if missing:
            raise ModelFileError(f"{source}: model card lacks {missing}")
        if data.get("architecture", "GAMAIR") != "GAMAIR":
            raise ModelFileError(f"{source}: architecture {data['architecture']!r} is not supported; accepted: 'GAMAIR'")
        return cls(**data)

    @classmethod
    def from_json(cls, path: str | Path) -> "ModelCard":
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ModelFileError(f"{path}: model card not found (a model is NAME.safetensors plus NAME.json)") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ModelFileError(f"{path}: model card is not valid JSON ({exc})") from None
        return cls.from_dict(data, source=str(path))
