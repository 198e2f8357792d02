"""Do nowcast chains still solve optax's own test problems? Blind vs checked.

optax's ``alias_test.test_optimization`` runs each optimizer of its list for
10,000 steps on a parabola and on the Rosenbrock function and requires the
final params within ``rtol=atol=3e-2`` of the optimum. This script runs the
same problems, optimizers and tolerance with ``optimizer + nowcast(...)``
for every forecaster under three ways of ending the jumps:

- ``blind``: jumps to the forecast until the last step
  (``last_jump_step=10_000``: what ``last_jump_step=None`` did before 0.2.0);
- ``stop-90%``: blind jumps that stop at step 9,000 (``last_jump_step``);
- ``checked``: loss-checked jumps (``value_fn`` passed to ``update``, the
  default ``select`` step sizes), jumping until the last step.

and prints, per forecaster and mode, how many (optimizer, problem) cases
reach optax's target, with the failures named (NaN: the step where the loss
first stopped being finite). Each run is one ``lax.scan`` of 10,000 steps.

Run::

  python benchmarks/optax_convergence.py                 # record_every=10
  python benchmarks/optax_convergence.py --record-every 1 --out results/x.md
"""

from __future__ import annotations

import argparse
import collections
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import optax_nowcast as onc

STEPS = 10_000
# optax 0.2.8 alias_test._OPTIMIZERS_UNDER_TEST, float32 problems (the
# optimizers that need a learning rate schedule or a non-None learning rate
# for a problem are left out as optax's test skips them).
OPTIMIZERS = (
    ('adabelief', dict(learning_rate=1e-2)),
    ('adadelta', dict(learning_rate=0.1)),
    ('adafactor', dict(learning_rate=5e-3)),
    ('adagrad', dict(learning_rate=1.0)),
    ('adam', dict(learning_rate=1e-1)),
    ('adamax', dict(learning_rate=1e-1)),
    ('adamaxw', dict(learning_rate=1e-1)),
    ('adamw', dict(learning_rate=1e-1)),
    ('adan', dict(learning_rate=1e-1)),
    ('amsgrad', dict(learning_rate=1e-1)),
    ('fromage', dict(learning_rate=5e-3)),
    ('lamb', dict(learning_rate=1e-3)),
    ('lars', dict(learning_rate=1.0)),
    ('lion', dict(learning_rate=1e-2, weight_decay=1e-4)),
    ('nadam', dict(learning_rate=1e-2)),
    ('nadamw', dict(learning_rate=1e-2)),
    ('noisy_sgd', dict(learning_rate=1e-3, eta=1e-4, key=0)),
    ('novograd', dict(learning_rate=1e-3)),
    ('optimistic_adam_v2', dict(learning_rate=2e-3)),
    ('optimistic_gradient_descent',
     dict(learning_rate=2e-3, alpha=0.7, beta=0.1)),
    ('radam', dict(learning_rate=5e-3)),
    ('rmsprop', dict(learning_rate=5e-3)),
    ('rmsprop', dict(learning_rate=5e-3, momentum=0.9)),
    ('rprop', dict(learning_rate=1e-1)),
    ('sgd', dict(learning_rate=1e-3, momentum=0.9)),
    ('sm3', dict(learning_rate=1.0)),
    ('yogi', dict(learning_rate=1e-1)),
)


def parabola():
  final = jnp.array([1.0, -1.0, 1.0])
  return jnp.array([-1.0, 10.0, 1.0]), final, lambda p: jnp.sum((p - final)**2)


def rosenbrock():
  def loss(p):
    return (1.0 - p[0])**2 + 100.0 * (p[1] - p[0]**2)**2
  return jnp.zeros(2), jnp.ones(2), loss


PROBLEMS = {'parabola': parabola, 'rosenbrock': rosenbrock}
MODES = ('blind', 'stop-90%', 'checked')


def make_nowcast(name: str, mode: str, record_every: int):
  """``nowcast`` with forecaster ``name``, ending its jumps as ``mode`` says."""
  kwargs = {'last_jump_step': int(0.9 * STEPS) if mode == 'stop-90%'
            else STEPS}
  if mode == 'checked':
    kwargs = {}
  if name == 'introspection':
    steps = [int(STEPS * f) for f in (0.05, 0.1, 0.2, 0.3)]
    return onc.nowcast(onc.forecasters.load('introspection'),
                       schedule=onc.schedules.introspection(steps))
  if name in ('wnn',):
    forecaster = onc.forecasters.load(name)
  elif name == 'last':
    forecaster = onc.forecasters.last(3)
  else:
    forecaster = getattr(onc.forecasters, name)(3, 5.0)
  return onc.nowcast(forecaster, record_every=record_every,
                     jump_every=forecaster.window, **kwargs)


def run(opt_name, opt_kwargs, problem, forecaster, mode, record_every):
  """(reached optax's target, final loss, first non-finite step or -1)."""
  init, final, loss = PROBLEMS[problem]()
  tx = optax.chain(getattr(optax, opt_name)(**opt_kwargs),
                   make_nowcast(forecaster, mode, record_every))

  def step(carry, _):
    params, state = carry
    value, grads = jax.value_and_grad(loss)(params)
    extra = {'value_fn': loss} if mode == 'checked' else {}
    updates, state = tx.update(grads, state, params, value=value, **extra)
    params = optax.apply_updates(params, updates)
    return (params, state), loss(params)

  (params, _), losses = jax.jit(
      lambda p, s: jax.lax.scan(step, (p, s), None, length=STEPS))(
          init, tx.init(init))
  losses = np.asarray(losses)
  bad = np.flatnonzero(~np.isfinite(losses))
  reached = bool(jnp.allclose(params, final, rtol=3e-2, atol=3e-2))
  return reached, float(losses[-1]), int(bad[0]) + 1 if bad.size else -1


def main(argv=None):
  parser = argparse.ArgumentParser(
      description=__doc__.split('\n\n')[0],
      formatter_class=argparse.ArgumentDefaultsHelpFormatter)
  parser.add_argument('--record-every', type=int, default=10)
  parser.add_argument('--forecasters',
                      default='last,linear,quadratic,wnn,introspection')
  parser.add_argument('--modes', default=','.join(MODES))
  parser.add_argument('--out', default=None, help='also write the table here')
  args = parser.parse_args(argv)
  forecasters = args.forecasters.split(',')
  modes = args.modes.split(',')
  cases = [(o, k, p) for o, k in OPTIMIZERS for p in PROBLEMS]
  failures = collections.defaultdict(list)
  passed = collections.Counter()
  start = time.perf_counter()
  for forecaster in forecasters:
    for mode in modes:
      if forecaster == 'introspection' and mode != 'checked':
        # Its schedule ends by itself: one blind row, under 'blind'.
        if mode != 'blind':
          continue
      for opt_name, opt_kwargs, problem in cases:
        reached, final_loss, nan_at = run(opt_name, opt_kwargs, problem,
                                          forecaster, mode, args.record_every)
        if reached:
          passed[forecaster, mode] += 1
        else:
          why = f'NaN at step {nan_at}' if nan_at > 0 else f'loss {final_loss:.3g}'
          label = opt_name + ('(momentum)' if 'momentum' in opt_kwargs else '')
          failures[forecaster, mode].append(f'{label}/{problem}: {why}')
      print(f'{forecaster:14s} {mode:9s} {passed[forecaster, mode]}/'
            f'{len(cases)}  ({time.perf_counter() - start:.0f} s)', flush=True)
  lines = [
      f'optax problems (optax 0.2.8 alias_test), {STEPS} steps,'
      f' record_every={args.record_every}, jump_every=window, horizon 5'
      ' (wnn: its own); cases reaching params within rtol=atol=3e-2 of the'
      ' optimum:', '',
      '| forecaster | jumps | reached | failures |', '|---|---|---|---|']
  for forecaster in forecasters:
    for mode in modes:
      if (forecaster, mode) not in passed and (forecaster, mode) not in failures:
        continue
      shown = 'scheduled, blind' if forecaster == 'introspection' and (
          mode == 'blind') else mode
      fails = failures[forecaster, mode]
      lines.append(f'| {forecaster} | {shown} | {passed[forecaster, mode]}/'
                   f'{len(cases)} | {"; ".join(fails) or "-"} |')
  table = '\n'.join(lines)
  print(table)
  if args.out:
    with open(args.out, 'w') as f:
      f.write(table + '\n')


if __name__ == '__main__':
  main()
