r"""NiNo's graph-free forecaster ("WNN+", ``nino_mlp.pt``), in JAX.

Knyazev et al. (2025) release, beside their graph network, a per-weight
model trained on the same corpus: every scalar of a parameter tensor is
forecast from its own five states, the tensor's statistics and the tensor's
*type*, by one small MLP with 40 outputs (one per horizon). This module is
that model, computing what the reference computes, with its released
weights converted to a checkpoint (``forecasters.load('nino-mlp')``).

For one parameter tensor with states :math:`v^{(1)}, \dots, v^{(5)}`
(oldest first, equally spaced), NiNo scales the whole window by one mean
:math:`\mu` and one *unbiased* standard deviation :math:`\sigma` over all
its entries and states, and maps each scalar's scaled window :math:`x \in
\mathbb{R}^5` and the tensor's type :math:`\tau` (a learned embedding
:math:`e_\tau`) to 40 changes:

.. math::
  x_t = \frac{v^{(t)} - \mu}{\sigma + \varepsilon}, \qquad
  h_0 = W_0 x + b_0 + e_\tau, \qquad
  h_i = \mathrm{silu}(W_i h_{i-1} + b_i)\ (i = 1, 2, 3), \qquad
  d = W_4 h_3 + b_4 \in \mathbb{R}^{40},

with :math:`\varepsilon = 10^{-6}` (no activation between the input
projection and the first hidden layer). The forecast :math:`k` record
intervals after the newest state is read back *without* the
:math:`\varepsilon`:

.. math::
  \hat v_k = \mu + \sigma\,(x_5 + d_k).

:func:`forecast_leaf` computes exactly this for a whole tensor.
:func:`nino_mlp` wraps it in today's per-scalar
:class:`~optax_nowcast.forecasters.Forecaster`: ``leaf_scale`` gives
:math:`(\mu, \sigma + \varepsilon)`, and the interface reads the forecast
back with that same scale, i.e. :math:`\mu + (\sigma + \varepsilon)(x_5 +
d_k)`: it differs from the reference by :math:`\varepsilon (x_5 + d_k)`, a
few :math:`10^{-6}` in weight units (see ``docs/nino_port.md``).

NiNo's types (its neural graph's edge types, ``graph/graph.py`` and
``graph/graph_transformer.py``): 0 padding, 1 dense, 2 bias and anything
else, 3 conv, 4 normalisation weight, 5 word embedding, 6 position
embedding, 7/8/9 attention query/key/value, 10 residual, 11 heads, 12
reserved, 13 self-loops, 14 unused. Only 1-9 were ever trained on real
weights (10-14 are auxiliary graph edges whose outputs are discarded; 5-9
come from the language-model runs only).
"""

from __future__ import annotations

import functools
from typing import Any, Mapping, Optional

import jax
import jax.numpy as jnp
import numpy as np

from optax_nowcast import _validation
from optax_nowcast.forecasters import _nets
from optax_nowcast.forecasters import _registry
from optax_nowcast.forecasters._base import Forecaster
from optax_nowcast.forecasters._base import Standardize

#: NiNo's context: states per window.
WINDOW = 5
#: NiNo's direct multi-step outputs: horizons 1..40 record intervals.
HORIZONS = 40
#: Hidden width of the released model.
WIDTH = 128
#: Rows of the type embedding (NiNo's ``edge_types``).
NUM_TYPES = 15
#: Added to the standard deviation when scaling (NiNo's ``scale_params``),
#: not when unscaling.
EPS = 1e-6

#: NiNo's type of each of this library's leaf labels (``forecasters.LABELS``)
#: and of a few extra labels a user may give (``nowcast(labels=...)``):
#: ``'position_embedding'`` (6) and the attention projections
#: ``'query'``/``'key'``/``'value'`` (7, 8, 9). Any other label gets
#: :data:`OTHER_TYPE`, as NiNo gives any parameter it does not recognise.
TYPES = {
    'dense': 1,
    'bias': 2,
    'conv': 3,
    'norm': 4,
    'embedding': 5,
    'scalar': 2,
    'position_embedding': 6,
    'query': 7,
    'key': 8,
    'value': 9,
}
#: NiNo's type for "biases and any other params".
OTHER_TYPE = 2

Weights = dict[str, Any]


def label_type(label: str, types: Optional[Mapping[str, int]] = None) -> int:
  """NiNo's type index of a leaf label (static).

  Args:
    label: The leaf's label (``'dense'``, ``'conv'``, ... or a user label).
    types: Extra or overriding ``label -> type`` entries over :data:`TYPES`.

  Returns:
    The row of the type embedding: ``types``, else :data:`TYPES`, else
    :data:`OTHER_TYPE`.
  """
  if not isinstance(label, str):
    raise ValueError(f'label must be a string, got {label!r}')
  if types is not None and label in types:
    return types[label]
  return TYPES.get(label, OTHER_TYPE)


#: NiNo's per-tensor scaling (its ``scale_params(method='std')``):
#: :math:`(\mu, \sigma + \varepsilon)`, one mean and one unbiased
#: (``n - 1``) standard deviation over the finite entries of the whole
#: window (NiNo raises on non-finite ones instead): see
#: :class:`~optax_nowcast.forecasters.Standardize`.
leaf_scale = Standardize(ddof=1, eps=EPS)


def _shapes(window: int, width: int, depth: int, horizons: int,
            num_types: int) -> dict[str, Any]:
  return {
      'embed': (num_types, width),
      'input': {'kernel': (window, width), 'bias': (width,)},
      'hidden': [{'kernel': (width, width), 'bias': (width,)}
                 for _ in range(depth)],
      'output': {'kernel': (width, horizons), 'bias': (horizons,)},
  }


def init_weights(key: jax.Array, *, window: int = WINDOW, width: int = WIDTH,
                 depth: int = 3, horizons: int = HORIZONS,
                 num_types: int = NUM_TYPES) -> Weights:
  """Fresh weights drawn as NiNo draws them: N(0, 0.02^2) kernels, zero biases.

  Only for shapes and tests: the released weights are
  ``forecasters.load('nino-mlp')``.

  Args:
    key: A JAX PRNG key.
    window: States per scalar (NiNo: 5).
    width: Hidden units (NiNo: 128).
    depth: Hidden SiLU layers after the input projection (NiNo: 3).
    horizons: Outputs, one per horizon 1..K record intervals (NiNo: 40).
    num_types: Rows of the type embedding (NiNo: 15).

  Returns:
    The float32 weights: ``{'embed', 'input', 'hidden': [...], 'output'}``,
    kernels ``(fan_in, fan_out)`` (the transpose of PyTorch's layout).
  """
  key = _nets.check_key(key)
  for name, value in (('window', window), ('width', width), ('depth', depth),
                      ('horizons', horizons), ('num_types', num_types)):
    _validation.positive_int(name, value)
  shapes = _shapes(window, width, depth, horizons, num_types)
  leaves, treedef = jax.tree.flatten(
      shapes, is_leaf=lambda x: isinstance(x, tuple))
  keys = jax.random.split(key, len(leaves))
  out = [0.02 * jax.random.normal(k, s, jnp.float32) if len(s) == 2
         else jnp.zeros(s, jnp.float32) for k, s in zip(keys, leaves)]
  return jax.tree.unflatten(treedef, out)


def displacements(weights: Weights, x: jax.Array,
                  type_index: Any) -> jax.Array:
  """The ``(..., K)`` scaled changes of scaled windows ``x (..., W)``.

  ``type_index`` is a static int or an int array broadcasting against
  ``x[..., 0]`` (a row of ``weights['embed']`` per window).
  """
  h = (x @ weights['input']['kernel'] + weights['input']['bias']
       + weights['embed'][type_index])
  for layer in weights['hidden']:
    h = jax.nn.silu(h @ layer['kernel'] + layer['bias'])
  return h @ weights['output']['kernel'] + weights['output']['bias']


def at_horizon(changes: jax.Array, horizon: Any) -> jax.Array:
  """``changes (..., K)`` at ``horizon`` record intervals.

  At an integer ``k`` in ``1..K`` this is NiNo's choice, output ``k - 1``
  exactly; between integers it interpolates linearly, with no change at
  horizon 0; ``horizon`` is clipped to ``[0, K]``.
  """
  num = changes.shape[-1]
  padded = jnp.concatenate(
      [jnp.zeros(changes.shape[:-1] + (1,), changes.dtype), changes], -1)
  h = jnp.clip(jnp.asarray(horizon, jnp.float32), 0.0, float(num))
  low = jnp.floor(h).astype(jnp.int32)
  frac = h - low
  below = jnp.take(padded, low, axis=-1)
  above = jnp.take(padded, jnp.minimum(low + 1, num), axis=-1)
  return jnp.where(frac > 0, below + frac * (above - below), below)


def forecast_leaf(weights: Weights, window: jax.Array, horizon: Any,
                  label: str,
                  types: Optional[Mapping[str, int]] = None) -> jax.Array:
  r"""NiNo-MLP's forecast of one whole parameter tensor, as the reference.

  :math:`\mu + \sigma (x_W + d_k)` with :math:`x = (v - \mu)/(\sigma +
  \varepsilon)` (the module docstring has the maths): the reference's
  ``scale_params``, ``NiNoModel.forward(k)`` and ``unscale_params`` for one
  tensor, ``eps`` included.

  Args:
    weights: NiNo-MLP weights.
    window: ``(W, *leaf_shape)`` the tensor's states, oldest first.
    horizon: ``k``, in record intervals (NiNo: an int in ``1..40``).
    label: The leaf's label (its type by :func:`label_type`).
    types: Extra ``label -> type`` entries.

  Returns:
    float32 ``leaf_shape``: the forecast.
  """
  window = jnp.asarray(window, jnp.float32)
  finite = jnp.isfinite(window)
  count = jnp.sum(finite)
  safe = jnp.where(finite, window, 0.0)
  mu = jnp.sum(safe) / jnp.maximum(count, 1)
  sigma = jnp.sqrt(jnp.sum(jnp.where(finite, (window - mu) ** 2, 0.0))
                   / jnp.maximum(count - 1, 1))
  x = jnp.moveaxis((window - mu) / (sigma + EPS), 0, -1)  # (*shape, W)
  changes = displacements(weights, x, label_type(label, types))
  return mu + sigma * (x[..., -1] + at_horizon(changes, horizon))


def _horizon(times: jax.Array, target: jax.Array) -> jax.Array:
  """The target in record intervals: ``target / (times[-1] - times[-2])``."""
  return target / (times[-1] - times[-2])


def _apply(weights: Weights, values: jax.Array, times: jax.Array,
           target: jax.Array, label: str,
           types: Optional[Mapping[str, int]] = None) -> jax.Array:
  """The per-scalar function, on the leaf-scaled window."""
  changes = displacements(weights, values, label_type(label, types))
  return values[-1] + at_horizon(changes, _horizon(times, target))


def _check_weights(weights: Any) -> tuple[int, int, int, int, int]:
  """``(window, width, depth, horizons, num_types)`` of ``weights``."""
  try:
    window, width = np.shape(weights['input']['kernel'])
    depth = len(weights['hidden'])
    horizons = np.shape(weights['output']['kernel'])[1]
    num_types = np.shape(weights['embed'])[0]
    got = jax.tree.map(np.shape, weights)
  except (TypeError, KeyError, IndexError, ValueError) as e:
    raise ValueError(
        "nino-mlp weights must be a dict with keys 'embed', 'input',"
        " 'hidden', 'output' (see init_weights), got"
        f' {type(weights).__name__}') from e
  want = _shapes(window, width, depth, horizons, num_types)
  is_shape = lambda x: isinstance(x, tuple)
  if (jax.tree.structure(got, is_leaf=is_shape)
      != jax.tree.structure(want, is_leaf=is_shape)
      or jax.tree.leaves(got, is_leaf=is_shape)
      != jax.tree.leaves(want, is_leaf=is_shape)):
    raise ValueError(
        'nino-mlp weights do not match one network: expected shapes'
        f' {want}, got {got}')
  for leaf in jax.tree.leaves(weights):
    if not jnp.issubdtype(jnp.result_type(leaf), jnp.floating):
      raise ValueError(
          'nino-mlp weights must be floating arrays, got dtype'
          f' {jnp.result_type(leaf)}')
  if window < 2:
    raise ValueError(f'nino-mlp weights must read at least 2 states, got'
                     f' an input kernel of {window} rows')
  return window, width, depth, horizons, num_types


def nino_mlp(
    weights: Optional[Weights] = None,
    *,
    key: Optional[jax.Array] = None,
    horizon: float = 10.0,
    types: Optional[Mapping[str, int]] = None,
) -> Forecaster:
  r"""NiNo's per-weight forecaster ("WNN+"), with its released weights.

  Each leaf is scaled by the mean :math:`\mu` and unbiased standard
  deviation :math:`\sigma` of its whole window; an MLP reads each scalar's
  scaled window and a learned embedding of the leaf's type, and gives its
  change at 1..40 record intervals at once:

  .. math::
    h_0 = W_0 x + b_0 + e_\tau, \quad
    h_i = \mathrm{silu}(W_i h_{i-1} + b_i), \quad
    \hat v_k = \mu + \sigma (x_5 + (W_4 h_3 + b_4)_k).

  (The module docstring has the details, and where this per-scalar form
  differs from the reference by :math:`\varepsilon = 10^{-6}` of scale.)
  NiNo jumps every 1,000 steps from 5 states 200 steps apart, at horizons
  ``k`` = 40, 33, 26, 21, 16, 11, 8, 5, 3, 1 for a 10k-step run
  (:data:`optax_nowcast.schedules.NINO_HORIZONS`).

  Args:
    weights: NiNo-MLP weights; ``None`` draws fresh (untrained) ones from
      ``key``. Use :func:`optax_nowcast.forecasters.load` ``('nino-mlp')``
      for the released ones.
    key: The PRNG key for fresh weights (default ``jax.random.key(0)``).
    horizon: The default horizon of :func:`~optax_nowcast.nowcast`'s jumps,
      in record intervals, in ``(0, K]``; NiNo's own is the decaying
      :data:`~optax_nowcast.schedules.NINO_HORIZONS` (pass it as
      ``nowcast(horizon=...)``).
    types: Extra ``label -> NiNo type`` entries over :data:`TYPES` (e.g.
      ``{'qkv_q': 7}`` for a user label), each an int in ``[0, num_types)``.

  Returns:
    A :class:`~optax_nowcast.forecasters.Forecaster` with ``leaf_scale``
    and ``horizons=40``.

  Example:
    >>> import jax.numpy as jnp, optax, optax_nowcast as onc
    >>> f = onc.forecasters.load('nino-mlp')
    >>> f.window, f.horizons
    (5, 40)
    >>> tx = optax.chain(optax.adam(6e-3), onc.nowcast(
    ...     f, record_every=200, jump_every=5,
    ...     horizon=onc.schedules.NINO_HORIZONS))

  References:
    Knyazev et al., `Accelerating Training with Neuron Interaction and
    Nowcasting Networks <https://arxiv.org/abs/2409.04434>`_, ICLR 2025
    (code and weights: github.com/SamsungSAILMontreal/nino, MIT licence).
  """
  if weights is None:
    weights = init_weights(jax.random.key(0) if key is None else key)
  window, _, _, horizons, num_types = _check_weights(weights)
  if (isinstance(horizon, bool) or not isinstance(horizon, (int, float))
      or not 0 < horizon <= horizons):
    raise ValueError(
        f'horizon must be a number in (0, {horizons}] record intervals, got'
        f' {horizon!r}')
  if types is not None:
    if not isinstance(types, Mapping):
      raise ValueError(f'types must be a mapping label -> int, got {types!r}')
    for label, t in types.items():
      if (not isinstance(label, str) or isinstance(t, bool)
          or not isinstance(t, (int, np.integer)) or not 0 <= t < num_types):
        raise ValueError(
            f'types must map labels (str) to NiNo types in [0, {num_types}),'
            f' got {label!r}: {t!r}')
    types = {label: int(t) for label, t in types.items()}
  apply = _apply if types is None else functools.partial(_apply, types=types)
  return Forecaster(apply=apply, weights=weights, window=window,
                    horizon=float(horizon), name='nino-mlp',
                    leaf_scale=leaf_scale, horizons=int(horizons))


LEARNED = _registry.Learned(
    name='nino-mlp',
    make=nino_mlp,
    init_weights=init_weights,
    apply_batch=None,
    loss=None,
    penalty=None,
    labels=None,
    periodic=True,
    window_times=None,
    cut_samples=None,
    # Not meta-trained here: its weights are NiNo's released ones, converted
    # by this lab module (whose train_forecaster says so and how to rebuild).
    trainer='optax_nowcast.lab.meta.nino',
)
