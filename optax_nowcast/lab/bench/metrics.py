"""Speed-up arithmetic, kept apart so that it can be checked by hand.

Speed-up = what the baseline needs to first reach the target ÷ what the
method needs, for the same task and seed (steps or wall-clock seconds);
aggregates are mean ± std over seeds (METHODS.md, "Measuring a speed-up
honestly").
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np


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
