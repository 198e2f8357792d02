"""Fitting a learned forecaster to trajectory samples.

Any registered learned forecaster (``optax_nowcast.forecasters._registry``):
its own loss and penalty, optax Adam with an exponentially decaying learning
rate, jitted minibatch steps run in chunks under ``lax.scan``. Validation
reports the mean absolute error in weight units on held-out samples next to
the ``last`` (no jump) and least-squares ``linear`` baselines, per label kind.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax
import tqdm

from optax_nowcast.forecasters import _curve_fit
from optax_nowcast.forecasters import _registry as registry
from optax_nowcast.lab.meta import windows as windows_lib


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """Meta-training hyperparameters."""

  steps: int = 4000
  batch_size: int = 512
  learning_rate: float = 1e-3
  decay_every: int = 1000
  decay_rate: float = 0.5
  seed: int = 0
  chunk: int = 200

  def __post_init__(self):
    for name in ('steps', 'batch_size', 'decay_every', 'chunk'):
      value = getattr(self, name)
      if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f'{name} must be a positive int, got {value!r}')
    if not self.learning_rate > 0:
      raise ValueError(
          f'learning_rate must be positive, got {self.learning_rate!r}')


def predict(kind: str, weights: Any, samples: windows_lib.Samples,
            batch: int = 65536) -> np.ndarray:
  """Forecasts of every sample in weight units (batched, jitted)."""
  learned = registry.get(kind)
  fn = jax.jit(learned.apply_batch, static_argnums=2)
  out = np.empty(len(samples), np.float32)
  for label in np.unique(samples.labels):
    idx = np.nonzero(samples.labels == label)[0]
    for start in range(0, len(idx), batch):
      part = idx[start:start + batch]
      out[part] = np.asarray(
          fn(weights, jnp.asarray(samples.windows[part]), str(label)))
  return out


def baselines(kind: str, samples: windows_lib.Samples,
              horizon: Optional[float]) -> dict[str, np.ndarray]:
  """The ``last`` and least-squares ``linear`` forecasts of the samples."""
  times, target = registry.get(kind).window_times(horizon)
  coef = np.asarray(_curve_fit.polyfit_coefficients(
      jnp.asarray(times), jnp.float32(target), 1), np.float64)
  w = samples.windows.astype(np.float64)
  return {'last': w[:, -1], 'linear': w @ coef}


def validation_table(kind: str, weights: Any, samples: windows_lib.Samples,
                     horizon: Optional[float]) -> dict[str, dict[str, float]]:
  """Mean |forecast - target| in weight units per label and overall."""
  preds = {kind: predict(kind, weights, samples)}
  preds.update(baselines(kind, samples, horizon))
  table = {}
  groups = {'all': np.ones(len(samples), bool)}
  for label in np.unique(samples.labels):
    groups[str(label)] = samples.labels == label
  for name, pred in preds.items():
    table[name] = {g: float(np.mean(np.abs(pred[m] - samples.targets[m])))
                   for g, m in groups.items() if m.any()}
  return table


def fit(kind: str, train: windows_lib.Samples, config: TrainConfig, *,
        progress: bool = True) -> tuple[Any, list[float]]:
  """Trains a fresh ``kind`` forecaster on ``train``.

  Each step draws ``batch_size`` samples from every pool (one per label
  kind the forecaster trains separately, or one for all), averages the
  forecaster's own loss over the pools and adds its penalty.

  Returns:
    The weights and the training loss after each chunk.
  """
  learned = registry.get(kind)
  key = jax.random.key(config.seed)
  init_key, data_key = jax.random.split(key)
  schedule = optax.exponential_decay(
      config.learning_rate, config.decay_every, config.decay_rate,
      staircase=True)
  tx = optax.adam(schedule)
  weights = learned.init_weights(init_key)
  if learned.labels is None:
    groups = {'all': np.ones(len(train), bool)}
  else:
    groups = {label: train.labels == label for label in learned.labels}
  pools = {label: (jnp.asarray(train.windows[m]), jnp.asarray(train.targets[m]))
           for label, m in sorted(groups.items()) if m.any()}
  if not pools:
    raise ValueError(f'no {kind} training samples with labels'
                     f' {learned.labels}; got {train.summary()["labels"]}')

  def loss_fn(weights, key):
    total = 0.0
    for i, (label, (xs, ys)) in enumerate(pools.items()):
      # One pool draws from the step's key itself, several from keys folded
      # from it: the draws that made the shipped checkpoints.
      pool_key = key if len(pools) == 1 else jax.random.fold_in(key, i)
      idx = jax.random.randint(pool_key, (config.batch_size,), 0, len(ys))
      total += learned.loss(weights, xs[idx], ys[idx], label)
    return total / len(pools) + learned.penalty(weights)

  return run_steps(loss_fn, weights, tx, data_key, steps=config.steps,
                   chunk=config.chunk, desc=f'train {kind}',
                   progress=progress)


def run_steps(loss_fn: Callable[[Any, jax.Array], jax.Array], weights: Any,
              tx: optax.GradientTransformation, data_key: jax.Array, *,
              steps: int, chunk: int, desc: str,
              progress: bool = True) -> tuple[Any, list[float]]:
  """Minimises ``loss_fn(weights, key)`` with ``tx``: jitted chunks of
  ``lax.scan`` steps (``ceil(steps / chunk)`` of them), the step ``i``
  drawing its batch from ``fold_in(data_key, i)``, a progress bar moving
  per chunk.

  Returns:
    The weights and the mean training loss of each chunk.
  """

  def step(carry, i):
    weights, opt_state = carry
    loss, grads = jax.value_and_grad(loss_fn)(
        weights, jax.random.fold_in(data_key, i))
    updates, opt_state = tx.update(grads, opt_state, weights)
    return (optax.apply_updates(weights, updates), opt_state), loss

  @jax.jit
  def run_chunk(weights, opt_state, start):
    (weights, opt_state), losses = jax.lax.scan(
        step, (weights, opt_state), start + jnp.arange(chunk))
    return weights, opt_state, jnp.mean(losses)

  opt_state = tx.init(weights)
  losses = []
  chunks = -(-steps // chunk)
  bar = tqdm.tqdm(total=chunks * chunk, desc=desc, unit='step',
                  disable=None if progress else True)
  for c in range(chunks):
    weights, opt_state, loss = run_chunk(weights, opt_state,
                                         jnp.int32(c * chunk))
    losses.append(float(loss))
    bar.update(chunk)
    bar.set_postfix(loss=f'{losses[-1]:.4g}')
  bar.close()
  return weights, losses


def timed_fit(kind: str, train: windows_lib.Samples, config: TrainConfig,
              **kwargs: Any) -> tuple[Any, list[float], float]:
  start = time.perf_counter()
  weights, losses = fit(kind, train, config, **kwargs)
  return weights, losses, time.perf_counter() - start
