"""Training samples for the forecasters, cut from recorded trajectories.

A sample is the history of one scalar weight (the forecaster's input window)
and its later value (the target), in weight units, with the label kind of its
leaf and the run it came from (so whole tasks can be held out).

- WNN (:func:`wnn_samples`): 5 records ``record_every`` snapshots apart,
  oldest first, and the value ``horizon`` records after the newest.
- Introspection (:func:`introspection_samples`): the weight at steps 0,
  0.4t, 0.7t and t, and at 2t, for t on the snapshot grid. Scalars are drawn
  stratified by how much they moved between 0 and t: half from the top half
  of movers, a quarter from the 25th-50th percentile, a quarter from the
  bottom quarter (our reading of the paper's 50/25/25 split).
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

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


def _flat_by_label(trajectory: traj_lib.Trajectory) -> dict[str, np.ndarray]:
  """(num_snapshots, num_scalars) per label kind ('scalar' joins 'bias')."""
  groups: dict[str, list[np.ndarray]] = {}
  for path, label in trajectory.labels.items():
    label = 'bias' if label == 'scalar' else label
    arr = trajectory.snapshots[path]
    groups.setdefault(label, []).append(arr.reshape(arr.shape[0], -1))
  return {k: np.concatenate(v, axis=1) for k, v in groups.items()}


def wnn_samples(trajectory: traj_lib.Trajectory, *, record_every: int,
                horizon: int, window: int = 5, per_label: int = 20_000,
                rng: np.random.Generator) -> Samples:
  """WNN windows from one trajectory.

  Args:
    trajectory: A recorded run.
    record_every: Snapshots between records (the forecaster's record
      interval, e.g. one epoch).
    horizon: Records between the newest window entry and the target.
    window: Records per window.
    per_label: Samples drawn per label kind (scalars and window positions
      chosen uniformly at random).
    rng: Random source.

  Returns:
    The samples.
  """
  parts = []
  for label, flat in sorted(_flat_by_label(trajectory).items()):
    span = (window - 1 + horizon) * record_every
    starts = flat.shape[0] - span
    if starts <= 0:
      continue
    t0 = rng.integers(0, starts, per_label)
    col = rng.integers(0, flat.shape[1], per_label)
    offsets = np.arange(window) * record_every
    windows = flat[t0[:, None] + offsets[None, :], col[:, None]]
    targets = flat[t0 + span, col]
    parts.append(Samples(windows.astype(np.float32),
                         targets.astype(np.float32),
                         np.full(per_label, label),
                         np.full(per_label, trajectory.meta['task'])))
  return concat(parts) if parts else _empty(window)


def introspection_samples(trajectory: traj_lib.Trajectory, *,
                          per_label: int = 20_000,
                          rng: np.random.Generator) -> Samples:
  """Introspection samples (weights at 0, 0.4t, 0.7t, t -> 2t).

  ``t`` is drawn from the steps where all five are snapshots: multiples of
  10 snapshot intervals with 2t within the run.
  """
  parts = []
  n = len(trajectory.meta['snapshot_steps'])
  ts = np.arange(10, (n - 1) // 2 + 1, 10)  # in snapshot intervals
  if not len(ts):
    return _empty(4)
  for label, flat in sorted(_flat_by_label(trajectory).items()):
    t = rng.choice(ts, per_label)
    cols = _stratified_columns(flat, t, rng)
    idx = np.stack([np.zeros_like(t), t * 4 // 10, t * 7 // 10, t], axis=1)
    windows = flat[idx, cols[:, None]]
    targets = flat[2 * t, cols]
    parts.append(Samples(windows.astype(np.float32),
                         targets.astype(np.float32),
                         np.full(per_label, label),
                         np.full(per_label, trajectory.meta['task'])))
  return concat(parts) if parts else _empty(4)


def _stratified_columns(flat: np.ndarray, t: np.ndarray,
                        rng: np.random.Generator) -> np.ndarray:
  """For each drawn t, a scalar chosen by the 50/25/25 movement strata."""
  cols = np.empty(len(t), np.int64)
  num = flat.shape[1]
  strata = rng.choice(3, len(t), p=[0.5, 0.25, 0.25])
  for value in np.unique(t):
    where = np.nonzero(t == value)[0]
    order = np.argsort(np.abs(flat[value] - flat[0]))  # ascending movement
    bounds = {0: (num // 2, num), 1: (num // 4, num // 2), 2: (0, num // 4)}
    for stratum, (lo, hi) in bounds.items():
      pick = where[strata[where] == stratum]
      hi = max(hi, lo + 1)
      cols[pick] = order[rng.integers(lo, min(hi, num), len(pick))]
  return cols


def _empty(window: int) -> Samples:
  return Samples(np.zeros((0, window), np.float32), np.zeros(0, np.float32),
                 np.zeros(0, '<U8'), np.zeros(0, '<U32'))
