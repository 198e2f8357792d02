"""Tunes a benchmark task's learning rate: a log-spaced sweep, one seed.

Every speed-up of the benchmark is measured against the task's own optimizer
at its registered learning rate (``adam``), so that rate must be the best one
we can find, or the speed-ups flatter the forecasters. :func:`sweep` trains
the task's optimizer (constant learning rate, the task's budget) at
:data:`POINTS` learning rates of the grid ``1e-3 * 2**k`` centred on the grid
point nearest the registered rate, and, while the best rate is at an edge,
extends the sweep beyond that edge (at most :data:`MAX_EXTENSIONS` times). The
best rate is the one with the best metric at any evaluation (highest test
accuracy, lowest validation loss); ``tasks.py`` registers it, citing the
sweep's report (``results/lr_sweep/<task>.md``).

Runs are saved (``<cache>/lr<rate>/<task>/adam-s<seed>.json``, the
benchmark's own run files) and reused, so an interrupted sweep resumes.

A peer of the benchmark (``method='sf-adamw'``, say) is swept the same way
over multiples ``RATIO**k`` of the task's tuned Adam rate, starting from
:data:`PEER_POINTS` (x1/2, x1, x2); its runs are the benchmark's run files
(``<cache>/<task>/<peer>-lr<factor>-s<seed>.json``), so the benchmark reuses
the seed of the sweep at the best factor. The report's ``best_factor`` is
what :func:`optax_nowcast.lab.bench.runner.peer_factor` reads.
"""

from __future__ import annotations

import datetime
import json
import math
import pathlib
import platform
import sys
from typing import Optional

import tqdm

from optax_nowcast.lab.bench import runner

#: Learning rates tried at first.
POINTS = 5
#: The grid's ratio between neighbouring learning rates.
RATIO = 2.0
#: Learning rates a peer's sweep tries at first (x1/2, x1, x2 Adam's).
PEER_POINTS = 3
#: How many times a sweep whose best rate is at an edge grows past it.
MAX_EXTENSIONS = 3


def grid_rate(k: int) -> float:
  """The ``k``-th learning rate of the grid, ``1e-3 * RATIO**k``."""
  return float(f'{1e-3 * RATIO ** k:.4g}')


def nearest_index(learning_rate: float) -> int:
  """The grid index nearest (in log scale) to ``learning_rate``."""
  if not learning_rate > 0:
    raise ValueError(f'learning_rate must be positive, got {learning_rate!r}')
  return round(math.log(learning_rate / 1e-3, RATIO))


def best_of(metrics: dict[float, float], higher_is_better: bool) -> float:
  """The learning rate of the best metric (the smaller rate on a tie)."""
  sign = -1.0 if higher_is_better else 1.0
  return min(sorted(metrics), key=lambda lr: sign * metrics[lr])


def sweep(task_name: str, *, cache_dir: str | pathlib.Path, seed: int = 0,
          steps: Optional[int] = None, progress: bool = True,
          command: Optional[str] = None, method: str = 'adam') -> dict:
  """Sweeps the learning rate of ``task_name``; returns the report dict.

  Args:
    task_name: A registered task.
    cache_dir: Where runs are saved and reused (for a peer: the benchmark's
      cache, so that its runs are reused there).
    seed: The one seed of every run.
    steps: Overrides the task's step budget (tests).
    progress: Show a progress bar.
    command: The command recorded in the report.
    method: ``'adam'`` (the task's optimizer, on the absolute grid) or a
      peer of :data:`optax_nowcast.lab.bench.runner.PEERS` (on multiples of
      the task's Adam rate).

  Returns:
    ``dict(task, optimizer, registered_learning_rate, metric,
    higher_is_better, budget_steps, seed, runs=[dict(learning_rate,
    best_metric, final_metric, eval_steps, eval_metric)], best_learning_rate,
    best_at_edge, machine, date, command)``; ``best_at_edge`` is True if the
    best rate is still the smallest or largest tried after the extensions.
    A peer's report also has ``method`` and ``best_factor`` (its best rate
    over the task's Adam rate).
  """
  if method != 'adam' and method not in runner.PEERS:
    raise ValueError(f'method must be adam or one of {runner.PEERS}, got'
                     f' {method!r}')
  _, task, ds, steps_per_epoch = runner._setup(task_name, [method], 1, steps)  # pylint: disable=protected-access
  better = task.higher_is_better
  if method == 'adam':
    centre, points = nearest_index(task.learning_rate), POINTS
  else:
    centre, points = 0, PEER_POINTS
  indices = list(range(centre - points // 2, centre + points - points // 2))
  cache = pathlib.Path(cache_dir)
  bar = tqdm.tqdm(total=len(indices) * task.steps, unit='step',
                  desc=f'tune {task_name} {method}', disable=None if progress else True)
  found: dict[float, runner.Run] = {}

  def rate(k):
    if method == 'adam':
      return grid_rate(k)
    return float(f'{task.learning_rate * RATIO ** k:.4g}')

  def train(k):
    lr = rate(k)
    if lr in found:
      return lr
    if method == 'adam':
      found[lr] = runner._train(  # pylint: disable=protected-access
          task.replace(learning_rate=lr), seed, ds, 'adam', steps_per_epoch,
          cache / f'lr{lr:g}', True, bar=bar)
    else:
      found[lr] = runner._train(  # pylint: disable=protected-access
          task, seed, ds, method, steps_per_epoch, cache, True,
          RATIO ** k, bar=bar)
    return lr

  for k in indices:
    train(k)
  pick = max if better else min
  metric = {lr: pick(r.eval_metric) for lr, r in found.items()}
  for _ in range(MAX_EXTENSIONS):
    best = best_of(metric, better)
    lo, hi = min(indices), max(indices)
    if best == rate(lo):
      indices.insert(0, lo - 1)
    elif best == rate(hi):
      indices.append(hi + 1)
    else:
      break
    bar.total += task.steps
    lr = train(indices[0] if best == rate(lo) else indices[-1])
    metric[lr] = pick(found[lr].eval_metric)
  bar.close()
  best = best_of(metric, better)
  rates = sorted(found)
  extra = {}
  if method != 'adam':
    extra = dict(method=method, best_factor=RATIO ** indices[
        [rate(k) for k in indices].index(best)])
  return dict(
      schema='optax_nowcast.lab.tune/1', **extra,
      task=task_name,
      optimizer=task.optimizer if method == 'adam' else method,
      registered_learning_rate=task.learning_rate, metric=task.metric,
      higher_is_better=better, budget_steps=task.steps, seed=seed,
      runs=[dict(learning_rate=lr, best_metric=metric[lr],
                 final_metric=found[lr].eval_metric[-1],
                 eval_steps=found[lr].eval_steps,
                 eval_metric=found[lr].eval_metric,
                 seconds=found[lr].eval_seconds[-1]) for lr in rates],
      best_learning_rate=best,
      best_at_edge=best in (rates[0], rates[-1]),
      machine=f'{platform.machine()}, Python {platform.python_version()}',
      date=datetime.date.today().isoformat(),
      command=command or ' '.join(sys.argv))


def markdown(report: dict) -> str:
  """The sweep as a table, the best rate marked."""
  short = 'acc' if report['higher_is_better'] else 'loss'
  registered = report['registered_learning_rate']
  lines = [
      f"### {report['task']}: {report['optimizer']} learning-rate sweep",
      '',
      f"Budget {report['budget_steps']} steps, seed {report['seed']},"
      + (f" {report['method']} (its peak rate)" if 'method' in report
         else ' constant rate')
      + f"; best = best {report['metric']} at any evaluation;"
      f" {report['machine']}; {report['date']}.",
      f"Command: `{report['command']}`",
      '',
      f'| learning rate | best {short} | final {short} | seconds |',
      '|---|---|---|---|']
  for run in report['runs']:
    marks = (' **best**' if run['learning_rate'] == report['best_learning_rate']
             else '') + ((" (Adam's rate)" if 'method' in report
                          else ' (registered)') if math.isclose(
                 run['learning_rate'], registered, rel_tol=1e-3) else '')
    lines.append(f"| {run['learning_rate']:g}{marks} |"
                 f" {run['best_metric']:.4f} | {run['final_metric']:.4f} |"
                 f" {run['seconds']:.0f} |")
  if report['best_at_edge']:
    lines += ['', 'The best rate is at an edge of the sweep after'
              f' {MAX_EXTENSIONS} extensions: the optimum may lie beyond.']
  return '\n'.join(lines)


def write(report: dict, out: str | pathlib.Path) -> dict[str, pathlib.Path]:
  """Writes ``<task>.json`` and ``<task>.md`` under ``out`` (a peer's:
  ``<task>.<peer>.json`` and ``.md``)."""
  out = pathlib.Path(out)
  out.mkdir(parents=True, exist_ok=True)
  stem = report['task'] + (f".{report['method']}" if 'method' in report
                           else '')
  paths = dict(json=out / f'{stem}.json', md=out / f'{stem}.md')
  paths['json'].write_text(json.dumps(report, indent=1))
  paths['md'].write_text(markdown(report) + '\n')
  return paths


def tuned(task_name: str, directory: str | pathlib.Path
          ) -> Optional[float]:
  """The best learning rate of ``task_name``'s saved sweep, or None."""
  file = pathlib.Path(directory) / f'{task_name}.json'
  if not file.exists():
    return None
  return json.loads(file.read_text())['best_learning_rate']

