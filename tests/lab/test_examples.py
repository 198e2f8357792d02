"""The examples in examples/ train, print per-epoch metrics and jump on time."""

import importlib.util
import pathlib
import sys

import pytest

# End-to-end (subprocesses or training runs): .ci/run runs them after the
# quick suite; `pytest -m slow` runs them alone.
pytestmark = pytest.mark.slow

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / 'examples'


def load_example(name: str):
  """Imports examples/<name>.py (registered, so that dataclasses work)."""
  spec = importlib.util.spec_from_file_location(
      f'_example_{name}', EXAMPLES / f'{name}.py')
  module = importlib.util.module_from_spec(spec)
  sys.modules[spec.name] = module
  spec.loader.exec_module(module)
  return module


@pytest.mark.parametrize(
    'name', ['nnx_digits', 'linen_trainstate_digits', 'optax_loop_digits'])
def test_example_learns_and_jumps_once_after_the_fifth_epoch(name, capsys):
  # 1438 train images in batches of 128: 11 steps per epoch, one record per
  # epoch, a jump every 5 records, so 6 epochs make exactly one jump, at the
  # end of epoch 5 (step 55).
  result = load_example(name).main(
      ['--epochs', '6', '--batch-size', '128', '--seed', '0'])
  assert result['steps'] == 66
  assert result['jumps'] == 1
  assert result['test_accuracy'] > 0.5  # chance is 0.1
  lines = [l for l in capsys.readouterr().out.splitlines() if 'epoch' in l]
  assert len(lines) == 6
  assert all('test accuracy' in l for l in lines)
  jumps = [l.split('nowcast jumps ')[1].split()[0] for l in lines]
  assert jumps == ['0', '0', '0', '0', '1', '1']
  if name != 'linen_trainstate_digits':  # TrainState passes no value_fn
    # The one jump was checked: one candidate won.
    assert sum(result['selected']) == 1
