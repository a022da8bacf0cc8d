"""On a CUDA GPU: restore picks it, runs under fp16/bf16 autocast, sizes tile and batch from free memory, and
agrees with the CPU. Skipped cleanly where there is no CUDA."""

import numpy as np
import pytest
import torch

from napari_gama_ir import plan_restore, restore

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


def test_auto_picks_cuda_with_mixed_precision(tiny_model):
    plan = plan_restore(np.zeros((64, 64), np.float32), tiny_model)
    assert plan.device.startswith("cuda") and plan.precision in ("fp16", "bf16")
    assert plan.batch_size >= 1


@pytest.mark.parametrize("precision", ["fp32", "fp16", "bf16"])
def test_gpu_matches_cpu(tiny_model, noisy_zyx, precision):
    """Whole planes, one chunk, each precision (the accelerator path, engine.resident)."""
    cpu = restore(noisy_zyx, tiny_model, axes="ZYX", device="cpu").astype(np.float64)
    gpu = restore(noisy_zyx, tiny_model, axes="ZYX", device="cuda", precision=precision).astype(np.float64)
    # uint16 steps; fp32 convolutions on the GPU use TF32 (PyTorch's cuDNN default), so a value may round the other way
    tol = {"fp32": 1.0, "fp16": 2.0, "bf16": 8.0}[precision]
    assert np.abs(cpu - gpu).max() <= tol


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "float32"])
def test_gpu_tiles_and_chunks_match_cpu(make_tiny, rng, monkeypatch, dtype):
    """Several chunks in flight (the result of one copied back while the next computes), several tiles and
    batches per plane, channels run one by one: the same as the CPU's host path."""
    monkeypatch.setattr("napari_gama_ir.engine.plan.CHUNK_BYTES", 2 * 3 * 4 * 72 * 80)
    monkeypatch.setattr("napari_gama_ir.engine.plan.GPU_CHUNK_FACTOR", 1)  # 2 planes per chunk on the GPU too
    data = (rng.random((5, 72, 80, 3)) * 250).astype(dtype)
    net = make_tiny()
    opts = dict(axes="ZYXC", tile=48, overlap=16, batch_size=3)
    cpu = restore(data, net, device="cpu", precision="fp32", **opts).astype(np.float64)
    gpu = restore(data, net, device="cuda", precision="fp32", **opts).astype(np.float64)
    assert np.abs(cpu - gpu).max() <= (1 if dtype != "float32" else 0.5)  # TF32 convolutions, see above


def test_self_ensemble_on_the_gpu_matches_the_cpu(make_tiny, rng):
    """The 8 views are turned and averaged on the device; the mean matches the CPU's (which differs from the
    plain result by up to 0.6 here: the tiny network is far from symmetric)."""
    data = rng.random((2, 64, 80), dtype=np.float32)
    net = make_tiny()
    opts = dict(axes="ZYX", tile=48, overlap=16, batch_size=3, self_ensemble=True)
    cpu = restore(data, net, device="cpu", precision="fp32", **opts)
    gpu = restore(data, net, device="cuda", precision="fp32", **opts)
    assert np.abs(cpu - gpu).max() < 0.05  # TF32 convolutions, see above


def test_pinned_host_memory_goes_back_after_a_restore(make_tiny, rng, monkeypatch):
    """The pinned (page-locked) blocks that carried chunks to and from the GPU are given back to the system
    when restore() ends, so a long napari session does not keep holding them."""
    from napari_gama_ir.engine.resident import release_host_cache

    monkeypatch.setattr("napari_gama_ir.engine.plan.CHUNK_BYTES", 2 * 4 * 64 * 64)
    monkeypatch.setattr("napari_gama_ir.engine.plan.GPU_CHUNK_FACTOR", 1)  # three chunks, two copies in flight
    data = (rng.random((6, 64, 64)) * 1000).astype(np.uint16)
    torch.cuda.synchronize()
    release_host_cache("cuda")  # start from an empty cache, whatever earlier tests left
    before = torch.cuda.host_memory_stats()
    out = restore(data, make_tiny(), device="cuda")
    after = torch.cuda.host_memory_stats()
    created = after["num_host_alloc"] - before["num_host_alloc"]
    given_back = after["num_host_free"] - before["num_host_free"]
    assert created > 0, after
    assert given_back == created, after
    assert out.shape == data.shape and out.dtype == np.uint16


def test_synthetic_training_on_cuda_makes_its_batches_there():
    from napari_gama_ir import finetune
    from napari_gama_ir.training import NoiseModel

    yy, xx = np.mgrid[0:96, 0:96]
    clean = [(0.5 + 0.4 * np.sin(xx / (5 + i)) * np.cos(yy / (7 + i))).astype(np.float32) for i in range(3)]
    seen = []
    net = finetune(None, clean, mode="synthetic", noise_model=NoiseModel("mixed", 5, 30, 5, 50), base="scratch:tiny",
                   steps=30, patch_size=(32, 64), batch_size=8, eval_every=10, val_crop=64, lr=3e-3, device="cuda",
                   progress=seen.append)  # fmt: skip
    assert net.card.training["sampler"] == "DevicePatchSampler"
    assert net.card.training["device"].startswith("cuda")
    losses = [p.loss for p in seen if p.step > 0]
    assert np.mean(losses[-10:]) < np.mean(losses[:10])
