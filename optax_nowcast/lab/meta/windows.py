"""Training samples for the forecasters, cut from recorded trajectories.

A sample is the history of one scalar weight (the forecaster's input window)
and its later value (the target), in weight units, with the label kind of its
leaf and the run it came from (so whole tasks can be held out). What a window
is belongs to each forecaster (its module's ``cut_samples``); :func:`cut`
applies it to every label kind of a run.

:func:`cut_multi` cuts forecaster-independent samples for multi-horizon
forecasters: windows at several record spacings (in snapshot intervals),
each with its targets at a whole set of horizons and the statistics of its
leaf over the window, so one corpus serves runs whose records are 50 or 500
steps apart.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional, Sequence

import numpy as np

from optax_nowcast.forecasters import _registry as registry
from optax_nowcast.lab.meta import trajectories as traj_lib


@dataclasses.dataclass
class Samples:
  """Forecaster samples: ``windows (N, W)``, ``targets (N,)`` and tags."""

  windows: np.ndarray
  targets: np.ndarray
  labels: np.ndarray  # (N,) str: the kind of the weight's leaf
  tasks: np.ndarray  # (N,) str: the task of the run it came from

  def __len__(self) -> int:
    return len(self.targets)

  def select(self, mask: np.ndarray) -> 'Samples':
    return Samples(self.windows[mask], self.targets[mask], self.labels[mask],
                   self.tasks[mask])

  def summary(self) -> dict:
    """Counts per label and per task, for manifests."""
    out = {'total': int(len(self))}
    for name, tags in (('labels', self.labels), ('tasks', self.tasks)):
      keys, counts = np.unique(tags, return_counts=True)
      out[name] = {str(k): int(c) for k, c in zip(keys, counts)}
    return out


def concat(parts: Sequence[Samples]) -> Samples:
  parts = [p for p in parts if len(p)]
  if not parts:
    raise ValueError('no samples: are the trajectories too short for the'
                     ' window, record interval and horizon?')
  return Samples(*(np.concatenate([getattr(p, f.name) for p in parts])
                   for f in dataclasses.fields(Samples)))


def split_by_task(samples: Any, holdout: Sequence[str]) -> tuple[Any, Any]:
  """``(train, valid)``: the samples of the ``holdout`` tasks validate.

  ``samples`` is any sample set with ``tasks`` and ``select`` (e.g.
  :class:`Samples`); ``holdout`` must name some but not all of its tasks.
  """
  held = np.isin(samples.tasks, list(holdout))
  if held.all() or not held.any():
    raise ValueError(
        f'holdout {list(holdout)} must name some but not all of the recorded'
        f' tasks {sorted(set(samples.tasks.tolist()))}')
  return samples.select(~held), samples.select(held)


def _flat_by_label(trajectory: traj_lib.Trajectory) -> dict[str, np.ndarray]:
  """(num_snapshots, num_scalars) per label kind ('scalar' joins 'bias')."""
  groups: dict[str, list[np.ndarray]] = {}
  for path, label in trajectory.labels.items():
    label = 'bias' if label == 'scalar' else label
    arr = trajectory.snapshots[path]
    groups.setdefault(label, []).append(arr.reshape(arr.shape[0], -1))
  return {k: np.concatenate(v, axis=1) for k, v in groups.items()}


def cut(learned: registry.Learned, trajectory: traj_lib.Trajectory, *,
        record_every: int = 1, horizon: Optional[int] = None,
        per_label: int = 20_000, rng: np.random.Generator) -> Samples:
  """A learned forecaster's samples from one trajectory, per label kind.

  The forecaster's own ``cut_samples`` decides what a window and a target
  are; this function runs it on each label kind of the run and tags the
  samples.

  Args:
    learned: The forecaster's registry entry.
    trajectory: A recorded run.
    record_every: Snapshots between records (periodic forecasters).
    horizon: Records between the newest window entry and the target
      (periodic forecasters).
    per_label: Samples drawn per label kind.
    rng: Random source.

  Returns:
    The samples (none if the run is too short); samples holding a NaN or an
    infinity (a diverged run) are dropped.
  """
  parts = []
  for label, flat in sorted(_flat_by_label(trajectory).items()):
    cut_ = learned.cut_samples(flat, rng=rng, count=per_label,
                               record_every=record_every, horizon=horizon)
    if cut_ is None:
      continue
    windows, targets = cut_
    finite = np.isfinite(windows).all(axis=1) & np.isfinite(targets)
    windows, targets = windows[finite], targets[finite]
    parts.append(Samples(windows, targets, np.full(len(targets), label),
                         np.full(len(targets), trajectory.meta['task'])))
  return concat(parts) if parts else Samples(
      np.zeros((0, 0), np.float32), np.zeros(0, np.float32),
      np.zeros(0, '<U8'), np.zeros(0, '<U32'))


@dataclasses.dataclass
class MultiSamples:
  """Samples with targets at many horizons, see :func:`cut_multi`.

  Attributes:
    windows: ``(N, W)`` float32 values of one scalar, oldest first, records
      ``spacing`` snapshots apart.
    targets: ``(N, H)`` float32: the scalar ``horizons[j]`` records after the
      newest window entry; NaN where that lies past the run's end.
    horizons: ``(H,)`` int, in records.
    spacing: ``(N,)`` int32: snapshots between records.
    record_steps: ``(N,)`` int32: training steps between records.
    leaf_mean: ``(N,)`` float32: the mean of the scalar's whole leaf over
      the window's snapshots.
    leaf_std: ``(N,)`` float32: the standard deviation of the same.
    kinds: ``(N,)`` str: the kind of the scalar's leaf (``meta['leaves']``
      ``kind``, else ``label``).
    tasks: ``(N,)`` str: the task of the run.
  """

  windows: np.ndarray
  targets: np.ndarray
  horizons: np.ndarray
  spacing: np.ndarray
  record_steps: np.ndarray
  leaf_mean: np.ndarray
  leaf_std: np.ndarray
  kinds: np.ndarray
  tasks: np.ndarray

  def __len__(self) -> int:
    return len(self.windows)


_PER_SAMPLE = ('windows', 'targets', 'spacing', 'record_steps', 'leaf_mean',
               'leaf_std', 'kinds', 'tasks')


def concat_multi(parts: Sequence[MultiSamples]) -> MultiSamples:
  """Joins :func:`cut_multi` samples cut with the same horizons."""
  parts = [p for p in parts if len(p)]
  if not parts:
    raise ValueError('no samples: are the trajectories too short for the'
                     ' window, spacings and horizons?')
  for p in parts[1:]:
    if not np.array_equal(p.horizons, parts[0].horizons):
      raise ValueError(f'samples cut with different horizons:'
                       f' {parts[0].horizons} vs {p.horizons}')
  fields = {f: np.concatenate([getattr(p, f) for p in parts])
            for f in _PER_SAMPLE}
  return MultiSamples(horizons=parts[0].horizons, **fields)


def _leaf_stats(trajectory: traj_lib.Trajectory, path: str) -> np.ndarray:
  """``(snapshots, 2)`` mean and std of a leaf (of its kept scalars for a
  format-1 run, which stored no whole-leaf statistics)."""
  if path in trajectory.stats:
    return trajectory.stats[path].astype(np.float64)
  kept = trajectory.snapshots[path].astype(np.float64)
  return np.stack([kept.mean(axis=1), kept.std(axis=1)], axis=1)


def cut_multi(trajectory: traj_lib.Trajectory, *, rng: np.random.Generator,
              window: int = 5, spacings: Sequence[int] = (1, 2, 4, 8),
              horizons: Sequence[int] = tuple(range(1, 41)),
              per_kind: int = 2000) -> MultiSamples:
  """Multi-horizon samples of one run at several record spacings.

  For each leaf kind and each spacing ``s`` (in snapshots), ``per_kind``
  samples: a scalar drawn uniformly among the kind's kept scalars, a start
  snapshot ``t0`` drawn uniformly among those whose window and smallest
  horizon fit in the run; the window is the scalar at snapshots
  ``t0, t0 + s, ..., t0 + (window - 1) s`` and the target for horizon ``h``
  its value at ``t0 + (window - 1 + h) s`` (NaN past the run's end). The
  leaf's mean and std over the window's snapshots come from the run's
  whole-leaf statistics: with per-snapshot means ``m_i`` and stds ``d_i``,
  ``mean = avg(m_i)`` and ``std**2 = avg(d_i**2 + m_i**2) - mean**2``.
  Samples whose window is not finite (a diverged run) are dropped.

  Args:
    trajectory: A recorded run.
    rng: Random source.
    window: Records per window.
    spacings: Record spacings, in snapshot intervals.
    horizons: Horizons, in records (positive ints).
    per_kind: Samples per leaf kind and spacing.

  Returns:
    The samples (none for spacings whose window and smallest horizon do not
    fit in the run).
  """
  horizons = np.asarray(sorted(set(int(h) for h in horizons)))
  if not len(horizons) or horizons[0] < 1:
    raise ValueError(f'horizons must be positive ints, got {horizons}')
  if window < 1 or any(s < 1 for s in spacings):
    raise ValueError(f'window and spacings must be positive, got {window},'
                     f' {spacings}')
  leaves = trajectory.meta['leaves']
  by_kind: dict[str, list[str]] = {}
  for path in sorted(trajectory.snapshots):
    kind = leaves[path].get('kind', leaves[path]['label'])
    by_kind.setdefault(kind, []).append(path)
  snapshot_every = int(trajectory.meta.get('snapshot_every', 1))
  parts = []
  for kind, paths in sorted(by_kind.items()):
    flat = np.concatenate([trajectory.snapshots[p] for p in paths], axis=1)
    leaf_of = np.concatenate([np.full(trajectory.snapshots[p].shape[1], j)
                              for j, p in enumerate(paths)])
    stats = np.stack([_leaf_stats(trajectory, p) for p in paths])
    num = flat.shape[0]
    for s in spacings:
      starts = num - (window - 1 + horizons[0]) * s
      if starts <= 0:
        continue
      t0 = rng.integers(0, starts, per_kind)
      col = rng.integers(0, flat.shape[1], per_kind)
      at = t0[:, None] + s * np.arange(window)[None, :]
      windows = flat[at, col[:, None]].astype(np.float32)
      ahead = t0[:, None] + s * (window - 1 + horizons)[None, :]
      targets = np.where(ahead < num,
                         flat[np.minimum(ahead, num - 1), col[:, None]],
                         np.nan).astype(np.float32)
      means = stats[leaf_of[col][:, None], at, 0]
      mean = means.mean(axis=1)
      second = (stats[leaf_of[col][:, None], at, 1] ** 2
                + means ** 2).mean(axis=1)
      std = np.sqrt(np.maximum(second - mean ** 2, 0.0))
      keep = np.isfinite(windows).all(axis=1)
      n = int(keep.sum())
      parts.append(MultiSamples(
          windows[keep], targets[keep], horizons,
          np.full(n, s, np.int32), np.full(n, s * snapshot_every, np.int32),
          mean[keep].astype(np.float32), std[keep].astype(np.float32),
          np.full(n, kind), np.full(n, trajectory.meta['task'])))
  if not any(len(p) for p in parts):
    return MultiSamples(
        np.zeros((0, window), np.float32),
        np.zeros((0, len(horizons)), np.float32), horizons,
        np.zeros(0, np.int32), np.zeros(0, np.int32),
        np.zeros(0, np.float32), np.zeros(0, np.float32),
        np.zeros(0, '<U9'), np.zeros(0, '<U32'))
  return concat_multi(parts)
