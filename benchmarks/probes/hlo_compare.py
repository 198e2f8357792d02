"""Op counts of the compiled nowcast step: this version vs an earlier one.

Compiles the jitted MLP training step of ``benchmarks/step_overhead.py``
(``adam + nowcast(linear)``, donated, unguarded and guarded) with this
checkout's optax_nowcast and with the source tree given (imported under
another name), and prints the HLO op counts that differ. A refactoring
that leaves them equal leaves the compiled program equal.

Run::

  git worktree add /tmp/v010 cb3aaff   # optax_nowcast 0.1.0
  python benchmarks/probes/hlo_compare.py /tmp/v010
"""

import collections
import pathlib
import re
import sys

import jax
import jax.numpy as jnp
import optax

import optax_nowcast as onc

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
import step_overhead as so  # pylint: disable=g-import-not-at-top,wrong-import-position


def op_counts(mod, model, params, x, y, guard):
  tx = optax.chain(optax.adam(1e-3), mod.nowcast(
      mod.forecasters.linear(window=5, horizon=5), record_every=4,
      jump_every=5, guard_steps=guard,
      last_jump_step=2**31 - 1))  # blind jumps, as 0.1.0 made them
  step = so.make_step(model, tx, (0, 1))
  text = step.lower(params, tx.init(params), x, y).compile().as_text()
  return collections.Counter(re.findall(r'= \S+ (\w[\w-]*)\(', text))


def main():
  if len(sys.argv) != 2:
    sys.exit(__doc__)
  old = so.load_baseline(sys.argv[1])
  model = so.MLP()
  x, y = jnp.zeros((128, 28, 28, 1)), jnp.zeros((128,), jnp.int32)
  params = model.init(jax.random.key(0), x)['params']
  for guard in (None, 4):
    a = op_counts(old, model, params, x, y, guard)
    b = op_counts(onc, model, params, x, y, guard)
    diff = {k: (a[k], b[k]) for k in sorted(set(a) | set(b)) if a[k] != b[k]}
    print(f'guard_steps={guard}: ops {sum(a.values())} (baseline) vs'
          f' {sum(b.values())} (this); differing (baseline, this): {diff}')


if __name__ == '__main__':
  main()
