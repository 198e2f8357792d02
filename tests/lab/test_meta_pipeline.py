"""The meta-training pipeline end to end on the tiny zoo (embedded digits)."""

import json

import numpy as np
import pytest

from optax_nowcast.forecasters import _registry as registry
from optax_nowcast.lab.meta import pipeline
from optax_nowcast.lab.meta import train as train_lib
from optax_nowcast.lab.meta import trajectories
from optax_nowcast.lab.meta import windows
from optax_nowcast.lab.meta import zoo

# End-to-end (subprocesses or training runs): .ci/run runs them after the
# quick suite; `pytest -m slow` runs them alone.
pytestmark = pytest.mark.slow


@pytest.fixture(scope='module')
def trajs(tmp_path_factory):
  root = tmp_path_factory.mktemp('trajs')
  trajectories.collect(zoo.runs('tiny'), root, snapshot_every=11,
                       progress=False)
  return root


def test_trajectories_hold_snapshots_meta_and_eval_curve(trajs):
  runs = trajectories.list_runs(trajs)
  assert len(runs) == len(zoo.runs('tiny'))
  t = trajectories.load_run(runs[0])
  steps = t.meta['snapshot_steps']
  assert steps == list(range(0, 661, 11))
  for path, leaf in t.meta['leaves'].items():
    assert t.snapshots[path].shape[0] == len(steps)
    assert t.snapshots[path].shape[1] == min(np.prod(leaf['shape']), 2048)
  assert len(t.meta['eval_metric']) == len(t.meta['eval_steps'])
  assert max(t.meta['eval_metric']) > 0.5


def test_collect_resumes_without_redoing_finished_runs(trajs):
  before = {p: (p / 'meta.json').stat().st_mtime_ns
            for p in trajectories.list_runs(trajs)}
  (trajs / 'stale.partial').mkdir()
  trajectories.collect(zoo.runs('tiny'), trajs, snapshot_every=11,
                       progress=False)
  after = {p: (p / 'meta.json').stat().st_mtime_ns
           for p in trajectories.list_runs(trajs)}
  assert before == after


def _synthetic(num_snapshots=60, num_scalars=7):
  # The value of scalar c at snapshot i is 1000 i + c: a sample shows where
  # it was cut from.
  flat = (1000.0 * np.arange(num_snapshots)[:, None]
          + np.arange(num_scalars)[None, :])
  meta = {'task': 'synthetic', 'snapshot_steps': list(range(num_snapshots)),
          'leaves': {'w': {'shape': [num_scalars, 1], 'label': 'dense'}}}
  return trajectories.Trajectory(meta, {'w': flat},
                                 {'w': np.arange(num_scalars)})


def test_wnn_windows_are_records_apart_and_target_horizon_ahead():
  s = windows.cut(registry.get('wnn'), _synthetic(), record_every=3,
                  horizon=4, per_label=200, rng=np.random.default_rng(0))
  start, col = s.windows[:, 0] // 1000, s.windows[:, 0] % 1000
  np.testing.assert_array_equal(
      s.windows, 1000 * (start[:, None] + 3 * np.arange(5)) + col[:, None])
  np.testing.assert_array_equal(s.targets, 1000 * (start + 3 * 8) + col)
  assert set(s.labels) == {'dense'}


def test_introspection_samples_read_0_04t_07t_t_and_2t():
  s = windows.cut(registry.get('introspection'), _synthetic(),
                  per_label=300, rng=np.random.default_rng(0))
  t = s.windows[:, 3] // 1000
  assert set(np.unique(t)) <= {10, 20}
  np.testing.assert_array_equal(s.windows[:, 0] // 1000, 0)
  np.testing.assert_array_equal(s.windows[:, 1] // 1000, 4 * t // 10)
  np.testing.assert_array_equal(s.windows[:, 2] // 1000, 7 * t // 10)
  np.testing.assert_array_equal(s.targets // 1000, 2 * t)


@pytest.mark.parametrize('kind', ['wnn', 'introspection'])
def test_trained_forecaster_beats_last_on_held_out_task(trajs, tmp_path,
                                                        kind):
  config = train_lib.TrainConfig(steps=600, batch_size=256, chunk=100,
                                 decay_every=300)
  manifest = pipeline.train_forecaster(
      kind, trajs, tmp_path / kind, holdout=zoo.HOLDOUT['tiny'],
      config=config, per_label=4000, progress=False, command='test')
  l1 = manifest['validation_l1']
  assert l1[kind]['all'] < l1['last']['all'], l1
  saved = json.loads((tmp_path / kind / 'manifest.json').read_text())
  assert saved['kind'] == kind and saved['checksums']
  assert saved['data']['valid']['tasks'] == {
      'digits-mlp-narrow': saved['data']['valid']['total']}


def test_conv3x3_equals_flax_conv():
  import flax.linen as nn  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  from optax_nowcast.lab import tasks  # pylint: disable=g-import-not-at-top
  x = jax.random.normal(jax.random.key(1), (2, 9, 9, 3))
  for strides in (1, 2):
    params = nn.Conv(5, (3, 3), strides=strides).init(
        jax.random.key(2), x)['params']
    want = nn.Conv(5, (3, 3), strides=strides).apply({'params': params}, x)
    got = tasks.Conv3x3(5, strides=strides).apply({'params': params}, x)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
