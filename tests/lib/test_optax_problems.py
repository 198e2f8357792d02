"""optax's convergence tests, run against ``optimizer + nowcast`` chains.

After optax's ``alias_test.test_optimization``: each optimizer of optax's
list, with optax's learning rates, runs 10,000 steps on optax's parabola and
Rosenbrock function and must end with params within ``rtol=atol=3e-2`` of
the optimum, as it does alone. Here it does so with a ``nowcast`` chained
after it, for every forecaster, jumping every ``window`` records of 10 steps
until the very last step (about 300 jumps), with the documented safe default:
**checked jumps**, i.e. ``value_fn`` passed to ``update``. Blind jumps to the
end do not meet optax's targets (``results/optax_convergence.md``: Adam +
``linear`` keeps kicking the params off the parabola's optimum, SGD with
momentum + ``linear`` or ``quadratic`` reaches NaN on Rosenbrock within 70
steps), which is why a periodic schedule's blind jumps must stop at
``last_jump_step`` and the battery checks the checked ones.

The quick run covers every forecaster with Adam and SGD with momentum (and
complex64 params with Adam); the ``slow`` run every optimizer of the list,
with the curve fits and one learned forecaster (WNN): what an optimizer's
state does with a jump does not depend on which network forecast it, and
each learned forecaster compiles for seconds.
"""

from __future__ import annotations

import itertools
import warnings

from absl.testing import parameterized
import chex
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from optax_nowcast.lab.bench import optax_problems

QUICK_OPTIMIZERS = (('adam', dict(learning_rate=1e-1)),
                    ('sgd', dict(learning_rate=1e-3, momentum=0.9)))
SLOW_OPTIMIZERS = tuple(o for o in optax_problems.OPTIMIZERS
                        if o not in QUICK_OPTIMIZERS)
# The quick suite runs the learned forecasters (seconds to compile each)
# with the first quick optimizer only; the slow suite the rest.
LEARNED = tuple(f for f in optax_problems.FORECASTERS
                if f not in optax_problems.CURVE_FITS)
#: The slow suite's forecasters on every other optimizer.
EVERY_OPTIMIZER_FORECASTERS = optax_problems.CURVE_FITS + ('wnn',)


def _product(optimizers, **axes):
  return [dict(opt_name=name, opt_kwargs=kwargs, **rest)
          for name, kwargs in optimizers
          for rest in (dict(zip(axes, values)) for values in
                       itertools.product(*axes.values()))]


class _Runs(parameterized.TestCase):
  """Runs one case and checks optax's target (no tests of its own)."""

  def _check(self, opt_name, opt_kwargs, problem, forecaster,
             dtype=jnp.float32):
    with warnings.catch_warnings():
      # optax's problems have one bare array for params: nino says, once,
      # that its graph places nothing and nino-mlp forecasts it (its own
      # test: test_nino.py).
      warnings.filterwarnings(
          'ignore', message='nino: .* not in the neural graph')
      out = optax_problems.run(opt_name, opt_kwargs, problem, forecaster,
                               'checked', record_every=10, dtype=dtype)
    self.assertEqual(out.nonfinite_at, -1)
    chex.assert_trees_all_close(out.params, out.final_params, rtol=3e-2,
                                atol=3e-2)
    # The jumps did happen (and were checked) all along the run.
    jumps = int(optax.tree.get(out.state, 'jumps'))
    selected = np.asarray(optax.tree.get(out.state, 'selected'))
    self.assertEqual(int(selected.sum()), jumps)
    self.assertGreaterEqual(jumps, 4)


class OptaxProblemsTest(_Runs):

  @parameterized.parameters(
      _product(QUICK_OPTIMIZERS, problem=tuple(optax_problems.PROBLEMS),
               forecaster=optax_problems.CURVE_FITS)
      + _product(QUICK_OPTIMIZERS[:1], problem=tuple(optax_problems.PROBLEMS),
                 forecaster=LEARNED))
  def test_checked_jumps_reach_optax_targets(self, opt_name, opt_kwargs,
                                             problem, forecaster):
    """With checked jumps to the end, the optimizer reaches optax's target."""
    self._check(opt_name, opt_kwargs, problem, forecaster)

  @parameterized.parameters(_product(
      QUICK_OPTIMIZERS[:1], problem=tuple(optax_problems.PROBLEMS),
      forecaster=('linear', 'wnn')))
  def test_checked_jumps_reach_optax_targets_complex(
      self, opt_name, opt_kwargs, problem, forecaster):
    """Complex64 params (real and imaginary parts forecast apart) too."""
    self._check(opt_name, opt_kwargs, problem, forecaster, jnp.complex64)


@pytest.mark.slow  # about 210 runs of 10,000 steps
class OptaxProblemsEveryOptimizerTest(_Runs):
  """Every other optimizer of optax's list, likewise."""

  @parameterized.parameters(
      _product(SLOW_OPTIMIZERS, problem=tuple(optax_problems.PROBLEMS),
               forecaster=EVERY_OPTIMIZER_FORECASTERS)
      + _product(QUICK_OPTIMIZERS[1:], problem=tuple(optax_problems.PROBLEMS),
                 forecaster=LEARNED))
  def test_checked_jumps_reach_optax_targets_every_optimizer(
      self, opt_name, opt_kwargs, problem, forecaster):
    """With checked jumps to the end, the optimizer reaches optax's target."""
    self._check(opt_name, opt_kwargs, problem, forecaster)
