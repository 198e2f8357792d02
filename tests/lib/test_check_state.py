"""onc.check_state: a restored optimizer state that belongs to another model."""

import jax
import jax.numpy as jnp
import optax
import pytest

import optax_nowcast as onc

# These tests check the blind jumps themselves, so they let them run to the
# end of the run (nowcast asks for an end, or for value_fn-checked jumps).
JUMP_TO_THE_END = 2**31 - 1


def _tx():
  return optax.chain(
      optax.adam(1e-3),
      onc.nowcast(onc.forecasters.linear(3, 3), record_every=2, jump_every=3,
                  last_jump_step=JUMP_TO_THE_END))


def _params(width=4):
  return {'dense': {'kernel': jnp.zeros((3, width)), 'bias': jnp.zeros(width)}}


def test_matching_state_passes():
  tx, params = _tx(), _params()
  state = tx.init(params)
  onc.check_state(tx, state, params)
  # Also after some updates (counters advanced, history filled).
  for _ in range(7):
    updates, state = tx.update(jax.tree.map(jnp.ones_like, params), state,
                               params)
    params = optax.apply_updates(params, updates)
  onc.check_state(tx, state, params)


def test_other_model_names_the_leaf():
  tx = _tx()
  state = tx.init(_params(4))
  with pytest.raises(ValueError, match=(
      r"another model.*opt_state\[0\]\[0\]\.mu\['dense'\]\['bias'\] the state has"
      r' float32\[4\], tx.init\(params\) gives float32\[5\]')):
    onc.check_state(tx, state, _params(5))


def test_without_the_check_adam_fails_first_with_a_shape_trace():
  # What check_state is for: the chain's first transformation fails on the
  # mismatch before nowcast's own check can run, without naming the cause.
  tx = _tx()
  state = tx.init(_params(4))
  params = _params(5)
  with pytest.raises(Exception) as info:
    tx.update(jax.tree.map(jnp.ones_like, params), state, params)
  assert 'another model' not in str(info.value)


def test_other_tree_names_the_missing_and_unexpected_paths():
  tx = _tx()
  state = tx.init({'a': jnp.zeros(3)})
  with pytest.raises(ValueError, match=r"missing opt_state\[0\]\[0\]\.mu\['b'\].*"
                     r"unexpected opt_state\[0\]\[0\]\.mu\['a'\]"):
    onc.check_state(tx, state, {'b': jnp.zeros(3)})


def test_same_paths_other_containers():
  # Restored without a target, orbax gives plain containers, not NamedTuples.
  tx, params = optax.adam(1e-3), {'w': jnp.zeros(2)}
  state = tx.init(params)
  as_list = [state[0]._asdict(), state[1]]
  with pytest.raises(ValueError, match='another model'):
    onc.check_state(tx, as_list, params)


def test_dtype_mismatch():
  tx = _tx()
  state = tx.init({'w': jnp.zeros(3, jnp.bfloat16)})
  with pytest.raises(ValueError, match=r'bfloat16\[3\].*float32\[3\]'):
    onc.check_state(tx, state, {'w': jnp.zeros(3)})
