"""Training several runs of one task at once: ``jax.vmap`` over the runs.

Each member of a batch is one run of the task with its own seed and learning
rate; members share the model, the optimizer kind, the batch size and the
step budget, so one compiled program trains them all. A member computes
exactly what :func:`optax_nowcast.lab.tasks.train` computes for its seed and
learning rate (same init key, same minibatches, the optimizer built from
the member's learning rate), up to float rounding of batched matmuls.

On the 2-core CPU this pays for small models, whose steps cost less than
their compilation (1-5 s per program): a batch of 8 digits-MLP runs costs
about a third of 8 separate runs. For models whose steps are compute bound
(the Fashion-MNIST CNNs, the transformers) a batch saves only compilation.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable, Optional, Sequence

import jax
import jax.numpy as jnp
import optax

from optax_nowcast.lab import data as data_lib
from optax_nowcast.lab import tasks as tasks_lib


@dataclasses.dataclass
class BatchedResult:
  """Evaluation curves of the members of a batch.

  Attributes:
    eval_steps: The steps at which the metric was evaluated.
    eval_metric: ``eval_metric[m][e]``, member ``m``'s metric at
      ``eval_steps[e]``.
    seconds: Wall-clock seconds of training the batch (compilation and
      snapshot copies included, evaluation excluded).
    final_params: The members' params at the end, stacked on a leading axis.
  """

  eval_steps: list[int]
  eval_metric: list[list[float]]
  seconds: float
  final_params: Any


# Compiled param initialisers, by model factory and example input: one
# compilation (seconds on the CPU) serves every batch of an architecture.
_INITS: dict[tuple[Any, ...], Callable[[jax.Array], Any]] = {}


def _init_params(task: tasks_lib.Task, example: jax.Array,
                 seed_keys: jax.Array) -> Any:
  """The members' initial params, stacked: ``model.init`` per member key."""
  cache_key = (task.model, example.shape, str(example.dtype))
  if cache_key not in _INITS:
    model = task.model()
    _INITS[cache_key] = jax.jit(lambda key: model.init(
        jax.random.split(key)[0], example)['params'])
  init = _INITS[cache_key]
  members = [init(key) for key in seed_keys]
  return jax.tree.map(lambda *xs: jnp.stack(xs), *members)


def _programs(task: tasks_lib.Task, prob: tasks_lib.Problem):
  """``(init, chunk, evaluate)``: the batch's jitted optimizer init, steps
  and metric."""
  model = task.model()
  make_tx = tasks_lib.OPTIMIZERS[task.optimizer]

  def init_one(params, learning_rate):
    return make_tx(learning_rate).init(params)

  def loss_fn(params, x, y):
    logits = model.apply({'params': params}, x)
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

  def step_one(params, opt_state, learning_rate, seed_key, arrays, index):
    _, data_key = jax.random.split(seed_key)
    x, y = prob.sample(arrays, jax.random.fold_in(data_key, index))
    loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
    updates, opt_state = make_tx(learning_rate).update(
        grads, opt_state, params, value=loss)
    return optax.apply_updates(params, updates), opt_state

  step_all = jax.vmap(step_one, in_axes=(0, 0, 0, 0, None, None))

  def chunk(params, opt_state, learning_rates, seed_keys, arrays, start,
            length):
    def body(carry, index):
      params, opt_state = carry
      return step_all(params, opt_state, learning_rates, seed_keys, arrays,
                      index), None
    (params, opt_state), _ = jax.lax.scan(
        body, (params, opt_state), start + jnp.arange(length))
    return params, opt_state

  evaluate = jax.vmap(lambda p, arrays: prob.evaluate(p, model.apply, arrays),
                      in_axes=(0, None))
  return (jax.jit(jax.vmap(init_one)),
          jax.jit(chunk, static_argnums=6, donate_argnums=(0, 1)),
          jax.jit(evaluate))


def train_batched(
    task: tasks_lib.Task,
    seeds: Sequence[int],
    learning_rates: Sequence[float],
    *,
    dataset: Optional[Any] = None,
    snapshot_every: Optional[int] = None,
    on_snapshot: Optional[Callable[[int, Any], None]] = None,
    eval_examples: Optional[int] = None,
) -> BatchedResult:
  """Trains one run of ``task`` per ``(seed, learning rate)``, all at once.

  Args:
    task: What to train; its ``learning_rate`` is ignored.
    seeds: One seed per member (init and batch order, as in
      :func:`optax_nowcast.lab.tasks.train`).
    learning_rates: One learning rate per member.
    dataset: The loaded dataset (default: ``data.load(task.dataset)``).
    snapshot_every: If set, ``on_snapshot(step, params)`` is called with
      host copies of the members' params, stacked on a leading axis, at step
      0 and every ``snapshot_every`` steps.
    on_snapshot: See ``snapshot_every``.
    eval_examples: Evaluate on at most this many test images or held-out
      text windows (default: the task's own evaluation set).

  Returns:
    A :class:`BatchedResult`, the metric every ``task.eval_every`` steps and
    at the end.

  Raises:
    ValueError: if ``seeds`` is empty or its length differs from
      ``learning_rates``'s.
  """
  if not seeds or len(seeds) != len(learning_rates):
    raise ValueError(
        'seeds and learning_rates must be non-empty and of one length, got'
        f' {len(seeds)} and {len(learning_rates)}')
  if snapshot_every is not None and on_snapshot is None:
    raise ValueError('snapshot_every needs on_snapshot')
  ds = dataset if dataset is not None else data_lib.load(task.dataset)
  prob = tasks_lib.problem(task, ds, eval_examples=eval_examples)
  init, chunk, evaluate = _programs(task, prob)
  seed_keys = jnp.stack([jax.random.key(s) for s in seeds])
  lrs = jnp.asarray(learning_rates, jnp.float32)
  start = time.perf_counter()
  params = _init_params(task, prob.example, seed_keys)
  opt_state = init(params, lrs)
  stops = set(range(task.eval_every, task.steps + 1, task.eval_every))
  stops.add(task.steps)
  if snapshot_every is not None:
    stops.update(range(snapshot_every, task.steps + 1, snapshot_every))
    on_snapshot(0, jax.device_get(params))
  seconds = time.perf_counter() - start
  eval_steps, eval_metric = [], []
  done = 0
  for stop in sorted(stops):
    start = time.perf_counter()
    params, opt_state = chunk(params, opt_state, lrs, seed_keys, prob.arrays,
                              jnp.int32(done), stop - done)
    jax.block_until_ready(params)
    done = stop
    if snapshot_every is not None and stop % snapshot_every == 0:
      on_snapshot(stop, jax.device_get(params))
    seconds += time.perf_counter() - start
    if stop % task.eval_every == 0 or stop == task.steps:
      eval_steps.append(stop)
      eval_metric.append([float(m) for m in evaluate(params, prob.arrays)])
  return BatchedResult(eval_steps, [list(m) for m in zip(*eval_metric)],
                       seconds, params)
