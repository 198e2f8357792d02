r"""A multi-horizon per-scalar forecaster, scaled per leaf (NiNo's "WNN+").

Each leaf is scaled as a whole by the mean :math:`\mu` and standard
deviation :math:`\sigma` of all its elements over the window (NiNo's
scaling, computed once per leaf per jump by
:attr:`~optax_nowcast.forecasters.Forecaster.leaf_scale`). A small MLP then
maps the scaled window :math:`x \in \mathbb{R}^W` of one scalar, plus a
learned embedding :math:`e_\ell` of its leaf's kind :math:`\ell`, to
displacements for ``K`` horizons at once:

.. math::
  h_0 = \mathrm{silu}(W_0 x + b_0 + e_\ell), \quad
  h_{i} = \mathrm{silu}(W_i h_{i-1} + b_i), \quad
  d = W_o h_{D-1} + b_o \in \mathbb{R}^K,

where :math:`d_k` is the predicted change of the scaled weight ``k`` record
intervals after the newest entry. The forecast at a target of :math:`\kappa`
record intervals interpolates :math:`d` linearly (with :math:`d_0 = 0`,
clipped to ``[0, K]``) and is :math:`x_W + d_\kappa`, in weight units
:math:`\mu + \sigma (x_W + d_\kappa)`: an unbounded residual in the
leaf's scale. The output layer starts at zero, so a fresh forecaster is
:func:`~optax_nowcast.forecasters.last`.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np

from optax_nowcast import _validation
from optax_nowcast.forecasters import _nets
from optax_nowcast.forecasters import _registry
from optax_nowcast.forecasters._base import Forecaster
from optax_nowcast.forecasters._base import Standardize
from optax_nowcast.forecasters._base import LABELS

#: The leaf kinds with an embedding of their own; any other label shares
#: the last row, ``'other'``.
EMBEDDED_LABELS = LABELS + ('other',)

#: NiNo's horizons: 1 to 40 snapshot intervals.
DEFAULT_HORIZONS = 40

Weights = dict[str, Any]


def label_index(label: str) -> int:
  """The embedding row of ``label`` (static): its kind, else ``'other'``."""
  if not isinstance(label, str):
    raise ValueError(f'label must be a string, got {label!r}')
  return EMBEDDED_LABELS.index(label) if label in LABELS else len(LABELS)


#: Mean and standard deviation of a leaf over all elements and entries (the
#: finite ones), scale ``1`` for a leaf without spread: see
#: :class:`~optax_nowcast.forecasters.Standardize`.
leaf_scale = Standardize()


def _shapes(window: int, width: int, depth: int,
            horizons: int) -> dict[str, Any]:
  shapes: dict[str, Any] = {
      'embed': (len(EMBEDDED_LABELS), width),
      'input': {'kernel': (window, width), 'bias': (width,)},
      'hidden': [{'kernel': (width, width), 'bias': (width,)}
                 for _ in range(depth - 1)],
      'output': {'kernel': (width, horizons), 'bias': (horizons,)},
  }
  return shapes


def init_weights(key: jax.Array, *, window: int = 5, width: int = 64,
                 depth: int = 3, horizons: int = DEFAULT_HORIZONS) -> Weights:
  """Fresh weights: fan-in uniform kernels, zero biases, zero output layer.

  The zero output layer makes a fresh forecaster predict no change (it is
  :func:`~optax_nowcast.forecasters.last` until trained).

  Args:
    key: A JAX PRNG key.
    window: Values per scalar the forecaster reads (>= 2).
    width: Hidden units per layer.
    depth: Hidden layers (>= 1).
    horizons: ``K``, the number of horizons forecast at once (1..K record
      intervals).

  Returns:
    The float32 weights.
  """
  key = _nets.check_key(key)
  window = _validation.positive_int('window', window)
  if window < 2:
    raise ValueError(f'window must be at least 2, got {window}')
  width = _validation.positive_int('width', width)
  depth = _validation.positive_int('depth', depth)
  horizons = _validation.positive_int('horizons', horizons)
  shapes = _shapes(window, width, depth, horizons)
  keys = iter(jax.random.split(key, depth + 1))

  def dense(shape):
    fan_in = shape['kernel'][0]
    limit = math.sqrt(3.0 / fan_in)
    return {'kernel': jax.random.uniform(next(keys), shape['kernel'],
                                         jnp.float32, -limit, limit),
            'bias': jnp.zeros(shape['bias'], jnp.float32)}

  weights = {
      'embed': jnp.zeros(shapes['embed'], jnp.float32),
      'input': dense(shapes['input']),
      'hidden': [dense(s) for s in shapes['hidden']],
      'output': {'kernel': jnp.zeros(shapes['output']['kernel'], jnp.float32),
                 'bias': jnp.zeros(shapes['output']['bias'], jnp.float32)},
  }
  return weights


def _network(weights: Weights, values: jax.Array,
             embedding: jax.Array) -> jax.Array:
  h = values @ weights['input']['kernel'] + weights['input']['bias']
  h = jax.nn.silu(h + embedding)
  for layer in weights['hidden']:
    h = jax.nn.silu(h @ layer['kernel'] + layer['bias'])
  return h @ weights['output']['kernel'] + weights['output']['bias']


def displacements(weights: Weights, values: jax.Array,
                  label: str) -> jax.Array:
  """The ``(..., K)`` predicted changes of scaled windows ``(..., W)``."""
  return _network(weights, values, weights['embed'][label_index(label)])


def displacements_by_row(weights: Weights, values: jax.Array,
                         rows: jax.Array) -> jax.Array:
  """As :func:`displacements` for windows ``(N, W)`` of many kinds at once.

  ``rows (N,)`` are the embedding rows (:func:`label_index`) of each
  window's leaf kind: meta-training mixes kinds in one batch.
  """
  return _network(weights, values, weights['embed'][rows])


def at_horizon(changes: jax.Array, horizon: jax.Array) -> jax.Array:
  """``changes (..., K)`` read at ``horizon`` record intervals.

  Linear interpolation between the integer horizons, with no change at
  horizon 0; ``horizon`` is clipped to ``[0, K]``.
  """
  num = changes.shape[-1]
  padded = jnp.concatenate(
      [jnp.zeros(changes.shape[:-1] + (1,), changes.dtype), changes], -1)
  h = jnp.clip(jnp.asarray(horizon, jnp.float32), 0.0, float(num))
  low = jnp.minimum(jnp.floor(h), num - 1).astype(jnp.int32)
  frac = h - low
  below = jnp.take(padded, low, axis=-1)
  above = jnp.take(padded, low + 1, axis=-1)
  return below + frac * (above - below)


def record_intervals(times: jax.Array, target: jax.Array) -> jax.Array:
  """The target in record intervals: ``target / (times[-1] - times[-2])``."""
  spacing = times[-1] - times[-2]
  return target / spacing


def _apply(weights: Weights, values: jax.Array, times: jax.Array,
           target: jax.Array, label: str) -> jax.Array:
  """The per-scalar function (on the leaf-scaled window)."""
  changes = displacements(weights, values, label)
  return values[-1] + at_horizon(changes, record_intervals(times, target))


def _check_weights(weights: Any) -> tuple[int, int, int, int]:
  """``(window, width, depth, horizons)`` of ``weights``, or raises."""
  try:
    window, width = np.shape(weights['input']['kernel'])
    depth = len(weights['hidden']) + 1
    horizons = np.shape(weights['output']['kernel'])[1]
    got = jax.tree.map(np.shape, weights)
  except (TypeError, KeyError, IndexError, ValueError) as e:
    raise ValueError(
        "multihorizon weights must be a dict with keys 'embed', 'input',"
        " 'hidden', 'output' (see init_weights), got"
        f' {type(weights).__name__}') from e
  want = _shapes(window, width, depth, horizons)
  is_shape = lambda x: isinstance(x, tuple)
  if (jax.tree.structure(got, is_leaf=is_shape)
      != jax.tree.structure(want, is_leaf=is_shape)
      or jax.tree.leaves(got, is_leaf=is_shape)
      != jax.tree.leaves(want, is_leaf=is_shape)):
    raise ValueError(
        'multihorizon weights do not match one network: expected shapes'
        f' {want}, got {got}')
  for leaf in jax.tree.leaves(weights):
    if not jnp.issubdtype(jnp.result_type(leaf), jnp.floating):
      raise ValueError(
          'multihorizon weights must be floating arrays, got dtype'
          f' {jnp.result_type(leaf)}')
  return window, width, depth, horizons


def multihorizon(
    weights: Optional[Weights] = None,
    *,
    key: Optional[jax.Array] = None,
    window: int = 5,
    width: int = 64,
    depth: int = 3,
    horizons: int = DEFAULT_HORIZONS,
    horizon: float = 10.0,
) -> Forecaster:
  r"""A per-scalar forecaster of many horizons at once, scaled per leaf.

  NiNo's graph-free variant ("WNN+", Knyazev et al., 2025): each leaf is
  scaled by its window's mean and standard deviation, and a small MLP with
  a learned embedding of the leaf's kind maps one scalar's scaled window to
  its change at ``1 .. horizons`` record intervals ahead (see the module
  docstring for the maths). Any horizon of the set, and any in between, is
  read from the same outputs.

  Args:
    weights: Trained weights (e.g. from :func:`init_weights` and
      meta-training); ``None`` draws fresh ones from ``key``.
    key: The PRNG key for fresh weights (default ``jax.random.key(0)``).
    window: Values per scalar (fresh weights only; else read from weights).
    width: Hidden units (fresh weights only).
    depth: Hidden layers (fresh weights only).
    horizons: ``K`` (fresh weights only).
    horizon: The default horizon of :func:`~optax_nowcast.nowcast`'s jumps,
      in record intervals, in ``(0, K]``.

  Returns:
    A :class:`~optax_nowcast.forecasters.Forecaster` with ``leaf_scale``.

  Example:
    >>> import jax, jax.numpy as jnp, optax_nowcast as onc
    >>> f = onc.forecasters.multihorizon(key=jax.random.key(0))
    >>> values = jnp.array([1.0, 2.0, 3.0, 4.0, 5.0])
    >>> times = jnp.arange(-4.0, 1.0) * 100  # records 100 steps apart
    >>> float(f.apply(f.weights, values, times, 1000.0, 'dense'))  # fresh
    5.0

  References:
    Knyazev et al., `Accelerating Training with Neuron Interaction and
    Nowcasting Networks <https://arxiv.org/abs/2409.04434>`_, ICLR 2025.
  """
  if weights is None:
    weights = init_weights(jax.random.key(0) if key is None else key,
                           window=window, width=width, depth=depth,
                           horizons=horizons)
  window, _, _, horizons = _check_weights(weights)
  if (isinstance(horizon, bool) or not isinstance(horizon, (int, float))
      or not 0 < horizon <= horizons):
    raise ValueError(
        f'horizon must be a number in (0, {horizons}] record intervals, got'
        f' {horizon!r}')
  return Forecaster(apply=_apply, weights=weights, window=window,
                    horizon=float(horizon), name='multihorizon',
                    leaf_scale=leaf_scale, horizons=int(horizons))



LEARNED = _registry.Learned(
    name='multihorizon',
    make=multihorizon,
    init_weights=init_weights,
    apply_batch=None,
    loss=None,
    penalty=None,
    labels=None,
    periodic=True,
    window_times=None,
    cut_samples=None,
    trainer='optax_nowcast.lab.meta.horizons',
)
