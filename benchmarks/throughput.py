"""CPU speed of restore() against scikit-image's non-local means, under load, per backend, and in napari.

One run prints every table (run it on a quiet machine; each section measures its candidates interleaved
in one process, best of ``--repeat``):

1. ``restore()`` (normalisation, tiling and casting included) against NLM (fast mode, patch 5, distance 6)
   on the held-out 512 x 512 photographs (camera, astronaut in gray, the four held-out Debian ones) and on
   a 2048 x 2048 mosaic of them and their mirror images, Gaussian noise sigma 25; MP/s, the ratio to NLM, PSNR.
2. The first restore of a session: a fresh Python process imports the package and restores one 512 x 512
   plane with the model (import, model load and first call timed separately).
3. Busy cores: MP/s of ``restore()`` on one 512 x 512 plane on a quiet machine and while another process
   spins one core, with torch's threads sized to the free cores (``engine.runtime.cpu_threads``, the
   default) and with torch's thread count left as it is; the busy/quiet ratio of each.
4. Backends and compile modes for the network alone on a 512 x 512 plane: eager fp32 (the plain path),
   eager bf16 autocast and a copy with bf16 weights (what ``restore()`` runs for bf16 on the CPU; CPUs with
   native bf16), ONNX Runtime on the BioImage.IO export
   (``zoo.bioimageio.export_onnx``; needs the ``[bioimageio]`` extra) and, with ``--compile``,
   ``torch.compile`` (inductor, frozen weights; its compile time is printed); ms per forward pass and the
   held-out PSNR difference against the plain fp32 path (torch's threads sized as ``restore()`` sizes them).
5. napari: the lateness of a 10 ms QTimer on the viewer's event loop, idle and while the Restore widget
   restores a stack (a real viewer; under ``xvfb-run`` when there is no display). ``--no-viewer`` skips it.

    python -m benchmarks.throughput                                    # photo-gray, every section
    python -m benchmarks.throughput --model photo-gray general-gray fluorescence --compile
    python -m benchmarks.throughput --model general-gray --bm3d --profile   # BM3D row, operator profile
    python -m benchmarks.throughput --model general-gray --max-tile 256 384 512   # the CPU tile cap sweep

``--threads N`` fixes torch's thread count first (default: torch's, one per core). ``--max-tile`` runs only
the tile-cap sweep (``engine.plan.CPU_MAX_TILE`` per run; 512 and 1024 px planes, PSNR per row). A fluorescence
model restores the same gray photographs: the speed does not depend on the content.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import torch

from scripts._dev import datasets

from napari_gama_ir import load_model, restore
from napari_gama_ir.engine import runtime

SIGMA = 25 / 255


def timed(fn, repeat=3):
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def interleaved(fns: dict, repeat: int) -> dict:
    """Best seconds of each callable, called in turn A, B, ... ``repeat`` times (after one warm-up each)."""
    for fn in fns.values():
        fn()
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(repeat):
        for name, fn in fns.items():
            t = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t)
    return best


def psnr(out: np.ndarray, clean: np.ndarray) -> float:
    return float(10 * np.log10(1 / np.mean((np.clip(out, 0, 1) - clean) ** 2)))


def held_out() -> dict[str, np.ndarray]:
    """The six held-out 512 x 512 gray photographs (float32 in [0, 1])."""
    photos = {"camera": datasets.photo("camera"), "astronaut": datasets.photo("astronaut")}
    return {**photos, **datasets.more_eval()}


def noisy(clean: np.ndarray, seed: int = 0) -> np.ndarray:
    return (clean + np.random.default_rng(seed).normal(0, SIGMA, clean.shape)).astype(np.float32)


def nlm(x: np.ndarray) -> np.ndarray:
    from skimage.restoration import denoise_nl_means

    return denoise_nl_means(x, h=0.8 * SIGMA, sigma=SIGMA, fast_mode=True, patch_size=5, patch_distance=6)


def speed(args, photos: dict) -> None:
    """Section 1: restore() against NLM, per 512 px plane and on a 2048 px mosaic."""
    tiles = [f(v) for f in (lambda a: a, lambda a: a[:, ::-1], lambda a: a[::-1]) for v in photos.values()][:16]
    big_clean = np.block([tiles[i : i + 4] for i in range(0, 16, 4)])  # 4 x 4 held-out planes and their mirrors
    cases = {f"{k} 512": (noisy(v), v) for k, v in photos.items()}
    cases["mosaic 2048"] = (noisy(big_clean), big_clean)
    print("\n## restore() against NLM (fast, patch 5, distance 6), sigma 25\n")
    print("| model | image | restore MP/s | NLM MP/s | ratio | PSNR restore / NLM (dB) |\n|---|---|---|---|---|---|")
    for name in args.model:
        net = load_model(name)
        for case, (x, clean) in cases.items():
            mp = x.size / 1e6
            t = interleaved({"gama": lambda: restore(x, net, device="cpu", precision=args.precision), "nlm": lambda: nlm(x)},
                            args.repeat if x.size <= 512 * 512 else 1)  # fmt: skip
            q = (psnr(restore(x, net, device="cpu", precision=args.precision), clean), psnr(nlm(x), clean))
            speeds = f"{mp / t['gama']:.3f} | {mp / t['nlm']:.3f} | {t['nlm'] / t['gama']:.2f}"
            print(f"| {name} | {case} | {speeds} | {q[0]:.2f} / {q[1]:.2f} |", flush=True)


FIRST_CALL = """
import time; t0 = time.perf_counter()
import numpy as np, torch
from napari_gama_ir import load_model, restore
t1 = time.perf_counter(); net = load_model({model!r}); t2 = time.perf_counter()
x = np.random.default_rng(0).random((512, 512), dtype=np.float32)
restore(x, net, device="cpu", precision={precision!r}); t3 = time.perf_counter()
restore(x, net, device="cpu", precision={precision!r}); t4 = time.perf_counter()
print(t1 - t0, t2 - t1, t3 - t2, t4 - t3)
"""


def first_call(args) -> None:
    """Section 2: a fresh process's import, model load, first and second restore of one plane."""
    print("\n## The first restore of a session (fresh process, one 512 x 512 plane)\n")
    print("| model | import s | load_model s | first restore s | second restore s |\n|---|---|---|---|---|")
    for name in args.model:
        code = FIRST_CALL.format(model=name, precision=args.precision)
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
        t = [float(v) for v in out.split()]
        print(f"| {name} | {t[0]:.2f} | {t[1]:.2f} | {t[2]:.2f} | {t[3]:.2f} |", flush=True)


def busy(args, photos: dict) -> None:
    """Section 3: one plane's MP/s quiet and with one core spun by another process, threads sized or fixed."""
    x = noisy(photos["camera"])
    print(f"\n## Busy cores ({runtime.usable_cores()} usable; another process spins one), one 512 x 512 plane\n")
    print("| model | torch threads | quiet MP/s | busy MP/s | busy / quiet |\n|---|---|---|---|---|")
    for name in args.model:
        net = load_model(name)
        modes = {"sized to the free cores": True, f"fixed ({torch.get_num_threads()})": False}

        def run(adapt):
            runtime.ADAPT_THREADS = adapt
            restore(x, net, device="cpu", precision=args.precision)

        fns = {mode: (lambda a=adapt: run(a)) for mode, adapt in modes.items()}
        quiet = interleaved(fns, args.repeat)
        spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        try:
            time.sleep(0.5)
            loaded = interleaved(fns, args.repeat)
        finally:
            spinner.kill()
            spinner.wait()
        runtime.ADAPT_THREADS = True
        for mode in modes:
            q, b = 0.262144 / quiet[mode], 0.262144 / loaded[mode]
            print(f"| {name} | {mode} | {q:.3f} | {b:.3f} | {b / q:.2f} |", flush=True)


def backends(args, photos: dict) -> None:
    """Section 4: the network alone per backend: ms per 512 px forward pass, PSNR difference to plain fp32."""
    from napari_gama_ir.engine.runtime import cpu_has_bf16

    print("\n## Backends: the network alone on one 512 x 512 plane\n")
    print("| model | backend | ms per plane | first call s | held-out PSNR minus plain fp32 (dB) |\n|---|---|---|---|---|")
    for name in args.model:
        net = load_model(name).eval()
        c = net.card.in_channels
        inputs = [torch.from_numpy(noisy(v))[None, None].expand(1, c, -1, -1).contiguous() for v in photos.values()]
        runs, firsts = {"eager fp32": net}, {}
        if cpu_has_bf16():
            def bf16(x):
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    return net(x).float()
            runs["eager bf16 (autocast)"] = bf16
            weights = runtime.bf16_copy(net)
            runs["eager bf16 weights (restore's CPU bf16)"] = weights
        ort_run = _onnxruntime(net, inputs[0], firsts)
        if ort_run is not None:
            runs["ONNX Runtime fp32"] = ort_run
        if args.compile:
            runs["torch.compile (inductor, frozen) fp32"] = _compiled(net, inputs[0], firsts)
        with torch.inference_mode():
            t = interleaved({k: (lambda f=f: sized(f, inputs[0])) for k, f in runs.items()}, args.repeat)
            ref = [psnr(net(x)[0, 0].numpy(), clean) for x, clean in zip(inputs, photos.values())]
            for k, f in runs.items():
                d = np.mean([psnr(f(x)[0, 0].float().numpy(), clean) for x, clean in zip(inputs, photos.values())]) - np.mean(ref)
                first = f"{firsts[k]:.1f}" if k in firsts else "-"
                print(f"| {name} | {k} | {1000 * t[k]:.0f} | {first} | {d:+.3f} |", flush=True)


def sized(fn, x):
    """``fn(x)`` with torch's threads sized to the free cores, as ``restore()`` runs the network."""
    with runtime.cpu_threads(torch.device("cpu")):
        return fn(x)


def _onnxruntime(net, x, firsts: dict):
    """ONNX Runtime on the shared export, or None without the [bioimageio] extra."""
    try:
        import onnxruntime as ort
    except ImportError:
        print("(ONNX Runtime not installed: pip install napari-gama-ir[bioimageio])")
        return None
    from napari_gama_ir.zoo.bioimageio import export_onnx

    t = time.perf_counter()
    buf = io.BytesIO()
    export_onnx(net, x, buf)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = torch.get_num_threads()
    session = ort.InferenceSession(buf.getvalue(), opts, providers=["CPUExecutionProvider"])
    session.run(None, {"input": x.numpy()})
    firsts["ONNX Runtime fp32"] = time.perf_counter() - t  # export + session + first run
    return lambda inp: torch.from_numpy(session.run(None, {"input": inp.numpy()})[0])


def _compiled(net, x, firsts: dict):
    """torch.compile (inductor, frozen weights) of a copy without the oneDNN-only 1x1 path (no fake kernels)."""
    import copy

    import torch._inductor.config as inductor

    from napari_gama_ir.model import gama_ir

    inductor.freezing = True
    plain = copy.deepcopy(net)
    compiled = torch.compile(plain, dynamic=False)

    def run(inp):
        saved, gama_ir._MKLDNN_POINTWISE = gama_ir._MKLDNN_POINTWISE, False
        try:
            return compiled(inp)
        finally:
            gama_ir._MKLDNN_POINTWISE = saved

    t = time.perf_counter()
    with torch.inference_mode():
        run(x)
    firsts["torch.compile (inductor, frozen) fp32"] = time.perf_counter() - t
    return run


VIEWER = """
import time, numpy as np
import napari
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QApplication
from napari_gama_ir._napari.restore_widget import RestoreWidget
from napari_gama_ir.engine import runtime
runtime.ADAPT_THREADS = {adapt!r}
viewer = napari.Viewer(show=True)
widget = RestoreWidget(viewer)
viewer.window.add_dock_widget(widget, name="Restore")
widget._model.value = {model!r}
widget._estimate.value = False  # the restore alone
rng = np.random.default_rng(0)
layer = viewer.add_image((rng.random(({planes}, 512, 512)) * 60000).astype(np.uint16), name="noisy")
widget._layer.value = layer
app = QApplication.instance()
late, last = [], [time.perf_counter()]
def tick():
    now = time.perf_counter(); late.append(now - last[0] - 0.010); last[0] = now
timer = QTimer(); timer.setInterval(10); timer.timeout.connect(tick); timer.start()
def spin(seconds=None, until=None):
    end = time.perf_counter() + (seconds or 600)
    while time.perf_counter() < end and not (until and until()):
        app.processEvents(); time.sleep(0.001)
spin(1.0); late.clear(); spin(2.0); idle = np.array(late) * 1000
late.clear(); t = time.perf_counter(); widget._run()
spin(until=lambda: widget._worker is None); wall = time.perf_counter() - t; busy = np.array(late) * 1000
print(*(f"{{v:.1f}}" for v in (np.median(idle), np.percentile(idle, 95), idle.max(),
                              np.median(busy), np.percentile(busy, 95), busy.max(), wall)))
viewer.close()
"""


def viewer(args) -> None:
    """Section 5: the viewer's event-loop lateness idle and while the Restore widget runs (subprocess)."""
    print(f"\n## napari: lateness of a 10 ms QTimer, Restore widget on {args.viewer_planes} planes of 512 x 512 ({args.model[0]})\n")
    print("| torch threads | event loop | median ms | 95th percentile ms | max ms |\n|---|---|---|---|---|")
    for adapt, mode in ((True, "sized to the free cores"), (False, f"fixed ({torch.get_num_threads()})")):
        cmd = [sys.executable, "-c", VIEWER.format(model=args.model[0], planes=args.viewer_planes, adapt=adapt)]
        if not os.environ.get("DISPLAY") and shutil.which("xvfb-run"):
            cmd = ["xvfb-run", "-a", *cmd]
        out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())})
        if out.returncode:
            print(f"| {mode} | (the viewer run failed: {out.stderr.strip().splitlines()[-1]}) | | | |")
            continue
        v = out.stdout.split()[-7:]
        print(f"| {mode} | idle | {v[0]} | {v[1]} | {v[2]} |\n| {mode} | while restoring ({v[6]} s) | {v[3]} | {v[4]} | {v[5]} |", flush=True)


def profile(args) -> None:
    from torch.profiler import profile as torch_profile

    from napari_gama_ir.engine.runtime import autocast, pick_precision

    net = load_model(args.model[0])
    x = torch.rand(1, net.card.in_channels, 512, 512)
    cpu = torch.device("cpu")
    precision = pick_precision(args.precision, cpu)
    if runtime.runs_in_bf16_weights(cpu, precision):  # as restore() runs it
        net, precision = runtime.bf16_copy(net), "fp32"
    with torch.inference_mode(), autocast(cpu, precision):
        net(x)  # warm-up
        with torch_profile() as prof:
            net(x)
    print("\n```\n" + prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12) + "\n```")


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--model", nargs="+", default=["photo-gray"])
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--repeat", type=int, default=5, help="interleaved rounds per measurement (best kept)")
    p.add_argument("--precision", default="auto", help="restore()'s precision: auto (bf16 on CPUs with native bf16) or fp32")
    p.add_argument("--compile", action="store_true", help="also torch.compile (inductor): minutes of compile time")
    p.add_argument("--no-viewer", action="store_true", help="skip the napari section")
    p.add_argument("--viewer-planes", type=int, default=16)
    p.add_argument("--bm3d", action="store_true", help="also BM3D on one plane (slow)")
    p.add_argument("--profile", action="store_true", help="also a torch profile of one forward pass (first model)")
    p.add_argument("--max-tile", type=int, nargs="+", default=None, help="only the CPU tile-cap sweep (engine.plan.CPU_MAX_TILE)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {runtime.usable_cores()} usable cores, "
          f"precision {args.precision}")  # fmt: skip
    if args.max_tile:
        return tile_sweep(args)
    photos = held_out()
    speed(args, photos)
    first_call(args)
    busy(args, photos)
    backends(args, photos)
    if not args.no_viewer:
        viewer(args)
    if args.bm3d:
        import bm3d

        x = noisy(photos["camera"])
        print(f"\nBM3D, one 512 x 512 plane: {0.262144 / timed(lambda: bm3d.bm3d(x, sigma_psd=SIGMA), 1):.3f} MP/s")
    if args.profile:
        profile(args)


def tile_sweep(args) -> None:
    """MP/s and PSNR of ``restore()`` with each CPU tile cap, on 512 px and 1024 px planes."""
    from napari_gama_ir.engine import plan

    cam = datasets.photo("camera")
    big = np.block([[cam, cam[:, ::-1]], [cam[::-1], cam[::-1, ::-1]]])  # 1024 x 1024, mirrored so no seams
    x, x_big = noisy(cam), noisy(big, 1)
    print("| model | CPU tile cap | tiles of a 512 / 1024 px plane | MP/s, one 512 px | MP/s, one 1024 px | PSNR 512 / 1024 (dB) |")
    print("|---|---|---|---|---|---|")
    for name in args.model:
        net = load_model(name)
        for cap in args.max_tile:
            plan.CPU_MAX_TILE = cap
            kw = dict(device="cpu", precision=args.precision)
            restore(x, net, **kw)  # warm-up
            out, out_big = restore(x, net, **kw), restore(x_big, net, **kw)
            tiles = [plan.plan_restore(a, net, **kw).tiles_per_image for a in (x, x_big)]
            one = 0.262144 / timed(lambda: restore(x, net, **kw))
            large = 1.048576 / timed(lambda: restore(x_big, net, **kw), 2)
            q = psnr(out, cam), psnr(out_big, big)
            print(f"| {name} | {cap} | {tiles[0]} / {tiles[1]} | {one:.3f} | {large:.3f} | {q[0]:.2f} / {q[1]:.2f} |", flush=True)


if __name__ == "__main__":
    main()
