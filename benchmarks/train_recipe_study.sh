#!/usr/bin/env bash
# Issue 3: which training recipe gives the best forecaster for two hours of a 2-core CPU?
# Each run is a CPU recipe (batch 400, fp32, --steps set to what the 2-core VM trains in
# about 2 hours at the speed measured there) run on a GPU so that several finish in minutes;
# the data of a run depends only on --seed and the step, so the same command on the CPU trains
# on the same curves. Usage: benchmarks/train_recipe_study.sh OUT_DIR [MAX_MINUTES]
set -euo pipefail
out=${1:?usage: train_recipe_study.sh OUT_DIR [MAX_MINUTES]}
mm=${2:-8}
export PYTHONPATH=. OMP_NUM_THREADS=1
py=${PYTHON:-python3}
run() {  # name, then train.py options
  local name=$1; shift
  $py -m search.forecast.train --prior sweepcast-v3 --seed 0 --device cuda --bf16 off --length-groups 1 \
      --workers 2 --ckpt-every 1000 --max-minutes "$mm" --out "$out/$name" "$@" > "$out/$name.log" 2>&1 &
}
mkdir -p "$out"
run e128_b400_lr1e-3 --emsize 128 --layers 3 --batch 400 --lr 1e-3 --warmup 300 --steps 13000
run e128_b400_lr2e-3 --emsize 128 --layers 3 --batch 400 --lr 2e-3 --warmup 300 --steps 13000
run e96_b400_lr1e-3  --emsize 96  --layers 3 --batch 400 --lr 1e-3 --warmup 300 --steps 19000
run e64_b400_lr1.5e-3 --emsize 64 --layers 3 --batch 400 --lr 1.5e-3 --warmup 300 --steps 28000
wait
tail -n 2 "$out"/*/log.jsonl
