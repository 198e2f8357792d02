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
  label and dtype form one group whatever their shapes, so a model compiles
  the forecaster about once per label. With a ``chunk_size`` the group is
  *streamed* (:func:`_stream`): read block by block in place, never joined;
  without, its leaves are flattened and concatenated.
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

import functools
import math
from typing import Any, NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from optax_nowcast import _history
from optax_nowcast import _jump
from optax_nowcast.forecasters import _base
from optax_nowcast.forecasters._base import Forecaster
from optax_nowcast.forecasters._base import Standardize

#: A group holds at most ``max(largest leaf, MAX_GROUP_ELEMENTS)`` elements,
#: which bounds the arrays a jump joins (a few float32 copies of a group).
MAX_GROUP_ELEMENTS = 1 << 26

Spec = tuple[Any, ...]

#: A streamed jump reads its leaves in blocks of at least this many weights
#: (:func:`forecast_groups`): fewer, larger reads than one per chunk, so that
#: a model of hundreds of mid-sized leaves compiles a few branches, not one
#: per leaf, while a block's reads stay near 1.5 MB.
STREAM_BLOCK = 1 << 16


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
  """Every leaf's forecast displacement.

  Attributes:
    deltas: Per leaf, :math:`\\hat p - p_n`, float32 (complex64 for a
      complex leaf), shaped like the leaf, ``0`` where the forecast is not
      finite (already multiplied back by the forecaster's ``leaf_scale``).
    nonfinite: The number of scalars whose forecast was not finite.
  """

  deltas: list[jax.Array]
  nonfinite: jax.Array


def is_streamed(group: Group) -> bool:
  """Whether a group lives on one device, so that it can be streamed."""
  return group.how == 'concat' or (
      group.how == 'single' and group.spec is None and group.chunkable)


class _Source(NamedTuple):
  """One flat array the stream reads: a leaf, or small leaves packed."""

  members: tuple[int, ...]
  size: int  # the real elements; the flat arrays may be padded past it


def _sources(group: Group, sizes: Sequence[int], chunk: int) -> list[_Source]:
  """A group's leaves as stream sources: a leaf of at least ``chunk``
  weights alone (read in place), smaller ones packed together (copied, at
  most ``chunk`` weights a pack, so a pack is joined once per jump)."""
  out, pack = [], []
  for k in group.members:
    if sizes[k] >= chunk:
      out.append(_Source((k,), sizes[k]))
      continue
    if pack and sum(sizes[j] for j in pack) + sizes[k] > chunk:
      out.append(_Source(tuple(pack), sum(sizes[j] for j in pack)))
      pack = []
    pack.append(k)
  if pack:
    out.append(_Source(tuple(pack), sum(sizes[j] for j in pack)))
  return out


def _flat(arrays: Sequence[jax.Array], length: int) -> jax.Array:
  """The arrays raveled and joined, zero-padded to ``length``: a view of a
  lone array that needs no padding, else a (small) copy."""
  flat = [jnp.ravel(a) for a in arrays]
  joined = flat[0] if len(flat) == 1 else jnp.concatenate(flat)
  if joined.shape[0] < length:
    joined = jnp.pad(joined, (0, length - joined.shape[0]))
  return joined


def _member_scales(forecaster, group, params, updates, slots, window_slots,
                   rows, chunk_at, compute):
  """Per group member, its leaf's ``(shift, scale)``, as ``(M,)`` arrays.

  A :class:`~optax_nowcast.forecasters.Standardize` is accumulated over the
  chunks (``chunk_at(t)`` for ``t < rows``): a pass for the count and the
  sum, one for the squared deviations, each a segment sum over the members
  of the chunk's elements; no window of a leaf is ever held whole. Any
  other ``leaf_scale`` sees each member's whole window.
  """
  members = len(group.members)
  if not isinstance(forecaster.leaf_scale, Standardize):
    stats = []
    for k in group.members:
      older = [_history.gather([slot[k] for slot in slots], j)
               for j in window_slots]
      stats.append(_jump.leaf_scale(
          forecaster, optax.apply_updates(params[k], updates[k]), older))
    return (jnp.stack([a for a, _ in stats]),
            jnp.stack([b for _, b in stats]))

  def entries(t):
    _, _, newest, older, _, valid, ids = chunk_at(t)
    for e in [*older, newest]:
      e = e.astype(compute)
      yield e, jnp.isfinite(e) & valid, ids

  def sums(t, carry):
    count, total = carry
    for e, finite, ids in entries(t):
      count += jax.ops.segment_sum(finite.astype(jnp.int32), ids, members)
      total += jax.ops.segment_sum(jnp.where(finite, e, 0), ids, members)
    return count, total

  count, total = jax.lax.fori_loop(
      0, rows, sums, (jnp.zeros([members], jnp.int32),
                      jnp.zeros([members], compute)))
  mean = total / jnp.maximum(count, 1)

  def squares(t, acc):
    for e, finite, ids in entries(t):
      spread = jnp.where(finite, jnp.abs(e - mean[ids]), 0.0)
      acc += jax.ops.segment_sum(spread * spread, ids, members)
    return acc

  acc = jax.lax.fori_loop(0, rows, squares, jnp.zeros([members], jnp.float32))
  shift, scale = forecaster.leaf_scale.finish(count, total, acc)
  return _jump.sanitized(shift.astype(compute), scale)


def _stream(forecaster, group, params, updates, slots, window_slots, times,
            target, chunk, live, block):
  r"""A group's forecast, read in place block by block; per member, delta.

  A joined copy of a group's params and history would cost several float32
  copies of the params in temporaries; and on a CPU a step whose temporary
  arena passes 32 MB has it mapped fresh (and every page faulted) on every
  call, jump or not (``docs/cost.md``). So the group is never
  joined: one ``lax.fori_loop`` runs over a static table of blocks, each a
  ``(source, offset)`` pair, where a source is a leaf of at least a block
  or a pack of smaller leaves (:func:`_sources`). A block is read straight
  from the source's params, updates and history slots (``lax.switch`` over
  the sources, a ``dynamic_slice`` of a raveled leaf each), forecast
  ``chunk`` weights at a time, and written into the group's one flat
  displacement buffer by one in-place ``dynamic_update_slice``. The
  forecaster is traced once per group and the temporaries stay near one
  block's. A leaf's last block ends at the leaf's end and overlaps the one
  before it; the overlap is recomputed (the same numbers) and not counted
  twice in the non-finite count. A :class:`Standardize` leaf scale is
  accumulated over the same blocks first (:func:`_member_scales`).

  Returns:
    ``({member: delta shaped like its leaf}, nonfinite)``.
  """
  sizes = [math.prod(jnp.shape(p)) for p in params]
  # The loop reads blocks of ``block`` weights (few sources, so few switch
  # branches to compile); the forecaster runs over a block ``chunk`` at a
  # time (``lax.map``), which bounds its intermediates.
  # Blocks are whole chunks (a remainder would compile the forecaster a
  # second time), padded past a group smaller than a block.
  total = sum(sizes[k] for k in group.members)
  inner = chunk if chunk < block else None
  step = inner or 1
  chunk = min(max(chunk, block) // step * step, -(-total // step) * step)
  sources = _sources(group, sizes, chunk)
  lengths = [max(src.size, chunk) for src in sources]
  index = {k: i for i, k in enumerate(group.members)}
  compute = jnp.complex64 if any(
      jnp.iscomplexobj(params[k]) for k in group.members) else jnp.float32

  table = []  # (source, offset, first new element of the chunk)
  for s, length in enumerate(lengths):
    for start in range(0, length, chunk):
      offset = min(start, length - chunk)
      table.append((s, offset, start - offset))
  table = jnp.asarray(np.asarray(table, np.int32))
  bases = jnp.asarray(np.cumsum([0] + lengths[:-1]), jnp.int32)

  def reader(src, length):
    def read(offset):
      take = lambda a: jax.lax.dynamic_slice_in_dim(a, offset, chunk)
      pick = lambda arrays: take(_flat(arrays, length))
      p = pick([params[k] for k in src.members])
      u = pick([updates[k] for k in src.members])
      entries = [pick([slot[k] for k in src.members]) for slot in slots]
      older = [_history.gather(entries, j) for j in window_slots]
      real = offset + jnp.arange(chunk, dtype=jnp.int32) < src.size
      # Which member of the group each element belongs to.
      ids = (jnp.full([chunk], index[src.members[0]], jnp.int32)
             if len(src.members) == 1 else
             pick([jnp.full(jnp.shape(params[k]), index[k], jnp.int32)
                   for k in src.members]))
      return optax.apply_updates(p, u), older, real, ids
    return read

  readers = [reader(src, length) for src, length in zip(sources, lengths)]

  def chunk_at(t):
    """The chunk of table row ``t``: its window and which elements count."""
    s, offset, first = table[t, 0], table[t, 1], table[t, 2]
    newest, older, real, ids = jax.lax.switch(s, readers, offset)
    valid = real & (jnp.arange(chunk, dtype=jnp.int32) >= first)
    return s, offset, newest, older, real, valid, ids

  if forecaster.leaf_scale is not None:
    shift, factor = _member_scales(forecaster, group, params, updates,
                                   slots, window_slots, table.shape[0],
                                   chunk_at, compute)

  def body(t, carry):
    out, bad = carry
    s, offset, newest, older, real, valid, ids = chunk_at(t)
    if forecaster.leaf_scale is None:
      scale = jnp.ones([chunk], jnp.float32)
    else:  # each element scaled by its own leaf's statistics
      scale = jnp.where(real, factor[ids], 1.0)
      newest = _jump.scaled(newest, shift[ids], scale)
      older = [_jump.scaled(e, shift[ids], scale) for e in older]
    delta, more = _jump.forecast_delta(
        forecaster, newest, older, times, target, group.label, inner,
        valid=valid)
    delta = (delta * scale).astype(compute)
    # All sources' displacements live in one flat buffer, one in-place
    # update per chunk (a switch over per-source buffers would copy them).
    out = jax.lax.dynamic_update_slice_in_dim(out, delta, bases[s] + offset, 0)
    return out, bad + more

  out = jnp.zeros([sum(lengths)], compute)
  out, bad = jax.lax.fori_loop(
      0, table.shape[0], body, (out, jnp.zeros([], jnp.int32)))
  # Each member's start in ``out``, made opaque to XLA by the cond on
  # ``live`` (see forecast_groups): members of one shape share one kernel.
  starts, base = {}, 0
  for src, length in zip(sources, lengths):
    at = base
    for k in src.members:
      starts[k] = jnp.int32(at)
      at += sizes[k]
    base += length
  starts = jax.lax.cond(
      live, lambda x: x, lambda x: jax.tree.map(jnp.zeros_like, x), starts)
  deltas = {k: jax.lax.dynamic_slice_in_dim(out, starts[k], sizes[k]).reshape(
      jnp.shape(params[k])) for k in group.members}
  return deltas, bad


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
    block: int = STREAM_BLOCK,
) -> Forecast:
  r"""Forecasts every leaf, one forecaster call per group.

  With ``chunk_size``, a group on one device is streamed through the
  forecaster in chunks read in place from its leaves (:func:`_stream`):
  its temporaries stay near one chunk's, whatever the model's size. Other
  groups (and every group without ``chunk_size``) have their would-be
  params :math:`p_n = p + u` and history slots joined first, so that
  gathering the window and forecasting cost a few operations per group, not
  per leaf. A forecaster with ``leaf_scale`` sees each member scaled by its
  own window's ``(shift, scale)`` (computed per member before joining), and
  its deltas are scaled back per member.

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
    chunk_size: Weights per chunk (streamed groups; see
      :func:`optax_nowcast._jump.forecast_leaf` for the others), or
      ``None``.
    block: A streamed group is read in blocks of ``max(block, chunk_size)``
      weights: a leaf of at least that many alone, smaller ones packed.

  Returns:
    A :class:`Forecast`.
  """
  deltas: list[Optional[jax.Array]] = [None] * len(params)
  nonfinite = jnp.zeros([], jnp.int32)
  joined, factors = [], {}
  for group in groups:
    members = group.members
    if chunk_size is not None and is_streamed(group):
      streamed, bad = _stream(forecaster, group, params, updates, slots,
                              window_slots, times, target, chunk_size, live,
                              block)
      for k, d in streamed.items():
        deltas[k] = d
      nonfinite += bad
      continue
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
    joined.append((group, delta))
    nonfinite += bad
  if not joined:
    return Forecast(deltas, nonfinite)
  shapes = [tuple(jnp.shape(p)) for p in params]
  values = _starts([g for g, _ in joined], shapes)
  known = [jnp.int32(v) for v in values if v is not None]
  joined_deltas, known = jax.lax.cond(
      live, lambda x: x, lambda x: jax.tree.map(jnp.zeros_like, x),
      ([d for _, d in joined], known))
  opaque = iter(known)
  starts = [None if v is None else next(opaque) for v in values]
  for (group, _), delta in zip(joined, joined_deltas):
    parts = split(group, delta, [shapes[k] for k in group.members],
                  [starts[k] for k in group.members])
    for k, d in zip(group.members, parts):
      deltas[k] = d * factors[k] if k in factors else d
  return Forecast(deltas, nonfinite)


def forecast_whole(
    forecaster: Forecaster,
    params: Sequence[jax.Array],
    updates: Sequence[jax.Array],
    slots: Sequence[Sequence[jax.Array]],
    window_slots: Sequence[jax.Array],
    times: jax.Array,
    targets: jax.Array,
    infos: Sequence[Any],
) -> list[Forecast]:
  """Forecasts every leaf by the forecaster's whole-leaf function.

  Each leaf's window is its ``W - 1`` older slots and :math:`p_n = p + u`,
  passed as :class:`~optax_nowcast.forecasters._base.Stored` entries that
  the forecaster reads in place (no joining, no copies); one call forecasts
  every target (a graph network runs once for all of them). A forecast
  that is not finite leaves that weight at :math:`p_n` and is counted.

  Args:
    forecaster: A forecaster with ``forecast_leaves``.
    params: Per leaf, the params.
    updates: Per leaf, the inner optimizer's updates.
    slots: Per history slot, its leaves (same order).
    window_slots: The slot index of each older window entry, oldest first.
    times: ``(W,)`` steps of the entries relative to the newest.
    targets: ``(T,)`` steps to forecast, relative to the newest entry.
    infos: Per leaf, its ``LeafInfo``.

  Returns:
    One :class:`Forecast` per target.
  """
  windows = []
  for k, p in enumerate(params):
    # Read in place by a forecaster that streams the leaves (``Stored``);
    # the slot index rides in a pytree ``Partial``, so that a forecaster
    # running per device (``jax.shard_map``) can pass it in as an argument.
    newest = _base.Stored((p, updates[k]), optax.apply_updates)
    older = [_base.Stored(tuple(slot[k] for slot in slots),
                          jax.tree_util.Partial(_gather_at, index))
             for index in window_slots]
    windows.append((*older, newest))
  targets = jnp.reshape(jnp.asarray(targets, jnp.float32), (-1,))
  forecasts = forecaster.forecast_leaves(
      forecaster.weights, windows, times, targets, tuple(infos))
  out = []
  for t in range(targets.shape[0]):
    deltas, nonfinite = [], jnp.zeros([], jnp.int32)
    for forecast, window in zip(forecasts, windows):
      newest = window[-1].value()
      newest = newest.astype(jnp.complex64 if jnp.iscomplexobj(newest)
                             else jnp.float32)
      finite = jnp.isfinite(forecast[t])
      deltas.append(jnp.where(finite, forecast[t] - newest,
                              jnp.zeros_like(newest)))
      nonfinite += jnp.sum(~finite, dtype=jnp.int32)
    out.append(Forecast(deltas, nonfinite))
  return out


def _gather_at(index: jax.Array, *slots: jax.Array) -> jax.Array:
  """``slots[index]`` (a :class:`~optax_nowcast.forecasters._base.Stored`
  entry's ``combine``)."""
  return _history.gather(slots, index)


def moved_updates(forecast: Forecast, updates: Sequence[jax.Array],
                  scale: Optional[jax.Array] = None) -> list[jax.Array]:
  """Per leaf, the updates that move its params by ``scale`` times delta."""
  return [_jump.apply_delta(u, d, scale)
          for u, d in zip(updates, forecast.deltas)]
