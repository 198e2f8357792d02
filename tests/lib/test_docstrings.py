"""The examples in the public docstrings run and print what they say."""

import doctest

import pytest

import optax_nowcast
from optax_nowcast import _check
from optax_nowcast import _nowcast
from optax_nowcast import guards
from optax_nowcast import schedules
from optax_nowcast.forecasters import _curve_fit
from optax_nowcast.forecasters import _introspection
from optax_nowcast.forecasters import _io
from optax_nowcast.forecasters import _multihorizon
from optax_nowcast.forecasters import _neural_graph
from optax_nowcast.forecasters import _nino
from optax_nowcast.forecasters import _nino_mlp
from optax_nowcast.forecasters import _wnn


@pytest.mark.parametrize('module', [_check, _nowcast, _curve_fit, schedules, guards,
                                    _wnn, _introspection, _io, _multihorizon,
                                    _neural_graph, _nino, _nino_mlp],
                         ids=lambda m: m.__name__)
def test_docstring_examples(module):
  result = doctest.testmod(module, extraglobs={'onc': optax_nowcast},
                           optionflags=doctest.ELLIPSIS)
  assert result.attempted > 0
  assert result.failed == 0
