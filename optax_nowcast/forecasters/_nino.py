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
edge reads: it is not converted.) Nothing the size of the model is copied
(:func:`network`): edges are streamed in blocks of up to ``block``, each
read in place from its leaf's params, updates and history slots, in five
passes (two for every tensor's :math:`\mu, \sigma`, one per message-passing
layer, one for the forecasts, recomputing the cheap edge layers); a jump's
temporaries are the forecasts' buffer (``T`` x the params), a block's
intermediates and the node features (``N * 128``).
"""

from __future__ import annotations

import functools
import warnings
from typing import Any, NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from optax_nowcast.forecasters import _nets
from optax_nowcast.forecasters import _neural_graph
from optax_nowcast.forecasters import _nino_mlp
from optax_nowcast.forecasters import _registry
from optax_nowcast.forecasters._base import Forecaster
from optax_nowcast.forecasters._base import Stored
from optax_nowcast.forecasters._base import entry_take
from optax_nowcast.forecasters._base import entry_value

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


class _Layout(NamedTuple):
  """The static tables of a streamed forward (numpy; see :func:`_layout`).

  Attributes:
    pieces: int32 ``(P + 1, 10)``: per piece (the last row: the auxiliary
      edges) its placed leaf's slot (-1: none), ``n_in``, ``n_out``,
      ``n_cols``, first column, transposed, plane, features, first edge,
      edge count (see :func:`_elements`).
    rows: int32 ``(R, 3)``: per block, its piece, its first edge within the
      piece, and its first edge not read by the block before (a piece's
      last block ends at its end and overlaps the one before).
    forecast_rows: The blocks of the weight pieces (the first rows); the
      auxiliary edges' blocks follow.
    aux: float32 ``(E_aux + block, F, W)`` the auxiliary edges' features.
  """

  pieces: np.ndarray
  rows: np.ndarray
  forecast_rows: int
  aux: np.ndarray


def _shape(entry: Any) -> tuple[int, ...]:
  return entry.shape if isinstance(entry, Stored) else tuple(jnp.shape(entry))


def _piece_row(piece: _neural_graph.Piece, shape: tuple[int, ...],
               slot: int) -> list[int]:
  """A piece's row of :attr:`_Layout.pieces`."""
  size = int(np.prod(shape))
  c0 = piece.columns[0] if piece.columns is not None else 0
  if piece.kind == 'conv':
    kh, kw, n_in, n_out = shape
    row = [slot, 1, piece.count, piece.count, 0, 0, n_in * n_out, kh * kw]
  elif piece.kind == 'vector':
    row = [slot, 1, piece.count, size, c0, 0, 0, 1]
  else:
    n_in = int(np.prod(shape[:piece.rows]))
    n_cols = size // n_in
    n_out = piece.count // n_in
    row = [slot, n_in, n_out, n_cols, c0, int(piece.transposed), 0, 1]
  return row + [piece.start, piece.count]


def _blocks(piece: int, count: int, block: int) -> list[tuple[int, int, int]]:
  """``(piece, offset, first new)`` of the blocks that cover ``count`` edges."""
  if count <= block:
    return [(piece, 0, 0)]
  return [(piece, min(start, count - block), start - min(start, count - block))
          for start in range(0, count, block)]


#: The cost of a block beyond its rows, in rows (for :func:`block_size`).
BLOCK_OVERHEAD = 256


def block_size(counts: Sequence[int], largest: int) -> int:
  """The block size for pieces of ``counts`` edges: the power of two up to
  ``largest`` with the fewest rows computed, each block costing
  :data:`BLOCK_OVERHEAD` rows more (a piece's blocks are its own, so a
  small piece pads a large block: small models take small blocks)."""
  sizes = [2 ** k for k in range(4, max(largest, 16).bit_length())
           if 2 ** k <= largest] or [largest]
  cost = lambda b: sum(-(-c // b) for c in counts) * (b + BLOCK_OVERHEAD)
  return min(sizes, key=lambda b: (cost(b), -b))


def _layout(graph: _neural_graph.NeuralGraph, shapes: dict[int, tuple],
            window: int, block: int) -> _Layout:
  """The static tables that :func:`network` streams the graph by."""
  slot = {leaf: k for k, leaf in enumerate(graph.placed)}
  pieces = [_piece_row(p, shapes[p.leaf], slot[p.leaf]) for p in graph.pieces]
  num_aux = graph.num_edges - graph.aux_start
  pieces.append([-1, 1, num_aux, num_aux, 0, 0, 0, 0, graph.aux_start,
                 num_aux])
  rows = [r for k, p in enumerate(graph.pieces)
          for r in _blocks(k, p.count, block)]
  forecast_rows = len(rows)
  if num_aux:
    rows += _blocks(len(graph.pieces), num_aux, block)
  aux_types = graph.edge_type[graph.aux_start:]
  aux = np.zeros((num_aux + block, graph.features, window), np.float32)
  for t, v in _neural_graph.AUX_VALUES.items():
    aux[:num_aux][aux_types == t, 0, :] = v
  return _Layout(np.asarray(pieces, np.int32), np.asarray(rows, np.int32),
                 forecast_rows, aux)


def _elements(prm: jax.Array, offset: jax.Array, block: int, features: int
              ) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Where a block's edges are in their leaf.

  Edge ``j`` of a piece joins input ``i`` to output ``o`` (``j = i n_out +
  o``, or ``o n_in + i`` when transposed); its feature ``f`` is the leaf's
  raveled element ``f * plane + i * n_cols + c0 + o`` (a conv's kernel
  positions are planes of ``n_in * n_out``).

  Returns:
    ``(elements (B, F), valid (B, F), j (B,))``; invalid entries read
    element 0.
  """
  n_in, n_out, n_cols, c0, transposed, plane, feat, _, count = (
      prm[k] for k in range(1, 10))
  j = offset + jnp.arange(block, dtype=jnp.int32)
  i = jnp.where(transposed == 1, j % n_in, j // n_out)
  o = jnp.where(transposed == 1, j // n_in, j % n_out)
  f = jnp.arange(features, dtype=jnp.int32)
  elements = (i * n_cols + c0 + o)[:, None] + f[None] * plane
  valid = (j < count)[:, None] & (f < feat)[None]
  return jnp.where(valid, elements, 0), valid, j


def _readers(windows: Sequence[Sequence[Any]], placed: Sequence[int]):
  """Per placed leaf: ``elements (B, F) -> float32 (B, F, W)``, its window's
  values there, read in place."""
  def reader(leaf):
    def read(elements):
      take = lambda a: a.reshape(-1)[elements]
      return jnp.stack([entry_take(e, take).astype(jnp.float32)
                        for e in windows[leaf]], axis=-1)
    return read
  return [reader(leaf) for leaf in placed]


def network(weights: Weights, graph: _neural_graph.NeuralGraph,
            windows: Sequence[Sequence[Any]], horizons: jax.Array,
            positions: Optional[jax.Array] = None,
            block: int = BLOCK) -> list[jax.Array]:
  """The graph network's forecasts of the placed leaves, streamed.

  No copy of the leaves, their windows or the edges' features is made: one
  ``lax.fori_loop`` per pass runs over a static table of blocks of
  ``block`` edges (each within one piece of one leaf), reads the block's
  weights in place (a gather from the leaf's stored history slots and
  params, :class:`Stored`), scales them and runs the edge layers on them.
  Two passes give every leaf's :math:`\\mu, \\sigma`; one per message-passing
  layer sums the messages into the nodes (``N x 128`` floats); the last
  writes each block's forecasts into one flat buffer of the placed leaves.
  A jump's temporaries are that buffer (``T`` x the placed params) and a
  block's intermediates.

  Args:
    weights: The graph network's weights (``load('nino').weights['graph']``).
    graph: The neural graph.
    windows: Per leaf, its ``W`` states (arrays or :class:`Stored`).
    horizons: float32 ``(T,)`` horizons in record intervals.
    positions: ``(N, 8)`` node positions; default ``graph.positions``.
    block: The most edges per block (:func:`block_size` picks the size).

  Returns:
    Per placed leaf (``graph.placed``), float32 ``(T, *shape)`` forecasts;
    NaN where the weight's own window was not finite.
  """
  weights = jax.tree.map(jnp.asarray, weights)
  width = weights['embed'].shape[1]
  num_nodes, feat = graph.num_nodes, graph.features
  window = len(windows[graph.placed[0]])
  shapes = {i: _shape(windows[i][-1]) for i in graph.placed}
  block = block_size([p.count for p in graph.pieces]
                     + [graph.num_edges - graph.aux_start], block)
  layout = _layout(graph, shapes, window, block)
  pieces, rows = jnp.asarray(layout.pieces), jnp.asarray(layout.rows)
  aux = jnp.asarray(layout.aux)
  # Each block slices ``block`` edges from its first: pad past the end.
  pad = lambda a: jnp.asarray(np.pad(a, (0, block), constant_values=num_nodes))
  src, dst = pad(graph.src), pad(graph.dst)
  types = jnp.asarray(np.pad(graph.edge_type, (0, block)))
  readers = _readers(windows, graph.placed)
  in_kernel = weights['edge_input']['kernel'][:feat * window]
  degree = np.bincount(graph.dst, minlength=num_nodes + 1).astype(np.float32)
  degree = jnp.asarray(np.maximum(degree, 1.0))[:, None]
  slots = len(graph.placed)

  def read(t):
    """Block ``t``: its raw values, where they go, which edges count."""
    p, offset, first = rows[t, 0], rows[t, 1], rows[t, 2]
    prm = pieces[p]
    elements, valid, j = _elements(prm, offset, block, feat)
    slot = jnp.maximum(prm[0], 0)
    raw = jax.lax.switch(slot, readers, elements)
    inside = j < prm[9]  # an edge of the piece, not past its end
    new = (j >= offset + first) & inside  # read by no earlier block
    return p, offset, prm, slot, elements, valid, new, raw, inside

  def accumulate_statistics(mu):
    """Per placed leaf: count, sum (``mu`` None) or squared deviations."""
    def body(t, acc):
      _, _, _, slot, _, valid, new, raw, _ = read(t)
      keep = valid[..., None] & new[:, None, None] & jnp.isfinite(raw)
      x = raw if mu is None else (raw - mu[slot]) ** 2
      return (acc[0].at[slot].add(jnp.sum(keep, dtype=jnp.float32)),
              acc[1].at[slot].add(jnp.sum(jnp.where(keep, x, 0.0))))
    zeros = jnp.zeros((slots,), jnp.float32)
    return jax.lax.fori_loop(0, layout.forecast_rows, body, (zeros, zeros))

  count, total = accumulate_statistics(None)
  mu = total / jnp.maximum(count, 1.0)
  _, squares = accumulate_statistics(mu)
  sigma = jnp.sqrt(squares / jnp.maximum(count - 1.0, 1.0))

  pos = graph.positions if positions is None else positions
  x0 = _dense(weights['node_input'], jnp.asarray(pos, jnp.float32))
  xs = [jnp.pad(x0, ((0, 1), (0, 0)))]
  ends = []  # per message-passing layer: W_s x, W_t x of its new nodes

  def edges(level, t):
    """``e^level`` of block ``t``, its ends (masked), and its read."""
    p, offset, prm, slot, elements, valid, new, raw, inside = read(t)
    scaled = (raw - mu[slot]) / (sigma[slot] + EPS)
    scaled = jnp.where(valid[..., None] & jnp.isfinite(raw), scaled, 0.0)
    fixed = jax.lax.dynamic_slice_in_dim(aux, offset, block)
    is_aux = p == len(graph.pieces)
    attr = jnp.where(is_aux, fixed, scaled)
    start = prm[8] + offset
    s = jnp.where(inside, jax.lax.dynamic_slice_in_dim(src, start, block),
                  num_nodes)
    t_all = jax.lax.dynamic_slice_in_dim(dst, start, block)
    kind = jax.lax.dynamic_slice_in_dim(types, start, block)
    e = (attr.reshape(block, feat * window) @ in_kernel
         + weights['edge_input']['bias'] + weights['embed'][kind])
    for l in range(level):
      lp, (at_s, at_t) = weights['layers'][l], ends[l]
      h = _dense(lp['edge'], e) + at_s[s] + at_t[t_all]
      e = _dense(lp['edge_out'], jax.nn.silu(h))
    target = jnp.where(new, t_all, num_nodes)  # counted once, real edges
    return e, s, target, (slot, elements, valid, raw, attr)

  for level in range(LAYERS):
    lp, x = weights['layers'][level], xs[level]
    # Per node once: the message layer's halves for targets and sources.
    at_target = x @ lp['message']['kernel'][:width]
    at_source = x @ lp['message']['kernel'][width:] + lp['message']['bias']

    def message_sum(t, total, level=level, lp=lp, at_target=at_target,
                    at_source=at_source):
      e, s, target, _ = edges(level, t)
      gamma, beta = jnp.split(_dense(lp['film'], e), 2, axis=-1)
      message = gamma * (at_target[target] + at_source[s]) + beta
      return total.at[target].add(message)

    total = jax.lax.fori_loop(0, rows.shape[0], message_sum,
                              jnp.zeros((num_nodes + 1, width), jnp.float32))
    mean = total / degree
    x_new = jax.nn.silu(_dense(lp['node'], _split(lp['post'], (x, mean),
                                                   width)))
    x_new = x_new.at[num_nodes].set(0.0)
    xs.append(x_new)
    # The edge layer's node terms, once per node (not once per block).
    ends.append((_dense(lp['source'], x_new), _dense(lp['target'], x_new)))

  kernel, bias = _horizon_out(weights, feat, horizons)  # (T, 128, F), (T, F)
  sizes = [int(np.prod(shapes[i])) for i in graph.placed]
  bases = jnp.asarray(np.cumsum([0] + sizes[:-1]), jnp.int32)
  size = sum(sizes)  # the last element of ``out`` takes invalid writes

  def output(t, out):
    e, _, _, (slot, elements, valid, raw, attr) = edges(LAYERS, t)
    hidden = jax.nn.silu(_dense(weights['out_hidden'], e))
    y = (attr[None, :, :, -1] + jnp.einsum('bh,thf->tbf', hidden, kernel)
         + bias[:, None])
    value = mu[slot] + sigma[slot] * y
    value = jnp.where(jnp.all(jnp.isfinite(raw), axis=-1), value, jnp.nan)
    where = jnp.where(valid, bases[slot] + elements, size).reshape(-1)
    return out.at[:, where].set(value.reshape(value.shape[0], -1))

  out = jax.lax.fori_loop(
      0, layout.forecast_rows, output,
      jnp.zeros((horizons.shape[0], size + 1), jnp.float32))
  return [out[:, b:b + n].reshape(-1, *shapes[i])
          for i, b, n in zip(graph.placed, np.cumsum([0] + sizes[:-1]), sizes)]


def graph_attr(graph: _neural_graph.NeuralGraph,
               windows: dict[int, jax.Array]) -> jax.Array:
  """Every edge's ``(E, F, W)`` features (as the streamed forward reads
  them, unscaled), from the placed leaves' ``(W, *shape)`` windows
  (``leaf index -> window``), auxiliary edges included: for people and
  tests."""
  window = next(iter(windows.values())).shape[0]
  shapes = {i: tuple(w.shape[1:]) for i, w in windows.items()}
  layout = _layout(graph, shapes, window, 1)
  readers = _readers({i: list(w) for i, w in windows.items()}, graph.placed)
  parts = []
  for k, piece in enumerate(graph.pieces):
    elements, valid, _ = _elements(jnp.asarray(layout.pieces[k]), 0,
                                   piece.count, graph.features)
    raw = readers[graph.placed.index(piece.leaf)](elements)
    parts.append(jnp.where(valid[..., None], raw, 0.0))
  parts.append(jnp.asarray(layout.aux[:graph.num_edges - graph.aux_start]))
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


def forecast_leaves(weights: Weights, windows: Sequence[Sequence[Any]],
                    times: jax.Array, targets: jax.Array,
                    infos: Sequence[_neural_graph.LeafInfo], *,
                    heads: Optional[int] = None,
                    order: Optional[tuple] = None,
                    block: int = BLOCK) -> list[jax.Array]:
  """NiNo's forecast of every leaf at each target (the whole-leaf interface).

  Args:
    weights: ``{'graph', 'mlp'}``.
    windows: Per leaf, its ``W`` states, oldest first (arrays, or
      :class:`~optax_nowcast.forecasters._base.Stored` entries, read in
      place).
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
                      windows: Sequence[Sequence[Any]],
                      horizons: jax.Array, labels: Sequence[str], *,
                      block: int = BLOCK) -> list[jax.Array]:
  """:func:`forecast_leaves` on a given graph, at horizons in record
  intervals (``graph.positions`` may be replaced, e.g. by NiNo's own)."""
  out: list[Optional[jax.Array]] = [None] * len(windows)
  if graph.placed:
    placed = network(weights['graph'], graph, windows, horizons, block=block)
    for i, values in zip(graph.placed, placed):
      out[i] = values
  for i, _ in graph.unplaced:
    window = [entry_value(e) for e in windows[i]]
    out[i] = _per_weight(weights['mlp'], window, horizons, labels[i])
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
    block: The most edges per block of the streamed forward (memory vs
      speed; :func:`block_size` takes a smaller power of two when the
      model's pieces are small).

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
