"""Every argument of ``finetune`` is checked before any work: a bad one raises a typed error whose message
names the argument (and the value and what is accepted), NaN/inf pixels are refused in every mode, training
resolves device and precision through engine.runtime, and a valid tiny call still trains."""

import math
import threading

import dask.array as da
import numpy as np
import pytest
import torch

from napari_gama_ir import InvalidDtypeError, InvalidInputError, finetune
from napari_gama_ir.engine import runtime
from napari_gama_ir.errors import GamaIRError
from napari_gama_ir.model.presets import build_model
from napari_gama_ir.training import FinetuneOptions, NoiseModel, iter_finetune
from napari_gama_ir.training.data import TrainImage
from napari_gama_ir.training.validate import (
    CPU_AUTO_TRAINING_PRECISION,
    MIN_PATCH,
    training_precision,
    validate_options,
)

SIDE = 48


def images(count=3, side=SIDE, seed=0):
    rng = np.random.default_rng(seed)
    clean = [(100 + 50 * rng.random((side, side))).astype(np.float32) for _ in range(count)]
    noisy = [(c + rng.normal(0, 10, c.shape)).astype(np.float32) for c in clean]
    return noisy, clean


def tiny(**kw):
    """Arguments of a tiny, quick run (two steps of the 'tiny' preset); ``kw`` overrides them."""
    return {**dict(base="scratch:tiny", patch_size=32, batch_size=2, eval_every=1, val_crop=32, steps=2), **kw}


def call(noisy, clean, **kw):
    return finetune(noisy, clean, **tiny(**kw))


def with_bad(arrays, index, value, where=(3, 5)):
    out = [a.copy() for a in arrays]
    out[index][where] = value
    return out


NAN, INF = float("nan"), float("inf")

# (option overrides, argument the message must name); each runs supervised on three 48 x 48 pairs
BAD_OPTIONS = [
    (dict(steps=-5), "steps"),
    (dict(steps=0), "steps"),
    (dict(steps=True), "steps"),
    (dict(steps=2.5), "steps"),
    (dict(max_minutes=0), "max_minutes"),
    (dict(max_minutes=INF), "max_minutes"),
    (dict(batch_size=0), "batch_size"),
    (dict(batch_size=True), "batch_size"),
    (dict(lr=NAN), "lr"),
    (dict(lr=-1), "lr"),
    (dict(lr=INF), "lr"),
    (dict(min_lr=-1e-7), "min_lr"),
    (dict(lr=1e-4, min_lr=1e-3), "min_lr"),
    (dict(weight_decay=-0.1), "weight_decay"),
    (dict(loss="huber"), "loss"),
    (dict(eval_every=0), "eval_every"),
    (dict(val_fraction=1), "val_fraction"),
    (dict(val_fraction=0), "val_fraction"),
    (dict(val_fraction=NAN), "val_fraction"),
    (dict(val_crop=3), "val_crop"),
    (dict(val_draws=0), "val_draws"),
    (dict(seed=-1), "seed"),
    (dict(seed=1.5), "seed"),
    (dict(seed=True), "seed"),
    (dict(mode="magic"), "mode"),
    (dict(sampler="gpu"), "sampler"),
    (dict(sampler="device"), "sampler"),
    (dict(mask_fraction=0), "mask_fraction"),
    (dict(grad_clip=-1), "grad_clip"),
    (dict(axes=5), "axes"),
    (dict(name=""), "name"),
    (dict(resume=True), "resume"),
    (dict(resume="yes", checkpoint="ckpt"), "resume"),
    (dict(noise_model=NoiseModel()), "noise_model"),
    (dict(val_images="held-out"), "val_images"),
    (dict(patch_size=(64, 32)), "patch_size"),
    (dict(patch_size=12), "patch_size"),
    (dict(patch_size=True), "patch_size"),
    (dict(patch_size=(16, 40)), "patch_size"),  # 40 - 16 is not a multiple of 16: 40 would never be drawn
    (dict(patch_size=30), "patch_size"),  # not a multiple of the tiny preset's grid (4 px)
    (dict(patch_size=(32, 64)), "patch_size"),  # 64 is larger than the 48 px images
    (dict(base="scratch:huge"), "base"),
    (dict(base="no-such-model"), "base"),
    (dict(base=42), "base"),
    (dict(base=torch.nn.Conv2d(1, 1, 3)), "base"),
    (dict(device="tpu"), "device"),
    (dict(device=3), "device"),
    (dict(precision="fp8"), "precision"),
    (dict(precision=16), "precision"),
    (dict(patchsize=32), "patchsize"),  # an unknown option is named, not a TypeError from the dataclass
    (dict(progress=42), "progress"),
    (dict(cancel="stop"), "cancel"),
]


@pytest.mark.parametrize("overrides, argument", BAD_OPTIONS, ids=[f"{a}={v!r}"[:40] for o, a in BAD_OPTIONS for v in [list(o.values())[-1]]])
def test_a_bad_option_is_refused_naming_it(overrides, argument):
    noisy, clean = images()
    with pytest.raises(InvalidInputError) as info:
        call(noisy, clean, **overrides)
    assert argument in str(info.value), str(info.value)


@pytest.mark.parametrize(
    "mode, which, value",
    [
        ("supervised", "noisy", NAN),
        ("supervised", "noisy", INF),
        ("supervised", "clean", -INF),
        ("self-supervised", "noisy", NAN),
        ("synthetic", "clean", NAN),
    ],
)
def test_nan_or_inf_pixels_are_refused_in_every_mode(mode, which, value):
    noisy, clean = images()
    clean = [c / 200 for c in clean]
    arrays = {"noisy": noisy, "clean": clean}
    arrays[which] = with_bad(arrays[which], 1, value)
    extra = dict(noise_model=NoiseModel("gaussian", 5, 20)) if mode == "synthetic" else {}
    args = {
        "supervised": (arrays["noisy"], arrays["clean"]),
        "self-supervised": (arrays["noisy"], None),
        "synthetic": (None, arrays["clean"]),
    }[mode]
    with pytest.raises(InvalidInputError, match=rf"^{which} image 1 contains NaN or inf .*nan_to_num"):
        call(*args, mode=mode, **extra)


def test_nan_in_validation_pairs_is_refused_naming_val_images():
    noisy, clean = images()
    bad = with_bad([noisy[0]], 0, NAN)[0]
    with pytest.raises(InvalidInputError, match="^val_images noisy image 0 contains NaN or inf"):
        call(noisy, clean, val_images=[(bad, clean[0])])


def test_float64_beyond_float32_is_refused_as_inf():
    noisy, clean = images()
    noisy = [n.astype(np.float64) for n in noisy]
    noisy[0][0, 0] = 1e300  # finite in float64, inf once training reads it as float32
    with pytest.raises(InvalidInputError, match="^noisy image 0 contains NaN or inf"):
        call(noisy, clean)


def test_a_lazy_input_is_checked_where_it_is_read_not_loaded_whole():
    """dask input: the normaliser's pixel sample catches the NaN, and TrainImage.read checks each patch."""
    noisy, clean = images()
    lazy = [da.from_array(n, chunks=16) for n in with_bad(noisy, 2, NAN)]
    with pytest.raises(InvalidInputError, match="^noisy image 2 contains NaN or inf"):
        call(lazy, clean)
    patchy = np.ones((1, 1, 64, 64), np.float32)
    patchy[0, 0, 40, 40] = NAN
    image = TrainImage(da.from_array(patchy, chunks=16), None, None, index=4)
    assert image.read("noisy", 0, 0, 0, 32).shape == (1, 32, 32)  # a NaN elsewhere is not read here
    with pytest.raises(InvalidInputError, match="^noisy image 4 contains NaN or inf .*rows 32-63"):
        image.read("noisy", 0, 32, 32, 32)


def test_a_non_numeric_dtype_is_refused_with_a_dtype_error():
    noisy, clean = images()
    with pytest.raises(InvalidDtypeError, match="^noisy image 0 has dtype complex64"):
        call([noisy[0].astype(np.complex64), *noisy[1:]], clean)
    with pytest.raises(InvalidDtypeError, match="^clean image 2 has dtype bool"):
        call(noisy, [*clean[:2], clean[2] > 120])


def test_mismatched_shapes_and_counts_name_both_arguments():
    noisy, clean = images()
    with pytest.raises(InvalidInputError, match="pair 1: noisy .* but clean has"):
        call(noisy, [clean[0], clean[1][:40], clean[2]])
    with pytest.raises(InvalidInputError, match="3 noisy but 2 clean"):
        finetune(noisy, clean[:2], mode="self-supervised", **tiny())


@pytest.mark.parametrize("side", [1, 8])
def test_images_too_small_for_a_patch_state_the_minimum(side):
    noisy, clean = images(side=side)
    with pytest.raises(InvalidInputError, match=r"^noisy images are too small .*accepted: at least one of at least 32 x 32"):
        call(noisy, clean)
    with pytest.raises(InvalidInputError, match=rf"^noisy images are too small for the smallest patch \({MIN_PATCH} px\)"):
        call(noisy, clean, patch_size=None)


def test_a_single_image_too_short_for_its_validation_strip_states_the_rows_it_needs():
    noisy, clean = images(count=1, side=20)
    with pytest.raises(InvalidInputError, match=r"^noisy image 0 is 20 x 20 .*val_fraction 0.15 .*at least 7 rows .*at least 44 rows"):
        call(noisy, clean, patch_size=None)


def test_a_base_with_other_channels_is_refused():
    noisy, clean = images()
    with pytest.raises(InvalidInputError, match="^base model .* takes 3 channel"):
        call(noisy, clean, base=build_model("tiny", in_channels=3))


def test_fp16_on_the_cpu_raises_restores_error_and_fp16_on_a_gpu_is_refused_not_swapped():
    noisy, clean = images()
    with pytest.raises(InvalidInputError) as restore_error:
        runtime.pick_precision("fp16", torch.device("cpu"))
    with pytest.raises(InvalidInputError) as train_error:
        call(noisy, clean, device="cpu", precision="fp16")
    assert str(train_error.value) == str(restore_error.value) and "precision" in str(train_error.value)
    with pytest.raises(InvalidInputError, match="precision 'fp16' is not used for training"):
        training_precision("fp16", torch.device("cuda"))  # resolved without touching a GPU


def test_auto_precision_for_training_is_the_documented_one(monkeypatch):
    cpu = torch.device("cpu")
    for native in (True, False):
        monkeypatch.setattr(runtime, "cpu_has_bf16", lambda: native)
        assert training_precision("auto", cpu) == CPU_AUTO_TRAINING_PRECISION == "fp32"
    monkeypatch.setattr(runtime, "cpu_has_bf16", lambda: True)
    assert training_precision("bf16", cpu) == "bf16"  # an explicit choice runs as asked
    monkeypatch.setattr(runtime, "cpu_has_bf16", lambda: False)
    with pytest.raises(InvalidInputError, match="precision 'bf16' needs"):
        training_precision("bf16", cpu)  # restore's own error
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert training_precision("auto", torch.device("cuda")) == "bf16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert training_precision("auto", torch.device("cuda")) == "fp32"  # restore would pick fp16: no loss scaling here


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal where CUDA is missing")
def test_a_missing_device_is_refused_like_restore():
    noisy, clean = images()
    with pytest.raises(InvalidInputError, match="device 'cuda'.*not available"):
        call(noisy, clean, device="cuda")


def test_validation_runs_before_any_work():
    """A bad option after a good generator start: nothing is yielded, no model is built."""
    noisy, clean = images()
    gen = iter_finetune(FinetuneOptions(noisy=noisy, clean=clean, **tiny(batch_size=0)))
    with pytest.raises(InvalidInputError, match="batch_size"):
        next(gen)


def test_every_error_is_a_gama_ir_error():
    noisy, clean = images()
    for overrides, _ in BAD_OPTIONS[:5]:
        with pytest.raises(GamaIRError):
            call(noisy, clean, **overrides)


def test_a_valid_tiny_call_still_trains_and_auto_patch_fits_the_images():
    noisy, clean = images()
    seen = []
    net = call(noisy, clean, progress=seen.append, cancel=threading.Event())
    training = net.card.training
    assert training["steps"] == 2 and training["precision"] == "fp32" and training["patch_size"] == 32
    assert math.isfinite(net.card.metrics["validation"]["psnr_after"]) and seen[-1].step == 2
    checked = validate_options(FinetuneOptions(noisy=noisy, clean=clean, **tiny(patch_size=None)))
    assert (checked.smallest, checked.largest) == (SIDE, SIDE)  # 64, or the largest that fits: 48
    one = validate_options(FinetuneOptions(noisy=noisy[:1], clean=clean[:1], **tiny(patch_size=None, base="scratch:w16")))
    assert one.smallest == 32  # 41 training rows, rounded down to the 16 px grid of a 4-level model
