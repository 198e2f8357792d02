"""Samples cut from trajectories: many spacings and horizons from one run."""

import numpy as np
import pytest

from optax_nowcast.forecasters import _registry as registry
from optax_nowcast.lab.meta import trajectories
from optax_nowcast.lab.meta import windows


def _synthetic(num_snapshots=60, stats=True):
  # Scalar c of leaf 'w' is 1000 i + c at snapshot i; leaf 'b' is 0.5 i + c.
  w = (1000.0 * np.arange(num_snapshots)[:, None]
       + np.arange(7)[None, :])
  b = 0.5 * np.arange(num_snapshots)[:, None] + np.arange(3)[None, :]
  meta = {'task': 'synthetic', 'snapshot_every': 15,
          'snapshot_steps': list(range(0, 15 * num_snapshots, 15)),
          'leaves': {'w': {'shape': [7, 1], 'label': 'dense',
                           'kind': 'dense'},
                     'b': {'shape': [3], 'label': 'bias', 'kind': 'norm'}}}
  leaf_stats = {}
  if stats:
    # Whole-leaf statistics as if the leaves were bigger than what is kept:
    # mean i, std 2 for 'w'; mean 0, std 1 for 'b'.
    i = np.arange(num_snapshots, dtype=np.float64)
    leaf_stats = {'w': np.stack([i, np.full_like(i, 2.0)], axis=1),
                  'b': np.stack([0 * i, 1 + 0 * i], axis=1)}
  return trajectories.Trajectory(
      meta, {'w': w, 'b': b}, {'w': np.arange(7), 'b': np.arange(3)},
      leaf_stats)


def test_multi_windows_are_spacing_apart_with_every_horizon_after_them():
  s = windows.cut_multi(_synthetic(), rng=np.random.default_rng(0),
                        spacings=(1, 3), horizons=(1, 2, 10), per_kind=300)
  dense = s.kinds == 'dense'
  start, col = s.windows[dense, 0] // 1000, s.windows[dense, 0] % 1000
  spacing = s.spacing[dense]
  np.testing.assert_array_equal(
      s.windows[dense],
      1000 * (start[:, None] + spacing[:, None] * np.arange(5)) + col[:, None])
  ahead = start[:, None] + spacing[:, None] * (4 + np.array([1, 2, 10]))
  want = np.where(ahead < 60, 1000 * ahead + col[:, None], np.nan)
  np.testing.assert_array_equal(s.targets[dense], want)
  np.testing.assert_array_equal(s.horizons, [1, 2, 10])
  assert set(s.spacing.tolist()) == {1, 3}
  np.testing.assert_array_equal(s.record_steps, 15 * s.spacing)
  assert np.isnan(s.targets[:, 2]).any()  # some starts too late for h=10
  assert not np.isnan(s.targets[:, 0]).any()  # the smallest always fits
  assert len(s) == 2 * 2 * 300  # kinds x spacings x per_kind


def test_multi_samples_carry_the_whole_leafs_window_statistics():
  s = windows.cut_multi(_synthetic(), rng=np.random.default_rng(1),
                        spacings=(2,), horizons=(1,), per_kind=200)
  dense = s.kinds == 'dense'
  start = s.windows[dense, 0] // 1000
  # Snapshot means start + 2k (k < 5), each std 2: mean start + 4, and
  # variance 4 + var(start + 2k) = 4 + 8.
  np.testing.assert_allclose(s.leaf_mean[dense], start + 4)
  np.testing.assert_allclose(s.leaf_std[dense], np.sqrt(12.0), rtol=1e-6)
  np.testing.assert_allclose(s.leaf_mean[~dense], 0.0)
  np.testing.assert_allclose(s.leaf_std[~dense], 1.0, rtol=1e-6)


def test_multi_without_leaf_stats_uses_the_kept_scalars():
  s = windows.cut_multi(_synthetic(stats=False), rng=np.random.default_rng(2),
                        spacings=(1,), horizons=(1,), per_kind=50)
  norm = s.kinds == 'norm'
  # 'b' keeps all its scalars, 0.5 i + c for c = 0, 1, 2: over snapshots
  # i0 .. i0 + 4 their variance is var(0.5 i) + var(c) = 0.5 + 2 / 3.
  np.testing.assert_allclose(s.leaf_std[norm], np.sqrt(0.5 + 2 / 3),
                             rtol=1e-5)


def test_multi_skips_spacings_too_long_for_the_run():
  s = windows.cut_multi(_synthetic(num_snapshots=30),
                        rng=np.random.default_rng(0), spacings=(1, 4, 8),
                        horizons=(1, 40), per_kind=10)
  # The window and smallest horizon span (4 + 1) spacings: 40 > 29 >= 20.
  assert set(s.spacing.tolist()) == {1, 4}


def test_multi_drops_windows_of_a_diverged_run():
  t = _synthetic()
  t.snapshots['w'][30:] = np.nan
  s = windows.cut_multi(t, rng=np.random.default_rng(0), spacings=(1,),
                        horizons=(1,), per_kind=500)
  assert np.isfinite(s.windows).all()
  assert (s.kinds == 'dense').sum() < 500


def test_multi_rejects_non_positive_horizons():
  with pytest.raises(ValueError, match='horizons must be positive'):
    windows.cut_multi(_synthetic(), rng=np.random.default_rng(0),
                      horizons=(0, 1))


def test_wnn_cut_drops_samples_of_a_diverged_run():
  t = _synthetic()
  t.snapshots['w'][30:] = np.inf
  s = windows.cut(registry.get('wnn'), t, record_every=1, horizon=2,
                  per_label=400, rng=np.random.default_rng(0))
  assert np.isfinite(s.windows).all() and np.isfinite(s.targets).all()
  assert 0 < (s.labels == 'dense').sum() < 400
