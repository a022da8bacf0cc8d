"""With an active dask.distributed client, restore() sends chunks of planes to the worker processes (the
model travels as bytes and is built once per worker) and returns the same result as a local run; a lazy
result computed on the cluster is the same too."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest

distributed = pytest.importorskip("distributed")

from napari_gama_ir import restore  # noqa: E402
from napari_gama_ir.engine import plan as plan_module  # noqa: E402

pytestmark = pytest.mark.slow


def _models_built_here() -> int:
    from napari_gama_ir.engine.runtime import _CACHE

    return len(_CACHE)


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def test_cluster_restore_equals_local(tiny_model, rng, monkeypatch, tmp_path):
    import tifffile

    stack = rng.poisson(100, (4, 40, 36)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "in.tif", stack, metadata={"axes": "ZYX"})
    monkeypatch.setattr(plan_module, "CHUNK_BYTES", 4 * 40 * 36)  # one plane per chunk: 4 tasks
    opts = dict(tile=32, overlap=8, batch_size=4)
    local = restore(stack, tiny_model, **opts)  # no client yet: computed here
    local_ensemble = restore(stack, tiny_model, self_ensemble=True, **opts)
    assert not plan_module.plan_restore(stack, tiny_model, **opts).distributed
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster, distributed.Client(cluster) as client:
        plan = plan_module.plan_restore(stack, tiny_model, **opts)
        assert plan.distributed and plan.chunk_planes == 1
        calls = []
        remote = restore(stack, tiny_model, progress=lambda d, t: calls.append((d, t)), **opts)
        lazy = restore(da.from_array(stack, chunks=(1, 40, 36)), tiny_model, **opts).compute()
        # a file: the workers read their own planes (the graph pickles without the open file)
        from_file = restore(tmp_path / "in.tif", tiny_model, out=tmp_path / "out.tif", **opts)
        remote_ensemble = restore(stack, tiny_model, self_ensemble=True, **opts)  # the option reaches the workers
        # back-to-back runs of one model while the cluster still releases the run before's copy of it
        # (a content-hashed key made about half of these fail with "lost dependencies")
        again = [restore(stack, tiny_model, **opts) for _ in range(8)]
        built = client.run(_models_built_here)
        torch_threads = client.run(_torch_threads)
    assert isinstance(remote, np.ndarray)
    np.testing.assert_array_equal(remote, local)
    np.testing.assert_array_equal(lazy, local)
    np.testing.assert_array_equal(tifffile.imread(from_file), local)
    np.testing.assert_array_equal(remote_ensemble, local_ensemble)
    for result in again:
        np.testing.assert_array_equal(result, local)
    assert not np.array_equal(local_ensemble, local)
    assert calls[0][0] == 0 and calls[-1][0] == calls[-1][1]
    assert len(built) == 2 and 1 <= sum(built.values()) and max(built.values()) == 1  # once per worker
    # workers that ran chunks use their one dask thread for torch, not a thread per core each
    assert {torch_threads[w] for w, n in built.items() if n} == {1}
