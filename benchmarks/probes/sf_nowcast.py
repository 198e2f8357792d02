"""Does a nowcast add anything on top of schedule-free AdamW? (issue 24)

Schedule-free AdamW (``optax.contrib.schedule_free_adamw``) trains the
interpolated point ``y = (1 - b1) z + b1 x`` and keeps its base iterate
``z`` in its state; it is evaluated at the average ``x``. Chaining
``nowcast`` after it would move ``y`` alone on a jump, and so ``x`` by
``1 / b1`` of the jump with ``z`` left behind. Here a jump of ``Δ`` moves
``z`` by the same ``Δ`` (the wrapper below adds to the state's ``z`` the
part of the updates that the nowcast added), so ``y``, ``z`` and ``x`` all
move by ``Δ``.

Side by side in one process, per seed: ``sf-adamw`` at its tuned rate and
the same with ``nowcast(load(--forecaster))`` on NiNo's step schedule
(blind jumps, none in the last 10% of the budget), steps to the task's
suite target (``results/suite/<task>.json``)::

  python benchmarks/probes/sf_nowcast.py --task mnist-mlp --seeds 3
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
from typing import Any, NamedTuple

import jax
import optax

import optax_nowcast as onc
from optax_nowcast.lab import data as data_lib
from optax_nowcast.lab import peers as peers_lib
from optax_nowcast.lab import tasks as tasks_lib
from optax_nowcast.lab.bench import runner
from optax_nowcast.lab.bench import speedup


class SfNowcastState(NamedTuple):
  sf: Any
  nowcast: Any


def sf_with_nowcast(sf: optax.GradientTransformation,
                    nowcast: optax.GradientTransformation
                    ) -> optax.GradientTransformation:
  """``sf`` then ``nowcast``, a jump's displacement also added to ``z``."""

  def init(params):
    return SfNowcastState(sf.init(params), nowcast.init(params))

  def update(updates, state, params=None, **extra):
    sf_updates, sf_state = sf.update(updates, state.sf, params)
    out, nc_state = nowcast.update(sf_updates, state.nowcast, params,
                                   **extra)
    jump = jax.tree.map(lambda a, b: a - b, out, sf_updates)
    sf_state = sf_state._replace(
        z=jax.tree.map(lambda z, d: z + d.astype(z.dtype), sf_state.z, jump))
    return out, SfNowcastState(sf_state, nc_state)

  return optax.GradientTransformationExtraArgs(init, update)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--task', default='mnist-mlp')
  parser.add_argument('--seeds', type=int, default=3)
  parser.add_argument('--forecaster', default='multihorizon')
  parser.add_argument('--plain-chain', action='store_true',
                      help='chain nowcast after sf-adamw (z not moved)')
  args = parser.parse_args(argv)
  task = tasks_lib.get(args.task)
  ds = data_lib.load(task.dataset)
  suite = json.loads(pathlib.Path(f'results/suite/{task.name}.json')
                     .read_text())
  target, better = suite['target'], suite['higher_is_better']
  rate = task.learning_rate * runner.peer_factor(task.name, 'sf-adamw')
  per_epoch = tasks_lib.steps_per_epoch(task, ds)
  settings = runner.nowcast_settings(args.forecaster, task, per_epoch)
  eval_sf = lambda s, p: optax.contrib.schedule_free_eval_params(s, p)
  print(f'{task.name}: sf-adamw at {rate:g}, target {target}; nowcast'
        f' {args.forecaster} {settings}', flush=True)
  rows = []
  for seed in range(args.seeds):
    reach = {}
    for name in ('sf-adamw', f'sf-adamw+{args.forecaster}'):
      sf = peers_lib.PEERS['sf-adamw'].make(task.optimizer, rate, task.steps)
      tx, ev = sf, eval_sf
      if name != 'sf-adamw':
        if args.forecaster == 'nino':
          fc = runner._nino(task, ds)  # pylint: disable=protected-access
        else:
          fc = onc.forecasters.load(args.forecaster)
        nc = onc.nowcast(fc, **settings)
        if args.plain_chain:
          tx = optax.chain(sf, nc)
          ev = lambda s, p: eval_sf(s[0], p)
        else:
          tx = sf_with_nowcast(sf, nc)
          ev = lambda s, p: eval_sf(s.sf, p)
      result = tasks_lib.train(task.replace(learning_rate=rate), seed,
                               dataset=ds, optimizer=tx, eval_params=ev)
      reach[name] = speedup.first_reach(result.eval_steps,
                                        result.eval_metric, target,
                                        higher_is_better=better)
      best = (max if better else min)(result.eval_metric)
      print(f'  seed {seed} {name}: steps to target {reach[name]},'
            f' best {best:.4f}', flush=True)
    rows.append(reach)
  print('| seed | ' + ' | '.join(rows[0]) + ' |')
  print('|---|' + '---|' * len(rows[0]))
  for seed, reach in enumerate(rows):
    print(f'| {seed} | ' + ' | '.join(str(v) if v is not None else 'never'
                                      for v in reach.values()) + ' |')
  return 0


if __name__ == '__main__':
  sys.exit(main())
