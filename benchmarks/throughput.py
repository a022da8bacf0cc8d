"""Throughput of restore() on the CPU against classical denoisers, and where the time goes.

Megapixels per second of one model through the public ``restore()`` (normalisation, tiling, casting
included) on a stack of held-out photographs, against scikit-image's non-local means (fast mode) and
BM3D on one image, plus a torch profile of the network's forward pass (top operators by self time).

    python -m benchmarks.throughput --model general-gray [--planes 8] [--threads 2] [--profile]
    python -m benchmarks.throughput --model photo-gray photo-rgb fluorescence general-gray --no-bm3d
    python -m benchmarks.throughput --model general-gray --no-bm3d --max-tile 256 384 512   # the CPU tile cap
    python -m benchmarks.throughput --model fluorescence photo-rgb --no-bm3d --self-ensemble --planes 4

``--max-tile`` sets the engine's largest automatic CPU tile (``engine.plan.CPU_MAX_TILE``) for each run in
turn and adds a 1024 x 1024 plane; each row also gives the PSNR of the restored camera image against the
clean one, so that a faster tile size that costs quality shows it.

Several models: one row pair each (an RGB model restores the colour astronaut; a megapixel is a million
pixel positions, whatever the channels).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from scripts._dev import datasets

from napari_gama_ir import load_model, restore


def timed(fn, repeat=3):
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--model", nargs="+", default=["general-gray"])
    p.add_argument("--planes", type=int, default=8)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--profile", action="store_true")
    p.add_argument("--no-bm3d", action="store_true")
    p.add_argument("--self-ensemble", action="store_true", help="also each model's stack with restore(self_ensemble=True)")
    p.add_argument("--precision", default="auto", help="restore()'s precision: auto (bf16 on CPUs with native bf16) or fp32")
    p.add_argument("--max-tile", type=int, nargs="+", default=None, help="CPU tile caps to compare (engine.plan.CPU_MAX_TILE)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.max_tile:
        return tile_sweep(args)
    cam = datasets.photo("camera")
    sigma = 25 / 255
    noisy = (cam + np.random.default_rng(0).normal(0, sigma, cam.shape)).astype(np.float32)
    astronaut = datasets.photo("astronaut", rgb=True)
    noisy_rgb = (astronaut + np.random.default_rng(0).normal(0, sigma, astronaut.shape)).astype(np.float32)
    rows = []
    for name in args.model:
        net = load_model(name)
        rgb = net.card.in_channels == 3
        one, axes = (noisy_rgb, "YXC") if rgb else (noisy, "YX")
        stack = np.stack([one] * args.planes)
        mp_stack, mp_one = args.planes * 512 * 512 / 1e6, 512 * 512 / 1e6
        restore(one, net, axes=axes, device="cpu")  # warm-up
        rows.append((f"GAMA-IR {name} (restore, stack of {args.planes})",
                     mp_stack / timed(lambda: restore(stack, net, axes="Z" + axes, device="cpu", precision=args.precision), 2)))  # fmt: skip
        rows.append((f"GAMA-IR {name} (restore, one 512x512{'x3' if rgb else ''})",
                     mp_one / timed(lambda: restore(one, net, axes=axes, device="cpu", precision=args.precision))))  # fmt: skip
        if args.self_ensemble:
            rows.append((f"GAMA-IR {name} + self-ensemble (restore, stack of {args.planes})",
                         mp_stack / timed(lambda: restore(stack, net, axes="Z" + axes, device="cpu", precision=args.precision,
                                                          self_ensemble=True), 2)))  # fmt: skip
    from skimage.restoration import denoise_nl_means

    rows.append(("NLM fast (skimage)", mp_one / timed(lambda: denoise_nl_means(noisy, h=0.8 * sigma, sigma=sigma, fast_mode=True, patch_size=7, patch_distance=5))))
    if not args.no_bm3d:
        import bm3d

        rows.append(("BM3D", mp_one / timed(lambda: bm3d.bm3d(noisy, sigma_psd=sigma), 1)))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, precision {args.precision}\n")
    print("| method | MP/s |\n|---|---|")
    for name, mps in rows:
        print(f"| {name} | {mps:.3f} |")
    if args.profile:
        from torch.profiler import profile

        net = load_model(args.model[0])
        x = torch.from_numpy(noisy_rgb).permute(2, 0, 1)[None] if net.card.in_channels == 3 else torch.from_numpy(noisy)[None, None]
        from napari_gama_ir.engine.runtime import autocast, pick_precision

        cpu = torch.device("cpu")
        with torch.inference_mode(), autocast(cpu, pick_precision(args.precision, cpu)):
            net(x)  # warm-up
            with profile() as prof:
                net(x)
        print("\n```\n" + prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=10) + "\n```")


def tile_sweep(args) -> None:
    """MP/s and PSNR of ``restore()`` with each CPU tile cap, on 512 px and 1024 px planes."""
    from napari_gama_ir.engine import plan

    sigma = 25 / 255
    cam = datasets.photo("camera")
    big = np.block([[cam, cam[:, ::-1]], [cam[::-1], cam[::-1, ::-1]]])  # 1024 x 1024, mirrored so no seams
    rng = np.random.default_rng(0)
    noisy = (cam + rng.normal(0, sigma, cam.shape)).astype(np.float32)
    noisy_big = (big + rng.normal(0, sigma, big.shape)).astype(np.float32)
    stack = np.stack([noisy] * args.planes)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, precision {args.precision}\n")
    print("| model | CPU tile cap | tiles of a 512 / 1024 px plane | MP/s, one 512 px | MP/s, stack of 512 px | MP/s, one 1024 px | PSNR 512 / 1024 (dB) |")
    print("|---|---|---|---|---|---|---|")
    for name in args.model:
        net = load_model(name)
        for cap in args.max_tile:
            plan.CPU_MAX_TILE = cap
            kw = dict(device="cpu", precision=args.precision)
            restore(noisy, net, **kw)  # warm-up
            out = restore(noisy, net, **kw)
            out_big = restore(noisy_big, net, **kw)
            tiles = [plan.plan_restore(x, net, **kw).tiles_per_image for x in (noisy, noisy_big)]
            one = 0.262144 / timed(lambda: restore(noisy, net, **kw))
            many = 0.262144 * args.planes / timed(lambda: restore(stack, net, axes="ZYX", **kw), 2)
            large = 1.048576 / timed(lambda: restore(noisy_big, net, **kw), 2)
            psnr = [10 * np.log10(1 / np.mean((np.clip(o, 0, 1) - c) ** 2)) for o, c in ((out, cam), (out_big, big))]
            print(f"| {name} | {cap} | {tiles[0]} / {tiles[1]} | {one:.3f} | {many:.3f} | {large:.3f} | {psnr[0]:.2f} / {psnr[1]:.2f} |", flush=True)


if __name__ == "__main__":
    main()
