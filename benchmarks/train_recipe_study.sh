#!/usr/bin/env bash
# Issue 3: which training recipe gives the best forecaster for two hours of a 2-core CPU?
# Each run is a CPU recipe (batch 400, fp32, --steps set to what the 2-core VM trains in
# about 2 hours at the speed measured there) run on a GPU so that several finish in minutes;
# the data of a run depends only on --seed and the step, so the same command on the CPU trains
# on the same curves. Usage: benchmarks/train_recipe_study.sh OUT_DIR [MAX_MINUTES]
# With CURVES=DIR (a folder like ../shared/data/curves) each network is then also scored on those
# curves, because the held-out prior NLL did not rank the 2-hour networks on real curves (BENCHMARKS,
# ninth and tenth sessions): cells beating the stored 12 x 200 MCMC cells at 30 configs per task,
# and loglik / 90% coverage at 200 configs with its spread over resampled tasks
# (benchmarks/coverage_spread.py), all runs side by side on the CPU cores. SCORE_ONLY=1 scores the
# networks already in OUT_DIR (OUT_DIR/NAME/pfn.pt) without training.
# STUDY picks the set of recipes: "width" (default; the eighth session's four widths at 8 query steps
# per curve), "queries" (the twelfth session's: 16 or 32 query steps per curve, --steps again set to
# about 2 hours of the 2-core VM at the speeds of benchmarks/train_speed.py --queries 8,16,32) or
# "queries-lr" (its second call: higher learning rates).
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
if [ -z "${SCORE_ONLY:-}" ]; then
case "${STUDY:-width}" in
width)
run e128_b400_lr1e-3 --emsize 128 --layers 3 --batch 400 --lr 1e-3 --warmup 300 --steps 13000
run e128_b400_lr2e-3 --emsize 128 --layers 3 --batch 400 --lr 2e-3 --warmup 300 --steps 13000
run e96_b400_lr1e-3  --emsize 96  --layers 3 --batch 400 --lr 1e-3 --warmup 300 --steps 19000
run e64_b400_lr1.5e-3 --emsize 64 --layers 3 --batch 400 --lr 1.5e-3 --warmup 300 --steps 28000
;;
queries)  # s per step, 2 threads, batch 400: e64 0.149 / 0.191 / 0.295 (8 / 16 / 32 queries), e48 0.132 / 0.168
run e64_q16_lr1.5e-3 --emsize 64 --layers 3 --batch 400 --lr 1.5e-3 --warmup 300 --queries 16 --steps 22000
run e64_q16_lr2.5e-3 --emsize 64 --layers 3 --batch 400 --lr 2.5e-3 --warmup 300 --queries 16 --steps 22000
run e64_q32_lr1.5e-3 --emsize 64 --layers 3 --batch 400 --lr 1.5e-3 --warmup 300 --queries 32 --steps 14000
run e48_q16_lr2e-3   --emsize 48 --layers 3 --batch 400 --lr 2e-3   --warmup 300 --queries 16 --steps 25000
;;
queries-lr)  # the twelfth session's second call (3 workers each there, 5.5 minutes: two stopped early)
run e64_q16_lr3.5e-3 --emsize 64 --layers 3 --batch 400 --lr 3.5e-3 --warmup 300 --queries 16 --steps 22000
run e64_q32_lr3e-3   --emsize 64 --layers 3 --batch 400 --lr 3e-3   --warmup 300 --queries 32 --steps 14000
run e48_q16_lr3.5e-3 --emsize 48 --layers 3 --batch 400 --lr 3.5e-3 --warmup 300 --queries 16 --steps 25000
;;
*) echo "unknown STUDY=$STUDY (width, queries or queries-lr)" >&2; exit 2 ;;
esac
wait
tail -n 2 "$out"/*/log.jsonl
fi
[ -n "${CURVES:-}" ] || exit 0
base=benchmarks/results/forecast/parametric_lastvalue_n30.json
for d in "$out"/*/; do
  w="$d/pfn.pt"; [ -f "$w" ] || continue
  $py benchmarks/forecast.py --curves "$CURVES" --max-configs 30 --models pfn --pfn-weights "$w" \
      --cells-from "$base" --json "$d/n30.json" > "$d/n30.log" 2>&1 &
  $py benchmarks/forecast.py --curves "$CURVES" --max-configs 200 --models pfn --pfn-weights "$w" \
      --json "$d/n200.json" > "$d/n200.log" 2>&1 &
done
wait
for d in "$out"/*/; do
  [ -f "$d/n200.json" ] || continue
  echo "== $d"
  $py -c "import json,sys; s=json.load(open(sys.argv[1]))['summary']; print('cells beating the MCMC, 30 configs:', round(s['pfn_beats_parametric_loglik_frac'], 3))" "$d/n30.json"
  $py benchmarks/coverage_spread.py "$d/n200.json"
done
