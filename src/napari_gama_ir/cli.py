"""The ``gama-ir`` command line: restore, models, demo, train, export. Flags map one to one onto the API."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import signal
import sys
from contextlib import contextmanager
from typing import Iterator
from pathlib import Path

from . import __version__
from .errors import GamaIRError, InvalidInputError
from .io.files import sigterm_raises_systemexit


def _int_or_auto(text: str):
    if text == "auto":
        return "auto"
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or 'auto', got {text!r}") from None


def _add_option_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per field of RestoreOptions that has one (its help is the field's)."""
    from .engine.options import RestoreOptions
    from .engine.runtime import PRECISIONS
    from .model.gama_ir import MEAN_MODES

    choices = {"precision": PRECISIONS, "mean_mode": MEAN_MODES}
    for f in dataclasses.fields(RestoreOptions):
        kind, flag = f.metadata["cli"], "--" + f.name.replace("_", "-")
        if kind == "flag":
            parser.add_argument(flag, action="store_true", help=f.metadata["help"])
        elif kind is not None:
            parse = {"int_or_auto": _int_or_auto, "int": int}.get(kind, str)
            parser.add_argument(flag, type=parse, default=f.default, choices=choices.get(f.name), help=f.metadata["help"])


def _restore_options(args: argparse.Namespace, out: str):
    from .engine.options import RestoreOptions

    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(RestoreOptions) if f.metadata["cli"]}
    return RestoreOptions(out=out, **given)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gama-ir", description="Fast image restoration with GAMA-IR.")
    p.add_argument("--version", action="version", version=f"napari-gama-ir {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("restore", help="restore a TIFF or zarr stack into a new file")
    r.add_argument("input", help="input .tif/.tiff or .zarr")
    r.add_argument("-o", "--output", required=True, help="output .tif/.tiff or .zarr (written atomically)")
    r.add_argument("--model", default=None, help="shipped or user model name, or a .safetensors path (default: picked from the data)")
    _add_option_flags(r)
    r.add_argument("--estimate", action="store_true",
                   help="also estimate the noise and the result's PSNR from the noisy data alone (about 2 more restores "
                        "of a 512 px crop)")
    r.add_argument("-q", "--quiet", action="store_true", help="no progress bar")

    m = sub.add_parser("models", help="list shipped and user models (* marks the defaults); with NAME, print its card")
    m.add_argument("name", nargs="?", help="a model name or path: print its card")

    d = sub.add_parser("demo", help="restore the shipped sample with the default model; write TIFFs, a PNG and PSNR")
    d.add_argument("-o", "--output-dir", default="gama-ir-demo")
    d.add_argument("--sample", default="fluorescence-2d")
    d.add_argument("--model", default=None)
    d.add_argument("--device", default="auto")

    t = sub.add_parser("train", help="fine-tune a model on your images and save it as a user model")
    t.add_argument("--noisy", required=True, help="folder of noisy TIFFs (or one TIFF)")
    t.add_argument("--clean", default=None, help="folder of clean TIFFs matched by file name")
    from .training.objectives import SELF_SUPERVISED_MODES

    t.add_argument("--mode", default=None, choices=["supervised", *SELF_SUPERVISED_MODES],
                   help="default: supervised with --clean, else self-supervised (the best measured: 'blind-spot', Noise2Void)")
    t.add_argument("--base", default="default", help="model to start from, or scratch:<preset>")
    t.add_argument("--steps", type=int, default=None, help="training steps (>= 1)")
    t.add_argument("--minutes", type=float, default=None, help="stop after this wall time (> 0)")
    t.add_argument("--patch-size", type=int, nargs="+", default=None, metavar="PX",
                   help="patch side (>= 16, a multiple of the model's grid: 16 px for shipped models), or the smallest "
                        "and largest side, 16*k px apart (one drawn per step); default: 64, or the largest that fits")
    t.add_argument("--batch-size", type=int, default=8, help="patches per step (>= 1)")
    t.add_argument("--lr", type=float, default=None, help="learning rate (> 0; default 2e-4 fine-tuning, 1e-3 from scratch)")
    t.add_argument("--axes", default=None)
    t.add_argument("--device", default="auto")
    t.add_argument("--precision", default="auto",
                   help="auto (fp32 on the CPU; bf16 autocast on a GPU that has it, else fp32), fp32 or bf16 "
                        "(fp16 is refused for training: no loss scaling)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--context", type=int, default=0, metavar="K",
                   help="restore each plane from K neighbouring planes on each side as well (0..7; stacks only; default 0)")
    t.add_argument("--context-axis", default=None, choices=["Z", "T", "z", "t"],
                   help="axis of those planes (default: Z where the data has Z, else T)")
    from .model.context import CONTEXT_STARTS

    t.add_argument("--context-start", default=CONTEXT_STARTS[0], choices=CONTEXT_STARTS,
                   help="a 2-D base starts on the planes' running mean ('mean', default) or the centre plane ('centre')")
    from .training.validate import NOISE_CORRELATION

    t.add_argument("--noise-correlation", default="auto", choices=NOISE_CORRELATION,
                   help="self-supervised: measure whether neighbouring pixels share noise (stripes, filtering) and mask "
                        "along them (auto, the default), or treat the noise as pixel-independent (off)")
    t.add_argument("-o", "--output", required=True, help="name (saved in the user model folder) or path of the new model")
    t.add_argument("--overwrite", action="store_true", help="replace an existing model of that name or path")
    t.add_argument("-q", "--quiet", action="store_true")
    _add_export_parser(sub)
    return p


def _add_export_parser(sub) -> None:
    from .zoo.bioimageio import WEIGHT_FORMATS

    e = sub.add_parser("export", help="write a BioImage.IO model package (.zip or folder) for Fiji, ilastik, bioimageio.core",
                       description='Needs the optional extra: pip install "napari-gama-ir[bioimageio]".')
    e.add_argument("model", help="shipped or user model name, a .safetensors path, or a package")
    e.add_argument("output", help="OUT.zip (zipped package) or a folder")
    e.add_argument("--name", default=None, help="package name (default: GAMA-IR MODEL)")
    e.add_argument("--description", default=None, help="one line (default: the model card's)")
    e.add_argument("--author", action="append", default=None, help="an author's name (repeat for several)")
    e.add_argument("--license", default=None, help="SPDX licence id (default: the model card's)")
    e.add_argument("--sample", default=None, help="shipped sample for the test tensors and cover (default: picked)")
    e.add_argument("--weights", nargs="+", default=list(WEIGHT_FORMATS), choices=WEIGHT_FORMATS,
                   help="weight formats (pytorch_state_dict is always written)")
    e.add_argument("--overwrite", action="store_true", help="replace an existing OUTPUT")
    e.add_argument("-q", "--quiet", action="store_true", help="no progress lines")


def _cmd_export(args) -> int:
    from .zoo.bioimageio import iter_export_bioimageio

    gen = iter_export_bioimageio(
        args.model, args.output, name=args.name, description=args.description, authors=args.author,
        license=args.license, sample=args.sample, weights=args.weights, overwrite=args.overwrite,
    )  # fmt: skip
    try:
        while True:
            step = next(gen)
            if not args.quiet:
                print(f"[{step.done}/{step.total}] {step.message}", file=sys.stderr)
    except StopIteration as stop:
        print(stop.value)
    finally:
        gen.close()
    return 0


def _cmd_restore(args) -> int:
    from tqdm import tqdm

    from .engine.plan import plan_restore
    from .engine.restore import iter_restore

    plan = plan_restore(args.input, args.model, _restore_options(args, args.output))
    print(plan.describe(), file=sys.stderr)
    gen = iter_restore(args.input, plan=plan)
    bar = None
    try:
        while True:
            step = next(gen)
            if bar is None and not args.quiet:
                bar = tqdm(total=step.total, unit="tile", desc="restore", file=sys.stderr)
            if bar is not None:
                bar.n = step.done
                bar.refresh()
    except StopIteration as stop:
        out = stop.value
    finally:
        gen.close()  # on an error or a signal: removes the partial output
        if bar is not None:
            bar.close()
    if args.estimate:
        from .estimate.quality import estimate_quality

        print(estimate_quality(args.input, plan.model, axes=plan.axes, device=args.device).describe(), file=sys.stderr)
    print(out)
    return 0


def _cmd_models(args) -> int:
    from .zoo.defaults import default_names, speed_class
    from .zoo.store import list_models, read_card, resolve_model_path

    if getattr(args, "name", None):
        print(_card_text(read_card(resolve_model_path(args.name))))
        return 0
    cards = list_models()
    if not cards:
        print("no models installed")
        return 0
    defaults = default_names()
    rows = [(("* " if c.name in defaults else "  ") + c.name, c.description.split(";")[0] or "-",
             f"{c.parameter_count / 1e6:.1f} M", speed_class(c.parameter_count)) for c in cards]  # fmt: skip
    head = ("  name", "use it for", "params", "speed")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(3)]
    for row in [head, *rows]:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths)) + "  " + row[3])
    print("* default: " + "; ".join(f"{n} for {what}" for n, what in defaults.items()) + ". "
          "Details: gama-ir models NAME")  # fmt: skip
    return 0


def _card_text(card) -> str:
    """A model card as readable text (``gama-ir models NAME``)."""
    from .zoo.defaults import speed_class

    a, t, m = card.model_args, card.training, card.metrics
    c = card.out_channels if card.context else card.in_channels
    kind = "RGB" if c == 3 else "gray" if c == 1 else f"{c}-channel"
    if card.context:
        kind += f"; restores each plane from {card.context['planes']} neighbouring plane(s) on each side along {card.context['axis']}"
    norm = card.normalization
    lines = [f"{card.name}: {card.description}" if card.description else card.name,
             f"  network     GAMAIR preset {card.preset}: width {a.get('width', 42)}, blocks {a.get('enc_blocks')} / "
             f"{a.get('middle_blocks', 2)} / {a.get('dec_blocks')}, {card.parameter_count / 1e6:.2f} M parameters "
             f"({speed_class(card.parameter_count)}), {kind}",
             f"  normalise   percentiles {norm.get('low', 0.5)} - {norm.get('high', 99.9)}"]  # fmt: skip
    if t:
        noise = t.get("noise")
        if isinstance(noise, dict):
            noise = ", ".join(f"{k} {v}" for k, v in noise.items())
        lines += [f"  trained     {t.get('mode', '?')} from {t.get('base_model') or 'scratch'}; noise: {noise or '?'}",
                  f"  data        {t.get('data', '?')}"]  # fmt: skip
        steps, seconds = t.get("total_steps", t.get("steps")), t.get("total_seconds", t.get("seconds"))
        by_hw = t.get("time_by_hardware") or ({t["device"]: seconds} if "device" in t and seconds is not None else {})
        time_text = ", ".join(f"{s / 3600:.1f} h on {hw}" for hw, s in by_hw.items())
        lines.append(f"  total       {steps} steps{', ' + time_text if time_text else ''}")
        commands = [p["command"] for p in t.get("phases", []) if p.get("command")] + ([t["command"]] if t.get("command") else [])
        if commands:
            lines.append(f"  commands    {len(commands)} phase(s), oldest first:")
            lines += [f"    {c}" for c in commands]
    ev = m.get("eval") or {}
    if ev:
        lines.append(f"  held out    {', '.join(map(str, ev.get('images', [])))} ({ev.get('protocol', '?')}); PSNR dB / SSIM:")
        for key, value in ev.items():
            if isinstance(value, dict) and "model" in value:
                others = ", ".join(f"{k} {v['psnr']:.2f}" for k, v in value.items() if k != "model" and isinstance(v, dict) and "psnr" in v)
                lines.append(f"    {key}: {value['model']['psnr']:.2f} / {value['model'].get('ssim', float('nan')):.3f} ({others})")
    elif m.get("summary"):
        lines.append(f"  metrics     {m['summary']}")
    lines.append(f"  licence     {card.license}")
    return "\n".join(lines)


def _cmd_demo(args) -> int:
    import numpy as np
    import tifffile

    from .engine.restore import restore
    from .samples import load_sample
    from .training.losses import psnr

    sample = load_sample(args.sample)
    noisy, clean = sample["noisy"], sample["clean"]
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    restored = restore(noisy, args.model, axes=sample["axes"], device=args.device)
    tifffile.imwrite(out / "noisy.tif", noisy, metadata={"axes": sample["axes"]})
    tifffile.imwrite(out / "restored.tif", restored, metadata={"axes": sample["axes"]})
    panels = [noisy, restored] + ([clean] if clean is not None else [])
    titles = ["noisy", "restored", "clean"][: len(panels)]
    _save_side_by_side(panels, titles, out / "side_by_side.png")
    print(f"sample {args.sample!r}: {sample.get('description', '')}")
    if clean is not None:
        rng = 255.0 if clean.dtype == np.uint8 else float(clean.max()) - float(clean.min())
        before, after = psnr(noisy.astype(np.float64), clean.astype(np.float64), rng), psnr(restored.astype(np.float64), clean.astype(np.float64), rng)
        print(f"PSNR before {before:.2f} dB -> after {after:.2f} dB (data range {rng:g})")
    print(f"wrote {out / 'noisy.tif'}, {out / 'restored.tif'}, {out / 'side_by_side.png'} ({' | '.join(titles)}, "
          "left to right)")  # fmt: skip
    return 0


def _save_side_by_side(panels, titles: list[str], path: Path) -> None:
    """Noisy | restored | clean, each scaled to 8 bits with the clean (or last) panel's range, each titled
    in a white band above it."""
    import numpy as np
    from PIL import Image, ImageDraw, ImageFont

    ref = panels[-1].astype(np.float32)
    lo, hi = np.percentile(ref, [0.5, 99.8])
    tiles = []
    for p in panels:
        img = p.astype(np.float32)
        if img.ndim == 3 and img.shape[-1] not in (3, 4):
            img = img[img.shape[0] // 2]  # middle plane of a stack
        tiles.append(np.clip((img - lo) / max(hi - lo, 1e-6) * 255, 0, 255).astype(np.uint8))
    gap = np.full((tiles[0].shape[0], 8, *tiles[0].shape[2:]), 255, np.uint8)
    row = np.concatenate([x for t in tiles for x in (t, gap)][:-1], axis=1)
    band = 24
    image = Image.fromarray(np.concatenate([np.full((band, *row.shape[1:]), 255, np.uint8), row], axis=0))
    draw, font = ImageDraw.Draw(image), ImageFont.load_default(size=16)
    for i, title in enumerate(titles):
        draw.text((i * (tiles[0].shape[1] + gap.shape[1]) + 6, 3), title, fill=0 if image.mode == "L" else (0, 0, 0), font=font)
    image.save(path)


def _patch_size(sides: list[int] | None):
    if not sides:
        return None
    return sides[0] if len(sides) == 1 else tuple(sides)


def _cmd_train(args) -> int:
    from tqdm import tqdm

    from .training.finetune import FinetuneOptions, iter_finetune, run_finetune
    from .zoo.store import model_target, save_model

    target = model_target(args.output)  # checked before training, not after it
    if target.exists() and not args.overwrite:
        raise InvalidInputError(f"model {target} exists; pass --overwrite to replace it, or choose another name with -o")
    mode = args.mode or ("supervised" if args.clean else "self-supervised")
    opts = FinetuneOptions(
        noisy=args.noisy, clean=args.clean, base=args.base, mode=mode, steps=args.steps, max_minutes=args.minutes,
        patch_size=_patch_size(args.patch_size), batch_size=args.batch_size, lr=args.lr, axes=args.axes, device=args.device,
        precision=args.precision, seed=args.seed, name=Path(args.output).stem, context=args.context,
        context_axis=args.context_axis, context_start=args.context_start, noise_correlation=args.noise_correlation,
    )  # fmt: skip
    bar = None

    def show(p):
        nonlocal bar
        if p.noise_correlation is not None:  # measured before training (self-supervised runs)
            print(p.noise_correlation.describe(), file=sys.stderr)
        if args.quiet:
            return
        if bar is None:
            bar = tqdm(total=p.total, unit="step", desc="train", file=sys.stderr)
        bar.n = p.step
        bar.set_postfix(loss=f"{p.loss:.3f}", best=f"{p.best_psnr:.2f} dB" if p.best_psnr is not None else "-")

    try:
        net = run_finetune(iter_finetune(opts), show)
    finally:
        if bar is not None:
            bar.close()
    path = save_model(net, args.output, overwrite=args.overwrite)
    v = net.card.metrics["validation"]
    print(f"validation PSNR {v['psnr_before']:.2f} -> {v['psnr_after']:.2f} dB; saved {path}")
    return 0


COMMANDS = {"restore": _cmd_restore, "models": _cmd_models, "demo": _cmd_demo, "train": _cmd_train}
COMMANDS["export"] = _cmd_export


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``gama-ir``; returns the exit code (2 for bad input, 130 when interrupted)."""
    args = _parser().parse_args(argv)
    try:
        with sigterm_raises_systemexit(), _warnings_to_stderr(args.command):
            return COMMANDS[args.command](args)
    except (GamaIRError, OSError) as exc:  # bad input, or a file that cannot be read or written
        print(f"gama-ir {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"gama-ir {args.command}: interrupted; no partial output was kept", file=sys.stderr)
        return 130
    except SystemExit as exc:
        if exc.code == 128 + signal.SIGTERM:
            print(f"gama-ir {args.command}: terminated; no partial output was kept", file=sys.stderr)
        raise


@contextmanager
def _warnings_to_stderr(command: str) -> Iterator[None]:
    """The package's logged warnings (e.g. a broken user model skipped by list_models) as one stderr line each."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(logging.WARNING)
    handler.setFormatter(logging.Formatter(f"gama-ir {command}: warning: %(message)s"))
    logger = logging.getLogger("napari_gama_ir")
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


if __name__ == "__main__":
    sys.exit(main())
