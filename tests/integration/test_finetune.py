"""Fine-tuning: the loss falls, resume reproduces an uninterrupted run, cancel returns a usable model,
self-supervised mode trains on noisy data alone, bad pairs are refused, and the result saves and restores."""

import threading

import numpy as np
import pytest
import torch

from napari_gama_ir import FinetuneCancelled, InvalidInputError, load_model, restore, save_model
from napari_gama_ir.engine.runtime import cpu_has_bf16
from napari_gama_ir.training import FinetuneOptions, finetune, iter_finetune, run_finetune


@pytest.fixture
def pairs():
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:96, 0:96]
    clean = [(100 + 80 * np.sin(xx / (5 + i)) * np.cos(yy / (7 + i))).astype(np.float32) for i in range(3)]
    noisy = [(c + rng.normal(0, 25, c.shape)).astype(np.float32) for c in clean]
    return noisy, clean


def small(**kw):
    return dict(base="scratch:tiny", patch_size=32, batch_size=4, eval_every=10, val_crop=64, **kw)


def test_supervised_run_lowers_the_loss_and_improves_validation(pairs):
    noisy, clean = pairs
    seen = []
    net = finetune(noisy, clean, steps=40, progress=seen.append, lr=3e-3, **small())
    losses = [p.loss for p in seen if p.step > 0]
    assert np.mean(losses[-10:]) < np.mean(losses[:10])
    v = net.card.metrics["validation"]
    assert v["psnr_after"] > v["psnr_before"] + 1.0
    assert net.card.training["steps"] == 40 and net.card.training["mode"] == "supervised"


@pytest.mark.skipif(not cpu_has_bf16(), reason="this CPU has no native bfloat16")
def test_bf16_training_on_the_cpu_learns_like_fp32(pairs):
    noisy, clean = pairs
    runs = {p: finetune(noisy, clean, steps=40, lr=3e-3, device="cpu", precision=p, **small()) for p in ("fp32", "bf16")}
    assert runs["bf16"].card.training["precision"] == "bf16" and runs["fp32"].card.training["precision"] == "fp32"
    assert not torch.equal(runs["bf16"].intro.weight, runs["fp32"].intro.weight)  # the bf16 path really ran
    gains = {p: net.card.metrics["validation"]["psnr_after"] - net.card.metrics["validation"]["psnr_before"] for p, net in runs.items()}
    assert gains["bf16"] > 1.0 and abs(gains["bf16"] - gains["fp32"]) < 1.0, gains


def test_resume_continues_exactly(pairs, tmp_path):
    noisy, clean = pairs
    ckpt = tmp_path / "ckpt"
    full = finetune(noisy, clean, steps=20, **small())
    gen = iter_finetune(FinetuneOptions(noisy=noisy, clean=clean, steps=20, checkpoint=str(ckpt), **small()))
    for p in gen:
        if p.step == 10:  # a checkpoint is written at every validation
            gen.close()
            break
    resumed = finetune(noisy, clean, steps=20, checkpoint=str(ckpt), resume=True, **small())
    for (k, a), b in zip(full.state_dict().items(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6, msg=k)


def test_cancel_returns_the_best_model_so_far(pairs):
    noisy, clean = pairs
    stop = threading.Event()

    def progress(p):
        if p.step >= 12:
            stop.set()

    net = finetune(noisy, clean, steps=500, progress=progress, cancel=stop, **small())
    assert net.card.training["steps"] < 500
    out = restore(noisy[0], net)
    assert out.shape == noisy[0].shape and np.isfinite(out).all()


def test_cancel_before_start_raises():
    stop = threading.Event()
    stop.set()
    with pytest.raises(FinetuneCancelled):
        opts = FinetuneOptions(noisy=[np.zeros((40, 40), np.float32)], mode="self-supervised", stop=stop, **small())
        run_finetune(iter_finetune(opts), cancel=stop)


def test_self_supervised_on_noisy_stack_alone(pairs, user_models_dir):
    noisy, _ = pairs
    stack = np.stack(noisy)  # ZYX: planes contribute as images
    net = finetune(stack, None, mode="self-supervised", steps=30, axes="ZYX", lr=3e-3, **small())
    v = net.card.metrics["validation"]
    assert np.isfinite(v["psnr_after"])
    path = save_model(net, "n2v-test")
    assert path.parent == user_models_dir
    reloaded = load_model("n2v-test")
    np.testing.assert_array_equal(restore(noisy[0], reloaded), restore(noisy[0], net))


def test_mismatched_pairs_are_refused(pairs):
    noisy, clean = pairs
    with pytest.raises(InvalidInputError, match="shape"):
        finetune([noisy[0]], [clean[0][:50]], steps=5, **small())
    with pytest.raises(InvalidInputError, match="2 noisy but 1 clean"):
        finetune(noisy[:2], clean[:1], steps=5, **small())
    with pytest.raises(InvalidInputError, match="self-supervised"):
        finetune(noisy, None, mode="supervised", steps=5, **small())
    with pytest.raises(InvalidInputError, match="mode"):
        finetune(noisy, clean, mode="magic", steps=5, **small())


def test_stop_event_in_options_ends_the_generator_with_the_best_model(pairs):
    noisy, clean = pairs
    opts = FinetuneOptions(noisy=noisy, clean=clean, steps=500, stop=threading.Event(), **small())
    gen, steps = iter_finetune(opts), []
    with pytest.raises(StopIteration) as done:
        while True:  # what the napari panel's Stop does: set the event while a worker drives the generator
            steps.append(next(gen).step)
            if steps[-1] == 12:
                opts.stop.set()
    net = done.value.value
    assert steps[-1] == 12 and net.card.training["steps"] == 12
    assert "psnr_after" in net.card.metrics["validation"]


def test_a_patch_range_trains_on_sides_within_it_and_keeps_pixels_per_step(pairs):
    noisy, clean = pairs
    shapes = []
    opts = FinetuneOptions(noisy=noisy, clean=clean, steps=12, **{**small(), "patch_size": (32, 64)})
    gen = iter_finetune(opts)
    import napari_gama_ir.training.data as data

    original = data.PatchSampler.batch

    def spy(self, size, patch_size=None):
        out = original(self, size, patch_size)
        shapes.append(out[0].shape)
        return out

    data.PatchSampler.batch = spy
    try:
        net = run_finetune(gen)
    finally:
        data.PatchSampler.batch = original
    sides = {s[-1] for s in shapes}
    assert sides <= {32, 48, 64} and len(sides) > 1, sides
    for b, _, h, w in shapes:
        assert h == w and b == max(1, round(4 * (32 / h) ** 2))
    assert net.card.training["patch_size"] == [32, 64]


@pytest.mark.parametrize("bad", [(64, 32), (4, 32), (32,), "big", 12.5])
def test_bad_patch_sizes_are_refused_with_the_value(pairs, bad):
    noisy, clean = pairs
    with pytest.raises(InvalidInputError, match="patch_size"):
        finetune(noisy, clean, steps=2, **{**small(), "patch_size": bad})


def test_synthetic_training_with_batches_made_on_the_device(pairs, tmp_path):
    """sampler="device" (the GPU default for synthetic noise) trains, is recorded, and resumes exactly."""
    from napari_gama_ir.training import NoiseModel

    _, clean = pairs
    clean = [c / 200 for c in clean]
    opts = dict(mode="synthetic", noise_model=NoiseModel("gaussian", 10, 30), sampler="device", lr=3e-3, **small())
    seen = []
    net = finetune(None, clean, steps=40, progress=seen.append, **opts)
    losses = [p.loss for p in seen if p.step > 0]
    assert np.mean(losses[-10:]) < np.mean(losses[:10])
    assert net.card.training["sampler"] == "DevicePatchSampler"
    assert net.card.metrics["validation"]["psnr_after"] > net.card.metrics["validation"]["psnr_before"]

    ckpt = tmp_path / "ckpt"
    full = finetune(None, clean, steps=20, **opts)
    gen = iter_finetune(FinetuneOptions(noisy=None, clean=clean, steps=20, checkpoint=str(ckpt), **opts))
    for p in gen:
        if p.step == 10:
            gen.close()
            break
    resumed = finetune(None, clean, steps=20, checkpoint=str(ckpt), resume=True, **opts)
    for (k, a), b in zip(full.state_dict().items(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6, msg=k)


@pytest.mark.parametrize("mode, sampler", [("supervised", "device"), ("supervised", "gpu")])
def test_a_sampler_that_does_not_fit_the_mode_is_refused(pairs, mode, sampler):
    noisy, clean = pairs
    with pytest.raises(InvalidInputError, match=sampler):
        finetune(noisy, clean, mode=mode, steps=2, sampler=sampler, **small())


def test_more_validation_draws_score_each_crop_under_several_noises(pairs):
    """val_draws=3 validates each crop under three noise draws (one by default), and a bad count is refused."""
    from napari_gama_ir.training import NoiseModel

    _, clean = pairs
    clean = [c / 200 for c in clean]
    opts = dict(mode="synthetic", noise_model=NoiseModel("gaussian", 10, 30), val_images=clean[:1], **small())
    one = finetune(None, clean[1:], steps=10, **opts)
    three = finetune(None, clean[1:], steps=10, val_draws=3, **opts)
    assert one.card.metrics["validation"]["crops"] == 1
    assert three.card.metrics["validation"]["crops"] == 3
    with pytest.raises(InvalidInputError, match="val_draws"):
        finetune(None, clean, steps=2, val_draws=0, **opts)


def test_a_continued_run_keeps_its_base_record_apart(pairs, tmp_path):
    """Fine-tuning a fine-tuned model: the base's training record (its command, its notes) moves whole
    under previous_phase instead of passing as the new run's, steps add up, and the one-line results of
    the earlier phases are kept in order."""
    noisy, clean = pairs
    first = finetune(noisy, clean, steps=10, **small())
    first.card = first.card.replace(training={**first.card.training, "command": "the first run's command"})
    path = save_model(first, tmp_path / "first")
    second = finetune(noisy, clean, steps=20, **{**small(), "base": str(path)})
    training = second.card.training
    assert "command" not in training and training["previous_phase"]["command"] == "the first run's command"
    assert "history" not in training["previous_phase"]
    assert training["steps"] == 20 and training["total_steps"] == 30
    assert second.card.metrics["earlier_summaries"] == [first.card.metrics["summary"]]
    third = finetune(noisy, clean, steps=10, **{**small(), "base": second})
    assert third.card.training["total_steps"] == 40
    assert third.card.metrics["earlier_summaries"] == [first.card.metrics["summary"], second.card.metrics["summary"]]


def test_progress_reports_psnr_in_db_and_self_supervised_runs_an_estimate(pairs):
    """Supervised progress carries the loss's kind (minus the patches' PSNR: ``train_psnr``) and no estimate;
    self-supervised progress carries the estimated PSNR of the validation crops at every validation (no clean
    image needed), and the card keeps the estimates before and after."""
    noisy, clean = pairs
    seen = []
    finetune(noisy, clean, steps=10, progress=seen.append, **small())
    assert all(p.loss_name == "psnr" and p.val_estimated_psnr is None for p in seen)
    assert all(p.train_psnr == -p.loss > 0 for p in seen if p.step)
    seen = []
    net = finetune(np.stack(noisy), None, mode="self-supervised", axes="ZYX", steps=20, progress=seen.append, **small())
    validations = [p for p in seen if p.val_psnr is not None]
    assert [p.step for p in validations] == [0, 10, 20] and all(p.loss_name == "masked mse" for p in seen)
    assert all(p.train_psnr is None for p in seen)  # an MSE against noise is no PSNR
    assert all(5 < p.val_estimated_psnr < 80 for p in validations)
    v = net.card.metrics["validation"]
    assert v["estimated_psnr_before"] == pytest.approx(validations[0].val_estimated_psnr)
    assert 5 < v["estimated_psnr_after"] < 80


def test_a_stopped_run_ends_with_its_final_validation(pairs):
    """Stopped between validations, the generator's last item is the validation of the weights it stopped with
    (so a plot shows what the result reports), with the run's real length as its total."""
    noisy, clean = pairs
    opts = FinetuneOptions(noisy=noisy, clean=clean, steps=500, stop=threading.Event(), **small())
    gen, seen = iter_finetune(opts), []
    with pytest.raises(StopIteration) as done:
        while True:
            seen.append(next(gen))
            if seen[-1].step == 13:
                opts.stop.set()
    net, last = done.value.value, seen[-1]
    assert last.message == "final validation" and last.step == last.total == 13 == net.card.training["steps"]
    assert np.isnan(last.loss) and last.val_psnr is not None
    scores = [p.val_psnr for p in seen if p.val_psnr is not None]
    assert net.card.metrics["validation"]["psnr_after"] == pytest.approx(max(scores))  # the kept model was plotted
