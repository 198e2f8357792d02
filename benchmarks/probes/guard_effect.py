"""What the jump guard does, read from benchmark reports (no training).

For every ``<task>.json`` written by ``optax-nowcast bench`` that has both a
method and its ``-guard`` variant (``wnn`` / ``wnn-guard``, ``multihorizon``
/ ``multihorizon-guard``, ...), prints per method:

- jumps and rollbacks (jumps the guard undid), summed over seeds;
- harmful jumps: jumps after which the metric, evaluated once the guard's
  window (``runner.guard_steps``: one record interval of the benchmark's
  step schedule) has passed, is worse than at
  the last evaluation before the jump; and the mean change of the metric over
  that span (positive = better). Adam's own progress over the span counts
  too: this is the jump's effect as the evaluation curve sees it, and what
  the guard is there to prevent;
- steps to the target (mean over seeds that reached it) and the speed-up vs
  ``adam``, from the report's summary.

The guard's cost per step is measured side by side by
``benchmarks/step_overhead.py --guard-steps`` (``results/guard_cost.md``):
the training seconds of runs made at different times on a shared machine do
not compare.

Run::

  python benchmarks/probes/guard_effect.py results/suite/*.json
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from optax_nowcast.lab.bench import runner


def jump_changes(run: dict, higher_is_better: bool, window: int
                 ) -> list[float]:
  """Per jump: metric change (positive = better) from the last evaluation
  before it to the first one at least ``window`` steps after it."""
  changes = []
  steps, metric, jumps = run['eval_steps'], run['eval_metric'], run['eval_jumps']
  for i in range(1, len(metric)):
    if jumps[i] > jumps[i - 1]:
      after = [j for j in range(i, len(steps)) if steps[j] >= steps[i] + window]
      if after:
        delta = metric[after[0]] - metric[i - 1]
        changes.append(delta if higher_is_better else -delta)
  return changes


def describe(report: dict, method: str) -> dict:
  runs = [r for r in report['runs'] if r['method'] == method]
  changes = [c for r in runs
             for c in jump_changes(r, report['higher_is_better'],
                                   runner.guard_steps(report['budget_steps']))]
  summary = report['summary'][method]
  return dict(
      jumps=sum(r['eval_jumps'][-1] for r in runs),
      rollbacks=sum(r['rollbacks'] for r in runs),
      harmful=sum(c < 0 for c in changes),
      intervals=len(changes),
      mean_change=float(np.mean(changes)) if changes else float('nan'),
      steps=summary['steps_to_target'],
      reached=summary['reached'],
      speedup=summary.get('speedup_steps_vs_adam'),
  )


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('reports', nargs='+', help='bench JSON reports')
  args = parser.parse_args(argv)
  print('| task | method | jumps | rollbacks | harmful jumps |'
        ' mean change over a jump | steps to target | reached |'
        ' speed-up vs adam |')
  print('|---|---|---|---|---|---|---|---|---|')
  for path in args.reports:
    with open(path) as f:
      report = json.load(f)
    for guarded in (m for m in report['methods'] if m.endswith('-guard')):
      base = guarded[:-len('-guard')]
      if base not in report['methods']:
        continue
      rows = {m: describe(report, m) for m in (base, guarded)}
      for m, d in rows.items():
        steps = '-' if d['steps'] is None else f"{d['steps'][0]:.0f}"
        speed = '-' if d['speedup'] is None else (
            f"{d['speedup'][0]:.2f} ± {d['speedup'][1]:.2f}")
        print(f"| {report['task']} | {m} | {d['jumps']} | {d['rollbacks']} |"
              f" {d['harmful']}/{d['intervals']} | {d['mean_change']:+.4f} |"
              f" {steps} | {d['reached']}/{report['seeds']} | {speed} |")


if __name__ == '__main__':
  main()
