#!/usr/bin/env bash
# Reproduces results/step_overhead_large.md (issue 13: nowcast's cost per step
# on a ResNet-style CNN and a GPT-style transformer with 214 leaves each, and
# what chunk_size costs on every step) on this machine.
set -euo pipefail
cd "$(dirname "$0")/.."
out=results/step_overhead_large.md
{
  echo "# nowcast cost per step on large models vs plain Adam"
  echo
  echo "Command: bash benchmarks/run_step_overhead_large.sh ($(date -u +%Y-%m-%d), $(nproc) CPU cores, $(python -c 'import platform; print(platform.processor() or platform.machine())'))"
  python benchmarks/step_overhead.py --models gpt,resnet --steps 100 --warmup 5 --batch 4
  python benchmarks/step_overhead.py --models mlp --steps 600 | tail -n +2
  python benchmarks/step_overhead.py --models mlp --steps 600 --chunk-size 65536 | tail -n +2
} > "$out" 2>&1
cat "$out"
