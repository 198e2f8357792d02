"""The optax contract of ``nowcast``: a battery over every valid configuration.

In the style of optax's ``contrib/_common_test.py`` and ``alias_test.py``:
each test states one property of an ``optax.GradientTransformationExtraArgs``
in its docstring and checks it with chex, over every valid combination of

- forecaster: ``last``, ``linear``, ``quadratic`` (curve fits, window 3 on
  the periodic schedule, 4 on the Introspection one) and every learned
  forecaster of the registry (``_registry.MODULES``: adding one there adds
  it here), as shipped (``forecasters.load``; fresh weights from key 0 for
  one that ships no checkpoint), on the periodic schedule with a record
  every step and a jump every ``window + 1`` records; one without a horizon
  of its own (``introspection``) gets horizon 2, one with
  ``forecast_leaves`` (``nino``) runs whole leaves;
- schedule: periodic (``record_every``/``jump_every``) or Introspection
  (``schedules.introspection([6, 10])``, window 4 only: the curve fits and
  ``introspection``);
- guard: ``guard_steps=None`` or ``guard_steps=2`` (periodic schedule only);
- ``history_dtype``: ``None`` or ``jnp.bfloat16``;
- jumps: blind (no ``value_fn``; the periodic schedule then needs an end,
  ``last_jump_step``, set far beyond the runs here) or checked (``update``
  gets ``value_fn``, the loss of the params, and each jump keeps the best of
  not jumping and the default ``select`` step sizes); checked with the
  params' dtype only;
- the params' dtype: float32; bfloat16 for the state's types in every
  configuration; float16 and float64 (under ``jax.enable_x64``), as in
  optax's battery, where the dtype matters: the state's types on the
  periodic schedule, a run's jumps and finiteness with every forecaster,
  ``last``'s exactness and ``linear``'s checked jumps.

Only the public API is used: ``onc.nowcast``, ``onc.forecasters``,
``onc.schedules`` and the ``NowcastState`` fields ``count``, ``jumps``,
``skipped``, ``nonfinite`` and ``history`` (``jumps`` found with
``optax.tree.get``, wherever a wrapper nests the state); the registry only
to list the learned forecasters.

Compiling a step takes a second or more on CPU, so every configuration's
jitted step is compiled once (:func:`_compiled`) and shared by the tests that
run it; each test still runs its own steps from ``init``. A property that
depends on fewer axes is run over those axes only; its test says why.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
from typing import Any, NamedTuple, Optional

from absl.testing import parameterized
import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optax_nowcast as onc
from optax_nowcast.forecasters import _io as forecaster_io
from optax_nowcast.forecasters import _registry

# Steps per run. Every configuration jumps at least twice within them, and the
# guard (2 steps) closes its window after the first jump.
NUM_STEPS = 14
CURVE_FITS = ('last', 'linear', 'quadratic')
FORECASTERS = CURVE_FITS + _registry.names()
INTROSPECTION_WINDOW = 4
INTROSPECTION_JUMPS = (6, 10)  # inputs at 0, 2, 4, 6 and 0, 4, 7, 10
GUARD_STEPS = 2
INNER_LR = 0.1
LAST_JUMP_STEP = 10**6
# The params' dtypes of optax's battery (float64 under jax.enable_x64).
PARAM_DTYPES = ('float16', 'bfloat16', 'float32', 'float64')
# Compiling dominates this file's run time. LLVM's -O0 halves it (WNN's step:
# 4 s -> 2 s) and changes nothing the tests check: XLA's HLO passes (fusion,
# control flow, donation) run as usual, only the CPU code is less optimised.
# Set to None to test with the default optimisation.
COMPILER_OPTIONS = {'xla_backend_optimization_level': 0}


def _forecaster(name: str, window: int = 3) -> onc.forecasters.Forecaster:
  """A curve fit of ``window``, or the learned forecaster ``name``.

  A learned forecaster has its own window (``window`` is for curve fits).
  """
  if name == 'last':
    return onc.forecasters.last(window=window)
  if name in CURVE_FITS:
    return getattr(onc.forecasters, name)(window=window, horizon=2)
  return _learned(name)


@functools.cache
def _learned(name: str) -> onc.forecasters.Forecaster:
  """The shipped ``name``, or fresh weights (key 0) if none ships."""
  if name in forecaster_io.SHIPPED:
    return onc.forecasters.load(name)
  return _registry.get(name).make(key=jax.random.key(0))


def _periodic(name: str) -> tuple[int, int, int]:
  """``(window, record_every, jump_every)`` of ``name``'s periodic schedule.

  ``jump_every > window`` (a jump needs a full window) and ``guard_steps=2
  <= (window - 1) * record_every`` (the guard's room).
  """
  if name in CURVE_FITS:
    return 3, 2, 3  # jumps at steps 6, 12
  window = _forecaster(name).window
  return window, 1, window + 1  # window 5: jumps at steps 6, 12


# Periodic schedule of each forecaster: (window, record_every, jump_every).
PERIODIC = {name: _periodic(name) for name in FORECASTERS}
# The forecasters the Introspection schedule (window 4) takes.
INTROSPECTIVE = tuple(
    name for name in FORECASTERS
    if name in CURVE_FITS or PERIODIC[name][0] == INTROSPECTION_WINDOW)


class Case(NamedTuple):
  """One valid configuration of ``nowcast``."""

  forecaster: str
  schedule: str  # 'periodic' or 'introspection'
  guard: bool
  history_dtype: Optional[str]  # None or 'bfloat16'
  checked: bool = False  # update gets value_fn: loss-checked jumps
  param_dtype: str = 'float32'  # one of PARAM_DTYPES

  @property
  def name(self) -> str:
    return '_'.join([
        self.forecaster, self.schedule,
        'guard' if self.guard else 'noguard',
        self.history_dtype or 'paramdtype'] + (
            ['checked'] if self.checked else []) + (
                [self.param_dtype + 'params']
                if self.param_dtype != 'float32' else []))


def _valid(case: Case) -> bool:
  if case.schedule == 'introspection':
    # The Introspection schedule has window 4 (WNN's is 5) and no room for a
    # guard (guards need the periodic schedule).
    return (case.forecaster in INTROSPECTIVE
            and not case.guard
            and not (case.checked and case.history_dtype))
  return not (case.checked and case.history_dtype)


ALL_CASES = tuple(
    case for case in itertools.starmap(Case, itertools.product(
        FORECASTERS, ('periodic', 'introspection'), (False, True),
        (None, 'bfloat16'), (False, True)))
    if _valid(case))
# Blind: 2 guards x 2 dtypes periodic + 2 dtypes Introspection; checked:
# 2 guards periodic + 1 Introspection.
assert len(ALL_CASES) == 6 * len(FORECASTERS) + 3 * len(INTROSPECTIVE)
CHECKED_CASES = tuple(c for c in ALL_CASES if c.checked)


def _named(cases, **extra):
  """``named_parameters`` arguments: ``case`` and ``extra``, named after it."""
  return [dict(testcase_name=c.name, case=c, **extra) for c in cases]


def _select(**axes):
  return tuple(c for c in ALL_CASES
               if all(getattr(c, k) == v for k, v in axes.items()))


def _with_param_dtypes(cases, dtypes=PARAM_DTYPES):
  """``cases`` with each of the params' ``dtypes``."""
  return tuple(c._replace(param_dtype=d) for c in cases for d in dtypes)


# One forecaster stands for all where the property does not read forecasts.
# Counts: schedule x guard x dtype, plus the checked ones (dtype None).
LINEAR_CASES = _select(forecaster='linear')  # 6 + 3
MASK_CASES = _select(forecaster='linear', history_dtype='bfloat16')  # 3
LAST_CASES = _select(forecaster='last')  # 6 + 3
PLUMBING_CASES = _select(forecaster='linear', history_dtype=None)  # 3 + 3
# Where the params' dtype reaches the numbers: every forecaster, blind on the
# periodic schedule (a jump's forecast, its cast back to the params' dtype),
# and linear's checked jumps (the candidates' losses), in float16 and
# float64 (float32 is ALL_CASES'; bfloat16's types: the first test).
DTYPE_CASES = _with_param_dtypes(
    _select(schedule='periodic', guard=False, history_dtype=None,
            checked=False)
    + _select(forecaster='linear', schedule='periodic', guard=False,
              checked=True), ('float16', 'float64'))


def _precision(case_or_dtype):
  """A context for the params' dtype: ``jax.enable_x64`` for float64."""
  dtype = getattr(case_or_dtype, 'param_dtype', case_or_dtype)
  return (jax.enable_x64(True) if dtype == 'float64'
          else contextlib.nullcontext())


# ----------------------------------------------------------------------------
# Building blocks.


def _nowcast(case: Case, **kwargs) -> optax.GradientTransformationExtraArgs:
  """The ``nowcast`` of ``case`` (``kwargs``: e.g. ``mask``, ``horizon``)."""
  history_dtype = None if case.history_dtype is None else jnp.bfloat16
  if case.schedule == 'introspection':
    return onc.nowcast(
        _forecaster(case.forecaster, INTROSPECTION_WINDOW),
        schedule=onc.schedules.introspection(list(INTROSPECTION_JUMPS)),
        history_dtype=history_dtype, **kwargs)
  window, record_every, jump_every = PERIODIC[case.forecaster]
  forecaster = _forecaster(case.forecaster, window)
  # A forecaster without a horizon of its own (introspection) ignores this
  # one; the others get it from the forecaster.
  kwargs.setdefault('horizon', 2 if forecaster.horizon is None else None)
  return onc.nowcast(
      forecaster,
      record_every=record_every,
      jump_every=jump_every,
      # Blind jumps need an end; these runs never reach this one.
      last_jump_step=LAST_JUMP_STEP,
      guard_steps=GUARD_STEPS if case.guard else None,
      history_dtype=history_dtype,
      **kwargs)


def _expected_jump_steps(case: Case, num_steps: int = NUM_STEPS) -> list[int]:
  """The steps that jump, from the documented semantics (no rollbacks).

  Periodic: the history restarts after every jump and ``jump_every >=
  window``, so every ``jump_every``-th record jumps, i.e. every step that is
  a multiple of ``record_every * jump_every``. Introspection: the given steps.
  """
  if case.schedule == 'introspection':
    return [t for t in INTROSPECTION_JUMPS if t <= num_steps]
  _, record_every, jump_every = PERIODIC[case.forecaster]
  period = record_every * jump_every
  return [n for n in range(1, num_steps + 1) if n % period == 0]


def _params(dtype: Any = 'float32') -> dict[str, jax.Array]:
  """Tiny params: a dense kernel, a bias and a scalar (all default labels)."""
  params = {
      'kernel': jnp.linspace(-1.0, 1.0, 12, dtype=jnp.float32).reshape(3, 4),
      'bias': jnp.array([0.5, -0.25, 0.0, 0.125], jnp.float32),
      'scale': jnp.array(0.75, jnp.float32),
  }
  return jax.tree.map(lambda p: p.astype(jnp.dtype(dtype)), params)


TARGET = {
    'kernel': jnp.full((3, 4), 2.0, jnp.float32),
    'bias': jnp.array([-1.0, 1.0, 2.0, -2.0], jnp.float32),
    'scale': jnp.array(3.0, jnp.float32),
}


def _loss(params) -> jax.Array:
  """A separable quadratic: the sum of squares of ``params - TARGET``."""
  return sum(
      jnp.sum(jnp.square(p.astype(jnp.float32) - t))
      for p, t in zip(jax.tree.leaves(params), jax.tree.leaves(TARGET)))


_jit_loss = jax.jit(_loss)


def _bias_excluded(params):
  """A ``mask`` callable: every leaf but the bias (rank 1) is nowcast."""
  return jax.tree.map(lambda p: jnp.ndim(p) != 1, params)


def _falling_values(num_steps: int = NUM_STEPS) -> list[jax.Array]:
  """A strictly falling "loss": a guard fed it never rolls a jump back."""
  return [jnp.float32(1.0 / n) for n in range(1, num_steps + 1)]


def _rollback_values() -> list[jax.Array]:
  """The loss from the first jump on: flat at the jump, worse after it.

  Fed after :func:`_falling_values` (whose moving average is below 1), it
  makes a guard roll the jump back at its verdict, ``GUARD_STEPS`` later.
  """
  return [jnp.float32(1.0)] + [jnp.float32(2.0)] * GUARD_STEPS


def _extra(checked: bool, value) -> dict[str, Any]:
  """The extra arguments of ``update``: ``value``, and ``value_fn`` if checked.
  """
  return dict(value=value, value_fn=_loss) if checked else dict(value=value)


def _step_fn(tx, checked: bool = False):
  """``(params, state, value) -> (params, state)``: one training step."""

  def step(params, state, value):
    grads = jax.grad(_loss)(params)
    updates, state = tx.update(grads, state, params,
                               **_extra(checked, value))
    return optax.apply_updates(params, updates), state

  return step


class Compiled(NamedTuple):
  tx: optax.GradientTransformationExtraArgs
  step: Any  # the pure Python step
  jit_step: Any  # jax.jit of it, which asserts it is traced at most once


@functools.cache
def _compiled(case: Optional[Case], mask: bool = False,
              param_dtype: str = 'float32') -> Compiled:
  """The chain ``sgd -> nowcast(case)`` (``None``: sgd alone) and its step.

  Cached: a configuration is compiled once for the whole module, and
  ``chex.assert_max_traces(n=1)`` holds over every test that runs it (the
  footprint chex keys its counter by includes the step's unique name). The
  step of ``case`` takes params of ``case.param_dtype``, sgd's alone
  ``param_dtype``.
  """
  inner = optax.sgd(INNER_LR)
  if case is None:
    tx = optax.with_extra_args_support(inner)
  else:
    tx = optax.chain(
        inner, _nowcast(case, mask=_bias_excluded if mask else None))
  step = _step_fn(tx, case is not None and case.checked)
  step.__name__ = 'step_' + (case.name if case else 'inner') + (
      '_masked' if mask else '') + (
          f'_{param_dtype}' if param_dtype != 'float32' else '')
  return Compiled(tx, step, jax.jit(chex.assert_max_traces(step, n=1),
                                    compiler_options=COMPILER_OPTIONS))


def _alone(case: Case) -> Compiled:
  """sgd alone, for params of ``case``'s dtype."""
  return _compiled(None, param_dtype=case.param_dtype)


def _run(step, tx, params, values):
  """Runs ``step`` from ``tx.init(params)``; returns params and states."""
  state = tx.init(params)
  all_params, all_states = [], []
  for value in values:
    params, state = step(params, state, value)
    all_params.append(params)
    all_states.append(state)
  return all_params, all_states


def _run_with_loss(step, tx, params, num_steps=NUM_STEPS):
  """Like :func:`_run`, feeding each step the loss of its starting params."""
  state = tx.init(params)
  all_params, all_states = [], []
  for _ in range(num_steps):
    params, state = step(params, state, _jit_loss(params))
    all_params.append(params)
    all_states.append(state)
  return all_params, all_states


def _before_first_jump(case: Case):
  """``(params, state)`` after the steps before ``case``'s first jump."""
  compiled = _compiled(case)
  first = _expected_jump_steps(case)[0]
  params, states = _run(compiled.jit_step, compiled.tx, _params(),
                        _falling_values(first - 1))
  return params[-1], states[-1]


def _ulps(dtype: str) -> dict[str, float]:
  """Tolerances of a few rounding errors of ``dtype`` (at least float32's)."""
  eps = float(jnp.finfo(dtype).eps)
  return dict(rtol=max(1e-6, 8 * eps), atol=max(1e-7, 8 * eps))


def _jumps_per_step(states) -> list[int]:
  """``NowcastState.jumps`` after each step, wherever the state nests it."""
  return [int(optax.tree.get(s, 'jumps')) for s in states]


def _jump_steps(states) -> list[int]:
  """The (1-based) steps at which ``NowcastState.jumps`` went up."""
  jumps = [0] + _jumps_per_step(states)
  return [n for n in range(1, len(jumps)) if jumps[n] > jumps[n - 1]]


# ----------------------------------------------------------------------------
# The battery.


class NowcastContractTest(parameterized.TestCase):

  # 1. -----------------------------------------------------------------------

  # float16 and float64 params over the periodic schedule's guard x history
  # dtype, blind (the dtype reaches the history and the guard's slot, not
  # the schedule nor the check; DTYPE_CASES also run them, under
  # chex.assert_max_traces).
  @parameterized.named_parameters(_named(
      _with_param_dtypes(ALL_CASES, ('bfloat16', 'float32'))
      + _with_param_dtypes(_select(schedule='periodic', checked=False),
                           ('float16', 'float64'))))
  def test_init_and_update_keep_structure_shapes_and_dtypes(self, case):
    """``update`` maps a state to one of the same tree, shapes and dtypes.

    Its updates are shaped and typed like the params, for float16,
    bfloat16, float32 and float64 params. As in optax's battery, ``update``
    runs as one branch of a ``lax.cond`` whose other branch passes the
    state through, which holds only if both branches agree on every type;
    ``jax.eval_shape`` traces every branch of ``update`` (jump, record,
    rollback) at once, so this holds for every step. The history holds
    ``history_dtype`` (default: the params' dtype), except that with a
    guard its last slot, which keeps the pre-jump params for a rollback,
    holds the params' own dtype; the counters are int32 scalars.
    """
    with _precision(case):
      tx = optax.chain(optax.sgd(INNER_LR), _nowcast(case))
      params = _params(case.param_dtype)
      state = tx.init(params)
      grads = jax.grad(_loss)(params)
      update = functools.partial(tx.update,
                                 **_extra(case.checked, jnp.float32(1.0)))

      def update_or_not(pred, grads, state, params):
        return jax.lax.cond(
            pred, update,
            lambda g, s, p: (jax.tree.map(jnp.zeros_like, g), s),
            grads, state, params)

      updates, new_state = jax.eval_shape(update_or_not, jnp.bool_(True),
                                          grads, state, params)
    chex.assert_trees_all_equal_shapes_and_dtypes(state, new_state)
    chex.assert_trees_all_equal_shapes_and_dtypes(updates, params)
    param_dtype = jnp.dtype(case.param_dtype)
    chex.assert_type(jax.tree.leaves(params), param_dtype)
    history_dtype = (jnp.dtype(jnp.bfloat16) if case.history_dtype
                     else param_dtype)
    self.assertNotEmpty(state[1].history)
    slots = state[1].history
    for k, slot in enumerate(slots):
      dtype = (param_dtype if case.guard and k == len(slots) - 1
               else history_dtype)
      chex.assert_trees_all_equal_shapes(slot, params)
      chex.assert_type(jax.tree.leaves(slot), dtype)
    for counter in (state[1].count, state[1].records, state[1].jumps,
                    state[1].skipped, state[1].nonfinite):
      chex.assert_shape(counter, ())
      chex.assert_type(counter, jnp.int32)

  # 2. -----------------------------------------------------------------------

  @parameterized.named_parameters(_named(ALL_CASES))
  def test_jitted_update_does_not_retrace(self, case):
    """A jitted step is traced once, over record, jump and plain steps.

    Every decision comes from int32 counters in the state, so the state's
    avals are a fixed point of ``update`` and nothing retraces.
    ``chex.assert_max_traces(n=1)`` raises on a second trace.
    """
    compiled = _compiled(case)
    params, states = _run(compiled.jit_step, compiled.tx, _params(),
                          _falling_values(NUM_STEPS + 4))
    # The run crossed jump steps and plain steps.
    self.assertLen(_jump_steps(states), len(_expected_jump_steps(
        case, NUM_STEPS + 4)))
    self.assertGreaterEqual(len(_jump_steps(states)), 2)
    for state in states:
      chex.assert_trees_all_equal_shapes_and_dtypes(state, states[0])
    chex.assert_trees_all_equal_shapes_and_dtypes(params[-1], _params())

  # 3. -----------------------------------------------------------------------

  @parameterized.named_parameters(_named(ALL_CASES))
  def test_jit_and_no_jit_agree(self, case):
    """The jitted step and the step run op by op give the same result.

    From the state of the step before the first jump, both run the jump and
    the ``GUARD_STEPS`` steps after it, with the loss script that makes a
    guard roll the jump back (see the rollback test), so the jump, record,
    watch and rollback branches are all compared. ``jax.disable_jit`` runs
    the Python branches of every ``lax.cond`` and loop: this compares the
    compiled program with the plain semantics. Tolerances: XLA fuses (and so
    rounds) differently from op-by-op dispatch, and the forecasts
    extrapolate that a little.
    """
    compiled = _compiled(case)
    params, state = _before_first_jump(case)

    def run(step):
      p, s, out = params, state, []
      for value in _rollback_values():
        p, s = step(p, s, value)
        out.append((p, s))
      return out

    jitted = run(compiled.jit_step)
    with jax.disable_jit():
      eager = run(compiled.step)
    self.assertEqual(_jump_steps([s for _, s in jitted]), [1])
    self.assertEqual(_jumps_per_step([s for _, s in jitted]),
                     _jumps_per_step([s for _, s in eager]))
    chex.assert_trees_all_close(jitted, eager, rtol=1e-5, atol=1e-5)

  # 4. -----------------------------------------------------------------------

  # Only the ``last`` forecaster: a jump to the newest value changes nothing,
  # so it is the one forecaster with a reference trajectory (the inner
  # optimizer's), over every schedule, guard and history dtype, and the
  # params' dtypes.
  @parameterized.named_parameters(_named(
      LAST_CASES + tuple(c for c in DTYPE_CASES if c.forecaster == 'last')))
  def test_last_trains_like_the_inner_optimizer_alone(self, case):
    """With ``last``, ``sgd -> nowcast`` trains like ``sgd`` alone.

    Jumps still happen (and are counted) on the schedule: a jump moves each
    weight to the newest value of its window, which is the would-be params
    at full precision even with a bfloat16 history, and in float16 or
    float64 params alike. The guard reads the real loss, which keeps
    falling, so it rolls nothing back.
    """
    with _precision(case):
      nowcast, alone = _compiled(case), _alone(case)
      params = _params(case.param_dtype)
      p_nowcast, states = _run_with_loss(nowcast.jit_step, nowcast.tx,
                                         params)
      p_alone, _ = _run_with_loss(alone.jit_step, alone.tx, params)
      # Up to float rounding: XLA fuses ``params + updates`` differently in
      # the two programs (they differ by an ulp already at step 1, before
      # any jump), hence tolerances of a few ulps rather than bitwise
      # equality.
      chex.assert_trees_all_close(p_nowcast, p_alone,
                                  **_ulps(case.param_dtype))
    self.assertGreater(int(states[-1][1].jumps), 0)
    self.assertEqual(_jump_steps(states), _expected_jump_steps(case))

  # 5. -----------------------------------------------------------------------

  # Extra arguments are plumbing of ``update``'s signature and the guard:
  # over schedule x guard, with one forecaster and the params' dtype.
  @parameterized.named_parameters(_named(PLUMBING_CASES))
  def test_extra_args_pass_through_a_chain(self, case):
    """Inside ``optax.chain``, ``nowcast`` takes extra keyword arguments.

    The chain is an ``optax.GradientTransformationExtraArgs``. Over the first
    jump and the guard's verdict on it (where the guard reads ``value``),
    unrelated extra arguments, an array and a string, are accepted and
    ignored: the params and state equal those without them. Without a
    guard, ``value`` is ignored too.
    """
    compiled = _compiled(case)
    tx = compiled.tx
    self.assertIsInstance(tx, optax.GradientTransformationExtraArgs)

    def step(params, state, value, unrelated):
      grads = jax.grad(_loss)(params)
      extra = dict(value=value) if case.guard else {}
      if case.checked:
        extra['value_fn'] = _loss
      updates, state = tx.update(grads, state, params, unrelated=unrelated,
                                 note='not for nowcast', **extra)
      return optax.apply_updates(params, updates), state

    params, state = _before_first_jump(case)
    plain, extra = [], []
    # A few steps: op by op is quicker than compiling another program.
    with jax.disable_jit():
      p, s = params, state
      for value in _rollback_values():
        p, s = compiled.step(p, s, value)
        plain.append((p, s))
      p, s = params, state
      for value in _rollback_values():
        p, s = step(p, s, value, jnp.ones(7))
        extra.append((p, s))
    chex.assert_trees_all_equal(plain, extra)
    self.assertEqual(_jump_steps([s for _, s in extra]), [1])

  # The check comes before any computation and only a guard makes it: the
  # one guarded configuration of the plumbing cases.
  @parameterized.named_parameters(
      _named(_select(forecaster='linear', history_dtype=None, guard=True)))
  def test_guard_requires_value(self, case):
    """With a guard, ``update`` without ``value`` raises a ValueError.

    Eagerly and under ``jit`` (at trace time), also inside ``optax.chain``
    when other extra arguments are passed.
    """
    tx = optax.chain(optax.sgd(INNER_LR), _nowcast(case))
    params = _params()
    state = tx.init(params)
    grads = jax.grad(_loss)(params)
    with self.assertRaisesRegex(ValueError, 'value'):
      tx.update(grads, state, params)
    with self.assertRaisesRegex(ValueError, 'value'):
      tx.update(grads, state, params, unrelated=1.0)
    with self.assertRaisesRegex(ValueError, 'value'):
      jax.jit(tx.update)(grads, state, params)
    without_guard = optax.chain(optax.sgd(INNER_LR), _nowcast(
        case._replace(guard=False)))
    # Without a guard the same call is fine.
    updates, _ = jax.eval_shape(without_guard.update, grads,
                                without_guard.init(params), params)
    chex.assert_trees_all_equal_shapes_and_dtypes(updates, params)

  # 6. -----------------------------------------------------------------------

  @parameterized.named_parameters(_named(ALL_CASES + DTYPE_CASES))
  def test_jumps_land_on_the_schedule_and_training_stays_finite(self, case):
    """Jumps happen exactly at the steps the schedule says.

    On the quadratic loss, with ``sgd``, params and state stay finite, no
    due jump is skipped and no forecast is non-finite, the params keep
    their dtype (float16 and float64 too). The guard reads a strictly
    falling value, so it keeps every jump.
    """
    with _precision(case):
      compiled = _compiled(case)
      params, states = _run(compiled.jit_step, compiled.tx,
                            _params(case.param_dtype), _falling_values())
      final = states[-1][1]
      expected = _expected_jump_steps(case)
      self.assertEqual(_jump_steps(states), expected)
      self.assertEqual(int(final.jumps), len(expected))
      self.assertEqual(int(final.count), NUM_STEPS)
      self.assertEqual(int(final.skipped), 0)
      self.assertEqual(int(final.nonfinite), 0)
      chex.assert_trees_all_equal_shapes_and_dtypes(
          params[-1], _params(case.param_dtype))
      chex.assert_tree_all_finite(params[-1])
      chex.assert_tree_all_finite(final)
      self.assertTrue(np.isfinite(float(_jit_loss(params[-1]))))

  # The guard's side of the schedule: its rollback. Over every forecaster with
  # a guard (so the periodic schedule), for each history dtype.
  @parameterized.named_parameters(
      _named(_select(guard=True, history_dtype=None)))
  def test_guard_rollback_returns_to_the_pre_jump_params(self, case):
    """A rolled-back jump puts the params back on ``p_n``, the pre-jump params.

    The guard is fed a loss that falls up to the first jump (step ``t``), is
    flat at it and worse after it, so it undoes the jump at its verdict,
    step ``t + GUARD_STEPS``;
    the params are then the would-be params ``p_t = params_{t-1} + u_t`` of
    the jump step (the ``nowcast`` docstring: "A rollback sets the params
    back to their pre-jump values p_n"). Tolerance: the rollback is an
    update, ``p + (p_t - p)``, rounded in float32.
    """
    self._check_rollback(case)

  @parameterized.named_parameters(
      _named(_select(guard=True, history_dtype='bfloat16')))
  def test_guard_rollback_returns_to_the_pre_jump_params_bf16_history(
      self, case):
    """As above with a bfloat16 history: the rollback still lands on ``p_n``.

    The guard's slot keeps the params' dtype, so nothing is rounded to the
    history's bfloat16 (a rollback restored ``p_n`` rounded to bfloat16,
    up to 3e-3 off, before this was fixed).
    """
    self._check_rollback(case)

  def _check_rollback(self, case):
    compiled, alone = _compiled(case), _compiled(None)
    params, state = _before_first_jump(case)  # params_{t-1}
    values = _rollback_values()
    # p_t: the inner optimizer's step alone (sgd is stateless).
    p_jump, _ = alone.jit_step(params, alone.tx.init(params), values[0])
    jumps = []
    for value in values:
      params, state = compiled.jit_step(params, state, value)
      jumps.append(int(state[1].jumps))
    self.assertEqual(jumps, [1] * len(values))  # a jump, counted once
    chex.assert_trees_all_close(params, p_jump, rtol=1e-6, atol=1e-6)

  # 7. -----------------------------------------------------------------------

  # Both wrappers only pass updates, state and extra arguments (the guard's
  # value) through: over schedule x guard. That the state's avals are a fixed
  # point of ``update`` for every history dtype, which ``MultiSteps``'s
  # ``lax.cond`` needs, is the first test.
  @parameterized.named_parameters(_named(PLUMBING_CASES))
  def test_inject_hyperparams_and_multisteps_compose(self, case):
    """``MultiSteps(inject_hyperparams(chain(sgd, nowcast)), k)`` works.

    ``k`` mini-steps on the same params accumulate the same gradient, so it
    trains like the plain chain over ``k`` times fewer steps, jumps included,
    with a state of stable shapes and dtypes; nowcast counts inner steps
    only. The injected hyperparameters are state entries: the learning
    rate, and on the periodic schedule nowcast's own ``horizon`` (so
    ``nowcast`` is rebuilt with a traced horizon on every step); setting
    the learning rate to 0 stops training.
    """
    k = 2
    if case.schedule == 'periodic':
      injected = optax.inject_hyperparams(
          lambda learning_rate, horizon: optax.chain(
              optax.sgd(learning_rate), _nowcast(case, horizon=horizon)))(
                  learning_rate=INNER_LR, horizon=2.0)
    else:
      injected = optax.inject_hyperparams(
          lambda learning_rate: optax.chain(
              optax.sgd(learning_rate), _nowcast(case)))(
                  learning_rate=INNER_LR)
    tx = optax.MultiSteps(injected, every_k_schedule=k)
    step = jax.jit(_step_fn(tx, case.checked),
                   compiler_options=COMPILER_OPTIONS)
    values = _falling_values()
    p_multi, s_multi = _run(step, tx, _params(),
                            [v for v in values for _ in range(k)])
    chain = _compiled(case)
    p_chain, s_chain = _run(chain.jit_step, chain.tx, _params(), values)
    init = tx.init(_params())
    for state in s_multi:
      chex.assert_trees_all_equal_shapes_and_dtypes(state, init)
    nowcast_state = lambda s: s.inner_opt_state.inner_state[1]
    self.assertEqual(int(nowcast_state(s_multi[-1]).count), NUM_STEPS)
    self.assertEqual(_jump_steps(s_multi[k - 1::k]),
                     _expected_jump_steps(case))
    # The injected numbers are arrays, the plain ones constants: they
    # round differently, and the jumps extrapolate that.
    chex.assert_trees_all_close(p_multi[k - 1::k], p_chain, rtol=1e-5,
                                atol=1e-5)
    # A learning rate of 0 set in the state takes effect.
    init.inner_opt_state.hyperparams['learning_rate'] = jnp.zeros(
        [], jnp.float32)
    params, state = _params(), init
    for value in values:
      for _ in range(k):
        params, state = step(params, state, value)
    # Up to the rounding of the forecast of a constant window.
    chex.assert_trees_all_close(params, _params(), rtol=1e-6, atol=1e-7)
    self.assertEqual(int(nowcast_state(state).count), NUM_STEPS)

  # 8. -----------------------------------------------------------------------

  # A mask changes which leaves have a history slot (the schedule's slots,
  # and the guard's kept pre-jump copy): schedule x guard. The forecaster
  # only ever sees the leaves the mask keeps, and the history dtype applies
  # to those alike (bfloat16 here, unlike the params).
  @parameterized.named_parameters(_named(MASK_CASES))
  def test_masked_leaves_train_like_the_inner_optimizer(self, case):
    """A leaf a callable ``mask`` excludes is never recorded nor jumped.

    Excluding the bias: its history is ``optax.MaskedNode``; with a
    separable loss and an elementwise optimizer, the bias trains exactly as
    under ``sgd`` alone, while the jumps move the other leaves. The guard
    reads the real loss.
    """
    masked = _compiled(case, mask=True)
    alone = _compiled(None)
    p_masked, states = _run_with_loss(masked.jit_step, masked.tx, _params())
    p_alone, _ = _run_with_loss(alone.jit_step, alone.tx, _params())
    # Tolerances: only for XLA fusing the two programs differently.
    chex.assert_trees_all_close([p['bias'] for p in p_masked],
                                [p['bias'] for p in p_alone], rtol=1e-6,
                                atol=1e-7)
    self.assertGreaterEqual(int(states[-1][1].jumps), 1)
    # The jumps moved the nowcast leaves off the inner optimizer's path.
    self.assertFalse(np.allclose(p_masked[-1]['kernel'],
                                 p_alone[-1]['kernel'], rtol=1e-3, atol=1e-4))
    for slot in states[-1][1].history:
      self.assertIsInstance(slot['bias'], optax.MaskedNode)
      chex.assert_shape(slot['kernel'], (3, 4))

  @parameterized.named_parameters(_named(LINEAR_CASES))
  def test_map_params_maps_the_history(self, case):
    """``optax.tree.map_params`` maps the history, masked or not.

    Every history slot is a params-shaped tree (``MaskedNode`` where the
    mask excludes a leaf); the counters are not params. The mask may be a
    tree, a callable that maps the params or one that returns a fixed tree
    (which ``map_params``'s placeholder params do not fit).
    """
    params = _params()
    tree = {'kernel': True, 'bias': False, 'scale': True}
    for mask, masked_keys in ((None, ()), (tree, ('bias',)),
                              (_bias_excluded, ('bias',)),
                              (lambda _: tree, ('bias',))):
      tx = optax.chain(optax.sgd(INNER_LR), _nowcast(case, mask=mask))
      state = tx.init(params)
      specs = optax.tree.map_params(tx, lambda _: 'P', state,
                                    transform_non_params=lambda _: None)
      self.assertIsNone(specs[1].count)
      self.assertIsNone(specs[1].jumps)
      self.assertNotEmpty(specs[1].history)
      for slot in specs[1].history:
        for key in params:
          if key in masked_keys:
            self.assertIsInstance(slot[key], optax.MaskedNode)
          else:
            self.assertEqual(slot[key], 'P')
      # The identity map leaves the state as it is.
      same = optax.tree.map_params(tx, lambda v: v, state)
      chex.assert_trees_all_equal(same, state)

  # 9. -----------------------------------------------------------------------

  @parameterized.named_parameters(_named(
      CHECKED_CASES + tuple(c for c in DTYPE_CASES if c.checked)))
  def test_checked_jumps_never_raise_value_fn_above_not_jumping(self, case):
    """A checked jump lands where ``value_fn`` is at most its value at ``p_n``.

    At every jump step, the loss of the params the step returns is at most
    the loss of the would-be params ``p_n`` (the inner optimizer's step
    alone), and ``NowcastState.selected`` counts one candidate per jump. With
    ``last`` every candidate equals ``p_n``: a tie, so every jump stays.
    Also with float16 and float64 params (``linear``).
    """
    with _precision(case):
      compiled, alone = _compiled(case), _alone(case)
      params = _params(case.param_dtype)
      state = compiled.tx.init(params)
      for _ in range(NUM_STEPS):
        value = _jit_loss(params)
        p_n, _ = alone.jit_step(params, alone.tx.init(params), value)
        jumps = int(state[1].jumps)
        params, state = compiled.jit_step(params, state, value)
        if int(state[1].jumps) > jumps:
          self.assertLessEqual(float(_jit_loss(params)),
                               float(_jit_loss(p_n)))
    selected = state[1].selected
    chex.assert_shape(selected, (1 + len(onc.DEFAULT_SELECT),))
    chex.assert_type(selected, jnp.int32)
    self.assertEqual(int(jnp.sum(selected)), int(state[1].jumps))
    self.assertEqual(int(state[1].jumps), len(_expected_jump_steps(case)))
    if case.forecaster == 'last':
      self.assertEqual(int(selected[0]), int(state[1].jumps))

  # Where value_fn runs is a matter of the jump branch, not of the forecast:
  # over schedule x guard with one forecaster.
  @parameterized.named_parameters(_named(_select(forecaster='linear',
                                                 checked=True)))
  def test_value_fn_runs_only_on_jump_steps(self, case):
    """``value_fn`` is evaluated once per candidate on jump steps, never else.

    Counted by a ``jax.debug.callback`` inside ``value_fn``: one call for
    ``p_n`` and one per step size, per jump; none on the other steps.
    """
    calls = []

    def value_fn(params):
      jax.debug.callback(lambda: calls.append(1))
      return _loss(params)

    tx = optax.chain(optax.sgd(INNER_LR), _nowcast(case))

    def step(params, state, value):
      grads = jax.grad(_loss)(params)
      updates, state = tx.update(grads, state, params, value=value,
                                 value_fn=value_fn)
      return optax.apply_updates(params, updates), state

    step = jax.jit(step, compiler_options=COMPILER_OPTIONS)
    params, state = _params(), tx.init(_params())
    per_step = []
    for _ in range(NUM_STEPS):
      before = len(calls)
      params, state = step(params, state, _jit_loss(params))
      jax.effects_barrier()
      per_step.append(len(calls) - before)
    candidates = 1 + len(onc.DEFAULT_SELECT)
    self.assertEqual(
        [n for n, c in enumerate(per_step, 1) if c],
        _expected_jump_steps(case))
    self.assertEqual(set(per_step) - {0}, {candidates})
