"""Importing napari_gama_ir (the library, its CLI-free core) loads no Qt, napari or magicgui, so scripts and
cluster workers stay light and headless."""

from __future__ import annotations

import json
import subprocess
import sys

GUI_MODULES = ("qtpy", "napari", "magicgui", "PyQt5", "PyQt6", "PySide2", "PySide6", "superqt")


def test_import_loads_no_gui_modules():
    code = (
        "import json, sys, napari_gama_ir;"
        "from napari_gama_ir import restore, build_model, load_model;"
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {GUI_MODULES!r})))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
