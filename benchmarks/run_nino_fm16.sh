#!/bin/bash
# NiNo's FM-16 protocol, seed by seed (adam then nino, so that each finished
# seed pairs up), then the other forecasters; resumable (finished runs are
# skipped). Log: results/nino_fm16/run.log.
cd "$(dirname "$0")/.."
for methods in adam,nino nino-mlp wnn multihorizon; do
  for seed in 1000 2000 3000 4000 5000; do
    .venv/bin/python benchmarks/nino_fm16.py --methods "$methods" --seeds "$seed"
  done
done
