"""Issue 22 probe: how fast can a nowcast-like step compile at all?

A deliberately minimal weight-nowcasting transformation, written for this
probe only (no guards, no checks, no labels, no sharding, no rollback): the
history as one array per leaf with a leading slot axis (``(S, *shape)``),
written by one ``dynamic_update_index_in_dim`` per leaf under one
``lax.cond``; the jump under one ``lax.cond``: every leaf's window joined
into one ``(S + 1, N)`` matrix, the forecaster vmapped over its columns
(``lax.map`` over chunks of 4,096 columns, as ``chunk_size='auto'``), the
forecast split back into the leaves. Its compile time next to Adam's and
the shipped ``nowcast``'s, side by side in one process, on
``benchmarks/compile_time.py``'s deep MLPs, is a floor for what a
redesign of the history layout could reach.

Run::

  python benchmarks/probes/compile_floor.py --leaves 6,80,300
"""

from __future__ import annotations

import argparse
import pathlib
import sys
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

import optax_nowcast as onc

sys.path.insert(0, str(pathlib.Path(__file__).parents[1]))
import compile_time  # noqa: E402  pylint: disable=g-import-not-at-top

CHUNK = 4096


class FloorState(NamedTuple):
  count: jax.Array
  history: Any  # params-shaped, each leaf (S, *shape)


def floor_nowcast(forecaster, record_every: int, jump_every: int,
                  horizon: float, jumps: bool = True
                  ) -> optax.GradientTransformation:
  """The minimal nowcast described in the module docstring.

  With ``jumps=False`` only its record (the history's plumbing alone).
  """
  slots = forecaster.window - 1

  def init(params):
    return FloorState(
        jnp.zeros([], jnp.int32),
        jax.tree.map(lambda p: jnp.broadcast_to(p, (slots, *p.shape)) + 0,
                     params))

  def forecast(history, params, updates):
    new = [p + u for p, u in zip(params, updates)]
    window = jnp.concatenate(
        [jnp.concatenate([h.reshape(slots, -1), n.reshape(1, -1)])
         for h, n in zip(history, new)], axis=1)
    size = window.shape[1]
    pad = -size % CHUNK
    window = jnp.pad(window, ((0, 0), (0, pad)))
    chunks = window.reshape(forecaster.window, -1, CHUNK).transpose(1, 2, 0)
    times = jnp.arange(-slots, 1, dtype=jnp.float32) * record_every
    target = jnp.float32(horizon * record_every)
    one = lambda v: forecaster.apply(forecaster.weights, v, times, target,
                                     'dense')
    out = jax.lax.map(jax.vmap(one), chunks).reshape(-1)[:size]
    moved, start = [], 0
    for n, u in zip(new, updates):
      f = out[start:start + n.size].reshape(n.shape)
      start += n.size
      moved.append(u + (f.astype(n.dtype) - n))
    return moved

  def update(updates, state, params):
    leaves, treedef = jax.tree.flatten(updates)
    ps = jax.tree.leaves(params)
    hs = jax.tree.leaves(state.history)
    count = state.count + 1
    record = count % record_every == 0
    slot = (count // record_every - 1) % slots
    hs = jax.lax.cond(
        record,
        lambda h: [jax.lax.dynamic_update_index_in_dim(
            x, (p + u).astype(x.dtype), slot, 0)
                   for x, p, u in zip(h, ps, leaves)],
        list, hs)
    jump = record & ((count // record_every) % jump_every == 0)
    if jumps:
      leaves = jax.lax.cond(jump, forecast, lambda h, p, u: list(u), hs, ps,
                            leaves)
    return (jax.tree.unflatten(treedef, leaves),
            FloorState(count, jax.tree.unflatten(treedef, hs)))

  return optax.GradientTransformation(init, update)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--leaves', default='6,80,300')
  parser.add_argument('--repeats', type=int, default=2)
  args = parser.parse_args()
  fc = onc.forecasters.load('wnn')
  print(f'jax {jax.__version__}, {jax.devices()[0].platform}; forecaster wnn;'
        f' the lesser of {args.repeats} compiles')
  print('| param leaves | adam s | + nowcast s | ratio | + floor s | floor'
        ' ratio | + floor(last) s | ratio | + floor record only s | ratio |')
  print('|---|---|---|---|---|---|---|---|---|---|')
  last = onc.forecasters.last(window=fc.window)
  for n in [int(v) for v in args.leaves.split(',')]:
    model, params, x, y = compile_time._mlp(n)  # pylint: disable=protected-access
    txs = {
        'adam': optax.adam(1e-3),
        'nowcast': optax.chain(optax.adam(1e-3), onc.nowcast(
            fc, **compile_time.BLIND)),
        'floor': optax.chain(optax.adam(1e-3), floor_nowcast(
            fc, 100, 5, fc.horizon)),
        'floor-last': optax.chain(optax.adam(1e-3), floor_nowcast(
            last, 100, 5, 1.0)),
        'floor-record': optax.chain(optax.adam(1e-3), floor_nowcast(
            last, 100, 5, 1.0, jumps=False)),
    }
    best = {k: np.inf for k in txs}
    for r in range(args.repeats):
      for k in (list(txs) if r % 2 == 0 else list(txs)[::-1]):
        best[k] = min(best[k], compile_time.compile_seconds(
            model, txs[k], params, x, y))
    a = best['adam']
    print(f"| {n} | {a:.2f} | {best['nowcast']:.2f} |"
          f" {best['nowcast'] / a:.2f} | {best['floor']:.2f} |"
          f" {best['floor'] / a:.2f} | {best['floor-last']:.2f} |"
          f" {best['floor-last'] / a:.2f} | {best['floor-record']:.2f} |"
          f" {best['floor-record'] / a:.2f} |", flush=True)


if __name__ == '__main__':
  main()
