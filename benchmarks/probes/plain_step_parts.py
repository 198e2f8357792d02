"""Issue 22 probe: which part of nowcast a plain step pays for.

Times the plain step (no record, no jump: ``record_every`` beyond the run)
of Adam, Adam + a bare ``lax.cond`` (the floor) and Adam +
``nowcast(last)`` with its record (``_history.write``), its jump
(``_nowcast._jump_or_roll_back``) or both replaced by pass-throughs at
trace time, on the 1M MLP of ``benchmarks/step_overhead.py`` (batch 256,
donated), interleaved in one process; prints median ms and the ratio to
Adam's.

  python benchmarks/probes/plain_step_parts.py [STEPS]
"""

import pathlib
import sys
import time
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
import jax, jax.numpy as jnp, numpy as np, optax
import step_overhead as so
import optax_nowcast as onc
from optax_nowcast import _history, _nowcast
model = so.MLP(hidden=256)
x, y = so.make_batch('mlp256', 256)
params0 = model.init(jax.random.key(0), x)['params']
write, jump = _history.write, _nowcast._jump_or_roll_back
no_record = lambda slots, index, values: [list(s) for s in slots]
zero = jnp.zeros([], jnp.int32)
no_jump = lambda leaves, jmp, rollback, branch, guarded: _nowcast._Jumped(
    leaves.updates, list(leaves.slots[-1]) if guarded else [], zero, zero)
BL = dict(record_every=100000, jump_every=5, last_jump_step=2**31 - 1)
variants = {
  'adam': (optax.adam(1e-3), None, None),
  'floor': (optax.chain(optax.adam(1e-3), so.cond_floor()), None, None),
  'last': (None, write, jump),
  'no-record': (None, no_record, jump),
  'no-jump': (None, write, no_jump),
  'no-either': (None, no_record, no_jump),
}
steps = {}
for name, (tx, w, r) in variants.items():
  tx = tx or optax.chain(optax.adam(1e-3), onc.nowcast(onc.forecasters.last(5), **BL))
  _history.write, _nowcast._jump_or_roll_back = w or write, r or jump
  try:
    params = jax.tree.map(jnp.array, params0)
    state = tx.init(params)
    f = so.make_step(model, tx, (0, 1))
    c = f.lower(params, state, x, y).compile()
  finally:
    _history.write, _nowcast._jump_or_roll_back = write, jump
  steps[name] = [c, params, state]
times = {k: [] for k in steps}
for i in range(int(sys.argv[1]) if len(sys.argv) > 1 else 300):
  order = list(steps) if i % 2 == 0 else list(steps)[::-1]
  for k in order:
    c, p, s = steps[k]
    t = time.perf_counter()
    out = c(p, s, x, y)
    jax.block_until_ready(out)
    times[k].append(time.perf_counter() - t)
    steps[k][1], steps[k][2] = out[0], out[1]
a = np.median(times['adam'][20:])
for k, t in times.items():
  m = np.median(t[20:])
  print(f'{k}: {m*1e3:.3f} ms, {m/a:.3f}')
