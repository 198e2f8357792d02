"""Specification tests of the ``nowcast`` transformation and its schedules."""

from __future__ import annotations

import functools
import math
import re

import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optax_nowcast as onc
from optax_nowcast.forecasters import _curve_fit
from optax_nowcast import _nowcast as nowcast_lib
from optax_nowcast import forecasters
from optax_nowcast import schedules

# These tests check the blind jumps themselves, so they let them run to the
# end of the run (nowcast asks for an end, or for value_fn-checked jumps).
JUMP_TO_THE_END = 2**31 - 1


def probe(fn, window, horizon=1.0, name='probe'):
  """A forecaster from ``fn(values, times, target, label)``."""
  return forecasters.Forecaster(
      apply=lambda w, v, t, tg, label: jnp.asarray(
          fn(v, t, tg, label), jnp.float32
      ),
      weights=(),
      window=window,
      horizon=horizon,
      name=name,
  )


def drive(tx, params, increments, jit=True):
  """Feeds ``increments[n]`` as the step-n updates; returns params per step.

  With nowcast alone (no inner optimizer) the would-be params are
  ``p_n = params + increments[n]``, so any trajectory can be scripted.
  """
  update = jax.jit(tx.update) if jit else tx.update
  state = tx.init(params)
  out, states = [], []
  for inc in increments:
    updates, state = update(inc, state, params)
    params = optax.apply_updates(params, updates)
    out.append(params)
    states.append(state)
  return out, states


def line(n_steps, slope=0.5):
  return [jnp.array([slope, -slope], jnp.float32)] * n_steps


# ----------------------------------------------------------------------------
# When records and jumps happen.


@pytest.mark.parametrize(
    'record_every,jump_every,window,expected_jumps',
    [
        (1, 2, 2, [2, 4, 6, 8, 10, 12]),
        (3, 2, 2, [6, 12]),
        (2, 3, 2, [6, 12]),
        (1, 5, 5, [5, 10]),
        (4, 3, 3, [12]),
    ],
)
def test_jumps_happen_at_exactly_the_documented_steps(
    record_every, jump_every, window, expected_jumps
):
  tx = onc.nowcast(
      forecasters.linear(window, horizon=1),
      record_every=record_every,
      jump_every=jump_every,
      last_jump_step=JUMP_TO_THE_END,
  )
  _, states = drive(tx, jnp.zeros(2), line(13))
  jumps = [int(s.jumps) for s in states]
  jump_steps = [n for n in range(1, 14) if jumps[n - 1] > (
      jumps[n - 2] if n > 1 else 0)]
  assert jump_steps == expected_jumps


def test_records_store_the_would_be_params_of_record_steps():
  # record_every=2, window=4: three ring slots, no jump before step 8.
  tx = onc.nowcast(forecasters.last(4), record_every=2, jump_every=4,
                   last_jump_step=JUMP_TO_THE_END)
  params = jnp.zeros(1)
  out, states = drive(tx, params, [jnp.ones(1)] * 7)
  # Records at steps 2, 4, 6 fill slots 0, 1, 2 with p_2, p_4, p_6.
  history = [float(h[0]) for h in states[-1].history]
  assert history == [2.0, 4.0, 6.0]
  assert [int(s.records) for s in states] == [0, 1, 1, 2, 2, 3, 3]
  # Step 3 is not a record step: the history is unchanged by it.
  np.testing.assert_array_equal(states[2].history[0], states[1].history[0])


def test_history_ring_wraps_and_restarts_after_a_jump():
  # window=3 (two ring slots), a jump every 4 records: the ring wraps once.
  # The probe encodes its three inputs as the digits of one number.
  tx = onc.nowcast(
      probe(lambda v, t, tg, l: v[0] * 100 + v[1] * 10 + v[2], 3),
      record_every=1,
      jump_every=4,
      last_jump_step=JUMP_TO_THE_END,
  )
  out, states = drive(tx, jnp.zeros(1), [jnp.ones(1)] * 9)
  # Step 4 jumps from the window (p_2, p_3, p_4) = (2, 3, 4).
  assert float(out[3][0]) == 234.0
  # The history restarts: the next window is (p_6, p_7, p_8) of the
  # post-jump run 235, 236, 237, 238.
  assert float(out[7][0]) == pytest.approx(236 * 100 + 237 * 10 + 238)
  assert int(states[7].jumps) == 2


def test_jumps_respect_first_and_last_jump_step_and_count_skips():
  tx = onc.nowcast(
      forecasters.linear(2, horizon=1),
      record_every=1,
      jump_every=2,
      first_jump_step=4,
      last_jump_step=8,
  )
  _, states = drive(tx, jnp.zeros(2), line(12))
  final = states[-1]
  # Due at 2 (skipped), 4, 6, 8 (jumps; each restarts the history), 10 and
  # 12 (skipped: a skipped jump does not restart the history).
  assert int(final.jumps) == 3
  assert int(final.skipped) == 3


def test_a_skipped_jump_keeps_the_history_running():
  tx = onc.nowcast(
      forecasters.linear(3, horizon=1),
      record_every=1,
      jump_every=3,
      last_jump_step=JUMP_TO_THE_END,
      first_jump_step=5,
  )
  _, states = drive(tx, jnp.zeros(2), line(6))
  # Due at 3 (skipped: before step 5) and 6 (jumps).
  assert [int(s.jumps) for s in states] == [0, 0, 0, 0, 0, 1]
  assert int(states[-1].skipped) == 1


# ----------------------------------------------------------------------------
# Exactness of the curve-fit forecasters.


@pytest.mark.parametrize('window,horizon,record_every', [
    (2, 1.0, 1), (3, 2.5, 2), (5, 5.0, 3), (4, 10.0, 1)])
def test_linear_lands_exactly_on_the_straight_line(
    window, horizon, record_every
):
  slope = np.array([0.25, -0.5, 0.125], np.float32)
  tx = onc.nowcast(
      forecasters.linear(window, horizon=horizon),
      record_every=record_every,
      jump_every=window,
      last_jump_step=JUMP_TO_THE_END,
  )
  n_jump = record_every * window
  out, states = drive(tx, jnp.ones(3), [jnp.asarray(slope)] * n_jump)
  assert int(states[-1].jumps) == 1
  p_n = 1.0 + n_jump * slope
  p_prev = 1.0 + (n_jump - record_every) * slope
  expected = p_n + horizon * (p_n - p_prev)
  np.testing.assert_allclose(out[-1], expected, rtol=1e-6, atol=1e-6)


def test_linear_is_exact_with_sgd_on_a_linear_loss():
  # SGD on L(w) = c . w moves w in a straight line: w_n = w_0 - n lr c.
  c = jnp.array([1.0, -2.0, 0.5])
  lr, r, window, h = 0.01, 5, 4, 3.0
  tx = optax.chain(
      optax.sgd(lr),
      onc.nowcast(
          forecasters.linear(window, horizon=h),
          record_every=r,
          jump_every=window,
          last_jump_step=JUMP_TO_THE_END,
      ),
  )
  params = jnp.zeros(3)
  state = tx.init(params)
  step = jax.jit(
      lambda p, s: (lambda u, s: (optax.apply_updates(p, u), s))(
          *tx.update(jax.grad(lambda w: c @ w)(p), s, p)
      )
  )
  for _ in range(r * window):
    params, state = step(params, state)
  n = r * window
  expected = -(n + h * r) * lr * c
  np.testing.assert_allclose(params, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('window,horizon', [(3, 1.0), (4, 2.0), (6, 3.5)])
def test_quadratic_lands_exactly_on_a_parabola(window, horizon):
  a, b = 0.01, -0.2  # p(n) = a n^2 + b n, increments p(n) - p(n - 1)
  n_jump = window * 2
  incs = [jnp.array([a * (2 * n - 1) + b]) for n in range(1, n_jump + 1)]
  tx = onc.nowcast(
      forecasters.quadratic(window, horizon=horizon),
      record_every=2,
      jump_every=window,
      last_jump_step=JUMP_TO_THE_END,
  )
  out, _ = drive(tx, jnp.zeros(1), incs)
  target = n_jump + 2 * horizon
  np.testing.assert_allclose(
      out[-1], [a * target**2 + b * target], rtol=1e-5, atol=1e-6
  )


def test_last_jumps_change_nothing():
  tx = onc.nowcast(forecasters.last(3), record_every=2, jump_every=3,
                   last_jump_step=JUMP_TO_THE_END)
  incs = [jnp.array([0.1 * n, -1.7 / n, 3.3]) for n in range(1, 13)]
  out, states = drive(tx, jnp.array([0.3, 0.7, -0.2]), incs)
  assert int(states[-1].jumps) == 2
  expected = jnp.array([0.3, 0.7, -0.2])
  for inc, got in zip(incs, out):
    expected = optax.apply_updates(expected, inc)
    np.testing.assert_array_equal(got, expected)


def test_last_trains_like_the_inner_optimizer_alone():
  def loss(p):
    return jnp.sum((p['w'] - 1.0) ** 2) + jnp.sum(jnp.sin(p['b']))

  params = {'w': jnp.linspace(-1, 1, 12).reshape(3, 4), 'b': jnp.ones(4)}
  plain = optax.adam(0.05)
  nowcast = optax.chain(
      optax.adam(0.05),
      onc.nowcast(forecasters.last(3), record_every=2, jump_every=3,
                  last_jump_step=JUMP_TO_THE_END),
  )

  def run(tx):
    p, s = params, tx.init(params)
    step = jax.jit(
        lambda p, s: (lambda u, s: (optax.apply_updates(p, u), s))(
            *tx.update(jax.grad(loss)(p), s, p)
        )
    )
    for _ in range(30):
      p, s = step(p, s)
    return p, s

  p_plain, _ = run(plain)
  p_nowcast, s = run(nowcast)
  assert int(s[1].jumps) == 5
  # Equal up to float rounding: XLA fuses the two programs differently.
  jax.tree.map(
      functools.partial(np.testing.assert_allclose, rtol=1e-6, atol=1e-7),
      p_plain, p_nowcast)


def test_polyfit_coefficients_reproduce_polynomials():
  times = jnp.array([-8.0, -6.0, -3.0, 0.0])
  for degree in (1, 2, 3):
    w = _curve_fit.polyfit_coefficients(times, 5.0, degree)
    for k in range(degree + 1):
      np.testing.assert_allclose(w @ times**k, 5.0**k, rtol=1e-4)


# ----------------------------------------------------------------------------
# Horizons.


def test_horizon_sequence_is_indexed_by_jump_number():
  tx = onc.nowcast(
      forecasters.linear(2, horizon=1),
      record_every=1,
      jump_every=2,
      last_jump_step=JUMP_TO_THE_END,
      horizon=[4, 2, 1],
  )
  out, _ = drive(tx, jnp.zeros(1), [jnp.ones(1)] * 8, jit=True)
  # Without jumps p_n = n. Jumps at 2, 4, 6, 8 add h = 4, 2, 1, 1.
  np.testing.assert_allclose(
      [float(o[0]) for o in out], [1, 6, 7, 10, 11, 13, 14, 16], rtol=1e-6
  )


def test_horizon_callable_receives_the_jump_number():
  tx = onc.nowcast(
      forecasters.linear(2, horizon=1),
      record_every=1,
      jump_every=2,
      last_jump_step=JUMP_TO_THE_END,
      horizon=lambda j: 1.0 + j,
  )
  out, _ = drive(tx, jnp.zeros(1), [jnp.ones(1)] * 6)
  np.testing.assert_allclose(
      [float(o[0]) for o in out], [1, 3, 4, 7, 8, 12], rtol=1e-6)


def test_nino_horizons_decrease_from_40_to_1():
  assert schedules.NINO_HORIZONS[0] == 40
  assert schedules.NINO_HORIZONS[-1] == 1
  assert list(schedules.NINO_HORIZONS) == sorted(
      schedules.NINO_HORIZONS, reverse=True)


# ----------------------------------------------------------------------------
# The Introspection schedule.


@pytest.mark.parametrize('k,expected', [(0, 0.0), (1, 4.0), (2, 7.0), (3, 10.0)])
def test_introspection_feeds_weights_of_steps_0_04t_07t_t(k, expected):
  tx = onc.nowcast(
      probe(lambda v, t, tg, l: v[k], 4),
      schedule=schedules.introspection([10]),
  )
  out, states = drive(tx, jnp.zeros(1), [jnp.ones(1)] * 10)
  assert float(out[-1][0]) == expected
  assert int(states[-1].jumps) == 1


def test_introspection_times_and_target_are_relative_steps():
  t_fc = probe(lambda v, t, tg, l: t[0] * 1000 + t[1] * 10 + tg, 4)
  tx = onc.nowcast(t_fc, schedule=schedules.introspection([10]))
  out, _ = drive(tx, jnp.zeros(1), [jnp.ones(1)] * 10)
  # times = (0, 4, 7, 10) - 10, target = 2 * 10 - 10.
  assert float(out[-1][0]) == -10 * 1000 + -6 * 10 + 10


def test_introspection_with_several_interleaved_jumps():
  # Inputs: t=10: 0, 4, 7; t=20: 0, 8, 14; t=30: 0, 12, 21. With the
  # forecaster "mean of the inputs" the jumps are easy to follow by hand.
  tx = onc.nowcast(
      probe(lambda v, t, tg, l: jnp.mean(v), 4),
      schedule=schedules.introspection([10, 20, 30]),
  )
  out, states = drive(tx, jnp.zeros(1), [jnp.ones(1)] * 30)
  traj = [0.0]
  weights = {0: 0.0}
  for n in range(1, 31):
    p = traj[-1] + 1.0
    if n in (10, 20, 30):
      t = n
      p = np.mean([weights[0], weights[round(0.4 * t)],
                   weights[round(0.7 * t)], p])
    weights[n] = p
    traj.append(p)
  np.testing.assert_allclose([float(o[0]) for o in out], traj[1:], rtol=1e-6)
  assert int(states[-1].jumps) == 3
  assert len(states[-1].history) == schedules.introspection(
      [10, 20, 30]).num_slots


def test_introspection_record_on_a_jump_step_stores_post_jump_weights():
  # 0.7 * 10 = 7 is a jump step of its own.
  tx = onc.nowcast(
      probe(lambda v, t, tg, l: v[-1] + 100.0, 4),
      schedule=schedules.introspection([7, 10]),
  )
  out, _ = drive(tx, jnp.zeros(1), [jnp.ones(1)] * 10)
  # Step 7 jumps to 107; step 10 sees p_10 = 110 and jumps to 210.
  assert float(out[6][0]) == 107.0
  assert float(out[9][0]) == 210.0
  tx = onc.nowcast(
      probe(lambda v, t, tg, l: v[2], 4),
      schedule=schedules.introspection([7, 10]),
  )
  out, _ = drive(tx, jnp.zeros(1), [jnp.ones(1)] * 10)
  # The jump at 7 reads steps 0, 3, 5, 7 and lands on the weight of step 5.
  # The jump at 10 reads steps 0, 4, 7, 10: its v[2] is the weight after
  # step 7's jump (5), not before it (7).
  assert float(out[6][0]) == 5.0
  assert float(out[9][0]) == 5.0


# ----------------------------------------------------------------------------
# Safety.


def test_nonfinite_forecasts_leave_the_weight_unjumped_and_are_counted():
  fc = probe(lambda v, t, tg, l: jnp.where(v[-1] > 1.5, jnp.nan, 100.0), 2)
  tx = onc.nowcast(fc, record_every=1, jump_every=2,
                   last_jump_step=JUMP_TO_THE_END)
  out, states = drive(tx, jnp.array([0.0, 1.0, -1.0]), [jnp.ones(3)] * 2)
  # p_2 = (2, 3, 1): the first two forecasts are NaN, the third is 100.
  np.testing.assert_array_equal(out[-1], [2.0, 3.0, 100.0])
  assert int(states[-1].nonfinite) == 2
  assert int(states[-1].jumps) == 1


def test_a_nan_in_the_params_does_not_poison_the_history_forever():
  tx = onc.nowcast(forecasters.linear(3, 1.0), record_every=1, jump_every=3,
                   last_jump_step=JUMP_TO_THE_END)
  incs = [jnp.ones(2)] * 12
  params = jnp.zeros(2)
  state = tx.init(params)
  update = jax.jit(tx.update)
  outs = []
  for n, inc in enumerate(incs, start=1):
    updates, state = update(inc, state, params)
    params = optax.apply_updates(params, updates)
    if n == 2:  # a NaN appears in the first weight and is then repaired
      params = params.at[0].set(jnp.nan)
    if n == 4:
      params = params.at[0].set(float(params[1]))
    outs.append(params)
  # The jump at 3 sees the NaN and leaves weight 0 alone; weight 1 jumps.
  assert np.isnan(outs[2][0])
  assert float(outs[2][1]) == pytest.approx(4.0)
  # The record of step 4 still holds the NaN (repaired after the step), so
  # the jump at 6 skips weight 0 again; the window of the jump at 9 is clean:
  # weight 0 runs 7, 8, 9, 10 and jumps one interval ahead, to 11.
  assert float(outs[5][0]) == pytest.approx(7.0)
  assert float(outs[8][0]) == pytest.approx(11.0)
  assert np.all(np.isfinite(np.asarray(outs[3:])))
  assert int(state.nonfinite) == 2


def test_update_without_params_raises_a_clear_error():
  tx = onc.nowcast(forecasters.linear(), record_every=1, jump_every=5,
                   last_jump_step=JUMP_TO_THE_END)
  state = tx.init(jnp.zeros(2))
  with pytest.raises(ValueError, match='requires params'):
    tx.update(jnp.zeros(2), state)


def test_params_of_another_model_raise_a_clear_error():
  tx = onc.nowcast(forecasters.linear(), record_every=1, jump_every=5,
                   last_jump_step=JUMP_TO_THE_END)
  state = tx.init({'w': jnp.zeros((2, 3))})
  with pytest.raises(ValueError, match='do not match the nowcast state'):
    tx.update({'w': jnp.zeros((3, 3))}, state, {'w': jnp.zeros((3, 3))})
  with pytest.raises(ValueError, match='do not match the nowcast state'):
    tx.update({'v': jnp.zeros((2, 3))}, state, {'v': jnp.zeros((2, 3))})


@pytest.mark.parametrize(
    'kwargs,match',
    [
        (dict(record_every=0, jump_every=5), 'record_every must be a positive int, got 0'),
        (dict(record_every=-3, jump_every=5), 'record_every must be a positive int, got -3'),
        (dict(record_every=1.5, jump_every=5), 'record_every must be a positive int, got 1.5'),
        (dict(record_every=True, jump_every=5), 'record_every must be a positive int, got True'),
        (dict(record_every='10', jump_every=5), "record_every must be a positive int, got '10'"),
        (dict(record_every=1, jump_every=0), 'jump_every must be a positive int, got 0'),
        (dict(record_every=1, jump_every=3), 'jump_every must be at least the forecaster window \\(5\\)'),
        (dict(record_every=1, jump_every=5, horizon=0), 'horizon must be a positive number, got 0'),
        (dict(record_every=1, jump_every=5, horizon=-2.0), 'horizon must be a positive number, got -2.0'),
        (dict(record_every=1, jump_every=5, horizon=[3, 0]), 'horizon must be a positive number, got 0'),
        (dict(record_every=1, jump_every=5, horizon=[]), 'horizon must not be an empty'),
        (dict(record_every=1, jump_every=5, last_jump_step=-1), 'last_jump_step must be a non-negative int, got -1'),
        (dict(record_every=1, jump_every=5, first_jump_step=9, last_jump_step=3), 'last_jump_step must be >= first_jump_step'),
        (dict(record_every=1, jump_every=5, chunk_size=0), 'chunk_size must be a positive int, got 0'),
        (dict(record_every=1, jump_every=5, chunk_size='big'), "chunk_size must be a positive int, 'auto' or None, got 'big'"),
        (dict(record_every=1, jump_every=5, history_dtype=jnp.int32), 'history_dtype must be a floating dtype'),
        (dict(record_every=1, jump_every=5, history_dtype='nope'), "history_dtype must be a floating dtype, got 'nope'"),
        (dict(record_every=None, jump_every=5), 'needs record_every and jump_every'),
        (dict(record_every=1, jump_every=5, schedule=schedules.introspection([10])), 'record_every is set by the schedule'),
    ],
)
def test_bad_arguments_raise_value_errors_naming_them(kwargs, match):
  with pytest.raises(ValueError, match=match):
    onc.nowcast(forecasters.linear(5, 5), **kwargs)


@pytest.mark.parametrize(
    'factory,match',
    [
        (lambda: forecasters.linear(1), 'window must be at least 2 for a linear fit, got 1'),
        (lambda: forecasters.linear(0), 'window must be a positive int, got 0'),
        (lambda: forecasters.linear(5, horizon=0), 'horizon must be a positive number, got 0'),
        (lambda: forecasters.linear(5, horizon=float('inf')), 'horizon must be a positive number'),
        (lambda: forecasters.quadratic(2), 'window must be at least 3 for a quadratic fit, got 2'),
        (lambda: forecasters.last(0), 'window must be a positive int, got 0'),
        (lambda: forecasters.last(2.0), 'window must be a positive int, got 2.0'),
        (lambda: onc.nowcast('linear', record_every=1, jump_every=5,
                             last_jump_step=JUMP_TO_THE_END), 'forecaster must be an optax_nowcast.forecasters.Forecaster'),
        (lambda: onc.nowcast(forecasters.linear(5), schedule=schedules.introspection([10])), 'forecaster.window must equal the schedule window \\(4\\), got 5'),
        (lambda: onc.nowcast(forecasters.linear(4), schedule='introspection'), 'schedule must come from'),
        (lambda: schedules.introspection([]), 'jump_steps must not be empty'),
        (lambda: schedules.introspection([10, 5]), 'jump_steps must be strictly increasing'),
        (lambda: schedules.introspection([0]), 'jump_steps must be a positive int, got 0'),
        (lambda: schedules.introspection([2]), 'not distinct'),
        (lambda: schedules.introspection(10), 'jump_steps must be a sequence of ints, got 10'),
        (lambda: schedules.introspection([10], fractions=(0.7, 0.4)), 'fractions must be increasing'),
        (lambda: schedules.introspection([10], target_factor=1.0), 'target_factor must be > 1, got 1.0'),
    ],
)
def test_bad_forecaster_and_schedule_arguments_raise(factory, match):
  with pytest.raises(ValueError, match=match):
    factory()


def test_labels_and_mask_must_match_the_params():
  params = {'w': jnp.zeros((2, 2)), 'b': jnp.zeros(2)}
  tx = onc.nowcast(forecasters.linear(2, 1), record_every=1, jump_every=2,
                   last_jump_step=JUMP_TO_THE_END,
                   labels={'w': 'dense'})
  state = tx.init(params)
  with pytest.raises(ValueError, match='labels must have the same tree'):
    tx.update(params, state, params)
  tx = onc.nowcast(forecasters.linear(2, 1), record_every=1, jump_every=2,
                   last_jump_step=JUMP_TO_THE_END,
                   mask={'w': True})
  with pytest.raises(ValueError, match='mask must have the same tree'):
    tx.init(params)


# ----------------------------------------------------------------------------
# Labels, masks, chunks, dtypes.

_CODES = {'conv': 1.0, 'dense': 2.0, 'bias': 3.0, 'scalar': 4.0, 'emb': 5.0,
          'norm': 6.0, 'embedding': 7.0}


def label_probe():
  return probe(lambda v, t, tg, label: _CODES[label], 2)


def test_default_labels_follow_the_rank_of_each_leaf():
  params = {
      'kernel': jnp.zeros((3, 3, 2, 4)),
      'dense': jnp.zeros((4, 5)),
      'bias': jnp.zeros(5),
      'scale': jnp.zeros(()),
  }
  tx = onc.nowcast(label_probe(), record_every=1, jump_every=2,
                   last_jump_step=JUMP_TO_THE_END)
  out, _ = drive(tx, params, [jax.tree.map(jnp.ones_like, params)] * 2)
  got = {k: float(v.reshape(-1)[0]) for k, v in out[-1].items()}
  assert got == {'kernel': 1.0, 'dense': 2.0, 'bias': 3.0, 'scale': 4.0}


def test_default_labels_name_norm_scales_and_embeddings():
  # Flax's names: LayerNorm/BatchNorm 'scale' and 'bias', Embed 'embedding'.
  params = {
      'LayerNorm_0': {'scale': jnp.zeros(5), 'bias': jnp.zeros(5)},
      'Embed_0': {'embedding': jnp.zeros((10, 4))},
      'Dense_0': {'kernel': jnp.zeros((4, 5))},
      'MultiHeadDotProductAttention_0': {'query': {'kernel': jnp.zeros(
          (4, 2, 2))}},
      'Conv_0': {'kernel': jnp.zeros((3, 3, 1, 2))},
  }
  tx = onc.nowcast(label_probe(), record_every=1, jump_every=2,
                   last_jump_step=JUMP_TO_THE_END)
  out, _ = drive(tx, params, [jax.tree.map(jnp.ones_like, params)] * 2)
  got = jax.tree.map(lambda v: float(v.reshape(-1)[0]), out[-1])
  assert got == {'LayerNorm_0': {'scale': 6.0, 'bias': 3.0},
                 'Embed_0': {'embedding': 7.0},
                 'Dense_0': {'kernel': 2.0},
                 'MultiHeadDotProductAttention_0': {'query': {'kernel': 2.0}},
                 'Conv_0': {'kernel': 1.0}}
  assert onc.default_label(jnp.zeros(5)) == 'bias'  # no path: the rank


def test_user_labels_as_tree_or_callable_reach_the_forecaster():
  params = {'emb': jnp.zeros((4, 3)), 'w': jnp.zeros((3, 3))}
  for labels in ({'emb': 'emb', 'w': 'dense'},
                 lambda p: {k: 'emb' if k == 'emb' else 'dense' for k in p}):
    tx = onc.nowcast(label_probe(), record_every=1, jump_every=2,
                     last_jump_step=JUMP_TO_THE_END,
                     labels=labels)
    out, _ = drive(tx, params, [jax.tree.map(jnp.ones_like, params)] * 2)
    assert float(out[-1]['emb'][0, 0]) == 5.0
    assert float(out[-1]['w'][0, 0]) == 2.0


def test_masked_leaves_are_never_recorded_nor_jumped():
  params = {'w': jnp.zeros((2, 2)), 'frozen': jnp.zeros(3)}
  mask = lambda p: {'w': True, 'frozen': False}
  tx = onc.nowcast(label_probe(), record_every=1, jump_every=2,
                   last_jump_step=JUMP_TO_THE_END, mask=mask)
  out, states = drive(tx, params, [jax.tree.map(jnp.ones_like, params)] * 2)
  np.testing.assert_array_equal(out[-1]['frozen'], [2.0, 2.0, 2.0])
  assert float(out[-1]['w'][0, 0]) == 2.0  # jumped to the 'dense' code
  assert isinstance(states[-1].history[0]['frozen'], optax.MaskedNode)


@pytest.mark.parametrize(
    'forecaster, schedule, steps, chunks, check, jumps', [
        # Closed-form: exactly equal.
        (lambda: forecasters.quadratic(4, 2.0),
         dict(record_every=2, jump_every=4), 8, (16, 1000),
         np.testing.assert_array_equal, None),
        # Learned: equal up to float32 rounding (the GEMMs see other batch
        # sizes).
        (lambda: forecasters.load('wnn'), dict(record_every=1, jump_every=5),
         6, (64,), functools.partial(np.testing.assert_allclose, rtol=1e-5,
                                     atol=1e-6), 1),
    ], ids=['quadratic', 'wnn'])
def test_chunked_forecasts_agree_with_unchunked(forecaster, schedule, steps,
                                                chunks, check, jumps):
  params = {'w': jax.random.normal(jax.random.key(0), (37, 11)),
            'b': jnp.zeros(5)}
  grads = [jax.tree.map(lambda p, k=k: jnp.sin(p * k + 1.0), params)
           for k in range(1, steps + 1)]
  results = []
  for chunk in (None, *chunks):
    tx = onc.nowcast(forecaster(), **schedule,
                     last_jump_step=JUMP_TO_THE_END, chunk_size=chunk)
    out, states = drive(tx, params, grads)
    if jumps is not None:
      assert int(states[-1].jumps) == jumps
    results.append(out[-1])
  for r in results[1:]:
    jax.tree.map(check, results[0], r)


def _compiled_update(forecaster, params, **kwargs):
  tx = onc.nowcast(forecaster, record_every=1, jump_every=5,
                   last_jump_step=JUMP_TO_THE_END, **kwargs)
  state = jax.eval_shape(tx.init, params)
  return jax.jit(tx.update).lower(params, state, params).compile()


def _jump_temp_bytes(forecaster, params, **kwargs):
  """XLA's temporary bytes of a compiled update (its jump branch's peak)."""
  compiled = _compiled_update(forecaster, params, **kwargs)
  return compiled.memory_analysis().temp_size_in_bytes


def _constant_bytes(compiled) -> int:
  """The bytes of the constants compiled into a step (its optimized HLO's
  ``constant`` instructions; XLA's memory analysis leaves them out)."""
  total = 0
  for m in re.finditer(r'= ([a-z]+)(\d+)\[([\d,]*)\](?:\{[^}]*\})? constant\(',
                       compiled.as_text()):
    total += math.prod(int(d) for d in filter(None, m.group(3).split(','))
                       ) * max(int(m.group(2)) // 8, 1)
  return total


#: 2**20 weights in 3 leaves: joined, the group would take 4 MB a copy;
#: WNN's intermediates take ~2 KB per weight unchunked.
_MB_PARAMS = {'w': jax.ShapeDtypeStruct((1024, 1000), jnp.float32),
              'v': jax.ShapeDtypeStruct((24, 1000), jnp.float32),
              'b': jax.ShapeDtypeStruct((576,), jnp.float32)}


@pytest.mark.parametrize('name', [
    'linear',
    # (A 1M-weight compile of a learned forecaster each: the slow suite.)
    pytest.param('wnn', marks=pytest.mark.slow),
    pytest.param('multihorizon', marks=pytest.mark.slow)])
def test_default_chunks_keep_a_jumps_temporaries_under_32_mb(name):
  """On a CPU, a step whose temporaries pass 32 MB pays page faults on every
  call, jump or not (results/probes/cpu_temp_arena.md): the default jump streams
  the leaves through the forecaster in chunks and stays below that (for
  multihorizon its leaf statistics too are accumulated chunk by chunk)."""
  forecaster = (forecasters.linear(window=5, horizon=5) if name == 'linear'
                else forecasters.load(name))
  assert _jump_temp_bytes(forecaster, _MB_PARAMS) < 32 * 2**20


def test_nino_jump_streams_the_neural_graph_under_32_mb():
  """NiNo's graph network reads each block of edges in place from the
  leaves and their history (no copy of the windows or of the edges'
  features): on a 1M-weight MLP its jump's temporaries are the forecasts'
  buffer (4 MB) and a block's intermediates, not the ~70 MB they were."""
  params = {'Dense_0': {'kernel': jax.ShapeDtypeStruct((1024, 1000),
                                                       jnp.float32),
                        'bias': jax.ShapeDtypeStruct((1000,), jnp.float32)},
            'Dense_1': {'kernel': jax.ShapeDtypeStruct((1000, 10),
                                                       jnp.float32),
                        'bias': jax.ShapeDtypeStruct((10,), jnp.float32)}}
  assert _jump_temp_bytes(forecasters.load('nino'), params) < 32 * 2**20


def test_nino_jump_compiles_no_per_edge_table():
  """A layer's edges join nodes given by a formula in (input, output), so
  the step holds no table of the graph's million edges (it held nine
  copies of three, 36 MB, when XLA sank them into each pass's loop): its
  constants are the node-sized ones (2,035 nodes x 128 floats)."""
  params = {'Dense_0': {'kernel': jax.ShapeDtypeStruct((1024, 1000),
                                                       jnp.float32),
                        'bias': jax.ShapeDtypeStruct((1000,), jnp.float32)},
            'Dense_1': {'kernel': jax.ShapeDtypeStruct((1000, 10),
                                                       jnp.float32),
                        'bias': jax.ShapeDtypeStruct((10,), jnp.float32)}}
  compiled = _compiled_update(forecasters.load('nino'), params)
  assert 0 < _constant_bytes(compiled) < 8 * 2**20


def test_auto_chunks_learned_forecasters_finer_than_closed_form_ones():
  assert (nowcast_lib._chunk_size('auto', forecasters.load('wnn'))
          == nowcast_lib.AUTO_CHUNK_SIZE == 2**12)
  assert (nowcast_lib._chunk_size('auto', forecasters.linear(5, 5))
          == nowcast_lib.AUTO_CLOSED_FORM_CHUNK_SIZE == 2**16)


def test_a_streamed_jump_needs_less_than_half_the_joined_ones_memory():
  linear = forecasters.linear(window=5, horizon=5)
  assert (_jump_temp_bytes(linear, _MB_PARAMS)
          < _jump_temp_bytes(linear, _MB_PARAMS, chunk_size=None) / 2)


def test_history_dtype_bfloat16_halves_the_history():
  params = {'w': jnp.ones((64, 32))}
  full = onc.nowcast(forecasters.linear(5), record_every=1, jump_every=5,
                     last_jump_step=JUMP_TO_THE_END)
  half = onc.nowcast(forecasters.linear(5), record_every=1, jump_every=5,
                     last_jump_step=JUMP_TO_THE_END,
                     history_dtype=jnp.bfloat16)
  nbytes = lambda s: sum(x.nbytes for x in jax.tree.leaves(s.history))
  assert nbytes(full.init(params)) == 4 * params['w'].nbytes
  assert nbytes(half.init(params)) == 2 * params['w'].nbytes
  # The update keeps the history dtype and still forecasts a line closely.
  out, states = drive(half, params, [{'w': jnp.full((64, 32), 0.01)}] * 5)
  assert states[-1].history[0]['w'].dtype == jnp.bfloat16
  np.testing.assert_allclose(out[-1]['w'], 1.0 + 0.01 * 10, rtol=1e-2)


def test_init_copies_what_it_keeps_so_params_and_state_can_be_donated():
  params = {'w': jnp.ones((4, 4))}
  tx = optax.chain(optax.adam(1e-2), onc.nowcast(
      forecasters.linear(3, 1.0), record_every=1, jump_every=3,
      last_jump_step=JUMP_TO_THE_END))
  state = tx.init(params)
  for h in jax.tree.leaves(state[1].history):
    assert h.unsafe_buffer_pointer() != params['w'].unsafe_buffer_pointer()

  @functools.partial(jax.jit, donate_argnums=(0, 1))
  def step(p, s):
    u, s = tx.update(jax.tree.map(jnp.ones_like, p), s, p)
    return optax.apply_updates(p, u), s

  for _ in range(4):
    params, state = step(params, state)
  assert int(state[1].jumps) == 1


# ----------------------------------------------------------------------------
# Compiled: under lax.scan, the forecaster in the jump's branch, in place.
# (The optax contract, over every configuration: tests/lib/test_contract.py.)


def _rosenbrock(p):
  x, y = p['x'], p['y']
  return jnp.sum((1 - x) ** 2 + 100 * (y - x**2) ** 2)


def _step_fn(tx, loss=_rosenbrock, **kwargs):
  def step(params, state):
    value, grads = jax.value_and_grad(loss)(params)
    updates, state = tx.update(grads, state, params, value=value, **kwargs)
    return optax.apply_updates(params, updates), state

  return step


def _rosen_params():
  return {'x': jnp.array([-0.5, 0.3]), 'y': jnp.array([0.5, 0.1])}


def test_lax_scan_matches_a_python_loop_and_converges():
  tx = optax.chain(optax.adam(1e-2), onc.nowcast(
      forecasters.linear(3, 1.0), record_every=10, jump_every=3,
      last_jump_step=2000))
  step = _step_fn(tx)
  params = _rosen_params()
  state = tx.init(params)

  def body(carry, _):
    return step(*carry), None

  (p_scan, s_scan), _ = jax.lax.scan(body, (params, state), length=4000)
  jstep = jax.jit(step)
  p_loop, s_loop = params, state
  for _ in range(60):
    p_loop, s_loop = jstep(p_loop, s_loop)
  (p_scan60, _), _ = jax.lax.scan(body, (params, state), length=60)
  jax.tree.map(
      functools.partial(np.testing.assert_allclose, rtol=1e-5, atol=1e-6),
      p_scan60, p_loop)
  assert int(s_scan[1].jumps) == 66
  jax.tree.map(
      functools.partial(np.testing.assert_allclose, rtol=3e-2, atol=3e-2),
      p_scan, {'x': jnp.ones(2), 'y': jnp.ones(2)})


def _eqns(jaxpr):
  """All equations of a jaxpr, with those of nested jaxprs, and their depth."""
  for eqn in jaxpr.eqns:
    yield eqn, 0
    for sub in jax.extend.core.jaxprs_in_params(eqn.params):
      for inner, depth in _eqns(sub):
        yield inner, depth + 1


def test_forecaster_runs_only_inside_the_jump_branch_and_no_host_callbacks():
  # cosh marks the forecaster's work in the jaxpr.
  fc = probe(lambda v, t, tg, l: jnp.cosh(v[-1]), 2)
  tx = optax.chain(optax.adam(1e-2), onc.nowcast(
      fc, record_every=1, jump_every=2, last_jump_step=JUMP_TO_THE_END))
  params = _rosen_params()
  jaxpr = jax.make_jaxpr(_step_fn(tx))(params, tx.init(params)).jaxpr
  found = [(eqn.primitive.name, depth) for eqn, depth in _eqns(jaxpr)]
  cosh_depths = {d for name, d in found if name == 'cosh'}
  assert cosh_depths and 0 not in cosh_depths
  top = {name for name, d in found if d == 0}
  assert 'cond' in top
  assert not [name for name, _ in found if 'callback' in name]


@pytest.mark.parametrize('guard_steps,checked', [(None, False), (3, True)],
                         ids=['blind', 'guarded and checked'])
def test_a_donated_step_reads_the_params_and_history_in_place(guard_steps,
                                                             checked):
  # The step's conditionals (jump or rollback; record) read the donated
  # params, updates and history in place: the compiled step's entry holds
  # no copy of a float array, so a step that neither jumps nor records
  # copies nothing.
  tx = optax.chain(optax.sgd(0.1), onc.nowcast(
      forecasters.linear(3, 2.0), record_every=2, jump_every=3,
      last_jump_step=JUMP_TO_THE_END, guard_steps=guard_steps))
  loss = lambda p: jnp.sum(jnp.sin(p['w']) ** 2)
  step = _step_fn(tx, loss, **({'value_fn': loss} if checked else {}))
  params = {'w': jnp.ones((64, 64))}
  hlo = jax.jit(step, donate_argnums=(0, 1)).lower(
      params, tx.init(params)).compile().as_text()
  entry = hlo[hlo.index('\nENTRY'):]
  entry = entry[:entry.index('\n}')]
  assert ' conditional(' in entry
  assert not re.findall(r'= f32\[[\d,]*\]\{[^}]*\} copy\(', entry), entry


# ----------------------------------------------------------------------------
# Guarded jumps.


def _guarded_run(forecast, loss_of, steps, guard_steps=2, tolerance=0.0,
                 window=3):
  """Scalar param, +1 per step, a jump every ``window`` records."""
  tx = onc.nowcast(probe(forecast, window), record_every=1, jump_every=window,
                   last_jump_step=JUMP_TO_THE_END,
                   guard_steps=guard_steps, guard_tolerance=tolerance)
  params = jnp.zeros(1)
  state = tx.init(params)
  update = jax.jit(tx.update)
  out, states = [], []
  for _ in range(steps):
    updates, state = update(jnp.ones(1), state, params,
                            value=loss_of(params))
    params = optax.apply_updates(params, updates)
    out.append(float(params[0]))
    states.append(state)
  return out, states


def test_guard_rolls_a_harmful_jump_back_to_the_pre_jump_params():
  # The loss is |p - 3.5|: the jump at step 3 (to 103) makes it much worse.
  out, states = _guarded_run(lambda v, t, tg, l: v[-1] + 100.0,
                             lambda p: jnp.abs(p[0] - 3.5), 6)
  # The value passed at step n is the loss before step n's update. Steps 4
  # and 5 watch the loss (at 103 and 104); step 5 closes the guard and,
  # instead of moving to 105, goes back to the pre-jump p_3 = 3.
  assert out == [1.0, 2.0, 103.0, 104.0, 3.0, 4.0]
  assert [int(s.guard.rollbacks) for s in states] == [0, 0, 0, 0, 1, 1]
  assert int(states[4].records) == 0  # the history restarts
  assert float(states[4].guard.loss_ema) == pytest.approx(float(states[2].guard.loss_ema))


def test_guard_keeps_a_helpful_jump():
  # The loss is |p - 10|: the jump at step 3 (to 9) helps.
  out, states = _guarded_run(lambda v, t, tg, l: v[-1] + 6.0,
                             lambda p: jnp.abs(p[0] - 10.0), 5)
  assert out == [1.0, 2.0, 9.0, 10.0, 11.0]
  assert int(states[-1].guard.left) == 0  # closed at step 5
  assert int(states[-1].guard.rollbacks) == 0
  assert int(states[-1].jumps) == 1


def test_guard_judges_the_last_half_of_its_window():
  # Window 5: the jump at step 5 moves p from 5 to 15; steps 6..9 watch the
  # loss at p = 15, 16, 17, 18. A spike at 15 and 16 that is gone by 17 is
  # not a harmful jump; a loss that stays up is.
  jump = lambda v, t, tg, l: v[-1] + 10.0
  spike = lambda p: jnp.where((p[0] > 14) & (p[0] < 16.5), 5.0, 0.0)
  out, states = _guarded_run(jump, spike, 9, guard_steps=4, window=5)
  assert out[4:] == [15.0, 16.0, 17.0, 18.0, 19.0]
  assert int(states[-1].guard.rollbacks) == 0
  stays = lambda p: jnp.where(p[0] > 14, 5.0, 0.0)
  out, states = _guarded_run(jump, stays, 9, guard_steps=4, window=5)
  assert out[4:] == [15.0, 16.0, 17.0, 18.0, 5.0]  # back to p_5
  assert int(states[-1].guard.rollbacks) == 1


def test_guard_tolerance_lets_a_small_loss_increase_pass():
  # The jump moves p from 3 to 3.2, where the loss doubles (1 -> 2).
  forecast = lambda v, t, tg, l: v[-1] + 0.2
  loss = lambda p: jnp.where(p[0] > 3.1, 2.0, 1.0)
  _, strict = _guarded_run(forecast, loss, 6, tolerance=0.0)
  _, lenient = _guarded_run(forecast, loss, 6, tolerance=2.0)
  assert int(strict[-1].guard.rollbacks) == 1
  assert int(lenient[-1].guard.rollbacks) == 0


def test_guard_needs_the_loss_and_a_window_that_keeps_the_pre_jump_params():
  tx = onc.nowcast(forecasters.linear(3, 1.0), record_every=1, jump_every=3,
                   last_jump_step=JUMP_TO_THE_END,
                   guard_steps=2)
  state = tx.init(jnp.zeros(1))
  with pytest.raises(ValueError, match='pass it as'):
    tx.update(jnp.ones(1), state, jnp.zeros(1))
  with pytest.raises(ValueError, match='guard_steps must be at most'):
    onc.nowcast(forecasters.linear(3, 1.0), record_every=1, jump_every=3,
                last_jump_step=JUMP_TO_THE_END,
                guard_steps=3)
  with pytest.raises(ValueError, match='guard_steps needs the periodic'):
    onc.nowcast(probe(lambda v, t, tg, l: v[-1], 4), guard_steps=1,
                schedule=schedules.introspection([10]))
  with pytest.raises(ValueError, match='guard_tolerance must be a number'):
    onc.nowcast(forecasters.linear(3, 1.0), record_every=1, jump_every=3,
                last_jump_step=JUMP_TO_THE_END,
                guard_steps=2, guard_tolerance=-1.0)


# ----------------------------------------------------------------------------
# Complex params.


@pytest.mark.parametrize('dtype', [jnp.complex64, jnp.complex128])
def test_complex_params_jump_in_their_real_and_imaginary_parts(dtype):
  # SGD steps of +0.1 + 0.2j; a jump one interval ahead from (0.2 + 0.4j)
  # lands on 0.3 + 0.6j: the imaginary part moves with the real one.
  with jax.enable_x64(dtype == jnp.complex128):
    tx = optax.chain(optax.sgd(0.1), onc.nowcast(
        forecasters.linear(window=2, horizon=1), record_every=1,
        jump_every=2,
        last_jump_step=JUMP_TO_THE_END))
    params = jnp.zeros(1, dtype)
    state = tx.init(params)
    for _ in range(2):
      updates, state = jax.jit(tx.update)(-jnp.array([1 + 2j], dtype), state,
                                          params)
      assert updates.dtype == dtype
      params = optax.apply_updates(params, updates)
    assert int(optax.tree.get(state, 'jumps')) == 1
    np.testing.assert_allclose(params, [0.3 + 0.6j], rtol=1e-5)


def test_complex_params_refuse_a_real_history_dtype():
  tx = onc.nowcast(forecasters.linear(2, 1), record_every=1, jump_every=2,
                   last_jump_step=JUMP_TO_THE_END,
                   history_dtype=jnp.bfloat16)
  with pytest.raises(ValueError, match='would drop the imaginary part'):
    tx.init({'z': jnp.zeros(2, jnp.complex64)})


# ----------------------------------------------------------------------------
# Arguments a new user passes.


@pytest.mark.parametrize('every', [10, np.int64(10), np.int32(10),
                                   jnp.int32(10), jnp.array(10)],
                         ids=['int', 'np.int64', 'np.int32', 'jnp.int32',
                              'jnp.array'])
def test_record_every_accepts_any_concrete_integer_scalar(every):
  tx = onc.nowcast(forecasters.linear(2, 1), record_every=every,
                   jump_every=jnp.int32(2),
                   last_jump_step=JUMP_TO_THE_END)
  state = tx.init(jnp.zeros(1))
  update = jax.jit(tx.update)  # one compile, not 20 op-by-op steps
  for _ in range(20):
    _, state = update(jnp.ones(1), state, jnp.zeros(1))
  assert int(state.jumps) == 1  # a record at steps 10 and 20, a jump at 20


def test_a_traced_record_every_is_rejected_with_a_clear_message():
  def build(every):
    onc.nowcast(forecasters.linear(2, 1), record_every=every, jump_every=2,
                last_jump_step=JUMP_TO_THE_END)
    return every

  with pytest.raises(ValueError, match='record_every must be a concrete int'):
    jax.jit(build)(jnp.int32(10))


def test_introspection_without_its_schedule_says_which_schedule_to_use():
  with pytest.raises(ValueError,
                     match=r'schedule=onc.schedules.introspection\(\[...\]\)'):
    onc.nowcast(onc.forecasters.introspection(), record_every=10,
                jump_every=5,
                last_jump_step=JUMP_TO_THE_END)


# ----------------------------------------------------------------------------
# Checked jumps (value_fn) and the end of blind jumps.


def _checked_run(forecast, loss, select=onc.DEFAULT_SELECT, steps=2):
  """Scripted p_n = 2, 4: a window-2 probe forecasts ``forecast`` at step 2.

  Returns the params after ``steps`` steps and the final state.
  """
  tx = onc.nowcast(probe(lambda v, t, tg, l: forecast, 2), record_every=1,
                   jump_every=2, select=select)
  params, state = jnp.zeros(1), tx.init(jnp.zeros(1))
  update = jax.jit(functools.partial(tx.update, value_fn=loss))
  for _ in range(steps):
    updates, state = update(jnp.full(1, 2.0), state, params)
    params = optax.apply_updates(params, updates)
  return params, state


# ``winner``: the index in ``NowcastState.selected``, 0 for staying at p_n,
# k for the k-th step size of (0.25, 0.5, 1, 2).
@pytest.mark.parametrize('optimum,expected,winner', [
    (5.0, 5.0, 1),    # p_n = 4, forecast 8: s = 0.25 lands on 5
    (6.0, 6.0, 2),    # s = 0.5
    (8.0, 8.0, 3),    # s = 1, the forecast itself
    (12.0, 12.0, 4),  # s = 2
    (3.0, 4.0, 0),    # behind p_n: every step size is worse, stay
    (4.0, 4.0, 0),    # at p_n: a tie is no jump
])
def test_a_checked_jump_moves_to_the_candidate_of_least_loss(
    optimum, expected, winner):
  params, state = _checked_run(8.0, lambda p: jnp.sum((p - optimum) ** 2))
  np.testing.assert_allclose(params, [expected])
  assert int(state.jumps) == 1
  assert state.selected.tolist() == [int(k == winner) for k in range(5)]


def test_a_checked_jump_stays_when_the_losses_are_not_finite():
  # The loss at p_n is NaN: no comparison holds, stay at p_n.
  params, state = _checked_run(8.0, lambda p: jnp.sum(p) * jnp.nan)
  np.testing.assert_allclose(params, [4.0])
  # Every candidate's loss is NaN or inf but p_n's: stay.
  params, state = _checked_run(
      8.0, lambda p: jnp.where(p[0] > 4.0, jnp.inf, jnp.sum(p)))
  np.testing.assert_allclose(params, [4.0])
  assert state.selected.tolist() == [1, 0, 0, 0, 0]


def test_select_sets_the_step_sizes_a_checked_jump_tries():
  params, state = _checked_run(8.0, lambda p: jnp.sum((p - 7.0) ** 2),
                               select=(1.0, 3.0))
  # Candidates 4 (stay), 8, 16: the forecast itself wins.
  np.testing.assert_allclose(params, [8.0])
  assert state.selected.tolist() == [0, 1, 0]


def test_a_checked_jump_moves_the_whole_tree_and_masked_leaves_not():
  loss = lambda p: jnp.sum((p['a'] - 8.0) ** 2) + jnp.sum(p['b'] ** 2)
  tx = onc.nowcast(probe(lambda v, t, tg, l: 2 * v[-1], 2), record_every=1,
                   jump_every=2, mask={'a': True, 'b': False})
  params = {'a': jnp.zeros(3), 'b': jnp.ones(2)}
  state = tx.init(params)
  for _ in range(2):
    updates, state = tx.update({'a': jnp.full(3, 2.0), 'b': jnp.zeros(2)},
                               state, params, value_fn=loss)
    params = optax.apply_updates(params, updates)
  np.testing.assert_allclose(params['a'], 8.0)  # 4 -> forecast 8, s = 1
  np.testing.assert_allclose(params['b'], 1.0)
  assert state.selected.tolist() == [0, 0, 0, 1, 0]


def test_without_value_fn_or_last_jump_step_update_says_what_to_do():
  tx = onc.nowcast(forecasters.linear(2, 1), record_every=1, jump_every=2)
  state = tx.init(jnp.zeros(1))
  with pytest.raises(ValueError, match=(
      r'would jump blind until training ends.*set last_jump_step=.*'
      r'half the steps of a cosine.*'
      r'value_fn=onc.lookahead\(.*eval_fn=lambda p: loss\(p, next_batch\)')):
    tx.update(jnp.ones(1), state, jnp.zeros(1))
  with pytest.raises(ValueError, match='would jump blind'):
    jax.jit(tx.update)(jnp.ones(1), state, jnp.zeros(1))
  # select=None ignores value_fn: the jumps are blind, so the same error.
  tx = onc.nowcast(forecasters.linear(2, 1), record_every=1, jump_every=2,
                   select=None)
  state = tx.init(jnp.zeros(1))
  assert state.selected == ()
  with pytest.raises(ValueError, match='set last_jump_step=.*set select= '):
    tx.update(jnp.ones(1), state, jnp.zeros(1), value_fn=jnp.sum)
  # The Introspection schedule ends by itself: blind jumps are fine.
  tx = onc.nowcast(forecasters.linear(4, 1),
                   schedule=schedules.introspection([10]))
  tx.update(jnp.ones(1), tx.init(jnp.zeros(1)), jnp.zeros(1))


@pytest.mark.parametrize('select,match', [
    ((), 'select must not be empty'),
    ((1.0, 0.0), 'select must be a positive number, got 0.0'),
    ((1.0, -2.0), 'select must be a positive number, got -2.0'),
    ((1.0, float('nan')), 'select must be a positive number'),
    ((0.5, 0.5), r'select must not repeat a step size, got \(0.5, 0.5\)'),
    (1.0, r'select must be a sequence of step sizes .* got 1.0'),
    ('1.0', "select must be a sequence of step sizes .* got '1.0'"),
])
def test_bad_select_raises_naming_it(select, match):
  with pytest.raises(ValueError, match=match):
    onc.nowcast(forecasters.linear(2, 1), record_every=1, jump_every=2,
                select=select)


@pytest.mark.parametrize('value_fn,match', [
    (3.0, 'value_fn must be a function of the params returning the loss'),
    (lambda p: p, r'value_fn must return the loss as a real scalar, got'
                  r' float32\[1\]'),
    (lambda p: (jnp.sum(p), p), r'got tuple; return only the loss'),
    (lambda p: jnp.sum(p) > 0, r'real scalar, got bool\[\]'),
])
def test_bad_value_fn_raises_naming_it(value_fn, match):
  tx = onc.nowcast(forecasters.linear(2, 1), record_every=1, jump_every=2)
  state = tx.init(jnp.zeros(1))
  with pytest.raises(ValueError, match=match):
    for _ in range(2):  # the candidates are evaluated on the jump step
      _, state = tx.update(jnp.ones(1), state, jnp.zeros(1),
                           value_fn=value_fn)
