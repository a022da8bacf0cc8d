"""CPU precision: "auto" is bf16 where oneDNN runs it natively and fp32 elsewhere; bf16 stays close to fp32;
asking for bf16 on a CPU without it is refused with what to use instead."""

import numpy as np
import pytest

from napari_gama_ir import InvalidInputError, plan_restore, restore
from napari_gama_ir.engine import runtime


@pytest.mark.parametrize("native, expected", [(True, "bf16"), (False, "fp32")])
def test_auto_precision_follows_the_cpu(monkeypatch, tiny_model, native, expected):
    monkeypatch.setattr(runtime, "cpu_has_bf16", lambda: native)
    plan = plan_restore(np.zeros((32, 32), np.float32), tiny_model, device="cpu")
    assert plan.precision == expected


def test_bf16_on_a_cpu_without_it_names_the_alternatives(monkeypatch, tiny_model):
    monkeypatch.setattr(runtime, "cpu_has_bf16", lambda: False)
    with pytest.raises(InvalidInputError, match="'fp32' or 'auto'"):
        restore(np.zeros((32, 32), np.float32), tiny_model, device="cpu", precision="bf16")


@pytest.mark.skipif(not runtime.cpu_has_bf16(), reason="this CPU has no native bfloat16")
def test_bf16_output_is_close_to_fp32(tiny_model):
    rng = np.random.default_rng(0)
    image = (1000 + 300 * rng.random((64, 80))).astype(np.float32)
    fp32 = restore(image, tiny_model, device="cpu", precision="fp32").astype(np.float64)
    bf16 = restore(image, tiny_model, device="cpu", precision="bf16").astype(np.float64)
    assert not np.array_equal(fp32, bf16)  # the bf16 path really ran
    data_range = image.max() - image.min()
    assert 10 * np.log10(data_range**2 / np.mean((fp32 - bf16) ** 2)) > 35
