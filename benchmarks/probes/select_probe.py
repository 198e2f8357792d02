"""What a checked jump sees: the minibatch loss at each candidate of a jump.

Trains a benchmark task with Adam + ``nowcast(load(--forecaster))`` on
NiNo's step schedule with checked jumps (``value_fn`` = the step's minibatch
loss, as ``multihorizon-select`` in the benchmark) and prints, at every
jump, the loss at ``p_n`` (no jump) and at the forecast for each multiple of
the scheduled horizon in ``--select``; ``--only`` restricts the jump to the
leaves whose path contains one of the given substrings (the others are
masked out), to find which leaves make the loss rise. With ``--lookahead
M`` the candidates are judged (and chosen) after M sign-descent steps on the
same minibatch at the task's learning rate (``onc.lookahead``), and both
losses are printed.

  python benchmarks/probes/select_probe.py --task mnist-cnn --steps 1600
  python benchmarks/probes/select_probe.py --task mnist-cnn --steps 500 --only Conv3x3
  python benchmarks/probes/select_probe.py --task mnist-cnn --steps 1600 --lookahead 20
  python benchmarks/probes/select_probe.py --task mnist-cnn --steps 500 \
      --learning-rate 3e-3 --forecaster nino --only Conv3x3
"""

import argparse

import jax
import optax

import optax_nowcast as onc
from optax_nowcast.lab import tasks
from optax_nowcast.lab.bench import runner


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--task', default='mnist-cnn')
  parser.add_argument('--steps', type=int, default=500,
                      help='steps to train (the schedule is that of the'
                      " task's whole budget)")
  parser.add_argument('--select', default='0.25,0.5,1.0')
  parser.add_argument('--lookahead', type=int, default=0,
                      help='sign-descent steps before judging (0: none)')
  parser.add_argument('--only', default='',
                      help='comma-separated path substrings of the leaves'
                      ' that jump (default: all)')
  parser.add_argument('--forecaster', default='multihorizon',
                      help="a shipped forecaster with horizons: multihorizon,"
                      " nino-mlp or nino")
  parser.add_argument('--learning-rate', type=float, default=None,
                      help="the task's Adam rate (default: its tuned one)")
  args = parser.parse_args()
  task = tasks.get(args.task)
  if args.learning_rate is not None:
    task = task.replace(learning_rate=args.learning_rate)
  schedule = runner.nino_schedule(task.steps)
  schedule['last_jump_step'] = None
  select = tuple(float(s) for s in args.select.split(','))
  keep = [k for k in args.only.split(',') if k]
  mask = None
  if keep:
    def mask(params):
      return jax.tree_util.tree_map_with_path(
          lambda path, _: any(k in jax.tree_util.keystr(path) for k in keep),
          params)
  if args.forecaster == 'nino':
    forecaster = runner._nino(task, None)  # pylint: disable=protected-access
  else:
    forecaster = onc.forecasters.load(args.forecaster)
  inner = onc.nowcast(forecaster,
                      horizon=onc.schedules.NINO_HORIZONS, select=select,
                      mask=mask, **schedule)
  losses, after = [], []

  def value_fn(batch, _):
    judged = onc.lookahead(batch, steps=args.lookahead,
                           learning_rate=task.learning_rate)

    def loud(p):
      now, value = batch(p), judged(p)
      jax.debug.callback(lambda a, b: (losses.append(float(a)),
                                       after.append(float(b))), now, value)
      return value
    return loud

  result = tasks.train(task.replace(steps=args.steps), 0,
                       wrap_tx=lambda tx: optax.chain(tx, inner),
                       value_fn=value_fn)
  state = optax.tree.get_all_with_path(result.final_opt_state,
                                       'NowcastState')[0][1]
  per_jump = 1 + len(select)
  every = schedule['record_every'] * schedule['jump_every']
  print(f"{args.task}: {args.forecaster}, lr {task.learning_rate:g}, a jump"
        f" every {every} steps"
        f" (horizons {onc.schedules.NINO_HORIZONS[:3]}... records of"
        f" {schedule['record_every']} steps); jumping leaves:"
        f" {args.only or 'all'}")
  print('| jump | step | no jump | ' + ' | '.join(f'x{s:g}' for s in select)
        + ' |')
  print('|---|---|' + '---|' * per_jump)
  for j in range(len(losses) // per_jump):
    row = losses[j * per_jump:(j + 1) * per_jump]
    if args.lookahead:
      row = [f'{a:.4f} → {b:.4f}' for a, b in
             zip(row, after[j * per_jump:(j + 1) * per_jump])]
    else:
      row = [f'{a:.4f}' for a in row]
    print(f'| {j + 1} | {(j + 1) * every} | ' + ' | '.join(row) + ' |')
  if args.lookahead:
    print(f'(each cell: the loss right away → after {args.lookahead}'
          ' sign-descent steps, which decides)')
  print('chosen (no jump, then each multiple):', state.selected.tolist())


if __name__ == '__main__':
  main()
