"""BioImage.IO export: export time, package size per weight format, ONNX Runtime's CPU speed against
PyTorch's on a 512 x 512 plane, and how close bioimageio.core's prediction (whole image, and tiled) comes
to restore() on the shipped 2-D sample. Prints Markdown tables (docs/bioimageio.md).

    python -m benchmarks.bioimageio [--model fluorescence] [--threads 2]

Needs the extra: pip install "napari-gama-ir[bioimageio]".
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
import torch

# run as a script, this folder comes first on sys.path and this file would shadow the bioimageio package
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="fluorescence", help="model to export (default: the shipped default gray model)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()

    import onnxruntime as ort

    from napari_gama_ir import export_bioimageio, load_model
    from napari_gama_ir.zoo import bioimageio as bio

    torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        pkg = export_bioimageio(args.model, Path(tmp) / f"{args.model}.zip")
        export_s = time.perf_counter() - t0
        with zipfile.ZipFile(pkg) as zf:
            sizes = {i.filename: (i.file_size, i.compress_size) for i in zf.infolist()}
            onnx_bytes = zf.read(bio.PACKAGE_FILES["onnx"])
            ts_bytes = zf.read(bio.PACKAGE_FILES["torchscript"])
        total = pkg.stat().st_size

        x = np.random.default_rng(0).random((1, 1, 512, 512), dtype=np.float32)
        net = bio.raw_intensity_network(load_model(args.model))  # the package's network, in PyTorch
        xt = torch.from_numpy(x)
        with torch.inference_mode():
            t_torch = bio.time_call(lambda: net(xt), args.repeat)
            ts = torch.jit.load(__import__("io").BytesIO(ts_bytes))
            t_ts = bio.time_call(lambda: ts(xt), args.repeat)
        so = ort.SessionOptions()
        so.intra_op_num_threads = args.threads
        sess = ort.InferenceSession(onnx_bytes, so, providers=["CPUExecutionProvider"])
        t_ort = bio.time_call(lambda: sess.run(None, {"input": x}), args.repeat)
        with torch.inference_mode():
            ref = net(xt).numpy()
        agree = bio.psnr(sess.run(None, {"input": x})[0], ref)
        agreement = _agreement_with_restore(pkg, args.model)

    print(f"model {args.model} ({net.card.parameter_count:,} parameters); {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, {args.threads} threads; torch {torch.__version__}, onnxruntime {ort.__version__}")
    print(f"\nexport (all three formats, validation included): {export_s:.1f} s; package {total / 1e6:.2f} MB (zip)\n")
    print("| file | size (MB) | in the zip (MB) |\n|---|---|---|")
    for name, (size, packed) in sorted(sizes.items()):
        print(f"| {name} | {size / 1e6:.2f} | {packed / 1e6:.2f} |")
    print(f"\n| 512 x 512 plane, CPU, {args.threads} threads | best of {args.repeat} (s) |\n|---|---|")
    rows = [("PyTorch (napari-gama-ir's fast path)", t_torch), ("TorchScript (package, portable path)", t_ts),
            ("ONNX Runtime (package)", t_ort)]
    for label, t in rows:
        print(f"| {label} | {t:.3f} |")
    print(f"\nONNX Runtime / PyTorch: {t_ort / t_torch:.2f}x the time; ONNX vs PyTorch output PSNR {agree:.1f} dB")
    print("\n| bioimageio.core predict on the fluorescence-2d sample | PSNR against restore() (dB) |\n|---|---|")
    for label, value in agreement:
        print(f"| {label} | {value:.1f} |")


def _agreement_with_restore(pkg, model: str) -> list[tuple[str, float]]:
    """PSNR (peak: restore()'s output range) of bioimageio.core's prediction, whole and tiled, against
    restore() on the shipped 2-D sample, in the sample's own intensity units."""
    from bioimageio.core import load_description, predict

    from napari_gama_ir import restore
    from napari_gama_ir.samples import load_sample
    from napari_gama_ir.zoo import bioimageio as bio

    image = np.asarray(load_sample("fluorescence-2d")["noisy"], dtype=np.float32)
    step = 16
    image = image[: image.shape[0] // step * step, : image.shape[1] // step * step]
    reference = restore(image, model=model, device="cpu", precision="fp32")
    descr = load_description(pkg, perform_io_checks=False)
    rows = []
    for label, block in (("whole image", None), ("tiles of 128 px + halo", 128)):
        kwargs = {} if block is None else {"input_block_shape": {"input": {"batch": 1, "channel": 1, "y": block + 32, "x": block + 32}}}
        out = predict(model=descr, inputs={"input": image[None, None]}, **kwargs)
        pred = np.asarray(out.members["output"].data).reshape(image.shape)
        rows.append((f"{label} ({image.shape[0]} x {image.shape[1]})", bio.psnr(pred, reference)))
    return rows


if __name__ == "__main__":
    main()
