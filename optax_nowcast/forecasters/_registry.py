"""The registry of learned forecasters: one module each, one line here.

A learned forecaster's module owns everything about it — its network, its
constants, how training samples are cut from a weight trajectory and the
loss it is fitted with — and describes itself by a module-level
:class:`Learned` named ``LEARNED``. Checkpoints (``_io.py``), meta-training
and the command line (``optax_nowcast.lab``) read that description and never
branch on a forecaster's name.

Adding a forecaster: write ``optax_nowcast/forecasters/_<name>.py`` with its
factory and ``LEARNED = Learned(...)``, and add one line to :data:`MODULES`.
Modules are imported on first use, so ``import optax_nowcast`` stays free of
Flax. Everything else is derived from :data:`MODULES`: the public factory
``onc.forecasters.<name>`` (:func:`factory_name`: ``'-'`` becomes ``'_'``),
the shipped checkpoints ``forecasters.load`` knows (those of
:data:`MODULES` with a directory in the wheel's ``checkpoints/``), the lab's
benchmark and the contract battery.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, NamedTuple, Optional

import jax
import numpy as np

from optax_nowcast.forecasters._base import Forecaster

#: Name -> module of every learned forecaster.
MODULES = {
    'wnn': 'optax_nowcast.forecasters._wnn',
    'introspection': 'optax_nowcast.forecasters._introspection',
    'multihorizon': 'optax_nowcast.forecasters._multihorizon',
    'nino-mlp': 'optax_nowcast.forecasters._nino_mlp',
    'nino': 'optax_nowcast.forecasters._nino',
}


class Learned(NamedTuple):
  """What checkpoints and meta-training need to know of a learned forecaster.

  Attributes:
    name: The registry name, also the checkpoint's ``kind``.
    make: The factory ``make(weights=None, *, key=None, **config)`` that
      returns the :class:`Forecaster` (fresh weights from ``key`` when
      ``weights`` is None).
    init_weights: ``key -> weights``: fresh weights (a pytree of arrays).
    apply_batch: ``(weights, windows (N, W), label) -> (N,)`` forecasts in
      weight units, differentiable in ``weights``.
    loss: ``(weights, windows (N, W), targets (N,), label) -> scalar``: the
      training loss of a batch of one label, in the forecaster's own units.
    penalty: ``weights -> scalar``: a regulariser added once per step.
    labels: The label kinds trained as separate pools (each with its own
      network), or ``None`` to train all samples as one pool.
    periodic: Whether the forecaster is made for the periodic schedule:
      then its samples are cut at several record spacings and a horizon,
      and its checkpoint stores that ``horizon`` for ``make``.
    window_times: ``horizon -> (times (W,), target)``: where a sample's
      inputs and target sit in time, relative to the newest input (any
      unit); the lab fits its ``linear`` baseline through them.
    cut_samples: ``(flat, *, rng, count, record_every, horizon) -> (windows,
      targets)``: ``count`` samples from ``flat``, the ``(snapshots,
      scalars)`` trajectory of one label kind of one run (snapshots evenly
      spaced), or ``None`` when the run is too short.
    trainer: ``None`` for a forecaster meta-trained from single-target
      samples by the fields above (``optax_nowcast.lab.meta.train``);
      else the lab module that meta-trains it its own way (its
      ``train_forecaster`` function), and the sample fields above may be
      ``None``: e.g. ``multihorizon``, whose samples are scaled per leaf and
      carry every horizon.
  """

  name: str
  make: Callable[..., Forecaster]
  init_weights: Callable[[jax.Array], Any]
  apply_batch: Optional[Callable[[Any, jax.Array, str], jax.Array]]
  loss: Optional[Callable[[Any, jax.Array, jax.Array, str], jax.Array]]
  penalty: Optional[Callable[[Any], jax.Array]]
  labels: Optional[tuple[str, ...]]
  periodic: bool
  window_times: Optional[Callable[[Optional[float]],
                                  tuple[np.ndarray, float]]]
  cut_samples: Optional[
      Callable[..., Optional[tuple[np.ndarray, np.ndarray]]]]
  trainer: Optional[str] = None


def names() -> tuple[str, ...]:
  """The names of the registered learned forecasters."""
  return tuple(MODULES)


def factory_name(name: str) -> str:
  """The public factory of ``name`` in ``onc.forecasters``: ``nino-mlp`` ->
  ``nino_mlp``; its module defines it under that name."""
  return name.replace('-', '_')


def get(name: str) -> Learned:
  """The :class:`Learned` description of ``name`` (imports its module)."""
  if not isinstance(name, str) or name not in MODULES:
    raise ValueError(
        f'name must be one of {sorted(MODULES)} (the learned forecasters),'
        f' got {name!r}')
  return importlib.import_module(MODULES[name]).LEARNED
