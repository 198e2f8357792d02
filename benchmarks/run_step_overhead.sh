#!/usr/bin/env bash
# Reproduces results/step_overhead.md (issue 2's cost table) on this machine.
set -euo pipefail
cd "$(dirname "$0")/.."
out=results/step_overhead.md
{
  echo "# nowcast cost per step vs plain Adam"
  echo
  echo "Command: bash benchmarks/run_step_overhead.sh ($(date -u +%Y-%m-%d), $(nproc) CPU cores, $(python -c 'import platform; print(platform.processor() or platform.machine())'))"
  # Issue 22's check: every forecaster kind's plain step next to a bare
  # lax.cond, on the 1M MLP (784-1024-256-10, batch 256), one process.
  python benchmarks/step_overhead.py --models mlp256 --batch 256 --steps 500 --forecaster linear,last,wnn,multihorizon,nino-mlp --checked
  python benchmarks/step_overhead.py --models mlp --steps 1200 | tail -n +2
  python benchmarks/step_overhead.py --models cnn --steps 400 | tail -n +2
  python benchmarks/step_overhead.py --models mlp --steps 1200 --history-dtype bfloat16 | tail -n +2
  python benchmarks/step_overhead.py --models cnn --steps 400 --history-dtype bfloat16 | tail -n +2
  python benchmarks/step_overhead.py --models mlp --steps 1200 --donate none | tail -n +2
  python benchmarks/step_overhead.py --models mlp --steps 600 --batch 512 | tail -n +2
} > "$out" 2>&1
cat "$out"
