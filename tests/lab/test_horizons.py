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


def _trajectory(flat, label='dense', stats=None, task='synthetic'):
  meta = {'task': task, 'snapshot_steps': list(range(len(flat))),
          'leaves': {'w': {'shape': [flat.shape[1]], 'label': label}}}
  return trajectories.Trajectory(
      meta, {'w': flat}, {'w': np.arange(flat.shape[1])},
      {} if stats is None else {'w': stats})


def test_samples_are_scaled_by_the_leaf_window_and_carry_every_horizon():
  # Scalar c at snapshot i: a + b i, a line per scalar.
  rng = np.random.default_rng(0)
  a, b = rng.normal(size=6), rng.normal(size=6)
  flat = a[None, :] + b[None, :] * np.arange(100)[:, None]
  got = horizons.cut_leaf(flat, None, spacing=3, count=500, window=5,
                          horizons=40, rng=np.random.default_rng(1))
  windows, changes = got
  assert windows.shape == (500, 5) and changes.shape == (500, 40)
  # On a line, the k-th change is k times the last step of the window.
  step = windows[:, -1] - windows[:, -2]
  inside = np.isfinite(changes)
  expect = step[:, None] * np.arange(1, 41)[None, :]
  np.testing.assert_allclose(changes[inside], expect[inside], rtol=1e-4,
                             atol=1e-4)
  # Past the end of the run: NaN; horizon 1 always exists.
  assert inside[:, 0].all() and not inside[:, -1].all()
  # Scaled windows: each sample's leaf window has mean 0 and std 1, so the
  # scaled values are small whatever the weights' units.
  assert np.abs(windows).max() < 10


def test_leaf_statistics_from_stored_stats_equal_those_of_the_scalars():
  rng = np.random.default_rng(0)
  flat = rng.normal(size=(30, 50)) * 3 + 7
  stats = np.stack([flat.mean(1), flat.std(1)], 1)
  rows = np.array([[0, 2, 4, 6, 8], [5, 6, 7, 8, 9]])
  m1, s1 = horizons._window_stats(flat, stats, rows)
  m2, s2 = horizons._window_stats(flat, None, rows)
  np.testing.assert_allclose(m1, m2, rtol=1e-10)
  np.testing.assert_allclose(s1, s2, rtol=1e-10)
  np.testing.assert_allclose(m2[0], flat[rows[0]].mean())
  np.testing.assert_allclose(s2[0], flat[rows[0]].std())


def test_cut_tags_label_task_and_spacing_and_skips_short_runs():
  flat = np.cumsum(np.random.default_rng(0).normal(size=(25, 4)), 0)
  s = horizons.cut(_trajectory(flat, 'norm'), spacings=(1, 4, 8),
                   per_leaf=10, window=5, horizons=40,
                   rng=np.random.default_rng(0))
  # Spacing 8 needs 5 * 8 = 40 > 25 snapshots (horizon 1 included): none.
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
    parts.append(horizons.cut(_trajectory(flat, task=f't{seed}'),
                              spacings=(1, 2), per_leaf=800, window=5,
                              horizons=8, rng=rng))
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


@pytest.mark.slow
def test_train_forecaster_saves_a_checkpoint_that_loads(tmp_path):
  rng = np.random.default_rng(0)
  root = tmp_path / 'trajs'
  for task in ('a', 'b'):
    flat = np.cumsum(rng.normal(size=(60, 20)), 0).astype(np.float32)
    run = root / f'{task}_run'
    run.mkdir(parents=True)
    np.savez(run / 'snapshots.npz', w=flat)
    (run / 'meta.json').write_text(json.dumps({
        'format': 1, 'task': task, 'snapshot_steps': list(range(60)),
        'leaves': {'w': {'shape': [20], 'label': 'dense'}}}))
  config = horizons.FitConfig(steps=200, batch_size=64, chunk=100)
  manifest = horizons.train_forecaster(
      root, tmp_path / 'ckpt', holdout=['b'], config=config, horizon=7,
      per_leaf=50, spacings=(1, 2), progress=False, command='test')
  table = manifest['validation_l1_per_horizon']
  assert set(table) == {'multihorizon', 'last', 'linear', 'wnn'}
  f = onc.forecasters.load_from(tmp_path / 'ckpt')
  assert f.name == 'multihorizon' and f.horizon == 7.0
  assert f.leaf_scale is not None
