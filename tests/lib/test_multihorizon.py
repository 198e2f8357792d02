"""Specification of the multi-horizon forecaster and of per-leaf scaling.

``forecasters.multihorizon`` scales each leaf by its window's mean and std
(the ``Forecaster.leaf_scale`` step, once per leaf per jump) and forecasts
every horizon ``1..K`` at once. These tests pin down the per-leaf step
(affine equivariance of a whole leaf, NaN kept to its scalar, the same
result grouped or leaf by leaf) and the multi-horizon output (exact at the
integer horizons, linear in between, no change at 0).
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from absl.testing import absltest
from absl.testing import parameterized

import optax_nowcast as onc
from optax_nowcast import _group
from optax_nowcast.forecasters import _multihorizon as mh

WINDOW = 5
TIMES = jnp.arange(-4.0, 1.0) * 10.0  # records 10 steps apart


def _random_weights(seed, scale=0.3, **config):
  """Weights far from the initialisation (whose output layer is zero)."""
  fresh = mh.init_weights(jax.random.key(0), **config)
  rng = np.random.default_rng(seed)
  return jax.tree.map(
      lambda w: jnp.asarray(scale * rng.normal(size=w.shape), jnp.float32),
      fresh)


def _forecaster(seed=1, **config):
  return onc.forecasters.multihorizon(_random_weights(seed, **config))


def _leaf_forecast(f, window, target, label='dense'):
  """The forecast of every scalar of one leaf, as a jump computes it."""
  window = jnp.asarray(window)
  shift, scale = f.leaf_scale(window)
  scaled = (window - shift) / scale
  one = lambda v: f.apply(f.weights, v, TIMES, jnp.float32(target), label)
  flat = scaled.reshape(WINDOW, -1).T
  return shift + scale * jax.vmap(one)(flat).reshape(window.shape[1:])


def _jump_deltas(f, params, slots, placement=None, chunk_size=None):
  """forecast_groups + moved_updates on zero updates: the jump's deltas."""
  labels = ['dense'] * len(params)
  updates = [jnp.zeros_like(p) for p in params]

  @jax.jit
  def run(params, updates, slots):
    groups = _group.plan(params, labels,
                         [(u, *(s[k] for s in slots))
                          for k, u in enumerate(updates)])
    forecast = _group.forecast_groups(
        f, groups, params, updates, slots,
        [jnp.int32(j) for j in range(WINDOW - 1)], TIMES,
        jnp.float32(30.0), jnp.bool_(True), chunk_size, block=chunk_size)
    return _group.moved_updates(forecast, updates), forecast.nonfinite

  original = _group.placement
  if placement is not None:
    _group.placement = placement
  try:
    return run(params, updates, slots)
  finally:
    _group.placement = original


def _leaves(seed, shapes, scale=1.0, offset=0.0):
  rng = np.random.default_rng(seed)
  return [jnp.asarray(offset + scale * rng.normal(size=s), jnp.float32)
          for s in shapes]


class MultiHorizonOutputTest(parameterized.TestCase):

  def test_a_fresh_forecaster_is_last(self):
    f = onc.forecasters.multihorizon(key=jax.random.key(0))
    values = jnp.array([0.3, -1.0, 2.0, 0.5, 1.25])
    for target in (10.0, 100.0, 400.0):
      self.assertEqual(float(f.apply(f.weights, values, TIMES, target,
                                     'conv')), 1.25)

  @parameterized.parameters(1, 7, 40)
  def test_integer_horizons_read_their_own_output(self, k):
    f = _forecaster()
    values = jnp.array([0.1, -0.4, 0.2, 0.9, 0.3])
    changes = mh.displacements(f.weights, values, 'dense')
    self.assertEqual(changes.shape, (40,))
    got = f.apply(f.weights, values, TIMES, 10.0 * k, 'dense')
    np.testing.assert_allclose(got, values[-1] + changes[k - 1], rtol=1e-6)

  def test_between_horizons_is_linear_and_zero_means_no_change(self):
    changes = jnp.arange(1.0, 41.0) ** 2  # d_k = k^2
    np.testing.assert_allclose(mh.at_horizon(changes, 2.5), (4 + 9) / 2)
    np.testing.assert_allclose(mh.at_horizon(changes, 0.25), 0.25)
    self.assertEqual(float(mh.at_horizon(changes, 0.0)), 0.0)
    self.assertEqual(float(mh.at_horizon(changes, 55.0)), 1600.0)  # clipped

  def test_the_horizon_is_counted_in_record_intervals(self):
    f = _forecaster()
    values = jnp.array([0.1, -0.4, 0.2, 0.9, 0.3])
    a = f.apply(f.weights, values, TIMES, 50.0, 'dense')  # 10 steps apart
    b = f.apply(f.weights, values, TIMES * 20, 1000.0, 'dense')  # 200
    self.assertEqual(float(a), float(b))

  def test_each_leaf_kind_has_its_embedding_and_others_share_one(self):
    f = _forecaster()
    values = jnp.array([0.1, -0.4, 0.2, 0.9, 0.3])
    out = {label: float(f.apply(f.weights, values, TIMES, 30.0, label))
           for label in onc.forecasters.LABELS + ('lstm', 'my_kind')}
    self.assertLen({out[k] for k in onc.forecasters.LABELS}, 6)
    self.assertEqual(out['lstm'], out['my_kind'])
    self.assertNotIn(out['lstm'], [out[k] for k in onc.forecasters.LABELS])

  def test_outputs_are_unbounded_residuals(self):
    # Unlike WNN's tanh residual (at most twice the window's spread), the
    # change can be many spreads: here the output bias alone says 50.
    weights = mh.init_weights(jax.random.key(0))
    weights['output']['bias'] = jnp.full((40,), 50.0)
    f = onc.forecasters.multihorizon(weights)
    values = jnp.array([0.0, 0.1, 0.0, 0.1, 0.0])
    self.assertEqual(float(f.apply(f.weights, values, TIMES, 30.0, 'bias')),
                     50.0)

  def test_it_is_small(self):
    sizes = [x.size for x in jax.tree.leaves(_random_weights(0))]
    self.assertEqual(sum(sizes), 7 * 64 + 5 * 64 + 64 + 2 * (64 * 64 + 64)
                     + 64 * 40 + 40)


class LeafScaleTest(parameterized.TestCase):

  @parameterized.parameters((2.0, 0.5), (1e-3, -3.0), (400.0, 1e3))
  def test_a_leaf_forecast_is_equivariant_to_affine_maps_of_the_leaf(
      self, a, b):
    f = _forecaster()
    window = jnp.asarray(np.random.default_rng(0).normal(size=(WINDOW, 6, 4)),
                         jnp.float32)
    want = a * _leaf_forecast(f, window, 30.0) + b
    got = _leaf_forecast(f, a * window + b, 30.0)
    np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-5 * abs(a))

  def test_the_jump_scales_each_leaf_by_its_own_statistics(self):
    f = _forecaster()
    shapes = [(6, 4), (9,), (6, 4)]
    # Leaves of very different magnitudes in one group.
    slots = [[x * s + o for x, s, o in zip(_leaves(10 + j, shapes),
                                           (1e-3, 5.0, 1.0), (0.0, 2.0, -1.0))]
             for j in range(WINDOW - 1)]
    params = [x * s + o for x, s, o in zip(_leaves(9, shapes),
                                           (1e-3, 5.0, 1.0), (0.0, 2.0, -1.0))]
    (deltas, bad) = _jump_deltas(f, params, slots)
    self.assertEqual(int(bad), 0)
    for k, p in enumerate(params):
      window = jnp.stack([s[k] for s in slots] + [p])
      want = _leaf_forecast(f, window, 30.0) - p
      np.testing.assert_allclose(deltas[k], want, rtol=2e-5,
                                 atol=1e-5 * float(jnp.std(window)))

  # Joined whole (None), streamed in chunks within leaves (5), and with
  # leaves of their own statistics packed into one chunk (32).
  @parameterized.parameters(None, 5, 32)
  def test_grouped_equals_leaf_by_leaf(self, chunk_size):
    f = _forecaster()
    shapes = [(6, 4), (9,), (6, 4), (3, 2, 2)]
    slots = [_leaves(10 + j, shapes) for j in range(WINDOW - 1)]
    params = _leaves(9, shapes)
    grouped, _ = _jump_deltas(f, params, slots, chunk_size=chunk_size)
    alone, _ = _jump_deltas(f, params, slots, lambda x: ('auto', None))
    # Up to the rounding of XLA's CPU matrix products, which differs with
    # the batch size (as for WNN in test_group.py), here through 4 layers.
    for g, a in zip(grouped, alone):
      np.testing.assert_allclose(g, a, rtol=1e-5, atol=1e-6)

  @parameterized.parameters(None, 5, 32)
  def test_a_nan_stays_in_its_scalar(self, chunk_size):
    f = _forecaster()
    shapes = [(6, 4), (9,)]
    slots = [_leaves(10 + j, shapes) for j in range(WINDOW - 1)]
    slots[2][0] = slots[2][0].at[1, 2].set(jnp.nan)
    params = _leaves(9, shapes)
    deltas, bad = _jump_deltas(f, params, slots, chunk_size=chunk_size)
    self.assertEqual(int(bad), 1)
    self.assertEqual(float(deltas[0][1, 2]), 0.0)
    self.assertTrue(all(bool(jnp.all(jnp.isfinite(d))) for d in deltas))
    # The others are scaled by the statistics of the finite entries.
    self.assertGreater(float(jnp.abs(deltas[0]).sum()), 0.0)

  def test_a_constant_leaf_gets_scale_one(self):
    shift, scale = mh.leaf_scale(jnp.full((WINDOW, 3), 2.5))
    self.assertEqual((float(shift), float(scale)), (2.5, 1.0))

  def test_complex_leaves_are_scaled_as_a_whole(self):
    window = jnp.asarray([[1 + 1j, 3 + 1j]] * WINDOW, jnp.complex64)
    shift, scale = mh.leaf_scale(window)
    self.assertEqual(complex(shift), 2 + 1j)
    self.assertEqual(float(scale), 1.0)

  def test_training_with_nowcast_jumps_and_stays_finite(self):
    f = _forecaster(scale=0.05)
    params = {'w': jnp.ones((8, 4)), 'b': jnp.zeros(4, jnp.bfloat16),
              'c': jnp.ones(3, jnp.complex64)}
    tx = optax.chain(optax.adam(1e-2), onc.nowcast(
        f, record_every=2, jump_every=5, last_jump_step=10**6))
    loss = lambda p: sum(jnp.sum(jnp.abs(x.astype(jnp.complex64) - 2) ** 2)
                         for x in jax.tree.leaves(p))
    step = jax.jit(lambda p, s: (lambda u, s: (optax.apply_updates(p, u), s))(
        *tx.update(jax.grad(loss)(p), s, p)))
    state = tx.init(params)
    for _ in range(21):
      params, state = step(params, state)
    self.assertEqual(int(state[1].jumps), 2)
    jax.tree.map(lambda a, b: self.assertEqual(a.dtype, b.dtype), params,
                 {'w': jnp.ones(1), 'b': jnp.ones(1, jnp.bfloat16),
                  'c': jnp.ones(1, jnp.complex64)})
    self.assertTrue(all(bool(jnp.all(jnp.isfinite(x)))
                        for x in jax.tree.leaves(params)))


# (Seconds of compiling: the slow suite, to keep the quick one under 6 min.)
@pytest.mark.slow
class CheckedJumpTest(parameterized.TestCase):

  @parameterized.parameters((1.6, 1), (30.0, 4))
  def test_a_checked_jump_tries_horizons_and_keeps_the_best(self, goal,
                                                           expect):
    # The forecaster moves every scalar by k leaf spreads at horizon k: the
    # candidate horizons s * 2 for s in select = (0.5, 1, 2, 4) land at
    # p_n + (1, 2, 4, 8) spreads, p_n = 1 and the spread 0.49: at 1.49,
    # 1.98, 2.96 and 4.92. The loss is |p - goal|: 1.6 picks the first,
    # 30 the last.
    weights = mh.init_weights(jax.random.key(0))
    weights['output']['bias'] = jnp.arange(1.0, 41.0)
    f = onc.forecasters.multihorizon(weights, horizon=2)
    self.assertEqual(f.horizons, 40)
    select = (0.5, 1.0, 2.0, 4.0)
    tx = onc.nowcast(f, record_every=1, jump_every=5, select=select)
    params = jnp.zeros(3)
    state = tx.init(params)
    loss = lambda p: jnp.sum(jnp.abs(p - goal))
    for step in range(5):  # window 1, 0, 1, 0, 1 (spread 0.49)
      updates = jnp.full(3, 1.0 if step % 2 == 0 else -1.0)
      u, state = tx.update(updates, state, params, value_fn=loss)
      params = optax.apply_updates(params, u)
    self.assertEqual(int(state.jumps), 1)
    self.assertEqual(int(jnp.argmax(state.selected)), expect)
    spread = float(mh.leaf_scale(jnp.array([0.0, 1.0, 0.0, 1.0, 1.0]))[1])
    moved = 2 * select[expect - 1] * spread
    np.testing.assert_allclose(params, 1.0 + moved, rtol=1e-5)

  def test_no_candidate_better_stays_exactly_at_p_n(self):
    weights = mh.init_weights(jax.random.key(0))
    weights['output']['bias'] = jnp.arange(1.0, 41.0)
    f = onc.forecasters.multihorizon(weights, horizon=2)
    tx = onc.nowcast(f, record_every=1, jump_every=5)
    params = jnp.array([0.3, -0.2])
    state = tx.init(params)
    loss = lambda p: jnp.sum((p - 1.0) ** 2)  # any move up is worse
    for _ in range(5):
      u, state = tx.update(jnp.full(2, 0.25), state, params, value_fn=loss)
      params = optax.apply_updates(params, u)
    self.assertEqual(state.selected.tolist(), [1, 0, 0, 0, 0])
    np.testing.assert_array_equal(params, jnp.array([1.55, 1.05]))


class BadInputTest(parameterized.TestCase):

  def test_fresh_weights_come_from_key_0_by_default(self):
    chex.assert_trees_all_equal(
        onc.forecasters.multihorizon().weights,
        onc.forecasters.multihorizon(key=jax.random.key(0)).weights)
    with self.assertRaisesRegex(ValueError, 'key must be a single JAX'):
      onc.forecasters.multihorizon(key=3)

  @parameterized.parameters(0.0, -1.0, 41.0, True, '5')
  def test_the_default_horizon_must_be_in_range(self, horizon):
    with self.assertRaisesRegex(ValueError, r'horizon must be .*\(0, 40\]'):
      onc.forecasters.multihorizon(key=jax.random.key(0), horizon=horizon)

  def test_weights_of_another_shape_are_refused(self):
    weights = mh.init_weights(jax.random.key(0))
    weights['hidden'][0]['kernel'] = jnp.zeros((64, 63))
    with self.assertRaisesRegex(ValueError, 'do not match'):
      onc.forecasters.multihorizon(weights)
    with self.assertRaisesRegex(ValueError, 'must be a dict'):
      onc.forecasters.multihorizon([1, 2])

  def test_window_must_be_at_least_two(self):
    with self.assertRaisesRegex(ValueError, 'window must be at least 2'):
      mh.init_weights(jax.random.key(0), window=1)


if __name__ == '__main__':
  absltest.main()
