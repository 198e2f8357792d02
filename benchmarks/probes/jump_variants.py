"""Exploratory: which part of a blind multihorizon jump pays, on one task.

Trains a suite task with the task's tuned Adam plus blind ``multihorizon``
jumps (NiNo's step schedule, as ``optax-nowcast bench``'s ``multihorizon``)
in a few variants, and prints steps to the suite's target next to the saved
``adam`` and ``multihorizon`` runs of ``results/suite/runs/<task>/``:

- ``no-conv``: conv kernels are never jumped (``mask``), the leaves whose
  jumps raise the loss at once (``results/probes/select_probe.md``);
- ``half``: NiNo's horizons halved;
- ``late``: no jump in the first 30% of the budget.

Run::

  python benchmarks/probes/jump_variants.py --task mnist-cnn --seeds 0,1

Exploratory: a few seeds on one task, to point at the next lever, not a
benchmark result (``optax-nowcast bench`` makes those).
"""

from __future__ import annotations

import argparse
import json
import pathlib

import jax
import optax

import optax_nowcast as onc
from optax_nowcast.lab import data as data_lib
from optax_nowcast.lab import tasks as tasks_lib
from optax_nowcast.lab.bench import runner
from optax_nowcast.lab.bench import speedup

VARIANTS = ('no-conv', 'half', 'late')


def wrap(variant: str, task: tasks_lib.Task):
  schedule = runner.nino_schedule(task.steps)
  horizon = onc.schedules.NINO_HORIZONS
  extra = {}
  if variant == 'no-conv':
    extra['mask'] = lambda params: jax.tree.map_with_path(
        lambda path, p: onc.default_label(p, path) != 'conv', params)
  elif variant == 'half':
    horizon = tuple(max(1, h / 2) for h in horizon)
  elif variant == 'late':
    schedule['first_jump_step'] = int(0.3 * task.steps)
  transform = onc.nowcast(onc.forecasters.load('multihorizon'),
                          horizon=horizon, **schedule, **extra)
  return lambda tx: optax.chain(tx, transform)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--task', default='mnist-cnn')
  parser.add_argument('--seeds', default='0,1')
  parser.add_argument('--variants', default=','.join(VARIANTS))
  parser.add_argument('--suite', default='results/suite')
  args = parser.parse_args()
  task = tasks_lib.get(args.task)
  report = json.loads(pathlib.Path(args.suite, f'{args.task}.json').read_text())
  target, higher = report['target'], report['higher_is_better']
  ds = data_lib.load(task.dataset)
  print(f'{args.task}: target {target} ({report.get("metric")}), budget'
        f' {task.steps}, lr {task.learning_rate}')
  print('| seed | adam | multihorizon | ' + ' | '.join(
      args.variants.split(',')) + ' |')
  print('|---' * (3 + len(args.variants.split(','))) + '|')
  for seed in (int(s) for s in args.seeds.split(',')):
    row = []
    for method in ('adam', 'multihorizon'):
      saved = json.loads(pathlib.Path(
          args.suite, 'runs', args.task, f'{method}-s{seed}.json').read_text())
      r = saved['run']
      row.append(speedup.first_reach(r['eval_steps'], r['eval_metric'],
                                     target, higher_is_better=higher))
    for variant in args.variants.split(','):
      result = tasks_lib.train(task, seed, dataset=ds,
                               wrap_tx=wrap(variant, task))
      row.append(speedup.first_reach(result.eval_steps, result.eval_metric,
                                     target, higher_is_better=higher))
    print(f'| {seed} | ' + ' | '.join('never' if s is None else str(s)
                                      for s in row) + ' |', flush=True)


if __name__ == '__main__':
  main()
