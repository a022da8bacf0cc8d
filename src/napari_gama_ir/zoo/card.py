"""ModelCard: everything needed to rebuild a model and to know what it is for, and the one schema every
card is checked against before anything is built from it."""

from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..errors import InvalidInputError, ModelFileError
from ..io.normalize import DEFAULT_PERCENTILES
from ..model.gama_ir import MEAN_MODES

FORMAT_VERSION = 1
DEFAULT_NORMALIZATION = {"method": "percentile", "low": DEFAULT_PERCENTILES[0], "high": DEFAULT_PERCENTILES[1]}
MAX_PARAMETERS = 100_000_000
"Largest network a card may describe (400 MB of float32 weights; the 'L' preset has 47.5 M)."

NAME_RULE = "letters, digits, '-', '_' and '.'; not empty, at most 128 characters, not starting with '.', no '..'"
_NAME_RE = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}")


def name_problem(name: object) -> str | None:
    """Why ``name`` is not a model name (None when it is one). A model's name is its file stem."""
    if not isinstance(name, str):
        return f"a model name must be a str, got {type(name).__name__}"
    if not _NAME_RE.fullmatch(name) or ".." in name:
        return f"model name {name!r} is not accepted: use {NAME_RULE}"
    return None


def check_name(name: object) -> str:
    """Return ``name`` if it is a model name, else raise :class:`InvalidInputError` naming it and the rule."""
    problem = name_problem(name)
    if problem:
        raise InvalidInputError(problem)
    return name  # type: ignore[return-value]


@dataclass(frozen=True)
class ModelCard:
    """What a model is: embedded in its safetensors file (and copied to ``NAME.json`` beside it)."""

    name: str
    "Model name, also the file stem (letters, digits, '-', '_', '.')."
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
    "Held-out metrics and what they were measured on; ``metrics['summary']`` is one line of text."
    license: str = "BSD-3-Clause"

    @property
    def in_channels(self) -> int:
        return int(self.model_args.get("in_channels", 1))

    @property
    def out_channels(self) -> int:
        return int(self.model_args.get("out_channels") or self.in_channels)

    @property
    def parameter_count(self) -> int:
        """Parameters of the network ``model_args`` describe (computed, nothing is built)."""
        return parameter_count(self.model_args)

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
        """Check ``data`` against the card schema (:func:`validate_card_data`) and build the card.

        Raises
        ------
        ModelFileError
            Naming ``source``, the field, and what is accepted.
        """
        validate_card_data(data, source)
        return cls(**data)

    @classmethod
    def from_json(cls, path: str | Path) -> "ModelCard":
        """Read and check a card from a JSON file (the card of a model without an embedded one)."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ModelFileError(
                f"{path}: model card not found (a model is NAME.safetensors with its card embedded, or NAME.safetensors "
                "plus NAME.json)"
            ) from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ModelFileError(f"{path}: model card is not valid JSON ({exc})") from None
        except OSError as exc:
            raise ModelFileError(f"{path}: model card cannot be read ({exc})") from None
        return cls.from_dict(data, source=str(path))


# --- the schema -------------------------------------------------------------------------------------

Check = Callable[[Any], bool]


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _int(lo: int, hi: int, odd: bool = False, even: bool = False) -> Check:
    return lambda v: _is_int(v) and lo <= v <= hi and (not odd or v % 2 == 1) and (not even or v % 2 == 0)


def _block_list(v: Any) -> bool:
    return isinstance(v, (list, tuple)) and len(v) <= MAX_LEVELS and all(_is_int(n) and 0 <= n <= MAX_BLOCKS for n in v)


def _number(v: Any) -> bool:
    return (_is_int(v) or isinstance(v, float)) and math.isfinite(v)


MAX_LEVELS, MAX_BLOCKS, MAX_CHANNELS = 8, 64, 16

# GAMAIR's keyword arguments: (check, what is accepted). Every key is optional (GAMAIR has defaults).
MODEL_ARGS_SCHEMA: dict[str, tuple[Check, str]] = {
    "in_channels": (_int(1, MAX_CHANNELS), f"an int 1..{MAX_CHANNELS}"),
    "out_channels": (lambda v: v is None or _int(1, MAX_CHANNELS)(v), f"null or an int 1..{MAX_CHANNELS}"),
    "width": (_int(2, 256, even=True), "an even int 2..256"),
    "enc_blocks": (_block_list, f"a list of at most {MAX_LEVELS} ints 0..{MAX_BLOCKS} (one per level)"),
    "middle_blocks": (_int(0, MAX_BLOCKS), f"an int 0..{MAX_BLOCKS}"),
    "dec_blocks": (_block_list, f"a list of at most {MAX_LEVELS} ints 0..{MAX_BLOCKS}, as long as enc_blocks"),
    "expand": (_int(1, 8), "an int 1..8"),
    "kernel_size": (_int(1, 31, odd=True), "an odd int 1..31"),
    "use_gama": (lambda v: isinstance(v, bool), "true or false"),
    "mean_mode": (lambda v: v in MEAN_MODES, " or ".join(map(repr, MEAN_MODES))),
    "local_size": (_int(1, 8192), "an int 1..8192"),
}

NORMALIZATION_SCHEMA: dict[str, tuple[Check, str]] = {
    "method": (lambda v: v == "percentile", "'percentile'"),
    "low": (lambda v: _number(v) and 0 <= v <= 100, "a number 0..100, below high"),
    "high": (lambda v: _number(v) and 0 <= v <= 100, "a number 0..100, above low"),
}

INFERENCE_SCHEMA: dict[str, tuple[Check, str]] = {
    "mean_mode": (lambda v: v in MEAN_MODES, " or ".join(map(repr, MEAN_MODES))),
    "local_size": (_int(1, 8192), "an int 1..8192"),
}


def _str(v: Any) -> bool:
    return isinstance(v, str)


# Top-level card fields: (check, what is accepted, required); dict fields get their own schema below.
CARD_SCHEMA: dict[str, tuple[Check, str, bool]] = {
    "name": (lambda v: name_problem(v) is None, f"a model name: {NAME_RULE}", True),
    "preset": (_str, "a str", True),
    "model_args": (lambda v: isinstance(v, dict), "an object of GAMAIR arguments", True),
    "architecture": (lambda v: v == "GAMAIR", "'GAMAIR'", False),
    "format_version": (lambda v: _is_int(v) and v == FORMAT_VERSION, f"{FORMAT_VERSION}", False),
    "description": (_str, "a str", False),
    "axes_hint": (_str, "a str", False),
    "domain": (_str, "a str", False),
    "normalization": (lambda v: isinstance(v, dict), "an object {'method': 'percentile', 'low': ..., 'high': ...}", False),
    "inference": (lambda v: isinstance(v, dict), "an object with optional 'mean_mode' and 'local_size'", False),
    "training": (lambda v: isinstance(v, dict), "an object", False),
    "metrics": (lambda v: isinstance(v, dict), "an object", False),
    "license": (_str, "a str", False),
}


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _fail(source: str, where: str, value: Any, accepted: str) -> ModelFileError:
    return ModelFileError(f"{source}: model card field {where} is {_show(value)}; accepted: {accepted}")


def _check_object(source: str, prefix: str, data: dict, schema: dict[str, tuple]) -> None:
    unknown = sorted(k for k in data if k not in schema)
    if unknown:
        raise ModelFileError(f"{source}: unknown keys {unknown} in model card field {prefix!r}; accepted: {sorted(schema)}")
    for key, (check, accepted, *_) in schema.items():
        if key in data and not check(data[key]):
            raise _fail(source, f"{prefix}.{key}" if prefix else repr(key), data[key], accepted)


def validate_card_data(data: Any, source: str = "<dict>") -> None:
    """Check a card's data (as read from JSON) against the schema; raise :class:`ModelFileError` naming
    ``source``, the field and what is accepted. Nothing is built: the network's size is computed."""
    if not isinstance(data, dict):
        raise ModelFileError(f"{source}: a model card must be a JSON object, got {type(data).__name__}")
    unknown = sorted(set(data) - set(CARD_SCHEMA))
    if unknown:
        raise ModelFileError(f"{source}: unknown model card keys {unknown}; accepted: {sorted(CARD_SCHEMA)}")
    if "format_version" in data and data["format_version"] != FORMAT_VERSION:
        raise ModelFileError(f"{source}: model card format_version {data['format_version']!r} is not supported; accepted: {FORMAT_VERSION}")
    missing = [k for k, (_, _, required) in CARD_SCHEMA.items() if required and k not in data]
    if missing:
        raise ModelFileError(f"{source}: model card lacks {missing}")
    if "architecture" in data and data["architecture"] != "GAMAIR":
        raise ModelFileError(f"{source}: architecture {data['architecture']!r} is not supported; accepted: 'GAMAIR'")
    _check_object(source, "", data, CARD_SCHEMA)
    args = data["model_args"]
    unknown = sorted(k for k in args if k not in MODEL_ARGS_SCHEMA)
    if unknown:
        raise ModelFileError(
            f"{source}: model_args {unknown} do not build a GAMAIR; accepted keys: {sorted(MODEL_ARGS_SCHEMA)}"
        )
    _check_object(source, "model_args", args, MODEL_ARGS_SCHEMA)
    enc, dec = args.get("enc_blocks", (2, 2, 2, 2)), args.get("dec_blocks", (2, 2, 2, 2))
    if len(enc) != len(dec):
        raise _fail(source, "model_args.dec_blocks", dec, f"a list as long as enc_blocks ({len(enc)} levels)")
    count = parameter_count(args)
    if count > MAX_PARAMETERS:
        raise ModelFileError(
            f"{source}: model card field 'model_args' describes a network of {count:,} parameters; accepted: at most {MAX_PARAMETERS:,}"
        )
    norm = data.get("normalization", DEFAULT_NORMALIZATION)
    _check_object(source, "normalization", norm, NORMALIZATION_SCHEMA)
    low, high = norm.get("low", DEFAULT_NORMALIZATION["low"]), norm.get("high", DEFAULT_NORMALIZATION["high"])
    if not low < high:
        raise _fail(source, "normalization.low", low, f"a number 0..100 below high ({high})")
    _check_object(source, "inference", data.get("inference", {}), INFERENCE_SCHEMA)
    summary = data.get("metrics", {}).get("summary", "")
    if not isinstance(summary, str):
        raise _fail(source, "metrics.summary", summary, "a str")


def _block_parameters(c: int, expand: int, kernel_size: int, use_gama: bool) -> int:
    h = c * expand
    convs = 2 * (c * h + h) + (h * 9 + h) + 2 * ((h // 2) * c + c)  # conv1, conv4; depthwise conv2; conv3, conv5
    gama = 3 * (kernel_size * kernel_size + 1) if use_gama else 0
    return convs + gama + 2 * 2 * c + 2 * c  # two LayerNorms, beta and gamma


def parameter_count(model_args: dict[str, Any]) -> int:
    """Parameters of ``GAMAIR(**model_args)``, by arithmetic (arguments already checked by the schema)."""
    cin = model_args.get("in_channels", 1)
    cout = model_args.get("out_channels") or cin
    width = model_args.get("width", 42)
    enc, dec = model_args.get("enc_blocks", (2, 2, 2, 2)), model_args.get("dec_blocks", (2, 2, 2, 2))
    block = {"expand": model_args.get("expand", 2), "kernel_size": model_args.get("kernel_size", 7),
             "use_gama": model_args.get("use_gama", True)}  # fmt: skip
    total = cin * width * 9 + width + width * cout * 9 + cout  # intro, ending
    ch = width
    for n in enc:
        total += n * _block_parameters(ch, **block) + ch * (ch // 2) + ch // 2  # blocks, down
        ch *= 2
    total += model_args.get("middle_blocks", 2) * _block_parameters(ch, **block)
    for n in reversed(list(dec)):
        total += ch * ch * 2 + ch * 2  # up
        ch //= 2
        total += n * _block_parameters(ch, **block)
    return total
