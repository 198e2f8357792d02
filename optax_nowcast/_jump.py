r"""Where the jump happens: forecast every scalar, and the updates that go there.

On a jump step of :func:`optax_nowcast.nowcast`, with the inner optimizer's
updates :math:`u` and the would-be params :math:`p_n = p + u`, each leaf's
updates become

.. math::
  u' = u + (\hat p - p_n), \qquad
  \hat p = f\bigl(h_{1}, \dots, h_{W-1}, p_n\bigr)

elementwise, where :math:`h` are the leaf's older history entries, :math:`f`
the forecaster's per-scalar function and :math:`W` its window; so that
``optax.apply_updates(p, u')`` lands on the forecast :math:`\hat p`
(:func:`forecast_delta` computes :math:`\hat p - p_n`, :func:`apply_delta`
adds it, possibly scaled: see ``_select.py``). A forecast that is not
finite leaves its scalar at :math:`p_n`. A rollback is the updates that
move the params back to a kept copy.
"""

from __future__ import annotations

from typing import Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from optax_nowcast.forecasters._base import Forecaster


def _vmapped(fn, rank: int):
  """``fn`` of a ``(W,)`` window, mapped over ``rank`` axes after the first."""
  for _ in range(rank):
    fn = jax.vmap(fn, in_axes=1)
  return fn


def forecast_leaf(
    forecaster: Forecaster,
    window: jax.Array,
    times: jax.Array,
    target: jax.Array,
    label: str,
    chunk_size: Optional[int] = None,
    spec: Optional[tuple] = None,
) -> jax.Array:
  """Applies the per-scalar forecaster to every element of ``window[:, ...]``.

  ``window`` is ``(W, *leaf_shape)`` float32. The forecaster is vmapped once
  per leaf axis, which keeps the leaf's layout (and sharding) unchanged. With
  ``chunk_size``, a larger leaf is mapped over in chunks (``lax.map``) so
  that the forecaster's intermediates stay near ``chunk_size`` elements:
  with ``spec`` (the leaf's partition spec on explicit mesh axes, one entry
  per axis) along the longest axis that is not sharded, so that no device
  sends its shard to another; without it, the leaf is flattened (fine on
  one device, a gather for a sharded leaf).

  Args:
    forecaster: The forecaster.
    window: The leaf's window, oldest entry first, the newest last.
    times: ``(W,)`` steps of the entries relative to the newest.
    target: The step to forecast, relative to the newest entry.
    label: The leaf's kind (static).
    chunk_size: See above; ``None`` maps over the whole leaf at once.
    spec: See above.

  Returns:
    The float32 forecast, shaped like the leaf.
  """

  def one(values):
    return forecaster.apply(forecaster.weights, values, times, target, label)

  shape = window.shape[1:]
  size = int(np.prod(shape, dtype=np.int64))
  if chunk_size is None or size <= chunk_size:
    return _vmapped(one, len(shape))(window)
  if spec is None:
    flat = window.reshape(window.shape[0], size).T
    return jax.lax.map(one, flat, batch_size=chunk_size).reshape(shape)
  free = [a for a, s in enumerate(spec) if s is None]
  if not free:  # every axis sharded: each device maps over its shard
    return _vmapped(one, len(shape))(window)
  axis = max(free, key=lambda a: shape[a])
  per_slice = size // shape[axis]
  moved = jnp.moveaxis(window, 1 + axis, 0)  # (shape[axis], W, rest...)
  out = jax.lax.map(_vmapped(one, len(shape) - 1), moved,
                    batch_size=max(1, chunk_size // per_slice))
  return jnp.moveaxis(out, 0, axis)


def forecast_delta(
    forecaster: Forecaster,
    newest: jax.Array,
    older: Sequence[jax.Array],
    times: jax.Array,
    target: jax.Array,
    label: str,
    chunk_size: Optional[int] = None,
    spec: Optional[tuple] = None,
    valid: Optional[jax.Array] = None,
) -> tuple[jax.Array, jax.Array]:
  r"""The displacement :math:`\hat p - p_n` of one leaf, and its bad count.

  Args:
    forecaster: The forecaster.
    newest: The leaf's would-be params :math:`p_n` (the newest entry).
    older: The ``W - 1`` older window entries, oldest first (any float
      dtype; forecasts are computed in float32).
    times: ``(W,)`` steps of the entries relative to the newest.
    target: The step to forecast, relative to the newest entry.
    label: The leaf's kind (static).
    chunk_size: See :func:`forecast_leaf`.
    spec: See :func:`forecast_leaf`.
    valid: A bool array shaped like ``newest``: only its ``True`` scalars
      are counted in ``nonfinite`` (a chunk's padding or the part another
      chunk already counted). ``None``: all.

  Returns:
    ``(delta, nonfinite)``: the float32 displacement (complex64 for a
    complex leaf), ``0`` where the forecast was not finite, and the int32
    number of such scalars. A complex leaf is two real trajectories: its
    real and imaginary parts are forecast apart (and counted apart).
  """
  if jnp.iscomplexobj(newest):
    (re, re_bad), (im, im_bad) = [
        forecast_delta(forecaster, part(newest), [part(e) for e in older],
                       times, target, label, chunk_size, spec, valid)
        for part in (jnp.real, jnp.imag)
    ]
    return jax.lax.complex(re, im), re_bad + im_bad
  newest = newest.astype(jnp.float32)
  window = jnp.stack([e.astype(jnp.float32) for e in older] + [newest])
  forecast = forecast_leaf(forecaster, window, times, target, label,
                           chunk_size, spec)
  finite = jnp.isfinite(forecast)
  delta = jnp.where(finite, forecast - newest, 0.0)
  bad = ~finite if valid is None else ~finite & valid
  return delta, jnp.sum(bad, dtype=jnp.int32)


def leaf_scale(forecaster: Forecaster, newest: jax.Array,
               older: Sequence[jax.Array]) -> tuple[jax.Array, jax.Array]:
  """The forecaster's ``(shift, scale)`` of one leaf's whole window.

  Computed in float32 (complex64 for a complex leaf) from the ``W - 1``
  older entries and the newest, by ``forecaster.leaf_scale``. A shift that
  is not finite becomes ``0``, a scale that is not finite and positive
  ``1``.
  """
  compute = _compute_dtype(newest)
  window = jnp.stack([e.astype(compute) for e in older]
                     + [newest.astype(compute)])
  shift, scale = forecaster.leaf_scale(window)
  return sanitized(jnp.asarray(shift, compute), scale)


def sanitized(shift: jax.Array,
              scale: jax.Array) -> tuple[jax.Array, jax.Array]:
  """A leaf scaling that cannot spread a NaN over the leaf: a shift that
  is not finite becomes ``0``, a scale that is not finite and positive
  ``1``, so the forecasts of the scalars whose own window is finite stay
  finite."""
  scale = jnp.asarray(scale, jnp.float32)
  shift = jnp.where(jnp.isfinite(shift), shift, jnp.zeros_like(shift))
  scale = jnp.where(jnp.isfinite(scale) & (scale > 0), scale, 1.0)
  return shift, scale


def scaled(x: jax.Array, shift: jax.Array, scale: jax.Array) -> jax.Array:
  """``(x - shift) / scale`` in float32 (complex64 for a complex ``x``)."""
  return (x.astype(_compute_dtype(x)) - shift) / scale


def _compute_dtype(x: jax.Array):
  return jnp.complex64 if jnp.iscomplexobj(x) else jnp.float32


def apply_delta(update: jax.Array, delta: jax.Array,
                scale: Optional[jax.Array] = None) -> jax.Array:
  """``update + scale * delta`` in ``update``'s dtype (no scale: ``1``).

  The sum is computed in float32 (or the update's wider real dtype), the real
  and imaginary parts of a complex leaf apart.
  """
  if jnp.iscomplexobj(update):
    parts = [apply_delta(part(update), part(delta), scale)
             for part in (jnp.real, jnp.imag)]
    return jax.lax.complex(*parts).astype(update.dtype)
  compute = jnp.promote_types(update.dtype, jnp.float32)
  step = delta.astype(compute)
  if scale is not None:
    step = scale.astype(compute) * step
  return (update.astype(compute) + step).astype(update.dtype)


def rollback_update(param: jax.Array, kept: jax.Array,
                    update: jax.Array) -> jax.Array:
  """The update, in ``update``'s dtype, that moves ``param`` to ``kept``."""
  compute = jnp.promote_types(update.dtype, jnp.float32)
  back = kept.astype(compute) - param.astype(compute)
  return back.astype(update.dtype)
