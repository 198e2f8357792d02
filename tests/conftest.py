"""Test collection: which parameterizations run in the quick suite.

The contract battery (``tests/lib/test_contract.py``) runs every property
over every forecaster. ``nino``'s graph network compiles several seconds a
configuration (and runs slowly without ``jit``), and ``nino-mlp``'s
per-scalar network a few: their configurations run in the slow suite, which
``.ci/run`` runs too; the quick suite checks them inside ``nowcast`` in
``tests/lib/test_nino.py`` and ``tests/lib/test_nino_mlp.py``.
"""

import pytest


def pytest_collection_modifyitems(items):
  for item in items:
    if 'test_contract.py' in item.nodeid and ('_nino_' in item.name
                                              or '_nino-mlp_' in item.name):
      item.add_marker(pytest.mark.slow)
