"""Grouped forecasting: one forecaster call per group gives per-leaf results.

The jump forecasts many leaves in one call (``_group.py``). These tests pin
down that this is only a way of computing, not a different forecast: every
leaf gets what the forecaster gives it alone, whatever it is grouped with.
"""

import functools
import re

from absl.testing import parameterized
import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optax_nowcast as onc
from optax_nowcast import _group
from optax_nowcast import _history
from optax_nowcast import _jump

# Leaves of many shapes, labels and dtypes, and one complex leaf.
SHAPES = [(7, 5), (5,), (3, 3, 2, 4), (), (7, 5), (11,), (2, 3)]
LABELS = ['dense', 'bias', 'conv', 'scalar', 'dense', 'bias', 'dense']
DTYPES = [jnp.float32, jnp.float32, jnp.float32, jnp.float32, jnp.bfloat16,
          jnp.float32, jnp.complex64]
WINDOW = 5
# (chunk_size, block). None: groups joined whole; (4, 4): blocks within
# leaves, a leaf's last one overlapping the one before; (4, 16): small
# leaves packed into a block and forecast 4 at a time, a group smaller than
# a block padded.
CHUNK_SIZES = (None, (4, 4), (4, 16))


def _forecasters():
  return {
      'last': onc.forecasters.last(WINDOW),
      'linear': onc.forecasters.linear(WINDOW, 3.0),
      'quadratic': onc.forecasters.quadratic(WINDOW, 2.0),
      'wnn': onc.forecasters.wnn(key=jax.random.key(3)),
  }


def _leaves(seed):
  rng = np.random.default_rng(seed)

  def one(shape, dtype):
    x = rng.normal(size=shape).astype(np.float32)
    if dtype == jnp.complex64:
      x = x + 1j * rng.normal(size=shape).astype(np.float32)
    return jnp.asarray(x, dtype)

  return [one(s, d) for s, d in zip(SHAPES, DTYPES)]


def _inputs():
  params, updates = _leaves(0), _leaves(1)
  updates = [0.01 * u for u in updates]
  slots = [_leaves(10 + j) for j in range(WINDOW - 1)]
  window_slots = [jnp.int32(j) for j in (2, 0, 3, 1)]
  times = jnp.arange(-(WINDOW - 1), 1, dtype=jnp.float32) * 10.0
  return params, updates, slots, window_slots, times, jnp.float32(30.0)


def _per_leaf(forecaster, params, updates, slots, window_slots, times,
              target):
  """The reference: each leaf forecast on its own, as nowcast did before."""
  deltas, bad = [], jnp.zeros([], jnp.int32)
  for k, (p, u) in enumerate(zip(params, updates)):
    older = [_history.gather([s[k] for s in slots], j) for j in window_slots]
    d, b = _jump.forecast_delta(forecaster, optax.apply_updates(p, u), older,
                                times, target, LABELS[k])
    deltas.append(d)
    bad += b
  return deltas, bad


class PlanTest(chex.TestCase):

  def test_one_device_joins_the_leaves_of_a_label_and_dtype(self):
    params, updates, slots, *_ = _inputs()
    groups = _group.plan(params, LABELS,
                         [(u, *(s[k] for s in slots))
                          for k, u in enumerate(updates)])
    # The two float32 biases are one group; the bf16 and complex dense
    # leaves stay apart from the float32 one (joined without a cast), and
    # so do the labels.
    self.assertEqual([(g.members, g.how) for g in groups], [
        ((0,), 'single'), ((1, 5), 'concat'), ((2,), 'single'),
        ((3,), 'single'), ((4,), 'single'), ((6,), 'single')])
    self.assertEqual([g.label for g in groups],
                     ['dense', 'bias', 'conv', 'scalar', 'dense', 'dense'])

  def test_a_group_stops_at_the_cap(self):
    leaves = [jnp.zeros((100,)) for _ in range(10)]
    groups = _group.plan(leaves, ['bias'] * 10, max_elements=250)
    self.assertEqual([g.members for g in groups],
                     [(0, 1), (2, 3), (4, 5), (6, 7), (8, 9)])
    (group,) = _group.plan(leaves, ['bias'] * 10)  # the default: 2**26
    self.assertEqual(group.members, tuple(range(10)))
    self.assertEqual(group.how, 'concat')


class ForecastGroupsTest(parameterized.TestCase):

  @parameterized.product(name=('last', 'linear', 'quadratic'),
                          chunk_size=CHUNK_SIZES)
  def test_grouped_equals_per_leaf_exactly(self, name, chunk_size):
    forecaster = _forecasters()[name]
    args = _inputs()
    got, got_bad = self._grouped(forecaster, *args, chunk_size=chunk_size)
    want, want_bad = jax.jit(functools.partial(_per_leaf, forecaster))(*args)
    for g, w in zip(got, want):
      chex.assert_trees_all_equal_dtypes(g, w)
      np.testing.assert_array_equal(np.asarray(g), np.asarray(w))
    self.assertEqual(int(got_bad), int(want_bad))

  # (The in-leaf blocks of (4, 4) are the closed-form tests' business.)
  @parameterized.parameters(None, ((4, 16),))
  def test_grouped_wnn_equals_per_leaf_up_to_the_gemm_rounding(
      self, chunk_size):
    # XLA's CPU matrix products round the rows of a batch differently
    # depending on its size (the same leaf alone, or inside a larger batch,
    # differs by a few float32 ulps), so WNN is equal up to that rounding.
    forecaster = _forecasters()['wnn']
    args = _inputs()
    got, _ = self._grouped(forecaster, *args, chunk_size=chunk_size)
    want, _ = jax.jit(functools.partial(_per_leaf, forecaster))(*args)
    for g, w in zip(got, want):
      chex.assert_trees_all_equal_dtypes(g, w)
      np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=2e-6,
                                 atol=1e-7)

  @parameterized.parameters(*[(c,) for c in CHUNK_SIZES])
  def test_a_non_finite_forecast_stays_in_its_leaf(self, chunk_size):
    forecaster = _forecasters()['linear']
    params, updates, slots, window_slots, times, target = _inputs()
    slots = [list(s) for s in slots]
    slots[int(window_slots[0])][5] = slots[int(window_slots[0])][5].at[3].set(
        jnp.nan)
    deltas, bad = self._grouped(forecaster, params, updates, slots,
                                window_slots, times, target,
                                chunk_size=chunk_size)
    self.assertEqual(int(bad), 1)
    self.assertEqual(float(deltas[5][3]), 0.0)
    self.assertTrue(all(bool(jnp.all(jnp.isfinite(d))) for d in deltas))

  @staticmethod
  def _grouped(forecaster, params, updates, slots, window_slots, times,
               target, chunk_size=None):
    chunk_size, block = chunk_size or (None, None)
    @jax.jit
    def run(params, updates, slots, window_slots, times, target, live):
      groups = _group.plan(params, LABELS,
                           [(u, *(s[k] for s in slots))
                            for k, u in enumerate(updates)])
      assert any(len(g.members) > 1 for g in groups)
      forecast = _group.forecast_groups(
          forecaster, groups, params, updates, slots, window_slots, times,
          target, live, chunk_size, block=block)
      return forecast.deltas, forecast.nonfinite

    return run(params, updates, slots, window_slots, times, target,
               jnp.bool_(True))


# (Seconds of compiling: the slow suite, to keep the quick one under 6 min.)
@pytest.mark.slow
class NowcastGroupedTest(parameterized.TestCase):

  @parameterized.parameters(None, 40)
  def test_training_is_the_same_grouped_or_leaf_by_leaf(self, chunk_size):
    """A whole run with jumps: bit-equal params whichever way it is done."""
    params = {f'l{k}': x for k, x in enumerate(_leaves(0)[:6])}
    target = jax.tree.map(lambda x: jnp.cos(x.astype(jnp.float32)), params)

    def loss(p):
      return sum(jnp.sum((a.astype(jnp.float32) - b) ** 2) for a, b in
                 zip(jax.tree.leaves(p), jax.tree.leaves(target)))

    def run(placement):
      tx = optax.chain(optax.adam(0.05), onc.nowcast(
          onc.forecasters.linear(3, 2.0), record_every=2, jump_every=3,
          last_jump_step=10**6, chunk_size=chunk_size))
      original = _group.placement
      _group.placement = placement
      try:
        @jax.jit
        def step(p, s):
          u, s = tx.update(jax.grad(loss)(p), s, p)
          return optax.apply_updates(p, u), s

        p, s = params, tx.init(params)
        for _ in range(20):
          p, s = step(p, s)
      finally:
        _group.placement = original
      self.assertEqual(int(s[1].jumps), 3)
      return p

    grouped = run(_group.placement)
    alone = run(lambda x: ('auto', None))
    chex.assert_trees_all_equal(grouped, alone)


if __name__ == '__main__':
  from absl.testing import absltest
  absltest.main()


def _distinct_kernels(num_leaves, forecaster):
  """Distinct fused computations in the compiled step of a model of
  ``num_leaves`` leaves of one shape (XLA compiles each distinct one)."""
  params = [jnp.zeros((16, 8)) for _ in range(num_leaves)]
  tx = optax.chain(optax.adam(1e-3), onc.nowcast(
      forecaster, record_every=10, jump_every=5, last_jump_step=10**6))

  def step(p, s):
    u, s = tx.update(jax.tree.map(jnp.ones_like, p), s, p)
    return optax.apply_updates(p, u), s

  hlo = jax.jit(step).lower(params, tx.init(params)).compile().as_text()
  bodies = set()
  for block in re.split(r'\n(?=%)', hlo):
    if block.startswith('%fused'):
      body = block.split('\n', 1)[1]
      body = re.sub(r', metadata=\{[^}]*\}', '', body)
      bodies.add(re.sub(r'%[\w.\-]+', '%', body))
  return len(bodies)


# (Seconds of compiling: the slow suite, to keep the quick one under 6 min.)
@pytest.mark.slow
class CompileOnceTest(parameterized.TestCase):

  @parameterized.parameters('linear', 'wnn')
  def test_more_leaves_of_a_shape_add_no_kernel_to_compile(self, name):
    """The forecaster and every per-leaf step compile once per shape."""
    # (Before the members' starts were computed at run time, each of the
    # 30 leaves got a kernel of its own: its slice of the group.)
    forecaster = _forecasters()[name]
    self.assertLessEqual(_distinct_kernels(30, forecaster),
                         _distinct_kernels(6, forecaster))
