"""Training samples for the forecasters, cut from recorded trajectories.

A sample is the history of one scalar weight (the forecaster's input window)
and its later value (the target), in weight units, with the label kind of its
leaf and the run it came from (so whole tasks can be held out). What a window
is belongs to each forecaster (its module's ``cut_samples``); :func:`cut`
applies it to every label kind of a run.
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Sequence

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
    The samples (none if the run is too short).
  """
  parts = []
  for label, flat in sorted(_flat_by_label(trajectory).items()):
    cut_ = learned.cut_samples(flat, rng=rng, count=per_label,
                               record_every=record_every, horizon=horizon)
    if cut_ is None:
      continue
    windows, targets = cut_
    parts.append(Samples(windows, targets, np.full(len(targets), label),
                         np.full(len(targets), trajectory.meta['task'])))
  return concat(parts) if parts else Samples(
      np.zeros((0, 0), np.float32), np.zeros(0, np.float32),
      np.zeros(0, '<U8'), np.zeros(0, '<U32'))
