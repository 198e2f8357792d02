"""Compile time of the jitted train step: plain Adam vs Adam + nowcast.

For MLPs with a growing number of parameter leaves (each Dense layer is a
kernel and a bias), builds the donated, jitted training step of ``adam`` and
of ``adam + nowcast(forecaster)`` and times
``jax.jit(step, donate_argnums=(0, 1)).lower(...).compile()`` for each, side
by side in one process (alternating which goes first), and prints a table.

Columns: ``adam``; ``+ nowcast`` as shipped (the forecaster compiled once
per group of leaves, ``optax_nowcast/_group.py``); ``leaf by leaf``, the same
transformation with every leaf its own group (how it compiled before
grouping, and how it still does on auto mesh axes); ``+ nowcast(last)``, the
trivial forecaster, i.e. the cost of the history and jump plumbing alone.

Run::

  python benchmarks/compile_time.py                      # 6, 80, 300 leaves
  python benchmarks/compile_time.py --leaves 6,22,82 --forecaster linear
  python benchmarks/compile_time.py --breakdown --leaves 300  # what costs

Target (issue 13): nowcast at most 2x Adam at 300 leaves, growing with the
leaves no faster than Adam's.
"""

from __future__ import annotations

import argparse
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

import optax_nowcast as onc
from optax_nowcast import _group


class DeepMLP(nn.Module):
  """784 -> width x (layers - 1) -> 10: ``2 * layers`` leaves."""

  layers: int
  width: int = 64

  @nn.compact
  def __call__(self, x):
    x = x.reshape(x.shape[0], -1)
    for _ in range(self.layers - 1):
      x = nn.relu(nn.Dense(self.width)(x))
    return nn.Dense(10)(x)


def compile_seconds(model, tx, params, x, y) -> float:
  def loss_fn(params):
    logits = model.apply({'params': params}, x)
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

  def step(params, opt_state):
    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = tx.update(grads, opt_state, params, value=loss)
    return optax.apply_updates(params, updates), opt_state

  opt_state = jax.eval_shape(tx.init, params)
  lowered = jax.jit(step, donate_argnums=(0, 1)).lower(params, opt_state)
  start = time.perf_counter()
  lowered.compile()
  return time.perf_counter() - start


def distinct_kernels_demo(n: int = 300) -> None:
  """Why distinct kernels matter: ``n`` identical vs ``n`` distinct ones.

  Compiles ``[x * 2 + 1 for x in xs]`` for ``n`` arrays of one shape, and of
  ``n`` different shapes: XLA compiles each distinct fused computation once
  and reuses identical ones.
  """
  def seconds(shapes):
    args = [jax.ShapeDtypeStruct(s, jnp.float32) for s in shapes]
    lowered = jax.jit(lambda xs: [x * 2 + 1 for x in xs]).lower(args)
    start = time.perf_counter()
    lowered.compile()
    return time.perf_counter() - start

  same = seconds([(64, 64)] * n)
  distinct = seconds([(64, 64 + i) for i in range(n)])
  print(f'{n} elementwise kernels: one shape {same:.2f} s,'
        f' {n} shapes {distinct:.2f} s')


#: Blind jumps (no value_fn here), a record every 100 steps.
BLIND = dict(record_every=100, jump_every=5, last_jump_step=2**31 - 1)


def _mlp(leaves: int):
  """The ``DeepMLP`` of ``leaves`` leaves, its param shapes and a batch."""
  x = jnp.zeros((32, 28, 28, 1))
  y = jnp.zeros((32,), jnp.int32)
  model = DeepMLP(layers=leaves // 2)
  params = jax.eval_shape(model.init, jax.random.key(0), x)['params']
  return model, params, x, y


def breakdown(leaves: int, repeats: int) -> None:
  """Compile seconds of ``nowcast(last)`` with parts of its step removed.

  The record (``_history.write``) and the jump or rollback
  (``_nowcast._jump_or_roll_back``, the step's one ``lax.cond``) are
  replaced by pass-throughs in turn, so the table shows what each part of
  the plumbing costs to compile, side by side with Adam.
  """
  from optax_nowcast import _history  # pylint: disable=g-import-not-at-top
  from optax_nowcast import _nowcast  # pylint: disable=g-import-not-at-top
  model, params, x, y = _mlp(leaves)
  write, jump = _history.write, _nowcast._jump_or_roll_back  # pylint: disable=protected-access
  no_record = lambda slots, index, values: [list(s) for s in slots]
  zero = jnp.zeros([], jnp.int32)
  no_jump = lambda leaves, jump, rollback, branch, guarded: _nowcast._Jumped(  # pylint: disable=protected-access
      leaves.updates, list(leaves.slots[-1]) if guarded else [], zero, zero)
  variants = {
      'adam': (None, None),
      'nowcast(last)': (write, jump),
      'without the record': (no_record, jump),
      'without the jump': (write, no_jump),
      'without either': (no_record, no_jump),
  }
  took = {k: [] for k in variants}
  for _ in range(repeats):
    for name, (w, r) in variants.items():
      tx = optax.adam(1e-3) if w is None else optax.chain(
          optax.adam(1e-3),
          onc.nowcast(onc.forecasters.last(5), **BLIND))
      _history.write, _nowcast._jump_or_roll_back = w or write, r or jump  # pylint: disable=protected-access
      try:
        took[name].append(compile_seconds(model, tx, params, x, y))
      finally:
        _history.write, _nowcast._jump_or_roll_back = write, jump  # pylint: disable=protected-access
  adam = min(took['adam'])
  print(f'{leaves} leaves, jax {jax.__version__}, lesser of {repeats}:')
  print('| step | compile s | vs adam |')
  print('|---|---|---|')
  for name, t in took.items():
    print(f'| {name} | {min(t):.2f} | {min(t) / adam:.2f} |', flush=True)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--leaves', default='6,80,300',
                      help='comma-separated leaf counts (even)')
  parser.add_argument('--forecaster', default='wnn',
                      choices=('wnn', 'linear'))
  parser.add_argument('--repeats', type=int, default=1)
  parser.add_argument('--distinct-kernels', action='store_true',
                      help='only show what distinct kernels cost to compile')
  parser.add_argument('--breakdown', action='store_true',
                      help='compile nowcast(last) without its record, its'
                      ' jump, or both, next to adam')
  args = parser.parse_args()
  if args.distinct_kernels:
    distinct_kernels_demo()
    return
  if args.breakdown:
    for leaves in (int(n) for n in args.leaves.split(',')):
      breakdown(leaves, max(2, args.repeats))
    return
  forecaster = (onc.forecasters.load('wnn') if args.forecaster == 'wnn'
                else onc.forecasters.linear(window=5, horizon=5))
  print(f'jax {jax.__version__}, {jax.devices()[0].platform},'
        f' forecaster {args.forecaster}')
  print('| param leaves | params | adam s | + nowcast s | ratio |'
        ' leaf by leaf s | + nowcast(last) s |')
  print('|---|---|---|---|---|---|---|')
  for leaves in (int(n) for n in args.leaves.split(',')):
    model, params, x, y = _mlp(leaves)
    txs = {
        'adam': optax.adam(1e-3),
        'nowcast': optax.chain(optax.adam(1e-3),
                               onc.nowcast(forecaster, **BLIND)),
        'leaf': optax.chain(optax.adam(1e-3),
                            onc.nowcast(forecaster, **BLIND)),
        'last': optax.chain(optax.adam(1e-3), onc.nowcast(
            onc.forecasters.last(forecaster.window), **BLIND)),
    }
    took = {k: [] for k in txs}
    for r in range(args.repeats):
      for key in (list(txs) if r % 2 == 0 else list(reversed(list(txs)))):
        took[key].append(_compile(key, model, txs[key], params, x, y))
    a, b, c, d = (min(took[k]) for k in ('adam', 'nowcast', 'leaf', 'last'))
    n = sum(p.size for p in jax.tree.leaves(params))
    print(f'| {len(jax.tree.leaves(params))} | {n:,} | {a:.1f} | {b:.1f} |'
          f' {b / a:.1f} | {c:.1f} | {d:.1f} |', flush=True)


def _compile(key, model, tx, params, x, y) -> float:
  """Compile seconds; ``'leaf'`` makes every leaf its own group."""
  if key != 'leaf':
    return compile_seconds(model, tx, params, x, y)
  placement = _group.placement
  _group.placement = lambda leaf: ('auto', None)
  try:
    return compile_seconds(model, tx, params, x, y)
  finally:
    _group.placement = placement


if __name__ == '__main__':
  main()
