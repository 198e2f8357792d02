"""When to record weights and when to jump: periodic and Introspection plans.

A schedule turns the step counter into a :class:`JumpPlan` inside compiled
code: which history slot (if any) receives the current weights, whether a jump
is due and whether it happens, and which slots form the forecaster's window.
All decisions are ``jnp`` scalars derived from int32 counters, so the
transformation never branches in Python on a traced value and never
recompiles.

Two schedules are provided:

- :func:`periodic` (WNN, NiNo): record every ``record_every`` steps, jump when
  ``jump_every`` records have been made since the last jump. The history is a
  ring of ``window - 1`` slots and restarts after each jump.
- :func:`introspection` (Sinha et al., 2017): jump at given steps ``t`` from
  the weights at steps ``0, 0.4 t, 0.7 t, t`` to a forecast of step ``2 t``.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, NamedTuple, Optional, Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np

from optax_nowcast import _validation

#: NiNo's horizons (record intervals) for the 10 jumps of a 10k-step run
#: (Knyazev et al., 2025): big jumps early, small ones late.
NINO_HORIZONS = (40, 33, 26, 21, 16, 11, 8, 5, 3, 1)

Horizon = Union[float, Sequence[float], Callable[[jax.Array], jax.Array]]


class JumpPlan(NamedTuple):
  """What one step does, decided from the counters inside compiled code.

  Attributes:
    record: bool, write the step's weights into history slot ``slot`` (after
      the jump, if there is one).
    slot: int32, the slot to write.
    due: bool, a jump is due at this step.
    jump: bool, the jump happens (due, enough history, inside the step range).
    window_slots: int32 ``(window - 1,)``, the slots holding the older
      window entries, oldest first; the newest entry is the step's weights.
    times: float32 ``(window,)``, the steps of the window entries relative to
      the current step.
    target: float32, the step to forecast relative to the current step.
    records: int32, the value of ``NowcastState.records`` after this step.
  """

  record: jax.Array
  slot: jax.Array
  due: jax.Array
  jump: jax.Array
  window_slots: jax.Array
  times: jax.Array
  target: jax.Array
  records: jax.Array


def _horizon_fn(horizon: Horizon) -> Callable[[jax.Array], jax.Array]:
  """Turns a number, a per-jump sequence or a callable into ``jump -> h``."""
  if callable(horizon):
    return lambda jump: jnp.asarray(horizon(jump), jnp.float32)
  if isinstance(horizon, jax.Array) and horizon.ndim == 0:
    # e.g. injected by optax.inject_hyperparams: may be traced, so it cannot
    # be checked here.
    return lambda jump: horizon.astype(jnp.float32)
  if isinstance(horizon, np.ndarray) and horizon.ndim == 0:
    horizon = horizon.item()
  if isinstance(horizon, (list, tuple, np.ndarray)):
    if len(horizon) == 0:
      raise ValueError('horizon must not be an empty sequence, got []')
    values = [_validation.positive_float('horizon', h) for h in horizon]
    table = jnp.asarray(values, jnp.float32)
    last = len(values) - 1
    return lambda jump: table[jnp.minimum(jump, last)]
  value = _validation.positive_float('horizon', horizon)
  return lambda jump: jnp.float32(value)


@dataclasses.dataclass(frozen=True, eq=False)
class PeriodicSchedule:
  """Record every ``record_every`` steps, jump every ``jump_every`` records.

  Built by :func:`periodic`; see there.
  """

  record_every: int
  jump_every: int
  window: int
  horizon: Callable[[jax.Array], jax.Array]
  first_jump_step: Union[int, jax.Array] = 0
  last_jump_step: Union[int, jax.Array, None] = None

  @property
  def num_slots(self) -> int:
    return self.window - 1

  def plan(
      self, count: jax.Array, records: jax.Array, jumps: jax.Array
  ) -> JumpPlan:
    """The plan of step ``count`` (1-based) given the counters before it."""
    record_due = count % self.record_every == 0
    made = records + 1  # records since the last jump, including this one
    due = record_due & (made % self.jump_every == 0)
    in_range = count >= self.first_jump_step
    if self.last_jump_step is not None:
      in_range &= count <= self.last_jump_step
    jump = due & in_range & (made >= self.window)
    slots = max(self.num_slots, 1)
    window_slots = (records + jnp.arange(self.num_slots, dtype=jnp.int32)) % (
        slots
    )
    times = self.record_every * jnp.arange(
        1 - self.window, 1, dtype=jnp.float32
    )
    target = self.record_every * self.horizon(jumps)
    return JumpPlan(
        record=record_due & ~jump & (self.num_slots > 0),
        slot=(records % slots).astype(jnp.int32),
        due=due,
        jump=jump,
        window_slots=window_slots.astype(jnp.int32),
        times=times,
        target=target,
        records=jnp.where(jump, 0, records + record_due).astype(jnp.int32),
    )


def periodic(
    record_every: int,
    jump_every: int,
    window: int,
    *,
    horizon: Horizon = 5.0,
    first_jump_step: int = 0,
    last_jump_step: Optional[int] = None,
) -> PeriodicSchedule:
  """The WNN / NiNo schedule: periodic records, a jump every few records.

  - Step ``n`` counts calls to ``update`` (1-based); ``p_n`` are the would-be
    params ``params + updates`` of that step.
  - Record: when ``n % record_every == 0``, ``p_n`` becomes the newest history
    entry.
  - Jump: when a record completes ``jump_every`` records since the last jump
    (or since the start), the window holds at least ``window`` records and
    ``first_jump_step <= n <= last_jump_step``, the step jumps to the forecast
    from the window whose newest entry is ``p_n``. A due jump that does not
    happen is counted as skipped and the history carries on.
  - After a jump the history restarts: only real post-jump weights feed later
    windows.

  Args:
    record_every: Steps between records (e.g. steps per epoch), > 0.
    jump_every: Records between jumps (>= window), > 0.
    window: Records the forecaster reads, including ``p_n``.
    horizon: Record intervals to forecast beyond ``p_n``: a number, a sequence
      indexed by the jump number (the last value repeats), a callable of the
      int32 jump number (like an optax schedule), or a scalar ``jax.Array``
      (as ``optax.inject_hyperparams`` passes it).
    first_jump_step: No jump before this step.
    last_jump_step: No jump after this step (``None``: no limit), so that a
      run does not end right after a jump.

  Returns:
    A :class:`PeriodicSchedule`.
  """
  record_every = _validation.fits_int32(
      'record_every', _validation.positive_int('record_every', record_every)
  )
  jump_every = _validation.fits_int32(
      'jump_every', _validation.positive_int('jump_every', jump_every)
  )
  window = _validation.positive_int('window', window)
  if jump_every < window:
    raise ValueError(
        f'jump_every must be at least the forecaster window ({window}) so the'
        f' history can fill between jumps, got jump_every={jump_every}'
    )
  first_jump_step = _validation.fits_int32(
      'first_jump_step',
      _validation.non_negative_int('first_jump_step', first_jump_step),
  )
  if last_jump_step is not None:
    last_jump_step = _validation.fits_int32(
        'last_jump_step',
        _validation.non_negative_int('last_jump_step', last_jump_step),
    )
    if (
        isinstance(last_jump_step, int)
        and isinstance(first_jump_step, int)
        and last_jump_step < first_jump_step
    ):
      raise ValueError(
          f'last_jump_step must be >= first_jump_step ({first_jump_step}),'
          f' got {last_jump_step}'
      )
  return PeriodicSchedule(
      record_every=record_every,
      jump_every=jump_every,
      window=window,
      horizon=_horizon_fn(horizon),
      first_jump_step=first_jump_step,
      last_jump_step=last_jump_step,
  )


@dataclasses.dataclass(frozen=True, eq=False)
class IntrospectionSchedule:
  """Jumps at given steps from the weights at fixed fractions of the step.

  Built by :func:`introspection`; see there. The tables are NumPy arrays
  computed once in Python; ``plan`` looks the step up in them.
  """

  jump_steps: np.ndarray  # (J,) int32
  window_steps: np.ndarray  # (J, window) int32, the step of each input
  window_table: np.ndarray  # (J, window - 1) int32, slot of each older input
  record_steps: np.ndarray  # (R,) int32
  record_slots: np.ndarray  # (R,) int32
  target_factor: float
  num_slots: int

  @property
  def window(self) -> int:
    return self.window_steps.shape[1]

  def plan(
      self, count: jax.Array, records: jax.Array, jumps: jax.Array
  ) -> JumpPlan:
    """The plan of step ``count`` (1-based) given the counters before it."""
    del jumps
    is_record = count == jnp.asarray(self.record_steps)
    is_jump = count == jnp.asarray(self.jump_steps)
    r = jnp.argmax(is_record)
    j = jnp.argmax(is_jump)
    jump = jnp.any(is_jump)
    steps = jnp.asarray(self.window_steps)[j].astype(jnp.float32)
    t = steps[-1]
    return JumpPlan(
        record=jnp.any(is_record),
        slot=jnp.asarray(self.record_slots)[r],
        due=jump,
        jump=jump,
        window_slots=jnp.asarray(self.window_table)[j],
        times=steps - t,
        target=(self.target_factor - 1.0) * t,
        records=records,
    )


def introspection(
    jump_steps: Sequence[int],
    *,
    fractions: Sequence[float] = (0.4, 0.7),
    target_factor: float = 2.0,
) -> IntrospectionSchedule:
  """The Introspection schedule (Sinha et al., 2017).

  For a jump at step ``t`` the forecaster reads the weights at steps ``0``
  (the initial params, kept from ``init``), ``round(0.4 t)``,
  ``round(0.7 t)`` and ``t`` (``p_t``), and forecasts the weight at step
  ``2 t``. Unlike the periodic schedule the inputs are the weights the run
  actually had at those steps, even if an earlier jump happened in between
  (a record that falls on a jump step stores the post-jump weights). The
  history holds the initial params plus two slots per jump whose inputs are
  still pending, so a few hand-picked jumps cost a few params-sized trees.

  Args:
    jump_steps: Strictly increasing steps ``t`` (>= 2) at which to jump.
    fractions: Fractions of ``t`` of the intermediate inputs, increasing in
      ``(0, 1)``.
    target_factor: The forecast is for step ``target_factor * t`` (> 1).

  Returns:
    An :class:`IntrospectionSchedule` to pass as ``nowcast(schedule=...)``
    with a forecaster whose ``window`` is ``len(fractions) + 2``.

  Example:
    >>> from optax_nowcast import schedules
    >>> s = schedules.introspection([3000, 4000, 5000])
    >>> s.window_steps.tolist()  # the inputs of each jump
    [[0, 1200, 2100, 3000], [0, 1600, 2800, 4000], [0, 2000, 3500, 5000]]
    >>> s.num_slots  # step 0, and up to 5 inputs pending at once (at 2800)
    6

  References:
    Sinha et al., `Introspection: Accelerating Neural Network Training by
    Learning Weight Evolution <https://arxiv.org/abs/1704.04959>`_, ICLR 2017.
  """
  if isinstance(jump_steps, (str, bytes)) or not isinstance(
      jump_steps, (list, tuple, np.ndarray)
  ):
    raise ValueError(
        f'jump_steps must be a sequence of ints, got {jump_steps!r}'
    )
  if len(jump_steps) == 0:
    raise ValueError('jump_steps must not be empty, got []')
  steps = [
      _validation.fits_int32(
          'jump_steps', _validation.positive_int('jump_steps', t)
      )
      for t in jump_steps
  ]
  if any(b <= a for a, b in zip(steps, steps[1:])):
    raise ValueError(f'jump_steps must be strictly increasing, got {steps}')
  if isinstance(fractions, (str, bytes)) or not isinstance(
      fractions, (list, tuple, np.ndarray)
  ):
    raise ValueError(
        f'fractions must be a sequence of numbers in (0, 1), got {fractions!r}'
    )
  fractions = [_validation.finite_float('fractions', f) for f in fractions]
  if not fractions or any(not 0.0 < f < 1.0 for f in fractions) or any(
      b <= a for a, b in zip(fractions, fractions[1:])
  ):
    raise ValueError(
        f'fractions must be increasing values in (0, 1), got {fractions}'
    )
  target_factor = _validation.positive_float('target_factor', target_factor)
  if target_factor <= 1.0:
    raise ValueError(f'target_factor must be > 1, got {target_factor}')

  window_steps = []
  for t in steps:
    inner = [int(round(f * t)) for f in fractions]
    row = [0] + inner + [t]
    if any(b <= a for a, b in zip(row, row[1:])):
      raise ValueError(
          f'jump_steps: the inputs of a jump at step {t} fall on steps {row},'
          ' which are not distinct; use later jump steps'
      )
    window_steps.append(row)

  # Slot 0 keeps step 0. Every intermediate step gets a slot from its record
  # until its last jump reads it; slots are reused once free.
  last_use = {}
  for t, row in zip(steps, window_steps):
    for s in row[1:-1]:
      last_use[s] = max(last_use.get(s, 0), t)
  slot_of = {0: 0}
  free: list[int] = []
  busy: list[tuple[int, int]] = []  # (last use, slot)
  num_slots = 1
  for s in sorted(last_use):
    for end, slot in list(busy):
      if end < s:
        busy.remove((end, slot))
        free.append(slot)
    if free:
      slot = min(free)
      free.remove(slot)
    else:
      slot, num_slots = num_slots, num_slots + 1
    slot_of[s] = slot
    busy.append((last_use[s], slot))

  record_steps = sorted(last_use)
  return IntrospectionSchedule(
      jump_steps=np.asarray(steps, np.int32),
      window_steps=np.asarray(window_steps, np.int32),
      window_table=np.asarray(
          [[slot_of[s] for s in row[:-1]] for row in window_steps], np.int32
      ),
      record_steps=np.asarray(record_steps, np.int32),
      record_slots=np.asarray([slot_of[s] for s in record_steps], np.int32),
      target_factor=target_factor,
      num_slots=num_slots,
  )
