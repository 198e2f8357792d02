"""How a speed-up is measured: targets, first reach, ratios, summaries.

Speed-up = what the baseline needs to first reach the target ÷ what the
method needs, for the same task and seed (steps or wall-clock seconds);
aggregates are mean ± std over seeds (METHODS.md, "Measuring a speed-up
honestly"). The target is a paper's figure where there is one
(:data:`TARGETS`), else the level every seed of plain Adam reaches within
:data:`TARGET_FRACTION` of the budget (:func:`target`). :func:`summarize`
turns a benchmark report's runs into the per-method figures of its tables.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

#: Targets from the papers; other tasks use :data:`TARGET_FRACTION`.
TARGETS = {'fmnist-cnn16': 0.895, 'fmnist-cnn32': 0.905}

#: Tasks without a published target take the level that every seed of plain
#: Adam reaches within this fraction of the budget (per seed its best so far
#: there; the worst of those over seeds): Adam needs most of the budget to get
#: there, so a method has room to be sooner, and every Adam seed counts.
#: (A fraction of Adam's final best, e.g. 99%, is often reached before the
#: first jump, and then measures nothing.)
TARGET_FRACTION = 0.75


def first_reach(steps: Sequence[float], metric: Sequence[float],
                target: float, *, higher_is_better: bool = True
                ) -> Optional[float]:
  """The first of ``steps`` whose metric reaches ``target``, or None.

  Args:
    steps: Increasing x values (steps or seconds) of the curve.
    metric: The metric at each of ``steps``.
    target: The level to reach (>= for accuracy, <= for a loss).
    higher_is_better: Whether the metric is an accuracy (True) or a loss.

  Returns:
    The first x at which the target is met, or None if never.
  """
  if len(steps) != len(metric):
    raise ValueError(
        f'steps and metric must have the same length, got {len(steps)} and'
        f' {len(metric)}')
  for x, m in zip(steps, metric):
    if (m >= target) if higher_is_better else (m <= target):
      return x
  return None


def speedups(baseline: Sequence[Optional[float]],
             method: Sequence[Optional[float]]) -> list[float]:
  """Per-seed ``baseline / method``, over seeds where both reached."""
  if len(baseline) != len(method):
    raise ValueError('baseline and method need one value per seed, got'
                     f' {len(baseline)} and {len(method)}')
  return [b / m for b, m in zip(baseline, method)
          if b is not None and m is not None and m > 0]


def mean_std(values: Sequence[float]) -> Optional[tuple[float, float]]:
  """``(mean, std)`` of the values, or None if there are none."""
  if not len(values):
    return None
  return float(np.mean(values)), float(np.std(values))


def envelope(curves: Sequence[Sequence[float]], *,
             higher_is_better: bool = True) -> list[float]:
  """The best value at each eval point across curves (the tuned baseline).

  All curves must share their eval points (an LR sweep of one task does).
  """
  arr = np.asarray(curves, np.float64)
  best = arr.max(0) if higher_is_better else arr.min(0)
  return best.tolist()


def level_reached_by_all(curves: Sequence[tuple[Sequence[float],
                                                Sequence[float]]],
                         until: float, *, higher_is_better: bool = True
                         ) -> float:
  """The best level that every curve reaches by step ``until``.

  Per curve its best metric at steps ``<= until`` (its first value if it has
  none there), then the worst of those over curves.

  Args:
    curves: ``(steps, metric)`` per seed.
    until: The last step that counts.
    higher_is_better: Whether the metric is an accuracy (True) or a loss.

  Returns:
    The level: a target that every curve reaches by ``until``.
  """
  if not curves:
    raise ValueError('curves must not be empty')
  pick, worst = (max, min) if higher_is_better else (min, max)
  return worst(pick([m for x, m in zip(steps, metric) if x <= until]
                    or list(metric[:1])) for steps, metric in curves)


def target(task_name: str, adam_curves: Sequence[tuple[Sequence[float],
                                                         Sequence[float]]],
           *, budget: int, metric: str, higher_is_better: bool
           ) -> tuple[float, str]:
  """The target level of a task and the rule that gave it.

  Args:
    task_name: The task.
    adam_curves: ``(steps, metric)`` of each seed of plain Adam.
    budget: The task's step budget.
    metric: The metric's name, for the rule's wording.
    higher_is_better: Whether the metric is an accuracy (True) or a loss.

  Returns:
    ``(target, rule)``.
  """
  if task_name in TARGETS:
    return TARGETS[task_name], 'from the papers (NiNo)'
  level = level_reached_by_all(adam_curves, TARGET_FRACTION * budget,
                               higher_is_better=higher_is_better)
  return level, (f"the worst over seeds of plain adam's best {metric}"
                 f' within the first {TARGET_FRACTION:.0%} of the budget')


def _devices(runs: Sequence[dict]) -> set[str]:
  """The devices runs were timed on (``''``: this project's CPU, saved
  before runs recorded it)."""
  return {r.get('device') or 'cpu' for r in runs}


def summarize(report: dict) -> dict[str, Any]:
  """Per-method aggregates over seeds, added to the report as ``summary``."""
  target, better = report['target'], report['higher_is_better']
  by = {m: [r for r in report['runs'] if r['method'] == m]
        for m in report['methods']}
  reach = {m: [first_reach(r['eval_steps'], r['eval_metric'], target,
                                   higher_is_better=better)
               for r in rs] for m, rs in by.items()}
  reach_s = {m: [first_reach(r['eval_seconds'], r['eval_metric'],
                                     target, higher_is_better=better)
                 for r in rs] for m, rs in by.items()}
  pick = max if better else min
  out = {}
  for m, rs in by.items():
    ok = [x for x in reach[m] if x is not None]
    ok_s = [x for x in reach_s[m] if x is not None]
    entry = dict(
        best=mean_std([pick(r['eval_metric']) for r in rs]),
        steps_to_target=mean_std(ok),
        # A seed that never reached counts as the budget: a lower bound.
        steps_or_budget=mean_std(
            [report['budget_steps'] if x is None else x for x in reach[m]]),
        # A mean over devices would be no device's seconds.
        seconds_to_target=(mean_std(ok_s) if len(_devices(rs)) == 1
                           else None),
        device=' + '.join(sorted(_devices(rs))),
        reached=len(ok),
        jumps=mean_std([r['eval_jumps'][-1] for r in rs]),
        skipped=mean_std([r['skipped'] for r in rs]),
        rollbacks=mean_std([r['rollbacks'] for r in rs]),
    )
    for base in ('adam', 'adam-sweep'):
      if base in by:
        key = base.replace('-', '_')
        entry[f'speedup_steps_vs_{key}'] = mean_std(
            speedups(reach[base], reach[m]))
        # Seconds compare only between runs timed on one device.
        if _devices(by[base]) == _devices(rs):
          entry[f'speedup_seconds_vs_{key}'] = mean_std(
              speedups(reach_s[base], reach_s[m]))
    out[m] = entry
  return out
