"""Recording weight trajectories of many small training runs.

Format (version 2), one directory per run under the collection root::

  <root>/<run_id>/meta.json       what was trained and when snapshots were taken
  <root>/<run_id>/snapshots.npz   per param leaf ``<path>``: ``<path>``, one
                                  float32 array shaped (num_snapshots,
                                  num_kept) where num_kept is the leaf size or,
                                  for big leaves, a random subset of
                                  ``max_per_leaf`` scalars whose flat indices
                                  are stored as ``<path>:index``; and
                                  ``<path>:mean``, ``<path>:std`` (float32,
                                  (num_snapshots,)), the mean and standard
                                  deviation of the whole leaf at each snapshot

``meta.json`` holds: ``format`` (2), ``run_id``, ``task``, ``dataset``,
``optimizer``, ``learning_rate``, ``batch_size``, ``steps``, ``seed``,
``snapshot_every``, ``snapshot_steps`` (the step of each snapshot, 0 first),
``eval_steps`` and ``eval_metric`` (the task's metric curve), ``eval_examples``
(test examples evaluated, ``null`` for all), ``leaves`` (leaf path ->
``{"shape", "label", "kind"}``: ``label`` from the leaf's rank alone, as
the shipped forecasters were trained, ``kind`` as :func:`optax_nowcast.nowcast`
labels it by default, from its name too: ``norm`` and ``embedding`` leaves
included), ``finite`` (whether every snapshot is finite), ``seconds`` (this
run's share of the training time), ``vmapped_runs`` (runs trained at once
with it, see :mod:`optax_nowcast.lab.meta.batched`) and ``python`` (the
interpreter version: the ``pystdlib`` text depends on it). Version 1 files
(no ``:mean``/``:std``, ``kind``, ``finite``...) still load.

A run is written to ``<run_id>.partial`` and renamed when complete, so an
interrupted collection resumes by redoing only unfinished runs.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import platform
import shutil
import time
from typing import Any, Iterable, Optional, Sequence, Union

import jax
import numpy as np
import tqdm

from optax_nowcast import _labels
from optax_nowcast.lab import data as data_lib
from optax_nowcast.lab import tasks as tasks_lib
from optax_nowcast.lab.meta import batched as batched_lib

FORMAT = 2
#: Formats :func:`load_run` reads.
READABLE_FORMATS = (1, 2)
PathLike = Union[str, os.PathLike]


@dataclasses.dataclass(frozen=True)
class RunSpec:
  """One run of the zoo: a registered task with optimizer and seed set.

  Attributes:
    task: A registered task name.
    optimizer: Key of :data:`optax_nowcast.lab.tasks.OPTIMIZERS`.
    learning_rate: The optimizer's learning rate.
    seed: Init and batch-order seed.
    steps: Overrides the task's step budget.
    batch_size: Overrides the task's batch size.
    snapshot_every: Steps between snapshots (default: ``collect``'s).
    max_per_leaf: Scalars kept per leaf (default: ``collect``'s).
    eval_examples: Evaluate on at most this many test examples (only runs
      with a ``group``; default: the task's whole test set).
    group: Runs with the same group name are trained at once (``jax.vmap``,
      :mod:`optax_nowcast.lab.meta.batched`); they must agree on everything
      but ``seed`` and ``learning_rate``. ``None``: trained alone by
      :func:`optax_nowcast.lab.tasks.train`.
  """

  task: str
  optimizer: str
  learning_rate: float
  seed: int
  steps: Optional[int] = None
  batch_size: Optional[int] = None
  snapshot_every: Optional[int] = None
  max_per_leaf: Optional[int] = None
  eval_examples: Optional[int] = None
  group: Optional[str] = None

  def __post_init__(self):
    for name in ('steps', 'batch_size', 'snapshot_every', 'max_per_leaf',
                 'eval_examples'):
      value = getattr(self, name)
      if value is not None and (isinstance(value, bool) or not isinstance(
          value, int) or value < 1):
        raise ValueError(f'{name} must be a positive int or None, got'
                         f' {value!r}')
    if self.eval_examples is not None and self.group is None:
      raise ValueError(
          'eval_examples is only supported for runs trained in a group;'
          f' set group= too (run {self.run_id})')

  @property
  def run_id(self) -> str:
    steps = '' if self.steps is None else f'_{self.steps}steps'
    batch = '' if self.batch_size is None else f'_b{self.batch_size}'
    return (f'{self.task}_{self.optimizer}_lr{self.learning_rate:g}'
            f'_s{self.seed}{steps}{batch}')

  def make_task(self) -> tasks_lib.Task:
    changes = dict(optimizer=self.optimizer, learning_rate=self.learning_rate)
    if self.steps is not None:
      changes['steps'] = self.steps
    if self.batch_size is not None:
      changes['batch_size'] = self.batch_size
    return tasks_lib.get(self.task).replace(**changes)


def leaf_paths(tree: Any) -> list[str]:
  """Slash-joined key paths of a params tree, in flatten order."""
  paths = []
  for path, _ in jax.tree_util.tree_flatten_with_path(tree)[0]:
    paths.append('/'.join(str(getattr(k, 'key', getattr(k, 'idx', k)))
                          for k in path))
  return paths


class _Recorder:
  """Collects one run's snapshots as they come.

  Keeps a fixed subset of each big leaf's scalars (drawn from
  ``numpy.random.default_rng(seed)``, leaf by leaf: the same subset
  :func:`record_run` always kept) and every leaf's mean and std.
  """

  def __init__(self, seed: int, max_per_leaf: int):
    self._rng = np.random.default_rng(seed)
    self._max = max_per_leaf
    self._index: Optional[list[Optional[np.ndarray]]] = None
    self._paths: list[str] = []
    self._kept: list[list[np.ndarray]] = []
    self._stats: list[np.ndarray] = []
    self.steps: list[int] = []
    self.leaves: dict[str, dict] = {}

  def add(self, step: int, params: Any) -> None:
    pairs = jax.tree_util.tree_flatten_with_path(params)[0]
    if self._index is None:
      self._paths = leaf_paths(params)
      self._index = []
      for path, (keys, leaf) in zip(self._paths, pairs):
        size = int(np.size(leaf))
        self._index.append(
            np.sort(self._rng.choice(size, self._max, replace=False))
            if size > self._max else None)
        self.leaves[path] = dict(
            shape=list(np.shape(leaf)),
            label=_labels.default_label(np.zeros(np.shape(leaf))),
            kind=_labels.default_label(leaf, keys))
    flat = [np.asarray(leaf, np.float32).reshape(-1) for _, leaf in pairs]
    self._kept.append([f if i is None else f[i]
                       for f, i in zip(flat, self._index)])
    self._stats.append(np.array(
        [(f.mean(dtype=np.float64), f.std(dtype=np.float64)) for f in flat],
        np.float32))
    self.steps.append(int(step))

  def arrays(self) -> dict[str, np.ndarray]:
    """The ``snapshots.npz`` arrays."""
    stats = np.stack(self._stats)  # (snapshots, leaves, 2)
    arrays = {}
    for j, (path, index) in enumerate(zip(self._paths, self._index)):
      arrays[path] = np.stack([kept[j] for kept in self._kept])
      if index is not None:
        arrays[path + ':index'] = index
      arrays[path + ':mean'] = stats[:, j, 0]
      arrays[path + ':std'] = stats[:, j, 1]
    return arrays


def _write(root: pathlib.Path, spec: RunSpec, task: tasks_lib.Task,
           recorder: _Recorder, snapshot_every: int, eval_steps: list[int],
           eval_metric: list[float], seconds: float,
           vmapped_runs: int) -> pathlib.Path:
  """Writes one run to ``<run_id>.partial``, then renames it complete."""
  final = root / spec.run_id
  partial = root / (spec.run_id + '.partial')
  if partial.exists():
    shutil.rmtree(partial)
  partial.mkdir(parents=True)
  arrays = recorder.arrays()
  np.savez(partial / 'snapshots.npz', **arrays)
  finite = all(bool(np.isfinite(a).all()) for k, a in arrays.items()
               if not k.endswith(':index'))
  meta = dict(
      format=FORMAT, run_id=spec.run_id, task=task.name,
      dataset=task.dataset, optimizer=task.optimizer,
      learning_rate=task.learning_rate, batch_size=task.batch_size,
      steps=task.steps, seed=spec.seed, snapshot_every=snapshot_every,
      snapshot_steps=recorder.steps, eval_steps=eval_steps,
      eval_metric=eval_metric, eval_examples=spec.eval_examples,
      seconds=seconds, vmapped_runs=vmapped_runs, finite=finite,
      python=platform.python_version(), leaves=recorder.leaves,
  )
  (partial / 'meta.json').write_text(json.dumps(meta, indent=1))
  if final.exists():
    shutil.rmtree(final)
  partial.rename(final)
  return final


def record_run(spec: RunSpec, root: PathLike, snapshot_every: int,
               dataset: Optional[data_lib.Dataset] = None,
               max_per_leaf: int = 2048) -> pathlib.Path:
  """Trains ``spec`` alone and writes its trajectory; returns its directory.

  Leaves with more than ``max_per_leaf`` scalars keep a fixed random subset
  of them (the forecasters are trained per scalar, so a subset loses only
  sample count, and keeps a big run's file small). ``spec.snapshot_every``
  and ``spec.max_per_leaf``, when set, win over the arguments.
  """
  root = pathlib.Path(root)
  every = spec.snapshot_every or snapshot_every
  task = spec.make_task()
  recorder = _Recorder(spec.seed, spec.max_per_leaf or max_per_leaf)
  start = time.perf_counter()
  result = tasks_lib.train(task, spec.seed, dataset=dataset,
                           snapshot_every=every, on_snapshot=recorder.add)
  seconds = time.perf_counter() - start
  return _write(root, spec, task, recorder, every, result.eval_steps,
                result.eval_metric, seconds, vmapped_runs=1)


def _batch_task(specs: Sequence[RunSpec]) -> tasks_lib.Task:
  """The task shared by a group's runs (raises if they disagree)."""
  first = specs[0]
  for spec in specs[1:]:
    if (dataclasses.replace(spec, seed=first.seed,
                            learning_rate=first.learning_rate) != first):
      raise ValueError(
          f'runs of group {first.group!r} must differ only in seed and'
          f' learning_rate: {first} vs {spec}')
  return first.make_task()


def record_batch(specs: Sequence[RunSpec], root: PathLike,
                 snapshot_every: int,
                 dataset: Optional[data_lib.Dataset] = None,
                 max_per_leaf: int = 2048) -> list[pathlib.Path]:
  """Trains the runs of one group at once and writes each trajectory.

  Args:
    specs: Runs that differ only in ``seed`` and ``learning_rate``.
    root: The collection directory.
    snapshot_every: Steps between snapshots, unless the specs set it.
    dataset: The loaded dataset.
    max_per_leaf: Scalars kept per leaf, unless the specs set it.

  Returns:
    The run directories, in the order of ``specs``.
  """
  root = pathlib.Path(root)
  task = _batch_task(specs)
  every = specs[0].snapshot_every or snapshot_every
  keep = specs[0].max_per_leaf or max_per_leaf
  recorders = [_Recorder(s.seed, keep) for s in specs]

  def on_snapshot(step, stacked):
    for m, recorder in enumerate(recorders):
      recorder.add(step, jax.tree.map(lambda x, m=m: x[m], stacked))

  result = batched_lib.train_batched(
      task, [s.seed for s in specs], [s.learning_rate for s in specs],
      dataset=dataset, snapshot_every=every, on_snapshot=on_snapshot,
      eval_examples=specs[0].eval_examples)
  return [_write(root, spec, spec.make_task(), recorder, every,
                 result.eval_steps, result.eval_metric[m],
                 result.seconds / len(specs), vmapped_runs=len(specs))
          for m, (spec, recorder) in enumerate(zip(specs, recorders))]


def units(specs: Iterable[RunSpec]) -> list[list[RunSpec]]:
  """The runs grouped as they are trained.

  Args:
    specs: Runs.

  Returns:
    One list per ``group`` (in order of first appearance) and one per run
    without a group.
  """
  out: dict[Any, list[RunSpec]] = {}
  for i, spec in enumerate(specs):
    out.setdefault(('group', spec.group) if spec.group is not None
                   else ('run', i), []).append(spec)
  return list(out.values())


def shard(specs: Iterable[RunSpec], worker: int,
          workers: int) -> list[RunSpec]:
  """The share of the runs that worker ``worker`` of ``workers`` records.

  Every ``workers``-th unit of :func:`units`, starting at the ``worker``-th:
  a group is never split, and the shares of workers ``0 .. workers - 1``
  partition the runs.

  Args:
    specs: All the runs.
    worker: This worker, ``0 <= worker < workers``.
    workers: How many workers share the runs.

  Returns:
    The runs of this worker, in their order in ``specs``'s units.

  Raises:
    ValueError: unless ``0 <= worker < workers``.
  """
  if isinstance(workers, bool) or not isinstance(workers, int) or not (
      isinstance(worker, int) and 0 <= worker < workers):
    raise ValueError(
        f'worker must be in [0, workers), got worker={worker!r},'
        f' workers={workers!r}')
  return [spec for j, unit in enumerate(units(specs))
          if j % workers == worker for spec in unit]


def collect(specs: Iterable[RunSpec], root: PathLike, snapshot_every: int,
            *, max_per_leaf: int = 2048, progress: bool = True,
            worker: Optional[tuple[int, int]] = None) -> list[pathlib.Path]:
  """Records every run not yet complete under ``root``; resumable.

  Runs of one ``group`` are trained at once (only those not yet complete);
  the others one by one. Complete runs are never redone, an interrupted one
  (``<run_id>.partial``) is redone from its start.

  Args:
    specs: The runs to record.
    root: The collection directory (created if needed).
    snapshot_every: Steps between snapshots (> 0) of runs that set none.
    max_per_leaf: Scalars kept per leaf of runs that set none, see
      :func:`record_run`.
    progress: Show a progress bar (one tick per finished run).
    worker: ``(k, n)``: record only the ``k``-th of ``n`` shares
      (:func:`shard`), so ``n`` processes can share the collection.

  Returns:
    The directories of all requested runs (of this worker's share).
  """
  if isinstance(snapshot_every, bool) or not isinstance(
      snapshot_every, int) or snapshot_every < 1:
    raise ValueError(
        f'snapshot_every must be a positive int, got {snapshot_every!r}')
  specs = list(specs)
  if worker is not None:
    specs = shard(specs, *worker)
  ids = [s.run_id for s in specs]
  if len(set(ids)) != len(ids):
    dup = next(i for i in ids if ids.count(i) > 1)
    raise ValueError(f'two runs share the run id {dup!r}')
  root = pathlib.Path(root)
  root.mkdir(parents=True, exist_ok=True)
  datasets: dict[str, Any] = {}
  todo = [s for s in specs if not (root / s.run_id / 'meta.json').exists()]
  bar = tqdm.tqdm(total=len(specs), initial=len(specs) - len(todo),
                  desc='collect', disable=None if progress else True, unit='run')
  for unit in units(todo):
    bar.set_postfix_str(unit[0].run_id if len(unit) == 1
                        else f'{unit[0].task} x{len(unit)}')
    name = tasks_lib.get(unit[0].task).dataset
    if name not in datasets:
      datasets[name] = data_lib.load(name)
    if unit[0].group is None:
      record_run(unit[0], root, snapshot_every, dataset=datasets[name],
                 max_per_leaf=max_per_leaf)
    else:
      record_batch(unit, root, snapshot_every, dataset=datasets[name],
                   max_per_leaf=max_per_leaf)
    bar.update(len(unit))
  bar.close()
  return [root / s.run_id for s in specs]


@dataclasses.dataclass
class Trajectory:
  """A recorded run: its metadata and its snapshots per leaf.

  ``snapshots[path]`` is ``(num_snapshots, num_kept)``; ``indices[path]``
  the flat indices of the kept scalars (all of them if not subsampled);
  ``stats[path]`` the ``(num_snapshots, 2)`` mean and std of the whole leaf
  at each snapshot (empty for format-1 runs).
  """

  meta: dict
  snapshots: dict[str, np.ndarray]
  indices: dict[str, np.ndarray]
  stats: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)

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
  if meta.get('format') not in READABLE_FORMATS:
    raise ValueError(
        f'{meta_file}: trajectory format {meta.get("format")!r}, expected'
        f' one of {READABLE_FORMATS}')
  with np.load(path / 'snapshots.npz') as f:
    arrays = {k: f[k] for k in f.files}
  snapshots = {k: v for k, v in arrays.items() if ':' not in k}
  indices = {k: arrays.get(k + ':index', np.arange(v.shape[1]))
             for k, v in snapshots.items()}
  stats = {k: np.stack([arrays[k + ':mean'], arrays[k + ':std']], axis=1)
           for k in snapshots if k + ':mean' in arrays}
  return Trajectory(meta, snapshots, indices, stats)


def require_runs(root: PathLike) -> list[pathlib.Path]:
  """:func:`list_runs`, raising if there is none (collect first)."""
  runs = list_runs(root)
  if not runs:
    raise FileNotFoundError(
        f'no complete trajectories under {root}; run'
        ' `optax-nowcast collect` first')
  return runs


def list_runs(root: PathLike) -> list[pathlib.Path]:
  """Complete run directories under ``root``, sorted by name."""
  root = pathlib.Path(root)
  return sorted(p for p in root.iterdir() if (p / 'meta.json').is_file())
