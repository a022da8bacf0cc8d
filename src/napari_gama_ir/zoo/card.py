"""ModelCard: everything needed to rebuild a model and to know what it is for, and the schema (one per card
format) every card is checked against before anything is built from it.

Format 2 (written by :func:`~napari_gama_ir.zoo.store.save_model`) is flat: the training record holds the
last phase's settings, the earlier phases as a list of one short record each (steps, seconds, device,
command), the totals and the time per kind of hardware. Format 1 cards (user models saved earlier) still
load: they are checked against the format-1 schema and converted on read (their nested
``training.previous_phase`` chain flattened, run notes dropped)."""

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
from ..model.context import CONTEXT_AXES, MAX_CONTEXT
from ..model.gama_ir import MEAN_MODES

FORMAT_VERSION = 2
"Card format written by save_model; FORMAT_VERSIONS are the formats read."
FORMAT_VERSIONS = (1, 2)
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
    "Data, noise model, steps, wall time, device, base model, seed, command; earlier phases in ``phases``."
    metrics: dict[str, Any] = field(default_factory=dict)
    "Held-out metrics and what they were measured on; ``metrics['summary']`` is one line of text."
    license: str = "BSD-3-Clause"
    context: dict[str, Any] = field(default_factory=dict)
    "Neighbouring planes the model sees, e.g. {'planes': 2, 'axis': 'Z'} (planes on each side); {} for a 2-D model."

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
        c = self.out_channels if self.context else self.in_channels
        kind = "RGB" if c == 3 else f"{c}-channel" if c > 1 else "gray"
        if self.context:
            kind += f", {self.context['planes']} neighbouring planes on each side along {self.context['axis']}"
        parts = [self.name, f"{self.preset}, {kind}", self.description, psnr]
        return " | ".join(p for p in parts if p)

    def replace(self, **changes: Any) -> "ModelCard":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The card as format 2 data: a nested training record (a fine-tuned model's ``previous_phase``)
        is flattened into ``phases`` and totals (:func:`flatten_card_data`). A 2-D model's card has no
        ``context`` key, as before context models existed."""
        data = dataclasses.asdict(self)
        if not data["context"]:
            del data["context"]
        return flatten_card_data(data)

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
        return cls(**flatten_card_data(data, from_format_1=data.get("format_version", 1) == 1))

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
    "context": (_int(0, MAX_CONTEXT), f"an int 0..{MAX_CONTEXT}"),
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


# Top-level card fields of format 1: (check, what is accepted, required); dict fields get their own schema below.
CARD_SCHEMA_V1: dict[str, tuple[Check, str, bool]] = {
    "name": (lambda v: name_problem(v) is None, f"a model name: {NAME_RULE}", True),
    "preset": (_str, "a str", True),
    "model_args": (lambda v: isinstance(v, dict), "an object of GAMAIR arguments", True),
    "architecture": (lambda v: v == "GAMAIR", "'GAMAIR'", False),
    "format_version": (lambda v: _is_int(v) and v == 1, "1", False),
    "description": (_str, "a str", False),
    "axes_hint": (_str, "a str", False),
    "domain": (_str, "a str", False),
    "normalization": (lambda v: isinstance(v, dict), "an object {'method': 'percentile', 'low': ..., 'high': ...}", False),
    "inference": (lambda v: isinstance(v, dict), "an object with optional 'mean_mode' and 'local_size'", False),
    "training": (lambda v: isinstance(v, dict), "an object", False),
    "metrics": (lambda v: isinstance(v, dict), "an object", False),
    "license": (_str, "a str", False),
}


def _json_flat(v: Any) -> bool:
    return isinstance(v, dict) and all(isinstance(x, (str, int, float, bool)) or x is None for x in v.values())


def _phase(v: Any) -> bool:
    return _json_flat(v) and set(v) <= set(PHASE_KEYS)


PHASE_KEYS = ("steps", "seconds", "device", "precision", "command")
"What format 2 keeps of each earlier training phase."

# Format 2: the same top-level fields (format_version 2), and a flat training record whose known keys are
# typed. Other training and metrics keys stay free (a user may record anything), but nothing nests a
# phase in a phase: earlier phases are the list ``phases``.
CARD_SCHEMA_V2: dict[str, tuple[Check, str, bool]] = {
    **CARD_SCHEMA_V1,
    "format_version": (lambda v: _is_int(v) and v == 2, "2", True),
    "context": (lambda v: isinstance(v, dict), "an object {'planes': k, 'axis': 'Z' or 'T'}, or {}", False),
}

CONTEXT_SCHEMA: dict[str, tuple[Check, str]] = {
    "planes": (_int(1, MAX_CONTEXT), f"an int 1..{MAX_CONTEXT} (planes on each side)"),
    "axis": (lambda v: v in CONTEXT_AXES, " or ".join(map(repr, CONTEXT_AXES))),
}

TRAINING_SCHEMA_V2: dict[str, tuple[Check, str]] = {
    "base_model": (lambda v: v is None or _str(v), "null or a str"),
    "mode": (_str, "a str"),
    "data": (_str, "a str"),
    "steps": (_int(0, 10**9), "an int >= 0"),
    "seconds": (lambda v: _number(v) and v >= 0, "a number >= 0"),
    "total_steps": (_int(0, 10**10), "an int >= 0"),
    "total_seconds": (lambda v: _number(v) and v >= 0, "a number >= 0"),
    "time_by_hardware": (lambda v: _json_flat(v) and all(_number(x) for x in v.values()), "an object {hardware: seconds}"),
    "device": (_str, "a str"),
    "precision": (_str, "a str"),
    "command": (_str, "a str"),
    "phases": (lambda v: isinstance(v, list) and all(_phase(p) for p in v),
               f"a list of flat objects with keys among {list(PHASE_KEYS)}"),
    "previous_phase": (lambda v: False, "nothing: format 2 cards are flat (earlier phases go in 'phases')"),
}

CARD_SCHEMAS = {1: CARD_SCHEMA_V1, 2: CARD_SCHEMA_V2}
"One schema per card format."

# Keys of a format-1 training record that are run notes, not part of what a card states (dropped on reading).
_NOTE_KEYS = ("run_note", "base_note", "weights_note", "hardware")


def _phase_chain(training: dict[str, Any]) -> list[dict[str, Any]]:
    """A training record's phases, oldest first, each as its PHASE_KEYS."""
    prev = training.get("previous_phase")
    chain = _phase_chain(prev) if isinstance(prev, dict) else []
    chain += [dict(p) for p in training.get("phases", []) if isinstance(p, dict)]
    chain.append({k: training[k] for k in PHASE_KEYS if k in training})
    return chain


def flatten_card_data(data: dict[str, Any], from_format_1: bool = False) -> dict[str, Any]:
    """Card data as format 2: ``training.previous_phase`` chains (format 1, or a fine-tuned model's card
    before it is saved) become ``phases`` plus ``total_steps``, ``total_seconds`` and ``time_by_hardware``,
    and the earlier phases' one-line results (``metrics.earlier_summaries``) are dropped; ``from_format_1``
    also drops format 1's run notes (``run_note``, ``base_note``, ``weights_note``, ``hardware``).
    A card that is already flat comes back equal, with ``format_version`` 2."""
    data = dict(data)
    data["format_version"] = 2
    training = data.get("training")
    notes = _NOTE_KEYS if from_format_1 else ()
    if isinstance(training, dict) and ("previous_phase" in training or any(k in training for k in notes)):
        flat = {k: v for k, v in training.items()
                if k not in ("previous_phase", "phases", "total_steps", "total_seconds", "time_by_hardware", *notes)}  # fmt: skip
        chain = _phase_chain(training)
        if len(chain) > 1:
            by_hardware: dict[str, float] = {}
            for p in chain:
                if _number(p.get("seconds")):
                    key = str(p.get("device", "unknown"))
                    by_hardware[key] = round(by_hardware.get(key, 0.0) + p["seconds"], 1)
            flat["phases"] = chain[:-1]
            flat["total_steps"] = sum(p["steps"] for p in chain if _is_int(p.get("steps")))
            flat["total_seconds"] = round(sum(by_hardware.values()), 1)
            flat["time_by_hardware"] = by_hardware
        data["training"] = flat
    metrics = data.get("metrics")
    if isinstance(metrics, dict):
        drop = [k for k in metrics if k == "earlier_summaries" or (k.startswith("base_") and k.endswith("summary"))]
        if drop:
            data["metrics"] = {k: v for k, v in metrics.items() if k not in drop}
    return data


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


def _check_known(source: str, prefix: str, data: dict, schema: dict[str, tuple]) -> None:
    """Like _check_object, for an object whose other keys are free."""
    for key, (check, accepted) in schema.items():
        if key in data and not check(data[key]):
            raise _fail(source, f"{prefix}.{key}", data[key], accepted)


def validate_card_data(data: Any, source: str = "<dict>") -> None:
    """Check a card's data (as read from JSON) against the schema; raise :class:`ModelFileError` naming
    ``source``, the field and what is accepted. The schema is the one of the card's ``format_version``
    (1 when absent). Nothing is built: the network's size is computed."""
    if not isinstance(data, dict):
        raise ModelFileError(f"{source}: a model card must be a JSON object, got {type(data).__name__}")
    version = data.get("format_version", 1)  # cards written before format_version existed are format 1
    if not _is_int(version) or version not in CARD_SCHEMAS:
        raise ModelFileError(
            f"{source}: model card format_version {version!r} is not supported; accepted: {' or '.join(map(str, FORMAT_VERSIONS))}"
        )
    schema = CARD_SCHEMAS[version]
    unknown = sorted(set(data) - set(schema))
    if unknown:
        raise ModelFileError(f"{source}: unknown model card keys {unknown}; accepted: {sorted(schema)}")
    missing = [k for k, (_, _, required) in schema.items() if required and k not in data]
    if missing:
        raise ModelFileError(f"{source}: model card lacks {missing}")
    if "architecture" in data and data["architecture"] != "GAMAIR":
        raise ModelFileError(f"{source}: architecture {data['architecture']!r} is not supported; accepted: 'GAMAIR'")
    _check_object(source, "", data, schema)
    if version == 2:
        _check_known(source, "training", data.get("training", {}), TRAINING_SCHEMA_V2)
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
    _check_context(source, data.get("context", {}), args)
    summary = data.get("metrics", {}).get("summary", "")
    if not isinstance(summary, str):
        raise _fail(source, "metrics.summary", summary, "a str")


def _check_context(source: str, context: dict, args: dict) -> None:
    """A context record is complete and agrees with the network: ``model_args.context`` planes on each
    side, ``in_channels == out_channels * (2 * planes + 1)``."""
    _check_object(source, "context", context, CONTEXT_SCHEMA)
    planes = context.get("planes", 0)
    if context and set(context) != set(CONTEXT_SCHEMA):
        raise _fail(source, "context", context, "an object with both 'planes' and 'axis', or {}")
    if args.get("context", 0) != planes:
        raise _fail(source, "model_args.context", args.get("context", 0), f"{planes}, the card's context planes")
    cin, cout = args.get("in_channels", 1), args.get("out_channels") or args.get("in_channels", 1)
    if planes and cin != cout * (2 * planes + 1):
        raise _fail(source, "model_args.in_channels", cin, f"out_channels x {2 * planes + 1} = {cout * (2 * planes + 1)} (context {planes})")


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
