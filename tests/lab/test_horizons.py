"""Meta-training the multi-horizon forecaster: samples, loss, fit, report."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import optax_nowcast as onc
from optax_nowcast.forecasters import _multihorizon as mh
from optax_nowcast.lab.meta import horizons
from optax_nowcast.lab.meta import trajectories
from optax_nowcast.lab.meta import windows


def _trajectory(flat, label='dense', stats=None, task='synthetic'):
  meta = {'task': task, 'snapshot_steps': list(range(len(flat))),
          'leaves': {'w': {'shape': [flat.shape[1]], 'label': label}}}
  return trajectories.Trajectory(
      meta, {'w': flat}, {'w': np.arange(flat.shape[1])},
      {} if stats is None else {'w': stats})


def _cut(trajectory, spacings=(1,), per_kind=500, num_horizons=40, seed=1):
  return horizons.scaled(windows.cut_multi(
      trajectory, rng=np.random.default_rng(seed), spacings=spacings,
      horizons=range(1, num_horizons + 1), per_kind=per_kind))


def test_samples_are_scaled_by_the_leaf_window_and_carry_every_horizon():
  # Scalar c at snapshot i: a + b i, a line per scalar.
  rng = np.random.default_rng(0)
  a, b = rng.normal(size=6), rng.normal(size=6)
  flat = a[None, :] + b[None, :] * np.arange(100)[:, None]
  s = _cut(_trajectory(flat), spacings=(3,))
  assert s.windows.shape == (500, 5) and s.changes.shape == (500, 40)
  # On a line, the k-th change is k times the last step of the window.
  step = s.windows[:, -1] - s.windows[:, -2]
  inside = np.isfinite(s.changes)
  expect = step[:, None] * np.arange(1, 41)[None, :]
  np.testing.assert_allclose(s.changes[inside], expect[inside], rtol=1e-4,
                             atol=1e-4)
  # Past the end of the run: NaN; horizon 1 always exists.
  assert inside[:, 0].all() and not inside[:, -1].all()
  # Scaled by the leaf's window statistics: small whatever the units.
  assert np.abs(s.windows).max() < 10
  assert set(s.spacings) == {3}


def test_scaling_uses_the_leafs_window_statistics():
  multi = windows.MultiSamples(
      windows=np.array([[1, 2, 3, 4, 5], [2, 2, 2, 2, 2]], np.float32),
      targets=np.array([[7, np.nan], [3, 4]], np.float32),
      horizons=np.array([1, 2]), spacing=np.array([2, 4], np.int32),
      record_steps=np.array([20, 40], np.int32),
      leaf_mean=np.array([3, 2], np.float32),
      leaf_std=np.array([2, 0], np.float32),
      kinds=np.array(['conv', 'lstm']), tasks=np.array(['t', 't']))
  s = horizons.scaled(multi)
  np.testing.assert_array_equal(s.windows, [[-1, -0.5, 0, 0.5, 1],
                                            [0, 0, 0, 0, 0]])
  # (7 - 3) / 2 - 1 = 1; a leaf without spread is scaled by 1.
  np.testing.assert_array_equal(s.changes, [[1, np.nan], [1, 2]])
  assert s.labels.tolist() == [mh.label_index('conv'), mh.label_index('x')]
  assert s.spacings.tolist() == [2, 4]


def test_each_kind_gets_its_embedding_row():
  flat = np.cumsum(np.random.default_rng(0).normal(size=(25, 4)), 0)
  s = _cut(_trajectory(flat, 'norm'), spacings=(1, 4, 8), per_kind=10)
  # Spacing 8 needs (5 - 1 + 1) * 8 = 40 > 25 snapshots: none.
  assert s.summary()['spacings'] == {'1': 10, '4': 10}
  assert set(s.labels) == {mh.label_index('norm')}
  assert set(s.tasks) == {'synthetic'}


def test_l1_counts_only_the_horizons_a_sample_has():
  weights = mh.init_weights(jax.random.key(0), horizons=3)  # predicts 0
  changes = jnp.array([[1.0, jnp.nan, jnp.nan], [-2.0, 4.0, jnp.nan]])
  loss = horizons.l1(weights, jnp.zeros((2, 5)), changes,
                     jnp.zeros(2, jnp.int32))
  assert float(loss) == pytest.approx((1 + 2 + 4) / 3)


def test_fit_learns_a_drift_that_last_and_linear_miss():
  # Every leaf moves on a curve that accelerates: the change at horizon k is
  # 0.1 k^2 in leaf units — linear underestimates it, last ignores it.
  rng = np.random.default_rng(0)
  parts = []
  for seed in range(2):
    t = np.arange(80)[:, None]
    flat = rng.normal(size=(1, 30)) + 0.002 * t ** 2 * (1 + 0.1 * rng.normal(
        size=(1, 30)))
    parts.append(_cut(_trajectory(flat, task=f't{seed}'), spacings=(1, 2),
                      per_kind=800, num_horizons=8, seed=seed))
  train, valid = parts
  config = horizons.FitConfig(steps=600, batch_size=256, chunk=100,
                              width=32, depth=2)
  weights, losses, _ = horizons.fit(train, config, progress=False)
  assert losses[-1] < losses[0]
  table = horizons.validate(weights, valid)
  assert set(table) == {'multihorizon', 'last', 'linear'}
  assert len(table['last']) == 8
  assert table['multihorizon'][7] < 0.5 * table['last'][7], table
  assert table['multihorizon'][7] < table['linear'][7], table


def _toy_trajectories(root):
  rng = np.random.default_rng(0)
  for task in ('a', 'b'):
    flat = np.cumsum(rng.normal(size=(60, 20)), 0).astype(np.float32)
    run = root / f'{task}_run'
    run.mkdir(parents=True)
    np.savez(run / 'snapshots.npz', w=flat)
    (run / 'meta.json').write_text(json.dumps({
        'format': 1, 'task': task, 'snapshot_steps': list(range(60)),
        'leaves': {'w': {'shape': [20], 'label': 'dense'}}}))


@pytest.mark.slow
@pytest.mark.parametrize('flags, horizon', [
    ([], mh.multihorizon().horizon), (['--horizon', '3'], 3.0)])
def test_the_command_saves_the_forecasters_own_horizon_unless_given(
    tmp_path, flags, horizon):
  from optax_nowcast.lab import cli  # pylint: disable=g-import-not-at-top
  _toy_trajectories(tmp_path / 'trajs')
  assert cli.main([
      'train-forecaster', '--kind', 'multihorizon', '--trajectories',
      str(tmp_path / 'trajs'), '--holdout', 'b', '--steps', '20',
      '--batch-size', '32', '--per-label', '50', '--no-progress',
      '--out', str(tmp_path / 'ckpt'), *flags]) == 0
  assert onc.forecasters.load_from(tmp_path / 'ckpt').horizon == horizon


@pytest.mark.slow
def test_train_forecaster_saves_a_checkpoint_that_loads(tmp_path):
  root = tmp_path / 'trajs'
  _toy_trajectories(root)
  config = horizons.FitConfig(steps=200, batch_size=64, chunk=100)
  manifest = horizons.train_forecaster(
      root, tmp_path / 'ckpt', holdout=['b'], config=config, horizon=7,
      per_kind=100, spacings=(1, 2), progress=False, command='test')
  table = manifest['validation_l1_per_horizon']
  assert set(table) == {'multihorizon', 'last', 'linear', 'wnn'}
  f = onc.forecasters.load_from(tmp_path / 'ckpt')
  assert f.name == 'multihorizon' and f.horizon == 7.0
  assert f.leaf_scale is not None
