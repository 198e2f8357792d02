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
from typing import Any, NamedTuple, Optional, Sequence, Union

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
    pieces: int32 ``(P + 1, 14)``: per piece (the last row: the auxiliary
      edges) the columns of :data:`_PIECE` (see :func:`_piece_row`).
    rows: int32 ``(R, 3)``: per block, its piece, its first local edge
      within the piece, and its first edge not read by the block before (a
      piece's last block ends at its end and overlaps the one before).
    forecast_rows: The blocks of the weight pieces (the first rows); the
      auxiliary edges' blocks follow.
    aux: float32 ``(E_aux + block, F, W)`` the auxiliary edges' features.
    ends: int32 ``(3, E_t)``: source, target and type of the edges not
      given by a formula (the auxiliary ones, and those of any piece that
      is not affine); at least one column.
  """

  pieces: np.ndarray
  rows: np.ndarray
  forecast_rows: int
  aux: np.ndarray
  ends: np.ndarray


#: The columns of :attr:`_Layout.pieces`. A piece's leaf is seen as ``F``
#: planes (a conv's kernel positions) of a ``(rows, cols)`` matrix; the
#: piece's edges join its ``n_in`` rows to its ``n_out`` columns from
#: ``c0``. On a device that holds a block of the leaf (``rows_l x cols_l``
#: of it, see :class:`Shards`), the piece's local edges are ``rows_l x
#: width`` (``width``: the most columns of the piece any device holds).
#: Its edge from input ``i`` to output ``o`` joins node ``s0 + si i + so o``
#: to node ``d0 + di i + do o`` and has type ``type`` (``affine`` = 1, every
#: piece our graph builder makes: no per-edge table is compiled into the
#: step); otherwise (``affine`` = 0, and the auxiliary edges) its edges'
#: nodes and types are rows ``table ..`` of :attr:`_Layout.ends`.
_PIECE = ('slot', 'n_in', 'n_out', 'n_cols', 'c0', 'transposed', 'plane',
          'features', 'start', 'count', 'rows_l', 'cols_l', 'width',
          'count_l', 'affine', 's0', 'si', 'so', 'd0', 'di', 'do', 'type',
          'table')


class Shards(NamedTuple):
  """Where each placed leaf's shard lies, for :func:`network` run on each
  device's shards (under ``jax.shard_map``, :func:`forecast_on_graph`).

  Attributes:
    axes: The mesh's ``(name, size)`` axes.
    specs: Per placed leaf, its partition spec, padded to its rank.
    shapes: Per placed leaf, its global shape.
  """

  axes: tuple[tuple[str, int], ...]
  specs: dict[int, tuple]
  shapes: dict[int, tuple[int, ...]]


def _shape(entry: Any) -> tuple[int, ...]:
  return entry.shape if isinstance(entry, Stored) else tuple(jnp.shape(entry))


def _axes(piece: _neural_graph.Piece,
          rank: int) -> tuple[tuple[int, ...], tuple[int, ...],
                              tuple[int, ...]]:
  """A piece's leaf axes: ``(feature axes, row axes, column axes)``."""
  if piece.kind == 'conv':
    return (0, 1), (2,), (3,)
  if piece.kind == 'vector':
    return (), (), tuple(range(rank))
  return (), tuple(range(piece.rows)), tuple(range(piece.rows, rank))


def _piece_row(piece: _neural_graph.Piece, shape: tuple[int, ...],
               local: tuple[int, ...], slot: int) -> list[int]:
  """A piece's row of :attr:`_Layout.pieces` (columns :data:`_PIECE`), for
  a leaf of global ``shape`` whose devices each hold ``local`` of it."""
  feature_axes, row_axes, col_axes = _axes(piece, len(shape))
  n_in = int(np.prod([shape[a] for a in row_axes]))
  n_cols = int(np.prod([shape[a] for a in col_axes]))
  rows_l = int(np.prod([local[a] for a in row_axes]))
  cols_l = int(np.prod([local[a] for a in col_axes]))
  features = int(np.prod([shape[a] for a in feature_axes]))
  c0 = piece.columns[0] if piece.columns is not None else 0
  n_out = piece.count // n_in
  width = max(max(0, min(c0 + n_out, k + cols_l) - max(c0, k))
              for k in range(0, n_cols, cols_l))
  plane = rows_l * cols_l if piece.kind == 'conv' else 0
  return [slot, n_in, n_out, n_cols, c0, int(piece.transposed), plane,
          features, piece.start, piece.count, rows_l, cols_l, width,
          rows_l * width]


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


def _affine(graph: _neural_graph.NeuralGraph, row: Sequence[int]
            ) -> Optional[list[int]]:
  """A piece's ``[s0, si, so, d0, di, do, type]`` when its edges' nodes are
  affine in ``(i, o)`` and its type is one (checked on every edge), else
  ``None``."""
  g = dict(zip(_PIECE, row))
  n_in, n_out, start, count = g['n_in'], g['n_out'], g['start'], g['count']
  j = np.arange(count)
  if g['transposed']:
    i, o, at = j % n_in, j // n_in, lambda i, o: o * n_in + i
  else:
    i, o, at = j // n_out, j % n_out, lambda i, o: i * n_out + o
  out = []
  for ends in (graph.src, graph.dst):
    e = ends[start:start + count].astype(np.int64)
    base = int(e[0])
    di = int(e[at(1, 0)]) - base if n_in > 1 else 0
    do = int(e[at(0, 1)]) - base if n_out > 1 else 0
    if not np.array_equal(e, base + di * i + do * o):
      return None
    out += [base, di, do]
  types = graph.edge_type[start:start + count]
  if np.any(types != types[0]):
    return None
  return out + [int(types[0])]


def _piece_table(graph: _neural_graph.NeuralGraph,
                 shapes: dict[int, tuple], local: dict[int, tuple]
                 ) -> tuple[np.ndarray, np.ndarray]:
  """:attr:`_Layout.pieces` (the weight pieces, then the auxiliary edges)
  and :attr:`_Layout.ends`."""
  slot = {leaf: k for k, leaf in enumerate(graph.placed)}
  pieces = [_piece_row(p, shapes[p.leaf], local[p.leaf], slot[p.leaf])
            for p in graph.pieces]
  n = graph.num_edges - graph.aux_start
  pieces.append([-1, 1, n, n, 0, 0, 0, 0, graph.aux_start, n, 1, n, n, n])
  tables, size = [], 0
  for k, row in enumerate(pieces):
    formula = _affine(graph, row) if k < len(graph.pieces) else None
    if formula is None:
      start, count = row[_PIECE.index('start')], row[_PIECE.index('count')]
      tables.append(slice(start, start + count))
      row += [0] * 8 + [size]
      size += count
    else:
      row += [1] + formula + [0]
  ends = np.stack([np.concatenate([a[t] for t in tables] + [np.zeros(1)])
                   for a in (graph.src, graph.dst, graph.edge_type)])
  return np.asarray(pieces, np.int32), ends.astype(np.int32)


def _layout(graph: _neural_graph.NeuralGraph, pieces: np.ndarray,
            ends: np.ndarray, window: int, block: int) -> _Layout:
  """The static tables that :func:`network` streams the graph by."""
  count_l = pieces[:, _PIECE.index('count_l')]
  rows = [r for k in range(len(graph.pieces))
          for r in _blocks(k, int(count_l[k]), block)]
  forecast_rows = len(rows)
  num_aux = graph.num_edges - graph.aux_start
  if num_aux:
    rows += _blocks(len(graph.pieces), num_aux, block)
  aux_types = graph.edge_type[graph.aux_start:]
  aux = np.zeros((num_aux + block, graph.features, window), np.float32)
  for t, v in _neural_graph.AUX_VALUES.items():
    aux[:num_aux][aux_types == t, 0, :] = v
  return _Layout(pieces, np.asarray(rows, np.int32), forecast_rows, aux,
                 ends)


class _Edges(NamedTuple):
  """A block's edges (see :func:`_elements`)."""

  elements: jax.Array  # (B, F) local raveled elements (0 where not valid)
  valid: jax.Array     # (B, F) the element exists here
  edge: jax.Array      # (B,) the edge within its piece (0 where not)
  inside: jax.Array    # (B,) an edge of the piece on this device
  local: jax.Array     # (B,) the local edge within the piece
  i: jax.Array         # (B,) its input within the piece
  o: jax.Array         # (B,) its output within the piece


def _elements(prm: jax.Array, origin: jax.Array, offset: jax.Array,
              block: int, features: int) -> _Edges:
  """Where a block's edges are in their leaf (or its shard).

  Local edge ``q`` of a piece is row ``r0 + q // width`` and column ``lo +
  q % width`` of the leaf (``(r0, c)`` the device's first row and column,
  ``(0, 0)`` on one device; ``lo = max(c0, c)``); it joins input ``i`` to
  output ``o = column - c0``, the piece's edge ``i n_out + o`` (``o n_in +
  i`` when transposed), and its feature ``f`` is the local raveled element
  ``f * plane + row_l * cols_l + column - c``.
  """
  g = {name: prm[k] for k, name in enumerate(_PIECE)}
  r0, c = origin[0], origin[1]
  q = offset + jnp.arange(block, dtype=jnp.int32)
  width = jnp.maximum(g['width'], 1)
  row_l, oc = q // width, q % width
  lo = jnp.maximum(g['c0'], c)
  here = jnp.minimum(g['c0'] + g['n_out'], c + g['cols_l']) - lo
  inside = (q < g['count_l']) & (oc < here)
  column = lo + oc
  i, o = r0 + row_l, column - g['c0']
  j = jnp.where(g['transposed'] == 1, o * g['n_in'] + i, i * g['n_out'] + o)
  f = jnp.arange(features, dtype=jnp.int32)
  elements = (row_l * g['cols_l'] + column - c)[:, None] + f[None] * g['plane']
  valid = inside[:, None] & (f < g['features'])[None]
  return _Edges(jnp.where(valid, elements, 0), valid, jnp.where(inside, j, 0),
                inside, q, i, o)


def _ends(prm: jax.Array, at: _Edges, ends: jax.Array
          ) -> tuple[jax.Array, jax.Array, jax.Array]:
  """A block's edges' source and target nodes and types: by the piece's
  formula, or read from the table (:data:`_PIECE`)."""
  g = {name: prm[k] for k, name in enumerate(_PIECE)}
  formula = g['affine'] == 1
  row = jnp.where(formula, 0, g['table'] + at.edge)
  source = jnp.where(formula, g['s0'] + g['si'] * at.i + g['so'] * at.o,
                     ends[0, row])
  target = jnp.where(formula, g['d0'] + g['di'] * at.i + g['do'] * at.o,
                     ends[1, row])
  return source, target, jnp.where(formula, g['type'], ends[2, row])


def _origins(graph: _neural_graph.NeuralGraph, pieces: np.ndarray,
             shards: Optional[Shards]) -> tuple[jax.Array, jax.Array]:
  """Per placed leaf (and last, the auxiliary edges): the device's first
  ``(row, column)`` of it, int32 ``(S + 1, 2)``, and whether the device
  counts it in the graph's sums (``(S + 1,)``; one copy of a leaf
  replicated over a mesh axis does, that at index 0 of the axis)."""
  slots = len(graph.placed)
  if shards is None:
    return (jnp.zeros((slots + 1, 2), jnp.int32),
            jnp.ones((slots + 1,), bool))
  sizes = dict(shards.axes)
  index = {name: jax.lax.axis_index(name) for name in sizes}

  def shard_index(entry):
    names = () if entry is None else (
        (entry,) if isinstance(entry, str) else tuple(entry))
    k = jnp.zeros([], jnp.int32)
    for name in names:
      k = k * sizes[name] + index[name]
    return k, set(names)

  def first(used):
    return jnp.all(jnp.asarray([index[a] == 0 for a in sizes
                                if a not in used] or [True]))

  origins, owners = [], []
  by_leaf = {}
  for k, piece in enumerate(graph.pieces):
    by_leaf.setdefault(piece.leaf, (piece, pieces[k]))
  for leaf in graph.placed:
    piece, row = by_leaf[leaf]
    spec = shards.specs[leaf]
    _, row_axes, col_axes = _axes(piece, len(spec))
    used: set = set()
    origin = []
    for group, size in ((row_axes, row[_PIECE.index('rows_l')]),
                        (col_axes, row[_PIECE.index('cols_l')])):
      k, names = shard_index(spec[group[0]] if group else None)
      used |= names
      origin.append(k * int(size))
    origins.append(jnp.stack(origin))
    owners.append(first(used))
  origins.append(jnp.zeros((2,), jnp.int32))
  owners.append(first(set()))
  return jnp.stack(origins), jnp.stack(owners)


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
            windows: Sequence[Any], horizons: jax.Array,
            positions: Optional[jax.Array] = None,
            block: int = BLOCK, shards: Optional[Shards] = None
            ) -> list[jax.Array]:
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

  With ``shards``, it runs on one device's shards of the leaves (inside
  ``jax.shard_map``: ``windows`` hold the local blocks): the sums over
  edges (each leaf's statistics, each node's messages) are reduced across
  the mesh (``psum``), everything per node is computed alike on every
  device, and each device forecasts its own shards.

  Args:
    weights: The graph network's weights (``load('nino').weights['graph']``).
    graph: The neural graph.
    windows: Per leaf, its ``W`` states (arrays or :class:`Stored`; only
      the placed leaves' are read).
    horizons: float32 ``(T,)`` horizons in record intervals.
    positions: ``(N, 8)`` node positions; default ``graph.positions``.
    block: The most edges per block (:func:`block_size` picks the size).
    shards: Where each device's shards lie; ``None``: one device.

  Returns:
    Per placed leaf (``graph.placed``), float32 ``(T, *shape)`` forecasts
    (of the local shard, with ``shards``); NaN where the weight's own window
    was not finite.
  """
  weights = jax.tree.map(jnp.asarray, weights)
  width = weights['embed'].shape[1]
  num_nodes, feat = graph.num_nodes, graph.features
  window = len(windows[graph.placed[0]])
  local = {i: _shape(windows[i][-1]) for i in graph.placed}
  table, ends_table = _piece_table(
      graph, local if shards is None else shards.shapes, local)
  block = block_size(table[:, _PIECE.index('count_l')].tolist(), block)
  layout = _layout(graph, table, ends_table, window, block)
  pieces, rows = jnp.asarray(layout.pieces), jnp.asarray(layout.rows)
  aux, edge_ends = jnp.asarray(layout.aux), jnp.asarray(layout.ends)
  readers = _readers(windows, graph.placed)
  in_kernel = weights['edge_input']['kernel'][:feat * window]
  degree = np.bincount(graph.dst, minlength=num_nodes + 1).astype(np.float32)
  degree = jnp.asarray(np.maximum(degree, 1.0))[:, None]
  slots = len(graph.placed)
  origins, owners = _origins(graph, layout.pieces, shards)
  # Sums over edges: over every device's edges when the leaves are sharded.
  total_over_mesh = ((lambda x: x) if shards is None else
                     (lambda x: jax.lax.psum(x, [a for a, _ in shards.axes])))

  def read(t):
    """Block ``t``: its raw values, where they go, which edges count."""
    p, offset, first = rows[t, 0], rows[t, 1], rows[t, 2]
    prm = pieces[p]
    index = jnp.where(prm[0] < 0, slots, prm[0])  # the aux edges: last
    at = _elements(prm, origins[index], offset, block, feat)
    slot = jnp.maximum(prm[0], 0)
    raw = jax.lax.switch(slot, readers, at.elements)
    # Counted in the sums: read by no earlier block, and on the one device
    # that counts a replicated leaf.
    new = (at.local >= offset + first) & at.inside & owners[index]
    return p, offset, prm, slot, at, new, raw

  def accumulate_statistics(mu):
    """Per placed leaf: count, sum (``mu`` None) or squared deviations."""
    def body(t, acc):
      _, _, _, slot, at, new, raw = read(t)
      keep = at.valid[..., None] & new[:, None, None] & jnp.isfinite(raw)
      x = raw if mu is None else (raw - mu[slot]) ** 2
      return (acc[0].at[slot].add(jnp.sum(keep, dtype=jnp.float32)),
              acc[1].at[slot].add(jnp.sum(jnp.where(keep, x, 0.0))))
    zeros = jnp.zeros((slots,), jnp.float32)
    return total_over_mesh(
        jax.lax.fori_loop(0, layout.forecast_rows, body, (zeros, zeros)))

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
    p, offset, prm, slot, at, new, raw = read(t)
    scaled = (raw - mu[slot]) / (sigma[slot] + EPS)
    scaled = jnp.where(at.valid[..., None] & jnp.isfinite(raw), scaled, 0.0)
    fixed = jax.lax.dynamic_slice_in_dim(aux, offset, block)
    is_aux = p == len(graph.pieces)
    attr = jnp.where(is_aux, fixed, scaled)
    source, target, kind = _ends(prm, at, edge_ends)
    s = jnp.where(at.inside, source, num_nodes)
    t_all = jnp.where(at.inside, target, num_nodes)
    e = (attr.reshape(block, feat * window) @ in_kernel
         + weights['edge_input']['bias'] + weights['embed'][kind])
    for l in range(level):
      lp, (at_s, at_t) = weights['layers'][l], ends[l]
      h = _dense(lp['edge'], e) + at_s[s] + at_t[t_all]
      e = _dense(lp['edge_out'], jax.nn.silu(h))
    target = jnp.where(new, t_all, num_nodes)  # counted once, real edges
    return e, s, target, (slot, at, raw, attr)

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

    total = total_over_mesh(jax.lax.fori_loop(
        0, rows.shape[0], message_sum,
        jnp.zeros((num_nodes + 1, width), jnp.float32)))
    mean = total / degree
    x_new = jax.nn.silu(_dense(lp['node'], _split(lp['post'], (x, mean),
                                                   width)))
    x_new = x_new.at[num_nodes].set(0.0)
    xs.append(x_new)
    # The edge layer's node terms, once per node (not once per block).
    ends.append((_dense(lp['source'], x_new), _dense(lp['target'], x_new)))

  kernel, bias = _horizon_out(weights, feat, horizons)  # (T, 128, F), (T, F)
  sizes = [int(np.prod(local[i])) for i in graph.placed]
  bases = jnp.asarray(np.cumsum([0] + sizes[:-1]), jnp.int32)
  size = sum(sizes)  # the last element of ``out`` takes invalid writes

  def output(t, out):
    e, _, _, (slot, at, raw, attr) = edges(LAYERS, t)
    hidden = jax.nn.silu(_dense(weights['out_hidden'], e))
    y = (attr[None, :, :, -1] + jnp.einsum('bh,thf->tbf', hidden, kernel)
         + bias[:, None])
    value = mu[slot] + sigma[slot] * y
    value = jnp.where(jnp.all(jnp.isfinite(raw), axis=-1), value, jnp.nan)
    where = jnp.where(at.valid, bases[slot] + at.elements, size).reshape(-1)
    return out.at[:, where].set(value.reshape(value.shape[0], -1))

  out = jax.lax.fori_loop(
      0, layout.forecast_rows, output,
      jnp.zeros((horizons.shape[0], size + 1), jnp.float32))
  return [out[:, b:b + n].reshape(-1, *local[i])
          for i, b, n in zip(graph.placed, np.cumsum([0] + sizes[:-1]), sizes)]


def graph_attr(graph: _neural_graph.NeuralGraph,
               windows: dict[int, jax.Array]) -> jax.Array:
  """Every edge's ``(E, F, W)`` features (as the streamed forward reads
  them, unscaled), from the placed leaves' ``(W, *shape)`` windows
  (``leaf index -> window``), auxiliary edges included: for people and
  tests."""
  window = next(iter(windows.values())).shape[0]
  shapes = {i: tuple(w.shape[1:]) for i, w in windows.items()}
  table, ends = _piece_table(graph, shapes, shapes)
  readers = _readers({i: list(w) for i, w in windows.items()}, graph.placed)
  origin = jnp.zeros((2,), jnp.int32)
  parts = []
  for k, piece in enumerate(graph.pieces):
    at = _elements(jnp.asarray(table[k]), origin, 0, piece.count,
                   graph.features)
    raw = readers[graph.placed.index(piece.leaf)](at.elements)
    # Local edge order is the piece's edge order but for transposed pieces.
    raw = jnp.zeros_like(raw).at[at.edge].set(raw)
    valid = jnp.zeros_like(at.valid).at[at.edge].set(at.valid)
    parts.append(jnp.where(valid[..., None], raw, 0.0))
  aux = _layout(graph, table, ends, window, 1).aux
  parts.append(jnp.asarray(aux[:graph.num_edges - graph.aux_start]))
  return jnp.concatenate(parts, axis=0)


_WARNED: set = set()


def _warn_once(message: str) -> None:
  if message not in _WARNED:
    _WARNED.add(message)
    warnings.warn(message, stacklevel=4)


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
  intervals (``graph.positions`` may be replaced, e.g. by NiNo's own).

  Leaves sharded over explicit mesh axes stay where they are: the network
  runs on each device's shards under ``jax.shard_map``, its sums over edges
  reduced across the mesh (:func:`network`).
  """
  out: list[Optional[jax.Array]] = [None] * len(windows)
  per_weight = [i for i, _ in graph.unplaced]
  if graph.placed:
    where = _where(graph, windows)
    if where is None:
      placed = network(weights['graph'], graph, windows, horizons,
                       block=block)
    elif isinstance(where, str):
      _warn_once(
          f'nino: the neural graph cannot follow how the params are sharded'
          f' ({where}); every leaf is forecast per weight by nino-mlp.')
      placed, per_weight = [], list(range(len(windows)))
    else:
      placed = _network_per_device(weights['graph'], graph, windows,
                                   horizons, block, *where)
    for i, values in zip(graph.placed, placed):
      out[i] = values
  for i in per_weight:
    window = [entry_value(e) for e in windows[i]]
    out[i] = _per_weight(weights['mlp'], window, horizons, labels[i])
  return out


def _arrays(entry: Any) -> tuple:
  return entry.arrays if isinstance(entry, Stored) else (entry,)


def _where(graph: _neural_graph.NeuralGraph, windows: Sequence[Sequence[Any]]
           ) -> Union[None, str, tuple[Any, Shards]]:
  """Where the placed leaves live: ``None`` on one device; ``(mesh,
  shards)`` on explicit mesh axes the network can follow (each leaf split
  only along the first of its row axes and of its column axes, evenly, its
  kernel positions whole); else why not."""
  meshes, specs = set(), {}
  for leaf in graph.placed:
    leaf_specs = set()
    for a in (a for e in windows[leaf] for a in _arrays(e)):
      sharding = getattr(jax.typeof(a), 'sharding', None)
      mesh = getattr(sharding, 'mesh', None)
      if mesh is None or mesh.empty or mesh.size == 1:
        if jax.device_count() > 1 and mesh is None:
          return 'a leaf whose sharding JAX does not state while tracing'
        leaf_specs.add(None)
        continue
      if not all(t == jax.sharding.AxisType.Explicit
                 for t in mesh.axis_types):
        return 'mesh axes that are not explicit'
      meshes.add(mesh)
      spec = tuple(sharding.spec)
      leaf_specs.add(spec + (None,) * (jnp.ndim(a) - len(spec)))
    if len(leaf_specs) > 1:
      return 'a leaf whose window entries are sharded differently'
    specs[leaf] = leaf_specs.pop()
  if not meshes:
    return None
  if len(meshes) > 1:
    return 'leaves on different meshes'
  mesh = meshes.pop()
  sizes = dict(zip(mesh.axis_names, mesh.axis_sizes))
  shapes = {leaf: _shape(windows[leaf][-1]) for leaf in graph.placed}
  pieces = {p.leaf: p for p in graph.pieces}
  for leaf, spec in specs.items():
    spec = specs[leaf] = spec or (None,) * len(shapes[leaf])
    feature_axes, row_axes, col_axes = _axes(pieces[leaf], len(spec))
    allowed = {g[0] for g in (row_axes, col_axes) if g}
    for axis, entry in enumerate(spec):
      if entry is None:
        continue
      names = (entry,) if isinstance(entry, str) else tuple(entry)
      split = int(np.prod([sizes[n] for n in names]))
      if axis not in allowed or shapes[leaf][axis] % split:
        return (f'leaf {leaf} of shape {shapes[leaf]} is split by {spec}:'
                ' the graph follows a split of the first input axis, the'
                ' first output axis, evenly')
  return mesh, Shards(tuple(sizes.items()), specs, shapes)


def _network_per_device(weights: Weights, graph: _neural_graph.NeuralGraph,
                        windows: Sequence[Sequence[Any]], horizons: jax.Array,
                        block: int, mesh: Any,
                        shards: Shards) -> list[jax.Array]:
  """:func:`network` on each device's shards (``jax.shard_map``): no weight
  moves; the sums over edges are reduced across the mesh.

  Every array the network reads goes in as an argument, in the sharding its
  type states (a window's arrays, and what a :class:`Stored` entry's
  ``combine`` holds as a ``jax.tree_util.Partial``, such as a slot index).
  """
  P = jax.sharding.PartitionSpec
  placed = [list(windows[leaf]) for leaf in graph.placed]
  leaves, treedef = jax.tree.flatten((placed, horizons, weights))
  is_array = [isinstance(x, jax.Array) for x in leaves]
  arrays = [x for x, a in zip(leaves, is_array) if a]

  def spec(x):
    sharding = getattr(jax.typeof(x), 'sharding', None)
    return P(*sharding.spec) if getattr(sharding, 'mesh', None) else P()

  def body(*local):
    it = iter(local)
    rebuilt = [next(it) if a else x for x, a in zip(leaves, is_array)]
    local_placed, local_horizons, local_weights = jax.tree.unflatten(
        treedef, rebuilt)
    local_windows: list[Any] = [None] * len(windows)
    for leaf, window in zip(graph.placed, local_placed):
      local_windows[leaf] = window
    return tuple(network(local_weights, graph, local_windows, local_horizons,
                         block=block, shards=shards))

  out_specs = tuple(P(None, *shards.specs[leaf]) for leaf in graph.placed)
  return list(jax.shard_map(
      body, mesh=mesh, in_specs=tuple(spec(x) for x in arrays),
      out_specs=out_specs, check_vma=False)(*arrays))


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
  (``forecast_leaves``). Params sharded over explicit mesh axes stay where
  they are: the network runs on each device's shards (``jax.shard_map``)
  and reduces its sums over edges (every tensor's statistics, every node's
  messages: ``N x 128`` floats a layer) across the mesh, provided each leaf
  is split only along its first input axis and its first output axis
  (else, with a warning, every leaf is forecast per weight). Where a jump
  runs per scalar (auto mesh axes, whose shardings JAX does not state
  while tracing) it is ``nino-mlp``.

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
