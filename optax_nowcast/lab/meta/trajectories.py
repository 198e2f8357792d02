"""Recording weight trajectories of many small training runs.

Format (version 1), one directory per run under the collection root::

  <root>/<run_id>/meta.json       what was trained and when snapshots were taken
  <root>/<run_id>/snapshots.npz   one float32 array per param leaf, shaped
                                  (num_snapshots, num_kept) where num_kept is
                                  the leaf size or, for big leaves, a random
                                  subset of ``max_per_leaf`` scalars whose
                                  flat indices are stored as ``<path>:index``

``meta.json`` holds: ``format`` (1), ``run_id``, ``task``, ``dataset``,
``optimizer``, ``learning_rate``, ``batch_size``, ``steps``, ``seed``,
``snapshot_every``, ``snapshot_steps`` (the step of each snapshot, 0 first),
``eval_steps`` and ``eval_metric`` (test accuracy curve), ``leaves`` (leaf
path -> ``{"shape", "label"}``, the label as :func:`optax_nowcast.nowcast`
assigns it by default) and ``seconds``.

A run is written to ``<run_id>.partial`` and renamed when complete, so an
interrupted collection resumes by redoing only unfinished runs.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import shutil
import time
from typing import Any, Iterable, Optional, Union

import jax
import numpy as np
import tqdm

from optax_nowcast import _labels
from optax_nowcast.lab import data as data_lib
from optax_nowcast.lab import tasks as tasks_lib

FORMAT = 1
PathLike = Union[str, os.PathLike]


@dataclasses.dataclass(frozen=True)
class RunSpec:
  """One run of the zoo: a registered task with optimizer and seed set."""

  task: str
  optimizer: str
  learning_rate: float
  seed: int
  steps: Optional[int] = None

  @property
  def run_id(self) -> str:
    steps = '' if self.steps is None else f'_{self.steps}steps'
    return (f'{self.task}_{self.optimizer}_lr{self.learning_rate:g}'
            f'_s{self.seed}{steps}')

  def make_task(self) -> tasks_lib.Task:
    changes = dict(optimizer=self.optimizer, learning_rate=self.learning_rate)
    if self.steps is not None:
      changes['steps'] = self.steps
    return tasks_lib.get(self.task).replace(**changes)


def leaf_paths(tree: Any) -> list[str]:
  """Slash-joined key paths of a params tree, in flatten order."""
  paths = []
  for path, _ in jax.tree_util.tree_flatten_with_path(tree)[0]:
    paths.append('/'.join(str(getattr(k, 'key', getattr(k, 'idx', k)))
                          for k in path))
  return paths


def record_run(spec: RunSpec, root: PathLike, snapshot_every: int,
               dataset: Optional[data_lib.Dataset] = None,
               max_per_leaf: int = 2048) -> pathlib.Path:
  """Trains ``spec`` and writes its trajectory; returns the run directory.

  Leaves with more than ``max_per_leaf`` scalars keep a fixed random subset
  of them (the forecasters are trained per scalar, so a subset loses only
  sample count, and keeps a big run's file small).
  """
  root = pathlib.Path(root)
  final = root / spec.run_id
  partial = root / (spec.run_id + '.partial')
  if partial.exists():
    shutil.rmtree(partial)
  partial.mkdir(parents=True)
  task = spec.make_task()
  snapshots: list[Any] = []
  steps: list[int] = []

  def on_snapshot(step, params):
    steps.append(int(step))
    snapshots.append(jax.tree.map(np.asarray, params))

  start = time.perf_counter()
  result = tasks_lib.train(task, spec.seed, dataset=dataset,
                           snapshot_every=snapshot_every,
                           on_snapshot=on_snapshot)
  seconds = time.perf_counter() - start
  paths = leaf_paths(snapshots[0])
  shapes = [np.shape(x) for x in jax.tree.leaves(snapshots[0])]
  rng = np.random.default_rng(spec.seed)
  arrays = {}
  for path, shape, leaves in zip(
      paths, shapes, zip(*(jax.tree.leaves(s) for s in snapshots))):
    flat = np.stack(leaves).reshape(len(leaves), -1).astype(np.float32)
    if flat.shape[1] > max_per_leaf:
      index = np.sort(rng.choice(flat.shape[1], max_per_leaf, replace=False))
      flat = flat[:, index]
      arrays[path + ':index'] = index
    arrays[path] = flat
  np.savez(partial / 'snapshots.npz', **arrays)
  meta = dict(
      format=FORMAT, run_id=spec.run_id, task=task.name,
      dataset=task.dataset, optimizer=task.optimizer,
      learning_rate=task.learning_rate, batch_size=task.batch_size,
      steps=task.steps, seed=spec.seed, snapshot_every=snapshot_every,
      snapshot_steps=steps, eval_steps=result.eval_steps,
      eval_metric=result.eval_metric, seconds=seconds,
      leaves={p: dict(shape=list(shape),
                      label=_labels.default_label(np.zeros(shape)))
              for p, shape in zip(paths, shapes)},
  )
  (partial / 'meta.json').write_text(json.dumps(meta, indent=1))
  if final.exists():
    shutil.rmtree(final)
  partial.rename(final)
  return final


def collect(specs: Iterable[RunSpec], root: PathLike, snapshot_every: int,
            *, max_per_leaf: int = 2048,
            progress: bool = True) -> list[pathlib.Path]:
  """Records every run not yet complete under ``root``; resumable.

  Args:
    specs: The runs to record.
    root: The collection directory (created if needed).
    snapshot_every: Steps between snapshots (> 0).
    max_per_leaf: Scalars kept per leaf, see :func:`record_run`.
    progress: Show a progress bar.

  Returns:
    The directories of all requested runs.
  """
  if isinstance(snapshot_every, bool) or not isinstance(
      snapshot_every, int) or snapshot_every < 1:
    raise ValueError(
        f'snapshot_every must be a positive int, got {snapshot_every!r}')
  specs = list(specs)
  root = pathlib.Path(root)
  root.mkdir(parents=True, exist_ok=True)
  datasets: dict[str, data_lib.Dataset] = {}
  todo = [s for s in specs if not (root / s.run_id / 'meta.json').exists()]
  bar = tqdm.tqdm(total=len(specs), initial=len(specs) - len(todo),
                  desc='collect', disable=not progress, unit='run')
  for spec in todo:
    bar.set_postfix_str(spec.run_id)
    name = tasks_lib.get(spec.task).dataset
    if name not in datasets:
      datasets[name] = data_lib.load(name)
    record_run(spec, root, snapshot_every, dataset=datasets[name],
               max_per_leaf=max_per_leaf)
    bar.update()
  bar.close()
  return [root / s.run_id for s in specs]


@dataclasses.dataclass
class Trajectory:
  """A recorded run: its metadata and its snapshots per leaf.

  ``snapshots[path]`` is ``(num_snapshots, num_kept)``; ``indices[path]``
  the flat indices of the kept scalars (all of them if not subsampled).
  """

  meta: dict
  snapshots: dict[str, np.ndarray]
  indices: dict[str, np.ndarray]

  @property
  def labels(self) -> dict[str, str]:
    return {p: v['label'] for p, v in self.meta['leaves'].items()}


def load_run(path: PathLike) -> Trajectory:
  """Reads one run directory written by :func:`record_run`."""
  path = pathlib.Path(path)
  meta_file = path / 'meta.json'
  if not meta_file.is_file():
    raise FileNotFoundError(
        f'{meta_file} not found: not a complete trajectory directory')
  meta = json.loads(meta_file.read_text())
  if meta.get('format') != FORMAT:
    raise ValueError(
        f'{meta_file}: trajectory format {meta.get("format")!r}, expected'
        f' {FORMAT}')
  with np.load(path / 'snapshots.npz') as f:
    arrays = {k: f[k] for k in f.files}
  snapshots = {k: v for k, v in arrays.items() if not k.endswith(':index')}
  indices = {k: arrays.get(k + ':index', np.arange(v.shape[1]))
             for k, v in snapshots.items()}
  return Trajectory(meta, snapshots, indices)


def list_runs(root: PathLike) -> list[pathlib.Path]:
  """Complete run directories under ``root``, sorted by name."""
  root = pathlib.Path(root)
  return sorted(p for p in root.iterdir() if (p / 'meta.json').is_file())
