"""Why a plain (non-jump) step can cost more on CPU: XLA's temp arena.

XLA allocates one temporary buffer per execution of a compiled step, sized
for the largest branch, the jump's included. On Linux with glibc, a block
above 32 MB is mapped fresh from the OS on every execution and unmapped
after it, so every temporary page a step touches is a page fault (the
kernel also zeroes it), even on steps that never run the jump. This
script measures it side by side in one process: for an MLP (784-1024-256-10,
1.1M params, batch 128), the compiled step's temp arena, the time of a
plain step and the minor page faults per plain step, for Adam and Adam +
nowcast with several forecasters and chunk sizes.

Run::

  python benchmarks/probes/cpu_temp_arena.py
  MALLOC_TOP_PAD_=268435456 python benchmarks/probes/cpu_temp_arena.py  # glibc tuned
"""

from __future__ import annotations

import argparse
import os
import resource
import time

import jax
import jax.numpy as jnp
import optax

import optax_nowcast as onc
import sys
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1]))
from step_overhead import MLP  # benchmarks/step_overhead.py; 784-1024-hidden-10  pylint: disable=g-import-not-at-top,wrong-import-position


def measure(tx, model, params, x, y, steps):
  """(temp MB, ms per plain step, minor faults per plain step)."""

  def step(p, s):
    grads = jax.grad(lambda p: optax.softmax_cross_entropy_with_integer_labels(
        model.apply({'params': p}, x), y).mean())(p)
    u, s = tx.update(grads, s, p)
    return optax.apply_updates(p, u), s

  jitted = jax.jit(step, donate_argnums=(0, 1))
  compiled = jitted.lower(params, jax.eval_shape(tx.init, params)).compile()
  temp = compiled.memory_analysis().temp_size_in_bytes / 2**20
  p = jax.tree.map(jnp.copy, params)
  s = tx.init(p)
  for _ in range(5):
    p, s = jitted(p, s)
  jax.block_until_ready(p)
  before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
  start = time.perf_counter()
  for _ in range(steps):
    p, s = jitted(p, s)
  jax.block_until_ready(p)
  seconds = time.perf_counter() - start
  faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
  return temp, 1e3 * seconds / steps, faults / steps


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--steps', type=int, default=200)
  args = parser.parse_args()
  x = jnp.ones((128, 28, 28, 1))
  y = jnp.zeros((128,), jnp.int32)
  model = MLP(hidden=256)
  params = model.init(jax.random.key(0), x)['params']
  # Records far apart: every measured step is a plain one.
  never = dict(record_every=10**6, jump_every=5, last_jump_step=2**31 - 1)
  runs = {
      'adam': optax.adam(1e-3),
      'nowcast(linear)': optax.chain(optax.adam(1e-3), onc.nowcast(
          onc.forecasters.linear(5, 5), **never)),
      'nowcast(wnn)': optax.chain(optax.adam(1e-3), onc.nowcast(
          onc.forecasters.load('wnn'), **never)),
      'nowcast(wnn), chunk_size=8192': optax.chain(optax.adam(1e-3),
                                                   onc.nowcast(
          onc.forecasters.load('wnn'), chunk_size=8192, **never)),
  }
  env = {k: v for k, v in os.environ.items() if k.startswith('MALLOC_')}
  print(f'jax {jax.__version__}; glibc malloc settings: {env or "defaults"}')
  print('| step | temp arena MB | plain step ms | ratio | minor faults'
        ' per step |')
  print('|---|---|---|---|---|')
  base = None
  for name, tx in runs.items():
    temp, ms, faults = measure(tx, model, params, x, y, args.steps)
    base = base or ms
    print(f'| {name} | {temp:.1f} | {ms:.2f} | {ms / base:.2f} |'
          f' {faults:.0f} |', flush=True)


if __name__ == '__main__':
  main()
