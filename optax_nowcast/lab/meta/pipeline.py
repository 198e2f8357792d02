"""The meta-training pipeline end to end: trajectories -> samples -> checkpoint.

``optax-nowcast collect`` and ``optax-nowcast train-forecaster`` call these.
"""

from __future__ import annotations

import pathlib
import platform
import sys
from typing import Optional, Sequence

import numpy as np

from optax_nowcast.forecasters import _io
from optax_nowcast.forecasters import _registry as registry
from optax_nowcast.lab.meta import train as train_lib
from optax_nowcast.lab.meta import trajectories as traj_lib
from optax_nowcast.lab.meta import windows as windows_lib


def build_samples(
    kind: str,
    trajectory_root: str | pathlib.Path,
    *,
    holdout: Sequence[str],
    record_every: Sequence[int] = (1, 2, 4),
    horizon: int = 5,
    per_label: int = 20_000,
    seed: int = 0,
) -> tuple[windows_lib.Samples, windows_lib.Samples]:
  """Training and validation samples; ``holdout`` tasks only validate.

  Args:
    kind: A registered learned forecaster, e.g. ``'wnn'``.
    trajectory_root: A directory written by ``collect``.
    holdout: Task names whose runs are used for validation only.
    record_every: Record intervals, in snapshots, of a periodic forecaster;
      each run contributes windows at every one of them.
    horizon: A periodic forecaster's horizon in records.
    per_label: Samples per label kind, run and record interval.
    seed: Sampling seed.

  Returns:
    ``(train, valid)``.
  """
  learned = registry.get(kind)
  runs = traj_lib.require_runs(trajectory_root)
  rng = np.random.default_rng(seed)
  parts = []
  for path in runs:
    trajectory = traj_lib.load_run(path)
    for k in record_every if learned.periodic else (1,):
      parts.append(windows_lib.cut(
          learned, trajectory, record_every=k, horizon=horizon,
          per_label=per_label, rng=rng))
  samples = windows_lib.concat(parts)
  return windows_lib.split_by_task(samples, holdout)


def train_forecaster(
    kind: str,
    trajectory_root: str | pathlib.Path,
    out: str | pathlib.Path,
    *,
    holdout: Sequence[str],
    config: train_lib.TrainConfig,
    horizon: int = 5,
    record_every: Sequence[int] = (1, 2, 4),
    per_label: int = 20_000,
    progress: bool = True,
    command: Optional[str] = None,
) -> dict:
  """Builds samples, fits the forecaster, validates it and saves it.

  Returns:
    The manifest written next to the weights.
  """
  learned = registry.get(kind)
  train, valid = build_samples(
      kind, trajectory_root, holdout=holdout, record_every=record_every,
      horizon=horizon, per_label=per_label, seed=config.seed)
  weights, losses, seconds = train_lib.timed_fit(kind, train, config,
                                                 progress=progress)
  table = train_lib.validation_table(
      kind, weights, valid, horizon if learned.periodic else None)
  manifest = dict(
      forecaster=({'horizon': float(horizon)} if learned.periodic else {}),
      config=dict(vars(config), horizon=horizon,
                  record_every=list(record_every), per_label=per_label,
                  holdout=list(holdout)),
      data=dict(train=train.summary(), valid=valid.summary(),
                trajectories=str(trajectory_root)),
      validation_l1=table,
      train_loss=losses[-5:],
      train_seconds=round(seconds, 1),
      machine=f'{platform.machine()}, {platform.python_version()}',
      command=command or ' '.join(sys.argv),
  )
  _io.save(out, kind, weights, manifest=manifest)
  return manifest


def format_validation(table: dict) -> str:
  """A markdown table of validation L1 (weight units) per label."""
  methods = list(table)
  groups = list(next(iter(table.values())))
  lines = ['| forecaster | ' + ' | '.join(groups) + ' |',
           '|---|' + '---|' * len(groups)]
  for m in methods:
    lines.append(f'| {m} | ' + ' | '.join(f'{table[m][g]:.3e}'
                                          for g in groups) + ' |')
  return '\n'.join(lines)
