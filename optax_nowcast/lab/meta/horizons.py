r"""Meta-training the multi-horizon forecaster (``forecasters.multihorizon``).

A sample (cut by :func:`optax_nowcast.lab.meta.windows.cut_multi`) is the
window of one scalar, ``W`` records ``spacing`` snapshots apart, scaled by
its leaf's mean :math:`\mu` and standard deviation :math:`\sigma` over the
same ``W`` snapshots (as a jump scales it), and its changes after the
newest entry at ``1 .. K`` records, in the same units:

.. math::
  x_i = (v_{t_0 + i s} - \mu) / \sigma, \qquad
  d_k = (v_{t_0 + (W - 1 + k) s} - \mu) / \sigma - x_{W-1},

``NaN`` where the run ends before horizon ``k``. The loss is the mean absolute error over the
horizons each sample has (NiNo's L1), and validation reports it per horizon
next to ``last`` (no change), a least-squares ``linear`` fit of the window
and, when given, WNN.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
import tqdm

from optax_nowcast.forecasters import _multihorizon as mh
from optax_nowcast.lab.meta import train as train_lib
from optax_nowcast.lab.meta import trajectories as traj_lib
from optax_nowcast.lab.meta import windows as windows_lib


@dataclasses.dataclass
class HorizonSamples:
  """Scaled windows ``(N, W)``, changes ``(N, K)`` (NaN: past the run)."""

  windows: np.ndarray
  changes: np.ndarray
  labels: np.ndarray  # (N,) int32 embedding row (mh.EMBEDDED_LABELS)
  tasks: np.ndarray  # (N,) str
  spacings: np.ndarray  # (N,) int32 snapshots between records

  def __len__(self) -> int:
    return len(self.labels)

  def select(self, mask: np.ndarray) -> 'HorizonSamples':
    return HorizonSamples(*(getattr(self, f.name)[mask]
                            for f in dataclasses.fields(self)))

  def summary(self) -> dict:
    out = {'total': int(len(self))}
    for name, tags in (('labels', self.labels), ('tasks', self.tasks),
                       ('spacings', self.spacings)):
      keys, counts = np.unique(tags, return_counts=True)
      if name == 'labels':
        keys = [mh.EMBEDDED_LABELS[k] for k in keys]
      out[name] = {str(k): int(c) for k, c in zip(keys, counts)}
    return out


def concat(parts: Sequence[HorizonSamples]) -> HorizonSamples:
  parts = [p for p in parts if len(p)]
  if not parts:
    raise ValueError('no samples: are the trajectories too short for the'
                     ' window and spacings?')
  return HorizonSamples(*(np.concatenate([getattr(p, f.name) for p in parts])
                          for f in dataclasses.fields(HorizonSamples)))


def scaled(multi: windows_lib.MultiSamples) -> HorizonSamples:
  """:func:`~optax_nowcast.lab.meta.windows.cut_multi` samples, leaf-scaled.

  Windows and targets are scaled by the leaf's mean and std over the
  window (std 0 counts as 1, as in a jump), the targets become changes
  after the newest entry, and each kind its embedding row.
  """
  if not np.array_equal(multi.horizons,
                        np.arange(1, multi.targets.shape[1] + 1)):
    raise ValueError('the multi-horizon forecaster needs the horizons'
                     f' 1 .. K, got {multi.horizons}')
  mean = multi.leaf_mean.astype(np.float64)[:, None]
  std = multi.leaf_std.astype(np.float64)
  std = np.where(std > 0, std, 1.0)[:, None]
  windows = (multi.windows - mean) / std
  changes = (multi.targets - mean) / std - windows[:, -1:]
  rows = np.asarray([mh.label_index(str(k)) for k in multi.kinds], np.int32)
  return HorizonSamples(windows.astype(np.float32),
                        changes.astype(np.float32), rows, multi.tasks,
                        multi.spacing.astype(np.int32))


def build(trajectory_root: Any, *, holdout: Sequence[str],
          spacings: Sequence[int] = (1, 2, 4, 8), per_kind: int = 2000,
          window: int = 5, horizons: int = mh.DEFAULT_HORIZONS,
          seed: int = 0, progress: bool = True
          ) -> tuple[HorizonSamples, HorizonSamples]:
  """``(train, valid)`` samples of every run; ``holdout`` tasks validate.

  ``per_kind`` samples per leaf kind, run and spacing
  (:func:`~optax_nowcast.lab.meta.windows.cut_multi`).
  """
  runs = traj_lib.require_runs(trajectory_root)
  rng = np.random.default_rng(seed)
  parts = [scaled(windows_lib.cut_multi(
      traj_lib.load_run(p), rng=rng, window=window, spacings=spacings,
      horizons=range(1, horizons + 1), per_kind=per_kind))
           for p in tqdm.tqdm(runs, desc='cut samples', unit='run',
                              disable=None if progress else True)]
  samples = concat(parts)
  return windows_lib.split_by_task(samples, holdout)


def l1(weights: Any, windows: jax.Array, changes: jax.Array,
       labels: jax.Array) -> jax.Array:
  """Mean absolute error over the horizons each sample has (scaled units)."""
  pred = mh.displacements_by_row(weights, windows, labels)
  inside = jnp.isfinite(changes)
  err = jnp.where(inside, jnp.abs(pred - jnp.where(inside, changes, 0.0)),
                  0.0)
  return jnp.sum(err) / jnp.maximum(jnp.sum(inside), 1)


@dataclasses.dataclass(frozen=True)
class FitConfig:
  """Meta-training hyperparameters (NiNo: AdamW 3e-3, cosine, L1)."""

  steps: int = 6000
  batch_size: int = 2048
  learning_rate: float = 3e-3
  weight_decay: float = 1e-4
  width: int = 64
  depth: int = 3
  seed: int = 0
  chunk: int = 200

  def __post_init__(self):
    for name in ('steps', 'batch_size', 'width', 'depth', 'chunk'):
      value = getattr(self, name)
      if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f'{name} must be a positive int, got {value!r}')
    if not self.learning_rate > 0:
      raise ValueError(
          f'learning_rate must be positive, got {self.learning_rate!r}')


def fit(train: HorizonSamples, config: FitConfig, *,
        progress: bool = True) -> tuple[Any, list[float], float]:
  """A fresh multi-horizon forecaster fitted to ``train``.

  Returns:
    ``(weights, mean loss per chunk, seconds)``.
  """
  start = time.perf_counter()
  key = jax.random.key(config.seed)
  init_key, data_key = jax.random.split(key)
  weights = mh.init_weights(init_key, window=train.windows.shape[1],
                            width=config.width, depth=config.depth,
                            horizons=train.changes.shape[1])
  chunks = -(-config.steps // config.chunk)
  schedule = optax.cosine_decay_schedule(config.learning_rate,
                                         chunks * config.chunk)
  tx = optax.adamw(schedule, weight_decay=config.weight_decay)
  xs, ys, ls = (jnp.asarray(a) for a in (train.windows, train.changes,
                                         train.labels))

  def loss_fn(weights, key):
    idx = jax.random.randint(key, (config.batch_size,), 0, len(ls))
    return l1(weights, xs[idx], ys[idx], ls[idx])

  weights, losses = train_lib.run_steps(
      loss_fn, weights, tx, data_key, steps=config.steps, chunk=config.chunk,
      desc='train multihorizon', progress=progress)
  return weights, losses, time.perf_counter() - start


def _linear_changes(windows: np.ndarray, horizons: int) -> np.ndarray:
  """Least-squares line through each window, extrapolated (scaled units)."""
  w = windows.shape[1]
  t = np.arange(w, dtype=np.float64) - (w - 1)
  design = np.stack([np.ones(w), t], 1)
  coef = np.linalg.lstsq(design, windows.T.astype(np.float64), rcond=None)[0]
  ahead = np.arange(1, horizons + 1, dtype=np.float64)
  fit_last = coef[0]
  return (fit_last[:, None] + coef[1][:, None] * ahead[None, :]
          - windows[:, -1:].astype(np.float64))


def validate(weights: Any, valid: HorizonSamples,
             others: Optional[dict[str, Any]] = None,
             batch: int = 1 << 16) -> dict[str, list[float]]:
  """Validation L1 (scaled units) per horizon ``1..K``, per method.

  Args:
    weights: The multi-horizon forecaster's weights.
    valid: Held-out samples.
    others: Extra single-horizon forecasters by name, e.g.
      ``{'wnn': onc.forecasters.load('wnn')}``, applied on the scaled
      windows at every horizon (records one apart).
    batch: Samples per jitted call.

  Returns:
    ``{method: [L1 at horizon 1, ..., L1 at horizon K]}``; ``NaN`` where no
    sample reaches a horizon.
  """
  num = valid.changes.shape[1]
  inside = np.isfinite(valid.changes)
  truth = np.where(inside, valid.changes, 0.0)
  fn = jax.jit(mh.displacements_by_row)
  pred = np.concatenate([
      np.asarray(fn(weights, jnp.asarray(valid.windows[i:i + batch]),
                    jnp.asarray(valid.labels[i:i + batch])))
      for i in range(0, len(valid), batch)])
  preds = {'multihorizon': pred, 'last': np.zeros_like(truth),
           'linear': _linear_changes(valid.windows, num)}
  times = jnp.arange(1 - valid.windows.shape[1], 1, dtype=jnp.float32)
  for name, f in (others or {}).items():
    label_names = [mh.EMBEDDED_LABELS[k] for k in np.unique(valid.labels)]
    out = np.zeros_like(truth)
    for label in label_names:
      rows = valid.labels == mh.label_index(label)
      one = jax.jit(jax.vmap(
          lambda v, target, label=label: f.apply(f.weights, v, times, target,
                                                 label if label != 'other'
                                                 else 'dense'),
          in_axes=(0, None)))
      for k in range(1, num + 1):
        out[rows, k - 1] = (np.asarray(one(jnp.asarray(valid.windows[rows]),
                                           jnp.float32(k)))
                            - valid.windows[rows, -1])
    preds[name] = out
  table = {}
  count = inside.sum(0)
  for name, p in preds.items():
    err = np.where(inside, np.abs(p - truth), 0.0).sum(0)
    table[name] = [float(e / c) if c else float('nan')
                   for e, c in zip(err, count)]
  return table


def format_validation(table: dict[str, list[float]],
                      horizons: Sequence[int] = (1, 2, 5, 10, 20, 40)) -> str:
  """A markdown table of validation L1 at some horizons (scaled units)."""
  shown = [k for k in horizons if k <= len(next(iter(table.values())))]
  lines = ['| forecaster | ' + ' | '.join(f'k={k}' for k in shown) + ' |',
           '|---|' + '---|' * len(shown)]
  for name, row in table.items():
    lines.append(f'| {name} | ' + ' | '.join(f'{row[k - 1]:.4f}'
                                            for k in shown) + ' |')
  return '\n'.join(lines)


def train_forecaster(trajectory_root: Any, out: Any, *,
                     holdout: Sequence[str], config: FitConfig,
                     horizon: float = 10.0, per_kind: int = 2000,
                     spacings: Sequence[int] = (1, 2, 4, 8),
                     compare: Sequence[str] = ('wnn',),
                     progress: bool = True,
                     command: Optional[str] = None) -> dict:
  """Cuts samples, fits, validates per horizon and saves a checkpoint.

  Args:
    trajectory_root: A directory written by ``optax-nowcast collect``.
    out: The checkpoint directory.
    holdout: Tasks whose runs only validate.
    config: Training hyperparameters.
    horizon: The checkpoint's default horizon (record intervals).
    per_kind: Samples per leaf kind, run and spacing.
    spacings: Snapshots between records; each run gives windows at each.
    compare: Shipped forecasters validated alongside (e.g. ``'wnn'``).
    progress: Show progress bars.
    command: The command line to store in the manifest.

  Returns:
    The manifest written next to the weights.
  """
  import platform  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top

  from optax_nowcast.forecasters import _io  # pylint: disable=g-import-not-at-top

  train, valid = build(trajectory_root, holdout=holdout, spacings=spacings,
                       per_kind=per_kind, seed=config.seed,
                       progress=progress)
  weights, losses, seconds = fit(train, config, progress=progress)
  others = {name: _io.load(name) for name in compare}
  table = validate(weights, valid, others)
  manifest = dict(
      forecaster={'horizon': float(horizon)},
      config=dict(vars(config), per_kind=per_kind, spacings=list(spacings),
                  holdout=list(holdout)),
      data=dict(train=train.summary(), valid=valid.summary(),
                trajectories=str(trajectory_root)),
      validation_l1_per_horizon=table,
      validation_units='leaf standard deviations',
      train_loss=losses[-5:],
      train_seconds=round(seconds, 1),
      machine=f'{platform.machine()}, {platform.python_version()}',
      command=command or ' '.join(sys.argv),
  )
  _io.save(out, 'multihorizon', weights, manifest=manifest)
  return manifest
