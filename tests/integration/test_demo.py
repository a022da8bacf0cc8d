"""gama-ir demo: restores the shipped sample and says which panel of its figure is which."""

from __future__ import annotations

import numpy as np
from PIL import Image

from napari_gama_ir.cli import main


def test_demo_writes_a_titled_figure_and_a_psnr_gain(tmp_path, capsys):
    assert main(["demo", "-o", str(tmp_path / "demo"), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    before, after = (float(v) for v in out.split("PSNR before ")[1].split(" dB (")[0].split(" dB -> after "))
    assert after > before + 5
    assert "(noisy | restored | clean, left to right)" in out
    figure = np.asarray(Image.open(tmp_path / "demo" / "side_by_side.png"))
    assert figure.shape[0] == 512 + 24 and (figure[:24] < 128).any()  # a title band above the 512 px panels
