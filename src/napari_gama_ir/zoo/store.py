"""Model files: ``NAME.safetensors`` (weights) + ``NAME.json`` (ModelCard). Nothing is ever unpickled."""

from __future__ import annotations

import logging
import os
import tempfile
import weakref
from importlib import resources
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from ..errors import InvalidInputError, ModelFileError
from ..model.gama_ir import GAMAIR
from .card import ModelCard

USER_MODELS_ENV = "NAPARI_GAMA_IR_MODELS"
_listeners: list[weakref.ref] = []  # weak: a closed widget that forgot to unsubscribe is simply dropped
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
    if not folder.is_dir():
        return {}
    return {p.stem: p for p in sorted(folder.glob("*.safetensors")) if p.with_suffix(".json").exists()}


def resolve_model_path(name_or_path: str | os.PathLike) -> Path:
    """Find the ``.safetensors`` file for a shipped name, a user model name or a path."""
    text = str(name_or_path)
    path = Path(text).expanduser()
    if path.suffix in (".safetensors", ".json") or os.sep in text or path.exists():
        path = path.with_suffix(".safetensors") if path.suffix in ("", ".json") else path
        if not path.exists():
            raise ModelFileError(f"{path}: model file not found")
        return path
    for folder in (user_models_dir(), shipped_models_dir()):
        found = _model_files(folder).get(text)
        if found:
            return found
    known = sorted(set(_model_files(shipped_models_dir())) | set(_model_files(user_models_dir())))
    raise InvalidInputError(f"unknown model {text!r}; accepted: {', '.join(known) or '(none installed)'} or a path to NAME.safetensors")


def load_model(name_or_path: str | os.PathLike, device: str | torch.device = "cpu") -> nn.Module:
    """Load a model by shipped name, user model name, or path to ``NAME.safetensors``.

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
        Missing, corrupted, truncated, or mismatching files; the message names the file.
    """
    weights = resolve_model_path(name_or_path)
    card = ModelCard.from_json(weights.with_suffix(".json"))
    try:
        net = GAMAIR(**card.model_args)
    except TypeError as exc:
        raise ModelFileError(f"{weights.with_suffix('.json')}: model_args do not build a GAMAIR ({exc})") from None
    try:
        state = load_file(str(weights), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise ModelFileError(f"{weights}: not a readable safetensors file ({exc})") from None
    expected = net.state_dict()
    for key, tensor in expected.items():  # check everything before loading any tensor
        if key not in state:
            raise ModelFileError(f"{weights}: missing tensor {key!r} that the card's model_args need")
        if tuple(state[key].shape) != tuple(tensor.shape):
            raise ModelFileError(f"{weights}: tensor {key!r} has shape {tuple(state[key].shape)}, the card's model_args need {tuple(tensor.shape)}")
    extra = sorted(set(state) - set(expected))
    if extra:
        raise ModelFileError(f"{weights}: unexpected tensor {extra[0]!r} not in the card's architecture")
    net.load_state_dict(state)
    net.eval().to(device)
    net.card = card
    return net


def save_model(model: nn.Module, path: str | os.PathLike, card: ModelCard | None = None) -> Path:
    """Write ``PATH.safetensors`` and ``PATH.json`` atomically (temporary files, then rename).

    Parameters
    ----------
    model : GAMAIR
        The network; its ``card`` attribute is saved unless ``card`` is given.
    path : str or PathLike
        Target with or without suffix; a bare name (no folder) goes into :func:`user_models_dir`.
    card : ModelCard, optional
        Card to save instead of ``model.card``; its name is set to the file stem.

    Returns
    -------
    Path
        The ``.safetensors`` path.
    """
    card = card or getattr(model, "card", None)
    if card is None:
        raise InvalidInputError("the model has no card: build it with build_model() or load_model(), or pass card=")
    text = os.fspath(path)
    path = Path(text).expanduser()
    if "/" not in text and os.sep not in text:  # a bare name: the user model folder
        path = user_models_dir() / path
    if path.suffix in (".safetensors", ".json"):
        path = path.with_suffix("")
    stem = path.name
    if not stem or stem.startswith("."):
        raise InvalidInputError(f"bad model name {stem!r}: use letters, digits and hyphens")
    path.parent.mkdir(parents=True, exist_ok=True)
    card = card.replace(name=stem)
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    weights, card_path = path.with_name(stem + ".safetensors"), path.with_name(stem + ".json")
    _atomic_write(weights, lambda tmp: save_file(state, tmp, metadata={"format": "pt", "name": stem}))
    _write_card(card, card_path)
    model.card = card
    _notify_models_changed(weights)
    return weights


def save_card(card: ModelCard, name_or_path: str | os.PathLike) -> Path:
    """Replace the card (``NAME.json``) of an existing model atomically, leaving its weights as they are
    (e.g. to record new held-out metrics). Returns the card's path."""
    weights = resolve_model_path(name_or_path)
    card_path = weights.with_suffix(".json")
    _write_card(card.replace(name=weights.stem), card_path)
    _notify_models_changed(weights)
    return card_path


def _write_card(card: ModelCard, card_path: Path) -> None:
    _atomic_write(card_path, lambda tmp: Path(tmp).write_text(card.to_json(), encoding="utf-8"))


def _read_umask() -> int:
    mask = os.umask(0o022)  # os.umask can only be read by setting it: done once, at import
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def _atomic_write(target: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes owner-only files; a model file is an ordinary file
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def list_models() -> list[ModelCard]:
    """Cards of every shipped and user model (user models shadow shipped ones of the same name)."""
    found: dict[str, ModelCard] = {}
    for folder in (shipped_models_dir(), user_models_dir()):
        for name, weights in _model_files(folder).items():
            try:
                found[name] = ModelCard.from_json(weights.with_suffix(".json"))
            except ModelFileError:
                continue  # a broken user file must not hide the others; load_model() reports it
    return list(found.values())
