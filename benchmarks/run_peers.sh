#!/usr/bin/env bash
# Issue 24: the peers a user would pick instead, side by side with nowcast.
# For each task (cheapest first): tune each peer's rate (x1/2, x1, x2 Adam's,
# one seed, extended past an edge; its seed-0 run is reused by the bench),
# bench the peers and the best forecaster on a schedule for 3 seeds, and
# rewrite the task's report with every method whose runs are all saved.
# Then the learning-rate robustness of the 3 cheapest tasks. Every run is
# saved (results/suite/runs), so rerunning this script resumes.
#   nohup bash benchmarks/run_peers.sh [TASK...] > results/peers.log 2>&1 &
set -euo pipefail
cd "$(dirname "$0")/.."
export OPTAX_NOWCAST_DATA="${OPTAX_NOWCAST_DATA:-../shared/data}"
ONC=${ONC:-.venv/bin/optax-nowcast}
CHEAP=(digits-mlp mnist-mlp mnist-cnn)
if [ $# -gt 0 ]; then TASKS=("$@"); else
  TASKS=("${CHEAP[@]}" shakespeare-charlm fmnist-cnn16 fmnist-cnn32); fi
# Every method any report shows (the report keeps those with all runs saved).
ALL=adam,adam-sweep,adam-cosine,adam-wsd,sf-adamw,lookahead,snoo,multihorizon,multihorizon-guard,multihorizon-select,multihorizon+cosine,multihorizon+wsd,wnn,wnn-epoch,nino,nino-select,nino-mlp,nino-mlp-select

for t in "${TASKS[@]}"; do
  peers=(adam-cosine adam-wsd sf-adamw)
  if [[ " ${CHEAP[*]} " == *" $t "* ]]; then peers+=(lookahead snoo); fi
  for p in "${peers[@]}"; do
    echo "== $(date -u +%FT%TZ) tune $t $p"
    $ONC tune --task "$t" --method "$p" --out results/lr_sweep \
      --bench-cache results/suite/runs --no-progress
  done
  methods=$(IFS=,; echo "${peers[*]}"),multihorizon+cosine,multihorizon+wsd
  echo "== $(date -u +%FT%TZ) bench $t $methods"
  $ONC bench --task "$t" --methods "$methods" --seeds 3 --out results/suite \
    --no-progress > /dev/null
  $ONC bench --task "$t" --methods "$ALL" --seeds 3 --out results/suite \
    --saved-only --no-progress > /dev/null
done
for t in "${CHEAP[@]}"; do
  echo "== $(date -u +%FT%TZ) robustness $t"
  $ONC robustness --task "$t" --methods adam,multihorizon,sf-adamw \
    --suite-dir results/suite --out results/robustness --no-progress
done
echo "== $(date -u +%FT%TZ) done"
