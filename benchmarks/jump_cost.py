"""What a jump costs, averaged over its period, on a benchmark task's model.

Issue 11 asks that the multi-horizon forecaster cost a jump less than 5% of
a training step's time averaged over the jump period on the FM-16 task. This
script times, side by side in one process (interleaved, medians), the
task's jitted, donated training step with plain Adam, and the *jump* step of
Adam + nowcast with each forecaster (a checked jump with ``value_fn`` too,
which evaluates the loss at every candidate), on random inputs of the task's
shapes (only the time matters), and prints

.. math::
  \\text{overhead} = \\frac{t_\\text{jump} - t_\\text{adam}}
                          {P \\, t_\\text{adam}},

the jump's extra time spread over the ``P`` steps between jumps (NiNo's
schedule for a budget ``B``: a record every ``B / 50`` steps, a jump every 5
records, so ``P = B / 10``).

Run::

  python benchmarks/jump_cost.py                    # FM-16, 10k steps
  python benchmarks/jump_cost.py --task mnist-cnn --period 500
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import optax_nowcast as onc
from optax_nowcast.lab import tasks


def _step_fn(model, tx, x, y):
  def loss(p):
    return optax.softmax_cross_entropy_with_integer_labels(
        model.apply({'params': p}, x), y).mean()

  def step(p, s):
    u, s = tx.update(jax.grad(loss)(p), s, p, value_fn=loss)
    return optax.apply_updates(p, u), s

  return jax.jit(step, donate_argnums=(0, 1))


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--task', default='fmnist-cnn16')
  parser.add_argument('--period', type=int, default=None,
                      help='steps between jumps (default: budget / 10)')
  parser.add_argument('--repeats', type=int, default=30)
  args = parser.parse_args()
  task = tasks.get(args.task)
  if task.metric != 'test_accuracy':
    raise ValueError('this script times image-classification tasks')
  period = args.period or task.steps // 10
  model = task.model()
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(size=(task.batch_size, 28, 28, 1)), jnp.float32)
  y = jnp.asarray(rng.integers(0, 10, task.batch_size), jnp.int32)
  params = model.init(jax.random.key(0), x)['params']
  n = sum(p.size for p in jax.tree.leaves(params))
  # Every call of a nowcast step below is a jump: one record per step and
  # a jump as soon as the window is full, with the history kept full.
  forecasters = {
      'linear': onc.forecasters.linear(5, 5),
      'wnn': onc.forecasters.load('wnn'),
      'multihorizon': onc.forecasters.multihorizon(),
  }
  inner = lambda: optax.adam(task.learning_rate)
  runs = {'adam': (inner(), None)}
  for name, f in forecasters.items():
    for checked in (False, True):
      tx = optax.chain(inner(), onc.nowcast(
          f, record_every=1, jump_every=5, horizon=10,
          **({} if checked else {'last_jump_step': 2**31 - 1})))
      runs[name + (' + value_fn' if checked else '')] = (tx, checked)
  compiled, states = {}, {}
  for name, (tx, _) in runs.items():
    compiled[name] = _step_fn(model, tx, x, y)
    p = jax.tree.map(jnp.copy, params)
    s = tx.init(p)
    for _ in range(5):  # fill the window: the 5th step jumps
      p, s = compiled[name](p, s)
    states[name] = (p, s)
  times = {name: [] for name in runs}
  for _ in range(args.repeats):
    for name in runs:
      p, s = states[name]
      if name != 'adam':  # go back to 4 records: the next step jumps
        s = (s[0], s[1]._replace(records=jnp.int32(4)))
      jax.block_until_ready((p, s))
      start = time.perf_counter()
      p, s = compiled[name](p, s)
      jax.block_until_ready((p, s))
      times[name].append(time.perf_counter() - start)
      states[name] = (p, s)
  for name in list(runs)[1:]:  # every timed nowcast step was a jump
    jumps = int(optax.tree.get(states[name][1], 'jumps'))
    if jumps != 1 + args.repeats:
      raise RuntimeError(f'{name}: {jumps} jumps, expected {1 + args.repeats}')
  base = float(np.median(times['adam']))
  print(f'{args.task}: {n:,} params, batch {task.batch_size}, jump period'
        f' {period} steps; jax {jax.__version__}, {jax.devices()[0].platform}')
  print('| step | median ms | jump overhead over the period |')
  print('|---|---|---|')
  print(f'| adam | {1e3 * base:.2f} | |')
  for name in list(runs)[1:]:
    t = float(np.median(times[name]))
    print(f'| jump, {name} | {1e3 * t:.2f} |'
          f' {100 * (t - base) / (period * base):.2f}% |')


if __name__ == '__main__':
  main()
