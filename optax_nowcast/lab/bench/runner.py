"""Runs every method on a task, seed by seed, side by side in one process.

Methods, each through ``nowcast``:

- ``adam``: the task's own optimizer alone at its learning rate, the best
  of a sweep (``optax-nowcast tune``, ``results/lr_sweep/``): tuned Adam,
  the baseline of every speed-up.
- ``adam-sweep``: the same at 1/3x, 1x and 3x the learning rate; its curve is
  the best of the three at each evaluation, its seconds those of one run
  (as if the best learning rate were known at every evaluation).
- ``adam-cosine``, ``adam-wsd``, ``sf-adamw``, ``lookahead``, ``snoo``: the
  peers a user would pick instead (:mod:`optax_nowcast.lab.peers`), each at
  its own tuned peak rate (:func:`peer_factor`).
- ``<forecaster>+cosine``, ``<forecaster>+wsd``: the forecaster's nowcast
  on top of ``adam-cosine``'s or ``adam-wsd``'s schedule at that peer's tuned
  rate, with no jump once the rate decays (after half the budget for the
  cosine, in the last 20% for WSD).
- ``linear``, ``quadratic``, ``wnn``, ``multihorizon``: NiNo's step
  schedule (:func:`nino_schedule`): a record every ``budget / 50`` steps, a
  5-record window, a jump every 5 records, none in the last 10% of the
  budget. ``linear`` and ``quadratic`` extrapolate 5 records, ``wnn`` uses
  its checkpoint's horizon (10 records), ``multihorizon`` NiNo's horizons
  from 40 records down to 1 (``schedules.NINO_HORIZONS``).
- ``nino``, ``nino-mlp``: NiNo's released forecasters (its graph network
  over the neural graph; its per-weight model), on the step schedule with
  NiNo's horizons; ``nino-select``, ``nino-mlp-select``: checked, as
  ``multihorizon-select``.
- ``multihorizon-select``: the same with checked jumps: no jump and the
  forecasts at 1/2, 1 and 2 times the scheduled horizon are each judged by
  the loss on another minibatch after 10 sign-descent steps on the step's
  minibatch (:func:`_value_fn`), the best is taken; it may jump until the
  end of the budget.
- ``wnn-epoch``: WNN's published schedule, a record per epoch (or per the
  task's ``record_every``), for comparison with the step schedule.
- ``introspection``: jumps at 30%, 40% and 50% of the budget, from the
  weights at 0, 0.4t, 0.7t, t to a forecast of 2t.
- ``linear-guard``, ``quadratic-guard``, ``wnn-guard``,
  ``multihorizon-guard``: the step schedule with ``guard_steps`` = one
  record interval (a jump whose loss over the second half of that interval
  exceeds the pre-jump loss is undone).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import pathlib
import platform
import sys
from typing import Any, Callable, Optional, Sequence

import optax
import tqdm

import optax_nowcast as onc
from optax_nowcast.lab import data as data_lib
from optax_nowcast.lab import peers as peers_lib
from optax_nowcast.lab import tasks as tasks_lib
from optax_nowcast.lab.bench import speedup
from optax_nowcast.forecasters import _io as forecaster_io

METHODS = ('adam', 'adam-sweep', 'adam-cosine', 'linear', 'quadratic',
           'introspection', 'wnn', 'wnn-epoch', 'multihorizon',
           'multihorizon-select', 'linear-guard', 'quadratic-guard',
           'wnn-guard', 'multihorizon-guard', 'nino', 'nino-select',
           'nino-mlp', 'nino-mlp-select', 'adam-wsd', 'sf-adamw',
           'lookahead', 'snoo', 'multihorizon+cosine', 'multihorizon+wsd',
           'nino+wsd', 'wnn+wsd', 'nino+cosine', 'nino-mlp+cosine')

#: The peers (:mod:`optax_nowcast.lab.peers`), each at its tuned rate.
PEERS = tuple(peers_lib.PEERS)
#: ``<forecaster>+<schedule>``: the peer whose schedule a nowcast rides on.
ON_SCHEDULE = {'+cosine': 'adam-cosine', '+wsd': 'adam-wsd'}
#: Where :func:`peer_factor` looks for a peer's saved sweep.
SWEEPS = pathlib.Path('results/lr_sweep')

#: Methods whose jumps are checked (``value_fn``, see :func:`_value_fn`).
CHECKED = ('multihorizon-select', 'nino-select', 'nino-mlp-select')
#: The forecasters with NiNo's decaying horizons (40 records down to 1).
NINO_HORIZON_FORECASTERS = ('multihorizon', 'nino', 'nino-mlp')
#: The forecasters on the step schedule (:func:`nino_schedule`).
STEP_SCHEDULE = ('linear', 'quadratic', 'wnn', 'multihorizon', 'nino',
                 'nino-mlp')
#: The forecasters loaded from a shipped checkpoint (from the registry).
SHIPPED = forecaster_io.SHIPPED
#: The checked methods' look-ahead: sign-descent steps before judging, and
#: the multiples of the scheduled horizon tried.
LOOKAHEAD_STEPS, SELECT = 10, (0.5, 1.0, 2.0)

#: Records per budget and records per jump of :func:`nino_schedule`.
NINO_RECORDS, NINO_JUMP_EVERY = 50, 5


#: The benchmark suite (``optax-nowcast bench --suite``).
SUITE = ('digits-mlp', 'mnist-mlp', 'mnist-cnn', 'fmnist-cnn16',
         'fmnist-cnn32', 'shakespeare-charlm')

SWEEP = (1 / 3, 1.0, 3.0)



def nino_schedule(budget: int) -> dict[str, int]:
  """NiNo's step schedule scaled to a budget (``nowcast`` keyword arguments).

  NiNo (Knyazev et al., 2025) records every 200 steps of its 10k-step runs
  and jumps every 5 records (1,000 steps): 50 records and 10 jumps per
  budget. The last 10% of the budget has no (blind) jump.
  """
  record_every = max(1, budget // NINO_RECORDS)
  return dict(record_every=record_every, jump_every=NINO_JUMP_EVERY,
              last_jump_step=int(0.9 * budget))


def guard_steps(budget: int) -> int:
  """The ``-guard`` methods' ``guard_steps``: one record interval."""
  return nino_schedule(budget)['record_every']


def _forecaster_name(method: str) -> str:
  """The forecaster behind a method: ``'wnn-guard'`` -> ``'wnn'``."""
  for suffix in ('-guard', '-select', '-epoch', *ON_SCHEDULE):
    method = method.removesuffix(suffix)
  return method


def _peer_of(method: str) -> Optional[str]:
  """The peer whose optimizer a method trains with (None: the task's)."""
  if method in PEERS:
    return method
  for suffix, peer in ON_SCHEDULE.items():
    if method.endswith(suffix):
      return peer
  return None


def peer_factor(task_name: str, method: str,
                sweeps: pathlib.Path = SWEEPS) -> float:
  """A method's peak learning rate as a multiple of the task's Adam rate.

  1 for Adam and the nowcast methods; for a peer (and a nowcast on its
  schedule) the registered :data:`optax_nowcast.lab.peers.TUNED`, else the
  best rate of its saved sweep ``<sweeps>/<task>.<peer>.json``.

  Raises:
    ValueError: A peer with neither.
  """
  peer = _peer_of(method)
  if peer is None:
    return 1.0
  if (task_name, peer) in peers_lib.TUNED:
    return peers_lib.TUNED[(task_name, peer)]
  file = pathlib.Path(sweeps) / f'{task_name}.{peer}.json'
  if file.exists():
    return json.loads(file.read_text())['best_factor']
  raise ValueError(
      f'{peer} has no tuned learning rate on {task_name}: run `optax-nowcast'
      f' tune --task {task_name} --method {peer}` (writes {file})')


def _nino(task: tasks_lib.Task, ds: Any) -> onc.forecasters.Forecaster:
  """``load('nino')`` for the task's model: its params in forward order
  (from a fresh init) and, for a transformer, its heads."""
  import jax  # pylint: disable=g-import-not-at-top
  model = task.model()
  if ds is None:
    ds = data_lib.load(task.dataset)
  example = tasks_lib.problem(task, ds).example
  params = model.init(jax.random.key(0), example)['params']
  return onc.forecasters.load('nino', params=params,
                              heads=getattr(model, 'heads', None))


def nowcast_settings(method: str, task: tasks_lib.Task,
                     steps_per_epoch: int) -> dict[str, Any]:
  """``nowcast``'s keyword arguments (all but the forecaster) for a method."""
  name = _forecaster_name(method)
  schedule = nino_schedule(task.steps)
  if method.endswith('-epoch'):
    schedule = dict(record_every=steps_per_epoch, jump_every=5,
                    last_jump_step=int(0.9 * task.steps))
  extra = {}
  if name in NINO_HORIZON_FORECASTERS:
    extra['horizon'] = onc.schedules.NINO_HORIZONS
  if method in CHECKED:
    schedule['last_jump_step'] = None  # Checked jumps never raise the loss.
    extra['select'] = SELECT
  if method.endswith('-guard'):
    extra['guard_steps'] = guard_steps(task.steps)
  if (peer := _peer_of(method)) is not None:
    # No jump once the schedule decays.
    stop = int(peers_lib.PEERS[peer].decay_from * task.steps)
    schedule['last_jump_step'] = min(schedule['last_jump_step'] or stop, stop)
  return dict(**schedule, **extra)


def _wrap(method: str, task: tasks_lib.Task, steps_per_epoch: int,
          ds: Any = None
          ) -> Optional[Callable[[optax.GradientTransformation],
                                 optax.GradientTransformation]]:
  """The function that adds ``method``'s nowcast to the task's optimizer."""
  if method in ('adam', 'adam-sweep', *PEERS):
    return None
  if method == 'introspection':
    steps = sorted({max(2, int(f * task.steps)) for f in (0.3, 0.4, 0.5)})
    transform = onc.nowcast(onc.forecasters.load('introspection'),
                            schedule=onc.schedules.introspection(steps))
    return lambda tx: optax.chain(tx, transform)
  name = _forecaster_name(method)
  forecaster = {
      'linear': lambda: onc.forecasters.linear(window=5, horizon=5),
      'quadratic': lambda: onc.forecasters.quadratic(window=5, horizon=5),
      'wnn': lambda: onc.forecasters.load('wnn'),
      'multihorizon': lambda: onc.forecasters.load('multihorizon'),
      'nino': lambda: _nino(task, ds),
      'nino-mlp': lambda: onc.forecasters.load('nino-mlp'),
  }[name]()
  transform = onc.nowcast(forecaster,
                          **nowcast_settings(method, task, steps_per_epoch))
  return lambda tx: optax.chain(tx, transform)


def _value_fn(method: str, task: tasks_lib.Task):
  """What ``tasks.train`` passes a checked method as ``value_fn``.

  The loss on another minibatch after :data:`LOOKAHEAD_STEPS` steps of sign
  descent at the task's learning rate on the step's minibatch
  (:func:`optax_nowcast.lookahead`): a multihorizon jump raises the loss at
  once and pays a few steps later (``results/probes/select_probe.md``).
  """
  if method not in CHECKED:
    return None
  return lambda batch, other: onc.lookahead(
      batch, steps=LOOKAHEAD_STEPS, learning_rate=task.learning_rate,
      eval_fn=other)


def seen_in_meta_training(task: str) -> bool:
  """Whether ``multihorizon``'s corpus has runs of ``task``.

  (The shipped WNN's smaller zoo, ``'full'``, has runs of some benchmark
  tasks: :func:`seen_by_wnn`.)
  """
  from optax_nowcast.lab.meta import zoo  # pylint: disable=g-import-not-at-top
  return any(spec.task == task for spec in zoo.runs('corpus'))


def seen_by_wnn(task: str) -> bool:
  """Whether the shipped WNN saw trajectories of ``task``."""
  from optax_nowcast.lab.meta import zoo  # pylint: disable=g-import-not-at-top
  return any(spec.task == task for spec in zoo.runs('full'))


@dataclasses.dataclass
class Run:
  """One method on one seed."""

  method: str
  seed: int
  eval_steps: list[int]
  eval_metric: list[float]
  eval_seconds: list[float]
  eval_jumps: list[int]
  skipped: int = 0
  rollbacks: int = 0
  #: Checked jumps: how many chose each candidate (0 = no jump, k = the
  #: forecast at ``select[k - 1]`` times the scheduled horizon or step).
  selected: list[int] = dataclasses.field(default_factory=list)
  #: The accelerator the run was timed on (``jax.devices()[0].device_kind``;
  #: empty in runs saved before 2026-12-04, all on this project's 2-core
  #: CPU). Seconds compare only between runs of one device.
  device: str = ''


def _fingerprint(task: tasks_lib.Task, method: str, lr_factor: float) -> dict:
  """What a cached run must match to be reused: the task and the forecaster."""
  key = dict(task=task.name, steps=task.steps, eval_every=task.eval_every,
             batch_size=task.batch_size, optimizer=task.optimizer,
             learning_rate=task.learning_rate * lr_factor,
             record_every=task.record_every, method=method)
  name = _forecaster_name(method)
  if method.endswith('-guard'):
    key['guard'] = 'last half of the window'  # The criterion since 2026-11-22.
  if name in STEP_SCHEDULE and not method.endswith('-epoch'):
    key['schedule'] = dict(nino_schedule(task.steps), since='2026-12-02')
  if method == 'adam-cosine':
    key['decay'] = 'cosine'
  elif (peer := _peer_of(method)) is not None:
    key['peer'] = dict(
        name=peer, wsd_decay=peers_lib.WSD_DECAY,
        sf_warmup=peers_lib.SF_WARMUP,
        lookahead=[peers_lib.LOOKAHEAD_K, peers_lib.LOOKAHEAD_ALPHA],
        snoo=[peers_lib.SNOO_K, peers_lib.SNOO_RATE, peers_lib.SNOO_MOMENTUM])
  if method in CHECKED:
    key['check'] = dict(lookahead=LOOKAHEAD_STEPS, select=list(SELECT))
  if name in SHIPPED:
    manifest = forecaster_io.shipped_root() / name / 'manifest.json'
    key['forecaster_sha256'] = data_lib.sha256_file(manifest)
  return key


def _device() -> str:
  """The device kind runs are timed on, as :attr:`Run.device` records it."""
  import jax  # pylint: disable=g-import-not-at-top
  return jax.devices()[0].device_kind


def _run_file(cache: pathlib.Path, task: tasks_lib.Task, method: str,
              seed: int, lr_factor: float) -> pathlib.Path:
  tag = method if lr_factor == 1.0 else f'{method}-lr{lr_factor:.3g}'
  return cache / task.name / f'{tag}-s{seed}.json'


def _saved(task: tasks_lib.Task, seed: int, method: str,
           cache: Optional[pathlib.Path], lr_factor: float = 1.0
           ) -> Optional[Run]:
  """The saved run with these settings, or None."""
  if cache is None:
    return None
  file = _run_file(cache, task, method, seed, lr_factor)
  if not file.exists():
    return None
  try:
    saved = json.loads(file.read_text())
  except json.JSONDecodeError:
    return None  # A run cut off while writing: redo it.
  if saved.get('key') != _fingerprint(task, method, lr_factor):
    return None
  return Run(**saved['run'])


def _train(task: tasks_lib.Task, seed: int, ds: Any, method: str,
           steps_per_epoch: int, cache: Optional[pathlib.Path],
           reuse: bool, lr_factor: float = 1.0,
           bar: Optional[tqdm.tqdm] = None) -> Run:
  """One run, read from ``cache`` if an identical one finished before.

  ``bar`` (counting steps) moves at every evaluation, showing the metric;
  a reused run moves it by the whole budget and says so.
  """
  name = method if lr_factor == 1.0 else f'{method} x{lr_factor:.3g}'
  if reuse and (run := _saved(task, seed, method, cache, lr_factor)):
    if bar is not None:
      bar.write(f'{task.name}: {name} seed {seed}: reused the saved run'
                f' {_run_file(cache, task, method, seed, lr_factor)}',
                file=sys.stderr)
      bar.update(task.steps)
    return run
  key = _fingerprint(task, method, lr_factor)
  file = _run_file(cache, task, method, seed, lr_factor) if cache else None
  done = [0]

  def on_eval(step, metric):
    if bar is not None:
      bar.update(step - done[0])
      done[0] = step
      bar.set_postfix_str(f'{name} seed {seed}: {task.metric} {metric:.4f}'
                          f' at step {step}')

  rate = task.learning_rate * lr_factor
  peer = _peer_of(method)
  optimizer = eval_params = None
  if peer is not None:
    optimizer = peers_lib.PEERS[peer].make(task.optimizer, rate, task.steps)
    if peer == method:
      eval_params = peers_lib.PEERS[peer].eval_params
  result = tasks_lib.train(
      task.replace(learning_rate=rate), seed, dataset=ds,
      wrap_tx=_wrap(method, task, steps_per_epoch, ds), on_eval=on_eval,
      value_fn=_value_fn(method, task), optimizer=optimizer,
      eval_params=eval_params)
  found = optax.tree.get_all_with_path(result.final_opt_state, 'NowcastState')
  state = found[0][1] if found else None
  run = Run(method, seed, result.eval_steps, result.eval_metric,
            result.eval_seconds, result.eval_jumps,
            int(state.skipped) if state else 0,
            int(optax.tree.get(state, "rollbacks", 0)) if state else 0,
            [int(c) for c in state.selected] if state and method in CHECKED
            else [], _device())
  if file is not None:
    file.parent.mkdir(parents=True, exist_ok=True)
    tmp = file.with_suffix('.tmp')
    tmp.write_text(json.dumps(dict(key=key, run=dataclasses.asdict(run))))
    tmp.replace(file)  # Atomic: a crash never leaves half a record.
  return run


def _setup(task_name: str, methods: Sequence[str], seeds: int,
           steps: Optional[int]
           ) -> tuple[list[str], tasks_lib.Task, Any, int]:
  """Checks the arguments; returns the methods (``adam`` first), the task
  (with ``steps`` as its budget), its dataset and its steps per record."""
  for m in methods:
    if m not in METHODS:
      raise ValueError(f'methods must be among {METHODS}, got {m!r}')
  if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
    raise ValueError(f'seeds must be a positive int, got {seeds!r}')
  methods = ['adam'] + [m for m in dict.fromkeys(methods) if m != 'adam']
  task = tasks_lib.get(task_name)
  if steps is not None:
    task = task.replace(steps=steps, eval_every=min(task.eval_every, steps))
  ds = data_lib.load(task.dataset)
  steps_per_epoch = task.record_every or tasks_lib.steps_per_epoch(task, ds)
  return methods, task, ds, steps_per_epoch


def _runs_to_train(task_name: str, methods: Sequence[str], seeds: int,
                   first_seed: int = 0) -> list[tuple[str, int, float]]:
  """Every distinct run behind ``methods`` x ``seeds``, method by method.

  ``adam-sweep`` stands for its learning-rate factors (its 1x member is the
  ``adam`` run, listed once); a peer runs at its tuned factor.
  """
  methods = ['adam'] + [m for m in dict.fromkeys(methods) if m != 'adam']
  jobs = []
  for m in methods:
    for factor in (SWEEP if m == 'adam-sweep'
                   else (peer_factor(task_name, m),)):
      name = 'adam' if m == 'adam-sweep' else m
      jobs += [(name, s, factor)
               for s in range(first_seed, first_seed + seeds)]
  return list(dict.fromkeys(jobs))


def train_share(task_name: str, methods: Sequence[str], seeds: int,
                worker: int, workers: int, *,
                cache_dir: str | pathlib.Path,
                steps: Optional[int] = None, progress: bool = True,
                reuse: bool = True) -> int:
  """Trains one worker's share of a benchmark's runs and saves them.

  The distinct runs of ``methods`` x ``seeds`` (method by method, seed by
  seed) are dealt round-robin to ``workers`` processes; this one trains
  every ``workers``-th run starting at ``worker``, so processes started with
  ``worker = 0 .. workers - 1`` share the work without overlap and finish
  whole methods first. When all are done, :func:`run_task` with
  ``saved_only=True`` reports the runs without training.

  Args:
    task_name: A registered task (:func:`optax_nowcast.lab.tasks.get`).
    methods: Names from :data:`METHODS`; ``adam`` is always included.
    seeds: Seeds ``0 .. seeds - 1``.
    worker: This process's index, ``0 <= worker < workers``.
    workers: The number of processes sharing the runs.
    cache_dir: Where runs are saved (as in :func:`run_task`).
    steps: Overrides the task's step budget.
    progress: Show a progress bar.
    reuse: If False, redo runs saved before.

  Returns:
    The number of runs of this share (trained or found saved).
  """
  if not 0 <= worker < workers:
    raise ValueError(f'worker must be in 0 .. workers - 1 = {workers - 1},'
                     f' got {worker}')
  methods, task, ds, steps_per_epoch = _setup(task_name, methods, seeds,
                                              steps)
  share = _runs_to_train(task_name, methods, seeds)[worker::workers]
  bar = tqdm.tqdm(total=len(share) * task.steps, unit='step',
                  desc=f'{task_name} {worker}/{workers}',
                  disable=None if progress else True)
  for method, seed, factor in share:
    _train(task, seed, ds, method, steps_per_epoch, pathlib.Path(cache_dir),
           reuse, factor, bar)
  bar.close()
  return len(share)


def run_task(task_name: str, methods: Sequence[str], seeds: int, *,
             steps: Optional[int] = None, progress: bool = True,
             command: Optional[str] = None,
             cache_dir: Optional[str | pathlib.Path] = None,
             reuse: bool = True, saved_only: bool = False,
             first_seed: int = 0) -> dict:
  """Runs ``methods`` x ``seeds`` on a task; returns the report dict.

  See :mod:`optax_nowcast.lab.bench.report` for the report's schema.

  Args:
    task_name: A registered task (:func:`optax_nowcast.lab.tasks.get`).
    methods: Names from :data:`METHODS`; ``adam`` is always run.
    seeds: Seeds ``0 .. seeds - 1``.
    steps: Overrides the task's step budget.
    progress: Show a progress bar.
    command: The command line recorded in the report.
    cache_dir: If given, every finished run is saved there
      (``<task>/<method>-s<seed>.json``) and reused by later calls with the
      same task settings and the same shipped checkpoint, so an interrupted
      benchmark resumes where it stopped. A run with other settings replaces
      the saved one.
    reuse: If False, every run is redone (and saved) even if saved before.
    saved_only: Train nothing: report the methods whose runs are all saved
      under ``cache_dir`` (``adam``'s must be) and leave the others out.
    first_seed: The seeds are ``first_seed .. first_seed + seeds - 1`` (fresh
      seeds, to check that a result holds).

  Returns:
    The report (without ``summary``; see
    :func:`optax_nowcast.lab.bench.speedup.summarize`).
  """
  methods, task, ds, steps_per_epoch = _setup(task_name, methods, seeds,
                                              steps)
  cache = pathlib.Path(cache_dir) if cache_dir is not None else None
  better = task.higher_is_better
  if saved_only:
    def complete(m):
      try:
        jobs = _runs_to_train(task_name, [m], seeds, first_seed)
      except ValueError:  # A peer not tuned yet on this task.
        return False
      return all(_saved(task, s, name, cache, f) is not None
                 for name, s, f in jobs)
    if not complete('adam'):
      raise ValueError(
          f'--saved-only: no saved adam runs for all {seeds} seeds of'
          f' {task_name} under {cache}; run the benchmark without it first')
    left_out = [m for m in methods if not complete(m)]
    if left_out:
      print(f'{task_name}: left out (runs not all saved): {left_out}',
            file=sys.stderr)
    methods = [m for m in methods if m not in left_out]
  runs: list[Run] = []
  jobs = [(s, m) for s in range(first_seed, first_seed + seeds)
          for m in methods]
  trainings = sum(len(SWEEP) if m == 'adam-sweep' else 1 for _, m in jobs)
  bar = tqdm.tqdm(total=trainings * task.steps, unit='step',
                  desc=f'bench {task_name}', disable=None if progress else True)
  for seed, method in jobs:
    if method == 'adam-sweep':
      # The 1x member is the seed's adam run (same settings, same numbers).
      sweep = [_train(task, seed, ds, 'adam', steps_per_epoch, cache, reuse,
                      f, bar)
               for f in SWEEP]
      runs.append(Run(
          method, seed, sweep[0].eval_steps,
          speedup.envelope([r.eval_metric for r in sweep],
                           higher_is_better=better),
          # As if the best learning rate were known: one run's time.
          [sum(r.eval_seconds[i] for r in sweep) / len(sweep)
           for i in range(len(sweep[0].eval_steps))],
          [0] * len(sweep[0].eval_steps)))
      continue
    runs.append(_train(task, seed, ds, method, steps_per_epoch, cache,
                       reuse, peer_factor(task_name, method), bar))
  bar.close()

  target, rule = speedup.target(
      task_name, [(r.eval_steps, r.eval_metric) for r in runs
                  if r.method == 'adam'],
      budget=task.steps, metric=task.metric, higher_is_better=better)
  return dict(
      schema='optax_nowcast.lab.bench/1',
      task=task_name,
      seen_in_meta_training=seen_in_meta_training(task_name),
      seen_by_wnn=seen_by_wnn(task_name),
      metric=task.metric,
      higher_is_better=better,
      target=target,
      target_rule=rule,
      budget_steps=task.steps,
      steps_per_epoch=steps_per_epoch,
      seeds=seeds,
      **({'first_seed': first_seed} if first_seed else {}),
      methods=methods,
      machine=f'{platform.machine()}, Python {platform.python_version()}',
      date=datetime.date.today().isoformat(),
      command=command or ' '.join(sys.argv),
      runs=[dataclasses.asdict(r) for r in runs],
  )


def prune(cache_dir: str | pathlib.Path, *, dry_run: bool = False
          ) -> list[tuple[pathlib.Path, str]]:
  """Deletes the saved runs that no method would reuse; returns them.

  A run file ``<cache>/<task>/<method>[-lr<factor>]-s<seed>.json`` is kept
  only if its task is registered, its method is one of :data:`METHODS` and
  its saved fingerprint equals the one the benchmark computes now for that
  method and learning rate (the task's registered settings and budget, the
  shipped checkpoint). A ``.tmp`` file (a run being written) is left alone.

  Args:
    cache_dir: A benchmark's run directory (``--out/runs``).
    dry_run: Delete nothing; only return what would go.

  Returns:
    ``(file, why)`` for every file deleted (or that would be).
  """
  cache = pathlib.Path(cache_dir)
  if not cache.is_dir():
    raise ValueError(f'no saved runs under {cache}')
  dropped = []
  for file in sorted(cache.glob('*/*.json')):
    why = _stale(file)
    if why is not None:
      dropped.append((file, why))
      if not dry_run:
        file.unlink()
  return dropped


def _stale(file: pathlib.Path) -> Optional[str]:
  """Why a saved run would never be reused, or None if it would."""
  try:
    task = tasks_lib.get(file.parent.name)
  except ValueError:
    return f'no task {file.parent.name!r}'
  try:
    key = json.loads(file.read_text())['key']
  except (json.JSONDecodeError, KeyError, TypeError):
    return 'unreadable'
  method = key.get('method')
  if method not in METHODS:
    return f'no method {method!r}'
  factor = key.get('learning_rate', 0.0) / task.learning_rate
  try:
    now = _fingerprint(task, method, factor)
  except (OSError, ValueError) as e:
    return f'no fingerprint now ({e})'
  rate = now.pop('learning_rate')
  saved = dict(key)
  if not abs(saved.pop('learning_rate', 0.0) - rate) <= 1e-9 * rate:
    return 'another learning rate'
  if saved != now:
    changed = sorted(k for k in set(saved) | set(now)
                     if saved.get(k) != now.get(k))
    return f'settings changed: {", ".join(changed)}'
  seed = file.stem.rsplit('-s', 1)[-1]
  if not seed.isdigit():
    return 'no seed in the file name'
  if _run_file(file.parent.parent, task, method, int(seed), factor) != file:
    return (f"its learning rate {key['learning_rate']:g} is x{factor:.3g}"
            f' the registered {task.learning_rate:g}, not what its name says')
  return None
