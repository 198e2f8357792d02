#!/usr/bin/env bash
# The benchmark suite, 3 seeds, split over two workers (one per core).
# Every finished run is saved under results/suite/runs/, so rerunning this
# script after an interruption only does what is missing (and reassembles
# the reports of finished tasks from the saved runs in seconds).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=results/suite
export OPTAX_NOWCAST_DATA="${OPTAX_NOWCAST_DATA:-../shared/data}"
M=adam,adam-sweep,linear,quadratic,introspection,wnn,wnn-guard
# The two small tasks also measure the guard on linear and quadratic jumps.
G=$M,linear-guard,quadratic-guard
(
  optax-nowcast bench --task fmnist-cnn16 --methods adam,wnn --seeds 3 --out $OUT --no-progress
  for t in fmnist-cnn16 fmnist-cnn32; do
    optax-nowcast bench --task $t --methods $M --seeds 3 --out $OUT --no-progress
  done
) > $OUT.worker-a.log 2>&1 &
(
  for t in digits-mlp mnist-mlp; do
    optax-nowcast bench --task $t --methods $G --seeds 3 --out $OUT --no-progress
  done
  for t in shakespeare-charlm mnist-cnn; do
    optax-nowcast bench --task $t --methods $M --seeds 3 --out $OUT --no-progress
  done
) > $OUT.worker-b.log 2>&1 &
wait
for t in digits-mlp mnist-mlp mnist-cnn fmnist-cnn16 fmnist-cnn32 shakespeare-charlm; do
  cat $OUT/$t.md; echo
done > $OUT/suite.md
