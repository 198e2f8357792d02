"""Forecasters: map each scalar weight's recent history to its future value.

A :class:`Forecaster` is data (its weights) plus a pure per-scalar function;
:func:`optax_nowcast.nowcast` vmaps it over every weight on jump steps.
"""

from optax_nowcast.forecasters._base import Forecaster
from optax_nowcast.forecasters._base import LABELS
from optax_nowcast.forecasters._curve_fit import last
from optax_nowcast.forecasters._curve_fit import linear
from optax_nowcast.forecasters._curve_fit import polyfit_coefficients
from optax_nowcast.forecasters._curve_fit import quadratic

__all__ = (
    'Forecaster',
    'LABELS',
    'last',
    'linear',
    'polyfit_coefficients',
    'quadratic',
)
