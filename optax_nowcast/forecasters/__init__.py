"""Forecasters: map each scalar weight's recent history to its future value.

A :class:`Forecaster` is data (its weights) plus a pure per-scalar function;
:func:`optax_nowcast.nowcast` vmaps it over every weight on jump steps.

- Curve fits: :func:`linear`, :func:`quadratic`, and :func:`last` (no jump).
- Learned, one per entry of the registry (``_registry.MODULES``):
  :func:`wnn` (Jang et al., 2023), :func:`introspection` (Sinha et al.,
  2017), :func:`multihorizon` (NiNo's per-scalar variant, Knyazev et al.,
  2025; scaled per leaf, many horizons at once), :func:`nino_mlp` (NiNo's
  graph-free model) and :func:`nino` (NiNo's graph network), freshly
  initialised or from given weights; :func:`load` returns the shipped
  pretrained ones, :func:`load_from` one saved with :func:`save`.

The learned forecasters and the checkpoint functions are imported on first
use, so that ``import optax_nowcast`` loads neither Flax nor orbax.
"""

import importlib
from typing import Any

from optax_nowcast.forecasters._base import Forecaster
from optax_nowcast.forecasters._base import LABELS
from optax_nowcast.forecasters._base import Standardize
from optax_nowcast.forecasters._base import Stored
from optax_nowcast.forecasters._neural_graph import LeafInfo
from optax_nowcast.forecasters._curve_fit import last
from optax_nowcast.forecasters._curve_fit import linear
from optax_nowcast.forecasters._curve_fit import quadratic
from optax_nowcast.forecasters import _registry

# Public name -> the module that defines it, imported on first access: the
# registry's learned forecasters, and the checkpoint functions.
_LAZY = {
    **{_registry.factory_name(name): module
       for name, module in _registry.MODULES.items()},
    'load': 'optax_nowcast.forecasters._io',
    'load_from': 'optax_nowcast.forecasters._io',
    'save': 'optax_nowcast.forecasters._io',
}

__all__ = (
    'Forecaster',
    'Standardize',
    'Stored',
    'LABELS',
    'LeafInfo',
    'last',
    'linear',
    'quadratic',
) + tuple(_LAZY)


def __getattr__(name: str) -> Any:
  if name in _LAZY:
    module = importlib.import_module(_LAZY[name])
    value = getattr(module, name)
    globals()[name] = value  # later accesses skip this function
    return value
  raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


def __dir__() -> list[str]:
  return sorted(set(globals()) | set(__all__))
