"""The temporaries of a nowcast step with NiNo's graph network on a small
GPT (``step_overhead.py``'s, ``layers`` blocks) or, with ``mlp``, on the
1M-weight MLP of ``tests/lib/test_nowcast.py`` (1024 -> 1000 -> 10), from
XLA's memory analysis of the compiled, donated step; for quick A/B of the
jump's memory layout (``benchmarks/nino_gpt_memory.py`` does the 13-block
GPT, minutes).

  python benchmarks/probes/nino_jump_temps.py [layers | mlp]
"""

import pathlib
import sys
import time

import jax
import jax.numpy as jnp
import optax

import optax_nowcast as onc

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from nino_gpt_memory import constant_bytes  # pylint: disable=g-import-not-at-top,wrong-import-position
from step_overhead import GPT  # pylint: disable=g-import-not-at-top,wrong-import-position


def main():
  arg = sys.argv[1] if len(sys.argv) > 1 else '2'
  if arg == 'mlp':
    name = 'MLP 1024-1000-10'
    dense = lambda i, o: {'kernel': jnp.zeros((i, o)), 'bias': jnp.zeros(o)}
    params = {'Dense_0': dense(1024, 1000), 'Dense_1': dense(1000, 10)}
  else:
    name = f'GPT with {arg} blocks'
    params = GPT(layers=int(arg)).init(
        jax.random.key(0), jnp.zeros((1, 8), jnp.int32))['params']
  size = sum(x.size for x in jax.tree.leaves(params)) * 4 / 2**20
  start = time.perf_counter()
  forecaster = onc.forecasters.load('nino', params=params)
  tx = optax.chain(optax.adam(1e-3), onc.nowcast(
      forecaster, record_every=1, jump_every=5, horizon=10.0,
      last_jump_step=100))
  state = tx.init(params)
  step = jax.jit(lambda p, s, g: tx.update(g, s, p), donate_argnums=(0, 1))
  compiled = step.lower(params, state, params).compile()
  temp = compiled.memory_analysis().temp_size_in_bytes / 2**20
  constants = constant_bytes(compiled.as_text()) / 2**20
  print(f'{name}: params {size:.1f} MB, step temporaries'
        f' {temp:.1f} MB ({temp / size:.1f}x the params), constants'
        f' {constants:.1f} MB, built and compiled'
        f' in {time.perf_counter() - start:.0f} s')


if __name__ == '__main__':
  main()
