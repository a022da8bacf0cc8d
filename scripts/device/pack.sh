#!/usr/bin/env bash
# Builds .gpudata/ (git-ignored) for a lent GPU machine, whose image has torch but lacks some of this
# project's packages and has no network: the missing wheels (Python 3.12, manylinux x86-64) and the
# photographs of the photo models' training, validation and held-out sets as lossless WebP/PNG (44 MB;
# the machine's working tree may carry 64 MiB in all). Run here, in the repository root, with the
# development data cache filled (scripts/datasets.py); then see scripts/device/README.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p .gpudata/whl
for requirement in dask==2026.8.0 partd==1.4.2 locket==1.0.0 zarr==3.1.6 numcodecs==0.16.6 donfig==0.8.1.post1 \
    google-crc32c==1.9.0 platformdirs==4.14.8; do
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .gpudata/whl "$requirement"
done
${PYTHON:-python3} - <<'PY'  # PYTHON=.venv/bin/python where python3 lacks PIL and scikit-image
import sys
from pathlib import Path

sys.path.insert(0, "scripts")
import datasets as d

names = d.carried_photo_names()
d.export_photos(Path(".gpudata"), names, compressed=True)
Path(".gpudata/photos.sha256").write_text(d.photos_digest(names) + "\n")
PY
du -sh .gpudata
