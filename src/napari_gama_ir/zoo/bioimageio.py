"""BioImage.IO model packages (spec 0.5): export any GAMA-IR model, and load one exported here.

A package runs in bioimageio.core, Fiji (deepImageJ) and ilastik without this plugin: the network's source
is ``model/gama_ir.py`` itself (it imports torch only), shipped in the package as ``gama_ir.py``.

What the package says (``rdf.yaml``):

- input ``input``: axes batch, channel, y, x; y and x of any size ``min + n * step``, with ``step`` the
  network's multiple (``2 ** levels``, 16 for the shipped models) and ``min`` the smallest such size above
  twice the halo.
- preprocessing and postprocessing: ``ensure_dtype`` float32 only. The network itself
  (:class:`~napari_gama_ir.model.gama_ir.RawIntensityGAMAIR`) maps each image and channel to about [0, 1]
  by its 0.5 and 99.9 percentiles (the card's), clips to +-1000, restores, and maps back, so the output is
  in the input's intensity scale: restore()'s output, for an image run whole. Spec 0.5 has no
  postprocessing that multiplies by the input's percentiles (``scale_range`` with ``reference_tensor``
  divides by them), hence the normalisation inside the network. A tool that tiles an image (ilastik,
  deepImageJ, bioimageio.core with a block size) normalises each tile by its own percentiles.
- output ``output``: same axes and size as the input, with a halo of ``AUTO_OVERLAP / 2`` px per side, so
  tiles overlap by ``AUTO_OVERLAP`` px as in ``restore``.
- weights: ``pytorch_state_dict`` (architecture ``gama_ir.py:RawIntensityGAMAIR`` with the card's arguments),
  ``torchscript`` and ``onnx`` (traced in :func:`~napari_gama_ir.model.gama_ir.export_mode`, any size).
- test tensors from a shipped sample, a before/after cover, documentation from the card, citations, licence,
  and the card itself under ``config.napari_gama_ir`` (what :func:`load_package` reads back).

bioimageio.spec, bioimageio.core, onnx and onnxruntime are the optional extra ``napari-gama-ir[bioimageio]``;
they are imported inside the functions that need them.
"""

from __future__ import annotations

import copy
import datetime
import getpass
import hashlib
import io
import json
import math
import os
import shutil
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from ..errors import InvalidInputError, ModelFileError

EXTRA = "bioimageio"
INSTALL_HINT = 'pip install "napari-gama-ir[bioimageio]"'
WEIGHT_FORMATS = ("pytorch_state_dict", "torchscript", "onnx")
FORMAT_VERSION = "0.5.4"
"The model spec version written; bioimageio.spec 0.5.x reads it (and converts to its own latest 0.5)."
ONNX_OPSET = 17
EPS = 1e-6
ARCHITECTURE = "RawIntensityGAMAIR"  # model/gama_ir.py: GAMAIR with the card's normalisation inside
CONFIG_KEY = "napari_gama_ir"
ARCHITECTURE_FILE = "gama_ir.py"
GAMA_IR_CITE = {
    "text": "Y. Mansour, R. Heckel. GAMA-IR: Global Additive Multidimensional Averaging for Fast Image Restoration. arXiv 2404.00807 (2024)",
    "doi": "10.48550/arXiv.2404.00807",
}
NAFNET_CITE = {
    "text": "L. Chen, X. Chu, X. Zhang, J. Sun. Simple Baselines for Image Restoration (NAFNet). ECCV 2022, arXiv 2204.04676",
    "doi": "10.48550/arXiv.2204.04676",
}
PROJECT_URL = "https://pypi.org/project/napari-gama-ir/"
TEST_SIZE = 256  # test tensors: a centre crop of the shipped sample (multiple of every network's step)
PACKAGE_FILES = {
    "pytorch_state_dict": "weights.pt",
    "torchscript": "weights_torchscript.pt",
    "onnx": "weights.onnx",
}


@dataclass(frozen=True)
class ExportProgress:
    """One step of :func:`iter_export_bioimageio`: ``done`` of ``total`` steps, and what runs next."""

    done: int
    total: int
    message: str
    plan: None = None  # the widgets' progress slots read it (a restore's plan); an export has none


def require_extra(*modules: str) -> None:
    """Import ``modules`` (default: bioimageio.spec) or raise :class:`InvalidInputError` naming the extra."""
    for name in modules or ("bioimageio.spec",):
        try:
            __import__(name)
        except ImportError as exc:
            raise InvalidInputError(
                f"BioImage.IO export and import need the optional packages bioimageio.core, onnx and onnxruntime "
                f"({name} is missing: {exc}); install them with: {INSTALL_HINT}"
            ) from None


# --- export -------------------------------------------------------------------------------------------


def export_bioimageio(
    model,
    path: str | os.PathLike,
    *,
    name: str | None = None,
    description: str | None = None,
    authors: Sequence[str | dict] | None = None,
    cite: Sequence[dict] | None = None,
    license: str | None = None,  # noqa: A002 - the spec's field name
    sample=None,
    weights: Sequence[str] = WEIGHT_FORMATS,
    overwrite: bool = False,
) -> Path:
    """Write a BioImage.IO model package (spec 0.5) that bioimageio.core, Fiji (deepImageJ) and ilastik run.

    Parameters
    ----------
    model : str, PathLike or GAMAIR
        Anything :func:`load_model` accepts (a shipped or user model name, a ``.safetensors`` path, a package),
        or a network with its ``card`` (e.g. just fine-tuned).
    path : str or PathLike
        ``NAME.zip`` for a zipped package; any other path is a folder (created; ``rdf.yaml`` inside).
    name, description : str, optional
        The package's name and one-line description (default: the model's name and card description).
    authors : list of str or dict, optional
        Names, or ``{"name": ..., "affiliation": ..., "orcid": ...}`` (default: the napari-gama-ir developers
        for a shipped model, else the user's login name).
    cite : list of dict, optional
        Extra citations ``{"text": ..., "doi": ...}`` or ``{"text": ..., "url": ...}``; the GAMA-IR paper,
        NAFNet and this project are always cited.
    license : str, optional
        SPDX identifier (default: the card's licence).
    sample : str or numpy array, optional
        A shipped sample name, or a 2-D (YX) / 3-D (YXC or CYX) image for the test tensors and the cover
        (default: the shipped sample that fits the model's channels and domain).
    weights : sequence of str
        Any of "pytorch_state_dict" (always written: the other formats name it as their parent),
        "torchscript", "onnx".
    overwrite : bool
        Replace an existing ``path``.

    Returns
    -------
    Path
        The package written.

    Raises
    ------
    InvalidInputError
        The optional extra is missing (the message says ``pip install "napari-gama-ir[bioimageio]"``), or an
        argument is not accepted.
    ModelFileError
        The model cannot be loaded, or the package written does not validate.
    """
    gen = iter_export_bioimageio(model, path, name=name, description=description, authors=authors, cite=cite,
                                 license=license, sample=sample, weights=weights, overwrite=overwrite)  # fmt: skip
    try:
        while True:
            next(gen)
    except StopIteration as stop:
        return stop.value


def iter_export_bioimageio(model, path, **kwargs) -> Iterator[ExportProgress]:
    """:func:`export_bioimageio` as a generator of :class:`ExportProgress` (for workers); returns the path.
    Closing it early leaves nothing behind."""
    opts = _check_options(path, **kwargs)
    require_extra("bioimageio.spec", "yaml", *(("onnx",) if "onnx" in opts["weights"] else ()))
    target: Path = opts["target"]
    steps = ["loading the model", "test tensors and cover", *opts["weights"], "validating", "writing the package"]
    total = len(steps)
    yield ExportProgress(0, total, steps[0])
    net = raw_intensity_network(_as_network(model))
    card = net.card
    with tempfile.TemporaryDirectory(prefix=".gama-ir-export-", dir=_staging_parent(target)) as tmp:
        stage = Path(tmp) / "package"
        stage.mkdir()
        yield ExportProgress(1, total, steps[1])
        image = _test_image(card, opts["sample"])
        test_in, test_out = _test_tensors(net, card, image)
        np.save(stage / "test_input.npy", test_in)
        np.save(stage / "test_output.npy", test_out)
        _write_cover(stage / "cover.png", test_in[0], test_out[0])
        shutil.copyfile(_architecture_source(), stage / ARCHITECTURE_FILE)
        done = 2
        for fmt in opts["weights"]:
            yield ExportProgress(done, total, f"writing {fmt} weights")
            _write_weights(fmt, net, stage / PACKAGE_FILES[fmt], test_in)
            done += 1
        yield ExportProgress(done, total, steps[-2])
        rdf = _rdf(card, opts, stage, test_in.shape[1], test_out.shape[1])
        (stage / "README.md").write_text(_documentation(card, opts), encoding="utf-8")
        rdf["documentation"] = "README.md"
        _write_rdf(stage, rdf)
        _validate(stage / "rdf.yaml")
        yield ExportProgress(done + 1, total, steps[-1])
        _publish(stage, target, opts["overwrite"])
    yield ExportProgress(total, total, f"exported {target}")
    return target


def _check_options(path, *, name=None, description=None, authors=None, cite=None, license=None, sample=None,
                   weights=WEIGHT_FORMATS, overwrite=False) -> dict:  # fmt: skip
    target = Path(os.fspath(path)).expanduser()
    if target.name in ("", ".", ".."):
        raise InvalidInputError(f"export path {str(path)!r} is not accepted: give NAME.zip or a folder")
    if isinstance(weights, str):
        weights = (weights,)
    weights = tuple(dict.fromkeys(weights))
    unknown = [w for w in weights if w not in WEIGHT_FORMATS]
    if unknown or not weights:
        raise InvalidInputError(f"weights {list(weights)!r} are not accepted; accepted: any of {list(WEIGHT_FORMATS)}")
    if "pytorch_state_dict" not in weights:  # the others are converted from it and name it as their parent
        weights = ("pytorch_state_dict", *weights)
    weights = tuple(w for w in WEIGHT_FORMATS if w in weights)
    if target.exists() and not overwrite:
        raise InvalidInputError(f"{target} already exists; pass overwrite=True (CLI: --overwrite) or choose another path")
    if target.exists() and target.suffix.lower() != ".zip" and target.is_dir() and any(target.iterdir()):
        if not (target / "rdf.yaml").is_file():  # never empty a folder that is not a package
            raise InvalidInputError(f"{target} is a folder that is not a BioImage.IO package; choose an empty or new folder")
    for key, value in (("name", name), ("description", description), ("license", license)):
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise InvalidInputError(f"{key}={value!r} is not accepted: give a non-empty str")
    return {
        "target": target, "name": name, "description": description, "authors": _authors(authors),
        "cite": _cite(cite), "license": license, "sample": sample, "weights": weights, "overwrite": overwrite,
    }  # fmt: skip


def _authors(authors) -> list[dict] | None:
    if authors is None:
        return None
    if isinstance(authors, (str, dict)):
        authors = [authors]
    out = []
    for a in authors:
        if isinstance(a, str) and a.strip():
            out.append({"name": a.strip()})
        elif isinstance(a, dict) and isinstance(a.get("name"), str) and a["name"].strip():
            out.append(dict(a))
        else:
            raise InvalidInputError(f"author {a!r} is not accepted: give a name, or a dict with 'name'")
    if not out:
        raise InvalidInputError("authors is empty: give at least one name")
    return out


def _cite(cite) -> list[dict]:
    if cite is None:
        return []
    if isinstance(cite, dict):
        cite = [cite]
    out = []
    for c in cite:
        if not (isinstance(c, dict) and isinstance(c.get("text"), str) and (c.get("doi") or c.get("url"))):
            raise InvalidInputError(f"citation {c!r} is not accepted: give {{'text': ..., 'doi': ...}} or {{'text': ..., 'url': ...}}")
        out.append(dict(c))
    return out


def _as_network(model) -> nn.Module:
    from .store import load_model

    if isinstance(model, nn.Module):
        if getattr(model, "card", None) is None:
            raise InvalidInputError("the model has no card: build it with build_model() or load_model()")
        net = copy.deepcopy(model).to("cpu").float().eval()  # the caller's model is left as it is
        net.card = model.card
        return net
    return load_model(model, device="cpu")


def raw_intensity_network(net: nn.Module) -> nn.Module:
    """The package's network (CPU, eval, with ``net``'s card): ``net``'s weights in a
    :class:`~napari_gama_ir.model.gama_ir.RawIntensityGAMAIR` with the card's percentiles; it takes and gives
    B x C x Y x X float32 in the image's own intensity units."""
    from ..io.normalize import NORMALIZED_LIMIT
    from ..model.gama_ir import RawIntensityGAMAIR

    card = net.card
    if card.in_channels != card.out_channels:  # a context model too: a package's tensors are one plane
        what = (f"sees neighbouring planes ({card.context})" if getattr(card, "context", None)
                else f"takes {card.in_channels} input channels and gives {card.out_channels}")  # fmt: skip
        raise InvalidInputError(f"model {card.name!r} {what}; accepted for BioImage.IO export: a 2-D model that "
                                "restores each channel of one plane (without context)")  # fmt: skip
    low, high = _percentiles(card)
    raw = RawIntensityGAMAIR(**_architecture_kwargs(card), low_percentile=low, high_percentile=high,
                             clip=NORMALIZED_LIMIT, eps=EPS)  # fmt: skip
    raw.load_state_dict({k: v.to("cpu", torch.float32) for k, v in net.state_dict().items()})
    raw.eval()
    raw.card = card
    return raw


def _staging_parent(target: Path) -> Path:
    parent = target.parent
    parent.mkdir(parents=True, exist_ok=True)
    return parent


def _architecture_source() -> Path:
    from ..model import gama_ir

    return Path(gama_ir.__file__)


def _step(card) -> int:
    return 2 ** len(card.model_args.get("enc_blocks", (2, 2, 2, 2)))


def _halo() -> int:
    from ..engine.options import AUTO_OVERLAP

    return AUTO_OVERLAP // 2


def _min_size(card) -> int:
    step = _step(card)
    return step * (2 * _halo() // step + 1)  # the smallest multiple of step above twice the halo


def _test_image(card, sample) -> np.ndarray:
    """The test image as float32 C x Y x X, a centre crop of at most TEST_SIZE px (a multiple of the step)."""
    channels = card.in_channels
    if sample is None or isinstance(sample, str):
        from ..samples import load_sample, list_samples

        if sample is None:
            sample = "photo-rgb" if channels == 3 or getattr(card, "domain", "") == "photo" else "fluorescence-2d"
        if sample not in list_samples():
            raise InvalidInputError(f"unknown sample {sample!r}; accepted: {', '.join(list_samples())} or an array")
        data = load_sample(sample)
        image = np.asarray(data["noisy"])
        if data["axes"].startswith("Z"):
            image = image[image.shape[0] // 2]  # a 3-D stack: its middle plane
    else:
        image = np.asarray(sample)
    if image.ndim == 2:
        image = image[None]
    elif image.ndim == 3 and image.shape[-1] in (channels, 3) and image.shape[0] not in (channels,):
        image = np.moveaxis(image, -1, 0)  # YXC -> CYX
    if image.ndim != 3:
        raise InvalidInputError(f"sample of shape {image.shape} is not accepted: give a YX, YXC or CYX image")
    if image.shape[0] != channels:
        if channels == 1:
            image = image.astype(np.float32).mean(0, keepdims=True)  # e.g. the RGB photo for a gray photo model
        else:
            image = np.repeat(image[:1], channels, axis=0)
    step = _step(card)
    size = [min(TEST_SIZE, s) // step * step for s in image.shape[1:]]
    if min(size) < _min_size(card):
        raise InvalidInputError(f"sample of shape {image.shape} is too small: the package needs at least "
                                f"{_min_size(card)} x {_min_size(card)} px")  # fmt: skip
    y0, x0 = ((s - t) // 2 for s, t in zip(image.shape[1:], size))
    image = image[:, y0 : y0 + size[0], x0 : x0 + size[1]]
    if not np.isfinite(image).all():
        raise InvalidInputError("the sample holds NaN or inf")
    return np.ascontiguousarray(image, dtype=np.float32)


def _percentiles(card) -> tuple[float, float]:
    from ..io.normalize import DEFAULT_PERCENTILES

    norm = getattr(card, "normalization", {}) or {}
    return float(norm.get("low", DEFAULT_PERCENTILES[0])), float(norm.get("high", DEFAULT_PERCENTILES[1]))


def _test_tensors(net, card, image: np.ndarray):
    """(test input, test output), both 1 x C x Y x X float32 in the image's intensity units."""
    test_in = image[None]
    with torch.inference_mode():
        test_out = net(torch.from_numpy(test_in)).float().numpy()
    if not np.isfinite(test_out).all():
        raise ModelFileError(f"model {card.name!r}: its output on the test image is not finite; it is not exported")
    return test_in, test_out


def _write_cover(path: Path, before: np.ndarray, after: np.ndarray) -> None:
    """A 2:1 PNG: the test input (left) and output (right), both scaled by the input's percentiles."""
    from PIL import Image

    lo, hi = np.percentile(before, [0.5, 99.9])
    scale = max(float(hi - lo), 1e-12)

    def u8(a):
        img = np.clip((a - lo) / scale, 0, 1) * 255
        img = img[0] if img.shape[0] == 1 else np.moveaxis(img[:3], 0, -1)
        return img.round().astype(np.uint8)

    pair = np.concatenate([u8(before), u8(after)], axis=1)
    Image.fromarray(pair).save(path)


def _write_weights(fmt: str, net: nn.Module, path: Path, test_in: np.ndarray) -> None:
    from ..model.gama_ir import export_mode

    x = torch.from_numpy(test_in)
    if fmt == "pytorch_state_dict":
        state = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in net.state_dict().items()}
        torch.save(state, path)
        return
    with torch.no_grad(), export_mode():
        if fmt == "torchscript":
            traced = torch.jit.trace(net, x, check_trace=False)
            traced.save(str(path))
            return
    export_onnx(net, x, path)


def export_onnx(net: nn.Module, x: torch.Tensor, target) -> None:
    """Write ``net`` as ONNX (opset :data:`ONNX_OPSET`, traced in ``export_mode`` on the example ``x``, a
    B x C x H x W float32 tensor with H and W multiples of ``2 ** levels``) to ``target``, a path or a
    binary file object; batch, H and W stay free ("batch", "y", "x"). Input "input", output "output"."""
    import warnings

    from ..model.gama_ir import export_mode

    with torch.no_grad(), export_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation and tracer warnings
        torch.onnx.export(
            net, (x,), target if hasattr(target, "write") else str(target), dynamo=False, opset_version=ONNX_OPSET,
            input_names=["input"], output_names=["output"],
            dynamic_axes={n: {0: "batch", 2: "y", 3: "x"} for n in ("input", "output")},
        )  # fmt: skip


def _pytorch_version() -> str:
    return torch.__version__.split("+")[0]


def _architecture_kwargs(card) -> dict:
    """GAMAIR's arguments for ``card``'s network, with restore's mean mode for it."""
    kwargs = {k: list(v) if isinstance(v, tuple) else v for k, v in card.model_args.items()}
    inference = getattr(card, "inference", {}) or {}
    if "mean_mode" in inference:  # restore's default for this model
        kwargs["mean_mode"] = inference["mean_mode"]
    if "local_size" in inference:
        kwargs["local_size"] = int(inference["local_size"])
    return kwargs


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _is_shipped(card) -> bool:
    from .store import shipped_models_dir

    return (shipped_models_dir() / f"{card.name}.safetensors").is_file() and not getattr(card, "training", {}).get("user")


def _rdf(card, opts: dict, stage: Path, c_in: int, c_out: int) -> dict:
    from .. import __version__
    from ..io.normalize import NORMALIZED_LIMIT

    step, halo, min_size = _step(card), _halo(), _min_size(card)
    low, high = _percentiles(card)
    names = ["gray"] if c_in == 1 else (["red", "green", "blue"] if c_in == 3 else [f"c{i}" for i in range(c_in)])
    out_names = ["gray"] if c_out == 1 else (["red", "green", "blue"] if c_out == 3 else [f"c{i}" for i in range(c_out)])
    space_in = [{"type": "space", "id": ax, "size": {"min": min_size, "step": step}} for ax in ("y", "x")]
    space_out = [
        {"type": "space", "id": ax, "size": {"tensor_id": "input", "axis_id": ax}, "halo": halo}
        for ax in ("y", "x")
    ]
    post = [{"id": "ensure_dtype", "kwargs": {"dtype": "float32"}}]
    authors = opts["authors"]
    if authors is None:
        authors = [{"name": "napari-gama-ir developers"}] if _is_shipped(card) else [{"name": getpass.getuser() or "unknown"}]
    weights: dict[str, Any] = {}
    for fmt in opts["weights"]:
        entry: dict[str, Any] = {"source": PACKAGE_FILES[fmt], "sha256": _sha256(stage / PACKAGE_FILES[fmt])}
        if fmt == "pytorch_state_dict":
            entry["architecture"] = {
                "source": ARCHITECTURE_FILE, "sha256": _sha256(stage / ARCHITECTURE_FILE), "callable": ARCHITECTURE,
                "kwargs": {**_architecture_kwargs(card), "low_percentile": low, "high_percentile": high,
                           "clip": NORMALIZED_LIMIT, "eps": EPS},
            }  # fmt: skip
            entry["pytorch_version"] = _pytorch_version()
        else:
            entry["parent"] = "pytorch_state_dict"
            if fmt == "torchscript":
                entry["pytorch_version"] = _pytorch_version()
            else:
                entry["opset_version"] = ONNX_OPSET
        entry["comment"] = f"exported by napari-gama-ir {__version__}"
        weights[fmt] = entry
    return {
        "type": "model",
        "format_version": FORMAT_VERSION,
        "name": opts["name"] or f"GAMA-IR {card.name}",
        "description": (opts["description"] or card.description or f"GAMA-IR denoising model {card.name}")[:1000],
        "authors": authors,
        "cite": [GAMA_IR_CITE, NAFNET_CITE, {"text": f"napari-gama-ir {__version__}", "url": PROJECT_URL}, *opts["cite"]],
        "license": opts["license"] or getattr(card, "license", None) or "BSD-3-Clause",
        "tags": ["denoising", "restoration", "gama-ir", "2d", "pytorch", *([card.domain] if getattr(card, "domain", "") else [])],
        "covers": ["cover.png"],
        "documentation": "README.md",
        "timestamp": datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat(),
        "inputs": [{
            "id": "input",
            "description": f"raw image ({'RGB' if c_in == 3 else 'gray' if c_in == 1 else f'{c_in} channels'}), any intensity scale",
            "axes": [{"type": "batch"}, {"type": "channel", "channel_names": names}, *space_in],
            "test_tensor": {"source": "test_input.npy", "sha256": _sha256(stage / "test_input.npy")},
            "data": {"type": "float32"},
            "preprocessing": [{"id": "ensure_dtype", "kwargs": {"dtype": "float32"}}],
        }],  # fmt: skip
        "outputs": [{
            "id": "output",
            "description": "restored image, in the input's intensity units",
            "axes": [{"type": "batch"}, {"type": "channel", "channel_names": out_names}, *space_out],
            "test_tensor": {"source": "test_output.npy", "sha256": _sha256(stage / "test_output.npy")},
            "data": {"type": "float32"},
            "postprocessing": post,
        }],  # fmt: skip
        "weights": weights,
        "config": {
            CONFIG_KEY: {"version": __version__, "card": json.loads(card.to_json())},
        },
    }


def _documentation(card, opts: dict) -> str:
    from .. import __version__

    t = getattr(card, "training", {}) or {}
    m = getattr(card, "metrics", {}) or {}
    low, high = _percentiles(card)
    lines = [
        f"# GAMA-IR {card.name}", "",
        (opts["description"] or card.description or "A GAMA-IR denoising model."), "",
        "## What it is for", "",
        f"Denoising (restoration) of {'RGB' if card.in_channels == 3 else 'single-channel'} 2-D images"
        f"{' in the ' + card.domain + ' domain' if getattr(card, 'domain', '') else ''} with GAMA-IR "
        f"(preset {card.preset}, {card.parameter_count:,} parameters). 3-D stacks are restored plane by plane.", "",
        "## Noise it was trained on", "",
        f"- noise model: {json.dumps(t.get('noise', 'not recorded'))}",
        f"- training data: {t.get('data', 'not recorded')}", "",
        "## Held-out results", "",
        f"- {m.get('summary') or 'no held-out metrics recorded'}",
    ]
    for key, value in (m.get("eval") or {}).items():
        if isinstance(value, dict) and "model" in value and isinstance(value["model"], dict):
            others = ", ".join(f"{k} {v.get('psnr')} dB" for k, v in value.items() if k != "model" and isinstance(v, dict))
            lines.append(f"- {key}: {value['model'].get('psnr')} dB, SSIM {value['model'].get('ssim')} ({others})")
    lines += [
        "", "## How it was trained", "",
        f"- mode: {t.get('mode', 'not recorded')}; steps: {t.get('total_steps', t.get('steps', '?'))}; "
        f"wall time: {t.get('total_seconds', t.get('seconds', '?'))} s; hardware: {t.get('hardware', t.get('device', '?'))}",
        f"- base model: {t.get('base_model', 'none')}; loss: {t.get('loss', '?')}; learning rate: {t.get('lr', '?')}",
        f"- command: `{t.get('command', 'not recorded')}`", "",
        "## Inputs, outputs and processing", "",
        f"- input: batch, channel, y, x; y and x of at least {_min_size(card)} px in steps of {_step(card)} px "
        f"(the network halves the image {len(card.model_args.get('enc_blocks', (2, 2, 2, 2)))} times); tile with a "
        f"halo of {_halo()} px per side.",
        f"- preprocessing and postprocessing: none (a cast to float32). The network maps each image and channel to "
        f"about [0, 1] by its {low} and {high} percentiles (the normalisation the model was trained with), "
        f"restores it, and maps the result back, so the output is in the input's intensity units. A tool that "
        f"tiles the image normalises each tile by its own percentiles.",
    ]
    lines += [
        "- weights: pytorch_state_dict (architecture in `gama_ir.py`, needs only torch), torchscript and onnx.", "",
        "## Use", "",
        "- napari: `napari_gama_ir.load_model(\"this.zip\")`, or the Restore widget.",
        "- Python: `bioimageio.core` (`bioimageio predict` or `bioimageio.core.predict`).",
        "- Fiji: deepImageJ (Install model from a local zip); ilastik: Neural Network Workflow.", "",
        f"Exported by napari-gama-ir {__version__}. Licence: {opts['license'] or getattr(card, 'license', 'BSD-3-Clause')}.",
    ]  # fmt: skip
    return "\n".join(lines) + "\n"


def _write_rdf(stage: Path, rdf: dict) -> None:
    import yaml

    text = yaml.safe_dump(rdf, sort_keys=False, allow_unicode=True, width=120)
    (stage / "rdf.yaml").write_text(text, encoding="utf-8")


def _validate(rdf_path: Path) -> None:
    """Check the package against the spec (local files only: nothing is downloaded)."""
    from bioimageio.spec import InvalidDescr, load_description

    descr = load_description(rdf_path, perform_io_checks=True)
    if isinstance(descr, InvalidDescr) or descr.type != "model":
        errors = "; ".join(f"{'.'.join(map(str, e.loc))}: {e.msg}" for e in descr.validation_summary.errors[:5])
        raise ModelFileError(f"the exported package does not validate against BioImage.IO spec {FORMAT_VERSION}: {errors}")


def _publish(stage: Path, target: Path, overwrite: bool) -> None:
    """Move the staged package to ``target`` (a zip written atomically, or a folder)."""
    if target.suffix.lower() == ".zip":
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        try:
            with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
                for f in sorted(stage.iterdir()):
                    zf.write(f, f.name)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        return
    if target.exists():
        if not overwrite:
            raise InvalidInputError(f"{target} already exists; pass overwrite=True or choose another path")
        if target.is_dir():
            shutil.rmtree(target)
        else:
            target.unlink()
    shutil.move(str(stage), str(target))


# --- import -------------------------------------------------------------------------------------------


def is_package_path(name_or_path) -> bool:
    """True for what :func:`load_package` reads: a ``.zip``, an ``rdf.yaml`` / ``*.bioimageio.yaml``, or a
    folder holding ``rdf.yaml``."""
    if isinstance(name_or_path, nn.Module):
        return False
    try:
        text = os.fspath(name_or_path)
    except TypeError:
        return False
    if not isinstance(text, str):
        return False
    path = Path(text).expanduser()
    name = path.name.lower()
    return name.endswith(".zip") or name in ("rdf.yaml", "bioimageio.yaml") or name.endswith(".bioimageio.yaml") or (
        path.is_dir() and (path / "rdf.yaml").is_file()
    )


def _read_package(path: Path) -> tuple[dict, Any]:
    """(rdf, read(name) -> bytes) of a zipped or unzipped package."""
    import yaml

    if not path.exists():
        raise ModelFileError(f"{path}: BioImage.IO package not found")
    if path.is_dir():
        path = path / "rdf.yaml"
    if path.suffix.lower() == ".zip":
        try:
            zf = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as exc:
            raise ModelFileError(f"{path}: not a readable zip file ({exc})") from None
        names = set(zf.namelist())
        rdf_name = next((n for n in ("rdf.yaml", "bioimageio.yaml") if n in names), None)
        rdf_name = rdf_name or next((n for n in sorted(names) if n.endswith(".bioimageio.yaml")), None)
        if rdf_name is None:
            raise ModelFileError(f"{path}: not a BioImage.IO package (no rdf.yaml inside)")

        def read(name: str) -> bytes:
            try:
                return zf.read(name)
            except KeyError:
                raise ModelFileError(f"{path}: the package lacks {name!r}") from None

        text = zf.read(rdf_name)
    else:
        root = path.parent

        def read(name: str) -> bytes:
            try:
                return (root / name).read_bytes()
            except OSError as exc:
                raise ModelFileError(f"{path}: the package's file {name!r} cannot be read ({exc})") from None

        try:
            text = path.read_bytes()
        except OSError as exc:
            raise ModelFileError(f"{path}: cannot be read ({exc})") from None
    try:
        rdf = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ModelFileError(f"{path}: rdf.yaml is not valid YAML ({exc})") from None
    if not isinstance(rdf, dict) or rdf.get("type") != "model":
        raise ModelFileError(f"{path}: not a BioImage.IO model package (rdf.yaml type is {rdf.get('type') if isinstance(rdf, dict) else None!r})")
    return rdf, read


def load_package(path: str | os.PathLike, device: str | torch.device = "cpu") -> nn.Module:
    """Load a GAMA-IR model from a BioImage.IO package exported by :func:`export_bioimageio`.

    Reads the card under ``config.napari_gama_ir`` and the ``pytorch_state_dict`` weights (``torch.load``
    with ``weights_only=True``: tensors only, nothing else is unpickled); bioimageio.* is not needed.

    Raises
    ------
    ModelFileError
        Not a package, a package of another architecture (the message says which), or broken weights.
    """
    from .card import ModelCard
    from ..model.gama_ir import GAMAIR
    from .store import _expected_shapes

    path = Path(os.fspath(path)).expanduser()
    rdf, read = _read_package(path)
    weights = rdf.get("weights") or {}
    entry = weights.get("pytorch_state_dict") if isinstance(weights, dict) else None
    arch = (entry or {}).get("architecture") or {}
    callable_name = arch.get("callable") if isinstance(arch, dict) else None
    source = arch.get("source") if isinstance(arch, dict) else None
    config = (rdf.get("config") or {}).get(CONFIG_KEY) if isinstance(rdf.get("config"), dict) else None
    if callable_name not in ("GAMAIR", ARCHITECTURE) or not isinstance(config, dict) or "card" not in config:
        what = f"{callable_name} from {source}" if callable_name else f"weights {sorted(weights) if isinstance(weights, dict) else '?'}"
        raise ModelFileError(
            f"{path}: a BioImage.IO package of another architecture ({what}, {rdf.get('name')!r}); napari-gama-ir "
            "loads GAMA-IR packages exported by napari-gama-ir (architecture RawIntensityGAMAIR); run this one with bioimageio.core, "
            "deepImageJ or ilastik"
        )
    card_data = dict(config["card"])
    try:
        card = ModelCard.from_dict(card_data, source=f"{path} (config.{CONFIG_KEY}.card)")
    except ModelFileError:
        raise
    except Exception as exc:  # noqa: BLE001 - a card from another version of the schema
        raise ModelFileError(f"{path}: the package's model card is not readable by this napari-gama-ir ({exc})") from None
    expected = _expected_shapes(card.model_args)
    try:
        state = torch.load(io.BytesIO(read(entry["source"])), map_location="cpu", weights_only=True)
    except ModelFileError:
        raise
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a bad file
        raise ModelFileError(f"{path}: the pytorch_state_dict weights are not readable ({exc})") from None
    if not isinstance(state, dict) or {k: tuple(v.shape) for k, v in state.items() if torch.is_tensor(v)} != expected:
        raise ModelFileError(f"{path}: the pytorch_state_dict weights do not match the package's card (model_args)")
    for key, tensor in state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise ModelFileError(f"{path}: tensor {key!r} holds NaN or inf; the weights are unusable")
    net = GAMAIR(**card.model_args)
    net.load_state_dict(state)
    net.eval().to(device)
    net.card = card
    return net


# --- checks used by the tests and the benchmark --------------------------------------------------------


def run_weights(package: str | os.PathLike, fmt: str, x: np.ndarray) -> np.ndarray:
    """The network of ``package`` in weight format ``fmt`` on a B x C x Y x X float32 array in any intensity
    units (the package has no other processing than a cast to float32): the pytorch_state_dict through the
    package's own ``gama_ir.py``, torchscript, or ONNX Runtime on the CPU. Returns B x C x Y x X float32 in
    the input's units."""
    import importlib.util
    import sys

    package = Path(package)
    rdf, read = _read_package(package)
    entry = rdf["weights"][fmt]
    x = np.ascontiguousarray(x, dtype=np.float32)
    if fmt == "onnx":
        require_extra("onnxruntime")
        import onnxruntime as ort

        sess = ort.InferenceSession(read(entry["source"]), providers=["CPUExecutionProvider"])
        return sess.run(None, {sess.get_inputs()[0].name: x})[0]
    if fmt == "torchscript":
        module = torch.jit.load(io.BytesIO(read(entry["source"])), map_location="cpu")
    else:
        arch = entry["architecture"]
        with tempfile.TemporaryDirectory() as tmp:
            src = Path(tmp) / "gama_ir_package_source.py"
            src.write_bytes(read(arch["source"]))
            spec = importlib.util.spec_from_file_location(f"_gama_ir_pkg_{_sha256(src)[:12]}", src)
            mod = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = mod
            spec.loader.exec_module(mod)
        module = getattr(mod, arch["callable"])(**arch.get("kwargs", {}))
        module.load_state_dict(torch.load(io.BytesIO(read(entry["source"])), map_location="cpu", weights_only=True))
    module.eval()
    with torch.inference_mode():
        return module(torch.from_numpy(x)).numpy()


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR of ``a`` against ``b`` with ``b``'s range as the peak (inf when equal)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    mse = float(np.mean((a - b) ** 2))
    peak = float(b.max() - b.min()) or 1.0
    return math.inf if mse == 0 else 10 * math.log10(peak**2 / mse)


def time_call(fn, repeat: int = 3) -> float:
    """Best wall time of ``repeat`` calls of ``fn`` after one warm-up, in seconds."""
    fn()
    best = math.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best
