"""The runs whose trajectories the forecasters are trained on.

The benchmark tasks ``mnist-cnn`` and ``shakespeare-charlm`` (and
``digits-mlp``, the demo task) are never recorded here, so the benchmark can
show whether the forecasters generalise to what they never saw; nor is any
recurrent network or autoencoder, kept for an independent check. Validation
holds out whole tasks (``HOLDOUT``).

Zoos:

- ``'tiny'``: 4 runs on the embedded digits (CI, a minute).
- ``'full'``: the 28 runs the shipped forecasters of version 0.2 saw (about
  15 minutes on 2 CPU cores).
- ``'corpus'``: the meta-training corpus, 360 runs: MLPs of 1-3 layers
  and 32-512 units on digits, MNIST and Fashion-MNIST, CNNs of 2-4 stride-2
  convolutions on digits and Fashion-MNIST (FM-16 among them), character
  transformers of 1-2 blocks on the Python standard library's source
  (:func:`optax_nowcast.lab.data.load_pystdlib`); Adam, AdamW and SGD with
  momentum at learning rates drawn log-uniformly (:data:`CORPUS_LEARNING_RATES`,
  30x ranges), batch sizes 16-256; a snapshot every 10-15 steps. Groups of 4
  runs of a task (seeds and learning rates) train at once under ``jax.vmap``
  (1.2-1.6x faster than one by one for the MLPs and CNNs, about even for the
  transformers). About 450 MB (256 scalars kept per leaf), and an estimated
  1-1.5 hours in one process on the 2-core development CPU, from full-length
  groups of each run family timed while other jobs loaded the machine::

    optax-nowcast collect --zoo corpus --out trajectories/corpus
    # or on two processes, same --out, resumable the same way:
    optax-nowcast collect --zoo corpus --out trajectories/corpus --worker 0/2 &
    optax-nowcast collect --zoo corpus --out trajectories/corpus --worker 1/2
"""

from __future__ import annotations

import math

import numpy as np

from optax_nowcast.lab.meta.trajectories import RunSpec

#: Never used for meta-training (the benchmark's unseen tasks).
UNSEEN = ('mnist-cnn', 'shakespeare-charlm', 'digits-mlp')

#: Tasks whose runs are kept for validation only, per zoo.
HOLDOUT = {
    'full': ('fmnist-mlp',),
    'tiny': ('digits-mlp-narrow',),
    'corpus': ('zoo-digits-mlp-128x3', 'zoo-fmnist-mlp-64x2',
               'zoo-fmnist-cnn-8x3', 'zoo-pystdlib-tf-48x2'),
}

ZOOS = ('tiny', 'full', 'corpus')

_OPTIMIZERS = (('adam', 1e-3), ('adam', 3e-3), ('adamw', 1e-3),
               ('sgdm', 0.05))

#: The corpus's learning-rate range per optimizer, drawn log-uniformly.
CORPUS_LEARNING_RATES = {
    'adam': (3e-4, 1e-2),
    'adamw': (3e-4, 1e-2),
    'sgdm': (1e-2, 0.3),
}
#: Runs of a corpus group (one task, optimizer and batch size; trained at once).
CORPUS_GROUP = 4
#: Groups per corpus task; their optimizers cycle through this sequence.
CORPUS_GROUPS = 3
_CORPUS_OPTIMIZER_CYCLE = ('adam', 'adamw', 'adam', 'sgdm')
#: Scalars kept per leaf (every leaf's mean and std are kept too).
CORPUS_MAX_PER_LEAF = 256
#: Test images evaluated at each of the 10 evaluations of a corpus run.
CORPUS_EVAL_EXAMPLES = 2000

# (tasks, batch sizes cycled through, steps between snapshots).
_CORPUS_FAMILIES = (
    (('zoo-digits-mlp-32x1', 'zoo-digits-mlp-64x2', 'zoo-digits-mlp-128x1',
      'zoo-digits-mlp-128x3', 'zoo-digits-mlp-256x2', 'zoo-digits-mlp-512x1',
      'digits-cnn', 'zoo-digits-cnn-8x2', 'zoo-digits-cnn-8x3',
      'zoo-digits-cnn-32x2'), (32, 64, 128, 256), 10),
    (('zoo-mnist-mlp-32x3', 'zoo-mnist-mlp-64x1', 'zoo-mnist-mlp-128x2',
      'zoo-mnist-mlp-256x1', 'zoo-mnist-mlp-512x2', 'zoo-fmnist-mlp-32x2',
      'zoo-fmnist-mlp-64x2', 'zoo-fmnist-mlp-128x3', 'zoo-fmnist-mlp-256x1',
      'zoo-fmnist-mlp-512x1'), (32, 64, 128, 256), 15),
    (('fmnist-cnn16', 'zoo-fmnist-cnn-8x2', 'zoo-fmnist-cnn-8x3',
      'zoo-fmnist-cnn-8x4', 'zoo-fmnist-cnn-12x3'), (32, 64, 128), 15),
    (('zoo-pystdlib-tf-32x1', 'zoo-pystdlib-tf-32x2', 'zoo-pystdlib-tf-48x2',
      'zoo-pystdlib-tf-64x1', 'zoo-pystdlib-tf-64x2'), (16, 32), 12),
)
# fmnist-cnn16 is registered with NiNo's 10,000 steps; the corpus's image
# runs are 3,000 (digits: 2,000, text: 2,400, as registered).
_CORPUS_STEPS = {'fmnist-cnn16': 3000, 'digits-cnn': 2000}


def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
  """A log-uniform draw from ``[low, high]``, rounded to 3 digits."""
  return float(f'{math.exp(rng.uniform(math.log(low), math.log(high))):.3g}')


def _corpus() -> list[RunSpec]:
  rng = np.random.default_rng(20261123)
  specs = []
  count = 0
  for tasks, batch_sizes, snapshot_every in _CORPUS_FAMILIES:
    for t, task in enumerate(tasks):
      used = set()
      for g in range(CORPUS_GROUPS):
        optimizer = _CORPUS_OPTIMIZER_CYCLE[
            (count + g) % len(_CORPUS_OPTIMIZER_CYCLE)]
        # The next batch size in the cycle, another one if this task
        # already has a group with this optimizer and batch size.
        cycle = [batch_sizes[(t + g + i) % len(batch_sizes)]
                 for i in range(len(batch_sizes))]
        batch = next((b for b in cycle if (optimizer, b) not in used),
                     cycle[0])
        used.add((optimizer, batch))
        low, high = CORPUS_LEARNING_RATES[optimizer]
        for m in range(CORPUS_GROUP):
          specs.append(RunSpec(
              task, optimizer, _log_uniform(rng, low, high),
              seed=g * CORPUS_GROUP + m, steps=_CORPUS_STEPS.get(task),
              batch_size=batch, snapshot_every=snapshot_every,
              max_per_leaf=CORPUS_MAX_PER_LEAF,
              eval_examples=CORPUS_EVAL_EXAMPLES,
              group=f'{task}/{optimizer}/b{batch}/{g}'))
      count += 1
  return specs


def runs(name: str) -> list[RunSpec]:
  """The runs of a zoo configuration.

  Args:
    name: ``'corpus'`` (the meta-training corpus, see the module docstring),
      ``'full'`` (the shipped forecasters of version 0.2; about 15 minutes
      on 2 CPU cores) or ``'tiny'`` (CI: a few runs on the embedded digits,
      a minute).

  Returns:
    The run specs.
  """
  if name == 'tiny':
    return [
        RunSpec('digits-mlp-wide', 'adam', 1e-3, 0, steps=660),
        RunSpec('digits-mlp-wide', 'sgdm', 0.05, 1, steps=660),
        RunSpec('digits-cnn', 'adam', 3e-3, 0, steps=660),
        RunSpec('digits-mlp-narrow', 'adam', 1e-3, 0, steps=660),
    ]
  if name == 'full':
    specs = []
    for task, seeds in (('digits-mlp-wide', 2), ('digits-cnn', 2),
                        ('fmnist-cnn16', 1), ('mnist-mlp', 1),
                        ('fmnist-mlp', 1)):
      for opt, lr in _OPTIMIZERS:
        for seed in range(seeds):
          steps = 2340 if task in ('fmnist-cnn16', 'mnist-mlp') else None
          specs.append(RunSpec(task, opt, lr, seed, steps=steps))
    return specs
  if name == 'corpus':
    return _corpus()
  raise ValueError(f'zoo name must be one of {ZOOS}, got {name!r}')
