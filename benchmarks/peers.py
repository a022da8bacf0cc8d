"""Forward latency and peak memory of GAMA-IR "S" against NAFNet-w32 (SIDD config) and Restormer.

All with random weights at 1 x 3 x 256 x 256. Peers come from ``spandrel`` / ``spandrel-extra-arches``
(benchmark-only; Restormer's package licence is non-commercial), which import torchvision, so this
runs in a separate environment (see docs/benchmarks.md):

    python3 -m venv .venv-bench && .venv-bench/bin/pip install torch==2.14.1 torchvision==0.29.1 \
        spandrel spandrel-extra-arches && .venv-bench/bin/pip install --no-deps -e . && \
        .venv-bench/bin/pip install safetensors platformdirs dask tifffile zarr tqdm
    .venv-bench/bin/python -m benchmarks.peers [--device cpu|cuda] [--repeat 10]

Latency: median of ``repeat`` timed forward passes after 3 warm-up passes (torch.inference_mode).
Peak memory: CUDA's max_memory_allocated on a GPU; on the CPU the growth of peak RSS over the forward
passes, each model measured in a fresh child process (includes the allocator's caching).
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import time

import torch


def nafnet_w32():
    from spandrel.architectures.NAFNet import NAFNet

    return NAFNet(img_channel=3, width=32, middle_blk_num=12, enc_blk_nums=[2, 2, 4, 8], dec_blk_nums=[2, 2, 2, 2])


def restormer():
    from spandrel_extra_arches.architectures.Restormer import Restormer

    return Restormer(inp_channels=3, out_channels=3)


def gama_s():
    from napari_gama_ir import build_model

    return build_model("S", in_channels=3)


def measure(net, device, dtype, repeat, size):
    net = net.to(device).eval()
    x = torch.rand(1, 3, size, size, device=device)
    ctx = torch.autocast(device_type=device, dtype=dtype) if dtype != torch.float32 else torch.autocast(device_type=device, enabled=False)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with torch.inference_mode(), ctx:
        if device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        for _ in range(3):
            net(x)
        times = []
        for _ in range(repeat):
            t = time.perf_counter()
            net(x)
            if device == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t)
    mem = torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024
    return statistics.median(times) * 1000, mem


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--repeat", type=int, default=10)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--only", default=None, help=argparse.SUPPRESS)  # one model, in a child process
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    dtypes = [torch.float32] if args.device == "cpu" else [torch.float32, torch.float16, torch.bfloat16]
    models = {"GAMA-IR S (ours)": gama_s, "NAFNet-w32 (SIDD)": nafnet_w32, "Restormer": restormer}
    if args.only is None:
        name = torch.cuda.get_device_name() if args.device == "cuda" else f"CPU, {torch.get_num_threads()} threads"
        print(f"torch {torch.__version__}, {name}, input 1x3x{args.size}x{args.size}\n")
        print("| model | params (M) | precision | median latency (ms) | peak memory (MiB) |\n|---|---|---|---|---|", flush=True)
        for label in models:
            subprocess.run([sys.executable, __file__, *(argv or sys.argv[1:]), "--only", label], check=True)
        return
    for label, make in [(args.only, models[args.only])]:
        torch.manual_seed(0)
        net = make()
        params = sum(p.numel() for p in net.parameters()) / 1e6
        for dt in dtypes:
            ms, mem = measure(net, args.device, dt, args.repeat, args.size)
            print(f"| {label} | {params:.2f} | {str(dt).split('.')[-1]} | {ms:.1f} | {mem:.0f} |", flush=True)


if __name__ == "__main__":
    main()
