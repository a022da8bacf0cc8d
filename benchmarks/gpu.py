"""On a CUDA GPU: restore()'s throughput, how busy the device stays, and the largest tile and batch that fit.

    python -m benchmarks.gpu [--models fluorescence S] [--planes 32] [--size 2048] [--precision fp16 bf16]
    python -m benchmarks.gpu --sections layouts profile largest --precision fp16

1. ``restore()`` on a uint16 stack (planes x size x size: the held-out photographs mosaicked, with Poisson
   noise), numpy in, numpy out, for each model and precision: megapixels per second, and how busy the GPU
   was. "busy" is the time the model's forward passes alone take on the same tiles (data already on the
   device, CUDA events) over restore()'s wall time; nvidia-smi's utilisation, sampled every 100 ms during
   the run, is given beside it. The same run with the CPU's chunk size (a quarter of the GPU's,
   ``engine.plan.GPU_CHUNK_FACTOR``), and through the host path (numpy normalising, tiling, blending
   and casting around each forward pass, as on the CPU), shows what chunk size and keeping the work on
   the device change. Each run follows a warm-up on ``--warmup-planes`` planes (2); a run with new shapes still pays for
   cuDNN's plans and the allocators' first blocks, so the first rows of a process read lower.
2. A TIFF file to a TIFF file (the same stack), as the CLI runs it.
3. The largest tile (batch 1) and the largest batch of 512 px tiles that fit: peak memory measured at two
   sizes, the limit predicted from them, then a forward pass at that size to confirm it; and the tile and
   batch that ``plan_restore`` picks by itself.
4. ``--sections layouts``: channels-last against NCHW activations, with and without cuDNN autotuning;
   ``--sections profile``: the top CUDA kernels of one forward pass.

"S" is the paper's architecture with random weights (``build_model("S")``); the other names are shipped models.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from scripts._dev import datasets

from napari_gama_ir import build_model, load_model, plan_restore, restore
from napari_gama_ir.engine import plan as plan_module
from napari_gama_ir.engine import restore as engine
from napari_gama_ir.engine.runtime import autocast, is_out_of_memory


def noisy_stack(planes: int, size: int, seed: int = 0) -> np.ndarray:
    """uint16 (planes, size, size): held-out photographs mirrored into a mosaic, about 200 photons at
    white plus an offset of 100, Poisson noise; 8 distinct noise draws repeated."""
    imgs = [datasets.photo(n) for n in datasets.EVAL_PHOTOS]
    tile = np.concatenate([np.pad(i, ((0, 512 - i.shape[0]), (0, 512 - i.shape[1])), mode="reflect") for i in imgs], axis=1)
    clean = np.tile(tile, (size // tile.shape[0] + 1, size // tile.shape[1] + 1))[:size, :size]
    rng = np.random.default_rng(seed)
    distinct = [(rng.poisson(clean * 200) + 100).astype(np.uint16) for _ in range(min(8, planes))]
    return np.stack([distinct[i % len(distinct)] for i in range(planes)])


def get_model(name: str, channels: int = 1):
    if name in ("S", "L", "w16", "w24", "tiny"):
        torch.manual_seed(0)
        net = build_model(name, in_channels=channels)
        net.card = net.card.replace(name=f"{name} (random weights)")
        return net
    return load_model(name)


class Utilisation:
    """nvidia-smi's GPU utilisation sampled every 100 ms while the ``with`` block runs."""

    def __enter__(self):
        cmd = ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits", "-lms", "100"]
        try:
            self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        except OSError:
            self.proc = None
        return self

    def __exit__(self, *exc):
        self.samples = []
        if self.proc is not None:
            self.proc.terminate()
            out, _ = self.proc.communicate()
            self.samples = [int(v) for v in out.split() if v.strip().isdigit()]

    @property
    def mean(self) -> str:
        return f"{np.mean(self.samples):.0f} %" if self.samples else "n/a"


def forward_only_seconds(net, plan, n_tiles: int, precision: str, device: str = "cuda") -> float:
    """Seconds the network alone needs for ``n_tiles`` tiles of the plan's size, in its batches."""
    dev = torch.device(device)
    x = torch.rand(plan.batch_size, net.card.in_channels, *plan.tile, device=dev)
    net = net.to(dev).eval()
    batches = -(-n_tiles // plan.batch_size)
    with torch.inference_mode(), autocast(dev, precision):
        net(x)
        _sync(device)
        t = time.perf_counter()
        for _ in range(batches):
            net(x)
        _sync(device)
    return (time.perf_counter() - t) * n_tiles / (batches * plan.batch_size)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def throughput(args) -> None:
    stack = noisy_stack(args.planes, args.size)
    mp = stack.size / 1e6
    print(f"\n## restore() on a {args.planes} x {args.size} x {args.size} uint16 stack ({mp:.0f} MP), numpy in, numpy out\n")
    print("| model | precision | path | tile, batch | s | MP/s | GPU busy (forward alone / wall) | nvidia-smi utilisation |")
    print("|---|---|---|---|---|---|---|---|", flush=True)
    gray_net = None  # the TIFF step writes the gray stack, so it needs a one-channel model
    for name in args.models:
        net = get_model(name)
        if gray_net is None and net.card.in_channels == 1:
            gray_net = net
        axes, data = "ZYX", stack
        if net.card.in_channels == 3:  # an RGB model: the same planes in three channels (MP counts pixel positions)
            axes, data = "ZYXC", np.repeat(stack[..., None], 3, axis=-1)
        for precision in args.precision:
            plan = plan_restore(data, net, axes=axes, device=args.device, precision=precision)
            n_tiles = args.planes * plan.tiles_per_image
            forward = forward_only_seconds(net, plan, n_tiles, precision, args.device)
            for path in ("device", "device, 1/4 chunks", "host"):
                engine.TileSettings.resident = property(lambda self: False) if path == "host" else _RESIDENT
                plan_module.GPU_CHUNK_FACTOR = 1 if "1/4" in path else _GPU_CHUNK_FACTOR
                restore(data[: args.warmup_planes], net, axes=axes, device=args.device, precision=precision)  # warm-up
                _sync(args.device)
                with Utilisation() as util:
                    t = time.perf_counter()
                    out = restore(data, net, axes=axes, device=args.device, precision=precision)
                    wall = time.perf_counter() - t
                engine.TileSettings.resident, plan_module.GPU_CHUNK_FACTOR = _RESIDENT, _GPU_CHUNK_FACTOR
                assert out.shape == data.shape and out.dtype == data.dtype
                print(f"| {net.card.name} | {precision} | {path} | {plan.tile[0]} px, {plan.batch_size} | {wall:.2f} | {mp / wall:.1f} | "
                      f"{100 * forward / wall:.0f} % | {util.mean} |", flush=True)  # fmt: skip
    if args.tiff and gray_net is not None:
        net = gray_net
        kw = dict(device=args.device, precision=args.precision[0])
        with tempfile.TemporaryDirectory() as tmp:
            src, dst = Path(tmp) / "stack.tif", Path(tmp) / "restored.tif"
            import tifffile

            tifffile.imwrite(src, stack, imagej=True, metadata={"axes": "ZYX"})
            restore(str(src), net, out=str(Path(tmp) / "warm.tif"), **kw)
            with Utilisation() as util:
                t = time.perf_counter()
                restore(str(src), net, out=str(dst), **kw)
                wall = time.perf_counter() - t
            print(f"\nTIFF file to TIFF file ({src.stat().st_size / 1e9:.2f} GB), {net.card.name}, {kw['precision']}: "
                  f"{wall:.2f} s, {mp / wall:.1f} MP/s, nvidia-smi utilisation {util.mean}", flush=True)  # fmt: skip


_RESIDENT = engine.TileSettings.resident
_GPU_CHUNK_FACTOR = plan_module.GPU_CHUNK_FACTOR


def peak_bytes(net, batch: int, tile: int, precision: str) -> int:
    """Peak CUDA memory of one forward pass above what the weights hold (input and output included)."""
    dev = torch.device("cuda")
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    x = torch.rand(batch, net.card.in_channels, tile, tile, device=dev)
    with torch.inference_mode(), autocast(dev, precision):
        y = net(x)
    torch.cuda.synchronize()
    del x, y
    return torch.cuda.max_memory_allocated() - base


def largest(args) -> None:
    dev = torch.device("cuda")
    free, total = torch.cuda.mem_get_info()
    print(f"\n## Largest tile and batch ({torch.cuda.get_device_name()}, {free / 2**30:.1f} of {total / 2**30:.1f} GiB free)\n")
    print("| model | precision | bytes / pixel / width (1024 -> 2048 px) | largest tile, batch 1: predicted, ran (peak GiB) | "
          "largest batch of 512 px tiles: predicted, ran (peak GiB) | plan_restore's own choice: 2048 px stack; 8192 px image |")  # fmt: skip
    print("|---|---|---|---|---|---|", flush=True)
    for name in args.models:
        net = get_model(name).to(dev).eval()
        width = int(net.card.model_args["width"])
        align = 2 ** len(net.card.model_args["enc_blocks"])
        for precision in args.precision:
            p1, p2 = peak_bytes(net, 1, 1024, precision), peak_bytes(net, 1, 2048, precision)
            per_px = (p2 - p1) / (2048**2 - 1024**2)
            fixed = p1 - per_px * 1024**2
            budget = 0.9 * torch.cuda.mem_get_info()[0]
            tile = int(np.sqrt((budget - fixed) / per_px)) // align * align
            batch = int((budget - fixed) / (per_px * 512**2))
            tile_ran = _confirm(lambda t: peak_bytes(net, 1, t, precision), tile, align)
            batch_ran = _confirm(lambda b: peak_bytes(net, b, 512, precision), batch, 1)
            small = np.zeros((4, 2048, 2048), np.uint16)
            big = np.zeros((8192, 8192), np.uint16)
            p_small = plan_restore(small, net, axes="ZYX", device="cuda", precision=precision)
            p_big = plan_restore(big, net, axes="YX", device="cuda", precision=precision)
            print(f"| {net.card.name} | {precision} | {per_px / width:.1f} | {tile}; {tile_ran} | {batch}; {batch_ran} | "
                  f"{p_small.tile[0]} px x {p_small.batch_size}; {p_big.tile[0]} px x {p_big.batch_size} ({p_big.tiles_per_image} tiles) |", flush=True)  # fmt: skip
        net.cpu()
        torch.cuda.empty_cache()


def _confirm(run, size: int, step: int) -> str:
    """Run at ``size``; on out-of-memory (or a kernel's size limit) step down by 10 % up to 3 times."""
    for _ in range(4):
        try:
            t = time.perf_counter()
            peak = run(size)
            return f"{size} ({peak / 2**30:.1f} GiB, {time.perf_counter() - t:.1f} s)"
        except RuntimeError as exc:
            reason = "out of memory" if is_out_of_memory(exc) else str(exc).splitlines()[0][:80]
            torch.cuda.empty_cache()
            print(f"  {size}: {reason}", file=sys.stderr, flush=True)
            size = max(step, int(size * 0.9) // step * step)
    return f"none up to {size}"


def layouts(args) -> None:
    """Forward alone at 2048 px in fp16, then restore() on the stack, for each memory layout of the
    activations (``gama_ir.GPU_CHANNELS_LAST``) with and without cuDNN's autotuning (``cudnn.benchmark``)."""
    from napari_gama_ir.model import gama_ir

    dev = torch.device("cuda")
    stack = noisy_stack(args.planes, args.size)
    print("\n## Memory layout and cuDNN autotuning (fp16)\n")
    print("| model | layout | cudnn.benchmark | forward alone, 2048 px: ms (batch), MP/s | restore() on the stack: s, MP/s |")
    print("|---|---|---|---|---|", flush=True)
    for name, batch in [(m, 4 if m not in ("S", "L") else 1) for m in args.models]:
        net = get_model(name).to(dev).eval()
        x = torch.rand(batch, net.card.in_channels, 2048, 2048, device=dev)
        for channels_last in (True, False):
            for bench in (False, True):
                gama_ir.GPU_CHANNELS_LAST, torch.backends.cudnn.benchmark = channels_last, bench
                with torch.inference_mode(), autocast(dev, "fp16"):
                    for _ in range(2):
                        net(x)
                    torch.cuda.synchronize()
                    t = time.perf_counter()
                    for _ in range(5):
                        net(x)
                    torch.cuda.synchronize()
                ms = (time.perf_counter() - t) / 5 * 1000
                e2e = "-"
                if name == args.models[0]:
                    restore(stack[:2], net, axes="ZYX", device="cuda", precision="fp16")
                    t = time.perf_counter()
                    restore(stack, net, axes="ZYX", device="cuda", precision="fp16")
                    wall = time.perf_counter() - t
                    e2e = f"{wall:.2f} s, {stack.size / 1e6 / wall:.1f}"
                print(f"| {net.card.name} | {'channels-last' if channels_last else 'NCHW'} | {bench} | {ms:.1f} ({batch}), "
                      f"{batch * 2048**2 / 1e6 / ms * 1000:.1f} | {e2e} |", flush=True)  # fmt: skip
        gama_ir.GPU_CHANNELS_LAST, torch.backends.cudnn.benchmark = True, False
        net.cpu()


def profile(args) -> None:
    """The top CUDA kernels of one forward pass at 2048 px, fp16, default settings."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    dev = torch.device("cuda")
    for name in args.models:
        net = get_model(name).to(dev).eval()
        x = torch.rand(1, net.card.in_channels, 2048, 2048, device=dev)
        with torch.inference_mode(), autocast(dev, "fp16"):
            net(x)
            torch.cuda.synchronize()
            with torch_profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
                net(x)
                torch.cuda.synchronize()
        table = None
        for key in ("self_cuda_time_total", "self_device_time_total"):
            try:
                table = prof.key_averages().table(sort_by=key, row_limit=14, max_name_column_width=60)
                break
            except (KeyError, AttributeError, ValueError):
                continue
        print(f"\n## Profile: {net.card.name}, one 2048 x 2048 forward, fp16\n\n```\n{table}\n```", flush=True)
        net.cpu()


def _at_least_one(value: str) -> int:
    if int(value) < 1:
        raise argparse.ArgumentTypeError(f"{value}: give at least 1 plane")
    return int(value)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["fluorescence", "S"])
    p.add_argument("--planes", type=int, default=32)
    p.add_argument("--size", type=int, default=2048)
    p.add_argument("--precision", nargs="+", default=["fp16", "bf16"])
    p.add_argument("--sections", nargs="+", default=["throughput", "largest"], choices=["throughput", "layouts", "profile", "largest"])
    p.add_argument("--no-tiff", dest="tiff", action="store_false")
    p.add_argument("--warmup-planes", type=_at_least_one, default=2,
                   help="planes restored before each timed run; as many as --planes warms the full batch shape too")
    p.add_argument("--device", default="cuda", help="cuda; cpu only to try the script (no busy fraction, no largest)")
    args = p.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("benchmarks/gpu.py needs a CUDA GPU (or --device cpu to try it)")
    where = torch.cuda.get_device_name() if args.device == "cuda" else "CPU"
    print(f"torch {torch.__version__}, {where}, CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}")
    for section in args.sections:
        if section != "throughput" and args.device != "cuda":
            continue
        {"throughput": throughput, "layouts": layouts, "profile": profile, "largest": largest}[section](args)


if __name__ == "__main__":
    main()
