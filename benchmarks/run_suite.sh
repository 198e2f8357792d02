#!/usr/bin/env bash
# The whole benchmark suite on this machine, resumable at every step:
#   1. tune each task's learning rate (optax-nowcast tune, two processes);
#   2. stop unless tasks.py registers every sweep's best rate (the tune
#      command prints what to register; a test checks it);
#   3. bench's default methods x 3 seeds, each task's runs shared by one worker per
#      core (benchmarks/run_task_split.sh), then the README's tables.
# Every finished run is saved (results/lr_sweep/runs, results/suite/runs),
# so rerunning this script after an interruption only does what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
export OPTAX_NOWCAST_DATA="${OPTAX_NOWCAST_DATA:-../shared/data}"
TASKS=(digits-mlp mnist-mlp mnist-cnn fmnist-cnn16 fmnist-cnn32 shakespeare-charlm)

optax-nowcast tune --task digits-mlp,mnist-mlp,shakespeare-charlm,mnist-cnn \
  --out results/lr_sweep --no-progress > results/lr_sweep.a.log 2>&1 &
optax-nowcast tune --task fmnist-cnn16,fmnist-cnn32 \
  --out results/lr_sweep --no-progress > results/lr_sweep.b.log 2>&1 &
wait
python -m pytest -q tests/lab/test_tune.py -k registers \
  || { echo 'register the tuned learning rates in tasks.py first'; exit 1; }

for t in "${TASKS[@]}"; do
  bash benchmarks/run_task_split.sh "$t"
done
python benchmarks/suite_summary.py $(printf "results/suite/%s.json " "${TASKS[@]}") \
  --plot results/suite/summary.png --readme docs/benchmark.md
