"""The temporaries of a nowcast step with NiNo's graph network on the
benchmark GPT (``benchmarks/step_overhead.py``'s, 10M params): the graph's
size and build time, the step's compile time and its temporaries
(``memory_analysis().temp_size_in_bytes``), side by side with Adam alone
and with a per-weight forecaster's streamed jump (``linear``), on the same
schedule (``results/jump_memory.md``).

  python benchmarks/nino_gpt_memory.py
"""

import pathlib
import sys
import time

import jax
import jax.numpy as jnp
import optax

import optax_nowcast as onc

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from step_overhead import GPT  # pylint: disable=g-import-not-at-top,wrong-import-position


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
    print(f'{name}: compile {time.perf_counter() - start:.1f} s,'
          f' temporaries {temp:.0f} MB')


if __name__ == '__main__':
  main()
