"""Copy the best-scoring candidate of each "S" model (select_checkpoint.py's log) to RESULTS/ship, unless
it is the shipped file, and every new candidate's card to RESULTS/cards.

    python -m scripts.training.pick runs/gpu/logs/sel.log runs/gpu
"""

import re
import shutil
import sys
from pathlib import Path

log, results = Path(sys.argv[1]), Path(sys.argv[2])
scores = re.findall(r"^(\S+): validation PSNR ([\d.]+) dB", log.read_text(), re.M)
for model in ("photo-gray-S", "photo-rgb-S"):
    candidates = [(float(score), path) for path, score in scores if path.endswith(model)]
    if not candidates:
        continue
    best = max(candidates)
    print(model, "best", best, "of", candidates)
    for _, path in candidates:
        if not path.startswith("weights/"):
            shutil.copy(path + ".json", results / "cards" / f"{model}-{'last' if '/last/' in path else 'w'}.json")
    if not best[1].startswith("weights/"):
        for ext in (".safetensors", ".json"):
            shutil.copy(best[1] + ext, results / "ship" / (model + ext))
