"""The history ring buffer: init, gather and write."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import chex

from optax_nowcast import _history


def test_init_makes_separate_copies_in_the_history_dtype():
  params = {'w': jnp.ones((2, 3)), 'b': jnp.zeros(3, jnp.bfloat16)}
  slots = _history.init(params, 3, None)
  assert len(slots) == 3
  chex.assert_trees_all_equal_shapes_and_dtypes(slots[0], params)
  chex.assert_trees_all_equal(slots[2], params)
  buffers = {id(leaf) for s in slots for leaf in jax.tree.leaves(s)}
  assert len(buffers) == 6  # no slot shares a buffer with another
  low = _history.init(params, 1, jnp.bfloat16)
  assert all(leaf.dtype == jnp.bfloat16 for leaf in jax.tree.leaves(low))


def test_init_masks_the_leaves_it_does_not_keep():
  params = {'b': jnp.zeros(3), 'w': jnp.ones((2, 3))}
  (slot,) = _history.init(params, 1, None, keep=[False, True])
  assert isinstance(slot['b'], optax.MaskedNode)
  chex.assert_trees_all_equal(slot['w'], params['w'])


@pytest.mark.parametrize('index', [0, 1, 2])
def test_gather_picks_the_slot_a_traced_index_names(index):
  slots = [jnp.full((2,), float(j)) for j in range(3)]
  got = jax.jit(_history.gather)(slots, jnp.int32(index))
  chex.assert_trees_all_equal(got, slots[index])


def test_write_changes_only_the_named_slot_and_keeps_its_dtype():
  slots = [[jnp.zeros(2), jnp.zeros((), jnp.bfloat16)] for _ in range(3)]
  values = [jnp.ones(2), jnp.float32(2.5)]
  out = jax.jit(_history.write)(slots, jnp.int32(1), values)
  chex.assert_trees_all_equal(out[0], slots[0])
  chex.assert_trees_all_equal(out[2], slots[2])
  chex.assert_trees_all_equal(out[1], [jnp.ones(2),
                                       jnp.asarray(2.5, jnp.bfloat16)])
  chex.assert_trees_all_equal_shapes_and_dtypes(out, slots)


def test_write_to_no_slot_changes_nothing():
  slots = [[jnp.full(2, float(j))] for j in range(3)]
  out = jax.jit(_history.write)(slots, jnp.int32(-1), [jnp.ones(2)])
  chex.assert_trees_all_equal(out, slots)

