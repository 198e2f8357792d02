"""The ``nowcast`` transformation: record weights, jump to their forecast.

Here: the factory :func:`nowcast`, its state :class:`NowcastState`, the
checks of its arguments, and the parts of a step as module-level functions
in the order ``update`` runs them (flatten the leaves, jump or roll back,
record, count). The pieces live in their own modules: when to record and
jump in ``schedules.py``, the history ring buffer in ``_history.py``, the
per-scalar forecast and the rollback in ``_jump.py``, the grouping of
leaves for the forecaster in ``_group.py``, checked jumps' choice in
``_select.py``, the rollback policy in ``guards.py``.
"""

from __future__ import annotations

import functools
import warnings
from typing import Any, Callable, NamedTuple, Optional, Sequence, Union

import jax
import jax.numpy as jnp
import optax

from optax_nowcast import _group
from optax_nowcast import _history
from optax_nowcast import _jump
from optax_nowcast import _labels
from optax_nowcast import _select
from optax_nowcast import _validation
from optax_nowcast import guards as guards_lib
from optax_nowcast import schedules as schedules_lib
from optax_nowcast.forecasters import _neural_graph
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
    selected: int32 ``(1 + len(select),)``: how many jumps chose each
      candidate of a loss-checked jump (``value_fn`` given): index 0 counts
      the jumps that stayed at ``p_n`` (none of the forecasts was better),
      index ``k`` those that moved by ``select[k - 1]`` times the forecast
      displacement. ``()`` with ``select=None``.
    guard: the guard's state (e.g. :class:`~optax_nowcast.guards.LossGuardState`,
      which counts ``rollbacks``), or ``()`` without a guard.
    history: a tuple of params-shaped trees (the schedule's slots), in
      ``history_dtype``. Leaves excluded by ``mask`` are ``optax.MaskedNode``.
  """

  count: jax.Array
  records: jax.Array
  jumps: jax.Array
  skipped: jax.Array
  nonfinite: jax.Array
  selected: Any
  guard: Any
  history: tuple[Any, ...]


def _is_params_placeholder(params: Any) -> bool:
  """Whether ``init`` is called by ``optax.tree.map_params``.

  ``map_params`` calls ``init`` with a placeholder (no leaves) to find the
  params-shaped trees of the state. As ``optax.masked`` does, ``init`` then
  keeps the placeholder whole instead of resolving a mask tree against it:
  the history's slots are where the params' copies are.
  """
  return type(params).__name__ == '_ParamsPlaceholder'


def _make_schedule(forecaster, schedule, record_every, jump_every, horizon,
                   first_jump_step, last_jump_step) -> Schedule:
  """The schedule ``nowcast`` runs: given, or built from the periodic args."""
  if schedule is None:
    if record_every is None or jump_every is None:
      raise ValueError(
          'nowcast needs record_every and jump_every (or a schedule), got'
          f' record_every={record_every!r}, jump_every={jump_every!r}'
      )
    if horizon is None:
      if forecaster.horizon is None:
        raise ValueError(
            f'forecaster {forecaster.name!r} has no horizon: it forecasts'
            ' the step its own schedule fixes; use'
            ' nowcast(forecaster, schedule=onc.schedules.introspection([...]))'
            ' with the steps to jump at, or pass horizon=... to use it with'
            ' record_every and jump_every'
        )
      horizon = forecaster.horizon
    return schedules_lib.periodic(
        record_every,
        jump_every,
        forecaster.window,
        horizon=horizon,
        first_jump_step=first_jump_step,
        last_jump_step=last_jump_step,
    )
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
  return schedule


def _make_guard(guard, guard_steps, guard_tolerance,
                schedule: Schedule) -> Optional[guards_lib.Guard]:
  """The guard ``nowcast`` runs (or None), checked against the schedule."""
  if guard_steps is not None:
    if guard is not None:
      raise ValueError(
          'pass either guard= or its shorthand guard_steps=, not both, got'
          f' guard={guard!r}, guard_steps={guard_steps!r}')
    guard = guards_lib.loss_guard(
        _validation.positive_int('guard_steps', guard_steps),
        guard_tolerance)
  guards_lib.check_tolerance(guard_tolerance)
  if guard_steps is None and isinstance(
      guard_tolerance, (int, float)) and guard_tolerance != 0:
    raise ValueError(
        'guard_tolerance is the tolerance of guard_steps=; pass guard_steps'
        f' too, got guard_tolerance={guard_tolerance!r}')
  if guard is None:
    return None
  if not isinstance(guard, guards_lib.Guard):
    raise ValueError(
        'guard must be an optax_nowcast.guards.Guard (e.g.'
        f' guards.loss_guard(steps=100)), got {guard!r}')
  if not isinstance(schedule, schedules_lib.PeriodicSchedule):
    raise ValueError(
        'guard_steps needs the periodic schedule (record_every, jump_every),'
        f' got schedule={schedule!r}')
  room = schedule.num_slots * schedule.record_every
  if guard.steps > room:
    raise ValueError(
        'guard_steps must be at most (forecaster.window - 1) * record_every'
        f' = {room} (the pre-jump params live in the last history slot'
        f' until then), got {guard.steps}')
  return guard


def _history_dtype(history_dtype: Any) -> Optional[jnp.dtype]:
  if history_dtype is None:
    return None
  try:
    dtype = jnp.dtype(history_dtype)
  except TypeError as e:
    raise ValueError(
        f'history_dtype must be a floating dtype, got {history_dtype!r}'
    ) from e
  if not jnp.issubdtype(dtype, jnp.floating):
    raise ValueError(
        f'history_dtype must be a floating dtype, got {history_dtype!r}')
  return dtype


def _check_update_args(params: Any, state: Any, num_slots: int,
                       keep: list[bool]) -> None:
  """Raises a clear error for params or a state that ``update`` cannot use."""
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
  leaves, treedef = jax.tree.flatten(params)
  want = jax.tree.structure(jax.tree.unflatten(
      treedef, [p if k else optax.MaskedNode() for p, k in zip(leaves, keep)]))
  got = jax.tree.structure(state.history[0])
  if want != got:
    raise ValueError(
        'params do not match the nowcast state (restored from another'
        f' model?): params give history structure {want}, the state has'
        f' {got}'
    )
  kept = [p for p, k in zip(leaves, keep) if k]
  for p, h in zip(kept, jax.tree.leaves(state.history[0])):
    if jnp.shape(p) != h.shape:
      raise ValueError(
          'params do not match the nowcast state (restored from another'
          f' model?): a param of shape {jnp.shape(p)} has history'
          f' of shape {h.shape}'
      )


def _check_jumps_end(schedule: Schedule, value_fn: Any,
                     step_sizes: Optional[tuple[float, ...]]) -> None:
  """Refuses blind jumps that never stop: the run could end on a jump.

  Unchecked jumps go to the forecast whatever it costs: a run whose last
  jump comes shortly before its end ends in the jump's damage, and on a
  problem that converges (optax's parabolas, Rosenbrock) jumping until the
  end keeps kicking the params out of the optimum. So a periodic schedule
  must either check its jumps against the loss (``value_fn``) or stop them
  at ``last_jump_step``. The Introspection schedule ends by construction.
  """
  if (isinstance(schedule, schedules_lib.PeriodicSchedule)
      and schedule.last_jump_step is None and value_fn is None):
    how = ('pass value_fn= to update: with a learned forecaster'
           ' value_fn=onc.lookahead(lambda p: loss(p, batch), steps=10,'
           ' learning_rate=<your rate>, eval_fn=lambda p: loss(p,'
           ' next_batch)), since the bare loss(p, batch) rejects jumps that'
           ' pay a few steps later; with a closed-form one value_fn=lambda p:'
           ' loss(p, batch)'
           if step_sizes else
           'set select= (e.g. its default) and pass value_fn= to update')
    raise ValueError(
        'nowcast would jump blind until training ends (no value_fn and'
        ' last_jump_step=None): a run could end right after a bad jump, or'
        ' in the oscillation its jumps drive. Either set last_jump_step= to'
        ' the step after which jumps stop (the recommended recipe: where'
        ' your learning rate starts to decay, half the steps of a cosine'
        ' decay, see the README), or check every jump against'
        ' not jumping: ' + how)


#: The chunks of ``nowcast(chunk_size='auto')``: a learned forecaster's
#: intermediates take 1-3 KB per weight, a closed-form one's a few floats;
#: either way a chunk's temporaries stay near a few MB, far below the 32 MB
#: past which a CPU step's temporaries are mapped fresh on every call
#: (measured in the docs' Cost per step page, ``docs/cost.md``).
AUTO_CHUNK_SIZE = 2**12
AUTO_CLOSED_FORM_CHUNK_SIZE = 2**16


def _chunk_size(chunk_size: Union[int, str, None],
                forecaster: Forecaster) -> Optional[int]:
  """``nowcast``'s ``chunk_size`` as weights per chunk; ``None``: no chunks.

  ``'auto'``: :data:`AUTO_CHUNK_SIZE` for a learned forecaster (one with
  weights), :data:`AUTO_CLOSED_FORM_CHUNK_SIZE` for a closed-form one
  (``linear``, ``quadratic``, ``last``).
  """
  if chunk_size is None:
    return None
  if isinstance(chunk_size, str):
    if chunk_size != 'auto':
      raise ValueError(
          "chunk_size must be a positive int, 'auto' or None, got"
          f' {chunk_size!r}')
    learned = any(jnp.size(w) for w in jax.tree.leaves(forecaster.weights))
    return AUTO_CHUNK_SIZE if learned else AUTO_CLOSED_FORM_CHUNK_SIZE
  return _validation.positive_int('chunk_size', chunk_size)


_WARNED: set[str] = set()


def _whole_leaf_infos(forecaster: Forecaster, params: Any,
                      leaf_labels: Sequence[str], active: Sequence[int],
                      params_a: Sequence[jax.Array]) -> Optional[tuple]:
  """The active leaves' ``LeafInfo`` when the jump runs whole leaves.

  ``None`` (a per-scalar jump) for a forecaster without
  ``forecast_leaves``, or when a leaf's sharding is not known while tracing
  (auto mesh axes: the per-scalar path keeps every weight where it lives).
  Leaves on explicit mesh axes go to ``forecast_leaves`` sharded, which
  keeps them where they are (``nino`` runs its network per device).
  """
  if forecaster.forecast_leaves is None:
    return None
  if any(_group.placement(p)[0] == 'auto' for p in params_a):
    message = (
        f'{forecaster.name}: a leaf\'s sharding is not stated while tracing'
        ' (auto mesh axes, or jit(in_shardings=...) on several devices), so'
        ' the jump runs the forecaster per weight (for nino: nino-mlp), which'
        ' keeps every weight where it lives. Put the params on explicit mesh'
        ' axes (jax.make_mesh(..., axis_types=(AxisType.Explicit, ...))) for'
        ' the whole-leaf forecaster.')
    if message not in _WARNED:
      _WARNED.add(message)
      warnings.warn(message, stacklevel=2)
    return None
  infos = _neural_graph.leaf_infos(params, leaf_labels)
  return tuple(infos[i] for i in active)


# ----------------------------------------------------------------------------
# The parts of a step, in the order ``update`` runs them.


def _leaves_to_keep(mask: _labels.LabelSpec, params: Any) -> list[bool]:
  """Per flat leaf of ``params``, whether it is nowcast (``mask`` keeps it)."""
  if mask is None or _is_params_placeholder(params):
    return [True] * len(jax.tree.leaves(params))
  return _labels.resolve_mask(mask, params)


def _init_state(params: Any, keep: Sequence[bool], num_slots: int,
                history_dtype: Optional[jnp.dtype],
                guard: Optional[guards_lib.Guard],
                step_sizes: Optional[tuple[float, ...]]) -> NowcastState:
  """The state before step 1: zero counters, every slot a copy of the params.

  With a guard and a ``history_dtype``, the last slot keeps the params' own
  dtype: it holds the pre-jump params, which a rollback restores exactly.
  """
  history = _history.init(params, num_slots, history_dtype, keep)
  if guard and history_dtype is not None:
    history = history[:-1] + _history.init(params, 1, None, keep)
  # Separate buffers, so that the whole state can be donated.
  zero = lambda: jnp.zeros([], jnp.int32)
  return NowcastState(
      count=zero(), records=zero(), jumps=zero(), skipped=zero(),
      nonfinite=zero(),
      selected=(jnp.zeros([1 + len(step_sizes)], jnp.int32)
                if step_sizes else ()),
      guard=guard.init() if guard else (),
      history=history)


def _value_args(extra_args: dict[str, Any], guard: Optional[guards_lib.Guard],
                step_sizes: Optional[tuple[float, ...]]
                ) -> tuple[Any, Optional[Callable[[Any], Any]]]:
  """``value`` (the guard's loss) and ``value_fn`` from ``update``'s extras.

  ``value_fn`` is ``None`` with ``select=None``: then it is left to the
  other transformations of the chain.
  """
  value = extra_args.get('value')
  if guard and value is None:
    raise ValueError(
        'nowcast(guard_steps=...) watches the loss: pass it as'
        ' tx.update(updates, state, params, value=loss)')
  value_fn = extra_args.get('value_fn') if step_sizes else None
  if value_fn is not None and not callable(value_fn):
    raise ValueError(
        'value_fn must be a function of the params returning the loss,'
        f' got {value_fn!r}')
  return value, value_fn


class _Leaves(NamedTuple):
  """The flat leaves of one ``update``; "active" ones are those nowcast.

  Attributes:
    treedef: The params' tree structure.
    flat_updates: The inner optimizer's updates of every leaf.
    active: The flat indices of the active leaves.
    params: The active leaves' params.
    updates: The active leaves' updates.
    slots: Per history slot, its leaves (the active ones, in order).
    groups: The active leaves grouped for the forecaster (``_group.plan``).
    infos: The active leaves' ``LeafInfo`` when the forecaster runs whole
      leaves (:func:`_whole_leaf_infos`), else ``None``.
  """

  treedef: Any
  flat_updates: list[jax.Array]
  active: list[int]
  params: list[jax.Array]
  updates: list[jax.Array]
  slots: list[list[jax.Array]]
  groups: list[_group.Group]
  infos: Optional[tuple]

  def updates_tree(self, active_updates: Sequence[jax.Array]) -> Any:
    """The updates tree: ``active_updates`` on the active leaves."""
    flat = list(self.flat_updates)
    for i, u in zip(self.active, active_updates):
      flat[i] = u
    return jax.tree.unflatten(self.treedef, flat)


def _flat_leaves(forecaster: Forecaster, params: Any, updates: Any,
                 history: tuple[Any, ...], keep: Sequence[bool],
                 labels: _labels.LabelSpec) -> _Leaves:
  """Flattens params, updates and history; plans the forecaster's groups."""
  treedef = jax.tree.structure(params)
  flat_params = treedef.flatten_up_to(params)
  flat_updates = treedef.flatten_up_to(updates)
  leaf_labels = _labels.resolve_labels(labels, params)
  active = [i for i, k in enumerate(keep) if k]
  params_a = [flat_params[i] for i in active]
  slots = [jax.tree.leaves(h) for h in history]
  updates_a = [flat_updates[i] for i in active]
  groups = _group.plan(
      params_a, [leaf_labels[i] for i in active],
      [(u, *(s[k] for s in slots)) for k, u in enumerate(updates_a)])
  infos = _whole_leaf_infos(forecaster, params, leaf_labels, active,
                            params_a)
  return _Leaves(treedef, flat_updates, active, params_a, updates_a, slots,
                 groups, infos)


class _Jumped(NamedTuple):
  """What the jump (or rollback) branch of a step gives back.

  Attributes:
    updates: The active leaves' updates.
    kept: With a guard, the leaves of the last history slot (``p_n`` after
      a jump, for a rollback); ``[]`` without.
    nonfinite: int32, the weights whose forecast was not finite.
    choice: int32, the candidate a checked jump took (0: stayed at ``p_n``).
  """

  updates: list[jax.Array]
  kept: list[jax.Array]
  nonfinite: jax.Array
  choice: jax.Array


def _candidate_moves(
    forecaster: Forecaster, leaves: _Leaves, updates: list[jax.Array],
    plan: schedules_lib.JumpPlan,
    forecast_at: Callable[[jax.Array], _group.Forecast],
    step_sizes: tuple[float, ...],
) -> Callable[[jax.Array], tuple[list[jax.Array], jax.Array]]:
  r"""``scale -> (updates, nonfinite)`` of a checked jump's candidates.

  The candidate of ``scale`` :math:`s` is :math:`p_n + s (\hat p - p_n)`
  for a forecaster of one horizon (forecast once, the displacement scaled);
  for a multi-horizon one (``forecaster.horizons`` set) it is the forecast
  at :math:`s` times the scheduled horizon, every horizon in one call when
  the forecaster runs whole leaves. Scale 0 is :math:`p_n` exactly.
  """
  if forecaster.horizons is None:
    forecast = forecast_at(plan.target)

    def moved(scale):
      return (_group.moved_updates(forecast, updates, scale),
              forecast.nonfinite)
  elif leaves.infos is not None:  # whole leaves: every horizon in one call
    every = _group.forecast_whole(
        forecaster, leaves.params, updates, leaves.slots, plan.window_slots,
        plan.times, plan.target * jnp.asarray(step_sizes, jnp.float32),
        leaves.infos)
    stacked = [jnp.stack(d) for d in zip(*(f.deltas for f in every))]
    bad = jnp.stack([f.nonfinite for f in every])
    sizes = jnp.asarray((0.0,) + step_sizes, jnp.float32)

    def moved(scale):
      k = jnp.argmin(jnp.abs(sizes - scale))
      pick = jnp.maximum(k - 1, 0)
      at = _group.Forecast([d[pick] for d in stacked], bad[pick])
      return (_group.moved_updates(at, updates, (k > 0).astype(jnp.float32)),
              at.nonfinite)
  else:  # a forecast per horizon
    def moved(scale):
      at = forecast_at(plan.target * scale)
      return (_group.moved_updates(at, updates,
                                   (scale > 0).astype(jnp.float32)),
              at.nonfinite)
  return moved


def _jump_branch(
    carry: _Jumped, *, forecaster: Forecaster, leaves: _Leaves, params: Any,
    plan: schedules_lib.JumpPlan, count: jax.Array, chunk_size: Optional[int],
    value_fn: Optional[Callable[[Any], Any]],
    step_sizes: Optional[tuple[float, ...]], guarded: bool,
) -> _Jumped:
  """A jump step: the updates to the forecast, or checked, to the best candidate.

  With a guard, the last history slot takes ``p_n`` first, for a rollback.
  """
  updates, kept = carry.updates, carry.kept
  if guarded:
    kept = [optax.apply_updates(p, u).astype(h.dtype)
            for p, u, h in zip(leaves.params, updates, kept)]

  def forecast_at(target):
    if leaves.infos is not None:
      return _group.forecast_whole(
          forecaster, leaves.params, updates, leaves.slots,
          plan.window_slots, plan.times, target, leaves.infos)[0]
    return _group.forecast_groups(
        forecaster, leaves.groups, leaves.params, updates, leaves.slots,
        plan.window_slots, plan.times, target, count > 0, chunk_size)

  if value_fn is None:
    forecast = forecast_at(plan.target)
    return _Jumped(_group.moved_updates(forecast, updates), kept,
                   forecast.nonfinite, jnp.zeros([], jnp.int32))
  moved = _candidate_moves(forecaster, leaves, updates, plan, forecast_at,
                           step_sizes)
  choice = _select.choose(
      value_fn,
      lambda scale: optax.apply_updates(
          params, leaves.updates_tree(moved(scale)[0])),
      step_sizes)
  updates, nonfinite = moved(
      jnp.asarray((0.0,) + step_sizes, jnp.float32)[choice])
  return _Jumped(updates, kept, nonfinite, choice)


def _jump_or_roll_back(leaves: _Leaves, jump: jax.Array, rollback: jax.Array,
                       jump_branch: Callable[[_Jumped], _Jumped],
                       guarded: bool) -> _Jumped:
  """The step's updates: a jump's, a rollback's, or the inner optimizer's.

  One ``lax.cond``: the forecaster runs on jump steps only, and, with jax
  0.10, the branch reads the (donated) params, history and updates in
  place, so the other steps copy none of them
  (``tests/lib/test_nowcast.py`` checks the compiled step). A rollback
  (guard only) moves the params back to the ``p_n`` kept in the last slot.
  """

  def roll_back(carry):
    return carry._replace(updates=[
        _jump.rollback_update(p, h, u)
        for p, h, u in zip(leaves.params, carry.kept, carry.updates)])

  carry = _Jumped(leaves.updates, list(leaves.slots[-1]) if guarded else [],
                  jnp.zeros([], jnp.int32), jnp.zeros([], jnp.int32))
  branch = ((lambda c: jax.lax.cond(jump, jump_branch, roll_back, c))
            if guarded else jump_branch)
  return jax.lax.cond(jump | rollback, branch, lambda c: c, carry)


def _record(slots: list[list[jax.Array]], leaves: _Leaves,
            updates: Sequence[jax.Array], plan: schedules_lib.JumpPlan,
            rollback: jax.Array) -> list[list[jax.Array]]:
  """The history slots after the step: ``p_n`` recorded if the plan says so.

  The record reads ``params + updates`` as the caller will apply them, the
  very expression XLA then computes once for both; a rollback step records
  nothing. One cond around the per-slot conds (``_history.write``): a step
  that does not record decides that once (on a GPU, a conditional's
  predicate goes to the host), at the price of passing every slot through
  its branches.
  """
  final = [optax.apply_updates(p, u) for p, u in zip(leaves.params, updates)]
  return jax.lax.cond(
      plan.record & ~rollback,
      lambda slots: _history.write(slots, plan.slot, final),
      lambda slots: [list(s) for s in slots],
      slots,
  )


def _next_state(state: NowcastState, count: jax.Array,
                plan: schedules_lib.JumpPlan, rollback: jax.Array,
                jumped: _Jumped, guard_state: Any,
                slots: list[list[jax.Array]], checked: bool) -> NowcastState:
  """The counters moved on by the step, and the history's new slots."""
  slot_def = jax.tree.structure(state.history[0]) if state.history else None
  return NowcastState(
      count=count,
      records=jnp.where(rollback, 0, plan.records).astype(jnp.int32),
      jumps=state.jumps + plan.jump.astype(jnp.int32),
      skipped=state.skipped + (plan.due & ~plan.jump).astype(jnp.int32),
      nonfinite=state.nonfinite + jumped.nonfinite,
      # Without value_fn nothing is chosen: the counts pass through, no
      # scatter on every step.
      selected=(state.selected.at[jumped.choice].add(
          plan.jump.astype(jnp.int32)) if checked else state.selected),
      guard=guard_state,
      history=tuple(jax.tree.unflatten(slot_def, s) for s in slots),
  )


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
    chunk_size: Union[int, str, None] = 'auto',
    guard: Optional[guards_lib.Guard] = None,
    guard_steps: Optional[int] = None,
    guard_tolerance: float = 0.0,
    select: Optional[Sequence[float]] = _select.DEFAULT_SELECT,
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

  Checked jumps (the safe default): when ``update`` receives the loss of the
  params as the extra argument ``value_fn`` (``tx.update(g, state, params,
  value_fn=lambda p: loss(p, batch))``, optax's convention), a jump step
  evaluates it at :math:`p_n` and at :math:`p_n + s (\hat p - p_n)` for each
  step size :math:`s` in ``select``, and moves to the least loss; it stays
  at :math:`p_n` unless that loss is finite and strictly lower than at
  :math:`p_n`. A multi-horizon forecaster (``forecaster.horizons`` set, e.g.
  ``forecasters.multihorizon``) is tried at other *horizons* instead: the
  candidates are its forecasts at :math:`s` times the scheduled horizon.
  ``value_fn`` runs only on jump steps (``1 + len(select)``
  times, one candidate alive at a time), and ``NowcastState.selected``
  counts the winners. Such a jump never raises the loss it is given above
  not jumping, so training may end on any step and jumps cannot drive an
  oscillation of that loss. A learned forecaster's jump can raise the loss
  at once and still pay a few steps later (measured in the docs' page
  Checked jumps and guards, ``docs/checked_jumps.md``):
  give ``value_fn=lookahead(loss, steps=..., learning_rate=...)``
  (:func:`~optax_nowcast.lookahead`) to judge each candidate after a few
  sign-descent steps instead. Without ``value_fn`` the jump goes blindly to
  the forecast, and a periodic schedule then requires ``last_jump_step``
  (``update`` raises otherwise): with blind jumps to the end, optax's own
  test problems are no longer solved (``docs/checked_jumps.md``, "On
  optax's own test problems": Adam + ``linear`` keeps kicking the params off a parabola's optimum, SGD
  with momentum + ``linear`` diverges on Rosenbrock).

  Each scalar weight is forecast independently from its own window: the
  forecaster is vmapped over every element (``_jump.py``), once per *group*
  of leaves rather than once per leaf, so a model with hundreds of leaves
  compiles it a few times (``_group.py``): on one device the leaves of a
  label and dtype are streamed through it together (see ``chunk_size``),
  on explicit mesh axes leaves of the same
  shape and sharding are stacked on each device's shards, and with auto
  mesh axes (whose sharding is unknown while tracing) each leaf is its own
  group, so that no weight ever moves between devices.
  Everything is compiled and nothing recompiles: each step's plan comes from
  int32 counters (``schedules.py``), the forecaster runs only on jump steps
  and a record writes one history slot in place (``_history.py`` says how
  XLA is kept from copying the params). The history holds
  ``forecaster.window - 1`` params-shaped trees: the
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
    last_jump_step: No jump after this step, so that a run does not end
      right after a blind jump (e.g. 90% of the training steps). ``None``
      (no limit) is allowed only with checked jumps: ``update`` then
      requires ``value_fn``.
    schedule: Instead of ``record_every``/``jump_every``: a schedule object,
      e.g. ``schedules.introspection([3000, 4000, 5000])`` for the
      Introspection schedule (inputs at steps 0, 0.4t, 0.7t, t; forecast of
      step 2t).
    labels: The kind of each leaf, passed to the forecaster (which may hold
      separate weights per kind): a params-shaped tree of strings or a
      callable returning one, as in ``optax.partition``. Default
      (:func:`~optax_nowcast.default_label`): ``'norm'`` for a normalisation
      scale, ``'embedding'`` for an embedding table and ``'dense'`` for an
      attention projection's kernel (by the param's name), else ``'conv'``
      for rank >= 3, ``'dense'`` for rank 2, ``'bias'`` for rank 1,
      ``'scalar'`` for rank 0.
    mask: A params-shaped tree of bools, or a callable returning one, as in
      ``optax.masked``: ``True`` leaves are nowcast, ``False`` leaves are never
      recorded nor jumped (their history is ``optax.MaskedNode``).
    history_dtype: dtype of the history, e.g. ``jnp.bfloat16`` to halve its
      memory. Default: each param's own dtype. Forecasts are computed in
      float32 either way. With a guard, the last slot keeps the params'
      dtype (see ``guard``).
    chunk_size: The forecaster runs over at most this many weights at a
      time, which bounds a jump's memory. On one device the jump then
      *streams* the leaves: a ``lax.fori_loop`` reads blocks of
      ``max(2**16, chunk_size)`` weights in place from the params, updates
      and history (small leaves packed together), forecasts a block
      ``chunk_size`` weights at a time and writes the displacements back,
      so the jump's temporaries stay a few MB whatever the model's size,
      and never the joined float32 copies of the params and history that
      would, on a CPU, make every step pay page faults once a step's
      temporaries pass 32 MB (``docs/cost.md``). ``'auto'``
      (the default): :data:`AUTO_CHUNK_SIZE` (4,096) weights for a
      learned forecaster, whose intermediates take 1-3 KB per weight,
      :data:`AUTO_CLOSED_FORM_CHUNK_SIZE` (65,536) for a closed-form one
      (``linear``, ``quadratic``, ``last``). ``None``: no chunks; the
      leaves of a group are joined and forecast at once (more memory, a
      faster jump). Forecasts are the same either way (a learned
      forecaster's up to float32 rounding). On explicit mesh axes the
      chunks run along unsharded axes, so no shard leaves its device; on
      auto mesh axes (a leaf's sharding unknown while tracing) leaves are
      never chunked.
    guard: A :class:`~optax_nowcast.guards.Guard` that may roll a jump back,
      e.g. ``guards.loss_guard(steps)``; ``update`` then requires the loss as
      the extra argument ``value``. A rollback sets the params back to their
      pre-jump values ``p_n`` exactly, restarts the history and counts in
      the guard's state. The pre-jump params are kept in the last history
      slot (in the params' own dtype, also under ``history_dtype``), which
      the restarted history does not reach before ``(window - 1) *
      record_every`` steps, so ``guard.steps`` may not exceed that. Periodic
      schedule only.
    guard_steps: Shorthand for ``guard=guards.loss_guard(guard_steps,
      guard_tolerance)``: undo a jump if the loss over the last half of the
      next ``guard_steps`` steps is worse than before the jump.
    guard_tolerance: The relative loss increase that ``guard_steps``'s guard
      tolerates (>= 0).
    select: The step sizes a checked jump tries along ``forecast - p_n``
      (positive, distinct; default :data:`DEFAULT_SELECT`, ``(0.25, 0.5,
      1.0, 2.0)``), used when ``update`` gets ``value_fn`` (for a
      multi-horizon forecaster: multiples of the horizon). ``None``: never
      check, ignore ``value_fn`` (e.g. when it is meant for another
      transformation of the chain).

  Returns:
    An ``optax.GradientTransformationExtraArgs`` whose ``update`` requires
    ``params``, reads the extra arguments ``value_fn`` (checked jumps) and
    ``value`` (the guard's loss), and ignores any others.

  Example:
    Checked jumps (recommended): pass the loss of the params as ``value_fn``.

    >>> import jax, jax.numpy as jnp, optax, optax_nowcast as onc
    >>> loss = lambda p: jnp.sum((p - 1.0) ** 2)
    >>> tx = optax.chain(optax.sgd(0.1), onc.nowcast(
    ...     onc.forecasters.linear(window=2, horizon=1),
    ...     record_every=1, jump_every=2))
    >>> params = jnp.array([0.0])
    >>> state = tx.init(params)
    >>> for _ in range(2):
    ...   grads = jax.grad(loss)(params)
    ...   updates, state = tx.update(grads, state, params, value_fn=loss)
    ...   params = optax.apply_updates(params, updates)
    >>> # Step 2: p_n = 0.36 after 0.2, the forecast 0.52; of p_n + s (0.52 -
    >>> # p_n) for s in (0, 0.25, 0.5, 1, 2), s = 2 has the least loss.
    >>> print(f'{float(params[0]):.4f}', state[1].selected.tolist())
    0.6800 [0, 0, 0, 0, 1]

    Blind jumps must stop at ``last_jump_step``:

    >>> tx = optax.chain(optax.sgd(0.1), onc.nowcast(
    ...     onc.forecasters.linear(window=2, horizon=1),
    ...     record_every=1, jump_every=2, last_jump_step=900))
    >>> params = jnp.array([0.0])
    >>> state = tx.init(params)
    >>> for _ in range(2):
    ...   updates, state = tx.update(jax.grad(loss)(params), state, params)
    ...   params = optax.apply_updates(params, updates)
    >>> print(f'{float(params[0]):.4f}')  # step 2 jumped from 0.36 to 0.52
    0.5200

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
  schedule = _make_schedule(forecaster, schedule, record_every, jump_every,
                            horizon, first_jump_step, last_jump_step)
  guard = _make_guard(guard, guard_steps, guard_tolerance, schedule)
  chunk_size = _chunk_size(chunk_size, forecaster)
  history_dtype = _history_dtype(history_dtype)
  step_sizes = _select.check_step_sizes(select)
  num_slots = schedule.num_slots

  def init_fn(params):
    return _init_state(params, _leaves_to_keep(mask, params), num_slots,
                       history_dtype, guard, step_sizes)

  def update_fn(updates, state, params=None, **extra_args):
    keep = _leaves_to_keep(mask, params) if params is not None else []
    _check_update_args(params, state, num_slots, keep)
    value, value_fn = _value_args(extra_args, guard, step_sizes)
    leaves = _flat_leaves(forecaster, params, updates, state.history, keep,
                          labels)
    _check_jumps_end(schedule, value_fn, step_sizes)

    count = optax.safe_increment(state.count)
    plan = schedule.plan(count, state.records, state.jumps)
    if guard:
      rollback, guard_state = guard.update(state.guard, value, plan.jump)
    else:
      rollback, guard_state = jnp.zeros([], bool), ()
    jump_branch = functools.partial(
        _jump_branch, forecaster=forecaster, leaves=leaves, params=params,
        plan=plan, count=count, chunk_size=chunk_size, value_fn=value_fn,
        step_sizes=step_sizes, guarded=bool(guard))
    jumped = _jump_or_roll_back(leaves, plan.jump, rollback, jump_branch,
                                bool(guard))
    slots = leaves.slots[:-1] + [jumped.kept] if guard else leaves.slots
    slots = _record(slots, leaves, jumped.updates, plan, rollback)
    new_state = _next_state(state, count, plan, rollback, jumped, guard_state,
                            slots, checked=value_fn is not None)
    return leaves.updates_tree(jumped.updates), new_state

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)
