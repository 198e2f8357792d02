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
import numpy as np

from optax_nowcast import _validation
from optax_nowcast.forecasters import _nets
from optax_nowcast.forecasters import _registry
from optax_nowcast.forecasters._base import Forecaster

#: Inputs per scalar: the weight at steps 0, 0.4t, 0.7t and t.
INTROSPECTION_WINDOW = 4
#: Weights enter (and leave) the network multiplied by this factor.
INTROSPECTION_SCALE = 1000.0
#: The inputs' steps as fractions of the jump step t (besides 0 and t).
INTROSPECTION_FRACTIONS = (0.4, 0.7)
#: The forecast is of step ``INTROSPECTION_TARGET_FACTOR * t``.
INTROSPECTION_TARGET_FACTOR = 2.0

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
  return _nets.expected_params(_NETWORK, INTROSPECTION_WINDOW)


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
  return jax.jit(lambda key: _nets.uniform_init(key, _expected_params(), 1.0, 1)[0])


def init_introspection_weights(key: Optional[jax.Array] = None) -> Params:
  """Fresh, untrained Introspection weights (Flax params of 241 values).

  LeCun-uniform kernels (the distribution of :class:`IntrospectionNetwork`'s
  initialiser, drawn in one go by
  :func:`~optax_nowcast.forecasters._nets.uniform_init`), zero biases.

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
  key = _nets.check_key(jax.random.PRNGKey(0) if key is None else key)
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
    _nets.check_params('weights', weights, _expected_params())
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
  _nets.check_params('weights', weights, _expected_params())
  if jnp.ndim(windows) != 2 or jnp.shape(windows)[1] != INTROSPECTION_WINDOW:
    raise ValueError(
        f'windows must have shape (N, {INTROSPECTION_WINDOW}), got'
        f' {jnp.shape(windows)}'
    )
  return _apply_batch(weights, windows)


# ----------------------------------------------------------------------------
# Meta-training: samples, loss, and the registry entry.


def _loss(weights: Params, windows: jax.Array, targets: jax.Array,
          label: str) -> jax.Array:
  """Mean L1 error on weights scaled by 1000 (the network's own units)."""
  del label  # one network for every label
  pred = introspection_apply_batch(weights, windows)
  return jnp.mean(jnp.abs(pred - targets)) * INTROSPECTION_SCALE


#: Jump steps are drawn from multiples of this many snapshot intervals.
_T_GRID = 10


def cut_samples(flat: np.ndarray, *, rng: np.random.Generator, count: int,
                record_every: int = 1, horizon: Optional[int] = None
                ) -> Optional[tuple[np.ndarray, np.ndarray]]:
  """Introspection samples (weights at 0, 0.4t, 0.7t, t -> 2t) of one kind.

  ``t`` is drawn from the multiples of 10 snapshot intervals with ``2t``
  within the run. Scalars are drawn stratified by how much they moved
  between 0 and t: half from the top half of movers, a quarter from the
  25th-50th percentile, a quarter from the bottom quarter (our reading of
  the paper's 50/25/25 split).

  Args:
    flat: ``(snapshots, scalars)`` trajectory, snapshot 0 the initial one.
    rng: The random source.
    count: How many samples.
    record_every: Unused: the schedule fixes the inputs.
    horizon: Unused: the schedule fixes the target.

  Returns:
    ``(windows (count, 4), targets (count,))`` float32, or ``None`` if the
    run is too short.
  """
  del record_every, horizon
  ts = np.arange(_T_GRID, (flat.shape[0] - 1) // 2 + 1, _T_GRID)
  if not len(ts):
    return None
  t = rng.choice(ts, count)
  cols = _stratified_columns(flat, t, rng)
  inner = [t * round(f * _T_GRID) // _T_GRID for f in INTROSPECTION_FRACTIONS]
  idx = np.stack([np.zeros_like(t), *inner, t], axis=1)
  windows = flat[idx, cols[:, None]]
  targets = flat[int(INTROSPECTION_TARGET_FACTOR) * t, cols]
  return windows.astype(np.float32), targets.astype(np.float32)


def _stratified_columns(flat: np.ndarray, t: np.ndarray,
                        rng: np.random.Generator) -> np.ndarray:
  """For each drawn t, a scalar chosen by the 50/25/25 movement strata."""
  cols = np.empty(len(t), np.int64)
  num = flat.shape[1]
  strata = rng.choice(3, len(t), p=[0.5, 0.25, 0.25])
  for value in np.unique(t):
    where = np.nonzero(t == value)[0]
    order = np.argsort(np.abs(flat[value] - flat[0]))  # ascending movement
    bounds = {0: (num // 2, num), 1: (num // 4, num // 2), 2: (0, num // 4)}
    for stratum, (lo, hi) in bounds.items():
      pick = where[strata[where] == stratum]
      hi = max(hi, lo + 1)
      cols[pick] = order[rng.integers(lo, min(hi, num), len(pick))]
  return cols


def _window_times(horizon: Optional[float]) -> tuple[np.ndarray, float]:
  """Inputs at 0, 0.4t, 0.7t, t and the target 2t, in units of t, from t."""
  del horizon
  times = np.array([0.0, *INTROSPECTION_FRACTIONS, 1.0], np.float32) - 1.0
  return times, INTROSPECTION_TARGET_FACTOR - 1.0


LEARNED = _registry.Learned(
    name='introspection',
    make=introspection,
    init_weights=init_introspection_weights,
    apply_batch=lambda weights, windows, label: introspection_apply_batch(
        weights, windows),
    loss=_loss,
    penalty=lambda weights: jnp.zeros([], jnp.float32),
    labels=None,
    periodic=False,
    window_times=_window_times,
    cut_samples=cut_samples,
)
