#!/usr/bin/env bash
# One benchmark task, 3 seeds, bench's default methods, its runs shared by N worker
# processes (default: one per core, each pinned to its core), then reported
# side by side from the saved runs:
#   bash benchmarks/run_task_split.sh fmnist-cnn32 [N]
# METHODS=adam,wnn bash benchmarks/run_task_split.sh ...  runs a subset.
# Runs are dealt method by method, in that list's order (adam and
# multihorizon-select first), so a stopped job
# leaves whole methods behind; rerunning it only trains what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
TASK=$1
N=${2:-$(nproc)}
OUT=results/suite
# Unset METHODS: bench's own default (optax-nowcast bench --help).
METHODS_ARG=${METHODS:+--methods $METHODS}
export OPTAX_NOWCAST_DATA="${OPTAX_NOWCAST_DATA:-../shared/data}"
for ((k = 0; k < N; k++)); do
  taskset -c $((k % $(nproc))) optax-nowcast bench --task "$TASK" \
    $METHODS_ARG --seeds 3 --out $OUT --no-progress --worker $k/$N \
    > $OUT.$TASK.worker$k.log 2>&1 &
done
wait
optax-nowcast bench --task "$TASK" $METHODS_ARG --seeds 3 --out $OUT \
  --no-progress --saved-only
