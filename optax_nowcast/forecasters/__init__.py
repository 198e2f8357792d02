"""Forecasters: map each scalar weight's recent history to its future value.

A :class:`Forecaster` is data (its weights) plus a pure per-scalar function;
:func:`optax_nowcast.nowcast` vmaps it over every weight on jump steps.

- Curve fits: :func:`linear`, :func:`quadratic`, and :func:`last` (no jump).
- Learned: :func:`wnn` (Jang et al., 2023) and :func:`introspection` (Sinha
  et al., 2017), freshly initialised or from given weights; :func:`load`
  returns the shipped pretrained ones.
"""

from optax_nowcast.forecasters._base import Forecaster
from optax_nowcast.forecasters._base import LABELS
from optax_nowcast.forecasters._curve_fit import last
from optax_nowcast.forecasters._curve_fit import linear
from optax_nowcast.forecasters._curve_fit import polyfit_coefficients
from optax_nowcast.forecasters._curve_fit import quadratic
from optax_nowcast.forecasters._introspection import init_introspection_weights
from optax_nowcast.forecasters._introspection import introspection
from optax_nowcast.forecasters._introspection import introspection_apply_batch
from optax_nowcast.forecasters._introspection import IntrospectionNetwork
from optax_nowcast.forecasters._io import load
from optax_nowcast.forecasters._io import load_from
from optax_nowcast.forecasters._io import save
from optax_nowcast.forecasters._wnn import init_wnn_weights
from optax_nowcast.forecasters._wnn import wnn
from optax_nowcast.forecasters._wnn import wnn_apply_batch
from optax_nowcast.forecasters._wnn import wnn_l1_penalty
from optax_nowcast.forecasters._wnn import WNNNetwork

__all__ = (
    'Forecaster',
    'IntrospectionNetwork',
    'LABELS',
    'WNNNetwork',
    'init_introspection_weights',
    'init_wnn_weights',
    'introspection',
    'introspection_apply_batch',
    'last',
    'linear',
    'load',
    'load_from',
    'polyfit_coefficients',
    'quadratic',
    'save',
    'wnn',
    'wnn_apply_batch',
    'wnn_l1_penalty',
)
