"""nowcast on params sharded over an 8-device CPU mesh.

The device count of a JAX process is fixed when its backend starts, so the
checks run in a fresh interpreter (tests/lib/_sharded_script.py).
"""

import os
import pathlib
import subprocess
import sys

import pytest

# End-to-end (subprocesses or training runs): .ci/run runs them after the
# quick suite; `pytest -m slow` runs them alone.
pytestmark = pytest.mark.slow

SCRIPT = pathlib.Path(__file__).with_name('_sharded_script.py')


@pytest.mark.parametrize('axis_type', ['explicit', 'auto'])
def test_sharded_history_no_collectives_and_same_numbers_as_one_device(
    axis_type):
  env = dict(os.environ)
  root = str(SCRIPT.parents[2])
  env['PYTHONPATH'] = os.pathsep.join(
      p for p in (root, env.get('PYTHONPATH')) if p)
  proc = subprocess.run(
      [sys.executable, str(SCRIPT), axis_type], capture_output=True, text=True,
      env=env, timeout=1500, check=False)
  assert proc.returncode == 0, proc.stdout + proc.stderr
  assert 'ALL OK' in proc.stdout, proc.stdout + proc.stderr
  assert f'mesh axis type AxisType.{axis_type.capitalize()}' in proc.stdout, (
      proc.stdout)


def test_sharded_training_example_keeps_the_history_sharded():
  example = SCRIPT.parents[2] / 'examples' / 'sharded_digits.py'
  env = dict(os.environ)
  root = str(SCRIPT.parents[2])
  env['PYTHONPATH'] = os.pathsep.join(
      p for p in (root, env.get('PYTHONPATH')) if p)
  proc = subprocess.run(
      [sys.executable, str(example), '--epochs', '6'], capture_output=True,
      text=True, env=env, timeout=1500, check=False)
  assert proc.returncode == 0, proc.stdout + proc.stderr
  out = proc.stdout
  assert '8 devices; history sharded like the params: True' in out
  assert 'after training, history still sharded like the params: True' in out
  # 6 epochs, a record per epoch, a jump every 5 records: one jump.
  assert out.strip().splitlines()[-2].endswith('jumps 1')
