"""Robustness to the learning rate: steps to the target at untuned rates.

A user rarely starts from a tuned rate. :func:`run` trains each method at
:data:`FACTORS` times its own tuned rate (Adam's registered rate; a peer's
tuned rate, :func:`optax_nowcast.lab.bench.runner.peer_factor`), one seed,
and measures the steps to the task's target (the suite report's, so the
numbers compare with the suite's table). Runs are the benchmark's run files
(``<cache>/<task>/<method>-lr<factor>-s<seed>.json``), reused when their
settings match.

  optax-nowcast robustness --task digits-mlp \\
      --methods adam,multihorizon,sf-adamw --out results/robustness
"""

from __future__ import annotations

import datetime
import json
import pathlib
import platform
import sys
from typing import Optional, Sequence

import tqdm

from optax_nowcast.lab.bench import runner
from optax_nowcast.lab.bench import speedup

#: Multiples of each method's tuned rate.
FACTORS = (1 / 8, 1 / 4, 1 / 2, 1.0, 2.0)


def run(task_name: str, methods: Sequence[str], *, target: float,
        cache_dir: str | pathlib.Path, seed: int = 0,
        factors: Sequence[float] = FACTORS, progress: bool = True,
        command: Optional[str] = None) -> dict:
  """Trains ``methods`` x ``factors`` on a task; returns the report dict.

  Args:
    task_name: A registered task.
    methods: Benchmark methods (:data:`runner.METHODS`).
    target: The metric level to reach (the suite report's ``target``).
    cache_dir: The benchmark's run directory (``--out/runs``).
    seed: The one seed.
    factors: Multiples of each method's tuned rate.
    progress: Show a progress bar.
    command: The command recorded in the report.

  Returns:
    ``dict(task, metric, higher_is_better, target, budget_steps, seed,
    factors, rows=[dict(method, factor, learning_rate, steps_to_target,
    seconds_to_target, best)], machine, date, command)``; a run that never
    reached the target has ``steps_to_target`` None.
  """
  methods, task, ds, steps_per_epoch = runner._setup(  # pylint: disable=protected-access
      task_name, methods, 1, None)
  better = task.higher_is_better
  pick = max if better else min
  bar = tqdm.tqdm(total=len(methods) * len(factors) * task.steps,
                  unit='step', desc=f'robustness {task_name}',
                  disable=None if progress else True)
  rows = []
  for method in methods:
    tuned = runner.peer_factor(task_name, method)
    for factor in factors:
      r = runner._train(  # pylint: disable=protected-access
          task, seed, ds, method, steps_per_epoch, pathlib.Path(cache_dir),
          True, tuned * factor, bar)
      rows.append(dict(
          method=method, factor=factor,
          learning_rate=task.learning_rate * tuned * factor,
          steps_to_target=speedup.first_reach(
              r.eval_steps, r.eval_metric, target, higher_is_better=better),
          seconds_to_target=speedup.first_reach(
              r.eval_seconds, r.eval_metric, target,
              higher_is_better=better),
          best=pick(r.eval_metric)))
  bar.close()
  return dict(
      schema='optax_nowcast.lab.robustness/1', task=task_name,
      metric=task.metric, higher_is_better=better, target=target,
      budget_steps=task.steps, seed=seed, factors=list(factors), rows=rows,
      machine=f'{platform.machine()}, Python {platform.python_version()}',
      date=datetime.date.today().isoformat(),
      command=command or ' '.join(sys.argv))


def markdown(report: dict) -> str:
  """A row per method, a column per factor: steps to the target."""
  factors = report['factors']
  methods = list(dict.fromkeys(r['method'] for r in report['rows']))
  cell = {(r['method'], r['factor']): r for r in report['rows']}
  lines = [
      f"### {report['task']}: steps to {report['metric']}"
      f" {report['target']:.4f} at multiples of each method's tuned rate",
      '',
      f"Seed {report['seed']}; budget {report['budget_steps']} steps (never ="
      f" not within it); {report['machine']}; {report['date']}.",
      f"Command: `{report['command']}`",
      '',
      '| method | ' + ' | '.join(f'x{f:g}' for f in factors) + ' |',
      '|---|' + '---|' * len(factors)]
  for m in methods:
    cells = []
    for f in factors:
      r = cell[(m, f)]
      steps = r['steps_to_target']
      cells.append(f"{'never' if steps is None else steps}"
                   f" ({r['learning_rate']:.3g})")
    lines.append(f'| {m} | ' + ' | '.join(cells) + ' |')
  lines += ['', 'In brackets: the learning rate.']
  return '\n'.join(lines)


def plot(report: dict, path: pathlib.Path) -> None:
  """Steps to the target against the rate multiple, a line per method; a
  run that never reached it is drawn at the budget with an open marker."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  fig, ax = plt.subplots(figsize=(6.5, 4))
  budget = report['budget_steps']
  methods = list(dict.fromkeys(r['method'] for r in report['rows']))
  for i, m in enumerate(methods):
    rows = [r for r in report['rows'] if r['method'] == m]
    xs = [r['factor'] for r in rows]
    ys = [budget if r['steps_to_target'] is None else r['steps_to_target']
          for r in rows]
    ax.plot(xs, ys, '-', color=f'C{i}', label=m)
    for r, x, y in zip(rows, xs, ys):
      ax.plot(x, y, 'o', color=f'C{i}',
              mfc='none' if r['steps_to_target'] is None else f'C{i}')
  ax.axhline(budget, color='k', lw=0.6, ls=':')
  ax.set_xscale('log', base=2)
  ax.set_xlabel("learning rate / the method's tuned rate")
  ax.set_ylabel('steps to target (open: never, drawn at the budget)')
  ax.set_title(f"{report['task']}: steps to {report['metric']}"
               f" {report['target']:.4f}", fontsize=10)
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def write(report: dict, out: str | pathlib.Path) -> dict[str, pathlib.Path]:
  """Writes ``<task>.json``, ``<task>.md`` and ``<task>.png`` under ``out``."""
  out = pathlib.Path(out)
  out.mkdir(parents=True, exist_ok=True)
  paths = {ext: out / f"{report['task']}.{ext}"
           for ext in ('json', 'md', 'png')}
  paths['json'].write_text(json.dumps(report, indent=1))
  paths['md'].write_text(markdown(report) + '\n')
  plot(report, paths['png'])
  return paths


def suite_target(task_name: str, suite_dir: str | pathlib.Path) -> float:
  """The target of the task's suite report ``<suite_dir>/<task>.json``."""
  file = pathlib.Path(suite_dir) / f'{task_name}.json'
  if not file.exists():
    raise ValueError(f'no suite report {file}: run `optax-nowcast bench'
                     f' --task {task_name}` first (the target is its Adam\'s)')
  return json.loads(file.read_text())['target']
