"""Steps to FM-16's target: Adam vs Adam + nowcast(learned forecaster).

NiNo's FM-16 task (Fashion-MNIST, 3 stride-2 3x3 convs 16/32/32, global
average pool, Dense 10; Adam 6e-3, batch 128, 10k steps; target test accuracy
89.5%), run side by side for several seeds in one process: plain Adam, and
Adam + ``nowcast`` with the shipped ``wnn`` forecaster (a record per epoch, a
jump every 5 records, none in the last 10% of the budget). Prints steps to
the target per seed, the mean speed-up, and writes JSON.

Run::

  OPTAX_NOWCAST_DATA=../shared/data python benchmarks/fm16_speedup.py \\
      --seeds 3 --out results/fm16_speedup.json
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import optax

import optax_nowcast as onc
from optax_nowcast import data as data_lib
from optax_nowcast import tasks


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--seeds', type=int, default=3)
  parser.add_argument('--steps', type=int, default=10_000)
  parser.add_argument('--target', type=float, default=0.895)
  parser.add_argument('--forecaster', default='wnn')
  parser.add_argument('--record-every', type=int, default=0,
                      help='steps between records (0: one epoch)')
  parser.add_argument('--out', default='')
  args = parser.parse_args(argv)

  task = tasks.get('fmnist-cnn16').replace(steps=args.steps)
  ds = data_lib.load(task.dataset)
  epoch = len(ds.x_train) // task.batch_size
  record_every = args.record_every or epoch
  forecaster = onc.forecasters.load(args.forecaster)

  def with_nowcast(tx):
    return optax.chain(tx, onc.nowcast(
        forecaster, record_every=record_every, jump_every=5,
        last_jump_step=int(0.9 * task.steps)))

  methods = {'adam': None, args.forecaster: with_nowcast}
  runs = {m: [] for m in methods}
  for seed in range(args.seeds):
    for method, wrap in methods.items():  # side by side, seed by seed
      start = time.perf_counter()
      result = tasks.train(task, seed, dataset=ds, wrap_tx=wrap)
      seconds = time.perf_counter() - start
      reach = next((s for s, a in zip(result.eval_steps, result.eval_metric)
                    if a >= args.target), None)
      jumps = (int(result.final_opt_state[1].jumps) if wrap else 0)
      runs[method].append(dict(seed=seed, steps_to_target=reach,
                               best=max(result.eval_metric), jumps=jumps,
                               seconds=seconds,
                               eval_steps=result.eval_steps,
                               eval_metric=result.eval_metric))
      print(f'seed {seed} {method:>14}: target at {reach} steps, best'
            f' {max(result.eval_metric):.4f}, {jumps} jumps,'
            f' {seconds:.0f} s', flush=True)

  print(f'\nFM-16, target {args.target}, {args.seeds} seeds, record every'
        f' {record_every} steps, jump every 5 records')
  print('| method | steps to target (mean ± std) | reached | best acc |'
        ' speed-up vs adam |')
  print('|---|---|---|---|---|')
  base = [r['steps_to_target'] for r in runs['adam']]
  summary = {}
  for method, rs in runs.items():
    reach = [r['steps_to_target'] for r in rs]
    ok = [s for s in reach if s is not None]
    ratios = [b / s for b, s in zip(base, reach) if b and s]
    summary[method] = dict(mean_steps=float(np.mean(ok)) if ok else None,
                           reached=len(ok),
                           speedup=float(np.mean(ratios)) if ratios else None)
    print(f'| {method} | '
          + (f'{np.mean(ok):.0f} ± {np.std(ok):.0f}' if ok else '-')
          + f' | {len(ok)}/{len(rs)} |'
          f' {np.mean([r["best"] for r in rs]):.4f} | '
          + (f'{np.mean(ratios):.2f}' if ratios else '-') + ' |')
  if args.out:
    with open(args.out, 'w') as f:
      json.dump(dict(args=vars(args), runs=runs, summary=summary), f,
                indent=1)


if __name__ == '__main__':
  main()
