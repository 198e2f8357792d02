"""Runs in its own process with 8 CPU devices (see test_sharding.py).

Shards the params over a mesh, FSDP-style, and checks that the nowcast
history is sharded like the params, that a compiled update (jump included)
moves no weights between devices, and that the numbers match one device.
Prints one line per check and 'ALL OK' at the end.
"""

import jax

jax.config.update('jax_num_cpu_devices', 8)

import functools  # noqa: E402
import re  # noqa: E402

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from jax.sharding import NamedSharding, PartitionSpec as P  # noqa: E402

import optax_nowcast as onc  # noqa: E402

COLLECTIVES = ('all-gather', 'all-reduce', 'all-to-all', 'collective-permute',
               'reduce-scatter')


def main():
  assert jax.device_count() == 8, jax.devices()
  for axis_type in (jax.sharding.AxisType.Explicit, jax.sharding.AxisType.Auto):
    print(f'mesh axis type {axis_type}')
    check(jax.make_mesh((8,), ('fsdp',), axis_types=(axis_type,)))
  print('ALL OK')


def check(mesh):
  specs = {'w': P('fsdp', None), 'k': P(None, None, None, 'fsdp'),
           'b': P('fsdp'), 's': P()}
  key = jax.random.key(0)
  host = {
      'w': jax.random.normal(key, (64, 24)),
      'k': jax.random.normal(key, (3, 3, 4, 16)),
      'b': jnp.linspace(-1.0, 1.0, 16),
      's': jnp.float32(0.5),
  }
  shardings = {k: NamedSharding(mesh, s) for k, s in specs.items()}
  params = jax.device_put(host, shardings)
  targets = jax.tree.map(lambda x: jnp.cos(x) * 0.5, host)

  # Blind jumps (they need an end: one far past these runs), and checked
  # ones (value_fn: the loss is evaluated at candidates sharded like the
  # params).
  blind = dict(last_jump_step=2**31 - 1)
  for name, fc, kw, checked in [
      ('linear', onc.forecasters.linear(3, 2.0), blind, False),
      ('quadratic-bf16', onc.forecasters.quadratic(4, 1.5),
       dict(history_dtype=jnp.bfloat16, **blind), False),
      ('linear-checked', onc.forecasters.linear(3, 2.0), {}, True),
  ]:
    tx = optax.chain(optax.adam(1e-2), onc.nowcast(
        fc, record_every=1, jump_every=fc.window, **kw))

    def loss(p):
      return sum(jnp.sum((a - b) ** 2) for a, b in
                 zip(jax.tree.leaves(p), jax.tree.leaves(targets)))

    def step(p, s):
      g = jax.grad(loss)(p)
      u, s = tx.update(g, s, p, **({'value_fn': loss} if checked else {}))
      return optax.apply_updates(p, u), s

    state = jax.jit(tx.init)(params)
    hist_specs = []
    for slot in state[1].history:
      for k in specs:
        h, p = slot[k], params[k]
        assert h.sharding.is_equivalent_to(p.sharding, p.ndim), (
            name, k, h.sharding, p.sharding)
        hist_specs.append(h.sharding)
    print(f'{name}: history sharded like the params after init')

    jstep = jax.jit(step, donate_argnums=(1,))
    hlo = jstep.lower(params, state).compile().as_text()
    moving = [line.strip() for line in hlo.splitlines()
              if any(f' {c}(' in line or f' {c}-start(' in line
                     for c in COLLECTIVES)]
    # The only collectives allowed are scalar sums: of the non-finite
    # forecast count and, checked, of each candidate's loss; no weight
    # crosses devices.
    scalar = r'[sf]32' if checked else r's32'
    weights = [line for line in moving if not re.search(
        rf'= \(?{scalar}\[\](, {scalar}\[\])*\)? all-reduce', line)]
    assert not weights, (name, weights)
    print(f'{name}: compiled update moves no weights between devices'
          f' ({len(moving)} scalar all-reduce)')

    # A jumpy run: every `window` steps is a jump.
    p, s = params, state
    before = jax.tree.map(lambda x: jax.typeof(x), s)
    for _ in range(3 * fc.window):
      p, s = jstep(p, s)
    assert int(s[1].jumps) == 3, int(s[1].jumps)
    after = jax.tree.map(lambda x: jax.typeof(x), s)
    assert before == after, (before, after)
    for k in specs:
      assert p[k].sharding.is_equivalent_to(params[k].sharding, p[k].ndim)
      for slot in s[1].history:
        assert slot[k].sharding.is_equivalent_to(
            params[k].sharding, p[k].ndim), (name, k)
    print(f'{name}: state types and shardings unchanged by 3 jumps')

    # Same numbers on one device.
    one = jax.devices()[0]
    p1 = jax.device_put(host, one)
    s1 = jax.device_put(tx.init(p1), one)
    step1 = jax.jit(step)
    for _ in range(3 * fc.window):
      p1, s1 = step1(p1, s1)
    jax.tree.map(functools.partial(np.testing.assert_allclose,
                                   rtol=1e-5, atol=1e-6), p, p1)
    print(f'{name}: matches one device')


if __name__ == '__main__':
  main()
