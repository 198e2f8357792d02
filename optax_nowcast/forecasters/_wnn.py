"""WNN, the Weight Nowcaster Network (Jang et al., 2023), as a forecaster.

A two-stream MLP reads the last five records of one scalar weight, normalised
per scalar, and predicts a bounded residual that moves the weight ahead. It
holds separate weights for convolution kernels, dense kernels and biases.
This module holds the network (a Flax module whose ``apply`` is pure), the
:class:`~optax_nowcast.forecasters.Forecaster` factory :func:`wnn`, and the
pieces meta-training needs (:func:`init_wnn_weights`,
:func:`wnn_apply_batch`, :func:`wnn_l1_penalty`).
"""

from __future__ import annotations

import functools
import math
from typing import Any, Mapping, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from optax_nowcast import _validation
from optax_nowcast.forecasters import _nets
from optax_nowcast.forecasters import _registry
from optax_nowcast.forecasters._base import Forecaster

#: Records WNN reads per scalar, oldest first (the newest is the current one).
WNN_WINDOW = 5
#: The label kinds that hold their own network weights.
WNN_WEIGHT_LABELS = ('conv', 'dense', 'bias')
#: Every label :func:`wnn` forecasts, and the weights each one uses.
WNN_LABEL_WEIGHTS = {
    'conv': 'conv',
    'dense': 'dense',
    'bias': 'bias',
    'norm': 'bias',  # rank 1, like a bias: the reference forecasts it so
    'embedding': 'dense',  # rank 2, like a dense kernel
    'scalar': 'bias',
}

#: Added to the window's range before dividing by it (a constant window).
_EPSILON = 1e-5
#: The argument of the learned activation's ``exp`` is clipped to this range.
_EXP_CLIP = 30.0
#: Keras' default LeakyReLU slope, which the reference network uses.
_LEAKY_SLOPE = 0.3
#: Layers that carry the L1 penalty in the reference (inputs, projections).
_REGULARISED_LAYERS = ('input', 'project')

#: Kernels start as VarianceScaling(0.1, 'fan_in', 'uniform') (the reference).
_INIT_SCALE = 0.1
_KERNEL_INIT = nn.initializers.variance_scaling(
    _INIT_SCALE, 'fan_in', 'uniform'
)

Params = Mapping[str, Any]


def _dense(features: int, name: str) -> nn.Dense:
  return nn.Dense(
      features,
      kernel_init=_KERNEL_INIT,
      bias_init=nn.initializers.zeros,
      name=name,
  )


class ExpActivation(nn.Module):
  r"""WNN's learned "activation network" on a ``width``-vector ``h``.

  .. math::
    u = \mathrm{relu}(W_g h + b_g), \qquad
    \mathrm{out} = D_1(u) + D_2(u) \odot
      \exp\bigl(\mathrm{clip}(D_3(u) \odot h, -30, 30)\bigr),

  with :math:`W_g` a ``width -> hidden`` layer and :math:`D_1, D_2, D_3`
  ``hidden -> width`` layers. The clip keeps the ``exp`` finite in float32
  for any input (``exp(30) ~ 1e13``), so no weight's forecast turns into NaN
  through an overflow; its gradient is zero outside the range, which only
  very large network weights reach, since the windows are normalised.

  Attributes:
    hidden: Width of the bottleneck ``u``.
  """

  hidden: int = 8

  @nn.compact
  def __call__(self, h: jax.Array) -> jax.Array:
    width = h.shape[-1]
    u = nn.relu(_dense(self.hidden, 'gate')(h))
    offset = _dense(width, 'offset')(u)
    scale = _dense(width, 'scale')(u)
    rate = _dense(width, 'rate')(u)
    return offset + scale * jnp.exp(
        jnp.clip(rate * h, -_EXP_CLIP, _EXP_CLIP)
    )


class WNNStream(nn.Module):
  """One WNN stream: Dense 64, learned activation, Dense 32, LeakyReLU(0.3).

  Attributes:
    width: Width of the first layer and of the learned activation.
    out: Width of the stream's output.
  """

  width: int = 64
  out: int = 32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    h = _dense(self.width, 'input')(x)
    h = ExpActivation(name='activation')(h)
    h = _dense(self.out, 'project')(h)
    return nn.leaky_relu(h, negative_slope=_LEAKY_SLOPE)


class WNNNetwork(nn.Module):
  r"""The WNN network: normalised window ``n`` (..., 5) -> residual (...).

  Stream A reads the five normalised values, stream B their four first
  differences :math:`n_{i+1} - n_i`; their 32-vectors are concatenated and
  mapped by a Dense 64 -> 1 layer and ``tanh`` to the residual
  :math:`r \in (-1, 1)`. 9,425 parameters.
  """

  @nn.compact
  def __call__(self, normalised: jax.Array) -> jax.Array:
    a = WNNStream(name='values')(normalised)
    b = WNNStream(name='differences')(jnp.diff(normalised, axis=-1))
    head = _dense(1, 'head')(jnp.concatenate([a, b], axis=-1))
    return jnp.tanh(head)[..., 0]


_NETWORK = WNNNetwork()


@functools.cache
def _expected_params() -> Any:
  return _nets.expected_params(_NETWORK, WNN_WINDOW)


def _check_weights(weights: Any) -> None:
  if not isinstance(weights, Mapping):
    raise ValueError(
        "weights must be a dict {'conv': params, 'dense': params, 'bias':"
        ' params} of WNN network params (see init_wnn_weights), got'
        f' {type(weights).__name__}'
    )
  missing = [label for label in WNN_WEIGHT_LABELS if label not in weights]
  extra = [label for label in weights if label not in WNN_WEIGHT_LABELS]
  if missing or extra:
    raise ValueError(
        f'weights must have exactly the labels {list(WNN_WEIGHT_LABELS)};'
        f' missing {missing}, unexpected {extra}'
    )
  for label in WNN_WEIGHT_LABELS:
    _nets.check_params(f'weights[{label!r}]', weights[label], _expected_params())


def _weights_label(label: Any) -> str:
  """The weights a leaf label uses; raises (at trace time) if it has none."""
  if not isinstance(label, str) or label not in WNN_LABEL_WEIGHTS:
    raise ValueError(
        f'WNN has no weights for label {label!r}; known labels are'
        f' {list(WNN_LABEL_WEIGHTS)} (norm and scalar use the bias weights,'
        ' embedding the dense ones). Map'
        ' other leaves onto these with nowcast(labels=...), or exclude them'
        ' with nowcast(mask=...)'
    )
  return WNN_LABEL_WEIGHTS[label]


def _window_scale(values: jax.Array) -> jax.Array:
  """WNN's per-window scale ``s = 2 (max - min + 1e-5)`` over the last axis."""
  return 2.0 * (jnp.max(values, axis=-1) - jnp.min(values, axis=-1)
                + _EPSILON)


def _forecast(params: Params, values: jax.Array) -> jax.Array:
  """The WNN forecast of each window in ``values`` (..., 5), in weight units."""
  values = jnp.asarray(values, jnp.float32)
  oldest = values[..., :1]
  scale = _window_scale(values)[..., None]
  normalised = (values - oldest) / scale
  residual = _NETWORK.apply({'params': params}, normalised)
  # o + s (n[-1] + r) == x[-1] + s r; the second form avoids cancellation.
  return values[..., -1] + scale[..., 0] * residual


def _apply(
    weights: Mapping[str, Params],
    values: jax.Array,
    times: jax.Array,
    target: jax.Array,
    label: str,
) -> jax.Array:
  """:func:`wnn`'s ``Forecaster.apply``: one scalar's forecast."""
  del times, target  # trained for one horizon; see wnn's docstring
  if jnp.shape(values) != (WNN_WINDOW,):
    raise ValueError(
        f'WNN forecasts one scalar from {WNN_WINDOW} values, got values of'
        f' shape {jnp.shape(values)}'
    )
  return _forecast(weights[_weights_label(label)], values)


@functools.partial(jax.jit, static_argnums=2)
def _apply_batch(
    weights: Mapping[str, Params], windows: jax.Array, label: str
) -> jax.Array:
  times = jnp.arange(1 - WNN_WINDOW, 1, dtype=jnp.float32)
  return jax.vmap(
      lambda values: _apply(weights, values, times, jnp.float32(0), label)
  )(windows)


@jax.jit
def _l1(
    weights: Mapping[str, Params], kernel: jax.Array, bias: jax.Array
) -> jax.Array:
  total = jnp.zeros([], jnp.float32)
  for label in WNN_WEIGHT_LABELS:
    leaves, _ = jax.tree_util.tree_flatten_with_path(weights[label])
    for path, leaf in leaves:
      names = [getattr(k, 'key', None) for k in path]
      if not any(n in _REGULARISED_LAYERS for n in names):
        continue
      factor = kernel if names[-1] == 'kernel' else bias
      total += factor * jnp.sum(jnp.abs(jnp.asarray(leaf, jnp.float32)))
  return total


@functools.cache
def _init_fn():
  def init(key):
    trees = _nets.uniform_init(
        key, _expected_params(), _INIT_SCALE, len(WNN_WEIGHT_LABELS)
    )
    return dict(zip(WNN_WEIGHT_LABELS, trees))

  return jax.jit(init)


def init_wnn_weights(key: Optional[jax.Array] = None) -> dict[str, Params]:
  """Fresh, untrained WNN weights: one network per label kind.

  Kernels follow ``VarianceScaling(0.1, 'fan_in', 'uniform')`` (the reference
  initialiser, also :class:`WNNNetwork`'s), biases are zero; the three
  networks are independent. All kernels come from one random draw (see
  :func:`~optax_nowcast.forecasters._nets.uniform_init`), so the values differ from ``WNNNetwork().init``'s,
  but not their distribution.

  Args:
    key: A JAX PRNG key (default ``jax.random.PRNGKey(0)``).

  Returns:
    ``{'conv': params, 'dense': params, 'bias': params}``, each a Flax params
    dict of 9,425 float32 values.

  Example:
    >>> import jax
    >>> weights = init_wnn_weights(jax.random.PRNGKey(1))
    >>> sorted(weights)
    ['bias', 'conv', 'dense']
    >>> sum(w.size for w in jax.tree.leaves(weights['conv']))
    9425
  """
  key = _nets.check_key(jax.random.PRNGKey(0) if key is None else key)
  return _init_fn()(key)


def wnn(
    weights: Optional[Mapping[str, Params]] = None,
    *,
    key: Optional[jax.Array] = None,
    horizon: float = 5.0,
) -> Forecaster:
  r"""WNN: a learned per-scalar forecaster from the last five records.

  For one scalar weight with records :math:`x_0, \dots, x_4` (oldest first,
  :math:`x_4` the current value):

  .. math::
    o = x_0, \qquad s = 2\,(\max_i x_i - \min_i x_i + 10^{-5}), \qquad
    n_i = (x_i - o) / s,

    r = \tanh\bigl(w^\top [A(n); B(\Delta n)] + b\bigr), \qquad
    \hat x = o + s\,(n_4 + r) = x_4 + s\,r,

  where :math:`A` and :math:`B` are the two streams (Dense 64, learned
  exp-activation, Dense 32, LeakyReLU) of :class:`WNNNetwork` and
  :math:`\Delta n` the four first differences. Hence
  :math:`|\hat x - x_4| < s`: one jump moves a weight by less than twice its
  window's range, and the forecast is affine-equivariant,
  :math:`\hat x(a x + b) = a \hat x(x) + b` for :math:`a > 0`, up to the
  :math:`10^{-5}` in :math:`s`.

  Every label goes through this normalised path. (The reference code adds the
  bias network's prediction to the raw, un-normalised last value instead; that
  is a bug, corrected here.) Labels ``'conv'``, ``'dense'`` and ``'bias'`` use
  their own weights, ``'norm'`` and ``'scalar'`` use the bias weights,
  ``'embedding'`` the dense ones, and any other label
  raises a ``ValueError`` when the step is traced.

  The network reads the values only: ``times`` and ``target`` are ignored,
  because WNN is trained for one horizon. Use it with the periodic schedule it
  was trained for (a record every ``record_every`` steps, ``horizon`` record
  intervals ahead); passing another ``horizon`` to ``nowcast`` does not change
  its forecasts.

  Args:
    weights: ``{'conv': params, 'dense': params, 'bias': params}`` (as made by
      :func:`init_wnn_weights` and meta-training), or ``None`` for fresh,
      untrained weights from ``key``.
    key: PRNG key for fresh weights (default ``jax.random.PRNGKey(0)``); only
      without ``weights``.
    horizon: The horizon, in record intervals beyond the newest record, that
      the weights were trained to forecast (> 0); ``nowcast``'s default.

  Returns:
    A :class:`~optax_nowcast.forecasters.Forecaster` with ``window=5``.

  Raises:
    ValueError: if ``weights`` do not have the labels, paths and shapes of
      :func:`init_wnn_weights` or hold a NaN or inf, if both ``weights`` and
      ``key`` are given, or if ``horizon`` is not a finite number > 0.

  Example:
    >>> import optax, optax_nowcast as onc
    >>> f = onc.forecasters.wnn()  # untrained: pass meta-trained weights
    >>> f.window, f.horizon
    (5, 5.0)
    >>> tx = optax.chain(optax.adam(1e-3), onc.nowcast(
    ...     f, record_every=100, jump_every=5))

  References:
    Jang et al., `Learning to Boost Training by Periodic Nowcasting Near Future
    Weights <https://proceedings.mlr.press/v202/jang23a.html>`_, ICML 2023.
  """
  horizon = _validation.positive_float('horizon', horizon)
  if weights is None:
    weights = init_wnn_weights(key)
  else:
    if key is not None:
      raise ValueError(
          'key initialises fresh weights; pass either weights or key, not'
          f' both, got key={key!r}'
      )
    _check_weights(weights)
    _validation.finite_arrays('weights', weights)
    weights = {
        label: jax.tree.map(
            lambda w: jnp.asarray(w, jnp.float32), weights[label]
        )
        for label in WNN_WEIGHT_LABELS
    }

  return Forecaster(
      apply=_apply,
      weights=weights,
      window=WNN_WINDOW,
      horizon=horizon,
      name='wnn',
  )


def wnn_apply_batch(
    weights: Mapping[str, Params], windows: jax.Array, label: str
) -> jax.Array:
  """The WNN forecast of each of ``N`` windows, for meta-training.

  Equal to the per-scalar ``wnn(weights).apply`` on every row, vmapped;
  differentiable in ``weights`` (and jittable, with ``label`` static).

  Args:
    weights: ``{'conv': params, 'dense': params, 'bias': params}``.
    windows: ``(N, 5)`` records, oldest first, one scalar per row.
    label: A key of :data:`WNN_LABEL_WEIGHTS` (``'conv'``, ``'dense'``,
      ``'bias'``, ``'norm'``, ``'embedding'``, ``'scalar'``).

  Returns:
    The ``(N,)`` float32 forecasts, in weight units.

  Example:
    >>> import jax.numpy as jnp
    >>> windows = jnp.array([[0.0, 1.0, 2.0, 3.0, 4.0], [5.0] * 5])
    >>> forecasts = wnn_apply_batch(init_wnn_weights(), windows, 'conv')
    >>> forecasts.shape
    (2,)
    >>> bool(abs(forecasts[0] - 4.0) < 8.0)  # |forecast - x[-1]| < s = 8.00002
    True
  """
  _check_weights(weights)
  _weights_label(label)
  if jnp.ndim(windows) != 2 or jnp.shape(windows)[1] != WNN_WINDOW:
    raise ValueError(
        f'windows must have shape (N, {WNN_WINDOW}), got {jnp.shape(windows)}'
    )
  return _apply_batch(weights, windows, label)


def wnn_l1_penalty(
    weights: Mapping[str, Params], kernel: float = 1e-6, bias: float = 0.1
) -> jax.Array:
  r"""The L1 regularisation of WNN's meta-training loss.

  .. math::
    \lambda_k \sum |W| + \lambda_b \sum |b|

  over the kernels :math:`W` and biases :math:`b` of the layers the reference
  regularises: each stream's input layer (Dense 64) and projection (Dense
  32), summed over the three label networks. The activation networks and the
  output layer are not penalised.

  Args:
    weights: ``{'conv': params, 'dense': params, 'bias': params}``.
    kernel: :math:`\lambda_k` (>= 0), 1e-6 in the paper.
    bias: :math:`\lambda_b` (>= 0), 0.1 in the paper.

  Returns:
    The float32 scalar penalty, to add to the L1 forecast loss.

  Example:
    >>> import jax, numpy as np
    >>> ones = jax.tree.map(np.ones_like, init_wnn_weights())
    >>> round(float(wnn_l1_penalty(ones, kernel=0.0, bias=1.0)))  # 3 x 192
    576
  """
  _check_weights(weights)
  kernel = _validation.non_negative_float('kernel', kernel)
  bias = _validation.non_negative_float('bias', bias)
  return _l1(weights, kernel, bias)


# ----------------------------------------------------------------------------
# Meta-training: samples, loss, and the registry entry.


def _loss(weights: Mapping[str, Params], windows: jax.Array,
          targets: jax.Array, label: str) -> jax.Array:
  """Mean L1 error in WNN's normalised units (divided by the window scale).

  As the paper's Keras model trains on normalised data; the L1 weight
  penalty (:func:`wnn_l1_penalty`) is added once per step by the trainer.
  """
  pred = wnn_apply_batch(weights, windows, label)
  return jnp.mean(jnp.abs(pred - targets) / _window_scale(windows))


def cut_samples(flat: np.ndarray, *, rng: np.random.Generator, count: int,
                record_every: int, horizon: int
                ) -> Optional[tuple[np.ndarray, np.ndarray]]:
  """WNN samples from one label kind of one run.

  Windows of 5 records ``record_every`` snapshots apart, oldest first, and
  the value ``horizon`` records after the newest; scalars and window
  positions drawn uniformly at random.

  Args:
    flat: ``(snapshots, scalars)`` trajectory, snapshots evenly spaced.
    rng: The random source.
    count: How many samples.
    record_every: Snapshots between records.
    horizon: Records between the newest window entry and the target.

  Returns:
    ``(windows (count, 5), targets (count,))`` float32, or ``None`` if the
    run is too short for one window and its target.
  """
  span = (WNN_WINDOW - 1 + horizon) * record_every
  starts = flat.shape[0] - span
  if starts <= 0:
    return None
  t0 = rng.integers(0, starts, count)
  col = rng.integers(0, flat.shape[1], count)
  offsets = np.arange(WNN_WINDOW) * record_every
  windows = flat[t0[:, None] + offsets[None, :], col[:, None]]
  targets = flat[t0 + span, col]
  return windows.astype(np.float32), targets.astype(np.float32)


def _window_times(horizon: Optional[float]) -> tuple[np.ndarray, float]:
  return np.arange(1 - WNN_WINDOW, 1, dtype=np.float32), float(horizon)


LEARNED = _registry.Learned(
    name='wnn',
    make=wnn,
    init_weights=init_wnn_weights,
    apply_batch=wnn_apply_batch,
    loss=_loss,
    penalty=wnn_l1_penalty,
    labels=WNN_WEIGHT_LABELS,
    periodic=True,
    window_times=_window_times,
    cut_samples=cut_samples,
)
