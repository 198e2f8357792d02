"""A nowcast run resumed from an orbax checkpoint in a fresh process is exact.

examples/resume_with_orbax.py with its defaults: 6 epochs of 44 steps (batch
32, 264 steps), one record per epoch, a jump every 5 records (at step 220) and
a checkpoint every 50 steps. A first process stops after step 160, as if
preempted; its latest checkpoint is step 150, after 3 records: the history is
partly filled and the jump comes after the restore.
"""

import functools
import importlib.util
import os
import pathlib
import shutil
import subprocess
import sys

import jax
import numpy as np
import optax
import pytest

import optax_nowcast as onc

# End-to-end (subprocesses or training runs): .ci/run runs them after the
# quick suite; `pytest -m slow` runs them alone.
pytestmark = pytest.mark.slow

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = ROOT / 'examples' / 'resume_with_orbax.py'
STEPS_PER_EPOCH = 44  # 1438 train images // 32
COUNTERS = ('count', 'records', 'jumps', 'skipped', 'nonfinite')


def load_example():
  """Imports the example (registered, so that dataclasses work)."""
  spec = importlib.util.spec_from_file_location('_example_resume', SCRIPT)
  module = importlib.util.module_from_spec(spec)
  sys.modules[spec.name] = module
  spec.loader.exec_module(module)
  return module


example = load_example()


def run_script(*args: str) -> str:
  """Runs the example in a fresh Python process; returns its stdout."""
  path = os.environ.get('PYTHONPATH')
  env = dict(os.environ,
             PYTHONPATH=str(ROOT) + (os.pathsep + path if path else ''))
  proc = subprocess.run([sys.executable, str(SCRIPT), *args], cwd=ROOT,
                        env=env, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-4000:]
  return proc.stdout


def abstract_state(hidden=64, tx=None):
  tx = example.make_tx(STEPS_PER_EPOCH) if tx is None else tx
  return jax.eval_shape(
      functools.partial(example.init_state, example.MLP(hidden), tx, 0))


@pytest.fixture(scope='module')
def preempted(tmp_path_factory) -> pathlib.Path:
  """The checkpoint directory of a run stopped after step 160."""
  ckpt_dir = tmp_path_factory.mktemp('preempted') / 'ckpt'
  out = run_script('--ckpt-dir', str(ckpt_dir), '--stop-at', '160')
  assert 'stopped after step 160' in out
  return ckpt_dir


def restore_latest(ckpt_dir, target):
  manager = example.checkpoint_manager(ckpt_dir, save_every=50)
  try:
    step = manager.latest_step()
    return step, example.restore(manager, step, target)
  finally:
    manager.close()


def test_restore_gives_the_state_types_back_mid_history(preempted):
  target = abstract_state()
  step, state = restore_latest(preempted, target)
  assert step == 150
  assert jax.tree.structure(state) == jax.tree.structure(target)
  (adam, _), nowcast = state['opt_state']
  assert isinstance(adam, optax.ScaleByAdamState)
  assert isinstance(nowcast, onc.NowcastState)
  assert int(adam.count) == 150
  # 3 of the 4 history slots filled, no jump yet.
  assert [int(getattr(nowcast, f)) for f in COUNTERS] == [150, 3, 0, 0, 0]


def test_resumed_run_is_bit_identical_to_an_uninterrupted_run(
    preempted, tmp_path):
  ckpt_dir = tmp_path / 'ckpt'
  shutil.copytree(preempted, ckpt_dir)  # the resumed run saves there too
  out = run_script('--ckpt-dir', str(ckpt_dir), '--out',
                   str(tmp_path / 'resumed.npz'))
  assert 'restored step 150: 3 records since the last jump, 0 jumps' in out
  resumed = np.load(tmp_path / 'resumed.npz')
  assert int(resumed['start_step']) == 150

  full = example.main([])
  assert full['start_step'] == 0
  params = example.flatten(full['params'])
  assert sorted(params) == sorted(
      k.removeprefix('params/') for k in resumed.files
      if k.startswith('params/'))
  for path, value in params.items():
    np.testing.assert_array_equal(resumed[f'params/{path}'], value,
                                  err_msg=path)
  # One jump, at step 220, after the restore; one record since.
  assert [full[f] for f in COUNTERS] == [264, 1, 1, 0, 0]
  assert [int(resumed[f]) for f in COUNTERS] == [full[f] for f in COUNTERS]


@pytest.mark.parametrize('hidden,tx,first_difference', [
    (32, None, r'opt_state/0/0/mu/Dense_0/bias has shape \(64,\) in the'
     r' checkpoint and \(32,\) in the state'),
    (64, optax.adam(1e-3), r'opt_state/0/0/count has shape \(\) in the'
     r' checkpoint and \(absent\) in the state'),
], ids=['another_width', 'no_nowcast'])
def test_restoring_into_another_model_raises_a_clear_error(
    preempted, hidden, tx, first_difference):
  with pytest.raises(ValueError, match=(
      r'checkpoint .*150 does not match the model: \d+ arrays differ, e.g. '
      + first_difference)):
    restore_latest(preempted, abstract_state(hidden, tx))


def test_nowcast_update_rejects_params_of_another_model(preempted):
  _, state = restore_latest(preempted, abstract_state())
  restored = state['opt_state'][1]
  other = jax.tree.map(lambda a: np.zeros(a.shape, a.dtype),
                       abstract_state(hidden=32)['params'])
  with pytest.raises(ValueError, match='params do not match the nowcast state'):
    example.make_nowcast(STEPS_PER_EPOCH).update(other, restored, other)
