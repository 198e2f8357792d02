"""docs/api.rst documents every public name, and only names that exist.

The reference lists its entries by hand (autodoc directives under a
``currentmodule``); this keeps it true when a forecaster, schedule or guard
is added or renamed.
"""

import inspect
import pathlib
import re
import types

import pytest

import optax_nowcast
from optax_nowcast import forecasters
from optax_nowcast import guards
from optax_nowcast import schedules

API = pathlib.Path(__file__).parents[2] / 'docs' / 'api.rst'
MODULES = (optax_nowcast, forecasters, schedules, guards)


def _documented() -> set[tuple[str, str]]:
  """``(module, name)`` of every ``auto*`` directive of the reference."""
  module, out = 'optax_nowcast', set()
  for line in API.read_text().splitlines():
    current = re.match(r'\.\. currentmodule:: (\S+)', line)
    if current:
      module = current.group(1)
    entry = re.match(r'\.\. auto(function|class|data):: (\S+)', line)
    if entry:
      out.add((module, entry.group(2)))
  return out


def _public(module: types.ModuleType) -> set[str]:
  """``__all__`` less submodules, or the public names the module defines."""
  names = getattr(module, '__all__', None)
  if names is None:
    names = [n for n, v in vars(module).items() if not n.startswith('_')
             and getattr(v, '__module__', None) == module.__name__]
  return {n for n in names
          if not inspect.ismodule(getattr(module, n))}


@pytest.mark.parametrize('module', MODULES, ids=lambda m: m.__name__)
def test_every_public_name_is_in_the_api_reference(module):
  documented = {n for m, n in _documented() if m == module.__name__}
  missing = sorted(_public(module) - documented)
  assert not missing, f'{API} lacks {module.__name__}: {missing}'


def test_every_documented_name_exists():
  gone = sorted(f'{m}.{n}' for m, n in _documented()
                if not hasattr(__import__(m, fromlist=['_']), n))
  assert not gone, f'{API} documents names that do not exist: {gone}'
