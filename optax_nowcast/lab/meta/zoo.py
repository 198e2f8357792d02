"""The runs whose trajectories the shipped forecasters are trained on.

The benchmark tasks ``mnist-cnn`` and ``shakespeare-charlm`` (and
``digits-mlp``, the demo task) are never recorded here, so the benchmark can
show whether the forecasters generalise to what they never saw. Validation
holds out whole tasks (``HOLDOUT``).
"""

from __future__ import annotations

from optax_nowcast.lab.meta.trajectories import RunSpec

#: Never used for meta-training (the benchmark's unseen tasks).
UNSEEN = ('mnist-cnn', 'shakespeare-charlm', 'digits-mlp')

#: Tasks whose runs are kept for validation only, per zoo.
HOLDOUT = {'full': ('fmnist-mlp',), 'tiny': ('digits-mlp-narrow',)}

_OPTIMIZERS = (('adam', 1e-3), ('adam', 3e-3), ('adamw', 1e-3),
               ('sgdm', 0.05))


def runs(name: str) -> list[RunSpec]:
  """The runs of a zoo configuration.

  Args:
    name: ``'full'`` (the shipped forecasters; about 40 minutes on 2 CPU
      cores) or ``'tiny'`` (CI: a few runs on the embedded digits, minutes).

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
  raise ValueError(f"zoo name must be 'tiny' or 'full', got {name!r}")
