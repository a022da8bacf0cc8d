"""Every option of a training run checked in one place, before any work: :func:`validate_options`.

``iter_finetune`` (and so ``finetune``, ``gama-ir train`` and the napari Fine-tune panel) calls it first.
Each bad value raises :class:`~napari_gama_ir.InvalidInputError` (``InvalidDtypeError`` for a dtype, and
``ModelFileError`` for a damaged base model file) whose message names the option, the value and what is
accepted. Images held in memory are checked for NaN and inf here; lazy ones (files, dask, zarr) are not read
whole for that, but checked where training reads their pixels (``TrainImage.read``).
"""

from __future__ import annotations

import math
import os
import threading
from dataclasses import dataclass

import numpy as np
import torch

from ..engine.runtime import DEVICES, PRECISIONS, pick_device, pick_precision
from ..errors import InvalidInputError, ModelFileError
from .data import TrainImage, held_out_images, split_row, split_validation
from .datasets import as_train_images, first_axes
from ..model.context import check_axis, check_planes, check_start, context_of, default_context_axis, plane_channels
from .losses import LOSSES
from .objectives import SELF_SUPERVISED_MODES
from ..zoo.card import name_problem
from .noise import NoiseModel

MODES = ("supervised", *SELF_SUPERVISED_MODES, "synthetic")
"finetune modes; the self-supervised ones (noisy images alone) are described in training.objectives."
SAMPLERS = ("auto", "cpu", "device")
NOISE_CORRELATION = ("auto", "off")
"noise_correlation: measure the noise autocorrelation and mask along correlated neighbours, or not."
PATCH_STEP = 16
"A (smallest, largest) patch_size draws sides smallest + 16 k, so largest - smallest is a multiple of it."
MIN_PATCH = 16
"The smallest patch side accepted (the napari panel's minimum too); images need at least one patch of it."
AUTO_PATCH = 64
"patch_size=None: this side, or the largest multiple of the model's grid that fits the images if smaller."
MIN_VALIDATION_SIDE = 7
"Validation crops scored against clean targets need this many rows and columns: SSIM's 7 x 7 window (losses.ssim)."
MAX_VAL_FRACTION = 0.5
"val_fraction is in (0, 0.5]: at least half the data (and at least one image) always trains."
MAX_SEED = 2**63
CPU_AUTO_TRAINING_PRECISION = "fp32"


def training_precision(precision: str, device: torch.device) -> str:
    """The precision a training run uses: restore's :func:`~napari_gama_ir.engine.runtime.pick_precision`
    (its names, its "auto", its errors) with two documented exceptions, both for "auto" only:

    * On a CPU "auto" trains in fp32 (``CPU_AUTO_TRAINING_PRECISION``), where restore's "auto" runs bf16 on a
      CPU with native bfloat16. bf16 *inference* was measured against fp32 (held-out PSNR within 0.03 dB,
      docs/benchmarks.md); bf16 *training* was only measured for speed (1.3-2.2x a step, "Session 13"), and
      its quality cost could not be told apart from that of a later phase, so every shipped CPU phase, test
      and earlier run trains in fp32 unless ``precision="bf16"`` is asked for (it then runs as asked).
    * On a CUDA GPU without bf16, "auto" trains in fp32 where restore uses fp16: the loop has no loss scaling,
      and fp16 gradients without it underflow. For the same reason an explicit ``precision="fp16"`` is refused
      for training (on a CPU with restore's own error), never swapped for another precision.
    """
    resolved = pick_precision(precision, device)  # checks the name, and refuses what restore refuses
    if precision == "fp16":
        raise InvalidInputError(
            "precision 'fp16' is not used for training (the loop has no loss scaling, and fp16 gradients "
            "underflow without it); accepted: 'auto', 'fp32' or 'bf16'"
        )
    if precision == "auto" and (device.type == "cpu" or resolved == "fp16"):
        return CPU_AUTO_TRAINING_PRECISION if device.type == "cpu" else "fp32"
    return resolved


@dataclass
class CheckedRun:
    """What :func:`validate_options` resolved, so that training does not resolve it again."""

    device: torch.device
    precision: str
    images: list[TrainImage]
    "All training inputs (before the validation split)."
    train: list[TrainImage]
    val: list[TrainImage]
    channels: int
    smallest: int
    "Patch sides: ``patch_size`` checked against the model's grid and the images (None resolved)."
    largest: int
    scratch: bool
    "Whether ``base`` is an untrained preset (the default learning rate depends on it)."
    context: tuple[int, str] = (0, "")
    "Neighbouring planes on each side and their axis (``context_axis`` resolved); (0, '') without context."


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_number(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def _int(name: str, value, low: int, none_means: str | None = None, high: int | None = None) -> None:
    if value is None and none_means:
        return
    if not _is_int(value) or value < low or (high is not None and value >= high):
        span = f">= {low}" if high is None else f"in {low}..{high - 1}"
        raise InvalidInputError(f"{name} must be an int {span}{f' or None ({none_means})' if none_means else ''}, got {value!r}")


def _number(name: str, value, accepted: str, ok, none_means: str | None = None) -> None:
    """A finite real number for which ``ok(value)`` holds (None too when ``none_means``)."""
    if value is None and none_means:
        return
    if not _is_number(value) or not math.isfinite(value) or not ok(value):
        raise InvalidInputError(f"{name} must be a finite number {accepted}{f' or None ({none_means})' if none_means else ''}, got {value!r}")


def _one_of(name: str, value, accepted) -> None:
    if not isinstance(value, str) or value not in accepted:
        raise InvalidInputError(f"{name} {value!r} is not known; accepted: {', '.join(map(repr, accepted))}")


def _check_scalars(opts) -> None:
    """Every option that is not data, base, device or precision: type and range."""
    _one_of("mode", opts.mode, MODES)
    _int("steps", opts.steps, 1, "from the data size, or until max_minutes")
    _number("max_minutes", opts.max_minutes, "> 0", lambda v: v > 0, "no time limit")
    _int("batch_size", opts.batch_size, 1)
    _number("lr", opts.lr, "> 0", lambda v: v > 0, "1e-3 from scratch, 2e-4 when fine-tuning")
    _number("min_lr", opts.min_lr, ">= 0", lambda v: v >= 0)
    if opts.lr is not None and opts.min_lr > opts.lr:
        raise InvalidInputError(f"min_lr must be at most lr (the schedule decays from lr to min_lr), got min_lr={opts.min_lr!r} and lr={opts.lr!r}")
    _number("weight_decay", opts.weight_decay, ">= 0", lambda v: v >= 0)
    _one_of("loss", opts.loss, tuple(LOSSES))
    _int("eval_every", opts.eval_every, 1, "about ten validations per run")
    _number("val_fraction", opts.val_fraction, f"in (0, {MAX_VAL_FRACTION}]", lambda v: 0 < v <= MAX_VAL_FRACTION)
    _int("val_crop", opts.val_crop, MIN_VALIDATION_SIDE)
    _int("val_draws", opts.val_draws, 1)
    _int("seed", opts.seed, 0, high=MAX_SEED)
    _number("mask_fraction", opts.mask_fraction, "in (0, 0.5]", lambda v: 0 < v <= 0.5)
    _number("grad_clip", opts.grad_clip, ">= 0 (0: no clipping)", lambda v: v >= 0, "no clipping")
    if opts.axes is not None and not isinstance(opts.axes, str):
        raise InvalidInputError(f"axes must be a string of axis letters such as 'ZYX', or None, got {opts.axes!r}")
    if name_problem(opts.name):
        raise InvalidInputError(f"name (the new model's name): {name_problem(opts.name)}")
    if not isinstance(opts.data_note, str):
        raise InvalidInputError(f"data_note must be a string, got {opts.data_note!r}")
    if opts.checkpoint is not None and (not isinstance(opts.checkpoint, (str, os.PathLike)) or not str(opts.checkpoint)):
        raise InvalidInputError(f"checkpoint must be a path stem (str or PathLike) or None, got {opts.checkpoint!r}")
    if not isinstance(opts.resume, (bool, np.bool_)):
        raise InvalidInputError(f"resume must be True or False, got {opts.resume!r}")
    if opts.resume and opts.checkpoint is None:
        raise InvalidInputError("resume=True needs checkpoint= (the path stem to continue from); accepted: resume=False without one")
    _one_of("sampler", opts.sampler, SAMPLERS)
    _one_of("noise_correlation", opts.noise_correlation, NOISE_CORRELATION)
    check_planes(opts.context, "context")
    if opts.context_axis is not None:
        check_axis(opts.context_axis, "context_axis")
    check_start(opts.context_start, "context_start")
    if opts.context and opts.sampler == "device":
        raise InvalidInputError(f"sampler 'device' draws one plane per patch; with context {opts.context} accepted: 'cpu' or 'auto'")
    if opts.sampler == "device" and opts.mode != "synthetic":
        raise InvalidInputError(f"sampler 'device' draws synthetic noise; mode {opts.mode!r} needs sampler 'cpu' or 'auto'")
    if opts.mode == "synthetic" and not isinstance(opts.noise_model, NoiseModel):
        raise InvalidInputError(f"noise_model must be a NoiseModel with mode 'synthetic' (noise is drawn from it), got {opts.noise_model!r}")
    if opts.mode != "synthetic" and opts.noise_model is not None:
        raise InvalidInputError(f"noise_model is only used with mode 'synthetic'; with mode {opts.mode!r} accepted: None")
    if opts.stop is not None and not callable(getattr(opts.stop, "is_set", None)):
        raise InvalidInputError(f"stop must be a threading.Event or None, got {type(opts.stop).__name__}")
    if opts.val_images is not None:
        if not isinstance(opts.val_images, (list, tuple)) or not opts.val_images:
            raise InvalidInputError(f"val_images must be a non-empty list or None, got {type(opts.val_images).__name__}")
        if opts.mode != "synthetic" and not all(isinstance(p, (list, tuple)) and len(p) == 2 for p in opts.val_images):
            raise InvalidInputError(f"val_images must be (noisy, clean) pairs with mode {opts.mode!r}; accepted: [(noisy, clean), ...]")


def _patch_sides(patch_size) -> tuple[int, int] | None:
    """``patch_size`` as (smallest, largest) sides, None for "auto"; shape, type, order and steps checked."""
    if patch_size is None:
        return None
    sides = (patch_size, patch_size) if _is_int(patch_size) else patch_size
    accepted = f"an int >= {MIN_PATCH}, a (smallest, largest) pair of them {PATCH_STEP} k px apart, or None (auto)"
    if (not isinstance(sides, (tuple, list)) or len(sides) != 2 or not all(_is_int(s) and s >= MIN_PATCH for s in sides)
            or sides[0] > sides[1] or (sides[1] - sides[0]) % PATCH_STEP):  # fmt: skip
        raise InvalidInputError(f"patch_size must be {accepted}, got {patch_size!r}")
    return int(sides[0]), int(sides[1])


def _base(base, channels: int, context: tuple[int, str] = (0, "")) -> tuple[int, bool]:
    """(levels of the base network, whether it is an untrained preset), after checking that it resolves and
    takes ``channels`` channels per plane, and that a context base has the run's ``context`` (a 2-D base gets
    it: model.context.add_context). Nothing is built here: a named model's card is read, not its weights."""
    from ..model.presets import PRESETS
    from ..zoo.store import read_card, resolve_model_path

    if isinstance(base, torch.nn.Module):
        card = getattr(base, "card", None)
        if card is None or not hasattr(base, "levels"):
            raise InvalidInputError(
                f"base is a {type(base).__name__} without a model card; accepted: a GAMA-IR network (load_model, "
                "build_model, a finetune result), a model name or path, 'default' or 'scratch:<preset>'"
            )
        in_channels, levels, name = card.in_channels, base.levels, card.name
    elif isinstance(base, str) and (base == "scratch" or base.startswith("scratch:")):
        preset = base.split(":", 1)[1] if ":" in base else "w16"
        if preset not in PRESETS:
            raise InvalidInputError(f"base {base!r}: preset {preset!r} is not known; accepted: {', '.join('scratch:' + p for p in PRESETS)}")
        return len(PRESETS[preset]["enc_blocks"]), True
    elif base is None or isinstance(base, (str, os.PathLike)):
        if base in (None, "default"):
            from ..zoo.defaults import default_model_name

            try:
                name = default_model_name(channels, rgb_last=channels == 3)
            except InvalidInputError as exc:
                raise InvalidInputError(f"base {base!r}: {exc}") from None
        else:
            name = base
        try:
            card = read_card(resolve_model_path(name))
        except ModelFileError as exc:
            raise ModelFileError(f"base {base!r}: {exc}") from None
        except InvalidInputError as exc:
            raise InvalidInputError(f"base {base!r}: {exc}") from None
        in_channels, levels, name = card.in_channels, len(card.model_args.get("enc_blocks", (2, 2, 2, 2))), card.name
    else:
        raise InvalidInputError(
            f"base must be 'default', a model name or path, a GAMA-IR network or 'scratch:<preset>', got {type(base).__name__}"
        )
    has = context_of(card)
    if has[0] and has != context:
        raise InvalidInputError(
            f"base model {name!r} sees {has[0]} neighbouring plane(s) on each side along {has[1]}, the run asks for context "
            f"{context[0]}{' along ' + context[1] if context[0] else ''}; accepted: context={has[0]}, context_axis={has[1]!r}, or a 2-D base"
        )
    in_channels = plane_channels(card)
    if in_channels != channels:
        raise InvalidInputError(f"base model {name!r} takes {in_channels} channel(s), the data has {channels}; accepted: a base with {channels}")
    return levels, False


def _side(im: TrainImage) -> int:
    return min(im.shape[2:])


def _check_sizes(opts, images, train, val, sides, grid: int) -> tuple[int, int]:
    """Patch sides that fit the model's grid and the training images; validation parts large enough."""
    role = "clean" if opts.mode == "synthetic" else "noisy"
    need = sides[0] if sides else max(MIN_PATCH, grid)
    split_by_rows = opts.val_images is None and not held_out_images(len(images), opts.val_fraction)
    fits = max(_side(im) for im in train)
    if fits < need:
        shapes = ", ".join(f"{im.shape[2]} x {im.shape[3]}" for im in train[:5])
        least = MIN_VALIDATION_SIDE if any(im.clean is not None for im in images) else 1
        rows = (f" (an image of at least {_rows_needed(need, opts.val_fraction, least)} rows, as "
                f"val_fraction {opts.val_fraction} holds out its bottom rows)") if split_by_rows else ""  # fmt: skip
        what = f"patch_size {opts.patch_size!r}" if sides else f"the smallest patch ({need} px)"
        raise InvalidInputError(
            f"{role} images are too small for {what}: the parts that train are {shapes}{' ...' if len(train) > 5 else ''} "
            f"pixels (Y x X); accepted: at least one of at least {need} x {need}{rows}"
        )
    for im in val:  # every validation part (a strip, a held-out image, or val_images) is scored
        scored = im.clean is not None  # against clean targets: PSNR and SSIM; else blind-spot PSNR on any size
        least = MIN_VALIDATION_SIDE if scored else 1
        if _side(im) < least:
            h, w = im.shape[2:]
            if split_by_rows:
                raise InvalidInputError(
                    f"{role} image {im.index} is {images[im.index].shape[2]} x {w} pixels (Y x X): val_fraction "
                    f"{opts.val_fraction} holds out its bottom {h} row(s) for validation; accepted: at least {least} "
                    f"rows and columns there, so images of at least {_rows_needed(need, opts.val_fraction, least)} "
                    f"rows x {max(need, least)} columns (or a larger val_fraction, three or more images, or val_images)"
                )
            raise InvalidInputError(
                f"{im.prefix}{role} image {im.index} is {h} x {w} pixels (Y x X) and is held out for validation; "
                f"accepted: at least {least} x {least}"
            )
    if sides is None:
        side = min(AUTO_PATCH, fits - fits % grid)  # >= need: need is a multiple of grid (both powers of 2 or 16)
        return side, side
    for s in sides:
        if s % grid:
            raise InvalidInputError(
                f"patch_size {opts.patch_size!r}: sides must be multiples of {grid} (the base model halves the image "
                f"{int(math.log2(grid))} times); accepted e.g. {s - s % grid or grid} or {s - s % grid + grid}"
            )
    if sides[1] > fits:
        raise InvalidInputError(
            f"patch_size {opts.patch_size!r} is larger than every training image allows (the largest patch that fits "
            f"is {fits} px); accepted: sides up to {fits - fits % grid}"
        )
    return sides


def _rows_needed(patch: int, fraction: float, val_rows: int) -> int:
    """Rows an image needs when ``split_validation`` cuts its bottom rows off: a patch above, a crop below."""
    rows = patch
    while split_row(rows, fraction) < patch or rows - split_row(rows, fraction) < val_rows:
        rows += 1
    return rows


def validate_options(opts) -> CheckedRun:
    """Check every field of a :class:`~napari_gama_ir.training.FinetuneOptions` and resolve what needs the data
    or the machine (device, precision, the validation split, the patch sides). Raises before any training
    work: :class:`~napari_gama_ir.InvalidInputError` (``InvalidDtypeError`` for an image dtype,
    ``ModelFileError`` for a damaged base file) naming the option, its value and what is accepted."""
    _check_scalars(opts)
    sides = _patch_sides(opts.patch_size)
    if not isinstance(opts.device, (str, torch.device)):
        raise InvalidInputError(f"device must be a string or torch.device, got {opts.device!r}; accepted: {', '.join(DEVICES)} or 'cuda:N'")
    if not isinstance(opts.precision, str):
        raise InvalidInputError(f"precision must be a string, got {opts.precision!r}; accepted: {', '.join(PRECISIONS)}")
    try:
        device = pick_device(opts.device)
    except RuntimeError as exc:  # torch's, e.g. for 'cuda:x'
        raise InvalidInputError(f"device {opts.device!r} is not known ({exc}); accepted: {', '.join(DEVICES)} or 'cuda:N'") from None
    precision = training_precision(opts.precision, device)

    context = (0, "")
    if opts.context:
        context = (opts.context, (opts.context_axis or default_context_axis(first_axes(opts.noisy, opts.clean, opts.mode, opts.axes))).upper())
    images = as_train_images(opts.noisy, opts.clean, opts.mode, opts.axes, context=context)
    channels = images[0].shape[1]
    if opts.val_images is not None:  # explicit held-out images: clean arrays (synthetic) or (noisy, clean) pairs
        pairs = opts.mode != "synthetic"
        val_noisy = [p[0] for p in opts.val_images] if pairs else None
        val_clean = [p[1] for p in opts.val_images] if pairs else list(opts.val_images)
        train, val = images, as_train_images(val_noisy, val_clean, "supervised" if pairs else "synthetic", opts.axes, "val_images ",
                                             context)  # fmt: skip
        if val[0].shape[1] != channels:
            raise InvalidInputError(f"val_images have {val[0].shape[1]} channel(s), the training images {channels}; accepted: the same")
    else:
        train, val = split_validation(images, opts.val_fraction)
    levels, scratch = _base(opts.base, channels, context)
    smallest, largest = _check_sizes(opts, images, train, val, sides, 2**levels)
    if opts.lr is None and opts.min_lr > (1e-3 if scratch else 2e-4):
        raise InvalidInputError(f"min_lr must be at most the learning rate ({1e-3 if scratch else 2e-4} with lr=None), got {opts.min_lr!r}")
    return CheckedRun(device, precision, images, train, val, channels, smallest, largest, scratch, context)


def check_finetune_call(options: dict, progress, cancel) -> None:
    """``finetune``'s own arguments: known option names, a callable ``progress``, an Event ``cancel``."""
    from .finetune import FinetuneOptions

    known = set(FinetuneOptions.__dataclass_fields__) - {"noisy", "clean", "base", "mode", "steps", "max_minutes", "stop"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise InvalidInputError(f"unknown finetune option(s) {unknown}; accepted: {', '.join(sorted(known))}")
    if progress is not None and not callable(progress):
        raise InvalidInputError(f"progress must be a callable taking a FinetuneProgress, or None, got {type(progress).__name__}")
    if cancel is not None and not isinstance(cancel, threading.Event) and not callable(getattr(cancel, "is_set", None)):
        raise InvalidInputError(f"cancel must be a threading.Event or None, got {type(cancel).__name__}")
