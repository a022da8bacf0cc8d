"""Model files: ``NAME.safetensors`` holds the weights and, in its header metadata, the ModelCard; ``NAME.json``
beside it is a human-readable copy of that card. Nothing is ever unpickled.

One file and one ``os.replace`` commit a save, so an interrupted save leaves either the old model or the new
one, never new weights with an old card. The embedded card is authoritative; a missing or different
``NAME.json`` beside it is a stale copy (from a save interrupted between the two files) and is ignored. A
safetensors file without an embedded card (the shipped models, older user models) takes its card from
``NAME.json``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
import weakref
from importlib import resources
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes
from torch import nn

from ..errors import InvalidInputError, ModelFileError
from ..model.gama_ir import GAMAIR
from .card import NAME_RULE, ModelCard, check_name, name_problem

USER_MODELS_ENV = "NAPARI_GAMA_IR_MODELS"
CARD_METADATA_KEY = "gama_ir_card"
"Key of the card's JSON in a model file's safetensors header metadata."
_listeners: list[weakref.ref] = []  # weak: a closed widget that forgot to unsubscribe is simply dropped
_warned: set[tuple] = set()  # broken files already reported by list_models (path, mtime, size, problem)
_READ_ERRORS = (SafetensorError, OSError, ValueError, RuntimeError, TypeError)
log = logging.getLogger(__name__)


def add_models_listener(fn) -> None:
    """Call ``fn(path)`` after every :func:`save_model` (e.g. to refresh a model list).

    ``fn`` is held weakly (bound methods included) and runs in the thread that saved; an exception
    in it is logged, never raised into ``save_model``.
    """
    ref = weakref.WeakMethod(fn) if hasattr(fn, "__self__") else weakref.ref(fn)
    if ref not in _listeners:
        _listeners.append(ref)


def remove_models_listener(fn) -> None:
    """Stop calling ``fn`` after saves (no error if it was not registered)."""
    ref = weakref.WeakMethod(fn) if hasattr(fn, "__self__") else weakref.ref(fn)
    _listeners[:] = [r for r in _listeners if r() is not None and r != ref]


def _notify_models_changed(path: Path) -> None:
    live = [fn for fn in (r() for r in _listeners) if fn is not None]
    _listeners[:] = [r for r in _listeners if r() is not None]
    for fn in live:
        try:
            fn(path)
        except Exception:  # noqa: BLE001 - a listener must not make a finished save look failed
            log.warning("model listener %r failed", fn, exc_info=True)


def user_models_dir() -> Path:
    """Folder of the user's own models: ``$NAPARI_GAMA_IR_MODELS`` or the platform's user data folder."""
    env = os.environ.get(USER_MODELS_ENV)
    if env:
        return Path(env).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("napari-gama-ir", appauthor=False)) / "models"


def shipped_models_dir() -> Path:
    """Folder of the models that ship with the package (the repository's ``weights/``)."""
    try:
        path = Path(str(resources.files("napari_gama_ir.weights")))
        if path.is_dir():
            return path
    except ModuleNotFoundError:
        pass
    return Path(__file__).resolve().parents[3] / "weights"  # a source checkout without install


def _model_files(folder: Path) -> dict[str, Path]:
    """Every visible ``*.safetensors`` file of ``folder`` by stem; hidden files (temporary ones included)
    are not models. Whether a file holds a usable model is for :func:`read_card` to say."""
    if not folder.is_dir():
        return {}
    return {p.stem: p for p in sorted(folder.glob("*.safetensors")) if not p.name.startswith(".") and p.is_file()}


def resolve_model_path(name_or_path: str | os.PathLike) -> Path:
    """Find the ``.safetensors`` file for a shipped name, a user model name or a path.

    A name (no folder, no ``.safetensors``/``.json`` suffix) only resolves to a file in the user or shipped
    model folder whose stem is that name.
    """
    text = os.fspath(name_or_path) if isinstance(name_or_path, os.PathLike) else str(name_or_path)
    path = Path(text).expanduser()
    if path.suffix in (".safetensors", ".json") or "/" in text or os.sep in text or path.is_file():
        if path.name in ("", ".", ".."):
            raise ModelFileError(f"{path}: not a model file (give NAME.safetensors)")
        path = path.with_suffix(".safetensors") if path.suffix in ("", ".json") else path
        if not path.is_file():
            raise ModelFileError(f"{path}: model file not found")
        return path
    problem = name_problem(text)
    if problem:
        raise InvalidInputError(f"unknown model: {problem}")
    for folder in (user_models_dir(), shipped_models_dir()):
        found = _model_files(folder).get(text)
        if found:
            return found
    known = sorted(set(_model_files(shipped_models_dir())) | set(_model_files(user_models_dir())))
    raise InvalidInputError(f"unknown model {text!r}; accepted: {', '.join(known) or '(none installed)'} or a path to NAME.safetensors")


def _header_metadata(weights: Path) -> dict[str, str]:
    """The safetensors header metadata of ``weights`` (only the header is read)."""
    try:
        with safe_open(str(weights), framework="pt") as f:
            return dict(f.metadata() or {})
    except FileNotFoundError:
        raise ModelFileError(f"{weights}: model file not found") from None
    except _READ_ERRORS as exc:
        raise ModelFileError(f"{weights}: not a readable safetensors file ({exc})") from None


def read_card(weights: str | os.PathLike) -> ModelCard:
    """The checked card of the model file ``weights``: the card embedded in it, else ``NAME.json`` beside it.

    The card's name is the file's stem, whatever the card says.

    Raises
    ------
    ModelFileError
        An unreadable file, a stem that is not a model name, a missing card, or a card that breaks the
        schema; the message names the file.
    """
    weights = Path(weights)
    problem = name_problem(weights.stem)
    if problem:
        raise ModelFileError(f"{weights}: the file name is not a model name ({problem}); rename the file")
    text = _header_metadata(weights).get(CARD_METADATA_KEY)
    if text is None:  # shipped models and older user models: the card is NAME.json
        source = weights.with_suffix(".json")
        try:
            data = json.loads(source.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ModelFileError(
                f"{source}: model card not found ({weights.name} has no embedded card and there is no {source.name})"
            ) from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ModelFileError(f"{source}: model card is not valid JSON ({exc})") from None
        except OSError as exc:
            raise ModelFileError(f"{source}: model card cannot be read ({exc})") from None
    else:
        source = f"{weights} (embedded card)"
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ModelFileError(f"{source}: model card is not valid JSON ({exc})") from None
    if isinstance(data, dict):
        data = {**data, "name": weights.stem}  # the file's stem is the model's name
    return ModelCard.from_dict(data, source=str(source))


def _expected_shapes(model_args: dict) -> dict[str, tuple[int, ...]]:
    """Tensor names and shapes of ``GAMAIR(**model_args)``, built on the meta device (nothing allocated)."""
    with torch.device("meta"):
        net = GAMAIR(**model_args)
    return {k: tuple(v.shape) for k, v in net.state_dict().items()}


def _read_weights(weights: Path, expected: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    """The tensors of ``weights``: names and shapes checked against ``expected`` from the header before any
    tensor is read, then every floating tensor checked for NaN and inf."""
    try:
        with safe_open(str(weights), framework="pt", device="cpu") as f:
            keys = set(f.keys())
            for key, shape in expected.items():
                if key not in keys:
                    raise ModelFileError(f"{weights}: missing tensor {key!r} that the card's model_args need")
                got = tuple(f.get_slice(key).get_shape())
                if got != shape:
                    raise ModelFileError(f"{weights}: tensor {key!r} has shape {got}, the card's model_args need {shape}")
            extra = sorted(keys - set(expected))
            if extra:
                raise ModelFileError(f"{weights}: unexpected tensor {extra[0]!r} not in the card's architecture")
            state = {}
            for key in expected:
                tensor = f.get_tensor(key)
                if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                    raise ModelFileError(f"{weights}: tensor {key!r} holds NaN or inf; the weights are unusable")
                state[key] = tensor
            return state
    except ModelFileError:
        raise
    except FileNotFoundError:
        raise ModelFileError(f"{weights}: model file not found") from None
    except _READ_ERRORS as exc:
        raise ModelFileError(f"{weights}: not a readable safetensors file ({exc})") from None


def load_model(name_or_path: str | os.PathLike, device: str | torch.device = "cpu") -> nn.Module:
    """Load a model by shipped name, user model name, path to ``NAME.safetensors``, or a BioImage.IO package
    exported by :func:`~napari_gama_ir.zoo.bioimageio.export_bioimageio` (``.zip``, ``rdf.yaml`` or its folder).

    Parameters
    ----------
    name_or_path : str or PathLike
        "photo-gray", a user model's name, or a path (with or without suffix).
    device : str or torch.device
        Where to put the weights.

    Returns
    -------
    GAMAIR
        In eval mode, with ``net.card`` (a :class:`ModelCard`).

    Raises
    ------
    InvalidInputError
        Unknown name.
    ModelFileError
        Missing, corrupted, truncated or mismatching files, a card that breaks the schema, weights with NaN
        or inf; the message names the file.
    """
    from .bioimageio import is_package_path, load_package  # BioImage.IO packages (no bioimageio.* needed)

    if is_package_path(name_or_path):  # NAME.zip, rdf.yaml or a package folder exported by export_bioimageio
        return load_package(name_or_path, device)
    weights = resolve_model_path(name_or_path)
    card = read_card(weights)  # checked against the schema (sizes included) before anything is built
    state = _read_weights(weights, _expected_shapes(card.model_args))
    net = GAMAIR(**card.model_args)
    net.load_state_dict(state)
    net.eval().to(device)
    net.card = card
    return net


def model_target(path: str | os.PathLike) -> Path:
    """The ``NAME.safetensors`` that ``save_model(net, path)`` writes (a bare name: in :func:`user_models_dir`);
    a bad name is an :class:`InvalidInputError`."""
    target = _save_target(path)
    return target.with_name(target.name + ".safetensors")


def _save_target(path: str | os.PathLike) -> Path:
    """``path`` as a model path without suffix; a bare name goes into :func:`user_models_dir`."""
    text = os.fspath(path)
    if not isinstance(text, str) or not text:
        raise InvalidInputError(f"model name {text!r} is not accepted: use {NAME_RULE}")
    if ".." in re.split(r"[\\/]", text):
        raise InvalidInputError(f"model path {text!r} is not accepted: no '..' components; give a name ({NAME_RULE}) or a path without '..'")
    target = Path(text).expanduser()
    if "/" not in text and os.sep not in text:  # a bare name: the user model folder
        target = user_models_dir() / target
    if target.suffix in (".safetensors", ".json"):
        target = target.with_suffix("")
    check_name(target.name)
    return target


def _card_json(card: ModelCard, weights: Path) -> str:
    """The card as JSON, checked against the schema exactly as it will be read back."""
    try:
        text = card.to_json()
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"{weights}: the model card holds a value that JSON cannot store ({exc})") from None
    ModelCard.from_dict(json.loads(text), source=f"{weights} (card to save)")
    return text


def save_model(model: nn.Module, path: str | os.PathLike, card: ModelCard | None = None, *, overwrite: bool = False) -> Path:
    """Write ``PATH.safetensors`` (weights with the card embedded) atomically, then ``PATH.json``, a copy of the card.

    Parameters
    ----------
    model : GAMAIR
        The network; its ``card`` attribute is saved unless ``card`` is given.
    path : str or PathLike
        A model name (letters, digits, '-', '_', '.'), which goes into :func:`user_models_dir`, or a path
        with or without suffix whose stem is such a name.
    card : ModelCard, optional
        Card to save instead of ``model.card``; its name is set to the file stem.
    overwrite : bool
        Replace an existing ``PATH.safetensors``; without it an existing model is an error.

    Returns
    -------
    Path
        The ``.safetensors`` path.

    Raises
    ------
    InvalidInputError
        No card, a bad name, an existing model without ``overwrite=True``, weights that do not match the
        card's ``model_args`` or hold NaN or inf.
    ModelFileError
        A card that breaks the schema.
    """
    card = card or getattr(model, "card", None)
    if card is None:
        raise InvalidInputError("the model has no card: build it with build_model() or load_model(), or pass card=")
    target = _save_target(path)
    stem = target.name
    weights, card_path = target.with_name(stem + ".safetensors"), target.with_name(stem + ".json")
    if weights.exists() and not overwrite:
        raise InvalidInputError(f"{weights} already exists; pass overwrite=True to replace it, or choose another name")
    card = card.replace(name=stem)
    text = _card_json(card, weights)
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    _check_state(state, card, weights)
    weights.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(weights, lambda tmp: _write_safetensors(state, tmp, {"format": "pt", CARD_METADATA_KEY: text}))
    _write_json_copy(text, card_path)
    model.card = card
    _notify_models_changed(weights)
    return weights


def _write_safetensors(state: dict[str, torch.Tensor], path: str, metadata: dict[str, str]) -> None:
    """Write ``state`` to ``path`` (our temporary file) ourselves: safetensors' ``save_file`` would write
    through a temporary file of its own, which a killed process would leave behind."""
    Path(path).write_bytes(safetensors_bytes(state, metadata=metadata))


def _check_state(state: dict[str, torch.Tensor], card: ModelCard, weights: Path) -> None:
    """Refuse to write a model that :func:`load_model` would refuse."""
    expected = _expected_shapes(card.model_args)
    got = {k: tuple(v.shape) for k, v in state.items()}
    if got != expected:
        diff = sorted(set(got) ^ set(expected)) or sorted(k for k in got if got[k] != expected[k])
        raise InvalidInputError(f"{weights}: the model's tensors do not match its card's model_args (first difference: {diff[0]!r})")
    for key, tensor in state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise InvalidInputError(f"{weights}: tensor {key!r} holds NaN or inf; such weights are not saved")


def save_card(card: ModelCard, name_or_path: str | os.PathLike) -> Path:
    """Replace the card of an existing model atomically, leaving its tensors as they are (e.g. to record new
    held-out metrics). A model with an embedded card is rewritten with the new card (temporary file, then
    rename) and its ``NAME.json`` copy follows; a model without one gets a new ``NAME.json``. Returns the
    JSON card's path."""
    weights = resolve_model_path(name_or_path)
    card = card.replace(name=weights.stem)
    text = _card_json(card, weights)
    card_path = weights.with_suffix(".json")
    metadata = _header_metadata(weights)
    try:
        state = load_file(str(weights), device="cpu")
    except _READ_ERRORS as exc:
        raise ModelFileError(f"{weights}: not a readable safetensors file ({exc})") from None
    if {k: tuple(v.shape) for k, v in state.items()} != _expected_shapes(card.model_args):
        raise InvalidInputError(f"{weights}: the new card's model_args do not match the file's tensors")
    if CARD_METADATA_KEY in metadata:
        metadata[CARD_METADATA_KEY] = text
        _atomic_write(weights, lambda tmp: _write_safetensors(state, tmp, metadata))
        _write_json_copy(text, card_path)
    else:
        _atomic_write(card_path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    _notify_models_changed(weights)
    return card_path


def _write_json_copy(text: str, card_path: Path) -> None:
    """Write the human-readable copy of an embedded card; the model is already saved, so a failure here is
    logged, not raised (a missing or stale copy is ignored when loading)."""
    try:
        _atomic_write(card_path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    except OSError as exc:
        log.warning("%s: the model is saved, but its JSON card copy could not be written (%s)", card_path, exc)


def _read_umask() -> int:
    mask = os.umask(0o022)  # os.umask can only be read by setting it: done once, at import
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def _atomic_write(target: Path, write) -> None:
    """Write ``target`` through a hidden temporary file in its folder, flushed to disk, then renamed over it.
    The temporary file is removed on any exception."""
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes owner-only files; a model file is an ordinary file
        with open(tmp, "r+b") as fh:  # r+: Windows fsyncs only handles open for writing
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_folder(target.parent)


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # e.g. Windows, where folders cannot be opened
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def list_models() -> list[ModelCard]:
    """Cards of every shipped and user model (user models shadow shipped ones of the same name).

    A broken file is skipped with one logged warning naming it and the problem (once per file version);
    the other models are listed as usual.
    """
    found: dict[str, ModelCard] = {}
    for folder in (shipped_models_dir(), user_models_dir()):
        for name, weights in _model_files(folder).items():
            try:
                found[name] = read_card(weights)
            except ModelFileError as exc:
                found.pop(name, None)  # load_model(name) finds this broken file, not a shadowed shipped one
                _warn_broken(weights, exc)
    return list(found.values())


def _warn_broken(weights: Path, exc: ModelFileError) -> None:
    problem = " ".join(str(exc).split())  # one line
    try:
        st = weights.stat()
        key = (str(weights), st.st_mtime_ns, st.st_size, problem)
    except OSError:
        key = (str(weights), None, None, problem)
    if key not in _warned:
        _warned.add(key)
        where = "" if problem.startswith(str(weights)) else f"{weights}: "
        log.warning("skipped a broken model file: %s%s", where, problem)
