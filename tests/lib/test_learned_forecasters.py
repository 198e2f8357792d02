"""Specification tests of the learned forecasters: WNN and Introspection."""

from __future__ import annotations

import functools
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optax_nowcast as onc
from optax_nowcast import schedules
from optax_nowcast.forecasters._introspection import introspection
from optax_nowcast.forecasters._introspection import introspection_apply_batch
from optax_nowcast.forecasters._introspection import init_introspection_weights
from optax_nowcast.forecasters._wnn import init_wnn_weights
from optax_nowcast.forecasters._wnn import wnn
from optax_nowcast.forecasters._wnn import wnn_apply_batch
from optax_nowcast.forecasters._wnn import wnn_l1_penalty

# These tests check the blind jumps themselves, so they let them run to the
# end of the run (nowcast asks for an end, or for value_fn-checked jumps).
JUMP_TO_THE_END = 2**31 - 1

TIMES = jnp.arange(-4.0, 1.0, dtype=jnp.float32)
GOOD = init_wnn_weights()


def random_wnn_weights(seed, scale=0.5):
  """Weights far from the tiny initialisation, so the residual matters."""
  rng = np.random.default_rng(seed)
  return jax.tree.map(
      lambda w: jnp.asarray(scale * rng.normal(size=w.shape), jnp.float32),
      GOOD,
  )


@functools.partial(jax.jit, static_argnums=(0, 3))
def _vmapped_apply(apply, weights, windows, label):
  times = jnp.arange(1 - windows.shape[-1], 1, dtype=jnp.float32)
  return jax.vmap(
      lambda v: apply(weights, v, times, jnp.float32(5.0), label)
  )(windows)


def forecasts(f, windows, label):
  """``f.apply`` on each row of ``windows``, one scalar at a time (vmapped)."""
  return _vmapped_apply(f.apply, f.weights, jnp.asarray(windows), label)


def window_scale(windows):
  """WNN's ``s = 2 (max - min + 1e-5)`` of each row."""
  windows = np.asarray(windows, np.float64)
  return 2.0 * (windows.max(-1) - windows.min(-1) + 1e-5)


def random_windows(seed, n=16):
  rng = np.random.default_rng(seed)
  trend = rng.normal(size=(n, 1)) * np.arange(5.0)
  return (trend + rng.normal(size=(n, 5)) + rng.normal(size=(n, 1))).astype(
      np.float32
  )


# ----------------------------------------------------------------------------
# Size and interface.


def test_wnn_has_9425_parameters_per_label_network():
  def stream(inputs):
    return (
        (inputs * 64 + 64)  # Dense -> 64
        + (64 * 8 + 8)  # activation network: gate 64 -> 8
        + 3 * (8 * 64 + 64)  # D1, D2, D3: 8 -> 64
        + (64 * 32 + 32)  # Dense -> 32
    )

  expected = stream(5) + stream(4) + (64 + 1)  # head 64 -> 1
  weights = init_wnn_weights()
  counts = {k: sum(w.size for w in jax.tree.leaves(v))
            for k, v in weights.items()}
  assert expected == 9425
  assert counts == {'conv': 9425, 'dense': 9425, 'bias': 9425}
  assert 9000 <= expected <= 9800


def test_introspection_has_241_parameters():
  weights = init_introspection_weights()
  assert sum(w.size for w in jax.tree.leaves(weights)) == 4 * 40 + 40 + 40 + 1
  assert jax.tree.map(jnp.shape, weights) == {
      'hidden': {'kernel': (4, 40), 'bias': (40,)},
      'output': {'kernel': (40, 1), 'bias': (1,)},
  }


def test_forecasters_describe_their_window_and_horizon():
  f = wnn(horizon=3.0)
  assert (f.window, f.horizon, f.name) == (5, 3.0, 'wnn')
  g = introspection()
  assert (g.window, g.horizon, g.name) == (4, None, 'introspection')


@pytest.mark.parametrize('dtype', [jnp.float32, jnp.bfloat16])
@pytest.mark.parametrize('make', [wnn, introspection])
def test_apply_maps_one_scalar_window_to_a_float32_scalar(make, dtype):
  f = make()
  values = jax.ShapeDtypeStruct((f.window,), dtype)
  times = jax.ShapeDtypeStruct((f.window,), jnp.float32)
  target = jax.ShapeDtypeStruct((), jnp.float32)
  out = jax.eval_shape(
      functools.partial(f.apply, label='conv'), f.weights, values, times,
      target,
  )
  assert out.shape == () and out.dtype == jnp.float32


def test_initial_weights_are_float32_with_zero_biases():
  for tree in (init_wnn_weights(), init_introspection_weights()):
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
      assert leaf.dtype == jnp.float32
      if path[-1].key == 'bias':
        assert not np.any(leaf)
      else:
        assert np.any(leaf)


def test_wnn_kernels_follow_variance_scaling_0_1_fan_in_uniform():
  kernel = init_wnn_weights()['dense']['values']['project']['kernel']
  limit = np.sqrt(3 * 0.1 / 64)
  assert np.max(np.abs(kernel)) <= limit
  assert np.max(np.abs(kernel)) > 0.9 * limit
  np.testing.assert_allclose(np.var(kernel), 0.1 / 64, rtol=0.1)


# ----------------------------------------------------------------------------
# Purity and labels.


@pytest.mark.parametrize('make', [wnn, introspection])
def test_apply_is_pure_and_deterministic(make):
  f = make()
  before = jax.tree.map(np.array, f.weights)
  values = jnp.zeros(f.window)
  times = jnp.arange(1 - f.window, 1, dtype=jnp.float32)
  jaxpr = jax.make_jaxpr(f.apply, static_argnums=4)(
      f.weights, values, times, 5.0, 'dense'
  )
  assert not jaxpr.effects  # no callbacks, prints or state
  windows = random_windows(0)[:, :f.window]
  first = forecasts(f, windows, 'dense')
  np.testing.assert_array_equal(forecasts(f, windows, 'dense'), first)
  jax.tree.map(np.testing.assert_array_equal, f.weights, before)


def test_same_key_gives_same_weights_and_other_keys_differ():
  a = init_wnn_weights(jax.random.PRNGKey(3))
  b = init_wnn_weights(jax.random.PRNGKey(3))
  c = init_wnn_weights(jax.random.PRNGKey(4))
  jax.tree.map(np.testing.assert_array_equal, a, b)
  kernel = lambda w: w['conv']['values']['input']['kernel']
  assert not np.array_equal(kernel(a), kernel(c))


def test_typed_and_raw_keys_are_both_accepted():
  typed = init_introspection_weights(jax.random.key(5))
  raw = init_introspection_weights(jax.random.PRNGKey(5))
  jax.tree.map(np.testing.assert_array_equal, typed, raw)


def test_wnn_ignores_times_and_target():
  f = wnn()
  values = jnp.array([0.3, 0.1, 0.4, 0.1, 0.5])
  jaxpr = jax.make_jaxpr(
      lambda times, target: f.apply(f.weights, values, times, target, 'conv')
  )(TIMES, 5.0).jaxpr
  read = [v for eqn in jaxpr.eqns for v in eqn.invars]
  assert not any(v is arg for v in read for arg in jaxpr.invars)


def test_each_label_kind_uses_its_own_weights():
  weights = random_wnn_weights(2)
  windows = random_windows(0)
  f = wnn(weights)
  conv = forecasts(f, windows, 'conv')
  dense = forecasts(f, windows, 'dense')
  bias = forecasts(f, windows, 'bias')
  assert not np.allclose(conv, dense)
  assert not np.allclose(dense, bias)
  # The difference comes from the weights only: share them, and it vanishes.
  shared = wnn({'conv': weights['dense'], 'dense': weights['dense'],
                'bias': weights['bias']})
  np.testing.assert_array_equal(forecasts(shared, windows, 'conv'), dense)


def test_scalar_leaves_use_the_bias_weights():
  weights = random_wnn_weights(3)
  windows = random_windows(1)
  f = wnn(weights)
  np.testing.assert_array_equal(
      forecasts(f, windows, 'scalar'), forecasts(f, windows, 'bias')
  )
  other = random_wnn_weights(4)
  new_bias = wnn({**weights, 'bias': other['bias']})
  new_conv = wnn({**weights, 'conv': other['conv']})
  assert not np.allclose(
      forecasts(new_bias, windows, 'scalar'), forecasts(f, windows, 'scalar')
  )
  np.testing.assert_array_equal(
      forecasts(new_conv, windows, 'scalar'), forecasts(f, windows, 'scalar')
  )


def test_norm_scales_use_the_bias_weights_and_embeddings_the_dense_ones():
  f = wnn(random_wnn_weights(5))
  windows = random_windows(2)
  np.testing.assert_array_equal(forecasts(f, windows, 'norm'),
                                forecasts(f, windows, 'bias'))
  np.testing.assert_array_equal(forecasts(f, windows, 'embedding'),
                                forecasts(f, windows, 'dense'))


def test_unknown_label_raises_naming_it_and_the_known_ones():
  f = wnn()
  with pytest.raises(ValueError, match=r"'lstm'.*'conv', 'dense', "
                     r"'bias', 'norm', 'embedding', 'scalar'"):
    f.apply(f.weights, jnp.zeros(5), TIMES, 5.0, 'lstm')
  with pytest.raises(ValueError, match="'lstm'"):
    wnn_apply_batch(f.weights, jnp.zeros((2, 5)), 'lstm')


# ----------------------------------------------------------------------------
# WNN's normalisation: properties that hold by construction.


@pytest.mark.parametrize('a,b', [(3.0, -2.0), (250.0, 40.0), (1.0, 7.5)])
def test_wnn_is_equivariant_to_positive_affine_maps(a, b):
  f = wnn(random_wnn_weights(5))
  windows = random_windows(2)
  for label in ('conv', 'dense', 'bias'):
    lhs = np.asarray(forecasts(f, a * windows + b, label), np.float64)
    rhs = a * np.asarray(forecasts(f, windows, label), np.float64) + b
    # The 1e-5 in s is < 1e-5 of the windows' ranges here.
    np.testing.assert_array_less(
        np.abs(lhs - rhs), 1e-4 * a * window_scale(windows)
    )


def test_random_weights_give_a_residual_that_matters():
  # Guards the invariance tests above against a trivially tiny residual.
  f = wnn(random_wnn_weights(5))
  windows = random_windows(2)
  moved = np.abs(np.asarray(forecasts(f, windows, 'dense')) - windows[:, -1])
  assert np.max(moved / window_scale(windows)) > 0.1


def test_wnn_keeps_a_constant_window_constant():
  f = wnn(random_wnn_weights(6, scale=2.0))
  values = np.float32([0.0, 3.5, -1000.0, 1e-3, -2e-7, 12345.0, 1.0, -1.0]
                      * 2)
  windows = np.repeat(values[:, None], 5, axis=1)
  for label in ('conv', 'dense', 'bias', 'scalar'):
    out = np.asarray(forecasts(f, windows, label))
    # s = 2e-5 and |r| < 1: at most 2e-5 away, plus one rounding.
    assert np.all(np.abs(out - values) <= 2e-5 + np.spacing(np.abs(values)))


@pytest.mark.parametrize('seed', [7, 8])
def test_wnn_moves_a_weight_by_at_most_s(seed):
  f = wnn(random_wnn_weights(seed, scale=2.0))  # big weights: tanh saturates
  rng = np.random.default_rng(seed)
  windows = random_windows(seed) * np.float32(
      10.0 ** rng.uniform(-4, 2, size=(16, 1))
  )
  for label in ('conv', 'dense', 'bias'):
    out = np.asarray(forecasts(f, windows, label), np.float64)
    moved = np.abs(out - windows[:, -1])
    bound = window_scale(windows) * (1 + 1e-6) + np.spacing(
        np.abs(windows[:, -1])
    )
    np.testing.assert_array_less(moved, bound)


# ----------------------------------------------------------------------------
# Introspection.


def hand_weights():
  hidden = np.zeros((4, 40), np.float32)
  hidden[:, 0] = [1.0, 0.0, 0.0, 1.0]
  hidden[:, 1] = [-1.0, 0.0, 0.0, 0.0]
  hidden_bias = np.zeros(40, np.float32)
  hidden_bias[0] = 0.5
  output = np.zeros((40, 1), np.float32)
  output[0, 0], output[1, 0] = 2.0, 7.0
  return {
      'hidden': {'kernel': hidden, 'bias': hidden_bias},
      'output': {'kernel': output, 'bias': np.array([0.25], np.float32)},
  }


@pytest.mark.parametrize(
    'values,expected',
    [
        # z = [1, 2, 3, 4]: h0 = 1 + 4 + 0.5, h1 = relu(-1) = 0;
        # y = 2 * 5.5 + 0.25 = 11.25, i.e. 0.01125 in weight units.
        ([0.001, 0.002, 0.003, 0.004], 0.01125),
        # z = [-4, 0, 0, 1]: h0 = relu(-2.5) = 0, h1 = 4; y = 7 * 4 + 0.25.
        ([-0.004, 0.0, 0.0, 0.001], 0.02825),
    ],
)
def test_introspection_is_the_scaled_mlp_by_hand(values, expected):
  f = introspection(hand_weights())
  out = f.apply(f.weights, jnp.array(values), TIMES[1:], 4.0, 'conv')
  np.testing.assert_allclose(out, expected, rtol=1e-6)


def test_introspection_is_the_scaled_mlp_on_random_weights():
  weights = init_introspection_weights(jax.random.PRNGKey(9))
  windows = random_windows(3)[:, :4] * np.float32(1e-2)
  w = jax.tree.map(lambda x: np.asarray(x, np.float64), weights)
  z = 1000.0 * windows.astype(np.float64)
  h = np.maximum(z @ w['hidden']['kernel'] + w['hidden']['bias'], 0.0)
  expected = (h @ w['output']['kernel'] + w['output']['bias'])[:, 0] / 1000.0
  got = forecasts(introspection(weights), windows, 'bias')
  np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7)


def test_introspection_uses_one_network_for_every_label():
  f = introspection()
  windows = random_windows(4)[:, :4] * np.float32(1e-2)
  conv = forecasts(f, windows, 'conv')
  for label in ('dense', 'bias', 'scalar', 'embedding'):
    np.testing.assert_array_equal(forecasts(f, windows, label), conv)


# ----------------------------------------------------------------------------
# Batch helpers for meta-training.


def test_wnn_apply_batch_equals_the_per_scalar_apply():
  weights = random_wnn_weights(10)
  f = wnn(weights)
  windows = random_windows(5)
  for label in ('dense', 'scalar'):
    batch = wnn_apply_batch(weights, windows, label)
    assert batch.shape == (16,) and batch.dtype == jnp.float32
    np.testing.assert_allclose(batch, forecasts(f, windows, label),
                               rtol=1e-6, atol=1e-6)


def test_introspection_apply_batch_equals_the_per_scalar_apply():
  weights = init_introspection_weights(jax.random.PRNGKey(11))
  f = introspection(weights)
  windows = random_windows(6)[:, :4] * np.float32(1e-2)
  batch = introspection_apply_batch(weights, windows)
  assert batch.shape == (16,) and batch.dtype == jnp.float32
  np.testing.assert_allclose(batch, forecasts(f, windows, 'conv'),
                             rtol=1e-6, atol=1e-8)


def test_wnn_l1_penalty_counts_inputs_and_projections_of_every_label():
  ones = jax.tree.map(lambda w: np.ones(w.shape, np.float32), GOOD)
  # Per label: kernels 5*64 + 64*32 + 4*64 + 64*32 = 4672, biases
  # 64 + 32 + 64 + 32 = 192.
  np.testing.assert_allclose(
      wnn_l1_penalty(ones), 3 * (1e-6 * 4672 + 0.1 * 192), rtol=1e-6
  )
  np.testing.assert_allclose(
      wnn_l1_penalty(ones, kernel=1.0, bias=0.0), 3 * 4672, rtol=1e-6
  )
  negated = jax.tree.map(lambda w: -w, ones)
  assert wnn_l1_penalty(negated) == wnn_l1_penalty(ones)
  zeros = jax.tree.map(np.zeros_like, ones)
  assert wnn_l1_penalty(zeros) == 0.0


# ----------------------------------------------------------------------------
# Inside the nowcast transformation.


def run(tx, steps):
  rng = np.random.default_rng(0)
  shapes = {'conv': (3, 3, 2, 4), 'dense': (3, 4), 'bias': (4,), 'scale': ()}
  # float32 NumPy values: not weak-typed, so the step compiles once.
  params = {k: jnp.asarray(rng.normal(size=s), jnp.float32)
            for k, s in shapes.items()}
  loss = lambda p: sum(jnp.sum((x - 0.5) ** 2) for x in jax.tree.leaves(p))

  @jax.jit
  def step(params, state):
    updates, state = tx.update(jax.grad(loss)(params), state, params)
    return optax.apply_updates(params, updates), state

  state = tx.init(params)
  for _ in range(steps):
    params, state = step(params, state)
  return params, state[1]


def test_wnn_jumps_every_five_records_inside_nowcast():
  tx = optax.chain(
      optax.sgd(0.05), onc.nowcast(wnn(), record_every=1, jump_every=5,
                                   last_jump_step=JUMP_TO_THE_END)
  )
  params, state = run(tx, 12)
  assert int(state.jumps) == 2  # at steps 5 and 10
  assert int(state.skipped) == 0 and int(state.nonfinite) == 0
  assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(params))


def test_introspection_jumps_at_its_schedule_steps_inside_nowcast():
  tx = optax.chain(
      optax.sgd(0.05),
      onc.nowcast(introspection(),
                  schedule=schedules.introspection([10, 20])),
  )
  params, state = run(tx, 20)
  assert int(state.jumps) == 2
  assert int(state.nonfinite) == 0
  assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(params))


# ----------------------------------------------------------------------------
# Bad arguments.


def reshaped(weights, label, layer, shape):
  weights = jax.tree.map(lambda w: w, weights)  # a copy of the dicts
  weights[label]['values'][layer]['kernel'] = jnp.zeros(shape)
  return weights


WITHOUT_HEAD = {**GOOD, 'dense': {k: v for k, v in GOOD['dense'].items()
                                  if k != 'head'}}


@pytest.mark.parametrize(
    'make,message',
    [
        (lambda: wnn(horizon=0), 'horizon must be a positive number, got 0'),
        (lambda: wnn(horizon='5'),
         "horizon must be a positive number, got '5'"),
        (lambda: wnn(key=3), 'key must be a single JAX PRNG key'),
        (lambda: wnn(key=jax.random.split(jax.random.PRNGKey(0))),
         'key must be a single JAX PRNG key'),
        (lambda: wnn(GOOD, key=jax.random.PRNGKey(0)),
         'pass either weights or key, not both'),
        (lambda: wnn([1, 2]), 'weights must be a dict'),
        (lambda: wnn({'conv': GOOD['conv'], 'dense': GOOD['dense']}),
         "missing ['bias']"),
        (lambda: wnn({**GOOD, 'embed': GOOD['bias']}), "unexpected ['embed']"),
        (lambda: wnn(reshaped(GOOD, 'conv', 'input', (6, 64))),
         "weights['conv']['values']['input']['kernel'] must have shape"
         ' (5, 64), got (6, 64)'),
        (lambda: wnn(WITHOUT_HEAD),
         "weights['dense'] does not match the network: missing params"),
        (lambda: wnn(jax.tree.map(lambda w: np.zeros(w.shape, np.int32), GOOD)),
         'must be a floating array'),
        (lambda: wnn_apply_batch(GOOD, jnp.zeros((3, 4)), 'conv'),
         'windows must have shape (N, 5), got (3, 4)'),
        (lambda: wnn_apply_batch(GOOD, jnp.zeros(5), 'conv'),
         'windows must have shape (N, 5), got (5,)'),
        (lambda: wnn_l1_penalty(GOOD, kernel=-1.0),
         'kernel must be a finite number >= 0, got -1.0'),
        (lambda: wnn_l1_penalty(GOOD, bias='0.1'),
         "bias must be a number >= 0, got '0.1'"),
        (lambda: wnn().apply(GOOD, jnp.zeros(4), TIMES[1:], 5.0, 'conv'),
         'WNN forecasts one scalar from 5 values, got values of shape (4,)'),
        (lambda: introspection(key='seed'), 'key must be a single JAX PRNG'),
        (lambda: introspection({'hidden': {}}),
         'weights does not match the network: missing params'),
        (lambda: introspection_apply_batch(init_introspection_weights(),
                                           jnp.zeros((3, 5))),
         'windows must have shape (N, 4), got (3, 5)'),
        (lambda: introspection().apply(None, jnp.zeros(5), TIMES, 5.0, 'conv'),
         'Introspection forecasts one scalar from 4 values'),
    ],
)
def test_bad_arguments_raise_value_errors_that_say_what_is_wrong(make,
                                                                 message):
  with pytest.raises(ValueError, match=re.escape(message)):
    make()
