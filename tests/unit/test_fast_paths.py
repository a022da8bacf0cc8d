"""Every fast CPU path computes what the plain path computes (to float rounding): the inference kernels of the
shipped models, GAMA's in-place bf16 updates, ONNX Runtime on the BioImage.IO export, and restore() with
torch's threads sized to the free cores."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_gama_ir import load_model, restore
from napari_gama_ir.engine import runtime
from napari_gama_ir.model import GAMA
from napari_gama_ir.model.gama_ir import export_mode
from napari_gama_ir.samples import load_sample


def _crop(channels: int = 1) -> torch.Tensor:
    """A 64 x 64 crop of the shipped noisy nuclei sample, scaled to [0, 1]: 1 x C x 64 x 64 float32."""
    img = load_sample("fluorescence-2d")["noisy"].astype(np.float32)
    crop = img[100:164, 100:164]
    crop = (crop - crop.min()) / (crop.max() - crop.min())
    return torch.from_numpy(np.ascontiguousarray(crop))[None, None].expand(1, channels, -1, -1).contiguous()


@pytest.mark.parametrize("name", ["photo-gray", "general-gray", "fluorescence"])
def test_shipped_model_inference_path_equals_the_portable_path(name):
    """oneDNN 1x1 convs with fused residuals, channels-last memory and GAMA added in place give what the
    portable export path (NCHW, plain operators) gives, on a real 64 x 64 crop."""
    net = load_model(name).eval()
    x = _crop(net.card.in_channels)
    kept = x.clone()
    with torch.inference_mode():
        fast = net(x)
        with export_mode():
            plain = net(x)
    assert (fast - plain).abs().max() <= 1e-4
    assert torch.equal(x, kept)


def test_gama_in_place_bf16_update_equals_the_broadcast_sum():
    """The bf16 rank-1 updates of ``add_terms_`` (channels-last) give ``x + f_c + f_h + f_w``."""
    torch.manual_seed(0)
    gama = GAMA().to(torch.bfloat16)
    x = torch.randn(2, 12, 19, 23, dtype=torch.bfloat16).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        expected = gama(x.clone())
        fast = gama.add_terms_(x.clone())
    torch.testing.assert_close(fast.float(), expected.float(), rtol=0, atol=0.05)  # bf16 rounding of |x| ~ 4


def test_onnx_runtime_on_the_shared_export_equals_pytorch(make_tiny):
    ort = pytest.importorskip("onnxruntime")
    import io

    from napari_gama_ir.zoo.bioimageio import export_onnx

    net = make_tiny().eval()
    buf = io.BytesIO()
    export_onnx(net, torch.rand(1, 1, 32, 32), buf)
    session = ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])
    x = torch.rand(2, 1, 48, 64, generator=torch.Generator().manual_seed(1))  # other sizes than the export's
    with torch.inference_mode():
        expected = net(x).numpy()
    np.testing.assert_allclose(session.run(None, {"input": x.numpy()})[0], expected, atol=1e-4)


def test_restore_with_threads_sized_to_free_cores_equals_fixed_threads(tiny_model, monkeypatch):
    stack = (np.random.default_rng(0).random((3, 40, 48)) * 1000).astype(np.uint16)
    monkeypatch.setattr(runtime, "ADAPT_THREADS", False)
    fixed = restore(stack, tiny_model, axes="ZYX", device="cpu", precision="fp32", dtype="float32")
    monkeypatch.setattr(runtime, "ADAPT_THREADS", True)
    before = torch.get_num_threads()
    sized = restore(stack, tiny_model, axes="ZYX", device="cpu", precision="fp32", dtype="float32")
    np.testing.assert_allclose(sized, fixed, rtol=1e-5, atol=1e-5)
    assert torch.get_num_threads() == before  # torch's own setting is put back


class FakeMachine:
    """``CoreMeter``'s clock: other processes busy on ``others`` cores, this one on ``own``."""

    def __init__(self, others: float, own: float = 1.0, has_proc: bool = True) -> None:
        self.t, self.others, self.own, self.has_proc = 0.0, others, own, has_proc

    def now(self):
        self.t += 0.25
        busy = (self.others + self.own) * self.t if self.has_proc else None
        return self.t, busy, self.own * self.t


@pytest.mark.parametrize(("others", "cap", "expected"), [(0.0, 2, 2), (0.3, 2, 2), (1.0, 2, 1), (1.7, 2, 1), (5.0, 2, 1),
                                                          (1.0, 8, 7), (0.0, 1, 1)])  # fmt: skip
def test_core_meter_leaves_the_busy_cores_to_other_processes(monkeypatch, others, cap, expected):
    machine = FakeMachine(others)
    monkeypatch.setattr(runtime.CoreMeter, "_now", staticmethod(machine.now))
    monkeypatch.setattr(runtime, "usable_cores", lambda: 8 if cap == 8 else 2)
    meter = runtime.CoreMeter(cap)
    assert meter.threads() == expected


def test_core_meter_keeps_the_cap_without_proc_stat(monkeypatch):
    machine = FakeMachine(1.0, has_proc=False)
    monkeypatch.setattr(runtime.CoreMeter, "_now", staticmethod(machine.now))
    assert runtime.CoreMeter(2).threads() == 2


def test_core_meter_keeps_its_last_count_over_a_short_window(monkeypatch):
    machine = FakeMachine(1.0)
    monkeypatch.setattr(runtime.CoreMeter, "_now", staticmethod(machine.now))
    monkeypatch.setattr(runtime, "usable_cores", lambda: 2)
    meter = runtime.CoreMeter(2)
    assert meter.threads() == 1
    machine.others = 0.0
    monkeypatch.setattr(runtime, "CORE_WINDOW_S", 10.0)
    assert meter.threads() == 1  # 0.25 s since the last decision: too short to change it
    monkeypatch.setattr(runtime, "CORE_WINDOW_S", 0.1)
    assert meter.threads() == 2


def test_restore_runs_the_network_with_the_meters_threads(tiny_model, monkeypatch):
    """restore() sets torch's threads to the meter's count during each forward pass and puts them back."""
    seen = []
    tiny_model.register_forward_pre_hook(lambda module, args: seen.append(torch.get_num_threads()))
    monkeypatch.setattr(runtime.CoreMeter, "threads", lambda self: 1)
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        restore(np.random.default_rng(0).random((2, 32, 32), dtype=np.float32), tiny_model, axes="ZYX", device="cpu")
        assert seen and set(seen) == {1}
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(previous)


def test_core_meter_started_from_an_earlier_snapshot_decides_on_its_first_call(monkeypatch):
    """A session's first forward pass is sized from the load since the package was imported."""
    machine = FakeMachine(1.0)
    monkeypatch.setattr(runtime.CoreMeter, "_now", staticmethod(machine.now))
    monkeypatch.setattr(runtime, "usable_cores", lambda: 2)
    monkeypatch.setattr(runtime, "CORE_WINDOW_S", 0.4)
    earlier = machine.now()
    assert runtime.CoreMeter(2).threads() == 2  # a fresh window: too short
    assert runtime.CoreMeter(2, mark=earlier).threads() == 1


@pytest.mark.skipif(not runtime.cpu_has_bf16(), reason="this CPU has no native bfloat16")
@pytest.mark.parametrize("name", ["photo-gray", "fluorescence"])
def test_bf16_weights_give_the_portable_path_in_bf16_precision(name):
    """CPU bf16 inference runs a copy with bf16 weights (oneDNN 1x1 convs with the residual in the kernel), its
    first and last convolutions exact in float32: within bf16 rounding of the plain fp32 path, about as close
    as autocast, and it leaves the model as it was."""
    net = load_model(name).eval()
    x = _crop(net.card.in_channels)
    with torch.inference_mode():
        with export_mode():
            plain = net(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            autocast = net(x).float()
        weights = runtime.bf16_copy(net)(x)
    copy = runtime.bf16_copy(net)
    assert next(net.parameters()).dtype == torch.float32 and next(copy.middle.parameters()).dtype == torch.bfloat16
    assert torch.equal(copy.intro.weight, net.intro.weight) and torch.equal(copy.ending.weight, net.ending.weight)
    assert runtime.bf16_copy(net) is runtime.bf16_copy(net)  # made once while the model is unchanged
    assert weights.dtype == torch.float32  # the residual added at the input's precision
    assert (weights - plain).abs().max() <= 0.05
    assert (weights - plain).pow(2).mean() <= 2 * (autocast - plain).pow(2).mean()


def test_restore_keeps_its_private_copy_until_the_callers_model_changes(tiny_model, monkeypatch):
    """restore() never changes a caller's model; its private copy is made once, not per call, and made anew
    when the caller's weights change in place (as training changes them)."""
    image = np.random.default_rng(3).random((32, 32)).astype(np.float32)
    copies = []
    real = runtime.copy.deepcopy
    monkeypatch.setattr(runtime.copy, "deepcopy", lambda obj, *a: copies.append(obj) or real(obj, *a))
    first = restore(image, tiny_model, device="cpu", precision="fp32")
    again = restore(image, tiny_model, device="cpu", precision="fp32")
    assert np.array_equal(first, again) and len(copies) == 1
    with torch.no_grad():
        tiny_model.ending.bias += 0.25  # in place: the copy is stale
    changed = restore(image, tiny_model, device="cpu", precision="fp32")
    assert len(copies) == 2
    tiny_model.ending.bias.data = tiny_model.ending.bias.data - 0.25  # new memory, back to the first values
    np.testing.assert_allclose(restore(image, tiny_model, device="cpu", precision="fp32"), first, atol=1e-5)
    assert len(copies) == 3
    np.testing.assert_allclose(changed, first + 0.25 * (np.percentile(image, 99.9) - np.percentile(image, 0.5)), rtol=1e-4, atol=1e-4)
