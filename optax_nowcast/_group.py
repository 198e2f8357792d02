r"""Grouped forecasting: one forecaster call for many leaves, no data moved.

A per-scalar forecaster computes the same function for every scalar, so
forecasting leaf by leaf only multiplies the code XLA compiles: a model with
300 leaves would trace and compile the forecaster 300 times. Instead, the
jump of :func:`optax_nowcast.nowcast` splits the leaves into *groups* and
calls the forecaster once per group, on the group's scalars side by side
(:func:`plan`, :func:`forecast_deltas`). How a group holds its leaves depends
on where they live, which JAX states while tracing
(:func:`placement`):

- **One device** (no mesh, one device in the process): the leaves of one
  label are flattened and concatenated, whatever their shapes, so a model
  compiles the forecaster about once per label.
- **Explicit mesh axes** (``jax.make_mesh``'s default since JAX 0.7; the
  sharding is part of the type): leaves of the same label, shape and
  partition spec are stacked along a new leading axis, which every device
  does on its own shards, so no weight moves between devices.
- **Auto mesh axes, or any other multi-device case**: the sharding of a leaf
  is not known while tracing, so each leaf is its own group (the forecaster
  is compiled once per leaf, as no data may move).

A group holds at most ``max(largest leaf, 2**26)`` elements, which bounds
the float32 copies a jump joins. With ``nowcast``'s ``chunk_size`` the
forecaster runs over a group in chunks (``lax.map``), one chunk's
intermediates alive at a time. The chunks never cut through a sharded axis:
a flattened group is cut anywhere; a stacked group of explicitly sharded
leaves along its largest unsharded axis; leaves whose sharding is unknown
are not chunked.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import optax

from optax_nowcast import _history
from optax_nowcast import _jump
from optax_nowcast.forecasters._base import Forecaster

#: A group holds at most ``max(largest leaf, MAX_GROUP_ELEMENTS)`` elements,
#: which bounds the arrays a jump joins (a few float32 copies of a group).
MAX_GROUP_ELEMENTS = 1 << 26

Spec = tuple[Any, ...]


class Group(NamedTuple):
  """Leaves forecast by one forecaster call.

  Attributes:
    members: Positions of the leaves in the list given to :func:`plan`.
    label: The members' label.
    how: ``'concat'`` (flattened and concatenated), ``'stack'`` (stacked on
      a new leading axis) or ``'single'`` (one leaf, as it is).
    spec: The members' partition spec (explicit mesh axes), padded to their
      rank; ``None`` where it is not known.
    chunkable: Whether the forecaster may run over it in chunks: not where
      the sharding is unknown (auto mesh axes), as a chunk could cut through
      a sharded axis and gather it.
  """

  members: tuple[int, ...]
  label: str
  how: str
  spec: Optional[Spec]
  chunkable: bool = True


def placement(x: Any) -> tuple[str, Optional[Spec]]:
  """Where a (traced) leaf lives: ``('local' | 'explicit' | 'auto', spec)``.

  ``'local'``: one device, nothing to move between devices. ``'explicit'``:
  a mesh whose axes are all explicit, with the leaf's partition spec padded
  to its rank. ``'auto'``: a leaf whose sharding JAX does not state while
  tracing (auto mesh axes, or ``jit(in_shardings=...)`` without a mesh in
  the types, on more than one device).
  """
  aval = jax.typeof(x)
  sharding = getattr(aval, 'sharding', None)
  mesh = getattr(sharding, 'mesh', None)
  if mesh is None or mesh.empty:
    return ('local', None) if jax.device_count() == 1 else ('auto', None)
  if mesh.size == 1:
    return 'local', None
  explicit = jax.sharding.AxisType.Explicit
  if all(t == explicit for t in mesh.axis_types):
    spec = tuple(sharding.spec)
    return 'explicit', spec + (None,) * (len(aval.shape) - len(spec))
  return 'auto', None


def plan(leaves: Sequence[Any], labels: Sequence[str],
         companions: Optional[Sequence[Sequence[Any]]] = None,
         max_elements: int = MAX_GROUP_ELEMENTS) -> list[Group]:
  """Splits ``leaves`` into groups the forecaster can take in one call.

  Leaves are grouped in order, by label and dtype (their own and their
  companions': a group's members are joined without a cast), and, for
  explicitly sharded leaves, by shape and partition spec; a group is closed
  when the next leaf would take it past the size cap.

  Args:
    leaves: The leaves (arrays or tracers; only shapes, dtypes and
      shardings are read).
    labels: The label of each leaf.
    companions: Per leaf, the arrays joined along with it (its updates, its
      history entries), whose dtypes must agree within a group too.
    max_elements: A group holds at most ``max(largest leaf, max_elements)``
      elements.

  Returns:
    The groups, covering every position once.
  """
  sizes = [math.prod(jnp.shape(x)) for x in leaves]
  cap = max(max(sizes, default=0), max_elements)
  open_groups: dict[Any, list[int]] = {}
  groups: list[tuple[Any, list[int]]] = []
  for i, (x, label) in enumerate(zip(leaves, labels)):
    where, spec = placement(x)
    dtypes = tuple(jnp.result_type(a)
                   for a in (x, *(companions[i] if companions else ())))
    if where == 'local':
      key = ('concat', label, dtypes, None)
    elif where == 'explicit':
      key = ('stack', label, dtypes, (tuple(jnp.shape(x)), spec))
    else:
      key = ('single', i)
    members = open_groups.get(key)
    if members is None or sum(sizes[j] for j in members) + sizes[i] > cap:
      members = open_groups[key] = []
      groups.append((key, members))
    members.append(i)
  out = []
  for key, members in groups:
    if key[0] == 'single':
      label = labels[members[0]]
      out.append(Group(tuple(members), label, 'single', None, False))
      continue
    how, label, _, extra = key
    if len(members) == 1:
      spec = extra[1] if how == 'stack' else None
      out.append(Group(tuple(members), label, 'single', spec))
    else:
      spec = (None,) + extra[1] if how == 'stack' else None
      out.append(Group(tuple(members), label, how, spec))
  return out


def join(group: Group, arrays: Sequence[jax.Array]) -> jax.Array:
  """The group's members (one array per member) as one array, no cast."""
  if group.how == 'single':
    return arrays[0]
  if group.how == 'concat':
    return jnp.concatenate([jnp.ravel(a) for a in arrays])
  return jnp.stack(arrays)


def _starts(groups: Sequence[Group],
            shapes: Sequence[tuple[int, ...]]) -> list[Optional[int]]:
  """Per leaf, where it starts in its group's joined array (None: single)."""
  values: list[Optional[int]] = [None] * len(shapes)
  for group in groups:
    offset = 0
    for g, k in enumerate(group.members):
      if group.how == 'concat':
        values[k] = offset
        offset += math.prod(shapes[k])
      elif group.how == 'stack':
        values[k] = g
  return values


def split(group: Group, joined: jax.Array, shapes: Sequence[tuple[int, ...]],
          member_starts: Sequence[Any]) -> list[jax.Array]:
  """The inverse of :func:`join`: one array per member, shaped ``shapes``.

  ``member_starts`` are the members' offsets (concatenated) or indices
  (stacked), as ints or as int32 scalars computed at run time.
  """
  if group.how == 'single':
    return [joined]
  if group.how == 'stack':
    return [jax.lax.dynamic_index_in_dim(joined, start, keepdims=False)
            for start in member_starts]
  return [jax.lax.dynamic_slice_in_dim(joined, start,
                                       math.prod(shape)).reshape(shape)
          for start, shape in zip(member_starts, shapes)]


class Forecast(NamedTuple):
  """Every group's forecast, ready to be split into leaves.

  Attributes:
    deltas: Per group, :math:`\\hat p - p_n` of its members, joined,
      float32 (complex64), ``0`` where the forecast is not finite.
    starts: Per leaf, its start in its group's joined array (an int32 scalar
      computed at run time), or ``None`` for a leaf alone in its group.
    nonfinite: The number of scalars whose forecast was not finite.
    factors: Per leaf, the factor its part of ``deltas`` is multiplied by
      (the forecaster's ``leaf_scale``), or ``None`` for ``1``.
  """

  deltas: list[jax.Array]
  starts: list[Optional[jax.Array]]
  nonfinite: jax.Array
  factors: list[Optional[jax.Array]]


def forecast_groups(
    forecaster: Forecaster,
    groups: Sequence[Group],
    params: Sequence[jax.Array],
    updates: Sequence[jax.Array],
    slots: Sequence[Sequence[jax.Array]],
    window_slots: Sequence[jax.Array],
    times: jax.Array,
    target: jax.Array,
    live: jax.Array,
    chunk_size: Optional[int] = None,
) -> Forecast:
  r"""Forecasts every leaf, one forecaster call per group.

  Each group's would-be params :math:`p_n = p + u` and history slots are
  joined first, so that gathering the window and forecasting cost a few
  operations per group, not per leaf. A forecaster with ``leaf_scale`` sees
  each member scaled by its own window's ``(shift, scale)`` (computed per
  member before joining), and its deltas are scaled back per member
  (``Forecast.factors``).

  The joined displacements and the members' starts then pass through a
  ``lax.cond`` on ``live``, a traced bool that is always ``True`` at run
  time (the step count is positive) but that XLA cannot decide. This is
  about compile time: XLA compiles every *distinct* kernel (about 10 ms
  each on a CPU) and reuses identical ones. Without the cond, XLA folds
  each member's constant offset, and the group's whole forecast, into that
  member's kernel, which makes every member's kernel distinct (300 leaves:
  300 kernels to compile, each carrying the forecaster's tail). After it,
  the members of a group that have the same shape share one small kernel.

  Args:
    forecaster: The forecaster.
    groups: From :func:`plan` on the same leaves.
    params: Per leaf, the params.
    updates: Per leaf, the inner optimizer's updates.
    slots: Per history slot, its leaves (same order).
    window_slots: The slot index of each older window entry, oldest first.
    times: ``(W,)`` steps of the entries relative to the newest.
    target: The step to forecast, relative to the newest entry.
    live: See above.
    chunk_size: See :func:`optax_nowcast._jump.forecast_leaf`.

  Returns:
    A :class:`Forecast`.
  """
  deltas, nonfinite = [], jnp.zeros([], jnp.int32)
  factors: list[Optional[jax.Array]] = [None] * len(params)
  for group in groups:
    members = group.members
    if forecaster.leaf_scale is None:
      # p_n = p + u on the joined arrays: one kernel per group, not per leaf.
      newest = optax.apply_updates(
          join(group, [params[k] for k in members]),
          join(group, [updates[k] for k in members]))
      history = [join(group, [slot[k] for k in members]) for slot in slots]
    else:
      # Each member scaled by its own window's statistics before joining;
      # the deltas come back in those units, scaled back per member.
      newest, history = [], [[] for _ in slots]
      for k in members:
        p_n = optax.apply_updates(params[k], updates[k])
        older = [_history.gather([slot[k] for slot in slots], index)
                 for index in window_slots]
        shift, factors[k] = _jump.leaf_scale(forecaster, p_n, older)
        newest.append(_jump.scaled(p_n, shift, factors[k]))
        for entries, slot in zip(history, slots):
          entries.append(_jump.scaled(slot[k], shift, factors[k]))
      newest = join(group, newest)
      history = [join(group, entries) for entries in history]
    older = [_history.gather(history, index) for index in window_slots]
    delta, bad = _jump.forecast_delta(
        forecaster, newest, older, times, target, group.label,
        chunk_size if group.chunkable else None, group.spec)
    deltas.append(delta)
    nonfinite += bad
  values = _starts(groups, [tuple(jnp.shape(p)) for p in params])
  known = [jnp.int32(v) for v in values if v is not None]
  deltas, known = jax.lax.cond(
      live, lambda x: x, lambda x: jax.tree.map(jnp.zeros_like, x),
      (deltas, known))
  opaque = iter(known)
  starts = [None if v is None else next(opaque) for v in values]
  return Forecast(deltas, starts, nonfinite, factors)


def moved_updates(groups: Sequence[Group], forecast: Forecast,
                  updates: Sequence[jax.Array],
                  scale: Optional[jax.Array] = None) -> list[jax.Array]:
  """Per leaf, the updates that move its params by ``scale`` times delta."""
  out: list[Optional[jax.Array]] = [None] * len(updates)
  for group, delta in zip(groups, forecast.deltas):
    members = group.members
    shapes = [tuple(jnp.shape(updates[k])) for k in members]
    parts = split(group, delta, shapes, [forecast.starts[k] for k in members])
    for k, d in zip(members, parts):
      if forecast.factors[k] is not None:
        d = d * forecast.factors[k]
      out[k] = _jump.apply_delta(updates[k], d, scale)
  return out
