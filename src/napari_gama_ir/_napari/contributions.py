"""npe2 contributions besides the widget: sample data and the layer-menu "Restore with defaults"."""

from __future__ import annotations

import napari

from ..samples import load_sample, sample_info
from . import layers
from ._common import ResultLayer
from .workers import report_error, start_worker


def _sample(name: str) -> list[tuple]:
    """A shipped sample as napari layers named after it ("nuclei noisy", "nuclei clean"): the clean reference
    (hidden) first, then the noisy image, which napari adds last and so selects (what a filter acts on)."""
    s = load_sample(name)
    info = sample_info(name)
    label = info["label"]
    rgb = s["axes"].endswith("C")
    common = {"scale": s["scale"], "rgb": rgb, "metadata": {"napari_gama_ir_sample": name, "description": s["description"]}}
    if not rgb:
        common["colormap"] = "gray"
        common["contrast_limits"] = (float(s["clean"].min()), float(s["clean"].max()))
    if len(s["axes"]) > 2 and not rgb:
        common["axis_labels"] = tuple(s["axes"].lower())
    if "unit" in info:  # the physical size of a pixel, kept on results
        common["units"] = (info["unit"],) * len(s["scale"])
    out = [(s["noisy"], {**common, "name": f"{label} noisy"}, "image")]
    if s["clean"] is not None:
        out.insert(0, (s["clean"], {**common, "name": f"{label} clean", "visible": False}, "image"))
    return out


def fluorescence_2d() -> list[tuple]:
    """Nuclei, 2-D fluorescence (512 x 512, uint16), Poisson-Gaussian noise, and the clean image."""
    return _sample("fluorescence-2d")


def fluorescence_3d() -> list[tuple]:
    """A mitotic nucleus, real 3-D ZYX fluorescence (60 x 60 x 50, uint16), noisy and original."""
    return _sample("fluorescence-3d")


def photo_rgb() -> list[tuple]:
    """An RGB photo (320 x 320, uint8) with Gaussian noise sigma 25, and the clean photo."""
    return _sample("photo-rgb")


def restore_with_defaults(viewer: napari.viewer.Viewer):
    """Layers > Filters > Restore with defaults: restore the selected Image layer in the background.

    Returns the worker (None when nothing could start; a notification then says why). The worker plans
    too, so a bad input is reported when it fails there.
    """
    try:
        data, axes, meta = layers.layer_to_input(viewer.layers.selection.active)
        output = ResultLayer(viewer, data, meta, {"axes": axes})
    except Exception as exc:  # noqa: BLE001 - every failure becomes a notification
        report_error(exc)
        return None
    return start_worker(*output.job, output.on_progress, output.on_done, on_finished=output.on_finished,
                        desc=f"GAMA-IR: {meta['name']}")  # fmt: skip
