r"""The neural graph of a params tree, as NiNo's graph network reads it.

Knyazev et al. (2025) forecast a network's weights with a graph network
over its *neural graph*: neurons are nodes, each weight an edge from its
input neuron to its output neuron (a convolution kernel's ``h * w`` spatial
values are the features of one edge per (input, output) channel pair), a
bias or normalisation vector is a node of its own with an edge to each
neuron it feeds, and every node has a self-loop. Positions of the nodes are
the first eigenvectors of the graph's Laplacian.

:func:`neural_graph` builds that graph from the *shapes and paths* of a
params tree, once, on the host, as index arrays (``numpy``) that a compiled
jump reads as constants: a jump compiles once per params structure.

How the walk places leaves (Flax's layouts; a module is a dict of leaves,
visited in the order its dict holds them, which for Flax Linen and NNX is
the order the modules were created, i.e. the forward order):

- ``kernel`` of rank 2 ``(in, out)`` (``Dense``): edges from the current
  neurons to ``out`` new neurons (type 1). When ``in`` is a multiple of the
  current width (a flattened feature map, channels fastest as in NHWC),
  input ``j`` comes from neuron ``j mod width`` (several edges per pair).
- ``kernel`` of rank 4 ``(h, w, in, out)`` (``Conv``): one edge per channel
  pair, its ``h * w`` values its features (type 3); at most 3x3.
- ``bias`` ``(out,)``: a node with an edge to each of the layer's neurons
  (type 2). A rank-1 ``scale`` (LayerNorm, BatchNorm, RMSNorm): a node
  feeding the current neurons (type 4), with its ``bias`` (type 2).
- ``embedding`` ``(vocab, width)`` (``Embed``): token nodes to ``width``
  stream neurons (type 5); a rank-2 table right after it with the same
  width (a learned position table) feeds the same stream (type 6).

A leaf the walk cannot place (a shape that does not chain, a kernel larger
than 3x3, a recurrent cell, a complex leaf) is listed in ``unplaced`` with
the reason; NiNo's forecaster forecasts it per weight instead and warns
once.

Nodes are numbered as NiNo numbers them: the inputs first, then for each
layer the vector nodes that feed it, then its neurons.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from typing import Any, NamedTuple, Optional, Sequence

import numpy as np

#: NiNo's edge types (its ``graph/graph.py`` and ``graph_transformer.py``).
DENSE, BIAS, CONV, NORM, EMBEDDING, POSITION = 1, 2, 3, 4, 5, 6
QUERY, KEY, VALUE, RESIDUAL, HEAD, SELF_LOOP = 7, 8, 9, 10, 11, 13
#: Kernel positions per edge the released network reads (3x3).
MAX_FEATURES = 9
#: Laplacian eigenvectors per node (NiNo's ``lpe``).
POSITIONS = 8
#: Below this many nodes the eigenvectors come from a dense solver.
DENSE_EIGEN_NODES = 500
#: The value (in scaled units) of a self-loop's and an auxiliary edge's
#: feature at position 0 (NiNo: 2 for self-loops, 1 for residual and head
#: edges).
AUX_VALUES = {SELF_LOOP: 2.0, RESIDUAL: 1.0, HEAD: 1.0}


class LeafInfo(NamedTuple):
  """What a whole-leaf forecaster knows of a leaf (static, hashable).

  Attributes:
    path: The leaf's keys in the params tree, as strings.
    shape: Its shape.
    dtype: Its dtype's name.
    label: Its label (``nowcast(labels=...)``).
    order: Its rank in the tree's own (insertion, i.e. forward) order.
  """

  path: tuple[str, ...]
  shape: tuple[int, ...]
  dtype: str
  label: str
  order: int


class Piece(NamedTuple):
  """Edges made from (part of) one leaf.

  Attributes:
    leaf: The index of the leaf (into the ``LeafInfo`` sequence).
    kind: ``'matrix'`` (a rank-2 ``(in, out)`` kernel, or a table), ``'conv'``
      (``(h, w, in, out)``) or ``'vector'`` (rank 1).
    start: Its first edge.
    count: Its number of edges.
    columns: ``(first, stop)``: the columns of a rank-2 kernel it covers (a
      fused attention projection is three pieces), or ``None`` for all.
    transposed: Whether its edges run ``out -> in`` (NiNo's attention keys).
    rows: A ``'matrix'`` leaf's leading axes that index its inputs (the
      rest index its outputs): 1 for ``(in, out)`` and ``(in, heads,
      head_dim)``, 2 for an attention output ``(heads, head_dim, out)``.
  """

  leaf: int
  kind: str
  start: int
  count: int
  columns: Optional[tuple[int, int]] = None
  transposed: bool = False
  rows: int = 1


class NeuralGraph(NamedTuple):
  """The neural graph of a params tree (numpy arrays; see the module doc).

  Attributes:
    num_nodes: ``N``.
    src: int32 ``(E,)`` each edge's input neuron.
    dst: int32 ``(E,)`` each edge's output neuron.
    edge_type: int32 ``(E,)`` NiNo's type of each edge.
    features: Kernel positions per edge (1, or 9 when a 3x3 conv is placed).
    pieces: The leaves' edges (their values are the edges' features).
    aux_start: The first auxiliary edge (residual, head, self-loop: fixed
      features); edges ``[aux_start, E)`` are not forecast.
    positions: float32 ``(N, 8)`` node positions (Laplacian eigenvectors,
      signs fixed: in each column, the first entry within 1e-4 of the
      largest magnitude is positive).
    placed: Indices of the leaves with edges.
    unplaced: ``(index, reason)`` of the leaves the walk could not place.
    node_names: Per node, what it is (e.g. ``'Dense_0/out[3]'``), for people.
  """

  num_nodes: int
  src: np.ndarray
  dst: np.ndarray
  edge_type: np.ndarray
  features: int
  pieces: tuple[Piece, ...]
  aux_start: int
  positions: np.ndarray
  placed: tuple[int, ...]
  unplaced: tuple[tuple[int, str], ...]
  node_names: tuple[str, ...]

  @property
  def num_edges(self) -> int:
    return int(self.src.shape[0])

  def summary(self) -> str:
    """A few lines: nodes, edges per type, placed and unplaced leaves."""
    types, counts = np.unique(self.edge_type, return_counts=True)
    names = {DENSE: 'dense', BIAS: 'bias', CONV: 'conv', NORM: 'norm',
             EMBEDDING: 'embedding', POSITION: 'position', QUERY: 'query',
             KEY: 'key', VALUE: 'value', RESIDUAL: 'residual', HEAD: 'head',
             SELF_LOOP: 'self-loop'}
    per_type = ', '.join(f'{names.get(int(t), t)} {int(c)}'
                         for t, c in zip(types, counts))
    lines = [f'{self.num_nodes} nodes, {self.num_edges} edges ({per_type}),'
             f' {self.features} feature(s) per edge',
             f'{len(self.placed)} leaves placed, {len(self.unplaced)} not']
    lines += [f'  not placed: leaf {i}: {why}' for i, why in self.unplaced]
    return '\n'.join(lines)


@dataclasses.dataclass
class _Block:
  """A group of neurons, with the vector nodes that feed it before them."""
  name: str
  size: int
  feeders: list[str] = dataclasses.field(default_factory=list)


class _Builder:
  """Collects blocks, edges and pieces; numbers the nodes at the end."""

  def __init__(self):
    self.blocks: list[_Block] = []
    # Each edge end is (block, kind, index): kind 'n' a neuron, 'f' a feeder.
    # (sb, sk, si, db, dk, di, type) per call; auxiliary ones apart, after.
    self.edges: list[tuple[np.ndarray, ...]] = []
    self.aux: list[tuple[np.ndarray, ...]] = []
    self.pieces: list[Piece] = []
    self.count = 0

  def block(self, name: str, size: int) -> int:
    self.blocks.append(_Block(name, size))
    return len(self.blocks) - 1

  def feeder(self, block: int, name: str) -> int:
    self.blocks[block].feeders.append(name)
    return len(self.blocks[block].feeders) - 1

  def add(self, src, dst, edge_type: int, piece: Optional[Piece] = None):
    """Edges ``src[i] -> dst[i]``; each end ``(block, 'n'|'f', indices)``."""
    (sb, sk, si), (db, dk, di) = src, dst
    si, di = np.broadcast_arrays(np.asarray(si, np.int64),
                                 np.asarray(di, np.int64))
    n = si.size
    full = lambda v: np.full(n, v, np.int64)
    edges = (full(sb), full(sk == 'f'), si.ravel(), full(db),
             full(dk == 'f'), di.ravel(), full(edge_type))
    if piece is None:  # fixed features, not forecast: after the pieces
      self.aux.append(edges)
      return
    self.edges.append(edges)
    self.pieces.append(piece._replace(start=self.count, count=n))
    self.count += n

  def numbered(self) -> tuple[int, np.ndarray, np.ndarray, np.ndarray,
                              tuple[str, ...]]:
    """Node ids: per block, its feeders then its neurons."""
    offsets, names, total = [], [], 0
    for b in self.blocks:
      offsets.append(total)
      names += [f'{b.name}:{f}' for f in b.feeders]
      names += [f'{b.name}[{i}]' for i in range(b.size)]
      total += len(b.feeders) + b.size
    offsets = np.asarray(offsets, np.int64)
    feeders = np.asarray([len(b.feeders) for b in self.blocks], np.int64)
    every = self.edges + self.aux
    cols = ([np.concatenate(c) for c in zip(*every)] if every
            else [np.zeros(0, np.int64)] * 7)
    sb, sf, si, db, df, di, types = cols

    def ids(b, f, i):
      return offsets[b] + np.where(f, i, feeders[b] + i)

    src, dst = ids(sb, sf, si), ids(db, df, di)
    # One self-loop per node, after every other edge.
    loops = np.arange(total, dtype=np.int64)
    src = np.concatenate([src, loops]).astype(np.int32)
    dst = np.concatenate([dst, loops]).astype(np.int32)
    types = np.concatenate([types, np.full(total, SELF_LOOP)]).astype(np.int32)
    return total, src, dst, types, tuple(names)


def _natural(name: str):
  """A sort key: 'Dense_10' after 'Dense_9'."""
  return [int(t) if t.isdigit() else t for t in re.split(r'(\d+)', name)]


def _modules(infos: Sequence[LeafInfo]) -> list[tuple[str, list[int]]]:
  """The leaves grouped by module (path minus its last key), forward order."""
  order: dict[tuple[str, ...], list[int]] = {}
  for i in sorted(range(len(infos)), key=lambda i: infos[i].order):
    # A leaf at the top of the tree is a module of its own.
    module = infos[i].path[:-1] if len(infos[i].path) > 1 else infos[i].path
    order.setdefault(module, []).append(i)
  return [('/'.join(m) or '/'.join(infos[ids[0]].path), ids)
          for m, ids in order.items()]


class _Module(NamedTuple):
  """A module's leaves by role (leaf indices, or None)."""
  name: str
  ids: tuple[int, ...]
  kernel: Optional[int]
  table: Optional[int]
  bias: Optional[int]
  scale: Optional[int]


def _roles(infos: Sequence[LeafInfo]) -> list[_Module]:
  out = []
  for name, ids in _modules(infos):
    usable = [i for i in ids if 'complex' not in infos[i].dtype]

    def named(*names, usable=usable):
      return next((i for i in usable
                   if infos[i].path and infos[i].path[-1] in names), None)

    out.append(_Module(name, tuple(ids), named('kernel', 'w', 'weight'),
                       named('embedding', 'embeddings', 'embed'),
                       named('bias', 'b'), named('scale', 'gamma')))
  return out


class _Walk:
  """Places the leaves, module by module (see the module docstring)."""

  def __init__(self, infos: Sequence[LeafInfo], heads: Optional[int]):
    self.infos, self.heads = infos, heads
    self.g = _Builder()
    self.unplaced: list[tuple[int, str]] = []
    self.taken: set[int] = set()
    self.current: Optional[int] = None  # the block of the current neurons
    # After an Embed: the (still empty) block for a position table's rows.
    self.positions: Optional[int] = None
    # After an attention: the residual stream's width (a transformer).
    self.stream: Optional[int] = None
    # A sublayer's input stream, until its second layer closes the residual.
    self.pending_residual: Optional[int] = None

  def shape(self, i):
    return self.infos[i].shape

  def width(self) -> int:
    return self.g.blocks[self.current].size

  def edges(self, src, dst, edge_type, leaf=None, kind='matrix',
            columns=None, transposed=False, rows=1):
    piece = None if leaf is None else Piece(leaf, kind, 0, 0, columns,
                                            transposed, rows)
    self.g.add(src, dst, edge_type, piece)
    if leaf is not None:
      self.taken.add(leaf)

  def vector(self, leaf, block, edge_type, name, columns=None, into=None):
    """A node (a feeder of ``into``, default ``block``) with an edge to each
    neuron of ``block``."""
    into = block if into is None else into
    node = self.g.feeder(into, name)
    size = self.g.blocks[block].size
    self.edges((into, 'f', node), (block, 'n', np.arange(size)), edge_type,
               leaf, 'vector', columns)

  def run(self) -> tuple[_Builder, list[tuple[int, str]]]:
    modules = _roles(self.infos)
    k = 0
    while k < len(modules):
      k += self.place(modules, k)
    for m in modules:
      for i in m.ids:
        if i in self.taken or any(i == j for j, _ in self.unplaced):
          continue
        reason = ('complex leaf' if 'complex' in self.infos[i].dtype
                  else 'no rule of the neural graph places it here')
        self.unplaced.append((i, reason))
    return self.g, self.unplaced

  def place(self, modules: Sequence[_Module], k: int) -> int:
    """Places module ``k`` (and maybe the next); returns how many it used."""
    m = modules[k]
    nxt = modules[k + 1] if k + 1 < len(modules) else None
    kernel_rank = len(self.shape(m.kernel)) if m.kernel is not None else 0
    if (m.table is not None and len(self.shape(m.table)) == 2
        and self.positions is not None
        and self.g.blocks[self.positions].size == 0
        and self.shape(m.table)[1] == self.width()):
      self.position_table(m.table)  # a second Embed: the positions
    elif m.table is not None and len(self.shape(m.table)) == 2:
      self.embedding(m)
    elif kernel_rank == 3 and self.is_multi_head(modules[k:k + 4]):
      self.multi_head(modules[k:k + 4])
      return 4
    elif kernel_rank == 2 and self.is_attention(m, nxt):
      self.attention(m, nxt)
      return 2
    elif kernel_rank in (2, 4):
      self.dense(m, nxt)
    elif (m.kernel is None and m.scale is not None
          and self.current is not None
          and self.shape(m.scale) == (self.width(),)):
      self.vector(m.scale, self.current, NORM, 'scale')
      if m.bias is not None and self.shape(m.bias) == (self.width(),):
        self.vector(m.bias, self.current, BIAS, 'bias')
    elif (len(m.ids) == 1 and self.positions is not None
          and self.g.blocks[self.positions].size == 0
          and len(self.shape(m.ids[0])) == 2
          and self.shape(m.ids[0])[1] == self.width()):
      self.position_table(m.ids[0])
    return 1

  def position_table(self, leaf: int) -> None:
    """A ``(positions, width)`` table feeding the stream an Embed made."""
    rows, width = self.shape(leaf)
    self.g.blocks[self.positions].size = rows
    self.edges((self.positions, 'n', np.arange(rows)[:, None]),
               (self.current, 'n', np.arange(width)[None, :]), POSITION,
               leaf)
    self.positions = None

  def embedding(self, m: _Module) -> None:
    vocab, width = self.shape(m.table)
    tokens = self.g.block(f'{m.name}:tokens', vocab)
    # NiNo numbers tokens, positions, then the stream they feed.
    self.positions = self.g.block(f'{m.name}:positions', 0)
    stream = self.g.block(f'{m.name}:out', width)
    self.edges((tokens, 'n', np.arange(vocab)[:, None]),
               (stream, 'n', np.arange(width)[None, :]), EMBEDDING, m.table)
    self.current, self.stream = stream, width

  def chains(self, n_in: int, m: _Module) -> bool:
    if self.current is None:
      self.current = self.g.block(f'{m.name}:in', n_in)
    if n_in % self.width():
      self.unplaced.append((m.kernel, f'its {n_in} inputs do not follow from'
                                      f' the {self.width()} neurons before'
                                      ' it'))
      return False
    return True

  def dense(self, m: _Module, nxt: Optional[_Module]) -> None:
    shape = self.shape(m.kernel)
    conv = len(shape) == 4
    self.positions = None
    if conv and shape[0] * shape[1] > MAX_FEATURES:
      self.unplaced.append((m.kernel, f'a {shape[0]}x{shape[1]} kernel is'
                                      ' larger than the 3x3 NiNo reads'))
      return
    n_in, n_out = shape[-2], shape[-1]
    if not self.chains(n_in, m):
      return
    source = self.current
    out = self.g.block(f'{m.name}:out', n_out)
    if m.bias is not None and self.shape(m.bias) == (n_out,):
      self.vector(m.bias, out, BIAS, 'bias')
    rows = np.arange(n_in)[:, None] % self.width()
    self.edges((source, 'n', rows), (out, 'n', np.arange(n_out)[None, :]),
               CONV if conv else DENSE, m.kernel, 'conv' if conv else 'matrix')
    self.current = out
    # In a transformer, a sublayer D -> X -> D from the residual stream has
    # a residual connection around it (NiNo's c_fc.res): placed when the
    # second layer makes the new stream.
    if (not conv and self.stream is not None and n_in == self.stream
        and nxt is not None and nxt.kernel is not None
        and self.shape(nxt.kernel) == (n_out, n_in)):
      self.pending_residual = source
    elif getattr(self, 'pending_residual', None) is not None and not conv:
      if n_out == self.stream:
        size = self.stream
        self.g.add((self.pending_residual, 'n', np.arange(size)),
                   (out, 'n', np.arange(size)), RESIDUAL)
      self.pending_residual = None

  def is_attention(self, m: _Module, nxt: Optional[_Module]) -> bool:
    """A fused ``(D, 3D)`` q/k/v kernel from the current ``D`` neurons,
    followed by a ``(D, D)`` output projection."""
    shape = self.shape(m.kernel)
    return (self.current is not None and shape[0] == self.width()
            and shape[1] == 3 * shape[0] and nxt is not None
            and nxt.kernel is not None
            and self.shape(nxt.kernel) == (shape[0], shape[0]))

  def attention(self, m: _Module, proj: _Module) -> None:
    """A fused ``(D, 3D)`` q/k/v kernel (and bias), then its projection."""
    d = self.width()
    heads = self.heads
    if heads is None or d % heads:
      why = ('the attention needs its number of heads: nino(heads=...)'
             if heads is None else f'{heads} heads do not divide width {d}')
      for i in (m.kernel, m.bias, proj.kernel, proj.bias):
        if i is not None:
          self.unplaced.append((i, why))
      self.pending_residual = None
      return
    bias = m.bias if (m.bias is not None
                      and self.shape(m.bias) == (3 * d,)) else None
    part = lambda leaf, k: None if leaf is None else (leaf, (k * d,
                                                             (k + 1) * d))
    self.attend(heads, [part(m.kernel, k) for k in range(3)],
                [part(bias, k) for k in range(3)], proj.name, proj.kernel,
                proj.bias if proj.bias is not None
                and self.shape(proj.bias) == (d,) else None, 1)

  def is_multi_head(self, ms: Sequence[_Module]) -> bool:
    """Flax's ``MultiHeadDotProductAttention``: ``query``, ``key``,
    ``value`` kernels ``(D, heads, head_dim)``, then ``out`` ``(heads,
    head_dim, D)``, from the current ``D`` neurons."""
    if len(ms) < 4 or self.current is None:
      return False
    names = [m.name.rsplit('/', 1)[-1] for m in ms]
    if names != ['query', 'key', 'value', 'out'] or any(
        m.kernel is None for m in ms):
      return False
    d = self.width()
    q = self.shape(ms[0].kernel)
    return (len(q) == 3 and q[0] == d and q[1] * q[2] == d
            and all(self.shape(m.kernel) == q for m in ms[1:3])
            and self.shape(ms[3].kernel) == (q[1], q[2], d))

  def multi_head(self, ms: Sequence[_Module]) -> None:
    heads = self.shape(ms[0].kernel)[1]
    bias = lambda m: (None if m.bias is None
                      or int(np.prod(self.shape(m.bias))) != self.width()
                      else (m.bias, None))
    out = ms[3]
    self.attend(heads, [(m.kernel, None) for m in ms[:3]],
                [bias(m) for m in ms[:3]], out.name, out.kernel,
                None if bias(out) is None else out.bias, 2)

  def attend(self, heads, kernels, biases, out_name, out_kernel, out_bias,
             out_rows) -> None:
    """NiNo's GPT-2 attention graph: q, k, v, heads, the value residual.

    ``kernels`` and ``biases``: per q, k, v, ``(leaf, columns)`` (columns of
    a fused leaf, or ``None``), or ``None`` for no bias.
    """
    d = self.width()
    stream = self.current
    q = self.g.block(f'{out_name}:q', d)
    heads_at = [self.g.feeder(q, f'head{h}') for h in range(heads)]
    (q_bias, k_bias, v_bias) = biases
    if q_bias is not None:
      q_node = self.g.feeder(q, 'q.bias')
    if v_bias is not None:
      v_node = self.g.feeder(q, 'v.bias')
    if k_bias is not None:
      k_node = self.g.feeder(stream, f'{out_name}:k.bias')
    v = self.g.block(f'{out_name}:v', d)
    cols = np.arange(d)
    span = d // heads
    for block in (q, v):
      for h, node in enumerate(heads_at):
        self.g.add((q, 'f', node),
                   (block, 'n', np.arange(h * span, (h + 1) * span)), HEAD)
    (qk, qc), (kk, kc), (vk, vc) = kernels
    self.edges((stream, 'n', cols[:, None]), (q, 'n', cols[None, :]), QUERY,
               qk, columns=qc)
    # Keys run from the query neurons back to the stream: edge (q_o, s_i)
    # carries the key kernel's [i, o].
    self.edges((q, 'n', cols[:, None]), (stream, 'n', cols[None, :]), KEY,
               kk, columns=kc, transposed=True)
    self.edges((stream, 'n', cols[:, None]), (v, 'n', cols[None, :]), VALUE,
               vk, columns=vc)
    if q_bias is not None:
      self.edges((q, 'f', q_node), (q, 'n', cols), BIAS, q_bias[0], 'vector',
                 q_bias[1])
    if k_bias is not None:
      self.edges((stream, 'f', k_node), (stream, 'n', cols), BIAS, k_bias[0],
                 'vector', k_bias[1])
    if v_bias is not None:
      self.edges((q, 'f', v_node), (v, 'n', cols), BIAS, v_bias[0], 'vector',
                 v_bias[1])
    out = self.g.block(f'{out_name}:out', d)
    if out_bias is not None:
      self.vector(out_bias, out, BIAS, 'bias')
    self.edges((v, 'n', cols[:, None]), (out, 'n', cols[None, :]), DENSE,
               out_kernel, rows=out_rows)
    self.g.add((stream, 'n', cols), (out, 'n', cols), RESIDUAL)
    self.current, self.stream, self.positions = out, d, None
    self.pending_residual = None


def laplacian_positions(num_nodes: int, src: np.ndarray, dst: np.ndarray,
                        count: int = POSITIONS,
                        dense_below: int = DENSE_EIGEN_NODES) -> np.ndarray:
  r"""The first ``count`` nontrivial eigenvectors of the graph's Laplacian.

  As NiNo (PyG's ``AddLaplacianEigenvectorPE`` on the undirected graph):
  the edges in both directions, duplicates merged, self-loops removed,
  weight 1; :math:`L = I - D^{-1/2} A D^{-1/2}`; its eigenvectors sorted
  by eigenvalue, the first dropped, the next ``count`` kept. NiNo solves
  small graphs (under 100 nodes) densely and larger ones with a Lanczos
  solver from a random start, and flips each column's sign at random; here
  graphs of up to ``dense_below`` nodes are solved densely
  (``numpy.linalg.eigh``), larger ones by ``scipy.sparse.linalg.eigsh``
  from a fixed start, and each column's sign is fixed: its first entry
  within 1e-4 of its largest magnitude is positive. Eigenvectors of a repeated eigenvalue are a basis
  no solver fixes; the graph network was trained with random signs.

  Returns:
    float32 ``(num_nodes, count)`` (zero columns past ``num_nodes - 1``).
  """
  if num_nodes == 0:  # nothing placed: every leaf is forecast per weight
    return np.zeros((0, count), np.float32)
  keep = src != dst
  a, b = src[keep].astype(np.int64), dst[keep].astype(np.int64)
  pairs = np.unique(np.concatenate([a * num_nodes + b, b * num_nodes + a]))
  rows, cols = pairs // num_nodes, pairs % num_nodes
  degree = np.bincount(rows, minlength=num_nodes).astype(np.float64)
  inv = np.where(degree > 0, 1.0 / np.sqrt(np.maximum(degree, 1e-30)), 0.0)
  weights = -inv[rows] * inv[cols]
  want = min(count + 1, num_nodes)
  # scipy comes with jax.
  import scipy.sparse  # pylint: disable=g-import-not-at-top
  import scipy.sparse.linalg  # pylint: disable=g-import-not-at-top
  if num_nodes <= dense_below:
    lap = np.eye(num_nodes)
    lap[rows, cols] += weights
    values, vectors = np.linalg.eigh(lap)
  else:
    lap = scipy.sparse.coo_matrix(
        (np.concatenate([weights, np.ones(num_nodes)]),
         (np.concatenate([rows, np.arange(num_nodes)]),
          np.concatenate([cols, np.arange(num_nodes)]))),
        shape=(num_nodes, num_nodes)).tocsr()
    start = np.cos(np.arange(num_nodes) * 0.618) + 1.5
    values, vectors = scipy.sparse.linalg.eigsh(
        lap, k=want, which='SA', v0=start, tol=1e-8)
  order = np.argsort(values, kind='stable')[:want]
  vectors = vectors[:, order][:, 1:]
  # The sign: the first entry within 1e-4 of the largest magnitude is
  # positive (an index, not a value, breaks ties such as (x, -x)).
  size = np.abs(vectors)
  top = np.argmax(size >= size.max(axis=0) * (1 - 1e-4), axis=0)
  signs = np.sign(vectors[top, np.arange(vectors.shape[1])])
  vectors = vectors * np.where(signs == 0, 1.0, signs)
  out = np.zeros((num_nodes, count), np.float32)
  out[:, :vectors.shape[1]] = vectors
  return out


def _features(g: _Builder, infos: Sequence[LeafInfo]) -> int:
  convs = [infos[p.leaf].shape for p in g.pieces if p.kind == 'conv']
  return max([s[0] * s[1] for s in convs], default=1)


@functools.lru_cache(maxsize=32)
def neural_graph(infos: tuple[LeafInfo, ...],
                 heads: Optional[int] = None) -> NeuralGraph:
  """The neural graph of leaves described by ``infos`` (cached).

  Args:
    infos: One :class:`LeafInfo` per leaf (the params tree's flat order).
    heads: Attention heads (a transformer's attention is placed only with
      it).

  Returns:
    A :class:`NeuralGraph`.
  """
  g, unplaced = _Walk(infos, heads).run()
  num_nodes, src, dst, types, names = g.numbered()
  positions = laplacian_positions(num_nodes, src, dst)
  placed = tuple(sorted({p.leaf for p in g.pieces}))
  return NeuralGraph(
      num_nodes=num_nodes, src=src, dst=dst, edge_type=types,
      features=_features(g, infos), pieces=tuple(g.pieces),
      aux_start=g.count, positions=positions, placed=placed,
      unplaced=tuple(sorted(unplaced)), node_names=names)


def forward_order(params: Any) -> tuple[tuple[str, ...], ...]:
  """The leaves' paths in the order the tree's own mappings hold them.

  A params tree fresh from Flax's ``init`` holds its modules in creation
  (forward) order; ``jax.tree`` functions sort mapping keys, so a tree that
  has been through ``jax.tree.map`` or ``jit`` (e.g. the params inside a
  training step) no longer says its order: take it from the fresh tree.
  """
  out: list[tuple[str, ...]] = []

  def visit(node, prefix):
    if hasattr(node, 'items') and not hasattr(node, 'shape'):
      for k, v in node.items():
        visit(v, prefix + (str(k),))
    elif isinstance(node, (list, tuple)) and not hasattr(node, '_fields'):
      for k, v in enumerate(node):
        visit(v, prefix + (str(k),))
    elif node is not None:
      out.append(prefix)

  visit(params, ())
  return tuple(out)


def leaf_infos(params: Any, labels: Optional[Sequence[str]] = None,
               order: Optional[Sequence[tuple[str, ...]]] = None
               ) -> tuple[LeafInfo, ...]:
  """:class:`LeafInfo` of every leaf of ``params`` (jax's flat order).

  Args:
    params: The params tree (arrays, tracers or shape structs).
    labels: Per leaf, its label (default ``''``).
    order: The leaves' paths in forward order (:func:`forward_order` of a
      fresh params tree); leaves not in it come after, in natural order
      ('Dense_10' after 'Dense_9'). ``None``: natural order.

  Returns:
    One :class:`LeafInfo` per leaf.
  """
  import jax  # pylint: disable=g-import-not-at-top
  flat, _ = jax.tree_util.tree_flatten_with_path(params)
  paths = [tuple(_key(k) for k in path) for path, _ in flat]
  if labels is None:
    labels = [''] * len(flat)
  infos = tuple(
      LeafInfo(path=path, shape=tuple(np.shape(leaf)),
               dtype=str(np.dtype(getattr(leaf, 'dtype', np.float32))),
               label=labels[i], order=i)
      for i, ((_, leaf), path) in enumerate(zip(flat, paths)))
  return reordered(infos, order)


def reordered(infos: Sequence[LeafInfo],
              order: Optional[Sequence[tuple[str, ...]]]
              ) -> tuple[LeafInfo, ...]:
  """``infos`` with ``order`` ranks: the paths in ``order`` first, in its
  order, then the others in natural order."""
  known = {tuple(p): r for r, p in enumerate(order or ())}
  rank = sorted(range(len(infos)), key=lambda i: (
      (0, known[infos[i].path], ()) if infos[i].path in known
      else (1, 0, [_natural(p) for p in infos[i].path])))
  position = {i: r for r, i in enumerate(rank)}
  return tuple(info._replace(order=position[i])
               for i, info in enumerate(infos))


def _key(entry: Any) -> str:
  for attr in ('key', 'name', 'idx'):
    if hasattr(entry, attr):
      return str(getattr(entry, attr))
  return str(entry)


def nino_graph(params: Any, heads: Optional[int] = None,
               order: Optional[Sequence[tuple[str, ...]]] = None
               ) -> NeuralGraph:
  """The neural graph NiNo's forecaster (``load('nino')``) builds of ``params``.

  Built from the shapes and names of the leaves (see
  :mod:`optax_nowcast.forecasters._neural_graph`), once per params
  structure; the same graph a jump of ``nowcast(load('nino'), ...)`` uses
  when no leaf is masked.

  Args:
    params: A params tree (Flax Linen or NNX, or any nested dict of arrays
      in forward order), arrays or ``jax.ShapeDtypeStruct``.
    heads: The attention heads of a transformer (its fused ``(D, 3D)``
      q/k/v kernels are placed only with it).
    order: The leaves' paths in forward order; default: the order
      ``params`` itself holds (:func:`forward_order`: right for a tree
      fresh from Flax's ``init``).

  Returns:
    A :class:`NeuralGraph`: ``num_nodes``, ``src``/``dst``/``edge_type``
    (numpy), ``pieces`` (which edges each leaf became), ``unplaced``
    (leaves forecast per weight instead, with the reason), ``positions``,
    ``node_names``; ``print(graph.summary())`` for an overview.

  Example:
    >>> import jax, jax.numpy as jnp, flax.linen as nn, optax_nowcast as onc
    >>> mlp = nn.Sequential([nn.Dense(4), nn.relu, nn.Dense(2)])
    >>> params = mlp.init(jax.random.key(0), jnp.zeros((1, 3)))['params']
    >>> print(onc.nino_graph(params).summary())
    11 nodes, 37 edges (dense 20, bias 6, self-loop 11), 1 feature(s) per edge
    4 leaves placed, 0 not
  """
  if order is None:
    order = forward_order(params)
  return neural_graph(leaf_infos(params, order=order), heads)
