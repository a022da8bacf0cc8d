# Device call 2 (right after call 1, on the same warm machine; weights/photo-gray-S, photo-rgb-S and
# photo-rgb in the tree): the two photo "S" models trained side by side from their shipped weights for
# $M minutes, the choice between each run's output, its last checkpoint and the shipped file by
# validation (64 draws, fp32 on the GPU), then (unless SPEED=0) restore() speed of the RGB models. The chosen files come
# back as $OUT/part_* (cat part_* | tar xf - gives ship/ and cards/). The session-11 run: M=7.3 (LR=3e-4,
# SEEDS="131 132"); session 15's: M=8 SEEDS="181 182" SPEED=0 (no speed run, its minute went to training).
T0=$(date +%s)
export PYTHONPATH=/tmp/site:$PWD/src GAMA_IR_DATA_CACHE=${GAMA_IR_DATA_CACHE:-/root/data} PYTHONUNBUFFERED=1
[ -d "$GAMA_IR_DATA_CACHE/photos" ] || { echo "no data: this machine is fresh, run call 1 first"; exit 3; }
M=${M:-6}; DEV=${DEV:-cuda}; BATCH=${BATCH:-16}; DRAWS=${DRAWS:-64}; STEPS=${STEPS:-1000000}; R=${R:-/root/res}
LR=${LR:-3e-4}; SEEDS=${SEEDS:-131 132}; read -r SEED_GRAY SEED_RGB <<< "$SEEDS"; SPEED=${SPEED:-1}
rm -rf "$R"; mkdir -p "$R/ship" "$R/cards" "$OUT"  # a rerun on a warm machine never scores or ships the last call's files
nvidia-smi dmon -s u -d 10 > $OUT/dmon.log 2>&1 &
DMON=$!
common="--more-photos --lomiri-photos --half-scale-copies --half --device $DEV --minutes $M --steps $STEPS --threads 6 --batch $BATCH --patch 192 384 --val-draws 8 --out $R/w"
python3 scripts/train_shipped.py photo-gray --base weights/photo-gray-S --save-as photo-gray-S $common --lr $LR --seed $SEED_GRAY --checkpoint $R/ck-pgS > $OUT/pgS.log 2>&1 &
P1=$!
python3 scripts/train_shipped.py photo-rgb --base weights/photo-rgb-S --save-as photo-rgb-S $common --lr $LR --seed $SEED_RGB --checkpoint $R/ck-rgbS > $OUT/rgbS.log 2>&1 &
P2=$!
wait $P1 || { echo "photo-gray-S training failed"; tail -20 $OUT/pgS.log; exit 1; }
wait $P2 || { echo "photo-rgb-S training failed"; tail -20 $OUT/rgbS.log; exit 1; }
kill $DMON 2>/dev/null
echo "training done at $(( $(date +%s) - T0 )) s"
python3 scripts/checkpoint_to_model.py $R/ck-pgS $R/w/photo-gray-S $R/last/photo-gray-S --half
python3 scripts/checkpoint_to_model.py $R/ck-rgbS $R/w/photo-rgb-S $R/last/photo-rgb-S --half
python3 scripts/select_checkpoint.py photo-gray weights/photo-gray-S $R/w/photo-gray-S $R/last/photo-gray-S --draws $DRAWS --more-photos --device $DEV | tee $OUT/sel.log
python3 scripts/select_checkpoint.py photo-rgb weights/photo-rgb-S $R/w/photo-rgb-S $R/last/photo-rgb-S --draws $DRAWS --more-photos --device $DEV | tee -a $OUT/sel.log
echo "selection done at $(( $(date +%s) - T0 )) s"
python3 scripts/device/pick.py $OUT/sel.log $R | tee $OUT/ship.txt
if [ "$SPEED" = 1 ]; then
  if [ -f $R/ship/photo-rgb-S.safetensors ]; then RGBS=$R/ship/photo-rgb-S; else RGBS=weights/photo-rgb-S; fi
  timeout 90 python3 benchmarks/gpu.py --models photo-rgb $RGBS --planes 8 --precision bf16 --sections throughput --no-tiff --device $DEV 2>&1 | tee $OUT/speed.log
fi
(cd $R && tar cf - ship cards) | split -b 15M - $OUT/part_
echo "call 2 took $(( $(date +%s) - T0 )) s"
