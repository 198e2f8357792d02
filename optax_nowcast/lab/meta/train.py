"""Fitting a learned forecaster to trajectory samples.

L1 loss, optax Adam with an exponentially decaying learning rate, jitted
minibatch steps run in chunks under ``lax.scan``. Validation reports the mean
absolute error in weight units on held-out samples next to the ``last``
(no jump) and least-squares ``linear`` baselines, per label kind.

- WNN: one network per label kind, trained on L1 in its normalised units
  (the error divided by the window's scale ``2 (max - min + 1e-5)``, as the
  paper's Keras model trains on normalised data), plus its L1 weight penalty.
- Introspection: one network, L1 on weights scaled by 1000.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax
import tqdm

from optax_nowcast.forecasters import _curve_fit
from optax_nowcast.forecasters import _introspection
from optax_nowcast.forecasters import _wnn
from optax_nowcast.lab.meta import windows as windows_lib

WNN_LABELS = ('conv', 'dense', 'bias')


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


def _scale(windows: jax.Array) -> jax.Array:
  return 2.0 * (windows.max(-1) - windows.min(-1) + 1e-5)


def predict(kind: str, weights: Any, samples: windows_lib.Samples,
            batch: int = 65536) -> np.ndarray:
  """Forecasts of every sample in weight units (batched, jitted)."""
  out = np.empty(len(samples), np.float32)
  if kind == 'wnn':
    fns = {l: jax.jit(lambda w, x, l=l: _wnn.wnn_apply_batch(w, x, l))
           for l in WNN_LABELS}
  else:
    fn = jax.jit(_introspection.introspection_apply_batch)
  for label in np.unique(samples.labels):
    idx = np.nonzero(samples.labels == label)[0]
    for start in range(0, len(idx), batch):
      part = idx[start:start + batch]
      x = jnp.asarray(samples.windows[part])
      if kind == 'wnn':
        out[part] = np.asarray(fns[str(label)](weights, x))
      else:
        out[part] = np.asarray(fn(weights, x))
  return out


def baselines(kind: str, samples: windows_lib.Samples,
              horizon: Optional[float]) -> dict[str, np.ndarray]:
  """The ``last`` and least-squares ``linear`` forecasts of the samples."""
  w = samples.windows.astype(np.float64)
  if kind == 'wnn':
    times = np.arange(1 - w.shape[1], 1, dtype=np.float32)
    target = float(horizon)
  else:  # inputs at 0, 0.4t, 0.7t, t (in units of t, relative to t)
    times = np.array([-1.0, -0.6, -0.3, 0.0], np.float32)
    target = 1.0
  coef = np.asarray(_curve_fit.polyfit_coefficients(
      jnp.asarray(times), jnp.float32(target), 1), np.float64)
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

  Returns:
    The weights and the training loss after each chunk.
  """
  if kind not in ('wnn', 'introspection'):
    raise ValueError(f"kind must be 'wnn' or 'introspection', got {kind!r}")
  key = jax.random.key(config.seed)
  init_key, data_key = jax.random.split(key)
  schedule = optax.exponential_decay(
      config.learning_rate, config.decay_every, config.decay_rate,
      staircase=True)
  tx = optax.adam(schedule)

  if kind == 'wnn':
    weights = _wnn.init_wnn_weights(init_key)
    pools = {}
    for label in WNN_LABELS:
      mask = train.labels == label
      if mask.any():
        pools[label] = (jnp.asarray(train.windows[mask]),
                        jnp.asarray(train.targets[mask]))
    if not pools:
      raise ValueError('no WNN training samples with labels'
                       f' {WNN_LABELS}; got {train.summary()["labels"]}')

    def loss_fn(weights, key):
      total = 0.0
      for i, (label, (xs, ys)) in enumerate(sorted(pools.items())):
        idx = jax.random.randint(jax.random.fold_in(key, i),
                                 (config.batch_size,), 0, len(ys))
        x, y = xs[idx], ys[idx]
        pred = _wnn.wnn_apply_batch(weights, x, label)
        total += jnp.mean(jnp.abs(pred - y) / _scale(x))
      return total / len(pools) + _wnn.wnn_l1_penalty(weights)
  else:
    weights = _introspection.init_introspection_weights(init_key)
    xs, ys = jnp.asarray(train.windows), jnp.asarray(train.targets)

    def loss_fn(weights, key):
      idx = jax.random.randint(key, (config.batch_size,), 0, len(ys))
      pred = _introspection.introspection_apply_batch(weights, xs[idx])
      return jnp.mean(jnp.abs(pred - ys[idx])) * 1000.0

  opt_state = tx.init(weights)

  def step(carry, i):
    weights, opt_state = carry
    loss, grads = jax.value_and_grad(loss_fn)(
        weights, jax.random.fold_in(data_key, i))
    updates, opt_state = tx.update(grads, opt_state, weights)
    return (optax.apply_updates(weights, updates), opt_state), loss

  @jax.jit
  def run_chunk(weights, opt_state, start):
    (weights, opt_state), losses = jax.lax.scan(
        step, (weights, opt_state), start + jnp.arange(config.chunk))
    return weights, opt_state, jnp.mean(losses)

  losses = []
  chunks = -(-config.steps // config.chunk)
  bar = tqdm.trange(chunks, desc=f'train {kind}', disable=not progress)
  for c in bar:
    weights, opt_state, loss = run_chunk(weights, opt_state,
                                         jnp.int32(c * config.chunk))
    losses.append(float(loss))
    bar.set_postfix(loss=f'{losses[-1]:.4g}')
  return weights, losses


def timed_fit(kind: str, train: windows_lib.Samples, config: TrainConfig,
              **kwargs: Any) -> tuple[Any, list[float], float]:
  start = time.perf_counter()
  weights, losses = fit(kind, train, config, **kwargs)
  return weights, losses, time.perf_counter() - start
