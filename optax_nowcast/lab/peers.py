"""What a user would pick instead of ``nowcast``: the benchmark's peers.

Each peer replaces (or wraps) a task's own optimizer and says which params
its runs are evaluated at:

- ``adam-cosine``: the task's optimizer with a cosine decay from its peak
  rate to zero at the budget.
- ``adam-wsd``: warmup-stable-decay without a warmup (the task's Adam has
  none): the constant peak rate, then a linear decay to zero over the last
  :data:`WSD_DECAY` of the budget.
- ``sf-adamw``: ``optax.contrib.schedule_free_adamw`` (Defazio et al., 2024)
  with a linear warmup over :data:`SF_WARMUP` of the budget and the task's
  weight decay, evaluated at ``schedule_free_eval_params`` (the averaged
  iterate its authors evaluate).
- ``lookahead``: ``optax.lookahead`` around the task's optimizer (Zhang et
  al., 2019; k = :data:`LOOKAHEAD_K`, alpha = :data:`LOOKAHEAD_ALPHA`),
  evaluated at the slow weights; :func:`lookahead_on_params` keeps the slow
  weights in the optimizer state so the training loop sees plain params.
- ``snoo``: :func:`snoo`, an outer Nesterov momentum on the K-step
  displacement of the weights (Kallusky et al., 2025), evaluated at the
  outer (slow) weights; K, the outer rate and momentum are
  :data:`SNOO_K`, :data:`SNOO_RATE`, :data:`SNOO_MOMENTUM` (chosen by
  ``benchmarks/snoo_sweep.py`` on ``mnist-mlp``, a task the forecasters saw).

Every peer's peak learning rate is tuned per task as Adam's is
(``optax-nowcast tune --method <peer>``, :data:`TUNED`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax

#: ``adam-wsd``: the fraction of the budget over which the rate decays.
WSD_DECAY = 0.2
#: ``sf-adamw``: the fraction of the budget of linear warmup.
SF_WARMUP = 0.05
#: ``lookahead``: sync period and slow step size (the paper's defaults).
LOOKAHEAD_K, LOOKAHEAD_ALPHA = 5, 0.5
#: ``snoo``: outer period, outer learning rate and Nesterov momentum.
SNOO_K, SNOO_RATE, SNOO_MOMENTUM = 50, 0.5, 0.5

#: The weight decay of the tasks' optimizers (``tasks.OPTIMIZERS``).
_WEIGHT_DECAY = {'adam': 0.0, 'adamw': 1e-4}


def wsd_schedule(peak: float, steps: int,
                 decay: float = WSD_DECAY) -> optax.Schedule:
  """The constant ``peak``, then linear to zero over the last ``decay``."""
  if not 0 < decay <= 1:
    raise ValueError(f'decay must be in (0, 1], got {decay!r}')
  start = int(round((1 - decay) * steps))
  return optax.join_schedules(
      [optax.constant_schedule(peak),
       optax.linear_schedule(peak, 0.0, max(1, steps - start))], [start])


class SlowWeightsState(NamedTuple):
  """:func:`lookahead_on_params`'s state: optax's and the slow weights."""

  inner: optax.LookaheadState
  slow: Any


def lookahead_on_params(inner: optax.GradientTransformation,
                        sync_period: int = LOOKAHEAD_K,
                        slow_step_size: float = LOOKAHEAD_ALPHA
                        ) -> optax.GradientTransformationExtraArgs:
  """``optax.lookahead`` for a loop whose params are the fast weights.

  ``optax.lookahead`` expects ``optax.LookaheadParams(fast, slow)`` as the
  params; this keeps the slow weights in the state instead, calls
  ``optax.lookahead`` with both and returns its update of the fast weights:
  the numbers are optax's.

  Args:
    inner: The fast optimizer.
    sync_period: Steps between synchronisations (k).
    slow_step_size: The slow weights' step towards the fast ones (alpha).

  Returns:
    The transformation; :func:`slow_weights` reads the slow weights.
  """
  wrapped = optax.lookahead(optax.with_extra_args_support(inner), sync_period,
                            slow_step_size)

  def init_fn(params):
    return SlowWeightsState(
        wrapped.init(optax.LookaheadParams.init_synced(params)),
        jax.tree.map(jnp.copy, params))

  def update_fn(updates, state, params=None, **extra_args):
    del extra_args  # optax.lookahead takes none.
    if params is None:
      raise ValueError('lookahead_on_params needs params')
    both, inner_state = wrapped.update(
        updates, state.inner, optax.LookaheadParams(params, state.slow))
    slow = optax.apply_updates(state.slow, both.slow)
    return both.fast, SlowWeightsState(inner_state, slow)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


class SnooState(NamedTuple):
  """:func:`snoo`'s state.

  Attributes:
    inner: The inner optimizer's state.
    slow: The outer weights (the params at the last outer step).
    momentum: The outer momentum buffer.
    count: Inner steps done.
  """

  inner: Any
  slow: Any
  momentum: Any
  count: jax.Array


def snoo(inner: optax.GradientTransformation, every: int = SNOO_K,
         learning_rate: float = SNOO_RATE, momentum: float = SNOO_MOMENTUM
         ) -> optax.GradientTransformationExtraArgs:
  r"""Step-K Nesterov outer optimizer around an inner optimizer.

  Every ``every`` inner steps the displacement of the weights since the last
  outer step, :math:`\Delta = w_{fast} - w_{slow}`, is treated as an
  (ascent) pseudo-gradient of a Nesterov SGD step on the outer weights:

  .. math::
    m \leftarrow \mu m + \Delta, \qquad
    w_{slow} \leftarrow w_{slow} + \eta (\Delta + \mu m),

  and the inner optimizer continues from :math:`w_{slow}` (its state kept).

  Args:
    inner: The inner optimizer.
    every: K, inner steps per outer step.
    learning_rate: The outer rate :math:`\eta` (1 with :math:`\mu = 0` is
      the inner optimizer alone).
    momentum: The outer Nesterov momentum :math:`\mu`.

  Returns:
    The transformation; :func:`slow_weights` reads the outer weights.

  References:
    Kallusky et al., `SNOO: Step-K Nesterov Outer Optimizer
    <https://arxiv.org/abs/2510.15830>`_, 2025.
  """
  if isinstance(every, bool) or not isinstance(every, int) or every < 1:
    raise ValueError(f'every must be a positive int, got {every!r}')
  inner = optax.with_extra_args_support(inner)

  def init_fn(params):
    return SnooState(inner.init(params), jax.tree.map(jnp.copy, params),
                     jax.tree.map(jnp.zeros_like, params),
                     jnp.zeros([], jnp.int32))

  def update_fn(updates, state, params=None, **extra_args):
    if params is None:
      raise ValueError('snoo needs params')
    updates, inner_state = inner.update(updates, state.inner, params,
                                        **extra_args)
    fast = optax.apply_updates(params, updates)
    outer = (state.count + 1) % every == 0

    def step(u, w, f, s, m):
      delta = f - s
      m_new = momentum * m + delta
      s_new = s + learning_rate * (delta + momentum * m_new)
      return (jnp.where(outer, (s_new - w).astype(u.dtype), u),
              jnp.where(outer, s_new.astype(s.dtype), s),
              jnp.where(outer, m_new.astype(m.dtype), m))

    out = jax.tree.map(step, updates, params, fast, state.slow,
                       state.momentum)
    pick = lambda i: jax.tree.map(lambda _, o: o[i], updates, out)  # pylint: disable=unnecessary-lambda-assignment
    return pick(0), SnooState(inner_state, pick(1), pick(2),
                              state.count + 1)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def slow_weights(opt_state: Any, params: Any) -> Any:
  """The slow weights of a :func:`lookahead_on_params` or :func:`snoo`."""
  del params
  if isinstance(opt_state, (SlowWeightsState, SnooState)):
    return opt_state.slow
  raise TypeError(f'no slow weights in {type(opt_state).__name__}')


def schedule_free_params(opt_state: Any, params: Any) -> Any:
  """``schedule_free_eval_params`` (the params a schedule-free run is
  evaluated at)."""
  return optax.contrib.schedule_free_eval_params(opt_state, params)


@dataclasses.dataclass(frozen=True)
class Peer:
  """A peer method.

  Attributes:
    name: Its benchmark method name.
    make: ``(optimizer, learning_rate, steps) -> transformation``: the
      optimizer from the task's optimizer name (``'adam'`` or ``'adamw'``),
      the peer's peak rate and the budget.
    eval_params: ``(opt_state, params) -> params`` to evaluate, or None for
      the params themselves.
    decay_from: The fraction of the budget after which the rate decays
      (``<forecaster>+<schedule>`` methods jump before it), or None.
  """

  name: str
  make: Callable[[str, float, int], optax.GradientTransformation]
  eval_params: Optional[Callable[[Any, Any], Any]] = None
  decay_from: Optional[float] = None


def _base(optimizer: str, rate: Any) -> optax.GradientTransformation:
  from optax_nowcast.lab import tasks  # pylint: disable=g-import-not-at-top
  return tasks.OPTIMIZERS[optimizer](rate)


def _schedule_free(optimizer: str, rate: float, steps: int
                   ) -> optax.GradientTransformation:
  if optimizer not in _WEIGHT_DECAY:
    raise ValueError(f'sf-adamw replaces adam or adamw, not {optimizer!r}')
  return optax.contrib.schedule_free_adamw(
      rate, warmup_steps=max(1, int(SF_WARMUP * steps)),
      weight_decay=_WEIGHT_DECAY[optimizer])


PEERS: dict[str, Peer] = {p.name: p for p in (
    Peer('adam-cosine', lambda o, r, n: _base(
        o, optax.cosine_decay_schedule(r, n)), decay_from=0.5),
    Peer('adam-wsd', lambda o, r, n: _base(o, wsd_schedule(r, n)),
         decay_from=1 - WSD_DECAY),
    Peer('sf-adamw', _schedule_free, schedule_free_params),
    Peer('lookahead', lambda o, r, n: lookahead_on_params(_base(o, r)),
         slow_weights),
    Peer('snoo', lambda o, r, n: snoo(_base(o, r)), slow_weights),
)}

#: Each peer's tuned peak rate per task, as a multiple of the task's tuned
#: Adam rate (``optax-nowcast tune --task T --method P``, reports in
#: ``results/lr_sweep/<task>.<peer>.md``). A peer not listed here takes the
#: best rate of its saved sweep, if any (``runner.peer_factor``).
TUNED: dict[tuple[str, str], float] = {
    ('digits-mlp', 'adam-cosine'): 1.0,
    ('digits-mlp', 'adam-wsd'): 1.0,
    ('digits-mlp', 'lookahead'): 0.25,
    ('digits-mlp', 'sf-adamw'): 2.0,
    ('digits-mlp', 'snoo'): 1.0,
    ('fmnist-cnn16', 'adam-cosine'): 2.0,
    ('fmnist-cnn16', 'adam-wsd'): 1.0,
    ('fmnist-cnn16', 'sf-adamw'): 4.0,
    ('fmnist-cnn32', 'adam-cosine'): 1.0,
    ('fmnist-cnn32', 'adam-wsd'): 1.0,
    ('fmnist-cnn32', 'sf-adamw'): 4.0,
    ('mnist-cnn', 'adam-cosine'): 1.0,
    ('mnist-cnn', 'adam-wsd'): 1.0,
    ('mnist-cnn', 'lookahead'): 2.0,
    ('mnist-cnn', 'sf-adamw'): 8.0,
    ('mnist-cnn', 'snoo'): 2.0,
    ('mnist-mlp', 'adam-cosine'): 2.0,
    ('mnist-mlp', 'adam-wsd'): 0.5,
    ('mnist-mlp', 'lookahead'): 2.0,
    ('mnist-mlp', 'sf-adamw'): 2.0,
    ('mnist-mlp', 'snoo'): 1.0,
    ('shakespeare-charlm', 'adam-cosine'): 1.0,
    ('shakespeare-charlm', 'adam-wsd'): 1.0,
    ('shakespeare-charlm', 'sf-adamw'): 4.0,
    ('teacher-mlp', 'adam-cosine'): 16.0,
    ('teacher-mlp', 'sf-adamw'): 16.0,
}
