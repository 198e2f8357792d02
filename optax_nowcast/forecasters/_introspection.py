"""Introspection (Sinha et al., 2017): a tiny MLP that forecasts step 2t.

For a jump at step ``t`` the network reads one scalar weight at steps 0,
0.4t, 0.7t and t and predicts its value at step 2t. One set of weights serves
every kind of layer. Use it with the schedule that supplies those inputs,
:func:`optax_nowcast.schedules.introspection`.
"""

from __future__ import annotations

import functools
from typing import Any, Mapping, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from optax_nowcast import _validation
from optax_nowcast.forecasters._base import Forecaster
from optax_nowcast.forecasters._wnn import check_key
from optax_nowcast.forecasters._wnn import check_params
from optax_nowcast.forecasters._wnn import uniform_init

#: Inputs per scalar: the weight at steps 0, 0.4t, 0.7t and t.
INTROSPECTION_WINDOW = 4
#: Weights enter (and leave) the network multiplied by this factor.
INTROSPECTION_SCALE = 1000.0

#: Kernels start as LeCun-uniform, VarianceScaling(1, 'fan_in', 'uniform').
_KERNEL_INIT = nn.initializers.variance_scaling(1.0, 'fan_in', 'uniform')

Params = Mapping[str, Any]


class IntrospectionNetwork(nn.Module):
  r"""The Introspection MLP: ``(..., 4) -> (...)``, 4 -> 40 (ReLU) -> 1.

  .. math::
    y = w_2^\top \mathrm{relu}(W_1 z + b_1) + b_2

  on inputs :math:`z` already scaled by 1000. 241 parameters, LeCun-uniform
  kernels and zero biases at initialisation (the paper does not give its
  initialiser).

  Attributes:
    hidden: Width of the hidden layer.
  """

  hidden: int = 40

  @nn.compact
  def __call__(self, z: jax.Array) -> jax.Array:
    dense = functools.partial(nn.Dense, kernel_init=_KERNEL_INIT)
    h = nn.relu(dense(self.hidden, name='hidden')(z))
    return dense(1, name='output')(h)[..., 0]


_NETWORK = IntrospectionNetwork()


@functools.cache
def _expected_params() -> Any:
  return jax.eval_shape(
      _NETWORK.init,
      jax.random.PRNGKey(0),
      jax.ShapeDtypeStruct((INTROSPECTION_WINDOW,), jnp.float32),
  )['params']


def _forecast(params: Params, values: jax.Array) -> jax.Array:
  """The forecast of each window in ``values`` (..., 4), in weight units."""
  z = jnp.asarray(values, jnp.float32) * INTROSPECTION_SCALE
  return _NETWORK.apply({'params': params}, z) / INTROSPECTION_SCALE


def _apply(
    weights: Params,
    values: jax.Array,
    times: jax.Array,
    target: jax.Array,
    label: str,
) -> jax.Array:
  """:func:`introspection`'s ``Forecaster.apply``: one scalar's forecast."""
  del times, target, label  # fixed by the Introspection schedule
  if jnp.shape(values) != (INTROSPECTION_WINDOW,):
    raise ValueError(
        f'Introspection forecasts one scalar from {INTROSPECTION_WINDOW}'
        f' values, got values of shape {jnp.shape(values)}'
    )
  return _forecast(weights, values)


@jax.jit
def _apply_batch(weights: Params, windows: jax.Array) -> jax.Array:
  times = jnp.zeros((INTROSPECTION_WINDOW,), jnp.float32)
  return jax.vmap(
      lambda values: _apply(weights, values, times, jnp.float32(0), 'conv')
  )(windows)


@functools.cache
def _init_fn():
  return jax.jit(lambda key: uniform_init(key, _expected_params(), 1.0, 1)[0])


def init_introspection_weights(key: Optional[jax.Array] = None) -> Params:
  """Fresh, untrained Introspection weights (Flax params of 241 values).

  LeCun-uniform kernels (the distribution of :class:`IntrospectionNetwork`'s
  initialiser, drawn in one go by
  :func:`~optax_nowcast.forecasters._wnn.uniform_init`), zero biases.

  Args:
    key: A JAX PRNG key (default ``jax.random.PRNGKey(0)``).

  Returns:
    ``{'hidden': {'kernel': (4, 40), 'bias': (40,)}, 'output': {'kernel':
    (40, 1), 'bias': (1,)}}``, float32.

  Example:
    >>> import jax
    >>> weights = init_introspection_weights(jax.random.PRNGKey(1))
    >>> sum(w.size for w in jax.tree.leaves(weights))
    241
  """
  key = check_key(jax.random.PRNGKey(0) if key is None else key)
  return _init_fn()(key)


def introspection(
    weights: Optional[Params] = None, *, key: Optional[jax.Array] = None
) -> Forecaster:
  r"""Introspection: forecasts step ``2t`` from steps 0, 0.4t, 0.7t and t.

  For one scalar weight :math:`w` and a jump at step :math:`t`:

  .. math::
    \hat w_{2t} = \tfrac{1}{1000}\,
      \mathrm{MLP}\bigl(1000\,[w_0, w_{0.4t}, w_{0.7t}, w_t]\bigr),

  with the 4 -> 40 (ReLU) -> 1 :class:`IntrospectionNetwork`. The 1000-fold
  scaling brings typical weights into the network's working range. One set of
  weights serves every label.

  The inputs and the target are fixed by the schedule, so the forecaster
  ignores ``times``, ``target`` and ``label``, and has no horizon: use it with
  ``nowcast(schedule=schedules.introspection(jump_steps))`` (whose defaults
  are the paper's fractions 0.4, 0.7 and target factor 2).

  Args:
    weights: The network's Flax params (from
      :func:`init_introspection_weights` and meta-training), or ``None`` for
      fresh, untrained weights from ``key``.
    key: PRNG key for fresh weights (default ``jax.random.PRNGKey(0)``); only
      without ``weights``.

  Returns:
    A :class:`~optax_nowcast.forecasters.Forecaster` with ``window=4`` and
    ``horizon=None``.

  Raises:
    ValueError: if ``weights`` do not have the paths and shapes of
      :func:`init_introspection_weights` or hold a NaN or inf, or if both
      ``weights`` and ``key`` are given.

  Example:
    >>> import optax, optax_nowcast as onc
    >>> tx = optax.chain(optax.adam(1e-4), onc.nowcast(
    ...     onc.forecasters.introspection(),
    ...     schedule=onc.schedules.introspection([3000, 4000, 5000])))
    >>> onc.forecasters.introspection().window
    4

  References:
    Sinha et al., `Introspection: Accelerating Neural Network Training by
    Learning Weight Evolution <https://arxiv.org/abs/1704.04959>`_, ICLR 2017.
  """
  if weights is None:
    weights = init_introspection_weights(key)
  else:
    if key is not None:
      raise ValueError(
          'key initialises fresh weights; pass either weights or key, not'
          f' both, got key={key!r}'
      )
    check_params('weights', weights, _expected_params())
    _validation.finite_arrays('weights', weights)
    weights = jax.tree.map(lambda w: jnp.asarray(w, jnp.float32), weights)

  return Forecaster(
      apply=_apply,
      weights=weights,
      window=INTROSPECTION_WINDOW,
      horizon=None,
      name='introspection',
  )


def introspection_apply_batch(
    weights: Params, windows: jax.Array
) -> jax.Array:
  """The Introspection forecast of each of ``N`` windows, for meta-training.

  Equal to the per-scalar ``introspection(weights).apply`` on every row,
  vmapped; differentiable in ``weights`` and jittable.

  Args:
    weights: The network's Flax params.
    windows: ``(N, 4)`` weights at steps 0, 0.4t, 0.7t and t, in weight units.

  Returns:
    The ``(N,)`` float32 forecasts of the weights at step 2t, in weight units.

  Example:
    >>> import jax.numpy as jnp
    >>> windows = jnp.zeros((3, 4))
    >>> introspection_apply_batch(init_introspection_weights(), windows).shape
    (3,)
  """
  check_params('weights', weights, _expected_params())
  if jnp.ndim(windows) != 2 or jnp.shape(windows)[1] != INTROSPECTION_WINDOW:
    raise ValueError(
        f'windows must have shape (N, {INTROSPECTION_WINDOW}), got'
        f' {jnp.shape(windows)}'
    )
  return _apply_batch(weights, windows)
