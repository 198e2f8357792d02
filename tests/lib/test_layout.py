"""The library stands alone: light to import, never reaching into the lab."""

import ast
import importlib
import pathlib
import subprocess
import sys

import pytest

import optax_nowcast as onc
from optax_nowcast.forecasters import _registry

PACKAGE = pathlib.Path(onc.__file__).parent
LIBRARY_FILES = sorted(p for p in PACKAGE.rglob('*.py')
                       if 'lab' not in p.relative_to(PACKAGE).parts)


def test_import_loads_neither_flax_nor_orbax_nor_the_lab():
  code = ('import sys, optax_nowcast;'
          'print(sorted({m.split(".")[0] for m in sys.modules}))')
  out = subprocess.run([sys.executable, '-c', code], capture_output=True,
                       text=True, check=True)
  loaded = set(ast.literal_eval(out.stdout.strip()))
  heavy = {'orbax', 'tensorstore', 'matplotlib', 'flax', 'sklearn', 'tqdm'}
  assert not loaded & heavy, loaded & heavy
  assert 'optax_nowcast.lab' not in out.stdout


@pytest.mark.parametrize('path', LIBRARY_FILES,
                         ids=lambda p: str(p.relative_to(PACKAGE)))
def test_library_modules_never_import_the_lab(path):
  tree = ast.parse(path.read_text())
  for node in ast.walk(tree):
    if isinstance(node, ast.ImportFrom) and node.module:
      names = [node.module] + [f'{node.module}.{a.name}' for a in node.names]
    elif isinstance(node, ast.Import):
      names = [a.name for a in node.names]
    else:
      continue
    assert not any(n.startswith('optax_nowcast.lab') for n in names), (
        f'{path} line {node.lineno} imports the lab')


@pytest.mark.parametrize('name', _registry.names())
def test_every_registered_forecaster_describes_itself(name):
  learned = _registry.get(name)
  assert isinstance(learned, _registry.Learned)
  assert learned.name == name
  forecaster = learned.make()
  assert forecaster.name == name
  assert forecaster.horizon is None or learned.periodic
  # Its public factory, derived from the registry.
  public = _registry.factory_name(name)
  assert public in onc.forecasters.__all__
  assert getattr(onc.forecasters, public) is learned.make


def test_the_registry_rejects_unknown_names():
  with pytest.raises(ValueError, match="name must be one of .*'wnn'"):
    _registry.get('nosuch')


def test_forecasters_exports_what_a_user_calls():
  learned = {_registry.factory_name(name) for name in _registry.names()}
  assert learned >= {'introspection', 'multihorizon', 'nino', 'nino_mlp',
                     'wnn'}
  assert set(onc.forecasters.__all__) == {
      'Forecaster', 'LABELS', 'LeafInfo', 'Standardize', 'Stored', 'last',
      'linear', 'load', 'load_from', 'quadratic', 'save'} | learned
  for name in onc.forecasters.__all__:
    assert getattr(onc.forecasters, name) is not None
  with pytest.raises(AttributeError):
    onc.forecasters.wnn_apply_batch  # pylint: disable=pointless-statement
  importlib.reload(onc.forecasters)  # lazy names resolve again after reload
  assert onc.forecasters.load is not None
