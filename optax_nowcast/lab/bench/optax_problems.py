"""optax's own test problems, to run ``optimizer + nowcast`` on.

optax's ``alias_test.test_optimization`` (optax 0.2.8) runs each optimizer of
its list for 10,000 steps on a parabola and on the Rosenbrock function and
requires the final params within ``rtol=atol=3e-2`` of the optimum. Here the
same problems, optimizers and tolerance, with a ``nowcast`` chained after
the optimizer whose jumps end in one of three ways (:data:`MODES`):

- ``blind``: jumps to the forecast until the last step;
- ``stop-90%``: blind jumps that stop at 90% of the steps
  (``last_jump_step``);
- ``checked``: loss-checked jumps (``value_fn``, default ``select``) to the
  last step.

Used by ``benchmarks/optax_convergence.py`` (the table) and
``tests/lib/test_optax_problems.py`` (the battery).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

import optax_nowcast as onc
from optax_nowcast.forecasters import _io as forecaster_io

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


def _abs_sq(x):
  return jnp.real(x * jnp.conj(x))


def parabola(dtype=jnp.float32):
  """optax's parabola: ``sum |p - p*|^2`` from ``[-1, 10, 1]``."""
  final = jnp.array([1.0, -1.0, 1.0], dtype)
  if jnp.issubdtype(dtype, jnp.complexfloating):
    final = final * (1 + 1j)
  return (jnp.array([-1.0, 10.0, 1.0], dtype), final,
          lambda p: jnp.sum(_abs_sq(p - final)))


def rosenbrock(dtype=jnp.float32):
  """optax's Rosenbrock function (a = 1, b = 100) from the origin."""
  a = 1.0 + 1j if jnp.issubdtype(dtype, jnp.complexfloating) else 1.0

  def loss(p):
    return _abs_sq(a - p[0]) + 100.0 * _abs_sq(p[1] - p[0]**2)

  return jnp.zeros(2, dtype), jnp.array([a, a**2], dtype), loss


PROBLEMS = {'parabola': parabola, 'rosenbrock': rosenbrock}
MODES = ('blind', 'stop-90%', 'checked')
CURVE_FITS = ('last', 'linear', 'quadratic')
#: The curve fits and every shipped learned forecaster (from the registry).
FORECASTERS = CURVE_FITS + forecaster_io.SHIPPED


def make_nowcast(name: str, mode: str, record_every: int = 10
                 ) -> optax.GradientTransformationExtraArgs:
  """``nowcast`` with forecaster ``name``, ending its jumps as ``mode`` says.

  Curve fits have window 3 and horizon 5; a learned forecaster is the
  shipped one (its window and horizon); the periodic schedule jumps every
  ``window`` records. A learned forecaster without a horizon of its own
  (``introspection``) runs the Introspection schedule, jumps at 5, 10, 20
  and 30% of the steps, whatever the mode (it ends by itself).
  """
  if mode not in MODES:
    raise ValueError(f'mode must be one of {MODES}, got {mode!r}')
  if name not in FORECASTERS:
    raise ValueError(f'forecaster must be one of {FORECASTERS}, got {name!r}')
  if name == 'last':
    forecaster = onc.forecasters.last(3)
  elif name in CURVE_FITS:
    forecaster = getattr(onc.forecasters, name)(3, 5.0)
  else:
    forecaster = onc.forecasters.load(name)
  if forecaster.horizon is None:
    steps = [int(STEPS * f) for f in (0.05, 0.1, 0.2, 0.3)]
    return onc.nowcast(forecaster,
                       schedule=onc.schedules.introspection(steps))
  ends = {'blind': {'last_jump_step': STEPS},
          'stop-90%': {'last_jump_step': int(0.9 * STEPS)},
          'checked': {}}
  return onc.nowcast(forecaster, record_every=record_every,
                     jump_every=forecaster.window, **ends[mode])


class Outcome(NamedTuple):
  """How a run ended."""

  reached: bool  # params within rtol=atol=3e-2 of the optimum
  final_loss: float
  nonfinite_at: int  # first step whose loss is not finite, -1 if none
  params: jax.Array
  final_params: jax.Array  # the optimum
  state: Any  # the optimizer state after the last step


def run(opt_name: str, opt_kwargs: dict[str, Any], problem: str,
        forecaster: str, mode: str, record_every: int = 10,
        dtype: Any = jnp.float32) -> Outcome:
  """``opt + nowcast(forecaster)`` on ``problem`` for :data:`STEPS` steps.

  One jitted ``lax.scan``; the gradients of complex params are conjugated,
  as in optax's test.
  """
  init, final, loss = PROBLEMS[problem](dtype)
  tx = optax.chain(getattr(optax, opt_name)(**opt_kwargs),
                   make_nowcast(forecaster, mode, record_every))

  def step(carry, _):
    params, state = carry
    value, grads = jax.value_and_grad(loss)(params)
    grads = jnp.conj(grads)
    extra = {'value_fn': loss} if mode == 'checked' else {}
    updates, state = tx.update(grads, state, params, value=value, **extra)
    params = optax.apply_updates(params, updates)
    return (params, state), loss(params)

  (params, state), losses = jax.jit(
      lambda p, s: jax.lax.scan(step, (p, s), None, length=STEPS))(
          init, tx.init(init))
  losses = np.asarray(losses)
  bad = np.flatnonzero(~np.isfinite(losses))
  return Outcome(
      reached=bool(jnp.allclose(params, final, rtol=3e-2, atol=3e-2)),
      final_loss=float(losses[-1]),
      nonfinite_at=int(bad[0]) + 1 if bad.size else -1,
      params=params, final_params=final, state=state)
