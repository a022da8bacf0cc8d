"""On the GPU machine: the carried photographs hold the pixels they held here (pack.sh's digest)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import datasets  # noqa: E402

expected = (Path(__file__).resolve().parents[2] / ".gpudata" / "photos.sha256").read_text().strip()
found = datasets.photos_digest(datasets.carried_photo_names())
print("photographs", "OK" if found == expected else f"DIFFER: {found} here, {expected} when packed")
sys.exit(found != expected)
