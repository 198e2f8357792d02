r"""NiNo's graph network (``nino_no_posw.pt``), in JAX, over the neural graph.

Knyazev et al. (2025) forecast all of a network's weights at once with a
message-passing network over its neural graph (neurons as nodes, weights as
edges: :mod:`optax_nowcast.forecasters._neural_graph`). Every parameter
tensor is first scaled by the mean :math:`\mu` and unbiased deviation
:math:`\sigma` of its five states (as ``nino-mlp``); each edge :math:`e`
carries the scaled states :math:`a_e \in \mathbb{R}^{F \times 5}` of its
weights (:math:`F = 9` kernel positions, zero-padded) and a type
:math:`\tau_e`; each node :math:`n` its 8 Laplacian positions :math:`p_n`.
With :math:`[\cdot;\cdot]` concatenation and :math:`\phi` the SiLU:

.. math::
  e^0 = W_a \operatorname{vec}(a_e) + b_a + E_{\tau_e}, \qquad
  x^0_n = W_p p_n + b_p,

then for :math:`l = 0, 1`, over the edges :math:`s \to t`:

.. math::
  (\gamma, \beta) = W_f^l e^l + b_f^l, \quad
  m_e = \gamma \odot (W_m^l [x^l_t; x^l_s] + b_m^l) + \beta, \quad
  g_n = \operatorname{mean}_{e: t = n} m_e,

.. math::
  x^{l+1}_n = \phi(W_o^l (W_u^l [x^l_n; g_n] + b_u^l) + b_o^l), \quad
  e^{l+1} = W_1^l \phi(W_e^l e^l + W_s^l x^{l+1}_s + W_t^l x^{l+1}_t + b^l)
            + b_1^l,

and the forecast of the weight at position :math:`f` of edge :math:`e`,
:math:`k` record intervals ahead, is

.. math::
  \hat v = \mu + \sigma\,\bigl(a_{e,f,5} + (W_2 \phi(W_1 e^2 + b_1) + b_2)_{f,k}\bigr).

(The released network has a third message-passing layer whose output no
edge reads: it is not converted.) Edges are processed in blocks of
``block`` (three passes, recomputing the cheap edge layers) so that a
jump's temporaries stay near ``block * 128`` floats per layer whatever the
model's size; the node features are small (``N * 128``).
"""

from __future__ import annotations

import functools
import warnings
from typing import Any, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from optax_nowcast.forecasters import _nets
from optax_nowcast.forecasters import _neural_graph
from optax_nowcast.forecasters import _nino_mlp
from optax_nowcast.forecasters import _registry
from optax_nowcast.forecasters._base import Forecaster

#: States per window, horizons, hidden width, types: as ``nino-mlp``.
WINDOW = _nino_mlp.WINDOW
HORIZONS = _nino_mlp.HORIZONS
WIDTH = _nino_mlp.WIDTH
NUM_TYPES = _nino_mlp.NUM_TYPES
EPS = _nino_mlp.EPS
#: Message-passing layers whose output reaches the edges.
LAYERS = 2
#: Edges per block of the streamed forward.
BLOCK = 4096

Weights = dict[str, Any]


def _shapes(width: int = WIDTH) -> dict[str, Any]:
  dense = lambda i, o: {'kernel': (i, o), 'bias': (o,)}
  feat = _neural_graph.MAX_FEATURES
  layer = {
      'film': dense(width, 2 * width),
      'message': dense(2 * width, width),
      'post': dense(2 * width, width),
      'node': dense(width, width),
      'edge': dense(width, width),
      'source': dense(width, width),
      'target': dense(width, width),
      'edge_out': dense(width, width),
  }
  return {
      'embed': (NUM_TYPES, width),
      'node_input': dense(_neural_graph.POSITIONS, width),
      'edge_input': dense(feat * WINDOW, width),
      'layers': [layer] * LAYERS,
      'out_hidden': dense(width, width),
      'out': dense(width, feat * HORIZONS),
  }


def init_graph_weights(key: jax.Array) -> Weights:
  """Fresh graph-network weights, N(0, 0.02^2) kernels, zero biases.

  Only for shapes and tests: the released ones are ``load('nino')``.
  """
  key = _nets.check_key(key)
  shapes = _shapes()
  is_shape = lambda x: isinstance(x, tuple)
  leaves, treedef = jax.tree.flatten(shapes, is_leaf=is_shape)
  keys = jax.random.split(key, len(leaves))
  return jax.tree.unflatten(treedef, [
      0.02 * jax.random.normal(k, s, jnp.float32) if len(s) == 2
      else jnp.zeros(s, jnp.float32) for k, s in zip(keys, leaves)])


def init_weights(key: jax.Array) -> Weights:
  """Fresh ``{'graph', 'mlp'}`` weights (the graph network and the per-weight
  model that forecasts the leaves the graph does not place)."""
  k1, k2 = jax.random.split(_nets.check_key(key))
  return {'graph': init_graph_weights(k1),
          'mlp': _nino_mlp.init_weights(k2)}


def _dense(p, x):
  return x @ p['kernel'] + p['bias']


def _split(p, x, width):
  """``W [a; b] + c`` as ``W_a a + W_b b + c`` (no concatenation)."""
  return x[0] @ p['kernel'][:width] + x[1] @ p['kernel'][width:] + p['bias']


def _horizon_out(weights: Weights, features: int,
                 horizons: jax.Array) -> tuple[jax.Array, jax.Array]:
  """The output layer's columns at each horizon: ``(T, 128, F)``, ``(T, F)``.

  At an integer ``k`` in ``1..40`` these are NiNo's columns ``f * 40 + k -
  1``; between integers they interpolate (zero change at ``k = 0``).
  """
  out = weights['out']
  width = out['kernel'].shape[0]
  kernel = out['kernel'].reshape(width, -1, HORIZONS)[:, :features]
  bias = out['bias'].reshape(-1, HORIZONS)[:features]
  at = jax.vmap(lambda h: (_nino_mlp.at_horizon(kernel, h),
                           _nino_mlp.at_horizon(bias, h)))
  return at(horizons)


def network(weights: Weights, graph: _neural_graph.NeuralGraph,
            attr: jax.Array, horizons: jax.Array,
            positions: Optional[jax.Array] = None,
            block: int = BLOCK) -> jax.Array:
  """The graph network's scaled forecasts of the graph's forecast edges.

  Args:
    weights: The graph network's weights (``load('nino').weights['graph']``).
    graph: The neural graph.
    attr: float32 ``(E, F, W)`` every edge's scaled states (F = the graph's
      ``features``; the auxiliary edges' fixed values included).
    horizons: float32 ``(T,)`` horizons in record intervals.
    positions: ``(N, 8)`` node positions; default ``graph.positions``.
    block: Edges per block.

  Returns:
    float32 ``(T, graph.aux_start, F)``: the scaled forecast
    :math:`a_{e,f,W} + o_{e,f}(k)` of each weight edge.
  """
  weights = jax.tree.map(jnp.asarray, weights)
  width = weights['embed'].shape[1]
  num_nodes, num_edges = graph.num_nodes, graph.num_edges
  feat, window = attr.shape[1], attr.shape[2]
  blocks = -(-num_edges // block)
  pad = blocks * block - num_edges
  # Padded edges point at a dummy node N, whose row is dropped.
  src = jnp.asarray(np.pad(graph.src, (0, pad), constant_values=num_nodes))
  dst = jnp.asarray(np.pad(graph.dst, (0, pad), constant_values=num_nodes))
  types = jnp.asarray(np.pad(graph.edge_type, (0, pad)))
  flat = jnp.pad(attr.reshape(num_edges, feat * window), ((0, pad), (0, 0)))
  in_kernel = weights['edge_input']['kernel'][:feat * window]
  degree = np.bincount(graph.dst, minlength=num_nodes + 1).astype(np.float32)
  degree = jnp.asarray(np.maximum(degree, 1.0))[:, None]
  pos = graph.positions if positions is None else positions
  x0 = _dense(weights['node_input'], jnp.asarray(pos, jnp.float32))
  xs = [jnp.pad(x0, ((0, 1), (0, 0)))]

  def edges(level, i):
    """``e^level`` of block ``i``, and its ends."""
    rows = jax.lax.dynamic_slice_in_dim(flat, i * block, block)
    s = jax.lax.dynamic_slice_in_dim(src, i * block, block)
    t = jax.lax.dynamic_slice_in_dim(dst, i * block, block)
    kind = jax.lax.dynamic_slice_in_dim(types, i * block, block)
    e = rows @ in_kernel + weights['edge_input']['bias'] + weights['embed'][kind]
    for l in range(level):
      p, x = weights['layers'][l], xs[l + 1]
      h = (_dense(p['edge'], e) + _dense(p['source'], x)[s]
           + _dense(p['target'], x)[t])
      e = _dense(p['edge_out'], jax.nn.silu(h))
    return e, s, t

  for level in range(LAYERS):
    p, x = weights['layers'][level], xs[level]
    # Per node once: the message layer's halves for targets and sources.
    at_target = x @ p['message']['kernel'][:width]
    at_source = x @ p['message']['kernel'][width:] + p['message']['bias']

    def accumulate(i, total, level=level, p=p, at_target=at_target,
                   at_source=at_source):
      e, s, t = edges(level, i)
      gamma, beta = jnp.split(_dense(p['film'], e), 2, axis=-1)
      message = gamma * (at_target[t] + at_source[s]) + beta
      return total.at[t].add(message)

    total = jax.lax.fori_loop(0, blocks, accumulate,
                              jnp.zeros((num_nodes + 1, width), jnp.float32))
    mean = total / degree
    x_new = jax.nn.silu(_dense(p['node'], _split(p['post'], (x, mean), width)))
    xs.append(x_new.at[num_nodes].set(0.0))

  kernel, bias = _horizon_out(weights, feat, horizons)  # (T, 128, F), (T, F)
  forecast_edges = graph.aux_start
  out_blocks = -(-forecast_edges // block)

  def output(i):
    e, _, _ = edges(LAYERS, i)
    rows = jax.lax.dynamic_slice_in_dim(flat, i * block, block)
    newest = rows.reshape(block, feat, window)[:, :, -1]
    hidden = jax.nn.silu(_dense(weights['out_hidden'], e))
    return newest[None] + jnp.einsum('bh,thf->tbf', hidden, kernel) + bias[:, None]

  out = jax.lax.map(output, jnp.arange(out_blocks))  # (blocks, T, B, F)
  out = jnp.moveaxis(out, 1, 0).reshape(horizons.shape[0], -1, feat)
  return out[:, :forecast_edges]


def _statistics(window: jax.Array) -> tuple[jax.Array, jax.Array]:
  """NiNo's per-tensor ``(mu, sigma)`` over the finite entries."""
  finite = jnp.isfinite(window)
  count = jnp.sum(finite)
  mu = jnp.sum(jnp.where(finite, window, 0.0)) / jnp.maximum(count, 1)
  sq = jnp.where(finite, (window - mu) ** 2, 0.0)
  sigma = jnp.sqrt(jnp.sum(sq) / jnp.maximum(count - 1, 1))
  return mu, sigma


def _piece_edges(piece: _neural_graph.Piece, x: jax.Array) -> jax.Array:
  """``(count, F_leaf, W)`` edge features of a piece from ``x (W, *shape)``."""
  w = x.shape[0]
  if piece.kind == 'vector':
    x = x.reshape(w, -1)
    if piece.columns is not None:
      x = x[:, piece.columns[0]:piece.columns[1]]
    return jnp.moveaxis(x, 0, -1)[:, None, :]
  if piece.kind == 'conv':
    kh, kw = x.shape[1], x.shape[2]
    return jnp.transpose(x, (3, 4, 1, 2, 0)).reshape(-1, kh * kw, w)
  x = x.reshape(w, int(np.prod(x.shape[1:1 + piece.rows])), -1)
  if piece.columns is not None:
    x = x[:, :, piece.columns[0]:piece.columns[1]]
  if piece.transposed:
    x = jnp.swapaxes(x, 1, 2)
  return jnp.moveaxis(x, 0, -1).reshape(-1, 1, w)


def _piece_values(piece: _neural_graph.Piece, y: jax.Array,
                  shape: tuple[int, ...]) -> jax.Array:
  """The inverse of :func:`_piece_edges` for ``y (T, count, F)``."""
  t = y.shape[0]
  if piece.kind == 'vector':
    if piece.columns is not None:
      return y[:, :, 0]
    return y[:, :, 0].reshape(t, *shape)
  if piece.kind == 'conv':
    kh, kw, n_in, n_out = shape
    v = y[:, :, :kh * kw].reshape(t, n_in, n_out, kh, kw)
    return jnp.transpose(v, (0, 3, 4, 1, 2))
  n_in = int(np.prod(shape[:piece.rows]))
  n_out = int(np.prod(shape[piece.rows:]))
  if piece.columns is not None:
    n_out = piece.columns[1] - piece.columns[0]
  if piece.transposed:
    v = jnp.swapaxes(y[:, :, 0].reshape(t, n_out, n_in), 1, 2)
  else:
    v = y[:, :, 0].reshape(t, n_in, n_out)
  return v if piece.columns is not None else v.reshape(t, *shape)


def graph_attr(graph: _neural_graph.NeuralGraph,
               scaled: dict[int, jax.Array]) -> jax.Array:
  """Every edge's ``(E, F, W)`` features from the scaled windows of the
  placed leaves (``leaf index -> (W, *shape)``), auxiliary edges included."""
  feat = graph.features
  window = next(iter(scaled.values())).shape[0]
  parts = []
  for piece in graph.pieces:
    e = _piece_edges(piece, scaled[piece.leaf])
    parts.append(jnp.pad(e, ((0, 0), (0, feat - e.shape[1]), (0, 0))))
  aux_types = graph.edge_type[graph.aux_start:]
  values = np.zeros((aux_types.size, feat, window), np.float32)
  for t, v in _neural_graph.AUX_VALUES.items():
    values[aux_types == t, 0, :] = v
  parts.append(jnp.asarray(values))
  return jnp.concatenate(parts, axis=0)


_WARNED: set = set()


def _leaf_name(path: Sequence[str]) -> str:
  """A leaf's path for messages; a bare-array params tree has none."""
  return '/'.join(path) or '(the params array itself)'


def _warn_unplaced(graph: _neural_graph.NeuralGraph,
                   infos: Sequence[_neural_graph.LeafInfo]) -> None:
  if not graph.unplaced:
    return
  names = tuple(_leaf_name(infos[i].path) for i, _ in graph.unplaced)
  if names in _WARNED:
    return
  _WARNED.add(names)
  listed = '; '.join(f'{name} ({why})'
                     for name, (_, why) in zip(names, graph.unplaced))
  warnings.warn(
      f'nino: {len(graph.unplaced)} leaves are not in the neural graph and'
      f' are forecast per weight by nino-mlp instead: {listed}. (For a'
      ' model whose layers are not created in name order, pass'
      " load('nino', params=<params fresh from init>); for a transformer,"
      ' heads=...)', stacklevel=3)


def forecast_leaves(weights: Weights, windows: Sequence[Sequence[jax.Array]],
                    times: jax.Array, targets: jax.Array,
                    infos: Sequence[_neural_graph.LeafInfo], *,
                    heads: Optional[int] = None,
                    order: Optional[tuple] = None,
                    block: int = BLOCK) -> list[jax.Array]:
  """NiNo's forecast of every leaf at each target (the whole-leaf interface).

  Args:
    weights: ``{'graph', 'mlp'}``.
    windows: Per leaf, its ``W`` states, oldest first.
    times: ``(W,)`` the states' steps relative to the newest.
    targets: ``(T,)`` steps to forecast, relative to the newest state.
    infos: Per leaf, its :class:`~optax_nowcast.forecasters._neural_graph.LeafInfo`.
    heads: A transformer's attention heads (see :func:`nino`).
    order: The leaves' paths in forward order (see :func:`nino`).
    block: Edges per block of the streamed network.

  Returns:
    Per leaf, float32 ``(T, *shape)`` forecasts (complex64 for a complex
    leaf); ``NaN`` where a weight's own window was not finite.
  """
  if order is not None:
    infos = _neural_graph.reordered(infos, order)
  graph = _neural_graph.neural_graph(tuple(infos), heads)
  _warn_unplaced(graph, infos)
  horizons = targets / (times[-1] - times[-2])
  return forecast_on_graph(weights, graph, windows, horizons,
                           [info.label for info in infos], block=block)


def forecast_on_graph(weights: Weights, graph: _neural_graph.NeuralGraph,
                      windows: Sequence[Sequence[jax.Array]],
                      horizons: jax.Array, labels: Sequence[str], *,
                      block: int = BLOCK) -> list[jax.Array]:
  """:func:`forecast_leaves` on a given graph, at horizons in record
  intervals (``graph.positions`` may be replaced, e.g. by NiNo's own)."""
  out: list[Optional[jax.Array]] = [None] * len(windows)
  stats, scaled, finite = {}, {}, {}
  for i in graph.placed:
    v = jnp.stack([jnp.asarray(e, jnp.float32) for e in windows[i]])
    mu, sigma = _statistics(v)
    ok = jnp.isfinite(v)
    finite[i] = jnp.all(ok, axis=0)
    stats[i] = (mu, sigma)
    scaled[i] = jnp.where(ok, (v - mu) / (sigma + EPS), 0.0)
  if graph.placed:
    y = network(weights['graph'], graph, graph_attr(graph, scaled),
                horizons, block=block)
    parts: dict[int, list] = {}
    for piece in graph.pieces:
      shape = jnp.shape(windows[piece.leaf][-1])
      values = _piece_values(piece, y[:, piece.start:piece.start + piece.count],
                             shape)
      parts.setdefault(piece.leaf, []).append((piece.columns, values))
    for i, pieces in parts.items():
      pieces.sort(key=lambda c: (c[0] or (0, 0))[0])
      values = (pieces[0][1] if len(pieces) == 1
                else jnp.concatenate([v for _, v in pieces], axis=-1))
      mu, sigma = stats[i]
      out[i] = jnp.where(finite[i], mu + sigma * values, jnp.nan)
  for i, _ in graph.unplaced:
    out[i] = _per_weight(weights['mlp'], windows[i], horizons, labels[i])
  return out


def _per_weight(weights: Weights, window: Sequence[jax.Array],
                horizons: jax.Array, label: str) -> jax.Array:
  """``nino-mlp``'s whole-leaf forecast at each horizon (complex: by parts)."""
  if any(jnp.iscomplexobj(e) for e in window):
    re, im = (_per_weight(weights, [part(e) for e in window], horizons, label)
              for part in (jnp.real, jnp.imag))
    return jax.lax.complex(re, im)
  v = jnp.stack([jnp.asarray(e, jnp.float32) for e in window])
  return jax.vmap(lambda h: _nino_mlp.forecast_leaf(weights, v, h, label))(
      horizons)


def _check_weights(weights: Any) -> None:
  try:
    got = jax.tree.map(np.shape, weights['graph'])
    _nino_mlp._check_weights(weights['mlp'])  # pylint: disable=protected-access
  except (TypeError, KeyError, IndexError) as e:
    raise ValueError(
        "nino weights must be a dict {'graph': ..., 'mlp': ...} (see"
        f' init_weights), got {type(weights).__name__}') from e
  is_shape = lambda x: isinstance(x, tuple)
  want = _shapes()
  if (jax.tree.structure(got, is_leaf=is_shape)
      != jax.tree.structure(want, is_leaf=is_shape)
      or jax.tree.leaves(got, is_leaf=is_shape)
      != jax.tree.leaves(want, is_leaf=is_shape)):
    raise ValueError(
        f'nino graph weights do not match the network: expected {want},'
        f' got {got}')


def nino(
    weights: Optional[Weights] = None,
    *,
    key: Optional[jax.Array] = None,
    horizon: float = 10.0,
    heads: Optional[int] = None,
    params: Any = None,
    block: int = BLOCK,
) -> Forecaster:
  r"""NiNo's graph network: every leaf forecast at once over the neural graph.

  Scales each parameter tensor by its window's mean and unbiased deviation,
  builds the params' neural graph once per params structure (neurons as
  nodes, weights as edges, Laplacian positions;
  :func:`optax_nowcast.nino_graph` shows it), and runs NiNo's released
  message-passing network on it (the module docstring has the maths);
  leaves the graph cannot place are forecast per weight by ``nino-mlp``
  (with a warning). One forward pass gives all 40 horizons.

  Inside :func:`optax_nowcast.nowcast` this forecaster sees whole leaves
  (``forecast_leaves``); where a jump runs per scalar (params sharded over
  explicit mesh axes) it is ``nino-mlp``.

  Args:
    weights: ``{'graph': ..., 'mlp': ...}``; ``None`` draws fresh
      (untrained) ones from ``key``. The released ones:
      ``forecasters.load('nino')``.
    key: The PRNG key for fresh weights (default ``jax.random.key(0)``).
    horizon: The default horizon in record intervals, in ``(0, 40]``; NiNo's
      own schedule is :data:`optax_nowcast.schedules.NINO_HORIZONS`.
    heads: The attention heads of the model, for a transformer: its fused
      ``(D, 3D)`` q/k/v kernels are placed (split into q, k, v with head
      and residual edges, as NiNo's GPT-2 graph) only with it; without
      it they are forecast per weight.
    params: The model's params *fresh from its init* (Flax holds its
      modules in creation order there), to lay the graph out in forward
      order. Without it the modules are taken in natural name order
      (``Dense_2`` before ``Dense_10``), right for a sequential model whose
      layers were created in order (an MLP, a CNN), not in general (a
      transformer's Flax names interleave): leaves that do not chain are
      then forecast per weight, with a warning.
    block: Edges per block of the streamed forward (memory vs speed).

  Returns:
    A :class:`~optax_nowcast.forecasters.Forecaster` with
    ``forecast_leaves``, ``leaf_scale`` and ``horizons=40``.

  Example:
    >>> import optax, optax_nowcast as onc
    >>> f = onc.forecasters.load('nino')
    >>> tx = optax.chain(optax.adam(6e-3), onc.nowcast(
    ...     f, record_every=200, jump_every=5,
    ...     horizon=onc.schedules.NINO_HORIZONS, last_jump_step=9_000))

  References:
    Knyazev et al., `Accelerating Training with Neuron Interaction and
    Nowcasting Networks <https://arxiv.org/abs/2409.04434>`_, ICLR 2025
    (code and weights: github.com/SamsungSAILMontreal/nino, MIT licence).
  """
  if weights is None:
    weights = init_weights(jax.random.key(0) if key is None else key)
  _check_weights(weights)
  if (isinstance(horizon, bool) or not isinstance(horizon, (int, float))
      or not 0 < horizon <= HORIZONS):
    raise ValueError(
        f'horizon must be a number in (0, {HORIZONS}] record intervals, got'
        f' {horizon!r}')
  if isinstance(block, bool) or not isinstance(block, int) or block < 1:
    raise ValueError(f'block must be a positive int, got {block!r}')
  if heads is not None and (isinstance(heads, bool)
                            or not isinstance(heads, int) or heads < 1):
    raise ValueError(f'heads must be a positive int or None, got {heads!r}')

  def apply(w, values, times, target, label):
    return _nino_mlp._apply(w['mlp'], values, times, target, label)  # pylint: disable=protected-access

  return Forecaster(
      apply=apply, weights=weights, window=WINDOW, horizon=float(horizon),
      name='nino', leaf_scale=_nino_mlp.leaf_scale, horizons=HORIZONS,
      forecast_leaves=functools.partial(
          forecast_leaves, heads=heads, block=block,
          order=None if params is None
          else _neural_graph.forward_order(params)))


LEARNED = _registry.Learned(
    name='nino',
    make=nino,
    init_weights=init_weights,
    apply_batch=None,
    loss=None,
    penalty=None,
    labels=None,
    periodic=True,
    window_times=None,
    cut_samples=None,
    trainer='optax_nowcast.lab.meta.nino',
)
