"""A small side-by-side run: plain Adam vs Adam + nowcast on embedded data.

Trains an MLP on scikit-learn's 8x8 digits (shipped inside scikit-learn, no
download) with plain Adam and with Adam followed by :func:`nowcast` with each
given forecaster, for several seeds, all in one process. It reports, for each
method, the steps to first reach a target test accuracy, the best accuracy,
and the number of jumps, with the speed-up relative to Adam.

The target is set by a documented rule, measured in the same run: 99% of the
mean over seeds of plain Adam's best test accuracy within the budget.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Optional, Sequence

import numpy as np
import optax
import tqdm

from optax_nowcast import data as data_lib
from optax_nowcast import forecasters
from optax_nowcast import tasks
from optax_nowcast._nowcast import nowcast


@dataclasses.dataclass
class RunResult:
  """One training run: accuracy after every epoch and jump counts."""

  method: str
  seed: int
  steps: list[int]
  accuracy: list[float]
  jumps: int
  seconds: float

  def steps_to(self, target: float) -> Optional[int]:
    """The first evaluated step whose accuracy is >= target, or None."""
    for step, acc in zip(self.steps, self.accuracy):
      if acc >= target:
        return step
    return None


_FORECASTERS = {
    'linear': lambda: forecasters.linear(window=5, horizon=5),
    'quadratic': lambda: forecasters.quadratic(window=5, horizon=5),
    'wnn': lambda: forecasters.load('wnn'),
}
METHODS = ('adam',) + tuple(_FORECASTERS)


def make_tx(method: str, adam: optax.GradientTransformation,
            steps_per_epoch: int, epochs: int) -> optax.GradientTransformation:
  """Adam + nowcast with the named forecaster.

  WNN's schedule: a record per epoch, a jump every 5 records, none in the
  last 10% of the budget.
  """
  return optax.chain(adam, nowcast(
      _FORECASTERS[method](),
      record_every=steps_per_epoch,
      jump_every=5,
      last_jump_step=int(0.9 * epochs * steps_per_epoch),
  ))


def train(method: str, seed: int, ds: data_lib.Dataset, *, epochs: int,
          batch_size: int, learning_rate: float) -> RunResult:
  """Trains the ``digits-mlp`` task, evaluating once per epoch."""
  steps_per_epoch = len(ds.x_train) // batch_size
  task = tasks.get('digits-mlp').replace(
      batch_size=batch_size, learning_rate=learning_rate,
      steps=epochs * steps_per_epoch, eval_every=steps_per_epoch)
  wrap = None
  if method != 'adam':
    wrap = lambda adam: make_tx(method, adam, steps_per_epoch, epochs)
  start = time.perf_counter()
  result = tasks.train(task, seed, dataset=ds, wrap_tx=wrap)
  seconds = time.perf_counter() - start
  jumps = int(result.final_opt_state[1].jumps) if wrap else 0
  return RunResult(method, seed, result.eval_steps, result.eval_metric,
                   jumps, seconds)


def run(methods: Sequence[str] = ('adam', 'linear', 'wnn'),
        seeds: int = 3, epochs: int = 60, batch_size: int = 64,
        learning_rate: float = 1e-3, progress: bool = True) -> str:
  """Runs every method for every seed and returns a markdown report.

  Args:
    methods: ``'adam'`` (always run, the baseline) and forecasters among
      ``METHODS``.
    seeds: Number of seeds per method (>= 1).
    epochs: Training budget in epochs.
    batch_size: Minibatch size.
    learning_rate: Adam's learning rate.
    progress: Show a progress bar.

  Returns:
    The report as markdown text.
  """
  if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
    raise ValueError(f'seeds must be a positive int, got {seeds!r}')
  if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
    raise ValueError(f'epochs must be a positive int, got {epochs!r}')
  for method in methods:
    if method not in METHODS:
      raise ValueError(f'methods must be among {METHODS}, got {method!r}')
  methods = ['adam'] + [m for m in methods if m != 'adam']
  ds = data_lib.load_digits()
  results = {m: [] for m in methods}
  jobs = [(s, m) for s in range(seeds) for m in methods]  # side by side
  for seed, method in tqdm.tqdm(jobs, desc='digits-mlp', disable=not progress):
    results[method].append(train(method, seed, ds, epochs=epochs,
                                 batch_size=batch_size,
                                 learning_rate=learning_rate))
  best_adam = np.mean([max(r.accuracy) for r in results['adam']])
  target = 0.99 * best_adam
  base = [r.steps_to(target) for r in results['adam']]
  lines = [
      f'digits-mlp: {len(ds.x_train)} train / {len(ds.x_test)} test images,'
      f' MLP 64-128-64-10, Adam {learning_rate}, batch {batch_size},'
      f' {epochs} epochs ({results["adam"][0].steps[-1]} steps), {seeds}'
      ' seeds',
      f'target test accuracy {target:.4f} (99% of plain Adam\'s mean best'
      f' {best_adam:.4f})',
      '',
      '| method | best acc (mean ± std) | steps to target (mean ± std) |'
      ' reached | speed-up vs adam (steps) | seconds per run | jumps |',
      '|---|---|---|---|---|---|---|',
  ]
  for method in methods:
    runs = results[method]
    best = [max(r.accuracy) for r in runs]
    reach = [r.steps_to(target) for r in runs]
    ok = [s for s in reach if s is not None]
    ratios = [b / s for b, s in zip(base, reach)
              if b is not None and s is not None]
    steps_txt = (f'{np.mean(ok):.0f} ± {np.std(ok):.0f}' if ok else '-')
    speed_txt = (f'{np.mean(ratios):.2f} ± {np.std(ratios):.2f}'
                 if ratios else '-')
    lines.append(
        f'| {method} | {np.mean(best):.4f} ± {np.std(best):.4f} |'
        f' {steps_txt} | {len(ok)}/{len(runs)} | {speed_txt} |'
        f' {np.mean([r.seconds for r in runs]):.1f} |'
        f' {np.mean([r.jumps for r in runs]):.0f} |')
  return '\n'.join(lines)
