"""The forecaster interface: weights plus a pure per-scalar function."""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp

#: The leaf kinds that :func:`optax_nowcast.nowcast` labels by default.
LABELS = ('conv', 'dense', 'bias', 'norm', 'embedding', 'scalar')

ForecastFn = Callable[
    [Any, jax.Array, jax.Array, jax.Array, str], jax.Array
]

LeafScaleFn = Callable[[jax.Array], tuple[jax.Array, jax.Array]]

LeavesFn = Callable[[Any, Sequence[Sequence[Any]], jax.Array,
                     jax.Array, Sequence[Any]], list[jax.Array]]


class Stored(NamedTuple):
  r"""A window entry as it is stored, to be read in place: the entry is
  ``combine(*arrays)``, elementwise.

  :func:`optax_nowcast.nowcast` hands a whole-leaf forecaster its windows
  as these: an older state is a select among the history slots by a traced
  index, the newest :math:`p + u`. Computing either whole makes a copy of
  the leaf; a forecaster that reads a leaf a block at a time calls
  ``take(f)`` instead, with ``f`` a slice or a gather of one array:
  ``combine(*[f(a) for a in arrays])`` reads only the block.

  Attributes:
    arrays: The stored arrays, all of the entry's shape.
    combine: Elementwise: the entry from the arrays (or from blocks of them).
  """

  arrays: tuple
  combine: Callable[..., jax.Array]

  @property
  def shape(self) -> tuple[int, ...]:
    return tuple(jnp.shape(self.arrays[0]))

  def value(self) -> jax.Array:
    """The whole entry (a copy, unless it fuses with its consumer)."""
    return self.combine(*self.arrays)

  def take(self, f: Callable[[jax.Array], jax.Array]) -> jax.Array:
    """``f`` of the entry, reading only what ``f`` reads of each array."""
    return self.combine(*[f(a) for a in self.arrays])


def entry_value(entry: Any) -> jax.Array:
  """A window entry as an array (a :class:`Stored` one computed whole)."""
  return entry.value() if isinstance(entry, Stored) else entry


def entry_take(entry: Any, f: Callable[[jax.Array], jax.Array]) -> jax.Array:
  """``f`` of a window entry, read in place if it is :class:`Stored`."""
  return entry.take(f) if isinstance(entry, Stored) else f(entry)


class Forecaster(NamedTuple):
  r"""A per-scalar weight forecaster: data (its weights) and a pure function.

  ``apply(weights, values, times, target, label)`` maps the history of *one*
  scalar weight to its forecast:

  - ``values``: float32 ``(window,)``, the weight at ``times``, oldest first;
    the last entry is the weight at the current step.
  - ``times``: float32 ``(window,)``, the step of each value relative to the
    current step (so ``times[-1] == 0``).
  - ``target``: float32 scalar, the step to forecast, relative to the current
    step (``horizon * record_every`` for a periodic schedule).
  - ``label``: the static kind of the leaf the scalar belongs to (``'conv'``,
    ``'dense'``, ``'bias'``, ``'norm'``, ``'embedding'``, ``'scalar'`` or a
    user label); a forecaster may
    hold separate weights per label.

  It returns the float32 forecast.

  A forecaster may also scale each leaf as a whole before its scalars are
  forecast (as NiNo does): ``leaf_scale(window)`` maps the whole window of
  one leaf, float32 ``(window, *leaf_shape)`` (complex64 for a complex
  leaf), to a ``(shift, scale)`` pair of scalars (``shift`` complex for a
  complex leaf, ``scale`` real and positive). :func:`optax_nowcast.nowcast`
  computes it once per leaf per jump, passes ``apply`` each scalar's values
  as :math:`(v - \text{shift}) / \text{scale}`, and reads the forecast
  :math:`f` back as :math:`\text{shift} + \text{scale} \cdot f`: ``apply``
  then works in the leaf's units, whatever its magnitude.

  A forecaster is deliberately not callable
  (``optax.inject_hyperparams`` treats callables as schedules); call
  ``f.apply(f.weights, values, times, target, label)``. :func:`optax_nowcast.nowcast` vmaps it over
  every element of every leaf, so ``apply`` never sees more than one scalar.

  Attributes:
    apply: The pure forecasting function described above.
    weights: A pytree of the forecaster's own parameters (``()`` for the
      curve-fit forecasters).
    window: How many history values (including the current one) the forecaster
      reads.
    horizon: The default forecast horizon in record intervals, or ``None`` if
      the forecaster fixes its own target (Introspection).
    name: A short name for reports.
    leaf_scale: ``None`` (the default: ``apply`` sees the raw values), or
      the per-leaf scaling described above.
    horizons: ``None`` for a forecaster of one horizon at a time; else the
      number ``K`` of record intervals it forecasts at once (any target up
      to ``K`` intervals costs the same): a loss-checked jump of
      :func:`optax_nowcast.nowcast` then tries other *horizons* rather
      than other step sizes along one forecast.
    forecast_leaves: ``None`` (the default) for a per-scalar forecaster;
      else a *whole-leaf* function ``forecast_leaves(weights, windows,
      times, targets, infos)`` that forecasts every leaf at once (a graph
      network needs the layers around a weight): ``windows[i]`` the ``W``
      states of leaf ``i`` (oldest first, the last :math:`p_n`, in their
      own dtypes; each an array or a :class:`Stored` entry, to read in
      place: :func:`entry_value`, :func:`entry_take`), ``times`` as for ``apply``, ``targets`` a float32
      ``(T,)`` of steps to forecast, ``infos[i]`` the leaf's static
      :class:`~optax_nowcast.forecasters.LeafInfo` (path, shape, dtype,
      label, its rank in the tree's own order). It returns per leaf the
      float32 ``(T, *shape)`` forecasts (complex64 for a complex leaf;
      non-finite where a weight must stay at :math:`p_n`).
      :func:`optax_nowcast.nowcast` calls it on one device, and on params
      sharded over explicit mesh axes, with the sharded leaves: it must
      keep every weight where it lives (``nino`` runs its network on each
      device's shards under ``jax.shard_map``). Where a leaf's sharding
      is not known while tracing (auto mesh axes) the jump runs ``apply``
      per scalar instead, as for any other forecaster.
  """

  apply: ForecastFn
  weights: Any
  window: int
  horizon: Optional[float]
  name: str
  leaf_scale: Optional[LeafScaleFn] = None
  horizons: Optional[int] = None
  forecast_leaves: Optional[LeavesFn] = None


class Standardize(NamedTuple):
  r"""A ``leaf_scale``: the mean and standard deviation of a leaf's window.

  Over the finite entries :math:`x_i` of the whole ``(W, *leaf_shape)``
  window (:math:`n` of them; non-finite entries are left out, so that a NaN
  in one weight does not spread to its leaf):

  .. math::
    \mu = \frac{1}{n} \sum_i x_i, \qquad
    \sigma = \sqrt{\frac{1}{\max(n - \text{ddof}, 1)}
                   \sum_i |x_i - \mu|^2}, \qquad
    (\text{shift}, \text{scale}) = (\mu, \sigma + \varepsilon),

  with ``scale = 1`` where it is not positive (a leaf without spread).
  Calling it on a window gives that pair, as any ``leaf_scale``. Declared
  this way rather than as a function, :func:`optax_nowcast.nowcast` knows
  the statistics are sums over the entries and accumulates them chunk by
  chunk, read in place from the history (two passes: :math:`n` and the sum,
  then the squares), so that a jump never holds a whole window of a leaf in
  memory (``docs/cost.md``). A complex leaf's deviation is the
  root mean square of the complex distance to the mean.

  Attributes:
    ddof: Subtracted from :math:`n` in the variance's divisor: ``0`` (the
      population deviation) or ``1`` (the unbiased one, as NiNo).
    eps: Added to :math:`\sigma` (NiNo: ``1e-6``).

  Example:
    >>> import jax.numpy as jnp
    >>> from optax_nowcast.forecasters import Standardize
    >>> shift, scale = Standardize()(jnp.array([[1.0, 3.0], [1.0, 3.0]]))
    >>> float(shift), float(scale)
    (2.0, 1.0)
  """

  ddof: int = 0
  eps: float = 0.0

  def __call__(self, window: jax.Array) -> tuple[jax.Array, jax.Array]:
    finite = jnp.isfinite(window)
    count = jnp.sum(finite, dtype=jnp.int32)
    total = jnp.sum(jnp.where(finite, window, jnp.zeros_like(window)))
    mean = total / jnp.maximum(count, 1)
    spread = jnp.where(finite, jnp.abs(window - mean), 0.0)
    return self.finish(count, total, jnp.sum(spread * spread))

  def finish(self, count: jax.Array, total: jax.Array,
             squares: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(shift, scale)`` from the count, sum and squared deviations."""
    mean = total / jnp.maximum(count, 1)
    std = jnp.sqrt(squares / jnp.maximum(count - self.ddof, 1))
    scale = std + self.eps
    return mean, jnp.where(scale > 0, scale, 1.0)
