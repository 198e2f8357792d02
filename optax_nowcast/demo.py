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

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import tqdm

from optax_nowcast import data as data_lib
from optax_nowcast import forecasters
from optax_nowcast._nowcast import nowcast


class MLP(nn.Module):
  """64 -> 128 -> 64 -> 10 ReLU MLP."""

  @nn.compact
  def __call__(self, x):
    x = x.reshape(x.shape[0], -1)
    x = nn.relu(nn.Dense(128)(x))
    x = nn.relu(nn.Dense(64)(x))
    return nn.Dense(10)(x)


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


_FORECASTERS = {'linear': forecasters.linear,
                'quadratic': forecasters.quadratic}
METHODS = ('adam',) + tuple(_FORECASTERS)


def make_tx(method: str, learning_rate: float, steps_per_epoch: int,
            epochs: int) -> optax.GradientTransformation:
  """Adam, or Adam + nowcast with the named curve-fit forecaster.

  WNN's schedule: a record per epoch, a jump every 5 records, none in the
  last 10% of the budget.
  """
  adam = optax.adam(learning_rate)
  if method == 'adam':
    return adam
  return optax.chain(adam, nowcast(
      _FORECASTERS[method](window=5, horizon=5),
      record_every=steps_per_epoch,
      jump_every=5,
      last_jump_step=int(0.9 * epochs * steps_per_epoch),
  ))


def train(method: str, seed: int, ds: data_lib.Dataset, *, epochs: int,
          batch_size: int, learning_rate: float) -> RunResult:
  """Trains one MLP; the whole epoch is one jitted ``lax.scan``."""
  model = MLP()
  steps_per_epoch = len(ds.x_train) // batch_size
  tx = make_tx(method, learning_rate, steps_per_epoch, epochs)
  key = jax.random.key(seed)
  params = model.init(key, ds.x_train[:1])['params']
  opt_state = tx.init(params)
  x_train, y_train = jnp.asarray(ds.x_train), jnp.asarray(ds.y_train)
  x_test, y_test = jnp.asarray(ds.x_test), jnp.asarray(ds.y_test)

  def loss_fn(params, x, y):
    logits = model.apply({'params': params}, x)
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

  def step(carry, idx):
    params, opt_state = carry
    loss, grads = jax.value_and_grad(loss_fn)(params, x_train[idx],
                                              y_train[idx])
    updates, opt_state = tx.update(grads, opt_state, params, value=loss)
    return (optax.apply_updates(params, updates), opt_state), loss

  @jax.jit
  def epoch(params, opt_state, key):
    perm = jax.random.permutation(key, len(x_train))
    perm = perm[: steps_per_epoch * batch_size].reshape(steps_per_epoch, -1)
    (params, opt_state), _ = jax.lax.scan(step, (params, opt_state), perm)
    acc = jnp.mean(
        jnp.argmax(model.apply({'params': params}, x_test), -1) == y_test)
    return params, opt_state, acc

  steps, accuracy = [], []
  start = time.perf_counter()
  for e in range(epochs):
    key, sub = jax.random.split(key)
    params, opt_state, acc = epoch(params, opt_state, sub)
    steps.append((e + 1) * steps_per_epoch)
    accuracy.append(float(acc))
  seconds = time.perf_counter() - start
  jumps = int(opt_state[1].jumps) if method != 'adam' else 0
  return RunResult(method, seed, steps, accuracy, jumps, seconds)


def run(methods: Sequence[str] = ('adam', 'linear', 'quadratic'),
        seeds: int = 3, epochs: int = 60, batch_size: int = 64,
        learning_rate: float = 1e-3, progress: bool = True) -> str:
  """Runs every method for every seed and returns a markdown report.

  Args:
    methods: ``'adam'`` (always run, the baseline) and curve-fit forecasters.
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
