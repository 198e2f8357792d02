r"""Loss-checked jumps: try the forecast at a few step sizes, keep the best.

On a jump step of :func:`optax_nowcast.nowcast` whose ``update`` receives a
loss function of the params as the extra argument ``value_fn`` (optax's
convention, as in ``optax.scale_by_zoom_linesearch``), the jump does not go
blindly to the forecast :math:`\hat p`. With the step's would-be params
:math:`p_n` and the step sizes :math:`s_1, \dots, s_K`, it evaluates

.. math::
  L_0 = \text{value\_fn}(p_n), \qquad
  L_k = \text{value\_fn}\bigl(p_n + s_k (\hat p - p_n)\bigr)

one candidate after another (``lax.map``, so only one candidate's params are
alive at a time) and moves to the candidate of least loss; it stays at
:math:`p_n` (no jump) unless that loss is finite and strictly below a finite
:math:`L_0`. A jump therefore never raises ``value_fn`` above not jumping,
so a run may end on any step.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from optax_nowcast import _validation

#: The step sizes tried by default: a quarter, half, the whole forecast
#: displacement, and twice it.
DEFAULT_SELECT = (0.25, 0.5, 1.0, 2.0)


def check_step_sizes(select: Optional[Sequence[float]]
                     ) -> Optional[tuple[float, ...]]:
  """``select`` as a tuple of distinct positive finite floats, or ``None``."""
  if select is None:
    return None
  if isinstance(select, (str, bytes)) or not isinstance(
      select, (list, tuple, np.ndarray)):
    raise ValueError(
        'select must be a sequence of step sizes (fractions of the forecast'
        f' displacement, e.g. (0.5, 1.0, 2.0)) or None, got {select!r}')
  sizes = tuple(_validation.positive_float('select', s) for s in select)
  if not sizes:
    raise ValueError('select must not be empty (use None to not select),'
                     ' got ()')
  if len(set(sizes)) != len(sizes):
    raise ValueError(f'select must not repeat a step size, got {sizes}')
  return sizes


def choose(value_fn: Callable[[Any], Any], candidate: Callable[[jax.Array],
                                                                 Any],
           step_sizes: Sequence[float]) -> jax.Array:
  r"""The index of the chosen candidate: 0 for no jump, ``k`` for ``s_k``.

  Args:
    value_fn: The loss of a params tree, a real scalar.
    candidate: ``scale -> params``: the params ``p_n + scale (p_hat - p_n)``
      (``scale`` a float32 scalar; ``0`` gives ``p_n``).
    step_sizes: The step sizes :math:`s_1, \dots, s_K`.

  Returns:
    An int32 scalar in ``[0, K]``.
  """

  def loss(scale):
    value = value_fn(candidate(scale))
    if not hasattr(value, 'dtype') and not isinstance(value, float):
      got = type(value).__name__
    elif jnp.shape(value) != () or not jnp.issubdtype(
        jnp.result_type(value), jnp.floating):
      got = f'{jnp.result_type(value)}{list(jnp.shape(value))}'
    else:
      return jnp.asarray(value, jnp.float32)
    raise ValueError(
        f'value_fn must return the loss as a real scalar, got {got}; return'
        ' only the loss (not (loss, aux))')

  scales = jnp.asarray((0.0,) + tuple(step_sizes), jnp.float32)
  losses = jax.lax.map(loss, scales)
  stay = losses[0]
  losses = jnp.where(jnp.isfinite(losses), losses, jnp.inf)
  best = jnp.argmin(losses).astype(jnp.int32)
  better = jnp.isfinite(stay) & (losses[best] < stay)
  return jnp.where(better, best, 0).astype(jnp.int32)


def lookahead(
    loss_fn: Callable[[Any], Any],
    *,
    steps: int,
    learning_rate: float,
    eval_fn: Optional[Callable[[Any], Any]] = None,
) -> Callable[[Any], jax.Array]:
  r"""A ``value_fn`` that judges params after a few steps of sign descent.

  A jump's forecast can raise the loss at once and still pay: the
  per-scalar forecasts of a layer lose the layer's co-adaptation, and a few
  optimizer steps restore it, below where not jumping gets
  (``docs/checked_jumps.md``). A checked jump that compares the losses at
  the candidates right away then never jumps. Pass this instead of the bare
  loss: each candidate :math:`p` (no jump included) is first moved by
  :math:`m` steps of sign descent on ``loss_fn``, a stand-in for Adam's
  first steps,

  .. math::
    p_0 = p, \qquad
    p_{k+1} = p_k - \eta \, \operatorname{sign}\bigl(\nabla
      \text{loss\_fn}(p_k)\bigr), \qquad
    \text{value}(p) = \text{eval\_fn}(p_m),

  and judged there. The jump still goes to the candidate itself, not to
  :math:`p_m`: the look-ahead only decides. It costs :math:`m` gradients
  and one evaluation per candidate, on jump steps only.

  Example::

    value_fn = onc.lookahead(lambda p: loss(p, batch), steps=20,
                             learning_rate=1e-3,
                             eval_fn=lambda p: loss(p, other_batch))
    updates, state = tx.update(grads, state, params, value_fn=value_fn)

  Args:
    loss_fn: The loss of a params tree (a real scalar), differentiated for
      the look-ahead steps, e.g. the step's minibatch loss.
    steps: :math:`m`, the look-ahead steps (>= 0; 0 judges right away).
    learning_rate: :math:`\eta`, e.g. the inner optimizer's learning rate
      (Adam's first steps move each weight by about it).
    eval_fn: The loss judged after the steps (default ``loss_fn``); another
      minibatch keeps the look-ahead from judging what it just fitted. Draw
      it from your training stream inside the step, e.g. a second batch
      sampled with its own key (``jax.random.fold_in(other_key, step)``,
      as the benchmark's ``tasks.train`` does) or the next batch of your
      loader passed into the step; it is evaluated on jump steps only, and
      it need not be held-out data.

  Returns:
    ``value_fn(params) -> float32 scalar``.
  """
  steps = _validation.non_negative_int('steps', steps)
  rate = _validation.positive_float('learning_rate', learning_rate)
  judge = loss_fn if eval_fn is None else eval_fn
  grad = jax.grad(lambda p: jnp.asarray(loss_fn(p), jnp.float32))

  def descend(params, _):
    g = grad(params)
    return jax.tree.map(
        lambda p, d: (p - rate * jnp.sign(d)).astype(p.dtype), params, g), None

  def value_fn(params):
    moved, _ = jax.lax.scan(descend, params, None, length=steps)
    return jnp.asarray(judge(moved), jnp.float32)

  return value_fn
