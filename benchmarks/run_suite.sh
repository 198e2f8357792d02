#!/usr/bin/env bash
# The benchmark suite, 3 seeds, split over two workers (one per core).
# Every finished run is saved under results/suite/runs/, so rerunning this
# script after an interruption only does what is missing. Each task is run
# method by method (adam and wnn first, then one method more per call), so a
# stopped suite leaves whole methods behind, which
#   optax-nowcast bench --task T --methods ... --out results/suite --saved-only
# reports without training.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=results/suite
export OPTAX_NOWCAST_DATA="${OPTAX_NOWCAST_DATA:-../shared/data}"

bench_task() {  # bench_task TASK EXTRA_METHOD...
  local task=$1 methods=adam,wnn
  shift
  optax-nowcast bench --task "$task" --methods $methods --seeds 3 --out $OUT --no-progress
  for m in "$@"; do
    methods=$methods,$m
    optax-nowcast bench --task "$task" --methods $methods --seeds 3 --out $OUT --no-progress
  done
}

M=(introspection wnn-guard linear adam-sweep quadratic)
(
  bench_task fmnist-cnn16 "${M[@]}"
  bench_task fmnist-cnn32 "${M[@]}"
) > $OUT.worker-a.log 2>&1 &
(
  # The two small tasks also measure the guard on linear and quadratic jumps.
  bench_task digits-mlp "${M[@]}" linear-guard quadratic-guard
  bench_task mnist-mlp "${M[@]}" linear-guard quadratic-guard
  bench_task shakespeare-charlm "${M[@]}"
  bench_task mnist-cnn "${M[@]}"
) > $OUT.worker-b.log 2>&1 &
wait
for t in digits-mlp mnist-mlp mnist-cnn fmnist-cnn16 fmnist-cnn32 shakespeare-charlm; do
  cat $OUT/$t.md; echo
done > $OUT/suite.md
