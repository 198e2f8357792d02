"""The ``nowcast`` transformation: record weights, jump to their forecast."""

from __future__ import annotations

from typing import Any, NamedTuple, Optional, Union

import jax
import jax.numpy as jnp
import numpy as np
import optax

from optax_nowcast import _labels
from optax_nowcast import _validation
from optax_nowcast import schedules as schedules_lib
from optax_nowcast.forecasters._base import Forecaster

Schedule = Union[
    schedules_lib.PeriodicSchedule, schedules_lib.IntrospectionSchedule
]


class NowcastState(NamedTuple):
  """State of :func:`nowcast`.

  Attributes:
    count: int32, number of calls to ``update`` so far.
    records: int32, records made since the last jump (periodic schedule).
    jumps: int32, jumps done.
    skipped: int32, jumps that were due but did not happen (the window was not
      full yet, or the step was outside ``[first_jump_step, last_jump_step]``).
    nonfinite: int32, weights whose forecast was not finite and which were
      therefore left at their un-jumped value, summed over all jumps.
    rollbacks: int32, jumps undone by the guard (``guard_steps``).
    guard_left: int32, steps left to watch after the last jump (0: the guard
      is closed).
    loss_ema: float32, exponential moving average (decay 0.9) of the
      ``value`` passed to ``update`` (only kept with a guard).
    guard_ref: float32, ``loss_ema`` at the last jump.
    guard_sum: float32, sum of ``value`` over the last half of the guard's
      window so far, while the guard is open.
    history: a tuple of params-shaped trees (the schedule's slots), in
      ``history_dtype``. Leaves excluded by ``mask`` are ``optax.MaskedNode``.
  """

  count: jax.Array
  records: jax.Array
  jumps: jax.Array
  skipped: jax.Array
  nonfinite: jax.Array
  rollbacks: jax.Array
  guard_left: jax.Array
  loss_ema: jax.Array
  guard_ref: jax.Array
  guard_sum: jax.Array
  history: tuple[Any, ...]


def _forecast_leaf(
    forecaster: Forecaster,
    window: jax.Array,
    times: jax.Array,
    target: jax.Array,
    label: str,
    chunk_size: Optional[int],
) -> jax.Array:
  """Applies the per-scalar forecaster to every element of ``window[:, ...]``.

  ``window`` is ``(W, *leaf_shape)`` float32. The forecaster is vmapped once
  per leaf axis, which keeps the leaf's layout (and sharding) unchanged; with
  ``chunk_size``, a large leaf is flattened and mapped over in chunks so the
  forecaster's intermediates never exceed ``chunk_size`` elements.
  """

  def one(values):
    return forecaster.apply(forecaster.weights, values, times, target, label)

  shape = window.shape[1:]
  size = int(np.prod(shape, dtype=np.int64))
  if chunk_size is not None and size > chunk_size:
    flat = window.reshape(window.shape[0], size).T
    return jax.lax.map(one, flat, batch_size=chunk_size).reshape(shape)
  fn = one
  for _ in shape:
    fn = jax.vmap(fn, in_axes=1)
  return fn(window)


def nowcast(
    forecaster: Forecaster,
    *,
    record_every: Optional[int] = None,
    jump_every: Optional[int] = None,
    horizon: Optional[schedules_lib.Horizon] = None,
    first_jump_step: int = 0,
    last_jump_step: Optional[int] = None,
    schedule: Optional[Schedule] = None,
    labels: _labels.LabelSpec = None,
    mask: _labels.LabelSpec = None,
    history_dtype: Optional[Any] = None,
    chunk_size: Optional[int] = None,
    guard_steps: Optional[int] = None,
    guard_tolerance: float = 0.0,
) -> optax.GradientTransformationExtraArgs:
  r"""Periodically jumps the params to a forecast of their future values.

  Chain it after any optimizer::

    tx = optax.chain(optax.adam(1e-3), nowcast(forecaster, ...))

  Semantics (periodic schedule, given by ``record_every`` and ``jump_every``):

  - Step ``n`` counts calls to ``update`` (1-based). At step ``n`` the
    would-be params are ``p_n = params + updates`` (the updates coming from
    the inner optimizer).
  - Record: when ``n % record_every == 0``, ``p_n`` becomes the newest history
    entry.
  - Jump: when a record completes ``jump_every`` records since the last jump
    (or since the start) and the window holds at least ``forecaster.window``
    records, this step instead returns updates that set the params to the
    forecast computed from the window whose newest entry is ``p_n``.
    ``horizon`` counts record intervals beyond the newest record: on a
    trajectory that moves in a straight line, ``linear(window, horizon=h)``
    lands exactly on :math:`p_n + h (p_n - p_{n - \text{record\_every}})`.
  - After a jump the history restarts: only real post-jump weights feed later
    windows (as in WNN and NiNo). The inner optimizer's state is left as it
    is.
  - A due jump outside ``[first_jump_step, last_jump_step]`` is skipped and
    counted in ``NowcastState.skipped``; the history then carries on.

  Each scalar weight is forecast independently from its own window: the
  forecaster is vmapped over every element of every leaf. Everything is
  compiled: the jump predicate is an int32-derived scalar, and the forecaster
  runs only on jump steps, inside a ``lax.while_loop`` of 0 or 1 trips (a
  ``lax.cond`` that reads donated params makes XLA copy them on every step;
  the loop does not); a record is a ``lax.cond`` that writes one slot in
  place. The history holds ``forecaster.window - 1`` params-shaped trees: the
  newest window entry is always ``p_n`` itself, at full precision, so a
  ``window``-record forecast reads exactly ``window`` params' worth of
  weights. Donate the params and the optimizer state to the jitted step
  (``jax.jit(step, donate_argnums=...)``) so that XLA updates the history in
  place; otherwise it copies the history on every step.

  Robustness: a forecast that is not finite leaves that weight at ``p_n`` (as
  if no jump happened) and is counted in ``NowcastState.nonfinite``. A NaN in
  the params is recorded like any value and makes only the forecasts of the
  weights whose window contains it non-finite; since the ring buffer is
  overwritten and restarts after every jump, it is gone from the history at
  most ``window - 1`` records after the params are finite again.

  Args:
    forecaster: A :class:`~optax_nowcast.forecasters.Forecaster`, e.g.
      ``forecasters.linear(window=5, horizon=5)``.
    record_every: Steps between records (e.g. steps per epoch), > 0.
    jump_every: Records between jumps, >= ``forecaster.window``.
    horizon: Record intervals to forecast beyond ``p_n``; default
      ``forecaster.horizon``. A number, a sequence indexed by the jump number
      (the last value repeats; NiNo shrinks it from 40 to 1, see
      ``schedules.NINO_HORIZONS``), or a callable of the int32 jump number.
    first_jump_step: No jump before this step.
    last_jump_step: No jump after this step (``None``: no limit), so that a
      run never ends right after a jump.
    schedule: Instead of ``record_every``/``jump_every``: a schedule object,
      e.g. ``schedules.introspection([3000, 4000, 5000])`` for the
      Introspection schedule (inputs at steps 0, 0.4t, 0.7t, t; forecast of
      step 2t).
    labels: The kind of each leaf, passed to the forecaster (which may hold
      separate weights per kind): a params-shaped tree of strings or a
      callable returning one, as in ``optax.partition``. Default: ``'conv'``
      for rank >= 3, ``'dense'`` for rank 2, ``'bias'`` for rank 1 (also norm
      scales), ``'scalar'`` for rank 0.
    mask: A params-shaped tree of bools, or a callable returning one, as in
      ``optax.masked``: ``True`` leaves are nowcast, ``False`` leaves are never
      recorded nor jumped (their history is ``optax.MaskedNode``).
    history_dtype: dtype of the history, e.g. ``jnp.bfloat16`` to halve its
      memory. Default: each param's own dtype. Forecasts are computed in
      float32 either way.
    chunk_size: If set, leaves with more elements are forecast in chunks of
      this many elements (``lax.map``), bounding a jump's extra memory.
      Chunking flattens the leaf, so leave it ``None`` for sharded params.
    guard_steps: If set, watch the loss (the ``value`` extra argument, which
      ``update`` then requires) for this many steps after each jump. If it
      stays worse, i.e. its mean over the last half of those steps (the
      first half lets the optimizer repair the usual post-jump spike)
      exceeds the pre-jump loss (its moving average at the jump) by more
      than ``guard_tolerance`` times its magnitude, the
      step that closes the guard instead sets the params back to their
      pre-jump values ``p_n``, restarts the history and counts a rollback
      (and the moving average goes back to its pre-jump value). The average
      lags a falling loss, so early in training the guard is lenient.
      The pre-jump params are kept in the last history slot, which the
      restarted history does not reach before ``(window - 1) * record_every``
      steps, so ``guard_steps`` may not exceed that. Periodic schedule only.
    guard_tolerance: Relative loss increase tolerated by the guard (>= 0).

  Returns:
    An ``optax.GradientTransformationExtraArgs`` whose ``update`` requires
    ``params`` and accepts (and ignores) extra keyword arguments such as
    ``value``.

  Example:
    >>> import jax.numpy as jnp, optax, optax_nowcast as onc
    >>> tx = optax.chain(optax.sgd(0.1), onc.nowcast(
    ...     onc.forecasters.linear(window=2, horizon=1),
    ...     record_every=1, jump_every=2))
    >>> params = jnp.array([0.0])
    >>> state = tx.init(params)
    >>> for _ in range(2):  # the gradient of -x is -1: steps of +0.1
    ...   updates, state = tx.update(-jnp.ones(1), state, params)
    ...   params = optax.apply_updates(params, updates)
    >>> print(jnp.round(params, 4))  # step 2 jumped from 0.2 one step ahead
    [0.3]

  References:
    Sinha et al., `Introspection: Accelerating Neural Network Training by
    Learning Weight Evolution <https://arxiv.org/abs/1704.04959>`_, ICLR 2017.

    Jang et al., `Learning to Boost Training by Periodic Nowcasting Near Future
    Weights <https://proceedings.mlr.press/v202/jang23a.html>`_, ICML 2023.

    Knyazev et al., `Accelerating Training with Neuron Interaction and
    Nowcasting Networks <https://arxiv.org/abs/2409.04434>`_, ICLR 2025.
  """
  if not isinstance(forecaster, Forecaster):
    raise ValueError(
        'forecaster must be an optax_nowcast.forecasters.Forecaster (e.g.'
        f' forecasters.linear(window=5, horizon=5)), got {forecaster!r}'
    )
  if schedule is None:
    if record_every is None or jump_every is None:
      raise ValueError(
          'nowcast needs record_every and jump_every (or a schedule), got'
          f' record_every={record_every!r}, jump_every={jump_every!r}'
      )
    if horizon is None:
      if forecaster.horizon is None:
        raise ValueError(
            f'forecaster {forecaster.name!r} has no default horizon; pass'
            ' horizon=...'
        )
      horizon = forecaster.horizon
    schedule = schedules_lib.periodic(
        record_every,
        jump_every,
        forecaster.window,
        horizon=horizon,
        first_jump_step=first_jump_step,
        last_jump_step=last_jump_step,
    )
  else:
    if not isinstance(
        schedule,
        (schedules_lib.PeriodicSchedule, schedules_lib.IntrospectionSchedule),
    ):
      raise ValueError(
          'schedule must come from optax_nowcast.schedules.periodic or'
          f' .introspection, got {schedule!r}'
      )
    for name, value, default in (
        ('record_every', record_every, None),
        ('jump_every', jump_every, None),
        ('horizon', horizon, None),
        ('first_jump_step', first_jump_step, 0),
        ('last_jump_step', last_jump_step, None),
    ):
      if value is not default:
        raise ValueError(
            f'{name} is set by the schedule; do not pass it together with'
            f' schedule=, got {name}={value!r}'
        )
    if schedule.window != forecaster.window:
      raise ValueError(
          f'forecaster.window must equal the schedule window'
          f' ({schedule.window}), got {forecaster.window}'
      )
  if chunk_size is not None:
    chunk_size = _validation.positive_int('chunk_size', chunk_size)
  guard = guard_steps is not None
  if guard:
    guard_steps = _validation.positive_int('guard_steps', guard_steps)
    guard_tail = (guard_steps + 1) // 2
    if not isinstance(schedule, schedules_lib.PeriodicSchedule):
      raise ValueError(
          'guard_steps needs the periodic schedule (record_every, jump_every),'
          f' got schedule={schedule!r}')
    room = schedule.num_slots * schedule.record_every
    if guard_steps > room:
      raise ValueError(
          'guard_steps must be at most (forecaster.window - 1) * record_every'
          f' = {room} (the pre-jump params live in the last history slot'
          f' until then), got {guard_steps}')
  if isinstance(guard_tolerance, jax.Array) and guard_tolerance.ndim == 0:
    pass  # e.g. injected by optax.inject_hyperparams: may be traced
  elif isinstance(guard_tolerance, bool) or not isinstance(
      guard_tolerance, (int, float)) or not guard_tolerance >= 0:
    raise ValueError(
        f'guard_tolerance must be a number >= 0, got {guard_tolerance!r}')
  if history_dtype is not None:
    try:
      history_dtype = jnp.dtype(history_dtype)
    except TypeError as e:
      raise ValueError(
          f'history_dtype must be a floating dtype, got {history_dtype!r}'
      ) from e
    if not jnp.issubdtype(history_dtype, jnp.floating):
      raise ValueError(
          f'history_dtype must be a floating dtype, got {history_dtype!r}'
      )

  num_slots = schedule.num_slots

  def slot_dtype(p):
    return p.dtype if history_dtype is None else history_dtype

  def masked_tree(params, fn):
    """Maps ``fn`` over the nowcast leaves; MaskedNode elsewhere."""
    if mask is None:
      return jax.tree.map(fn, params)
    keep = jax.tree.unflatten(
        jax.tree.structure(params), _labels.resolve_mask(mask, params)
    )
    return jax.tree.map(
        lambda p, m: fn(p) if m else optax.MaskedNode(), params, keep
    )

  def init_fn(params):
    # Every slot starts as a copy of the params: the Introspection schedule
    # reads slot 0 as the weights of step 0, the periodic schedule overwrites
    # each slot before reading it, and copies get the params' sharding.
    history = tuple(
        masked_tree(
            params, lambda p: jnp.array(p, dtype=slot_dtype(p), copy=True)
        )
        for _ in range(num_slots)
    )
    # Separate buffers, so that the whole state can be donated.
    zero = lambda dtype=jnp.int32: jnp.zeros([], dtype)
    return NowcastState(
        count=zero(),
        records=zero(),
        jumps=zero(),
        skipped=zero(),
        nonfinite=zero(),
        rollbacks=zero(),
        guard_left=zero(),
        loss_ema=zero(jnp.float32),
        guard_ref=zero(jnp.float32),
        guard_sum=zero(jnp.float32),
        history=history,
    )

  def check_params(params, state):
    if params is None:
      raise ValueError(
          'nowcast requires params: call tx.update(updates, state, params)'
      )
    if not isinstance(state, NowcastState):
      raise ValueError(
          f'state must be the NowcastState made by init, got {type(state)}'
      )
    if len(state.history) != num_slots:
      raise ValueError(
          f'the state holds {len(state.history)} history slots but this'
          f' nowcast uses {num_slots}: was it made by another nowcast?'
      )
    if not num_slots:
      return
    want = jax.tree.structure(masked_tree(params, lambda p: p))
    got = jax.tree.structure(state.history[0])
    if want != got:
      raise ValueError(
          'params do not match the nowcast state (restored from another'
          f' model?): params give history structure {want}, the state has'
          f' {got}'
      )
    expected = jax.tree.leaves(masked_tree(params, lambda p: p))
    for path_leaf, h in zip(expected, jax.tree.leaves(state.history[0])):
      if jnp.shape(path_leaf) != h.shape:
        raise ValueError(
            'params do not match the nowcast state (restored from another'
            f' model?): a param of shape {jnp.shape(path_leaf)} has history'
            f' of shape {h.shape}'
        )

  def update_fn(updates, state, params=None, **extra_args):
    check_params(params, state)
    value = extra_args.get('value')
    if guard and value is None:
      raise ValueError(
          'nowcast(guard_steps=...) watches the loss: pass it as'
          ' tx.update(updates, state, params, value=loss)')
    treedef = jax.tree.structure(params)
    flat_params = treedef.flatten_up_to(params)
    flat_updates = treedef.flatten_up_to(updates)
    keep = (
        [True] * len(flat_params)
        if mask is None
        else _labels.resolve_mask(mask, params)
    )
    leaf_labels = _labels.resolve_labels(labels, params)
    active = [i for i, k in enumerate(keep) if k]
    slot_def = (
        jax.tree.structure(state.history[0]) if num_slots else None
    )
    slots = [jax.tree.leaves(h) for h in state.history]

    count = optax.safe_increment(state.count)
    plan = schedule.plan(count, state.records, state.jumps)

    def jump(us, window_slots, times, target):
      """The updates that move the params to the forecast, and bad counts."""
      us = list(us)
      nonfinite = jnp.zeros([], jnp.int32)
      for k, i in enumerate(active):
        newest = optax.apply_updates(flat_params[i], us[i]).astype(jnp.float32)
        entries = []
        for w in range(window_slots.shape[0]):  # slots[window_slots[w]]
          entry = slots[0][k]
          for j in range(1, num_slots):
            entry = jnp.where(window_slots[w] == j, slots[j][k], entry)
          entries.append(entry.astype(jnp.float32))
        window = jnp.stack(entries + [newest])
        forecast = _forecast_leaf(
            forecaster,
            window,
            times,
            target,
            leaf_labels[i],
            chunk_size,
        )
        finite = jnp.isfinite(forecast)
        delta = jnp.where(finite, forecast - newest, 0.0)
        us[i] = (us[i].astype(jnp.float32) + delta).astype(us[i].dtype)
        nonfinite += jnp.sum(~finite, dtype=jnp.int32)
      return us, nonfinite

    # How the work is laid out decides what XLA does on every step:
    # - Reading the (usually donated) params inside a top-level ``lax.cond``
    #   makes XLA copy them on every step, so the jump runs in a
    #   ``while_loop`` of 0 or 1 trips instead.
    # - XLA hoists what a loop body computes from loop-invariant values out of
    #   the loop, i.e. onto every step (a curve fit's SVD of the window times,
    #   bf16 -> f32 casts of the history). A ``lax.cond`` on the trip number
    #   inside the body keeps the jump's work where it belongs.
    # - The record reads ``params + updates`` computed outside any branch:
    #   the very expression with which the caller applies the updates, which
    #   XLA then computes once for both. A cond writes it in place into the
    #   taken slot only.
    if guard:
      value = jnp.asarray(value, jnp.float32)
      was_open = state.guard_left > 0
      # Only the last half of the window counts: a jump's loss spike that
      # Adam repairs within it is not a harmful jump (METHODS.md, NiNo).
      in_tail = was_open & (state.guard_left <= guard_tail)
      guard_sum = jnp.where(in_tail, state.guard_sum + value,
                            jnp.where(was_open, state.guard_sum, 0.0))
      guard_left = jnp.maximum(state.guard_left - 1, 0)
      mean_after = guard_sum / guard_tail
      rollback = (was_open & (guard_left == 0) & (
          mean_after > state.guard_ref
          + guard_tolerance * jnp.abs(state.guard_ref)))
      loss_ema = jnp.where(state.count == 0, value,
                           0.9 * state.loss_ema + 0.1 * value)
      # After a rollback the post-jump losses no longer describe the params.
      loss_ema = jnp.where(rollback, state.guard_ref, loss_ema)
      guard_left = jnp.where(plan.jump, guard_steps, guard_left)
      guard_ref = jnp.where(plan.jump, loss_ema, state.guard_ref)
      guard_sum = jnp.where(plan.jump, 0.0, guard_sum)
    else:
      rollback = jnp.zeros([], bool)
      guard_left, loss_ema = state.guard_left, state.loss_ema
      guard_ref, guard_sum = state.guard_ref, state.guard_sum

    def do_jump(us, kept):
      # With a guard, the last slot keeps the pre-jump params p_n.
      if guard:
        kept = [optax.apply_updates(flat_params[i], us[i]).astype(h.dtype)
                for i, h in zip(active, kept)]
      us, nonfinite = jump(us, plan.window_slots, plan.times, plan.target)
      return us, kept, nonfinite

    def do_rollback(us, kept):
      us = list(us)
      for i, h in zip(active, kept):
        back = h.astype(jnp.float32) - flat_params[i].astype(jnp.float32)
        us[i] = back.astype(us[i].dtype)
      return us, kept, jnp.zeros([], jnp.int32)

    def jump_body(carry):
      trip, us, kept, _ = carry
      us, kept, nonfinite = jax.lax.cond(
          trip == 0,
          lambda us, kept: jax.lax.cond(plan.jump, do_jump, do_rollback,
                                        us, kept),
          lambda us, kept: (list(us), list(kept), jnp.zeros([], jnp.int32)),
          us, kept,
      )
      return trip + 1, us, kept, nonfinite

    kept = list(slots[-1]) if guard else []
    _, flat_updates, kept, nonfinite = jax.lax.while_loop(
        lambda carry: carry[0] < (plan.jump | rollback).astype(jnp.int32),
        jump_body,
        (jnp.zeros([], jnp.int32), list(flat_updates), kept,
         jnp.zeros([], jnp.int32)),
    )
    if guard:
      slots = slots[:-1] + [kept]
    final = [optax.apply_updates(flat_params[i], flat_updates[i])
             for i in active]
    def write_slot(slots):
      return [
          jax.lax.cond(
              plan.slot == j,
              lambda slot: [v.astype(h.dtype) for v, h in zip(final, slot)],
              lambda slot: slot,
              slot,
          )
          for j, slot in enumerate(slots)
      ]

    slots = jax.lax.cond(plan.record & ~rollback, write_slot, lambda s: s,
                         slots)

    history = tuple(jax.tree.unflatten(slot_def, s) for s in slots)
    new_state = NowcastState(
        count=count,
        records=jnp.where(rollback, 0, plan.records).astype(jnp.int32),
        jumps=state.jumps + plan.jump.astype(jnp.int32),
        skipped=state.skipped + (plan.due & ~plan.jump).astype(jnp.int32),
        nonfinite=state.nonfinite + nonfinite,
        rollbacks=state.rollbacks + rollback.astype(jnp.int32),
        guard_left=guard_left.astype(jnp.int32),
        loss_ema=jnp.asarray(loss_ema, jnp.float32),
        guard_ref=jnp.asarray(guard_ref, jnp.float32),
        guard_sum=jnp.asarray(guard_sum, jnp.float32),
        history=history,
    )
    return jax.tree.unflatten(treedef, flat_updates), new_state

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)
