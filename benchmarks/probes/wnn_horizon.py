"""Which WNN training horizon speeds training most?

Trains one WNN per horizon (records between the newest window entry and the
target) on the recorded trajectories, then, side by side for several seeds,
trains the held-out zoo task ``fmnist-mlp`` (never a meta-training input) for
10 epochs with plain Adam and with Adam + nowcast(WNN of each horizon; two
records per epoch, a jump every 5 records, none in the last 10%), and
reports steps to a target (99% of Adam's mean best) and the speed-up.

Run::

  OPTAX_NOWCAST_DATA=../shared/data python benchmarks/probes/wnn_horizon.py \\
      --trajectories trajectories/ --horizons 1,2,5,10 --seeds 3
"""

from __future__ import annotations

import argparse
import pathlib
import tempfile

import numpy as np
import optax

import optax_nowcast as onc
from optax_nowcast.lab import data as data_lib
from optax_nowcast.lab import tasks
from optax_nowcast.lab.bench import speedup
from optax_nowcast.lab.meta import pipeline
from optax_nowcast.lab.meta import train as train_lib
from optax_nowcast.lab.meta import zoo


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--trajectories', required=True)
  parser.add_argument('--horizons', default='1,2,5,10')
  parser.add_argument('--seeds', type=int, default=3)
  parser.add_argument('--task', default='fmnist-mlp')
  parser.add_argument('--train-steps', type=int, default=20000)
  parser.add_argument('--steps', type=int, default=4680,
                      help='training budget of the task (10 epochs)')
  parser.add_argument('--records-per-epoch', type=int, default=2)
  args = parser.parse_args(argv)
  horizons = [int(h) for h in args.horizons.split(',')]

  work = pathlib.Path(tempfile.mkdtemp(prefix='wnn_horizon_'))
  forecasters = {}
  for h in horizons:
    manifest = pipeline.train_forecaster(
        'wnn', args.trajectories, work / f'h{h}', horizon=h,
        holdout=zoo.HOLDOUT['full'], progress=False,
        config=train_lib.TrainConfig(steps=args.train_steps,
                                     decay_every=args.train_steps // 4),
        command='benchmarks/probes/wnn_horizon.py')
    l1 = manifest['validation_l1']
    print(f'horizon {h}: validation L1 wnn {l1["wnn"]["all"]:.3e}, last'
          f' {l1["last"]["all"]:.3e}, linear {l1["linear"]["all"]:.3e}',
          flush=True)
    forecasters[h] = onc.forecasters.load_from(work / f'h{h}')

  task = tasks.get(args.task)
  ds = data_lib.load(task.dataset)
  epoch = len(ds.x_train) // task.batch_size
  task = task.replace(steps=args.steps, eval_every=max(1, epoch // 6))
  record_every = epoch // args.records_per_epoch

  def wrap(h):
    return lambda tx: optax.chain(tx, onc.nowcast(
        forecasters[h], record_every=record_every, jump_every=5,
        last_jump_step=int(0.9 * task.steps)))

  methods = {'adam': None} | {f'wnn-h{h}': wrap(h) for h in horizons}
  curves = {m: [] for m in methods}
  for seed in range(args.seeds):
    for m, w in methods.items():
      r = tasks.train(task, seed, dataset=ds, wrap_tx=w)
      curves[m].append((r.eval_steps, r.eval_metric))
      print(f'seed {seed} {m}: best {max(r.eval_metric):.4f},'
            f' {r.eval_jumps[-1]} jumps', flush=True)

  target = 0.99 * np.mean([max(c[1]) for c in curves['adam']])
  reach = {m: [speedup.first_reach(s, a, target) for s, a in cs]
           for m, cs in curves.items()}
  print(f'\n{args.task}: target {target:.4f} (99% of adam\'s mean best),'
        f' {args.seeds} seeds, {task.steps} steps, a record every'
        f' {record_every} steps, a jump every 5 records')
  print('| method | steps to target (mean ± std) | reached | best acc |'
        ' speed-up vs adam (steps) |')
  print('|---|---|---|---|---|')
  for m, cs in curves.items():
    ok = [x for x in reach[m] if x is not None]
    sp = speedup.mean_std(speedup.speedups(reach['adam'], reach[m]))
    print(f'| {m} | '
          + (f'{np.mean(ok):.0f} ± {np.std(ok):.0f}' if ok else '-')
          + f' | {len(ok)}/{len(cs)} | {np.mean([max(c[1]) for c in cs]):.4f}'
          + ' | ' + (f'{sp[0]:.2f} ± {sp[1]:.2f}' if sp else '-') + ' |')


if __name__ == '__main__':
  main()
