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
    cpu = restore(noisy_zyx, tiny_model, axes="ZYX", device="cpu").astype(np.float64)
    gpu = restore(noisy_zyx, tiny_model, axes="ZYX", device="cuda", precision=precision).astype(np.float64)
    tol = {"fp32": 1e-3, "fp16": 2.0, "bf16": 8.0}[precision]  # uint16 steps
    assert np.abs(cpu - gpu).max() <= tol
