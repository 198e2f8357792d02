"""The shipped forecasters: load offline, verify checksums, say how to fix."""

import os
import pathlib
import shutil
import subprocess
import sys

import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optax_nowcast as onc
from optax_nowcast.forecasters import _io
from optax_nowcast.forecasters import _registry

# These tests check the blind jumps themselves, so they let them run to the
# end of the run (nowcast asks for an end, or for value_fn-checked jumps).
JUMP_TO_THE_END = 2**31 - 1

NAMES = ('wnn', 'introspection', 'multihorizon')


# (Seconds of compiling: the slow suite, to keep the quick one under 6 min.)
@pytest.mark.slow
@pytest.mark.parametrize('name', NAMES)
def test_load_returns_a_forecaster_that_plugs_into_nowcast(name):
  fc = onc.forecasters.load(name)
  assert isinstance(fc, onc.forecasters.Forecaster)
  assert fc.name == name
  if name != 'introspection':
    tx = onc.nowcast(fc, record_every=1, jump_every=5,
                     last_jump_step=JUMP_TO_THE_END)
    steps = 5
  else:
    tx = onc.nowcast(fc, schedule=onc.schedules.introspection([10]))
    steps = 10
  params = {'w': jnp.linspace(-0.1, 0.1, 12).reshape(3, 4),
            'b': jnp.zeros(4)}
  state = tx.init(params)
  for _ in range(steps):
    updates, state = tx.update(
        jax_tree_full(params, 1e-3), state, params)
    params = optax.apply_updates(params, updates)
  assert int(state.jumps) == 1
  for leaf in params.values():
    assert np.all(np.isfinite(np.asarray(leaf)))


def jax_tree_full(tree, value):
  return {k: jnp.full_like(v, value) for k, v in tree.items()}


@pytest.mark.parametrize('name', NAMES)
def test_manifest_records_config_validation_and_command(name):
  manifest = _io.read_manifest(_io.shipped_root() / name)
  assert manifest['kind'] == name
  assert manifest['command'].startswith('optax-nowcast train-forecaster')
  table = manifest.get('validation_l1') or manifest[
      'validation_l1_per_horizon']
  assert {name, 'last', 'linear'} <= set(table)
  assert manifest['checksums']


def _copy(name, tmp_path):
  dst = tmp_path / name
  shutil.copytree(_io.shipped_root() / name, dst)
  return dst


def test_tampered_checkpoint_names_the_file_and_how_to_restore(tmp_path):
  ckpt = _copy('wnn', tmp_path)
  victim = sorted(p for p in (ckpt / 'weights').rglob('*') if p.is_file()
                  and p.stat().st_size > 0)[0]
  data = bytearray(victim.read_bytes())
  data[len(data) // 2] ^= 0xFF
  victim.write_bytes(bytes(data))
  with pytest.raises(ValueError, match='does not match its checksum') as e:
    onc.forecasters.load_from(ckpt)
  assert victim.name in str(e.value) and 'Restore it' in str(e.value)


def test_truncated_or_missing_checkpoint_file_is_reported(tmp_path):
  ckpt = _copy('wnn', tmp_path)
  victim = sorted(p for p in (ckpt / 'weights').rglob('*') if p.is_file()
                  and p.stat().st_size > 0)[0]
  victim.write_bytes(victim.read_bytes()[:-1])
  with pytest.raises(ValueError, match='does not match its checksum'):
    onc.forecasters.load_from(ckpt)
  victim.unlink()
  with pytest.raises(FileNotFoundError, match='is missing'):
    onc.forecasters.load_from(ckpt)
  (ckpt / 'manifest.json').unlink()
  with pytest.raises(FileNotFoundError, match='manifest.json is missing'):
    onc.forecasters.load_from(ckpt)


def test_shipped_are_the_registered_forecasters_with_a_checkpoint():
  # SHIPPED is derived from the registry and the wheel's checkpoints/: every
  # checkpoint there is a registered forecaster's, and load knows it.
  with_manifest = {p.name for p in _io.shipped_root().iterdir()
                   if (p / _io.MANIFEST).is_file()}
  assert set(_io.SHIPPED) == with_manifest
  assert set(_io.SHIPPED) <= set(_registry.names())
  assert list(_io.SHIPPED) == sorted(_io.SHIPPED)


def test_unknown_name_lists_the_known_ones():
  with pytest.raises(ValueError, match=r"name must be one of \['introspection', 'multihorizon', 'nino', 'nino-mlp', 'wnn'\]"):
    onc.forecasters.load('nosuch')


@pytest.mark.slow
def test_loads_from_the_installed_wheel_in_another_directory(tmp_path):
  # A fresh interpreter in an empty directory, without this source tree on
  # its path, imports whatever optax-nowcast pip installed.
  env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
  code = ('import optax_nowcast as onc, pathlib;'
          'import optax_nowcast.forecasters._io as io;'
          'print(io.shipped_root());'
          '[onc.forecasters.load(n) for n in io.SHIPPED];'
          'print("loaded", pathlib.Path(onc.__file__).parent)')
  out = subprocess.run([sys.executable, '-c', code], cwd=tmp_path, env=env,
                       capture_output=True, text=True, check=False)
  if "No module named 'optax_nowcast'" in out.stderr:
    pytest.skip('optax-nowcast is not pip-installed here (CI installs it;'
                ' `pip install .` to run this test)')
  assert out.returncode == 0, out.stderr
  root, loaded = out.stdout.strip().splitlines()
  package = pathlib.Path(loaded.split(' ', 1)[1])
  assert pathlib.Path(root).is_relative_to(package), (root, package)
