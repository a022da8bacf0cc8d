"""Fine-tuning and training: one readable loop in nanoGPT's order, as a generator of progress.

``iter_finetune(options)`` yields :class:`FinetuneProgress` and returns the trained network (with its
card); ``finetune(...)`` drives it with ``progress`` and ``cancel`` callbacks. The shipped models are
trained by the same loop (``mode="synthetic"``, see ``scripts/training/train_shipped.py``).
"""

from __future__ import annotations

import copy
import dataclasses
import math
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Generator

import numpy as np
import torch

from ..engine.runtime import autocast
from ..errors import FinetuneCancelled, InvalidInputError
from ..io.normalize import DEFAULT_PERCENTILES, spread_planes
from ..model.context import CONTEXT_STARTS, add_context, context_of, plane_channels
from ..model.presets import build_model
from ..zoo.store import load_model
from .objectives import BlindSpot, is_self_supervised, make_objective, resolve_mode
from safetensors.torch import load_file

from .checkpoint import load_checkpoint, restore_training_state, save_checkpoint, save_weights
from .data import PatchSampler, TrainImage
from .device_sampler import DevicePatchSampler, device_sampler_fits
from .losses import LOSSES, psnr, ssim
from .noise import NoiseModel
from .validate import MODES, PATCH_STEP, SAMPLERS, training_precision, validate_options  # noqa: F401 (re-exported)
from .validate import check_finetune_call

UNBOUNDED_STEPS = 10**9
MAX_CORRELATION_PLANES = 8  # planes (of all training images together) the noise autocorrelation is measured on


@dataclass
class FinetuneOptions:
    """Everything a training run needs (the CLI flags and the panel fields map to these one to one).

    ``iter_finetune`` checks every field first (:func:`~napari_gama_ir.training.validate.validate_options`)
    and raises :class:`~napari_gama_ir.InvalidInputError` naming the field, its value and what is accepted.
    """

    noisy: Any = None
    "Noisy images: an array, a list of arrays (napari layer data), or a folder of TIFFs."
    clean: Any = None
    "Clean targets matched to ``noisy`` by order (or file name for folders); None for self-supervised."
    base: Any = "default"
    "'default', a model name or path, a loaded network, or 'scratch:<preset>' to start untrained."
    mode: str = "supervised"
    "'supervised' (noisy->clean, also Noise2Noise), 'synthetic', or a self-supervised mode on noisy images alone:\n    'self-supervised' (the best measured: 'blind-spot', Noise2Void), 'blind-spot', 'recorrupted' or\n    'neighbor2neighbor'; see training.objectives."
    steps: int | None = None
    "Optimiser steps, >= 1; None: from the data size (``max_minutes`` may stop earlier)."
    max_minutes: float | None = None
    "Wall-time bound (> 0); the learning-rate schedule follows whichever of steps/time runs out first."
    patch_size: int | tuple[int, int] | None = None
    "Square patch side (>= 16, a multiple of the base model's grid, 2**levels px: 16 for the shipped models,\n    at most what the training images fit); a (smallest, largest) pair draws a side per step, in steps of 16\n    pixels. None: 64, or the largest side that fits the images if smaller."
    batch_size: int = 8
    "Patches per step, >= 1 (at the smallest side; larger sides get proportionally fewer, at least 1)."
    lr: float | None = None
    "Peak learning rate (> 0); None: 1e-3 from scratch, 2e-4 when fine-tuning a trained model."
    min_lr: float = 1e-7
    "Learning rate at the end of the cosine schedule (0 <= min_lr <= lr)."
    weight_decay: float = 0.0
    loss: str = "psnr"
    "'psnr' (mean log-MSE), 'l1' or 'mse'; self-supervised modes use their objective's MSE (training.objectives)."
    eval_every: int | None = None
    "Steps between validations (an 'epoch'); None: about ten validations per run."
    val_fraction: float = 0.15
    "Share held out for validation, in (0, 0.5]: the last whole images when there are three or more, else the\n    bottom rows of each (with clean targets at least 7 of them: SSIM's window)."
    val_crop: int = 256
    "Validation images are centre-cropped to this size (and at most 4 planes) to keep evaluation quick."
    val_draws: int = 1
    "Synthetic mode: noise draws per validation crop. More give a steadier score to pick the best model by\n    (one draw of a few crops can rank checkpoints by luck); each validation takes that many times longer."
    axes: str | None = None
    device: str = "auto"
    "auto, cpu, cuda, cuda:N or mps (resolved as restore resolves it: engine.runtime.pick_device)."
    precision: str = "auto"
    "auto, fp32 or bf16 (see training.validate.training_precision: 'auto' is fp32 on a CPU and bf16 on GPUs\n    that have it, else fp32; fp16 is refused, as the loop has no loss scaling)."
    seed: int = 0
    "Seeds data order, noise and initialisation: an int in 0..2**63-1."
    checkpoint: str | None = None
    "Path stem for checkpoints (written at each validation); with ``resume`` continues from it."
    resume: bool = False
    noise_model: NoiseModel | None = None
    "For mode 'synthetic': noise drawn per patch on the clean images."
    val_images: list | None = None
    "Explicit validation pairs [(noisy, clean), ...] instead of a split of the training data."
    name: str = "finetuned"
    mask_fraction: float = 0.002
    "Mode 'blind-spot': fraction of pixels masked per patch."
    grad_clip: float = 1.0
    data_note: str = ""
    "Free text stored in the card's training.data (e.g. where the images came from)."
    sampler: str = "auto"
    "Where synthetic batches are made: 'cpu' (numpy, one patch at a time), 'device' (on the training device,\n    a batch at once) or 'auto' ('device' for synthetic training on a GPU when the images fit, else 'cpu')."
    stop: threading.Event | None = None
    "Set it (from any thread) to end training after the current step; the best model so far is returned."
    noise_correlation: str = "auto"
    "Self-supervised modes: 'auto' measures the noise autocorrelation on the noisy training images before\n    training (estimate.correlation) and, when neighbours share noise, hides them too (structN2V masks along\n    that direction); 'off' treats the noise as pixel-independent."
    context: int = 0
    "Neighbouring planes on each side the model sees (0..7; 0: plane by plane). A 2-D base gets them through\n    model.context.add_context (see ``context_start``); a context base must have the same context and axis."
    context_axis: str | None = None
    "'Z' or 'T': the axis of those planes; None: Z where the data has Z, else T."
    context_start: str = CONTEXT_STARTS[0]
    "How a 2-D base starts as a context model: 'mean' (the base on the planes' running mean) or 'centre' (the\n    base on the centre plane, zero weights on the others); see model.context.CONTEXT_STARTS."


@dataclass(frozen=True)
class FinetuneProgress:
    """One step of training; ``val_psnr`` is set after each validation.

    ``val_psnr`` is in dB: against the clean crops when there are any, else (self-supervised) the blind-spot
    score of masked pixels against their noisy values, which does not say how good a restoration is; for that,
    self-supervised runs also carry ``val_estimated_psnr``, which picks their best model (``best_psnr``). The last item of a
    run that stopped between validations (Stop, ``max_minutes``) is that run's final validation, with ``loss``
    NaN and ``total`` equal to ``step``.
    """

    step: int
    total: int
    loss: float
    "The training loss of this step (NaN for validation-only items); what it is: ``loss_name``."
    lr: float
    elapsed: float
    val_psnr: float | None = None
    val_ssim: float | None = None
    best_psnr: float | None = None
    "The best validation score so far, the one the returned model is chosen by: ``val_psnr`` with clean crops;\n    self-supervised, ``val_estimated_psnr`` (``val_psnr`` where no estimate could be made). Never a clean image."
    message: str = ""
    val_estimated_psnr: float | None = None
    "Self-supervised: estimated PSNR (dB) of the validation crops restored by the model, from the noisy crops\n    alone (Monte-Carlo SURE, :func:`~napari_gama_ir.estimate_quality`; no clean image). None otherwise."
    loss_name: str = ""
    "'psnr' (``loss`` is minus the training patches' PSNR in dB), 'l1', 'mse', or for self-supervised modes\n    'recorrupted mse', 'neighbour mse' or 'masked mse' (``objectives.SELF_SUPERVISED_LOSSES``)."
    noise_correlation: Any = None
    "First item of a self-supervised run with ``noise_correlation='auto'``: the measured\n    :class:`~napari_gama_ir.estimate.correlation.NoiseCorrelation` (its ``describe()`` is the line to show)."

    @property
    def done(self) -> int:
        """Steps done, so that training progress reads like restore's ``Progress(done, total, message)``."""
        return self.step

    @property
    def train_psnr(self) -> float | None:
        """The training patches' PSNR in dB (``-loss``) for the 'psnr' loss; None for other losses or no loss."""
        return -self.loss if self.loss_name == "psnr" and math.isfinite(self.loss) else None


def cosine_lr(step: int, total: int, peak: float, floor: float) -> float:
    """Cosine decay from ``peak`` at step 0 to ``floor`` at ``total`` (no warm-up)."""
    t = min(1.0, step / max(1, total))
    return floor + 0.5 * (peak - floor) * (1 + math.cos(math.pi * t))


PLANE_MIX_LR_SCALE = 50.0
"""How much faster a context model's residual mix of the planes (GAMAIR.plane_mix) learns than the network: a
few weights that may move by about 1/3 from their one-hot start within a fine-tuning run."""


def _parameter_groups(net) -> list[dict]:
    """AdamW's parameter groups: the network, and a context model's plane mix with ``lr_scale``."""
    mix = [p for name, p in net.named_parameters() if name == "plane_mix"]
    rest = [p for name, p in net.named_parameters() if name != "plane_mix"]
    return [{"params": rest}] + ([{"params": mix, "lr_scale": PLANE_MIX_LR_SCALE, "weight_decay": 0.0}] if mix else [])


def _build_network(opts: FinetuneOptions, channels: int, context: tuple[int, str] = (0, "")):
    """(network, base name, from scratch, context start): a loaded model, a shipped/user one, or a fresh preset
    ('scratch:<preset>'); a 2-D one gets ``context`` (planes on each side, axis) through
    :func:`~napari_gama_ir.model.context.add_context`, and the start is ``opts.context_start`` (else None)."""
    net, name, scratch = _base_network(opts, channels)
    if context[0] and not context_of(net.card)[0]:
        return add_context(net, *context, start=opts.context_start), name, scratch, opts.context_start
    return net, name, scratch, None


def _base_network(opts: FinetuneOptions, channels: int):
    """The base model as given: a loaded one, a shipped/user one, or a fresh preset ('scratch:<preset>')."""
    base = opts.base
    if isinstance(base, torch.nn.Module):
        net = copy.deepcopy(base)
        return net, net.card.name, False
    if isinstance(base, str) and base.startswith("scratch"):
        preset = base.split(":", 1)[1] if ":" in base else "w16"
        return build_model(preset, in_channels=channels), f"scratch:{preset}", True
    if base in (None, "default"):
        from ..zoo.defaults import default_model_name

        base = default_model_name(channels, rgb_last=channels == 3)
    net = load_model(base)
    if plane_channels(net.card) != channels:
        raise InvalidInputError(f"base model {net.card.name!r} takes {plane_channels(net.card)} channels, the data has {channels}")
    return net, net.card.name, False


VAL_PLANES = 4  # planes of each validation image scored, evenly spaced through its stack


def _validation_batches(opts: FinetuneOptions, val: list[TrainImage], rng: np.random.Generator):
    """Fixed (input, target, normalizer, data_range) tuples: same noise every validation."""
    out = []
    for im in val:
        n, c, h, w = im.shape
        size = min(opts.val_crop, h, w)
        y, x = (h - size) // 2, (w - size) // 2
        for plane in spread_planes(n, VAL_PLANES):
            if opts.mode == "synthetic":
                from ..io.normalize import Normalizer

                clean = im.read_context("clean", plane, y, x, size)  # (1, C, size, size), or with its neighbours
                for _ in range(opts.val_draws):
                    params = opts.noise_model.sample_params(rng)
                    noisy = np.stack([opts.noise_model.apply(c, params, rng) for c in clean])
                    centre = len(clean) // 2
                    out.append((noisy if len(noisy) > 1 else noisy[0], clean[centre], Normalizer.from_stack(noisy.mean(0, keepdims=True)), 1.0))
            else:  # with context the noisy crop is (2k + 1, C, size, size): the plane and its neighbours
                noisy = im.read("noisy", plane, y, x, size) if im.neighbours is None else im.read_context("noisy", plane, y, x, size)
                clean = im.read("clean", plane, y, x, size) if im.clean is not None else None
                out.append((noisy, clean, im.normalizer, float(np.mean(im.normalizer.high - im.normalizer.low))))
    return out


@torch.no_grad()
def evaluate(net, batches, device, precision, rng_seed: int = 0, correlation=None) -> tuple[float, float]:
    """Mean PSNR and SSIM over validation images (against clean, or blind-spot PSNR against noisy; with
    ``correlation``, the noise's measured autocorrelation, the masked pixels' correlated neighbours are hidden
    too, so that a model that copies the noise from them does not score well)."""
    was_training = net.training
    net.eval()
    scores, ssims = [], []
    gen = torch.Generator().manual_seed(rng_seed)
    centre = _centre(net)
    for noisy, clean, norm, data_range in batches:
        planes = norm.forward(noisy if noisy.ndim == 4 else noisy[None])  # context: (2k + 1, C, H, W)
        x = torch.from_numpy(planes.reshape(1, -1, *planes.shape[-2:])).to(device)
        if clean is None:  # no ground truth: score masked pixels of the centre plane against their noisy values
            forward = lambda inp: _forward(net, inp.to(device), device, precision).cpu()  # noqa: E731
            mse = BlindSpot(0.01, correlation)(forward, x.cpu(), x[:, centre].cpu(), centre=centre, generator=gen)
            scores.append(float(-10 * torch.log10(mse)))
            continue
        with autocast(device, precision):
            pred = net(x).float().cpu().numpy()
        restored = norm.inverse(pred)[0]
        scores.append(psnr(restored, clean, data_range))
        ssims.append(ssim(np.clip(restored, clean.min(), clean.max()) / data_range, clean / data_range))
    net.train(was_training)
    return float(np.mean(scores)), float(np.mean(ssims)) if ssims else float("nan")


ESTIMATE_CROPS = 2  # validation crops (at most val_crop px square) the self-supervised PSNR estimate restores
NOISE_SIDE = 256  # the noise model is fitted on central crops of this side of the whole images' planes


def _estimate_inputs(opts: FinetuneOptions, val: list[TrainImage], val_batches):
    """Self-supervised: (noisy crops as ZCYX, noise estimate, data range) per validation image, for
    :func:`_estimate_psnr`; at most ``ESTIMATE_CROPS`` crops in all, so that it costs about two restores of
    them per validation. The noise model is fitted once, on the whole image the crops come from (a validation
    strip can be too small to fit it). Empty for other modes, or when the noise cannot be estimated."""
    from ..estimate.noise import estimate_noise

    if not is_self_supervised(opts.mode):
        return []
    per_image = max(1, len(val_batches) // max(1, len(val)))  # _validation_batches: the same count per image
    out, left = [], ESTIMATE_CROPS
    for k, im in enumerate(val):
        crops = [b[0] for b in val_batches[k * per_image : (k + 1) * per_image][:left]]
        if not crops:
            break
        left -= len(crops)
        whole = dataclasses.replace(im, region=(slice(None), slice(None)))  # all of a strip's image
        n, _, h, w = whole.shape
        sample = _central_crops(whole, spread_planes(n, VAL_PLANES), min(NOISE_SIDE, h, w))
        try:
            noise = estimate_noise(np.stack(sample), axes="ZCYX")
        except InvalidInputError:  # e.g. a flat image: no noise to measure, so no estimate
            continue
        if crops[0].ndim == 4:  # context: each crop with its neighbouring planes, a short stack along the axis
            out += [(c.astype(np.float32), noise, val_batches[k * per_image][3]) for c in crops]
        else:
            out.append((np.stack(crops).astype(np.float32), noise, val_batches[k * per_image][3]))
    return out


def _estimate_psnr(net, inputs, device) -> float | None:
    """Estimated PSNR (dB) of ``net``'s restorations of the validation crops, from their mean estimated squared
    error relative to each crop's data range (no clean image needed). None when no crop can be estimated, or
    when an estimated error is 0: the estimate then cannot resolve the error (at a few photons its noise model
    is too coarse), and a checkpoint scored so must not win as "perfect"."""
    from ..estimate.quality import estimate_quality

    errors = []
    axes = (context_of(net.card)[1] or "Z") + "CYX"  # a context model's crops are planes along its axis
    for stack, noise, data_range in inputs:
        try:
            q = estimate_quality(stack, net, axes=axes, noise=noise, region=max(16, *stack.shape[-2:]),
                                 planes=len(stack), device=str(device))  # fmt: skip
        except InvalidInputError:
            continue
        if q.mse <= 0:
            return None
        errors.append(q.mse / data_range**2)
    return float(-10 * np.log10(np.mean(errors))) if errors else None


def iter_finetune(opts: FinetuneOptions) -> Generator[FinetuneProgress, None, torch.nn.Module]:
    """Train per ``opts``; yields progress every step, returns the best network with an updated card.

    The first ``next()`` checks every option (:func:`~.validate.validate_options`) and raises a typed error
    before any work; a napari worker then reports it like any other failure of the run.
    """
    # -- every option checked first; device, precision, data (lazy stacks, one normaliser each), the
    #    validation split (by image, or by region) and the patch sides resolved once
    checked = validate_options(opts)
    device, precision, images, train, val = checked.device, checked.precision, checked.images, checked.train, checked.val
    channels, smallest, largest = checked.channels, checked.smallest, checked.largest
    # -- setup: seeds, so that data order, noise and init are reproducible (and resumable)
    torch.manual_seed(opts.seed)
    rng = np.random.default_rng(opts.seed)
    sampler = _make_sampler(opts, train, smallest, rng, device)
    val_batches = _validation_batches(opts, val, np.random.default_rng(opts.seed + 1))
    estimate_inputs = _estimate_inputs(opts, val, val_batches)
    estimating = bool(estimate_inputs)  # self-supervised: checkpoints are chosen by the estimated PSNR

    # -- model: from a base (fine-tuning) or from scratch; the card records which
    net, base_name, scratch, context_start = _build_network(opts, channels, checked.context)
    net.to(device).train()
    centre = _centre(net)  # the input channels of the plane being restored (all of them without context)
    peak_lr = opts.lr if opts.lr is not None else (1e-3 if scratch else 2e-4)
    # steps bound the run when given; max_minutes alone bounds it by time only
    total = opts.steps or (UNBOUNDED_STEPS if opts.max_minutes else _default_steps(images, smallest, opts.batch_size))
    eval_every = opts.eval_every or (250 if total == UNBOUNDED_STEPS else max(10, total // 10))

    # -- optimiser: AdamW with NAFNet's betas; the schedule is a pure function of progress
    optimizer = torch.optim.AdamW(_parameter_groups(net), lr=peak_lr, betas=(0.9, 0.9), weight_decay=opts.weight_decay)
    loss_fn, loss_name = LOSSES[opts.loss], opts.loss
    correlation = _training_correlation(opts, train)  # measured once, before training; None unless self-supervised
    objective = _objective(opts, train, correlation) if is_self_supervised(opts.mode) else None
    if objective is not None:
        loss_name = objective.loss_name

    step, history, best_state, elapsed_before = 0, [], None, 0.0
    mask_gen = torch.Generator().manual_seed(opts.seed + 2)
    ckpt = Path(opts.checkpoint) if opts.checkpoint else None
    if opts.resume and ckpt and ckpt.with_suffix(".json").exists():
        tensors, meta = load_checkpoint(ckpt)
        step = restore_training_state(tensors, meta, net, optimizer, rng)
        mask_gen.set_state(tensors["rng.mask"])
        if "rng.sampler" in tensors and isinstance(sampler, DevicePatchSampler):
            sampler.generator.set_state(tensors["rng.sampler"])
        history, best_psnr = meta["history"], meta["best_psnr"]
        before_psnr, before_ssim, elapsed_before = meta["before_psnr"], meta["before_ssim"], meta["elapsed"]
        before_estimate = meta.get("before_estimate")
        best_file = ckpt.with_name(ckpt.name + "-best.safetensors")
        best_state = load_file(str(best_file)) if best_file.exists() else None
    else:
        before_psnr, before_ssim = evaluate(net, val_batches, device, precision, correlation=correlation)
        # the starting weights are the first candidate: fine-tuning must beat the base model to replace it
        before_estimate = _estimate_psnr(net, estimate_inputs, device) if estimate_inputs else None
        best_psnr, best_state = _score(before_psnr, before_estimate, estimating), {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
    yield FinetuneProgress(step, total, float("nan"), peak_lr, elapsed_before, before_psnr, before_ssim, best_psnr,
                           "validation before training", before_estimate, loss_name, correlation)  # fmt: skip

    # -- loop: set lr, step, validate + checkpoint every eval_every; stop on steps or time
    t0, lr = time.perf_counter() - elapsed_before, peak_lr
    while step < total:
        elapsed = time.perf_counter() - t0
        if opts.max_minutes is not None and elapsed >= opts.max_minutes * 60:
            break
        if opts.stop is not None and opts.stop.is_set():
            break  # asked to stop (e.g. the panel's Stop): finish below with the best weights so far
        frac = step / total if opts.max_minutes is None else max(step / total, elapsed / (opts.max_minutes * 60))
        lr = cosine_lr(int(frac * 10_000), 10_000, peak_lr, opts.min_lr)
        for group in optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)
        side, batch = _step_patches(smallest, largest, opts.batch_size, rng)
        inp, target = (torch.as_tensor(a) for a in sampler.batch(batch, side))
        inp, target = inp.to(device), target.to(device)
        if objective is not None:  # self-supervised: the objective runs the network (some modes twice)
            loss = objective(lambda x: _forward(net, x, device, precision), inp, target, centre=centre, generator=mask_gen)
        else:
            loss = loss_fn(_forward(net, inp, device, precision), target, None)
        loss.backward()
        if opts.grad_clip:
            torch.nn.utils.clip_grad_norm_(net.parameters(), opts.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        val_psnr = val_ssim = estimated = None
        if step % eval_every == 0 or step == total:
            val_psnr, val_ssim = evaluate(net, val_batches, device, precision, correlation=correlation)
            estimated = _estimate_psnr(net, estimate_inputs, device) if estimate_inputs else None
            history.append({"step": step, "loss": loss.item(), "val_psnr": val_psnr, "val_ssim": val_ssim})
            improved = _score(val_psnr, estimated, estimating) > best_psnr
            if improved:
                best_psnr, best_state = _score(val_psnr, estimated, estimating), {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
            if ckpt:
                state = dict(history=history, best_psnr=best_psnr, before_psnr=before_psnr, before_ssim=before_ssim,
                             before_estimate=before_estimate, elapsed=time.perf_counter() - t0)  # fmt: skip
                generators = {"rng.mask": mask_gen.get_state()}
                if isinstance(sampler, DevicePatchSampler):
                    generators["rng.sampler"] = sampler.generator.get_state()
                save_checkpoint(ckpt, net, optimizer, step, state, rng, generators)
                if improved or step == eval_every:  # the first checkpoint also records the best so far
                    save_weights(best_state, ckpt.with_name(ckpt.name + "-best.safetensors"))
        elapsed = time.perf_counter() - t0
        shown_total = _shown_total(step, total, elapsed, opts.max_minutes)
        yield FinetuneProgress(step, shown_total, loss.item(), lr, elapsed, val_psnr, val_ssim, best_psnr, "", estimated, loss_name)

    # -- finish: the best weights, a card that says how they were made and how well they do
    elapsed = time.perf_counter() - t0
    if step and (not history or history[-1]["step"] != step):  # weights since the last validation count too
        last_psnr, last_ssim = evaluate(net, val_batches, device, precision, correlation=correlation)
        estimated = _estimate_psnr(net, estimate_inputs, device) if estimate_inputs else None
        if _score(last_psnr, estimated, estimating) > best_psnr:
            best_state, best_psnr = None, _score(last_psnr, estimated, estimating)
        # stopped between validations: this validation is the run's last point (and the run's length is known)
        yield FinetuneProgress(step, step, float("nan"), lr, elapsed, last_psnr, last_ssim, best_psnr, "final validation",
                               estimated, loss_name)  # fmt: skip
    if best_state is not None:
        net.load_state_dict(best_state)
    net.eval()
    after_psnr, after_ssim = evaluate(net, val_batches, device, precision, correlation=correlation)
    estimated_after = _estimate_psnr(net, estimate_inputs, device) if estimate_inputs else None
    estimates = {} if estimated_after is None else {"estimated_psnr_before": before_estimate, "estimated_psnr_after": estimated_after}
    net.card = net.card.replace(
        name=opts.name,
        normalization={"method": "percentile", "low": DEFAULT_PERCENTILES[0], "high": DEFAULT_PERCENTILES[1]},
        training={
            "base_model": base_name,
            "mode": opts.mode,
            **({"context_start": context_start} if context_start else {}),
            "data": opts.data_note or _data_summary(images),
            "noise": opts.noise_model.to_dict() if opts.noise_model else "real (as given)",
            "steps": step,
            "patch_size": sampler.patch_size if smallest == largest else [smallest, min(largest, sampler.largest)],
            "batch_size": opts.batch_size,
            "sampler": type(sampler).__name__,
            "lr": peak_lr,
            "loss": objective.loss_name if objective is not None else opts.loss,
            **({"objective": objective.name} if objective is not None else {}),
            **_correlation_record(opts, correlation),
            "seconds": round(elapsed, 1),
            "device": str(device) + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""),
            "precision": precision,
            "seed": opts.seed,
            "history": history,
            **({} if scratch else _continued_from(net.card.training, step, elapsed)),
        },
        metrics={
            **({} if scratch else {"earlier_summaries": earlier_summaries(net.card.metrics)}),
            "validation": {"psnr_before": before_psnr, "psnr_after": after_psnr, "ssim_before": before_ssim, "ssim_after": after_ssim,
                           "crops": len(val_batches), **estimates},
            "summary": f"val PSNR {before_psnr:.2f} -> {after_psnr:.2f} dB",
        },
    )
    return net


def _continued_from(base_training: dict, steps: int, seconds: float) -> dict:
    """The base's own training record, kept whole under ``previous_phase`` so that none of its notes
    (command, hardware, ...) reads as this run's, and the steps and seconds of all phases together."""
    return {
        "previous_phase": {k: v for k, v in base_training.items() if k != "history"},
        "total_steps": steps + base_training.get("total_steps", base_training.get("steps", 0)),
        "total_seconds": round(seconds + base_training.get("total_seconds", base_training.get("seconds", 0)), 1),
    }


def earlier_summaries(metrics: dict) -> list[str]:
    """The one-line results of a model's training phases so far, oldest first: its card's
    ``earlier_summaries`` and ``summary`` (cards written before this list kept them as ``base_..._summary``
    keys, one more ``base_`` per phase back, and are read too)."""
    legacy = [k for k in metrics if k.startswith("base_") and k.endswith("summary")]
    legacy.sort(key=lambda k: -k.count("base_"))
    latest = [metrics["summary"]] if "summary" in metrics else []
    return [*metrics.get("earlier_summaries", []), *(metrics[k] for k in legacy), *latest]


def _central_crops(im: TrainImage, planes, side: int) -> list[np.ndarray]:
    """The central ``side`` x ``side`` crop of each of ``planes`` of a training image's noisy planes (within
    its region), (C, side, side) float32 each."""
    _, _, h, w = im.shape
    return [im.read("noisy", int(p), (h - side) // 2, (w - side) // 2, side) for p in planes]


def _centre(net) -> slice:
    """Input channels of the plane a network restores: the centre plane of a context model, else all."""
    k = getattr(net, "context", 0)
    return slice(k * net.out_channels, (k + 1) * net.out_channels) if k else slice(None)


def _score(val_psnr: float, estimated: float | None, estimating: bool = False) -> float:
    """What the best weights are chosen by (no clean image for self-supervised runs): in a run that
    estimates (``estimating``), the estimated PSNR of the restored validation crops, and minus infinity (never
    chosen) where it could not be estimated; else the validation PSNR. The estimate judges the whole network
    as restore uses it; the blind-spot PSNR (masked pixels against their noisy values) favours networks that
    ignore each pixel's own value, and kept the base model where the estimate, and the clean image, preferred
    the fine-tuned one (benchmarks/selfsupervised.py)."""
    if estimating:
        return estimated if estimated is not None else float("-inf")
    return val_psnr


def _forward(net, x: torch.Tensor, device, precision: str) -> torch.Tensor:
    """The network on a batch under the run's autocast, as float32."""
    with autocast(device, precision):
        return net(x).float()


def _objective(opts: FinetuneOptions, train: list[TrainImage], correlation=None):
    """The self-supervised objective of ``opts.mode``; for 'recorrupted' with the noise model fitted on the
    normalised training images (central crops of up to 4 planes each, the crops of the smallest image's side)."""
    from ..estimate.noise import estimate_noise

    noise = None
    if resolve_mode(opts.mode) == "recorrupted":
        side = min(NOISE_SIDE, *(min(im.shape[2:]) for im in train))
        crops = [im.normalizer.forward(crop[None])[0] for im in train for crop in _central_crops(im, spread_planes(im.shape[0], VAL_PLANES), side)]
        try:
            noise = estimate_noise(np.stack(crops), axes="ZCYX")
        except InvalidInputError as exc:
            raise InvalidInputError(f"mode 'recorrupted' needs the noise model, which could not be fitted ({exc}); "
                                    "accepted: another self-supervised mode, e.g. 'neighbor2neighbor'") from None  # fmt: skip
    return make_objective(opts.mode, mask_fraction=opts.mask_fraction, noise=noise, correlation=correlation)


def _training_correlation(opts: FinetuneOptions, train: list[TrainImage]):
    """Self-supervised runs with ``noise_correlation='auto'``: the noise autocorrelation of the noisy training
    images (central crops of the smallest image's side, at most 512 px, of up to 8 planes in all); None when
    not asked for, or when the images are too small or too flat to measure it."""
    from ..estimate.correlation import SIDE, correlation_of_sample

    if not is_self_supervised(opts.mode) or opts.noise_correlation == "off":
        return None
    side = min(SIDE, *(min(im.shape[2:]) for im in train))
    per_image = max(1, MAX_CORRELATION_PLANES // len(train))
    crops = []
    for im in train[:MAX_CORRELATION_PLANES]:
        n = im.shape[0]
        crops += _central_crops(im, np.unique(np.linspace(0, n - 1, min(n, per_image)).round().astype(int)), side)
    try:
        return correlation_of_sample(np.stack(crops).astype(np.float64))
    except InvalidInputError:  # too small or flat to measure: trained as pixel-independent, and the card says so
        return None


def _correlation_record(opts: FinetuneOptions, correlation) -> dict:
    """The card's ``training.noise_correlation`` for a self-supervised run (empty for other modes)."""
    if not is_self_supervised(opts.mode):
        return {}
    if correlation is None:
        note = "off" if opts.noise_correlation == "off" else "not measured (images too small or flat)"
        return {"noise_correlation": {"setting": opts.noise_correlation, "summary": note}}
    return {"noise_correlation": {"setting": opts.noise_correlation, "correlated": correlation.correlated,
                                  "direction": correlation.direction, "length": correlation.length,
                                  "summary": correlation.describe()}}  # fmt: skip


def _make_sampler(opts: FinetuneOptions, train: list[TrainImage], patch: int, rng: np.random.Generator, device):
    """The numpy PatchSampler, or for synthetic noise on a GPU the DevicePatchSampler (see ``sampler``)."""
    on_device = opts.sampler == "device" or (
        opts.sampler == "auto" and opts.mode == "synthetic" and device.type == "cuda" and not opts.context
        and device_sampler_fits(train, device)
    )  # fmt: skip
    if on_device:
        return DevicePatchSampler(train, patch, rng, opts.noise_model, device)
    return PatchSampler(train, patch, "self-supervised" if is_self_supervised(opts.mode) else opts.mode, rng, opts.noise_model)


def _step_patches(smallest: int, largest: int, batch_size: int, rng: np.random.Generator) -> tuple[int, int]:
    """(side, batch) for one step: a side drawn in steps of 16 px, the batch scaled to keep its pixel count."""
    if smallest == largest:
        return smallest, batch_size
    side = smallest + PATCH_STEP * int(rng.integers((largest - smallest) // PATCH_STEP + 1))
    return side, max(1, round(batch_size * (smallest / side) ** 2))


def _shown_total(step: int, total: int, elapsed: float, max_minutes: float | None) -> int:
    """Steps expected in all: ``total``, or for a time-bound run an estimate from the pace so far."""
    if max_minutes is None or step == 0:
        return total
    return min(total, max(step, int(step / max(elapsed, 1e-9) * max_minutes * 60)))


def _default_steps(images: list[TrainImage], patch: int, batch_size: int) -> int:
    """About 20 passes over the data's pixels, between 200 and 2000 steps."""
    pixels = sum(np.prod(im.shape) for im in images)
    per_step = patch**2 * batch_size
    return int(np.clip(20 * pixels / per_step, 200, 2000))


def _data_summary(images: list[TrainImage]) -> str:
    shapes = [tuple(int(s) for s in im.shape) for im in images]
    return f"{len(images)} image(s), (planes, C, Y, X) = {shapes[:5]}{' ...' if len(shapes) > 5 else ''}"


def finetune(
    noisy=None,
    clean=None,
    *,
    base="default",
    mode: str = "supervised",
    steps: int | None = None,
    max_minutes: float | None = None,
    progress: Callable[[FinetuneProgress], None] | None = None,
    cancel: threading.Event | None = None,
    **options,
):
    """Fine-tune a model on your own data and return it (save it with ``save_model``).

    Parameters
    ----------
    noisy : array, list of arrays, or folder of TIFFs
        Noisy images: YX, ZYX, TZYX, YXC ... (planes of stacks are used); any real dtype.
    clean : same as ``noisy``, optional
        Matched targets (by order, or by file name in folders); None with a self-supervised mode.
    base : str or GAMAIR
        "default", a model name/path/network, or "scratch:<preset>".
    mode : {"supervised", "self-supervised", "neighbor2neighbor", "recorrupted", "blind-spot", "synthetic"}
        Self-supervised modes train on ``noisy`` alone; "self-supervised" is the best measured of them at 5
        CPU-minutes ("blind-spot", Noise2Void); see ``training.objectives``.
    steps, max_minutes : int, float, optional
        Stop after this many steps or minutes; without either, a default from the data size.
    progress : callable(FinetuneProgress), optional
    cancel : threading.Event, optional
        Stops between steps and returns the best model so far (raises FinetuneCancelled only
        when cancelled before the first step).
    **options
        Any other :class:`FinetuneOptions` field (patch_size, batch_size, lr, loss, axes, device,
        checkpoint, resume, seed, name, ...).

    Returns
    -------
    GAMAIR
        The trained network with ``net.card`` (metrics before/after on the validation split).

    Raises
    ------
    InvalidInputError
        Before any work, for any bad argument or option (``training.validate.validate_options``): the
        message names it, its value and what is accepted. Also for NaN or inf pixels (in-memory arrays at
        the start, lazy ones where their pixels are read).
    InvalidDtypeError
        Images that are not integer or float.
    """
    check_finetune_call(options, progress, cancel)
    opts = FinetuneOptions(noisy=noisy, clean=clean, base=base, mode=mode, steps=steps, max_minutes=max_minutes, stop=cancel, **options)
    return run_finetune(iter_finetune(opts), progress, cancel)


def run_finetune(gen, progress=None, cancel=None):
    """Drive an ``iter_finetune`` generator to its end and return the trained network.

    ``cancel`` must be the generator's own ``FinetuneOptions.stop`` event: once set, the loop ends after
    the current step with the best weights so far. Set before the first step, it raises
    :class:`FinetuneCancelled`, as there is nothing to return yet.
    """
    try:
        while True:
            item = next(gen)
            if progress is not None:
                progress(item)
            if item.step == 0 and cancel is not None and cancel.is_set():
                gen.close()
                raise FinetuneCancelled("fine-tuning was cancelled before it started")
    except StopIteration as stop:
        return stop.value
