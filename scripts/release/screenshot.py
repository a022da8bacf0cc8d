"""Take the README screenshot: a real napari viewer with the Restore widget docked next to before/after layers.

Run headless from the repository root (a real X server is needed for OpenGL; ``offscreen`` crashes)::

    xvfb-run -a -s "-screen 0 1800x1000x24" python -m scripts.release.screenshot [--out docs/images/widget.png]

It loads the ``fluorescence-2d`` sample, restores the noisy layer through the widget (``_run``, the same
code path as the Run button) with the shipped default model, and saves the whole window. Where no
model ships yet (``weights/`` is empty), it uses an untrained ``tiny`` model in a temporary user model
folder and says so: rerun it once a real model is in ``weights/``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def pick_model() -> str | None:
    """None (the shipped default) when a model ships; else the name of a stand-in tiny model."""
    from napari_gama_ir import build_model, list_models, save_model
    from napari_gama_ir.zoo.store import USER_MODELS_ENV, shipped_models_dir

    if any(shipped_models_dir().glob("*.safetensors")):
        return None
    os.environ[USER_MODELS_ENV] = tempfile.mkdtemp(prefix="gama-ir-screenshot-")
    save_model(build_model("tiny"), "tiny-untrained")
    print("no shipped model in weights/: using an UNTRAINED tiny model; rerun once weights ship", file=sys.stderr)
    assert any(card.name == "tiny-untrained" for card in list_models())
    return "tiny-untrained"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images" / "widget.png")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for the restore")
    args = parser.parse_args(argv)
    model = pick_model()

    import napari
    from qtpy.QtWidgets import QApplication

    from napari_gama_ir._napari._common import State

    viewer = napari.Viewer(title="napari-gama-ir")
    viewer.window.resize(1700, 720)
    viewer.open_sample("napari-gama-ir", "fluorescence-2d")
    _dock, widget = viewer.window.add_plugin_dock_widget("napari-gama-ir", "Restore")
    widget._layer.value = viewer.layers["nuclei noisy"]
    if model is not None:
        widget._model.value = model
    widget._removed.value = True  # the removed-noise layer beside the result
    widget._run()
    start = time.monotonic()
    while widget._state is State.RUNNING:
        QApplication.processEvents()
        time.sleep(0.05)
        if time.monotonic() - start > args.timeout:
            raise SystemExit(f"restore did not finish in {args.timeout} s")
    if widget._state is not State.DONE:
        raise SystemExit(f"restore ended in state {widget._state.name}")
    viewer.layers["nuclei clean"].visible = True
    viewer.layers.move(0, len(viewer.layers))  # clean, noisy, restored, removed -> noisy, restored, removed, clean
    grid = viewer.canvas.grid
    grid.enabled, grid.shape, grid.stride = True, (1, 4), 1  # side by side, left to right
    viewer.reset_view()
    for _ in range(20):
        QApplication.processEvents()
        time.sleep(0.05)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    viewer.screenshot(str(args.out), canvas_only=False, flash=False)
    print(f"saved {args.out} ({time.monotonic() - start:.1f} s restore + draw)")
    viewer.close()


if __name__ == "__main__":
    main()
