"""The temporaries of a nowcast step with NiNo's graph network on the
benchmark GPT (``benchmarks/step_overhead.py``'s, 10M params): the graph's
size and build time, the step's compile time and its temporaries
(``memory_analysis().temp_size_in_bytes``), for comparison with the
per-weight forecasters' streamed jump (``results/jump_memory.md``).

  python benchmarks/nino_gpt_memory.py
"""
import sys, time, jax, jax.numpy as jnp
sys.path.insert(0, 'benchmarks')
import optax, optax_nowcast as onc
from step_overhead import GPT
from optax_nowcast.forecasters import _neural_graph
g = GPT(); p = g.init(jax.random.key(0), jnp.zeros((1, 8), jnp.int32))['params']
t = time.time(); graph = onc.nino_graph(p); print('graph', graph.num_nodes, graph.num_edges, f'{time.time()-t:.1f}s', flush=True)
f = onc.forecasters.load('nino', params=p)
tx = optax.chain(optax.adam(1e-3), onc.nowcast(f, record_every=1, jump_every=5, horizon=10.0, last_jump_step=100))
st = tx.init(p)
step = jax.jit(lambda p, s, g: tx.update(g, s, p), donate_argnums=(0, 1))
t = time.time(); c = step.lower(p, st, p).compile(); print(f'compile {time.time()-t:.1f}s', flush=True)
print('temp MB', c.memory_analysis().temp_size_in_bytes / 2**20)
