"""Runs in its own process with 8 CPU devices (see test_sharding.py).

Shards the params over a mesh, FSDP-style, and checks that the nowcast
history is sharded like the params, that a compiled update (jump included)
moves no weights between devices, and that the numbers match one device.
Prints one line per check and 'ALL OK' at the end. The argument names the
mesh axis type to check (``explicit`` or ``auto``; both if none), so the
two can run in parallel processes.
"""

import sys

import jax

jax.config.update('jax_num_cpu_devices', 8)

import functools  # noqa: E402
import re  # noqa: E402
import warnings  # noqa: E402

import flax.linen as nn  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from jax.sharding import NamedSharding, PartitionSpec as P  # noqa: E402

import optax_nowcast as onc  # noqa: E402
from optax_nowcast import _group  # noqa: E402
from optax_nowcast import _labels  # noqa: E402

COLLECTIVES = ('all-gather', 'all-reduce', 'all-to-all', 'collective-permute',
               'reduce-scatter')


AXIS_TYPES = {'explicit': jax.sharding.AxisType.Explicit,
              'auto': jax.sharding.AxisType.Auto}


def main(names):
  assert jax.device_count() == 8, jax.devices()
  unknown = set(names) - set(AXIS_TYPES)
  assert not unknown, f'unknown axis types {unknown}; known: {list(AXIS_TYPES)}'
  for axis_type in (AXIS_TYPES[n] for n in names or AXIS_TYPES):
    print(f'mesh axis type {axis_type}')
    check(jax.make_mesh((8,), ('fsdp',), axis_types=(axis_type,)))
    for layout in ('fsdp', 'tensor-parallel'):
      check_transformer(layout, axis_type)
    if axis_type == jax.sharding.AxisType.Explicit:
      for model in ('mlp', 'cnn', 'gpt'):
        check_nino_reference(model)
      for layout in ('fsdp', 'tensor-parallel', 'tensor-parallel-checked',
                     'head-dim'):
        check_nino_transformer(layout)
    else:
      check_nino_auto(axis_type)
  print('ALL OK')


def check_nino_auto(axis_type):
  """On auto mesh axes (no sharding stated while tracing) nowcast(nino)
  says it runs per weight (nino-mlp), and moves no weight."""
  mesh = jax.make_mesh((2, 4), ('data', 'model'), axis_types=(axis_type,) * 2)
  host = TinyGPT().init(jax.random.key(0), jnp.zeros((2, 8), jnp.int32))[
      'params']
  specs = jax.tree_util.tree_map_with_path(
      functools.partial(transformer_spec, 'tensor-parallel'), host)
  params = jax.device_put(host, jax.tree.map(
      lambda s: NamedSharding(mesh, s), specs))
  tx = onc.nowcast(onc.forecasters.load('nino', heads=4, params=host),
                   record_every=1, jump_every=5, last_jump_step=2**31 - 1)
  state = jax.jit(tx.init)(params)
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter('always')
    hlo = jax.jit(tx.update).lower(params, state, params).compile().as_text()
  said = [str(c.message) for c in caught if 'per weight' in str(c.message)]
  assert said and 'nino-mlp' in said[0], [str(c.message) for c in caught]
  _, weights_moving = weights_moved(hlo, 0)
  assert not weights_moving, weights_moving
  print('nino on auto axes: says it runs per weight (nino-mlp); no weight'
        ' moves')


def weights_moved(hlo, rows):
  """The collectives of a compiled HLO text that move weights: all but
  all-reduces of scalars, of a graph's per-leaf statistics (``f32[S]``) and
  of its node sums (``f32[rows,128]``)."""
  allowed = (r'[sf]32\[\]', r'f32\[\d+\]', rf'f32\[{rows},128\]')
  one = '(?:' + '|'.join(allowed) + r')(?:\{[^}]*\})?'
  moving = [re.sub(r'/\*index=\d+\*/', '', line.strip())
            for line in hlo.splitlines()
            if any(f' {c}(' in line or f' {c}-start(' in line
                   for c in COLLECTIVES)]
  return moving, [line for line in moving if not re.search(
      rf'= \(?{one}(, {one})*\)? all-reduce', line)]


def nino_spec(shape, kind):
  """A 2 x 4 mesh: the first output axis on 'model', the first input axis
  on 'data', where they divide (``kind``: the graph's piece kind)."""
  rows, cols = {'conv': ((2,), (3,)), 'vector': ((), (0,))}.get(
      kind, ((0,), (len(shape) - 1,)))
  spec = [None] * len(shape)
  for axes, name, size in ((cols, 'model', 4), (rows, 'data', 2)):
    if axes and shape[axes[0]] % size == 0:
      spec[axes[0]] = name
  return P(*spec)


def check_nino_reference(model):
  """NiNo's graph network on windows sharded over a 2 x 4 mesh (rows on
  'data', columns on 'model'; the GPT's fused q/k/v columns straddle
  devices) equals the reference's forecasts, moving no weight."""
  import test_nino  # noqa: E402  (tests/lib: this script's directory)
  from optax_nowcast.forecasters import _neural_graph, _nino
  mesh = jax.make_mesh((2, 4), ('data', 'model'),
                       axis_types=(jax.sharding.AxisType.Explicit,) * 2)
  tree, names, paths, z = test_nino._load(model)
  infos = test_nino._infos(tree)
  graph = _neural_graph.neural_graph(infos, 2 if model == 'gpt' else None)
  graph = graph._replace(positions=z['pos'])
  kinds = {p.leaf: p.kind for p in graph.pieces}
  weights = onc.forecasters.load('nino').weights
  host = [tuple(jnp.asarray(w)) for w in jax.tree.leaves(tree)]
  specs = [nino_spec(w[0].shape, kinds[i]) for i, w in enumerate(host)]
  windows = [tuple(jax.device_put(w, NamedSharding(mesh, s)) for w in ws)
             for ws, s in zip(host, specs)]
  sharded = sum(any(a is not None for a in s) for s in specs)
  assert sharded >= len(specs) // 2, (model, specs)
  horizons = jnp.array(test_nino.HORIZONS, jnp.float32)
  run = jax.jit(lambda ws: _nino.forecast_on_graph(
      weights, graph, ws, horizons, [''] * len(ws), block=16))
  with warnings.catch_warnings():
    warnings.simplefilter('error')  # no fallback to nino-mlp
    out = run(windows)
    hlo = run.lower(windows).compile().as_text()
  moving, weights_moving = weights_moved(hlo, graph.num_nodes + 1)
  assert not weights_moving, (model, weights_moving)
  assert any(f'f32[{graph.num_nodes + 1},128]' in m for m in moving), moving
  flat_paths = [tuple(_neural_graph._key(k) for k in p) for p, _ in
                jax.tree_util.tree_flatten_with_path(tree)[0]]
  for t, horizon in enumerate(test_nino.HORIZONS):
    for name, path in zip(names, paths):
      k = flat_paths.index(path)
      assert out[k].sharding.is_equivalent_to(
          NamedSharding(mesh, P(None, *specs[k])), out[k].ndim), (name,)
      got = test_nino._torch_layout(np.asarray(out[k][t]), model)
      want = z[f'y{horizon}/{name}']
      scale = np.abs(want).max()
      np.testing.assert_allclose(got / scale, want / scale, rtol=0,
                                 atol=1e-5, err_msg=f'{name} k={horizon}')
  print(f'nino {model}: sharded over 2 x 4 ({sharded} of {len(specs)} leaves'
        f' split), equals the reference; only node sums and statistics'
        f' cross devices ({len(moving)} all-reduce)')


def check_nino_transformer(layout):
  """nowcast(nino) on a sharded transformer: the graph network runs on each
  device's shards and the run matches one device (checked jumps too: the
  network runs once for every candidate horizon); a split the graph cannot
  follow (a head's own axis) falls back to nino-mlp with a warning."""
  import warnings as w  # noqa: E402
  explicit = jax.sharding.AxisType.Explicit
  shape, names = (((8,), ('fsdp',)) if layout == 'fsdp'
                  else ((2, 4), ('data', 'model')))
  mesh = jax.make_mesh(shape, names, axis_types=(explicit,) * len(shape))
  model = TinyGPT()
  tokens = jax.random.randint(jax.random.key(1), (8, 9), 0, 32)
  host = model.init(jax.random.key(0), tokens[:, :-1])['params']
  checked = layout.endswith('-checked')
  rule = functools.partial(
      transformer_spec, 'fsdp' if layout == 'fsdp' else 'tensor-parallel')
  specs = jax.tree_util.tree_map_with_path(rule, host)
  if layout == 'head-dim':  # queries split along the head's own axis
    specs = jax.tree_util.tree_map_with_path(
        lambda path, s, leaf: P(None, None, 'model')
        if 'query' in str(path) and leaf.ndim == 3 else s, specs, host)
  params = jax.device_put(host, jax.tree.map(
      lambda s: NamedSharding(mesh, s), specs))
  tx = optax.chain(optax.adam(1e-2), onc.nowcast(
      onc.forecasters.load('nino', heads=4, params=host), record_every=1,
      jump_every=5, **(dict(select=(0.5, 1.0)) if checked
                       else dict(last_jump_step=2**31 - 1))))

  def value_fn(p):  # elementwise, so that its sum is the same everywhere
    return sum(jnp.sum((a - 0.1) ** 2) for a in jax.tree.leaves(p))

  def ustep(p, s, t):
    u, s = tx.update(jax.tree.map(lambda a: jnp.cos(3.0 * a + t), p), s, p,
                     **(dict(value_fn=value_fn) if checked else {}))
    return optax.apply_updates(p, u), s

  name = f'nino transformer {layout}'
  state = jax.jit(tx.init)(params)
  with w.catch_warnings(record=True) as caught:
    w.simplefilter('always')
    hlo = jax.jit(ustep, donate_argnums=(1,)).lower(
        params, state, jnp.float32(0)).compile().as_text()
  fell_back = [str(c.message) for c in caught
               if 'cannot follow' in str(c.message)]
  assert bool(fell_back) == (layout == 'head-dim'), (name, fell_back)
  rows = onc.nino_graph(host, heads=4).num_nodes + 1
  moving, weights_moving = weights_moved(hlo, rows)
  assert not weights_moving, (name, weights_moving)
  jstep = jax.jit(ustep, donate_argnums=(1,))
  p, s = params, state
  for t in range(10):
    p, s = jstep(p, s, jnp.float32(t))
  if checked:  # two checked jumps, each choosing a candidate
    assert int(jnp.sum(s[1].selected)) == 2, s[1].selected
  else:
    assert int(s[1].jumps) == 2, int(s[1].jumps)
  for a, b in zip(jax.tree.leaves(p), jax.tree.leaves(params)):
    assert a.sharding.is_equivalent_to(b.sharding, a.ndim), name
    assert bool(jnp.all(jnp.isfinite(a))), name
  if fell_back:
    print(f'{name}: falls back to nino-mlp with a warning, no weight moves,'
          ' two jumps, shardings unchanged')
    return
  # One device: a mesh of one (its leaves' sharding is stated, so the jump
  # runs the graph network whole there too).
  one = jax.make_mesh((1,), ('one',), axis_types=(explicit,),
                      devices=jax.devices()[:1])
  p1 = jax.device_put(host, NamedSharding(one, P()))
  s1 = jax.jit(tx.init)(p1)
  step1 = jax.jit(ustep)
  for t in range(10):
    p1, s1 = step1(p1, s1, jnp.float32(t))
  jax.tree.map(functools.partial(np.testing.assert_allclose,
                                 rtol=1e-5, atol=1e-6), p, p1)
  print(f'{name}: graph network on each device\'s shards (node sums'
        f' reduced, {len(moving)} all-reduce, no weight moved), two jumps,'
        ' matches one device')


class Block(nn.Module):
  """A pre-norm transformer block (attention, MLP), as in a GPT."""

  @nn.compact
  def __call__(self, x):
    mask = nn.make_causal_mask(jnp.ones(x.shape[:2]))
    x = x + nn.MultiHeadDotProductAttention(4, name='attention')(
        nn.LayerNorm()(x), mask=mask)
    h = nn.gelu(nn.Dense(64, name='up')(nn.LayerNorm()(x)))
    return x + nn.Dense(16, name='down')(h)


class TinyGPT(nn.Module):
  """Two blocks of width 16, a 32-token vocabulary: 38 leaves."""

  @nn.compact
  def __call__(self, tokens):
    x = nn.Embed(32, 16)(tokens)
    x = x + nn.Embed(8, 16)(jnp.arange(tokens.shape[1]))
    for _ in range(2):
      x = Block()(x)
    return nn.Dense(32)(nn.LayerNorm()(x))


def transformer_spec(layout, path, leaf):
  """FSDP: the largest axis that 8 devices divide on 'fsdp'. Tensor-parallel
  (Megatron): attention heads and the MLP's hidden units on 'model' (the
  'data' axis replicates the params)."""
  names = [getattr(k, 'key', '') for k in path]
  if names[-1] == 'embedding':  # replicated: a sharded table's lookup is
    return P()                  # ambiguous on explicit axes
  if layout == 'fsdp':
    axes = [a for a in range(leaf.ndim) if leaf.shape[a] % 8 == 0]
    if not axes:
      return P()
    best = max(axes, key=lambda a: leaf.shape[a])
    return P(*['fsdp' if a == best else None for a in range(leaf.ndim)])
  if 'attention' in names:
    if names[-2] in ('query', 'key', 'value'):  # (d, heads, hd), (heads, hd)
      return P(None, 'model', None) if leaf.ndim == 3 else P('model', None)
    if names[-2] == 'out' and leaf.ndim == 3:  # (heads, hd, d)
      return P('model', None, None)
  if 'up' in names:
    return P(None, 'model') if leaf.ndim == 2 else P('model')
  if 'down' in names and leaf.ndim == 2:
    return P('model', None)
  return P()


def check_transformer(layout, axis_type):
  """nowcast on a sharded transformer: history sharded like the params, no
  weight crossing devices in the compiled update, the numbers of one device.
  """
  shape, names = (((8,), ('fsdp',)) if layout == 'fsdp'
                  else ((2, 4), ('data', 'model')))
  mesh = jax.make_mesh(shape, names, axis_types=(axis_type,) * len(shape))
  model = TinyGPT()
  tokens = jax.random.randint(jax.random.key(1), (8, 9), 0, 32)
  x, y = tokens[:, :-1], tokens[:, 1:]
  host = model.init(jax.random.key(0), x)['params']
  specs = jax.tree_util.tree_map_with_path(
      functools.partial(transformer_spec, layout), host)
  params = jax.device_put(host, jax.tree.map(
      lambda s: NamedSharding(mesh, s), specs))
  batch = P('data') if layout != 'fsdp' else P('fsdp')
  xs, ys = (jax.device_put(a, NamedSharding(mesh, batch)) for a in (x, y))
  name = f'transformer {layout}'
  sharded = sum(any(a is not None for a in s) for s in jax.tree.leaves(
      specs, is_leaf=lambda s: isinstance(s, P)))
  assert sharded >= 12, (name, sharded)

  tx = optax.chain(optax.adam(1e-2), onc.nowcast(
      onc.forecasters.load('wnn'), record_every=1, jump_every=5,
      last_jump_step=2**31 - 1))

  def loss(p, x, y):
    logits = model.apply({'params': p}, x)
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

  def step(p, s, x, y):
    g = jax.grad(loss)(p, x, y)
    u, s = tx.update(g, s, p)
    return optax.apply_updates(p, u), s

  state = jax.jit(tx.init)(params)
  for slot in state[1].history:
    for h, p in zip(jax.tree.leaves(slot), jax.tree.leaves(params)):
      assert h.sharding.is_equivalent_to(p.sharding, p.ndim), (name, h, p)
  print(f'{name}: history sharded like the params after init'
        f' ({sharded} sharded leaves)')

  # The update alone (the model's own collectives are not ours): only
  # scalar all-reduces (of the non-finite forecast count).
  grads = jax.tree.map(jnp.ones_like, params)
  hlo = jax.jit(tx.update, donate_argnums=(1,)).lower(
      grads, state, params).compile().as_text()
  moving = [re.sub(r'/\*index=\d+\*/', '', line.strip())
            for line in hlo.splitlines()
            if any(f' {c}(' in line or f' {c}-start(' in line
                   for c in COLLECTIVES)]
  weights = [line for line in moving if not re.search(
      r'= \(?s32\[\](, s32\[\])*\)? all-reduce', line)]
  assert not weights, (name, weights)
  print(f'{name}: compiled update moves no weights between devices'
        f' ({len(moving)} scalar all-reduce)')

  # Ten updates with two jumps, on gradients made elementwise from the
  # params (the model's own sharded sums would round differently from one
  # device's, and Adam turns a rounding-level gradient into a full step).
  def grad_like(p, t):
    return jax.tree.map(lambda a: jnp.cos(3.0 * a + t), p)

  def ustep(p, s, t):
    u, s = tx.update(grad_like(p, t), s, p)
    return optax.apply_updates(p, u), s

  jstep = jax.jit(ustep, donate_argnums=(1,))
  p, s = params, state
  for t in range(10):
    p, s = jstep(p, s, jnp.float32(t))
  assert int(s[1].jumps) == 2, int(s[1].jumps)
  for a, b in zip(jax.tree.leaves(p), jax.tree.leaves(params)):
    assert a.sharding.is_equivalent_to(b.sharding, a.ndim), name
  for slot in s[1].history:
    for h, b in zip(jax.tree.leaves(slot), jax.tree.leaves(params)):
      assert h.sharding.is_equivalent_to(b.sharding, b.ndim), name

  one = jax.devices()[0]
  p1 = jax.device_put(host, one)
  s1 = jax.device_put(tx.init(p1), one)
  step1 = jax.jit(ustep)
  for t in range(10):
    p1, s1 = step1(p1, s1, jnp.float32(t))
  # WNN's matrix products round a few ulps differently with the batch size
  # (one device: a whole group; sharded: a leaf's shard).
  jax.tree.map(functools.partial(np.testing.assert_allclose,
                                 rtol=1e-5, atol=1e-6), p, p1)
  # The model's own training step on the sharded params: it runs, jumps
  # and keeps the shardings (auto axes: Flax's Embed and attention need
  # out_sharding= on explicit ones, the model's code, not nowcast's).
  if axis_type != jax.sharding.AxisType.Explicit:
    tstep = jax.jit(step, donate_argnums=(1,))
    p, s = params, jax.jit(tx.init)(params)
    for _ in range(5):
      p, s = tstep(p, s, xs, ys)
    assert int(s[1].jumps) == 1, int(s[1].jumps)
    for a, b in zip(jax.tree.leaves(p), jax.tree.leaves(params)):
      assert a.sharding.is_equivalent_to(b.sharding, a.ndim), name
      assert bool(jnp.all(jnp.isfinite(a))), name
  print(f'{name}: two jumps, shardings unchanged, matches one device'
        + ('' if axis_type == jax.sharding.AxisType.Explicit else
           '; the model trains sharded, with a jump'))


def check(mesh):
  explicit = all(t == jax.sharding.AxisType.Explicit
                 for t in mesh.axis_types)
  # 'w' and 'w2' share a shape and a sharding: on explicit axes their jump
  # forecasts them as one stacked group; 'v' has their shape but another
  # sharding, so it is forecast alone.
  specs = {'w': P('fsdp', None), 'w2': P('fsdp', None), 'v': P(None, None),
           'k': P(None, None, None, 'fsdp'), 'b': P('fsdp'), 's': P()}
  key = jax.random.key(0)
  host = {
      'w': jax.random.normal(key, (64, 24)),
      'w2': jax.random.normal(jax.random.key(1), (64, 24)),
      'v': jax.random.normal(jax.random.key(2), (64, 24)),
      'k': jax.random.normal(key, (3, 3, 4, 16)),
      'b': jnp.linspace(-1.0, 1.0, 16),
      's': jnp.float32(0.5),
  }
  shardings = {k: NamedSharding(mesh, s) for k, s in specs.items()}
  params = jax.device_put(host, shardings)
  leaves = jax.tree.leaves(params)
  groups = _group.plan(leaves, _labels.resolve_labels(None, params))
  names = sorted(params)  # the flattening order of a dict
  joined = {tuple(names[k] for k in g.members): g.how for g in groups}
  if explicit:  # same shape and sharding: stacked, on each device's shards
    assert joined[('w', 'w2')] == 'stack', joined
    assert joined[('v',)] == 'single', joined
  else:  # the sharding is unknown while tracing: leaf by leaf
    assert all(how == 'single' for how in joined.values()), joined
  print(f'leaves forecast together: {joined}')
  targets = jax.tree.map(lambda x: jnp.cos(x) * 0.5, host)

  # Blind jumps (they need an end: one far past these runs), and checked
  # ones (value_fn: the loss is evaluated at candidates sharded like the
  # params).
  blind = dict(last_jump_step=2**31 - 1)
  for name, fc, kw, checked in [
      ('linear', onc.forecasters.linear(3, 2.0), blind, False),
      ('quadratic-bf16', onc.forecasters.quadratic(4, 1.5),
       dict(history_dtype=jnp.bfloat16, **blind), False),
      ('linear-checked', onc.forecasters.linear(3, 2.0), {}, True),
  ] + ([
      # chunk_size on explicit axes: chunks along unsharded axes only. (On
      # auto axes the sharding is unknown while tracing and a chunked leaf
      # is flattened, which gathers it: documented, not checked here.)
      ('linear-chunked', onc.forecasters.linear(3, 2.0),
       dict(chunk_size=100, **blind), False),
  ] if explicit else []):
    tx = optax.chain(optax.adam(1e-2), onc.nowcast(
        fc, record_every=1, jump_every=fc.window, **kw))

    def loss(p):
      return sum(jnp.sum((a - b) ** 2) for a, b in
                 zip(jax.tree.leaves(p), jax.tree.leaves(targets)))

    def step(p, s):
      g = jax.grad(loss)(p)
      u, s = tx.update(g, s, p, **({'value_fn': loss} if checked else {}))
      return optax.apply_updates(p, u), s

    state = jax.jit(tx.init)(params)
    hist_specs = []
    for slot in state[1].history:
      for k in specs:
        h, p = slot[k], params[k]
        assert h.sharding.is_equivalent_to(p.sharding, p.ndim), (
            name, k, h.sharding, p.sharding)
        hist_specs.append(h.sharding)
    print(f'{name}: history sharded like the params after init')

    jstep = jax.jit(step, donate_argnums=(1,))
    hlo = jstep.lower(params, state).compile().as_text()
    moving = [line.strip() for line in hlo.splitlines()
              if any(f' {c}(' in line or f' {c}-start(' in line
                     for c in COLLECTIVES)]
    # The only collectives allowed are scalar sums: of the non-finite
    # forecast count and, checked, of each candidate's loss; no weight
    # crosses devices.
    scalar = r'[sf]32' if checked else r's32'
    weights = [line for line in moving if not re.search(
        rf'= \(?{scalar}\[\](, {scalar}\[\])*\)? all-reduce', line)]
    assert not weights, (name, weights)
    print(f'{name}: compiled update moves no weights between devices'
          f' ({len(moving)} scalar all-reduce)')

    # A jumpy run: every `window` steps is a jump.
    p, s = params, state
    before = jax.tree.map(lambda x: jax.typeof(x), s)
    for _ in range(3 * fc.window):
      p, s = jstep(p, s)
    assert int(s[1].jumps) == 3, int(s[1].jumps)
    after = jax.tree.map(lambda x: jax.typeof(x), s)
    assert before == after, (before, after)
    for k in specs:
      assert p[k].sharding.is_equivalent_to(params[k].sharding, p[k].ndim)
      for slot in s[1].history:
        assert slot[k].sharding.is_equivalent_to(
            params[k].sharding, p[k].ndim), (name, k)
    print(f'{name}: state types and shardings unchanged by 3 jumps')

    # Same numbers on one device.
    one = jax.devices()[0]
    p1 = jax.device_put(host, one)
    s1 = jax.device_put(tx.init(p1), one)
    step1 = jax.jit(step)
    for _ in range(3 * fc.window):
      p1, s1 = step1(p1, s1)
    # A bf16 history rounds the weights it keeps to 8 bits: where the two
    # runs differ by a float32 ulp (XLA may fuse the sums differently), a
    # kept value can round the other way and the forecast moves with it.
    atol = 1e-4 if 'bf16' in name else 1e-6
    jax.tree.map(functools.partial(np.testing.assert_allclose,
                                   rtol=1e-5, atol=atol), p, p1)
    print(f'{name}: matches one device')


if __name__ == '__main__':
  main(sys.argv[1:])
