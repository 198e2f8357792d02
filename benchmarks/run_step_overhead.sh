#!/usr/bin/env bash
# Reproduces results/step_overhead.md (issue 2's cost table) on this machine.
set -euo pipefail
cd "$(dirname "$0")/.."
out=results/step_overhead.md
{
  echo "# nowcast cost per step vs plain Adam"
  echo
  echo "Command: bash benchmarks/run_step_overhead.sh ($(date -u +%Y-%m-%d), $(nproc) CPU cores, $(python -c 'import platform; print(platform.processor() or platform.machine())'))"
  python benchmarks/step_overhead.py --models mlp --steps 1200
  python benchmarks/step_overhead.py --models cnn --steps 400 | tail -n +2
  python benchmarks/step_overhead.py --models mlp --steps 1200 --history-dtype bfloat16 | tail -n +2
  python benchmarks/step_overhead.py --models cnn --steps 400 --history-dtype bfloat16 | tail -n +2
  python benchmarks/step_overhead.py --models mlp --steps 1200 --donate none | tail -n +2
  python benchmarks/step_overhead.py --models mlp --steps 600 --batch 512 | tail -n +2
} > "$out" 2>&1
cat "$out"
