"""The console snippets of docs/usage.md run as written, in a real viewer, on the sample they name."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

USAGE = Path(__file__).resolve().parents[2] / "docs" / "usage.md"


def _console_snippets() -> list[str]:
    section = USAGE.read_text(encoding="utf-8").split("### From napari's console", 1)[1].split("\n### ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


@pytest.mark.qt
def test_console_snippets_run_on_the_3d_sample(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-gama-ir", "fluorescence-3d")
    snippets = _console_snippets()
    assert len(snippets) == 2
    namespace = {"viewer": viewer}
    for code in snippets:
        exec(compile(code, str(USAGE), "exec"), namespace)  # noqa: S102 - our own documentation
    names = [layer.name for layer in viewer.layers]
    assert names[:2] == ["nucleus 3-D clean", "nucleus 3-D noisy"] and len(names) == 7
    assert names[-1] == "nucleus 3-D noisy removed noise (general-gray)"
    assert all(layer.data.shape == (60, 60, 50) for layer in viewer.layers)
    restored = viewer.layers["nucleus 3-D noisy restored (general-gray)"]  # restore_layer keeps scale and units
    assert tuple(restored.scale) == tuple(viewer.layers["nucleus 3-D noisy"].scale)
    assert [str(u) for u in restored.units] == ["micrometer"] * 3
