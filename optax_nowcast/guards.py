r"""Guards: policies that undo a jump which made the loss worse.

A :class:`Guard` watches a scalar (the loss, passed to ``update`` as the
extra argument ``value``) and says, step by step, whether the last jump must
be rolled back. It is a pair of pure functions on its own state, so it can
be tested on scalars without :func:`optax_nowcast.nowcast`;
``nowcast(..., guard=...)`` keeps that state in ``NowcastState.guard`` and
does the rollback (it restores the pre-jump params it kept in the history).

- :func:`loss_guard`: compare the loss after the jump's repair window with
  the loss before the jump.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Union

import jax
import jax.numpy as jnp
import optax

from optax_nowcast import _validation


class Guard(NamedTuple):
  """A jump-rollback policy: pure functions of its own state.

  Attributes:
    init: ``() -> state``, the state before any step.
    update: ``(state, value, jump) -> (rollback, state)``: given the float32
      scalar ``value`` of this step (the loss of the params the step starts
      from) and whether this step jumps, whether this step must roll the
      last jump back (a bool scalar), and the next state. It must never ask
      for a rollback later than ``steps`` steps after a jump.
    steps: The longest a jump may wait for its verdict, in steps.
  """

  init: Callable[[], Any]
  update: Callable[[Any, jax.Array, jax.Array], tuple[jax.Array, Any]]
  steps: int


class LossGuardState(NamedTuple):
  """State of :func:`loss_guard`.

  Attributes:
    seen: int32, losses seen so far.
    loss_ema: float32, exponential moving average (decay 0.9) of the loss.
    left: int32, steps left to watch after the last jump (0: not watching).
    ref: float32, ``loss_ema`` at the last jump.
    tail_sum: float32, sum of the losses over the watched window's last
      half so far.
    rollbacks: int32, jumps rolled back so far.
  """

  seen: jax.Array
  loss_ema: jax.Array
  left: jax.Array
  ref: jax.Array
  tail_sum: jax.Array
  rollbacks: jax.Array


def check_tolerance(tolerance: Any) -> None:
  """Raises unless ``tolerance`` is a number >= 0 (or a scalar jax.Array).

  A scalar ``jax.Array`` (as ``optax.inject_hyperparams`` passes it) may be
  traced, so it is not checked.
  """
  if isinstance(tolerance, jax.Array) and tolerance.ndim == 0:
    return
  if isinstance(tolerance, bool) or not isinstance(
      tolerance, (int, float)) or not tolerance >= 0:
    raise ValueError(
        f'guard_tolerance must be a number >= 0, got {tolerance!r}')


def loss_guard(steps: int,
               tolerance: Union[float, jax.Array] = 0.0) -> Guard:
  r"""Rolls a jump back if the loss stays worse than before it.

  After a jump at step :math:`t` the guard watches the loss for ``steps``
  steps. Let :math:`\bar\ell` be the exponential moving average (decay 0.9)
  of the loss at the jump, and :math:`m` the mean loss over the last
  :math:`\lceil \text{steps} / 2 \rceil` watched steps (the first half lets
  the optimizer repair the usual post-jump spike, as NiNo observes). At
  step :math:`t + \text{steps}` it asks for a rollback iff

  .. math::
    m > \bar\ell + \text{tolerance} \cdot |\bar\ell|,

  and then resets the moving average to :math:`\bar\ell` (the post-jump
  losses no longer describe the params). The average lags a falling loss,
  so early in training the guard is lenient.

  Args:
    steps: Steps to watch after each jump (> 0).
    tolerance: Relative loss increase tolerated (>= 0); a scalar
      ``jax.Array`` (as ``optax.inject_hyperparams`` passes it) is not
      checked.

  Returns:
    A :class:`Guard` whose state is a :class:`LossGuardState`.

  Example:
    >>> import jax.numpy as jnp
    >>> from optax_nowcast import guards
    >>> g = guards.loss_guard(steps=2)
    >>> state = g.init()
    >>> for loss, jump in [(1.0, False), (1.0, True), (3.0, False),
    ...                    (3.0, False)]:
    ...   rollback, state = g.update(state, jnp.float32(loss), jnp.bool_(jump))
    >>> bool(rollback), int(state.rollbacks)  # 3 after the jump, 1 before
    (True, 1)
  """
  steps = _validation.positive_int('steps', steps)
  check_tolerance(tolerance)
  tail = (steps + 1) // 2

  def init():
    zero = lambda dtype: jnp.zeros([], dtype)
    return LossGuardState(
        seen=zero(jnp.int32), loss_ema=zero(jnp.float32),
        left=zero(jnp.int32), ref=zero(jnp.float32),
        tail_sum=zero(jnp.float32), rollbacks=zero(jnp.int32))

  def update(state, value, jump):
    value = jnp.asarray(value, jnp.float32)
    was_open = state.left > 0
    in_tail = was_open & (state.left <= tail)
    tail_sum = jnp.where(in_tail, state.tail_sum + value,
                         jnp.where(was_open, state.tail_sum, 0.0))
    left = jnp.maximum(state.left - 1, 0)
    rollback = was_open & (left == 0) & (
        tail_sum / tail > state.ref + tolerance * jnp.abs(state.ref))
    loss_ema = jnp.where(state.seen == 0, value,
                         0.9 * state.loss_ema + 0.1 * value)
    loss_ema = jnp.where(rollback, state.ref, loss_ema)
    new_state = LossGuardState(
        seen=optax.safe_increment(state.seen),
        loss_ema=loss_ema,
        left=jnp.where(jump, steps, left).astype(jnp.int32),
        ref=jnp.where(jump, loss_ema, state.ref),
        tail_sum=jnp.where(jump, 0.0, tail_sum),
        rollbacks=state.rollbacks + rollback.astype(jnp.int32),
    )
    return rollback, new_state

  return Guard(init=init, update=update, steps=steps)
