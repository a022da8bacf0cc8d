"""One options object: validated once with typed errors, the plan that prints is the plan that runs, an explicit
precision reaches dask workers, the CLI's flags are the options' fields, and shared models are never mutated."""

from __future__ import annotations

import dataclasses
import threading

import numpy as np
import pytest
import torch

from napari_gama_ir import InvalidDtypeError, InvalidInputError, RestoreOptions, plan_restore, restore
from napari_gama_ir.cli import _parser
from napari_gama_ir.engine import restore as engine
from napari_gama_ir.io.normalize import Normalizer

OPTS = {"device": "cpu", "axes": "ZYX"}

BAD_OPTIONS = {
    "tile-zero": ({"tile": 0}, InvalidInputError, "tile must be a positive int"),
    "tile-negative": ({"tile": -8}, InvalidInputError, "tile must be a positive int"),
    "tile-bool": ({"tile": True}, InvalidInputError, "tile must be a positive int"),
    "tile-float": ({"tile": 64.5}, InvalidInputError, "tile must be a positive int"),
    "tile-word": ({"tile": "big"}, InvalidInputError, "tile must be a positive int"),
    "overlap-negative": ({"overlap": -1}, InvalidInputError, "overlap must be a non-negative int"),
    "batch-zero": ({"batch_size": 0}, InvalidInputError, "batch_size must be a positive int"),
    "device-name": ({"device": "gpu"}, InvalidInputError, "device 'gpu' is not known"),
    "device-index": ({"device": "cuda:x"}, InvalidInputError, "device 'cuda:x' is not known"),
    "precision": ({"precision": "fp8"}, InvalidInputError, "precision 'fp8' is not known"),
    "mean-mode": ({"mean_mode": "banana"}, InvalidInputError, "mean_mode 'banana' is not known"),
    "dtype-complex": ({"dtype": "complex64"}, InvalidDtypeError, "cannot restore dtype complex64"),
    "dtype-bool": ({"dtype": bool}, InvalidDtypeError, "cannot restore dtype bool"),
    "dtype-word": ({"dtype": "pixels"}, InvalidDtypeError, "dtype 'pixels' is not a numpy dtype"),
    "overwrite": ({"overwrite": "yes"}, InvalidInputError, "overwrite must be True or False"),
    "self-ensemble": ({"self_ensemble": 1}, InvalidInputError, "self_ensemble must be True or False"),
    "out-type": ({"out": 5}, InvalidInputError, "out must be None, a path"),
    "out-suffix": ({"out": "x.bmp"}, InvalidInputError, "unsupported suffix"),
    "normalizer": ({"normalizer": (0, 1)}, InvalidInputError, "normalizer must be a Normalizer"),
    "axes-type": ({"axes": 3}, InvalidInputError, "axes must be a string"),
    "unknown": ({"tiles": 3}, InvalidInputError, "unknown restore option(s) ['tiles']"),
    "tile-array": ({"tile": np.array([256, 256])}, InvalidInputError, "tile must be a positive int"),
    "device-cpu-index": ({"device": "cpu:0"}, InvalidInputError, "device 'cpu:0' is not known"),
    "normalizer-scalars": ({"normalizer": Normalizer(np.float64(0), np.float64(1))}, InvalidInputError, "1-D float arrays"),
    "normalizer-lists": ({"normalizer": Normalizer([0.0], [1.0])}, InvalidInputError, "1-D float arrays"),
    "normalizer-flat": ({"normalizer": Normalizer(np.array([5.0]), np.array([5.0]))}, InvalidInputError, "finite low < high"),
}


@pytest.mark.parametrize("case", sorted(BAD_OPTIONS))
def test_a_bad_option_is_a_typed_error_naming_it(case, tiny_model, noisy_zyx):
    kwargs, error, fragment = BAD_OPTIONS[case]
    with pytest.raises(error) as info:
        restore(noisy_zyx, tiny_model, **{**OPTS, **kwargs})
    assert fragment in str(info.value)
    if case != "unknown":  # the options object itself refuses the same value
        with pytest.raises(error):
            RestoreOptions(**kwargs)


def test_options_object_and_keywords_give_the_same_result(tiny_model, noisy_zyx):
    options = RestoreOptions(tile=32, overlap=8, **OPTS)
    np.testing.assert_array_equal(restore(noisy_zyx, tiny_model, options), restore(noisy_zyx, tiny_model, tile=32, overlap=8, **OPTS))
    assert plan_restore(noisy_zyx, tiny_model, options, tile=24).options.tile == 24  # keywords override fields


@pytest.mark.parametrize(("tile", "overlap"), [(100, 10), (30, 5), (17, 0), (40, 13), ("auto", "auto")])
def test_the_plan_describes_the_tiles_that_run(tiny_model, tile, overlap, monkeypatch):
    data = np.random.default_rng(0).poisson(50, (2, 70, 90)).astype(np.uint16)
    plan = plan_restore(data, tiny_model, tile=tile, overlap=overlap, batch_size=3, **OPTS)
    seen: list[tuple] = []
    predict = engine._predict

    def recording(net, batch, settings):
        seen.append((tuple(batch.shape[-2:]), len(batch), settings.precision, settings.device))
        return predict(net, batch, settings)

    monkeypatch.setattr(engine, "_predict", recording)
    steps = list(engine.iter_restore(data, plan=plan))
    assert {s[0] for s in seen} == {plan.tile}
    assert max(s[1] for s in seen) == min(plan.batch_size, 2 * plan.tiles_per_image)  # both planes in one chunk
    assert {(s[2], s[3]) for s in seen} == {(plan.precision, plan.device)}
    assert steps[-1].done == steps[-1].total == sum(s[1] for s in seen) == 2 * plan.tiles_per_image
    text = plan.describe()
    if plan.tile != plan.padded:
        assert f"tiles of {plan.tile[0]} x {plan.tile[1]} px per plane, overlapping by {plan.overlap[0]} px" in text
    else:
        assert "each plane whole" in text
    words = {"fp32": "32-bit floats", "bf16": "bfloat16"}[plan.precision]
    assert f"up to {plan.batch_size} {'tile' if plan.tile != plan.padded else 'plane'}s per pass" in text
    assert f"on the CPU in {words}" in text


def test_an_explicit_precision_reaches_dask_workers_unchanged(tiny_model, noisy_zyx):
    plan = plan_restore(noisy_zyx, tiny_model, precision="fp32", axes="ZYX")
    plan = dataclasses.replace(plan, distributed=True)  # as on a cluster, without starting one
    settings = engine._cluster_settings(plan)
    assert (settings.device, settings.precision) == ("auto", "fp32")
    assert "each worker on the device it picks, in 32-bit floats" in plan.describe()
    auto = dataclasses.replace(plan_restore(noisy_zyx, tiny_model, axes="ZYX"), distributed=True)
    assert engine._cluster_settings(auto).precision == "auto" and "in the precision it picks" in auto.describe()
    pinned = dataclasses.replace(plan_restore(noisy_zyx, tiny_model, precision="fp32", **OPTS), distributed=True)
    assert (engine._cluster_settings(pinned).device, engine._cluster_settings(pinned).precision) == ("cpu", "fp32")


def test_the_cli_flags_are_the_options_fields():
    sub = next(a for a in _parser()._actions if a.dest == "command").choices["restore"]
    flags = {opt for action in sub._actions for opt in action.option_strings}
    fields = {f.name for f in dataclasses.fields(RestoreOptions) if f.metadata["cli"]}
    assert {"--" + name.replace("_", "-") for name in fields} <= flags
    assert fields == set(dataclasses.asdict(RestoreOptions())) - {"out", "normalizer"}
    helps = {a.dest: a.help for a in sub._actions}
    assert all(helps[f.name] == f.metadata["help"] for f in dataclasses.fields(RestoreOptions) if f.metadata["cli"])


def _gama_state(net) -> list[tuple]:
    return [(m.mean_mode, m.local_size) for m in net.modules() if type(m).__name__ == "GAMA"]


def test_restore_never_mutates_the_callers_model(tiny_model, noisy_zyx):
    tiny_model.train()
    state, weights = _gama_state(tiny_model), {k: v.clone() for k, v in tiny_model.state_dict().items()}
    restore(noisy_zyx, tiny_model, mean_mode="local", **OPTS)
    assert tiny_model.training and _gama_state(tiny_model) == state
    assert all(torch.equal(v, tiny_model.state_dict()[k]) for k, v in weights.items())


def test_concurrent_restores_with_different_options_match_their_serial_results(tiny_model, noisy_zyx):
    variants = [{"mean_mode": "global"}, {"mean_mode": "local", "tile": 24, "overlap": 8}, {"mean_mode": "local"}, {"tile": 32, "overlap": 8}]
    serial = [restore(noisy_zyx, tiny_model, **v, **OPTS) for v in variants]
    state = _gama_state(tiny_model)
    results: dict[tuple[int, int], np.ndarray] = {}
    errors: list[BaseException] = []

    def work(thread: int) -> None:
        try:
            for call in range(6):
                k = (thread + call) % len(variants)
                results[thread, call] = (k, restore(noisy_zyx, tiny_model, **variants[k], **OPTS))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(results) == 24
    for k, value in results.values():
        np.testing.assert_array_equal(value, serial[k])
    assert _gama_state(tiny_model) == state


def test_restore_and_finetune_take_the_same_device_names():
    from napari_gama_ir import FinetuneOptions
    from napari_gama_ir.training.validate import validate_options

    for name in ("cpu:0", "auto:7", "gpu"):
        with pytest.raises(InvalidInputError, match=f"device {name!r} is not known"):
            RestoreOptions(device=name)
        with pytest.raises(InvalidInputError, match=f"device {name!r} is not known"):
            validate_options(FinetuneOptions(noisy=[np.zeros((64, 64), np.float32)], device=name))
