"""Test collection: which parameterizations run in the quick suite.

The contract battery (``tests/lib/test_contract.py``) runs every property
over every forecaster. ``nino``'s graph network compiles several seconds a
configuration; in the quick suite it runs its plain configuration (periodic,
no guard, the params' dtype, blind) through every property, and its other
configurations (guard, bfloat16 history, checked) in the slow suite, which
``.ci/run`` runs too.
"""

import pytest

QUICK_NINO = '_nino_periodic_noguard_paramdtype'


def pytest_collection_modifyitems(items):
  for item in items:
    name = item.name
    if ('test_contract.py' in item.nodeid and '_nino_' in name
        and not name.endswith(QUICK_NINO)):
      item.add_marker(pytest.mark.slow)
