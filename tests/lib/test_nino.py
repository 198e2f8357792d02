"""NiNo's graph network in JAX equals the reference PyTorch code.

The fixtures (``tests/fixtures/nino/nino_gnn_{mlp,cnn,gpt}.npz``) were made
by the reference code itself (``tests/fixtures/nino/make_gnn_fixtures.py``,
which needs torch; these tests never import it): five states of every
parameter of an MLP, NiNo's FM-16 CNN and a 2-block GPT-2, the reference's
neural graph (edges, types, its own random-signed Laplacian positions) and
its forecasts at horizons 1, 10 and 40 with the released weights.

Here the same states are laid out as a Flax params tree; our neural graph
of that tree must be NiNo's graph (same nodes, same typed edges), and our
forecast, given the reference's node positions, must equal the reference's
within 1e-5 of each tensor's largest value.
"""

import pathlib
from unittest import mock
import warnings

from absl.testing import absltest
from absl.testing import parameterized
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import optax_nowcast as onc
from optax_nowcast.forecasters import _neural_graph
from optax_nowcast.forecasters import _nino

# Compiling dominates: LLVM's -O0 (as the contract battery) changes no
# result these tests check, only how fast the CPU code runs.
_jit = lambda f: jax.jit(
    f, compiler_options={'xla_backend_optimization_level': 0})

FIXTURES = pathlib.Path(__file__).resolve().parents[1] / 'fixtures' / 'nino'
HORIZONS = (1, 10, 40)


def _flax_layout(name: str, w: np.ndarray, model: str) -> np.ndarray:
  """A torch tensor (with a leading state axis) in Flax's layout."""
  if model == 'gpt':  # HF GPT-2's Conv1D weights are (in, out) already
    return w
  if w.ndim == 3:  # Linear (out, in) -> Dense (in, out)
    return np.swapaxes(w, 1, 2)
  if w.ndim == 5:  # Conv2d (out, in, h, w) -> Conv (h, w, in, out)
    return np.transpose(w, (0, 3, 4, 2, 1))
  return w


def _torch_layout(w: np.ndarray, model: str) -> np.ndarray:
  """The inverse of :func:`_flax_layout` without the state axis."""
  if model == 'gpt':
    return w
  if w.ndim == 2:
    return w.T
  if w.ndim == 4:
    return np.transpose(w, (3, 2, 0, 1))
  return w


def _gpt_path(name: str) -> tuple[str, ...]:
  """``transformer.h.0.attn.c_attn.weight`` -> ``('h_0', 'c_attn', 'kernel')``."""
  parts = name.split('.')[1:]
  if parts[0] == 'wte':
    return ('wte', 'embedding')
  if parts[0] == 'wpe':
    return ('wpe',)
  leaf = {'weight': 'kernel', 'bias': 'bias'}[parts[-1]]
  if parts[0] == 'ln_f':
    return ('ln_f', 'scale' if leaf == 'kernel' else 'bias')
  block, module = f'h_{parts[1]}', parts[-2]
  if module.startswith('ln_'):
    leaf = 'scale' if leaf == 'kernel' else 'bias'
  if parts[-3] == 'mlp':
    module = 'mlp_' + module
  return (block, module, leaf)


def _layer_path(name: str, index: int, kind: str) -> tuple[str, ...]:
  return (f'{kind}_{index}', 'kernel' if name.endswith('weight') else 'bias')


def _as_multi_head(tree: dict, heads: int) -> dict:
  """The GPT-2 tree with Flax ``MultiHeadDotProductAttention`` leaves: the
  fused ``c_attn`` split into ``query``/``key``/``value`` kernels ``(D,
  heads, head_dim)`` and biases ``(heads, head_dim)``, ``c_proj`` as ``out``
  ``(heads, head_dim, D)``; same values."""
  out = {}
  for name, node in tree.items():
    if not (isinstance(node, dict) and 'c_attn' in node):
      out[name] = node
      continue
    block = {}
    for key, module in node.items():
      if key == 'c_attn':
        w, b = module['kernel'], module['bias']  # (5, D, 3D), (5, 3D)
        d = w.shape[2]
        attention = {}
        for k, part in enumerate(('query', 'key', 'value')):
          attention[part] = {
              'kernel': w[:, :, k * d // 3:(k + 1) * d // 3].reshape(
                  w.shape[0], w.shape[1], heads, -1),
              'bias': b[:, k * d // 3:(k + 1) * d // 3].reshape(
                  b.shape[0], heads, -1)}
        block['attention'] = attention
      elif key == 'c_proj':
        w = module['kernel']
        block['attention']['out'] = {
            'kernel': w.reshape(w.shape[0], heads, -1, w.shape[-1]),
            'bias': module['bias']}
      else:
        block[key] = module
    out[name] = block
  return out


def _load(model: str):
  """(params tree of 5-state windows, names, paths, fixture)."""
  z = np.load(FIXTURES / f'nino_gnn_{model}.npz')
  names = [str(n) for n in z['names']]
  tree: dict = {}
  paths = []
  layer, kind = -1, 'Dense'
  for name in names:
    w = z[f'w/{name}']
    if model == 'gpt':
      path = _gpt_path(name)
    else:
      if name.endswith('weight'):
        layer, kind = layer + 1, 'Conv' if w.ndim == 5 else 'Dense'
      path = _layer_path(name, layer, kind)
    node = tree
    for key in path[:-1]:
      node = node.setdefault(key, {})
    node[path[-1]] = _flax_layout(name, w, model)
    paths.append(path)
  return tree, names, paths, z


def _infos(tree) -> tuple:
  # jax.tree.map sorts the keys: the forward order comes from the tree.
  states = jax.tree.map(lambda w: w[-1], tree)
  return _neural_graph.leaf_infos(states,
                                  order=_neural_graph.forward_order(tree))


def _edge_multiset(src, dst, types):
  triples = np.stack([src, dst, types], 1).astype(np.int64)
  return triples[np.lexsort(triples.T[::-1])]


def _assert_same_span(test, ours, theirs, eigenvalues):
  q, _ = np.linalg.qr(np.asarray(theirs, np.float64))
  residual = ours - q @ (q.T @ ours)
  values = eigenvalues[1:]
  whole = ~np.isclose(values, values[-1], atol=1e-6)
  test.assertLess(float(np.abs(residual[:, whole]).max()), 1e-4)


class NeuralGraphTest(parameterized.TestCase):

  @parameterized.parameters('mlp', 'cnn', 'gpt')
  def test_same_graph_as_reference(self, model):
    tree, _, _, z = _load(model)
    graph = _neural_graph.neural_graph(_infos(tree), 2 if model == 'gpt'
                                       else None)
    self.assertEqual(graph.unplaced, ())
    self.assertEqual(graph.num_nodes, int(z['num_nodes']))
    self.assertEqual(graph.features, int(z['feat']))
    ours = _edge_multiset(graph.src, graph.dst, graph.edge_type)
    theirs = _edge_multiset(z['edge_index'][0], z['edge_index'][1],
                            z['edge_type'])
    np.testing.assert_array_equal(ours, theirs)

  @parameterized.parameters('mlp', 'cnn', 'gpt')
  def test_positions_span_the_reference_eigenspaces(self, model):
    tree, _, _, z = _load(model)
    graph = _neural_graph.neural_graph(_infos(tree), 2 if model == 'gpt'
                                       else None)
    # Same Laplacian spectrum, and each column a unit eigenvector with its
    # largest entry positive.
    ours = np.linalg.norm(graph.positions, axis=0)
    np.testing.assert_allclose(ours, 1.0, atol=1e-5)
    size = np.abs(graph.positions)
    top = np.argmax(size >= size.max(0) * (1 - 1e-4), axis=0)
    self.assertTrue(np.all(graph.positions[top, range(8)] > 0))
    # The span of ours equals the span of the reference's columns (up to
    # the last eigenvalue's multiplicity, which may cut an eigenspace).
    _assert_same_span(self, graph.positions, z['pos'], z['pos_eigvals'])

  def test_sparse_solver_spans_the_dense_one(self):
    tree, _, _, z = _load('gpt')
    infos = _infos(tree)
    dense = _neural_graph.neural_graph(infos, 2).positions
    graph = _neural_graph.neural_graph(infos, 2)
    sparse = _neural_graph.laplacian_positions(
        graph.num_nodes, graph.src, graph.dst, dense_below=0)
    _assert_same_span(self, sparse, dense, z['pos_eigvals'])


class EquivalenceTest(parameterized.TestCase):

  @parameterized.parameters(('mlp', _nino.BLOCK), ('cnn', _nino.BLOCK),
                            ('gpt', _nino.BLOCK), ('cnn', 16), ('gpt', 16))
  def test_equals_reference(self, model, block):
    # (Blocks of 16 edges: a piece spans many, its last overlapping the one
    # before, and every edge must still count once.)
    tree, names, paths, z = _load(model)
    infos = _infos(tree)
    graph = _neural_graph.neural_graph(infos, 2 if model == 'gpt' else None)
    graph = graph._replace(positions=z['pos'])  # the reference's own signs
    weights = onc.forecasters.load('nino').weights
    windows = [tuple(jnp.asarray(w)) for w in jax.tree.leaves(tree)]
    out = _jit(lambda ws: _nino.forecast_on_graph(
        weights, graph, ws, jnp.array(HORIZONS, jnp.float32),
        [''] * len(ws), block=block))(windows)
    flat_paths = [tuple(_neural_graph._key(k) for k in p) for p, _ in
                  jax.tree_util.tree_flatten_with_path(tree)[0]]
    for t, horizon in enumerate(HORIZONS):
      for name, path in zip(names, paths):
        got = _torch_layout(np.asarray(out[flat_paths.index(path)][t]), model)
        want = z[f'y{horizon}/{name}']
        scale = np.abs(want).max()
        np.testing.assert_allclose(got / scale, want / scale, rtol=0,
                                   atol=1e-5, err_msg=f'{name} k={horizon}')


  @parameterized.parameters('mlp', 'cnn', 'gpt')
  def test_every_piece_joins_nodes_by_a_formula(self, model):
    # No per-edge table but the auxiliary edges' is compiled into a jump.
    tree, _, _, _ = _load(model)
    graph = _neural_graph.neural_graph(_infos(tree),
                                       2 if model == 'gpt' else None)
    shapes = {i: w.shape[1:] for i, w in enumerate(jax.tree.leaves(tree))}
    pieces, ends = _nino._piece_table(graph, shapes, shapes)
    affine = pieces[:-1, _nino._PIECE.index('affine')]
    self.assertTrue(bool(np.all(affine == 1)))
    self.assertEqual(ends.shape, (3, graph.num_edges - graph.aux_start + 1))

  def test_pieces_read_from_the_table_equal_the_reference(self):
    # The general path (a piece whose nodes follow no formula) on the GPT.
    tree, names, paths, z = _load('gpt')
    graph = _neural_graph.neural_graph(_infos(tree), 2)
    graph = graph._replace(positions=z['pos'])
    weights = onc.forecasters.load('nino').weights
    windows = [tuple(jnp.asarray(w)) for w in jax.tree.leaves(tree)]
    with mock.patch.object(_nino, '_affine', lambda graph, row: None):
      out = _jit(lambda ws: _nino.forecast_on_graph(
          weights, graph, ws, jnp.array([10.0]), [''] * len(ws),
          block=16))(windows)
    flat_paths = [tuple(_neural_graph._key(k) for k in p) for p, _ in
                  jax.tree_util.tree_flatten_with_path(tree)[0]]
    for name, path in zip(names, paths):
      got = _torch_layout(np.asarray(out[flat_paths.index(path)][0]), 'gpt')
      want = z[f'y10/{name}']
      scale = np.abs(want).max()
      np.testing.assert_allclose(got / scale, want / scale, rtol=0,
                                 atol=1e-5, err_msg=name)

  @pytest.mark.slow  # compiles the whole graph network twice
  def test_flax_multi_head_attention_is_placed_as_fused_attention(self):
    # The same GPT-2 with Flax's MultiHeadDotProductAttention layout: the
    # same graph (heads read from the kernels' shapes) and forecasts.
    tree, _, _, z = _load('gpt')
    mha = _as_multi_head(tree, heads=2)
    states = jax.tree.map(lambda w: w[-1], mha)
    infos = _neural_graph.leaf_infos(
        states, order=_neural_graph.forward_order(mha))
    graph = _neural_graph.neural_graph(infos)  # no heads given
    self.assertEqual(graph.unplaced, ())
    np.testing.assert_array_equal(
        _edge_multiset(graph.src, graph.dst, graph.edge_type),
        _edge_multiset(z['edge_index'][0], z['edge_index'][1],
                       z['edge_type']))
    # Every edge carries the same values as in the fused layout (q/k/v
    # are separate tensors here, so NiNo scales them apart: compare the
    # unscaled features), and forecasts come back in the leaves' shapes.
    fused = _neural_graph.neural_graph(_infos(tree), 2)

    def features(g, t):
      windows = [jnp.asarray(w) for w in jax.tree.leaves(t)]
      attr = np.asarray(_nino.graph_attr(g, dict(enumerate(windows))))
      order = np.lexsort((g.edge_type, g.dst, g.src))
      return attr[order]

    np.testing.assert_array_equal(features(graph, mha), features(fused, tree))
    weights = onc.forecasters.load('nino').weights
    out = _nino.forecast_on_graph(
        weights, graph, [tuple(jnp.asarray(w)) for w in jax.tree.leaves(mha)],
        jnp.array([10.0]), [''] * len(infos))
    for got, info in zip(out, infos):
      self.assertEqual(got.shape, (1,) + info.shape)
      self.assertTrue(bool(jnp.all(jnp.isfinite(got))))


def _split_spec(shape, kind):
  """Rows over 2 'data' shards and columns over 4 'model' shards, where
  they divide (the first input and output axes: what the graph follows)."""
  rows, cols = {'conv': ((2,), (3,)), 'vector': ((), (0,))}.get(
      kind, ((0,), (len(shape) - 1,)))
  spec = [None] * len(shape)
  for axes, name, size in ((cols, 'model', 4), (rows, 'data', 2)):
    if axes and shape[axes[0]] % size == 0:
      spec[axes[0]] = name
  return tuple(spec)


def _shard_blocks(x, spec):
  """``x`` cut into ``(2, 4, *local)``: the block each of 2 x 4 devices holds
  (replicated along an axis the spec does not name)."""
  sizes = {'data': 2, 'model': 4}
  out = np.empty((2, 4), object)
  for a in range(2):
    for b in range(4):
      index = {'data': a, 'model': b}
      cut = tuple(slice(None) if n is None else slice(
          index[n] * (x.shape[d] // sizes[n]),
          (index[n] + 1) * (x.shape[d] // sizes[n]))
                  for d, n in enumerate(spec))
      out[a, b] = x[cut]
  return np.stack([np.stack(list(row)) for row in out])


class ShardedNetworkTest(parameterized.TestCase):
  """The network on each device's shards, devices emulated by named
  ``vmap`` axes (``psum`` and ``axis_index`` work there as under
  ``shard_map``); tests/lib/_sharded_script.py runs it on 8 CPU devices."""

  @parameterized.parameters('mlp', 'cnn', 'gpt')
  def test_shards_with_reduced_sums_equal_the_reference(self, model):
    tree, names, paths, z = _load(model)
    infos = _infos(tree)
    graph = _neural_graph.neural_graph(infos, 2 if model == 'gpt' else None)
    graph = graph._replace(positions=z['pos'])
    kinds = {p.leaf: p.kind for p in graph.pieces}
    leaves = [np.asarray(w) for w in jax.tree.leaves(tree)]
    specs = {i: _split_spec(w.shape[1:], kinds[i])
             for i, w in enumerate(leaves)}
    # Leaves split on both mesh axes, and leaves split on one and
    # replicated along the other (counted once in the sums); the GPT's
    # fused q/k/v columns (48 over 4 shards) straddle devices.
    split = [sum(a is not None for a in s) for s in specs.values()]
    self.assertIn(2, split)
    self.assertIn(1, split)
    shards = _nino.Shards((('data', 2), ('model', 4)), specs,
                          {i: w.shape[1:] for i, w in enumerate(leaves)})
    blocks = [_shard_blocks(np.moveaxis(w, 0, -1), specs[i])
              for i, w in enumerate(leaves)]  # (2, 4, *local, 5)
    weights = onc.forecasters.load('nino').weights['graph']
    horizons = jnp.array(HORIZONS, jnp.float32)

    def device(local):
      windows = [tuple(jnp.moveaxis(x, -1, 0)) for x in local]
      return _nino.network(weights, graph, windows, horizons, block=16,
                           shards=shards)

    per_device = _jit(jax.vmap(jax.vmap(device, axis_name='model'),
                               axis_name='data'))(blocks)
    flat_paths = [tuple(_neural_graph._key(k) for k in p) for p, _ in
                  jax.tree_util.tree_flatten_with_path(tree)[0]]
    for slot, leaf in enumerate(graph.placed):
      got = np.asarray(per_device[slot])  # (2, 4, T, *local)
      whole = np.zeros((len(HORIZONS),) + leaves[leaf].shape[1:], np.float32)
      for a in range(2):
        for b in range(4):
          spec = specs[leaf]
          cut = tuple(slice(None) if n is None else slice(
              (a if n == 'data' else b) * (whole.shape[d + 1] // {
                  'data': 2, 'model': 4}[n]),
              ((a if n == 'data' else b) + 1) * (whole.shape[d + 1] // {
                  'data': 2, 'model': 4}[n]))
                      for d, n in enumerate(spec))
          whole[(slice(None),) + cut] = got[a, b]
      name = names[paths.index(flat_paths[leaf])]
      for t, horizon in enumerate(HORIZONS):
        want = z[f'y{horizon}/{name}']
        scale = np.abs(want).max()
        np.testing.assert_allclose(
            _torch_layout(whole[t], model) / scale, want / scale, rtol=0,
            atol=1e-5, err_msg=f'{name} k={horizon}')

  def test_leaves_on_one_device_run_the_network_whole(self):
    # (A split the graph cannot follow falls back to nino-mlp with a
    # warning: checked on 8 devices, tests/lib/_sharded_script.py.)
    tree, _, _, _ = _load('mlp')
    graph = _neural_graph.neural_graph(_infos(tree))
    windows = [tuple(jnp.asarray(w)) for w in jax.tree.leaves(tree)]
    self.assertIsNone(_nino._where(graph, windows))


class InsideNowcastTest(absltest.TestCase):

  def test_jump_sets_the_reference_forecast(self):
    # Five records 1 step apart of the MLP's states; the jump at the fifth
    # puts the params at NiNo's forecast (computed with our positions).
    tree, _, _, _ = _load('mlp')
    f = onc.forecasters.load('nino')
    states = [jax.tree.map(lambda w, t=t: jnp.asarray(w[t]), tree)
              for t in range(5)]
    tx = onc.nowcast(f, record_every=1, jump_every=5, horizon=10,
                     last_jump_step=5)
    params = states[0]
    state = tx.init(params)
    step = _jit(tx.update)
    for t in range(5):  # updates that move the params to states[t]
      updates = jax.tree.map(lambda a, b: a - b, states[t], params)
      updates, state = step(updates, state, params)
      params = optax.apply_updates(params, updates)
    self.assertEqual(int(state.jumps), 1)
    windows = [tuple(jnp.asarray(w)) for w in jax.tree.leaves(tree)]
    infos = _infos(tree)
    expected = _jit(lambda ws: _nino.forecast_leaves(
        f.weights, ws, jnp.arange(-4.0, 1.0), jnp.array([10.0]), infos))(
            windows)
    for got, want in zip(jax.tree.leaves(params), expected):
      np.testing.assert_allclose(got, want[0], rtol=0, atol=1e-5)

  @pytest.mark.slow  # compiles the whole graph network twice
  def test_checked_jump_runs_once_and_keeps_the_best_horizon(self):
    # value_fn is the distance to NiNo's forecast at twice the horizon: the
    # checked jump must pick select's 2.0 and land exactly there.
    tree, _, _, _ = _load('mlp')
    f = onc.forecasters.load('nino')
    states = [jax.tree.map(lambda w, t=t: jnp.asarray(w[t]), tree)
              for t in range(5)]
    windows = [tuple(jnp.asarray(w)) for w in jax.tree.leaves(tree)]
    best = _nino.forecast_leaves(f.weights, windows, jnp.arange(-4.0, 1.0),
                                 jnp.array([8.0]), _infos(tree))
    best = jax.tree.unflatten(jax.tree.structure(states[0]),
                              [b[0] for b in best])

    def value_fn(p):
      return sum(jnp.sum((a - b) ** 2) for a, b in
                 zip(jax.tree.leaves(p), jax.tree.leaves(best)))

    tx = onc.nowcast(f, record_every=1, jump_every=5, horizon=4,
                     select=(0.5, 1.0, 2.0))
    params = states[0]
    state = tx.init(params)
    step = _jit(lambda u, s, p: tx.update(u, s, p, value_fn=value_fn))
    for t in range(5):
      updates = jax.tree.map(lambda a, b: a - b, states[t], params)
      updates, state = step(updates, state, params)
      params = optax.apply_updates(params, updates)
    np.testing.assert_array_equal(state.selected, [0, 0, 0, 1])
    for got, want in zip(jax.tree.leaves(params), jax.tree.leaves(best)):
      np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)

  def test_unplaced_leaf_is_forecast_per_weight_with_one_warning(self):
    params = {'Dense_0': {'kernel': jnp.ones((3, 4)), 'bias': jnp.ones(4)},
              'odd': {'thing': jnp.ones((7, 5, 2))}}
    infos = _neural_graph.leaf_infos(params)
    graph = _neural_graph.neural_graph(infos)
    self.assertEqual([infos[i].path for i, _ in graph.unplaced],
                     [('odd', 'thing')])
    f = onc.forecasters.load('nino')
    windows = [tuple(w * (1 + 0.1 * t) for t in range(5))
               for w in jax.tree.leaves(params)]
    _nino._WARNED.clear()
    def forecast(ws):
      return _nino.forecast_leaves(f.weights, ws, jnp.arange(-4.0, 1.0),
                                   jnp.array([3.0]), infos)

    with warnings.catch_warnings(record=True) as caught:
      warnings.simplefilter('always')
      out = _jit(forecast)(windows)
      jax.eval_shape(forecast, windows)  # traced again: no second warning
    messages = [str(w.message) for w in caught]
    self.assertLen(messages, 1)
    self.assertIn('odd/thing', messages[0])
    from optax_nowcast.forecasters import _nino_mlp  # pylint: disable=g-import-not-at-top
    k = [i for i, info in enumerate(infos) if info.path == ('odd', 'thing')][0]
    want = _nino_mlp.forecast_leaf(f.weights['mlp'], jnp.stack(windows[k]),
                                   3.0, infos[k].label)
    np.testing.assert_allclose(out[k][0], want, rtol=1e-6)

  def test_params_of_one_bare_array_are_forecast_per_weight(self):
    # A tree without names (optax's test problems: params are one array):
    # the neural graph places nothing, and every leaf goes to nino-mlp.
    params = jnp.array([-1.0, 10.0, 1.0])
    infos = _neural_graph.leaf_infos(params)
    graph = _neural_graph.neural_graph(infos)
    self.assertEqual(graph.num_nodes, 0)
    self.assertEqual([i for i, _ in graph.unplaced], [0])
    f = onc.forecasters.load('nino')
    window = tuple(params * (1 + 0.1 * t) for t in range(5))
    _nino._WARNED.clear()
    with warnings.catch_warnings(record=True) as caught:
      warnings.simplefilter('always')
      out = _nino.forecast_leaves(f.weights, [window], jnp.arange(-4.0, 1.0),
                                  jnp.array([3.0]), infos)
    # The warning names the leaf even though it has no path.
    messages = [str(w.message) for w in caught]
    self.assertLen(messages, 1)
    self.assertIn('instead: (the params array itself) (', messages[0])
    from optax_nowcast.forecasters import _nino_mlp  # pylint: disable=g-import-not-at-top
    want = _nino_mlp.forecast_leaf(f.weights['mlp'], jnp.stack(window), 3.0,
                                   infos[0].label)
    np.testing.assert_allclose(out[0][0], want, rtol=1e-6)


if __name__ == '__main__':
  absltest.main()
