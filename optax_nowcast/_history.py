"""The weight history: a ring of params-shaped slots, read and written in place.

The history of :func:`optax_nowcast.nowcast` is a tuple of ``num_slots``
params-shaped trees (``optax.MaskedNode`` where a leaf is not nowcast), so it
shards like the params. This module holds the three operations on it, each
written so that XLA keeps the buffers in place when the optimizer state is
donated:

- :func:`init`: one copy of the params per slot.
- :func:`gather`: the slot a traced index names, as a chain of selects.
- :func:`write`: the step's weights into the slot a traced index names, one
  ``lax.cond`` per slot, so only the taken slot is written.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import jax
import jax.numpy as jnp
import optax


def init(params: Any, num_slots: int, dtype: Optional[Any],
         keep: Optional[Sequence[bool]] = None) -> tuple[Any, ...]:
  """``num_slots`` copies of ``params`` in ``dtype`` (default: each leaf's).

  Every slot starts as a copy of the params: the Introspection schedule reads
  slot 0 as the weights of step 0, the periodic schedule overwrites each slot
  before reading it. The copies are separate buffers with the params'
  sharding, so the whole state can be donated.

  Args:
    params: The params tree.
    num_slots: How many params-shaped trees to hold.
    dtype: The history dtype, or ``None`` for each param's own.
    keep: Per flat leaf of ``params``, whether it has a history; the others
      are ``optax.MaskedNode()``. ``None``: every leaf.

  Returns:
    A tuple of ``num_slots`` params-shaped trees.
  """
  leaves, treedef = jax.tree.flatten(params)
  keep = [True] * len(leaves) if keep is None else keep

  def copy(p):
    if (dtype is not None and jnp.iscomplexobj(p)
        and not jnp.issubdtype(dtype, jnp.complexfloating)):
      raise ValueError(
          f'history_dtype={jnp.dtype(dtype).name} would drop the imaginary'
          f' part of a complex param ({p.dtype}{list(p.shape)}); leave'
          ' history_dtype=None, or exclude complex leaves with mask=')
    return jnp.array(p, dtype=p.dtype if dtype is None else dtype, copy=True)

  return tuple(
      jax.tree.unflatten(treedef, [
          copy(p) if k else optax.MaskedNode() for p, k in zip(leaves, keep)])
      for _ in range(num_slots))


def gather(slots: Sequence[jax.Array], index: jax.Array) -> jax.Array:
  """``slots[index]`` for a traced ``index``: a select chain, no copy of all.

  Stacking the slots to index them would materialise every slot of the leaf;
  ``len(slots) - 1`` elementwise selects read each once and fuse with what
  consumes the result.
  """
  entry = slots[0]
  for j in range(1, len(slots)):
    entry = jnp.where(index == j, slots[j], entry)
  return entry


def write(slots: list[list[jax.Array]], index: jax.Array,
          values: Sequence[jax.Array]) -> list[list[jax.Array]]:
  """Writes ``values`` (one per leaf) into slot ``index``, cast to its dtype.

  ``slots[j]`` is the list of leaves of slot ``j``. Each slot gets a
  ``lax.cond`` of its own that either writes it or passes it through, so
  XLA updates only the taken slot, in place; an ``index`` that names no slot
  (e.g. ``-1``) writes none.
  """
  return [
      jax.lax.cond(
          index == j,
          lambda slot: [v.astype(h.dtype) for v, h in zip(values, slot)],
          lambda slot: list(slot),
          slot,
      )
      for j, slot in enumerate(slots)
  ]

