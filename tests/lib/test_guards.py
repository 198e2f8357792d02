"""The loss guard, on scalars, without nowcast."""

import jax
import jax.numpy as jnp
import pytest

import chex

from optax_nowcast import guards


def _run(guard, losses, jumps):
  state = guard.init()
  update = jax.jit(guard.update)
  verdicts = []
  for loss, jump in zip(losses, jumps):
    rollback, new_state = update(state, jnp.float32(loss), jnp.bool_(jump))
    chex.assert_trees_all_equal_shapes_and_dtypes(new_state, state)
    state = new_state
    verdicts.append(bool(rollback))
  return verdicts, state


def test_a_jump_whose_loss_stays_up_is_rolled_back_when_the_window_closes():
  # Jump at the second step; the guard watches 4 steps and judges the last 2.
  verdicts, state = _run(guards.loss_guard(4), [1, 1, 9, 9, 2, 2, 2],
                         [0, 1, 0, 0, 0, 0, 0])
  assert verdicts == [False] * 5 + [True, False]
  assert int(state.rollbacks) == 1
  assert int(state.left) == 0


def test_a_spike_repaired_in_the_first_half_is_not_a_harmful_jump():
  verdicts, state = _run(guards.loss_guard(4), [1, 1, 9, 9, 1, 1, 1],
                         [0, 1, 0, 0, 0, 0, 0])
  assert not any(verdicts)
  assert int(state.rollbacks) == 0


def test_after_a_rollback_the_average_returns_to_its_pre_jump_value():
  _, state = _run(guards.loss_guard(2), [1, 1, 5, 5], [0, 1, 0, 0])
  assert int(state.rollbacks) == 1
  assert float(state.loss_ema) == pytest.approx(1.0)


@pytest.mark.parametrize('tolerance,rolled_back', [(0.0, 1), (2.0, 0)])
def test_tolerance_lets_a_relative_increase_pass(tolerance, rolled_back):
  # Pre-jump loss 1, post-jump 2: +100%, within a tolerance of 200%.
  _, state = _run(guards.loss_guard(2, tolerance), [1, 1, 2, 2],
                  [0, 1, 0, 0])
  assert int(state.rollbacks) == rolled_back


def test_no_verdict_without_a_jump():
  verdicts, _ = _run(guards.loss_guard(1), [1, 5, 9, 20], [0, 0, 0, 0])
  assert not any(verdicts)


@pytest.mark.parametrize('steps', [0, -1, 1.5, True])
def test_bad_steps_are_rejected(steps):
  with pytest.raises(ValueError, match='steps must be a positive int'):
    guards.loss_guard(steps)


@pytest.mark.parametrize('tolerance', [-0.1, 'a', True])
def test_bad_tolerance_is_rejected(tolerance):
  with pytest.raises(ValueError, match='guard_tolerance must be a number'):
    guards.loss_guard(2, tolerance)
