"""The temporaries of a nowcast step with NiNo's graph network on the
benchmark GPT (``benchmarks/step_overhead.py``'s, 10M params): the graph's
size and build time, the step's compile time and its temporaries
(``memory_analysis().temp_size_in_bytes``) and the constants compiled into
it (the arrays of the optimized HLO's ``constant`` instructions, which XLA's
memory analysis leaves out), side by side with Adam alone
and with a per-weight forecaster's streamed jump (``linear``), on the same
schedule (``results/jump_memory.md``).

  python benchmarks/nino_gpt_memory.py
"""

import pathlib
import re
import sys
import time

import jax
import jax.numpy as jnp
import optax

import optax_nowcast as onc

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from step_overhead import GPT  # pylint: disable=g-import-not-at-top,wrong-import-position


_BYTES = {'pred': 1, 's8': 1, 'u8': 1, 'f16': 2, 'bf16': 2, 's16': 2,
          'u16': 2, 'f32': 4, 's32': 4, 'u32': 4, 'f64': 8, 's64': 8,
          'u64': 8, 'c64': 8}


def constant_bytes(hlo: str) -> int:
  """Bytes of the constants in an optimized HLO text (every ``constant``
  instruction's shape; a constant sunk into several loops counts each
  time, as XLA allocates it each time)."""
  total = 0
  for m in re.finditer(r'= (\w+)\[([\d,]*)\](?:\{[^}]*\})? constant\(', hlo):
    n = 1
    for d in filter(None, m.group(2).split(',')):
      n *= int(d)
    total += n * _BYTES[m.group(1)]
  return total


def main():
  params = GPT().init(jax.random.key(0), jnp.zeros((1, 8), jnp.int32))[
      'params']
  start = time.perf_counter()
  graph = onc.nino_graph(params)
  print(f'graph: {graph.num_nodes:,} nodes, {graph.num_edges:,} edges,'
        f' {len(graph.unplaced)} leaves not placed,'
        f' {time.perf_counter() - start:.1f} s', flush=True)
  size = sum(x.size for x in jax.tree.leaves(params)) * 4 / 2**20
  print(f'params: {size:.0f} MB')
  for name, tx in [
      ('adam', optax.adam(1e-3)),
      ('adam + nowcast(linear)', optax.chain(optax.adam(1e-3), onc.nowcast(
          onc.forecasters.linear(window=5, horizon=10), record_every=1,
          jump_every=5, last_jump_step=100))),
      ('adam + nowcast(nino)', optax.chain(optax.adam(1e-3), onc.nowcast(
          onc.forecasters.load('nino', params=params), record_every=1,
          jump_every=5, horizon=10.0, last_jump_step=100)))]:
    state = tx.init(params)
    step = jax.jit(lambda p, s, g, tx=tx: tx.update(g, s, p),
                   donate_argnums=(0, 1))
    start = time.perf_counter()
    compiled = step.lower(params, state, params).compile()
    temp = compiled.memory_analysis().temp_size_in_bytes / 2**20
    constants = constant_bytes(compiled.as_text()) / 2**20
    print(f'{name}: compile {time.perf_counter() - start:.1f} s,'
          f' temporaries {temp:.0f} MB, constants {constants:.0f} MB',
          flush=True)


if __name__ == '__main__':
  main()
