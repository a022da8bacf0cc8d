"""The Fine-tune panel shows the noise autocorrelation of the first noisy layer for self-supervised modes: a
small plot of the ACF along y and x and one line, measured in a worker; it updates when the layer changes."""

from __future__ import annotations

import numpy as np
import pytest

from napari_gama_ir._napari.finetune_widget import FinetuneWidget
from tests.unit.test_correlation import noisy

pytestmark = pytest.mark.qt
TIMEOUT = 30_000


@pytest.fixture
def panel(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.add_image(noisy("x3").astype(np.float32), name="filtered along x")
    viewer.add_image(noisy("poisson-gaussian").astype(np.float32), name="white")
    widget = FinetuneWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Fine-tune")
    return viewer, widget


def _measured(widget) -> bool:
    return widget._noise_view.plot.found is not None


def test_self_supervised_mode_plots_the_noise_autocorrelation_of_the_noisy_layer(panel, qtbot, tmp_path):
    viewer, widget = panel
    view = widget._noise_view
    widget._noisy.value = [viewer.layers["filtered along x"]]
    assert view.native.isHidden()  # supervised: the clean image is the target, the noise's structure does not matter
    widget._mode.value = "blind-spot"
    assert not view.native.isHidden()
    qtbot.waitUntil(lambda: _measured(widget), timeout=TIMEOUT)
    assert view.line.value.startswith("noise is correlated along x over 2 pixels")
    curves = view.plot.curves()
    assert curves["x"][0] == 1.0 and curves["x"][1] > 0.5 and abs(curves["y"][1]) < 0.1
    view.native.grab().save(str(tmp_path / "noise_correlation.png"))  # looked at while writing this test
    assert (tmp_path / "noise_correlation.png").stat().st_size > 0

    widget._noisy.value = [viewer.layers["white"]]
    qtbot.waitUntil(lambda: _measured(widget) and "independent" in view.line.value, timeout=TIMEOUT)
    assert view.plot.curves()["x"][1] < 0.1

    widget._mode.value = "supervised"
    assert view.native.isHidden()


def test_a_plane_too_small_to_measure_says_so(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    viewer.add_image(np.random.default_rng(0).normal(size=(12, 64)).astype(np.float32), name="thin")
    widget = FinetuneWidget(viewer)
    widget._noisy.value = [viewer.layers["thin"]]
    widget._mode.value = "self-supervised"
    qtbot.waitUntil(lambda: "not measured" in widget._noise_view.line.value, timeout=TIMEOUT)
    assert "12 x 64 pixels" in widget._noise_view.line.value and widget._noise_view.plot.found is None
