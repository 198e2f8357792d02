"""What one jump of NiNo's graph network costs on the suite's models.

Per model: parameters, the neural graph's nodes and edges, the seconds to
build it (positions included), to compile the forecast of every leaf and to
run it (mean of 3 after a warm-up), and the compiled forecast's
temporaries (``memory_analysis().temp_size_in_bytes``).

  python benchmarks/nino_jump_cost.py
"""

import time

import jax
import jax.numpy as jnp

import optax_nowcast as onc
from optax_nowcast.forecasters import _neural_graph
from optax_nowcast.forecasters import _nino
from optax_nowcast.lab import tasks

MODELS = (
    ('FM-16 CNN', lambda: tasks.ConvNet((16, 32, 32)),
     jnp.zeros((1, 28, 28, 1)), None),
    ('MNIST MLP 256-128', lambda: tasks.MLP((256, 128)),
     jnp.zeros((1, 784)), None),
    ('character transformer', tasks.CharTransformer,
     jnp.zeros((1, 64), jnp.int32), 4),
)


def main():
  weights = onc.forecasters.load('nino').weights
  print('| model | params | nodes | edges | graph (s) | compile (s) |'
        ' jump (ms) | temporaries (MB) |')
  print('|---|---|---|---|---|---|---|---|')
  for name, make, example, heads in MODELS:
    params = make().init(jax.random.key(0), example)['params']
    order = _neural_graph.forward_order(params)
    start = time.perf_counter()
    graph = onc.nino_graph(params, heads=heads)
    build = time.perf_counter() - start
    infos = _neural_graph.leaf_infos(params, order=order)
    leaves = jax.tree.leaves(params)
    windows = [tuple(leaf * (1 + 0.01 * k) for k in range(5))
               for leaf in leaves]
    fn = jax.jit(lambda ws, infos=infos, heads=heads: _nino.forecast_leaves(
        weights, ws, jnp.arange(-4.0, 1.0) * 200, jnp.array([2000.0]),
        infos, heads=heads))
    start = time.perf_counter()
    compiled = fn.lower(windows).compile()
    compile_s = time.perf_counter() - start
    jax.block_until_ready(compiled(windows))
    start = time.perf_counter()
    for _ in range(3):
      jax.block_until_ready(compiled(windows))
    run = (time.perf_counter() - start) / 3
    temp = compiled.memory_analysis().temp_size_in_bytes / 2**20
    print(f'| {name} | {sum(leaf.size for leaf in leaves):,} |'
          f' {graph.num_nodes:,} | {graph.num_edges:,} | {build:.2f} |'
          f' {compile_s:.1f} | {1000 * run:.0f} | {temp:.0f} |', flush=True)


if __name__ == '__main__':
  main()
