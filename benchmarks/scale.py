"""Constant memory on any stack: a uint16 TIFF restored file to file at sizes 8x apart.

Writes a noisy uint16 ZYX stack of 1024 x 1024 planes (held-out photographs, tiled, Gaussian noise)
page by page, then runs ``gama-ir restore`` on it in a child process and records the child's peak RSS
(its own ``getrusage`` maximum), wall time, and seconds per megapixel.

    python -m benchmarks.scale --planes 16 128 --model general-gray --workdir /tmp/gama-scale
    python -m benchmarks.scale --planes 128 --cluster 2     # the same through a LocalCluster of 2 workers
    xvfb-run -a python -m benchmarks.scale --planes 64 512 --napari   # the same through the napari widget

With ``--cluster N`` the child process starts a ``LocalCluster`` of N worker processes (one thread each)
and calls ``restore(path, out=path)`` with its client active; the table then gives the client's peak RSS
and each worker's (from ``client.run``), all measured in the processes themselves.

With ``--napari`` the child process opens a napari viewer (it needs a display: ``xvfb-run`` on a headless
machine), adds the stack as a lazy layer (dask over the TIFF pages, as a reader for big files gives it),
and presses the Restore widget's Run button with the model chosen; the result goes where the widget puts a
big result, a zarr store shown as a layer while it fills. The time runs from the click to the widget's
"done" state (wall s and s / MP then leave out napari's start-up).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import tifffile

from scripts._dev import datasets


def write_stack(path: Path, planes: int, size: int = 1024) -> None:
    base = np.concatenate([datasets.photo(n) for n in ("camera", "astronaut")], axis=1)
    base = np.tile(base, (size // base.shape[0] + 1, size // base.shape[1] + 1))[:size, :size]
    rng = np.random.default_rng(0)

    def pages():
        for i in range(planes):
            img = np.roll(base, 37 * i, axis=1) * 40000 + 2000 + rng.normal(0, 2500, base.shape)
            yield np.clip(img, 0, 65535).astype(np.uint16)

    tifffile.imwrite(path, pages(), shape=(planes, size, size), dtype=np.uint16, bigtiff=True, metadata={"axes": "ZYX"})



NAPARI_CHILD = """
import resource, sys, time
import napari
from qtpy.QtWidgets import QApplication
from napari_gama_ir._napari._common import State
from napari_gama_ir._napari.restore_widget import RestoreWidget
from napari_gama_ir.io.files import open_input

src, model = sys.argv[1], sys.argv[2]
viewer = napari.Viewer()
viewer.add_image(open_input(src).array, name="noisy")
widget = RestoreWidget(viewer)
viewer.window.add_dock_widget(widget)
widget._model.value = model
app = QApplication.instance()
t = time.perf_counter()
widget._run_button.native.click()
while widget._state not in (State.DONE, State.FAILED):
    app.processEvents()
    time.sleep(0.02)
print("restore_s", time.perf_counter() - t, file=sys.stderr)
assert widget._state is State.DONE, "the napari run failed"
result = viewer.layers[-1]
print("result_layer", result.name, result.data.shape, file=sys.stderr)
print("peak_rss_gb", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2, file=sys.stderr)
path = result.metadata["napari_gama_ir"]["path"]  # the widget's temporary zarr store
assert path, "a lazy input should give a zarr-backed result"
viewer.close()
import pathlib, shutil
shutil.rmtree(pathlib.Path(path).parent, ignore_errors=True)
"""

CLUSTER_CHILD = """
import resource, sys, time
from distributed import Client, LocalCluster
from napari_gama_ir import restore

def peak_gb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2

src, dst, model, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
with LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, Client(cluster) as client:
    t = time.perf_counter()
    restore(src, model, out=dst)
    print("restore_s", time.perf_counter() - t, file=sys.stderr)
    for address, gb in sorted(client.run(peak_gb).items()):
        print("worker_peak_rss_gb", gb, file=sys.stderr)
print("peak_rss_gb", peak_gb(), file=sys.stderr)
"""


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--planes", type=int, nargs="+", default=[16, 128])
    p.add_argument("--model", default="general-gray")
    p.add_argument("--workdir", default="/tmp/gama-scale")
    p.add_argument("--cluster", type=int, default=0, help="run through a LocalCluster of this many workers")
    p.add_argument("--napari", action="store_true", help="run through the napari Restore widget (needs a display)")
    args = p.parse_args(argv)
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    # each size runs in its own process, which reports its own peak RSS
    for planes in sorted(args.planes, reverse=True):
        src = work / f"stack-{planes}.tif"
        if not src.exists():
            write_stack(src, planes)
        dst = work / f"restored-{planes}.tif"
        if args.napari:
            cmd = [sys.executable, "-c", NAPARI_CHILD, str(src), args.model]
        elif args.cluster:
            cmd = [sys.executable, "-c", CLUSTER_CHILD, str(src), str(dst), args.model, str(args.cluster)]
        else:
            cmd = [sys.executable, "-c", "import sys, resource; from napari_gama_ir.cli import main; rc = main(sys.argv[1:]); "
                   "print('peak_rss_gb', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2, file=sys.stderr); sys.exit(rc)",
                   "restore", str(src), "-o", str(dst), "--model", args.model, "-q"]  # fmt: skip
        t = time.perf_counter()
        out = subprocess.run(cmd, check=True, capture_output=True, text=True)
        dt = time.perf_counter() - t
        lines = out.stderr.splitlines()
        peak = float([ln for ln in lines if ln.startswith("peak_rss_gb")][0].split()[1])
        workers = [float(ln.split()[1]) for ln in lines if ln.startswith("worker_peak_rss_gb")]
        mp = planes * 1024 * 1024 / 1e6
        if args.napari:  # from the click to "done", without napari's start-up
            dt = float([ln for ln in lines if ln.startswith("restore_s")][0].split()[1])
        rows.append((planes, src.stat().st_size / 1e9, dt, peak, dt / mp, workers))
        dst.unlink(missing_ok=True)
    where = ("napari Restore widget, lazy layer -> zarr layer" if args.napari
             else f"LocalCluster of {args.cluster} workers x 1 thread" if args.cluster else "gama-ir restore (one process)")  # fmt: skip
    print(f"{where}\n")
    print("| planes (1024x1024 uint16) | file GB | wall s | peak RSS GB (client) | workers' peak RSS GB | s / MP |")
    print("|---|---|---|---|---|---|")
    for r in sorted(rows):
        print(f"| {r[0]} | {r[1]:.2f} | {r[2]:.1f} | {r[3]:.2f} | {', '.join(f'{w:.2f}' for w in r[5]) or '-'} | {r[4]:.3f} |")


if __name__ == "__main__":
    main()
