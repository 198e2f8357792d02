"""A clear error for an optimizer state that does not belong to the params."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax


def _describe(leaf: Any) -> str:
  dtype = jnp.result_type(leaf) if leaf is not None else None
  return f'{dtype}{list(jnp.shape(leaf))}'


def check_state(tx: optax.GradientTransformation, opt_state: Any,
                params: Any) -> None:
  """Checks that ``opt_state`` is a state of ``tx`` for params like ``params``.

  A state restored from a checkpoint of another model (or saved before the
  model changed) otherwise fails deep inside the first ``tx.update`` with a
  shape error of whichever transformation of a chain comes first (Adam's
  moments, usually), not naming the cause. Call this after restoring; it
  compares the state against ``jax.eval_shape(tx.init, params)`` (no
  computation, no device transfer) and names the first leaf that differs.

  Examples:
    >>> import jax.numpy as jnp
    >>> import optax
    >>> import optax_nowcast as onc
    >>> tx = optax.chain(optax.adam(1e-3),
    ...                  onc.nowcast(onc.forecasters.linear(3, 3),
    ...                              record_every=2, jump_every=3))
    >>> state = tx.init({'w': jnp.zeros(4)})
    >>> onc.check_state(tx, state, {'w': jnp.zeros(4)})
    >>> onc.check_state(tx, state, {'w': jnp.zeros(5)})
    Traceback (most recent call last):
    ...
    ValueError: opt_state does not match params (restored from a checkpoint of another model?): at opt_state[0][0].mu['w'] the state has float32[4], tx.init(params) gives float32[5]. Restore the checkpoint saved for this model, or start from tx.init(params).

  Args:
    tx: The optimizer, nowcast chain included.
    opt_state: The state to check, e.g. restored with orbax-checkpoint.
    params: The params it will be used with.

  Raises:
    ValueError: if the state's tree structure, or a leaf's shape or dtype,
      differs from what ``tx.init(params)`` gives.
  """
  advice = ('Restore the checkpoint saved for this model, or start from'
            ' tx.init(params).')
  head = ('opt_state does not match params (restored from a checkpoint of'
          ' another model?)')
  expected = jax.eval_shape(tx.init, params)
  want, want_def = jax.tree_util.tree_flatten_with_path(expected)
  got, got_def = jax.tree_util.tree_flatten_with_path(opt_state)
  if want_def != got_def:
    want_keys = [jax.tree_util.keystr(k) for k, _ in want]
    got_keys = [jax.tree_util.keystr(k) for k, _ in got]
    missing = [k for k in want_keys if k not in set(got_keys)]
    extra = [k for k in got_keys if k not in set(want_keys)]
    detail = []
    if missing:
      detail.append(f'missing opt_state{missing[0]}'
                    + (f' and {len(missing) - 1} more' if len(missing) > 1
                       else ''))
    if extra:
      detail.append(f'unexpected opt_state{extra[0]}'
                    + (f' and {len(extra) - 1} more' if len(extra) > 1
                       else ''))
    if not detail:  # Same paths, other containers (e.g. a dict for a tuple).
      detail.append(f'tx.init(params) gives the structure {want_def}, the'
                    f' state has {got_def}')
    raise ValueError(f'{head}: {"; ".join(detail)}. {advice}')
  for (path, w), (_, g) in zip(want, got):
    if (jnp.shape(g) != w.shape
        or (g is not None and jnp.result_type(g) != w.dtype)):
      raise ValueError(
          f'{head}: at opt_state{jax.tree_util.keystr(path)} the state has'
          f' {_describe(g)}, tx.init(params) gives {_describe(w)}. {advice}')
