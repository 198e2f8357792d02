"""Curve-fit baselines: least-squares polynomials per scalar, and ``last``.

These are the "linear fit" and "quadratic fit" baselines of Introspection
(Sinha et al., 2017) and WNN (Jang et al., 2023): each scalar weight's window
is fitted by a polynomial in time, which is evaluated at the target step.
"""

from __future__ import annotations

import numbers

import jax
import jax.numpy as jnp

from optax_nowcast import _validation
from optax_nowcast.forecasters._base import Forecaster


def polyfit_coefficients(
    times: jax.Array, target: jax.Array, degree: int
) -> jax.Array:
  r"""Weights ``w`` with ``w @ values`` = least-squares polynomial at target.

  For the Vandermonde matrix :math:`V_{ik} = u_i^k` of the centred, scaled
  times :math:`u_i` and the row :math:`v_k = u_\tau^k` of the target,
  :math:`w = v V^+`. The weights depend on the times only, so when the
  forecaster is vmapped over weights (with ``times`` unbatched) they are
  computed once per leaf, not once per scalar.

  Args:
    times: ``(window,)`` distinct steps of the values.
    target: The step to evaluate the fitted polynomial at.
    degree: The polynomial degree (``< window``).

  Returns:
    The ``(window,)`` float32 weights.

  Raises:
    ValueError: if ``degree`` is not an int in ``[0, window)``, ``times`` is
      not 1-d or ``target`` is not a scalar (checked on shapes only, so it
      works on traced arrays).
  """
  if (
      isinstance(degree, bool)
      or not isinstance(degree, numbers.Integral)
      or degree < 0
  ):
    raise ValueError(f'degree must be a non-negative int, got {degree!r}')
  if jnp.ndim(times) != 1:
    raise ValueError(
        f'times must be 1-d (one step per value), got shape {jnp.shape(times)}'
    )
  if degree >= jnp.shape(times)[0]:
    raise ValueError(
        f'degree must be less than the number of times'
        f' ({jnp.shape(times)[0]}) for a least-squares fit, got {degree}'
    )
  if jnp.ndim(target) != 0:
    raise ValueError(
        f'target must be a scalar step, got shape {jnp.shape(target)}'
    )
  times = jnp.asarray(times, jnp.float32)
  centre = jnp.mean(times)
  scale = jnp.maximum(jnp.max(jnp.abs(times - centre)), 1e-12)
  u = (times - centre) / scale
  u_target = (jnp.asarray(target, jnp.float32) - centre) / scale
  powers = jnp.arange(degree + 1, dtype=jnp.float32)
  vander = u[:, None] ** powers
  row = u_target ** powers
  return row @ jnp.linalg.pinv(vander)


def _polynomial(degree: int, name: str, window: int, horizon: float):
  window = _validation.positive_int('window', window)
  if window < degree + 1:
    raise ValueError(
        f'window must be at least {degree + 1} for a {name} fit, got {window}'
    )
  horizon = _validation.positive_float('horizon', horizon)

  def apply(weights, values, times, target, label):
    del weights, label
    coefficients = polyfit_coefficients(times, target, degree)
    values = values.astype(jnp.float32)
    # A sum in a fixed order, not a dot: XLA rounds a batched dot
    # differently depending on the batch, and a forecast must not depend on
    # which other weights it is computed with.
    forecast = coefficients[0] * values[0]
    for i in range(1, values.shape[0]):
      forecast = forecast + coefficients[i] * values[i]
    return forecast

  return Forecaster(
      apply=apply, weights=(), window=window, horizon=horizon, name=name
  )


def linear(window: int = 5, horizon: float = 5.0) -> Forecaster:
  r"""Least-squares straight line through the window, extrapolated.

  On a trajectory that moves in a straight line, a jump with
  ``linear(window, horizon=h)`` lands exactly on
  :math:`p_n + h (p_n - p_{n-r})`, where ``r`` is ``record_every``.

  Args:
    window: Number of records fitted (>= 2), including the current weights.
    horizon: Record intervals beyond the newest record to forecast (> 0).

  Returns:
    A :class:`Forecaster`.

  Example:
    >>> import optax, optax_nowcast as onc
    >>> tx = optax.chain(optax.adam(1e-3), onc.nowcast(
    ...     onc.forecasters.linear(window=5, horizon=5),
    ...     record_every=100, jump_every=5))
  """
  return _polynomial(1, 'linear', window, horizon)


def quadratic(window: int = 5, horizon: float = 5.0) -> Forecaster:
  """Least-squares parabola through the window, extrapolated.

  Exact on a trajectory that is a parabola in time. Introspection (Sinha et
  al., 2017) found it unstable for large jumps.

  Args:
    window: Number of records fitted (>= 3), including the current weights.
    horizon: Record intervals beyond the newest record to forecast (> 0).

  Returns:
    A :class:`Forecaster`.
  """
  return _polynomial(2, 'quadratic', window, horizon)


def last(window: int = 1) -> Forecaster:
  """Forecasts the newest value: a jump that changes nothing.

  Useful in tests (a ``nowcast`` with ``last`` must train exactly like the
  inner optimizer alone) and as the "no jump" baseline of a forecaster's
  validation error.

  Args:
    window: Number of records the jump waits for (>= 1).

  Returns:
    A :class:`Forecaster` with ``horizon=1``, which it ignores.
  """
  window = _validation.positive_int('window', window)

  def apply(weights, values, times, target, label):
    del weights, times, target, label
    return values[-1].astype(jnp.float32)

  return Forecaster(
      apply=apply, weights=(), window=window, horizon=1.0, name='last'
  )
