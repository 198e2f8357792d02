"""Checkpoint a nowcast run with orbax and resume it exactly.

The whole training state, ``{'params': ..., 'opt_state': ...}``, is saved:
the optimizer state holds Adam's moments and the ``NowcastState`` (its step
counter, its record and jump counters and the weight history), so a resumed
run records and jumps at the same steps, from the same history, as one that
was never interrupted. It is restored against ``jax.eval_shape`` of the
initial state, which gives back the same NamedTuples (``ScaleByAdamState``,
``NowcastState``, ...) that ``tx.update`` expects. The data order is a
function of the seed and the step, so the resumed run also sees the same
batches, and its final params are bit-identical to an uninterrupted run's.

Run from the repository root; the second command resumes from the latest
checkpoint that the first one (stopped at step 160, as if preempted) saved::

  python examples/resume_with_orbax.py --ckpt-dir /tmp/nowcast_ckpt --stop-at 160
  python examples/resume_with_orbax.py --ckpt-dir /tmp/nowcast_ckpt

With the defaults (6 epochs of 44 steps, a checkpoint every 50 steps) the run
resumes from step 150: three of the four history slots are filled, and the
jump is at step 220 (the fifth record), after the restore.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import pathlib
from typing import Any, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp

import optax_nowcast as onc
from optax_nowcast.lab import data as data_lib


class MLP(nn.Module):
  """64 -> hidden -> 10 ReLU MLP."""

  hidden: int = 64

  @nn.compact
  def __call__(self, x):
    x = x.reshape(x.shape[0], -1)
    x = nn.relu(nn.Dense(self.hidden)(x))
    return nn.Dense(10)(x)


def make_nowcast(steps_per_epoch: int) -> optax.GradientTransformationExtraArgs:
  """WNN's schedule: a record per epoch, a jump every 5 records."""
  return onc.nowcast(onc.forecasters.linear(window=5, horizon=5),
                     record_every=steps_per_epoch, jump_every=5)


def make_tx(steps_per_epoch: int) -> optax.GradientTransformation:
  return optax.chain(optax.adam(1e-3), make_nowcast(steps_per_epoch))


def init_state(model: nn.Module, tx: optax.GradientTransformation,
               seed: int) -> dict[str, Any]:
  """The training state at step 0: everything a checkpoint must hold."""
  params = model.init(jax.random.key(seed), jnp.zeros((1, 8, 8, 1)))['params']
  return {'params': params, 'opt_state': tx.init(params)}


def checkpoint_manager(directory, save_every: int) -> ocp.CheckpointManager:
  return ocp.CheckpointManager(
      pathlib.Path(directory).absolute(),
      options=ocp.CheckpointManagerOptions(
          save_interval_steps=save_every, max_to_keep=2),
      # Declared up front so that item_metadata works before any save.
      item_handlers=ocp.StandardCheckpointHandler(),
  )


def _by_path(tree) -> dict[str, tuple[int, ...]]:
  """``{'params/Dense_0/kernel': shape, ...}`` for any pytree of arrays."""
  def name(key):
    for attr in ('key', 'idx', 'name'):  # DictKey, SequenceKey, GetAttrKey
      if hasattr(key, attr):
        return str(getattr(key, attr))
    return str(key)
  return {'/'.join(name(k) for k in path): tuple(leaf.shape)
          for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


def restore(manager: ocp.CheckpointManager, step: int, abstract_state):
  """Restores checkpoint ``step`` into the structure of ``abstract_state``.

  Args:
    manager: the run's checkpoint manager.
    step: the step to restore.
    abstract_state: ``jax.eval_shape`` of the initial state; the restored
      state has its tree structure (NamedTuples included), shapes and dtypes.

  Returns:
    The restored state.

  Raises:
    ValueError: if the checkpoint was saved for another model or optimizer
      (a different tree of params, or params of other shapes).
  """
  where = f'checkpoint {manager.directory / str(step)}'
  saved = _by_path(manager.item_metadata(step))
  wanted = _by_path(abstract_state)
  bad = [path for path in sorted(saved.keys() | wanted.keys())
         if saved.get(path) != wanted.get(path)]
  if bad:
    raise ValueError(
        f'{where} does not match the model: {len(bad)} arrays differ, e.g.'
        f' {bad[0]} has shape {saved.get(bad[0], "(absent)")} in the'
        f' checkpoint and {wanted.get(bad[0], "(absent)")} in the state to'
        ' restore into. Restore it with the model and optimizer it was saved'
        ' with.')
  try:
    return manager.restore(step, args=ocp.args.StandardRestore(abstract_state))
  except ValueError as e:
    raise ValueError(f'{where} does not match the model: {e}') from e


def flatten(tree) -> dict[str, np.ndarray]:
  """``{'Dense_0/kernel': array, ...}``: a params tree as flat numpy arrays."""
  leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
  return {'/'.join(str(k.key) for k in path): np.asarray(leaf)
          for path, leaf in leaves}


def main(argv: Optional[Sequence[str]] = None) -> dict[str, Any]:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--epochs', type=int, default=6)
  parser.add_argument('--batch-size', type=int, default=32)
  parser.add_argument('--seed', type=int, default=0)
  parser.add_argument('--hidden', type=int, default=64)
  parser.add_argument('--ckpt-dir', help='save checkpoints here, and resume'
                      ' from the latest one found here (default: none)')
  parser.add_argument('--save-every', type=int, default=50)
  parser.add_argument('--stop-at', type=int,
                      help='stop after this step, as if preempted')
  parser.add_argument('--out', help='write the final params and the nowcast'
                      ' counters to this .npz file')
  args = parser.parse_args(argv)

  ds = data_lib.load_digits()
  # WNN records the weights once per epoch, so one record = one epoch of steps.
  steps_per_epoch = len(ds.x_train) // args.batch_size
  total_steps = args.epochs * steps_per_epoch
  model = MLP(hidden=args.hidden)
  tx = make_tx(steps_per_epoch)
  # jax.jit: one compiled initialization instead of one op per layer.
  init = jax.jit(functools.partial(init_state, model, tx, args.seed))

  manager = None
  start = 0
  if args.ckpt_dir:
    manager = checkpoint_manager(args.ckpt_dir, args.save_every)
    start = manager.latest_step() or 0
  if start:
    state = restore(manager, start, jax.eval_shape(init))
    onc.check_state(tx, state['opt_state'], state['params'])
    nowcast = optax.tree.get(state['opt_state'], 'NowcastState')
    print(f'restored step {start}: {int(nowcast.records)} records since the'
          f' last jump, {int(nowcast.jumps)} jumps')
  else:
    state = init()

  def loss_fn(params, x, y):
    logits = model.apply({'params': params}, x)
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

  def train_step(state, x, y):
    loss, grads = jax.value_and_grad(loss_fn)(state['params'], x, y)
    # value_fn: checked jumps (the best of not jumping and a few step sizes).
    updates, opt_state = tx.update(
        grads, state['opt_state'], state['params'], value=loss,
        value_fn=lambda p: loss_fn(p, x, y))
    params = optax.apply_updates(state['params'], updates)
    return {'params': params, 'opt_state': opt_state}, loss

  train_step = jax.jit(train_step, donate_argnums=0)
  accuracy = jax.jit(lambda params: jnp.mean(
      jnp.argmax(model.apply({'params': params}, ds.x_test), -1) == ds.y_test))

  # The batches depend only on the seed: skip the ones already trained on.
  batches = itertools.islice(
      data_lib.batches(ds.x_train, ds.y_train, args.batch_size,
                       seed=args.seed), start, total_steps)
  loss = acc = float('nan')
  for step, (x, y) in enumerate(batches, start=start + 1):
    state, loss = train_step(state, x, y)
    if manager is not None:
      # Saves when step % save_every == 0. By default orbax copies the
      # arrays to the host before save returns (and writes them in the
      # background), so the next step may donate the state.
      manager.save(step, args=ocp.args.StandardSave(state))
    if step % steps_per_epoch == 0:
      acc = float(accuracy(state['params']))
      nowcast = optax.tree.get(state['opt_state'], 'NowcastState')
      print(f'epoch {step // steps_per_epoch:3d}  loss {float(loss):.4f}  test'
            f' accuracy {acc:.4f}  nowcast jumps {int(nowcast.jumps)}')
    if step == args.stop_at:
      print(f'stopped after step {step}, as if preempted')
      break
  if manager is not None:
    manager.wait_until_finished()
    manager.close()

  nowcast = optax.tree.get(state['opt_state'], 'NowcastState')
  result = {
      'params': jax.device_get(state['params']),
      'start_step': start,
      'test_accuracy': acc,
      'loss': float(loss),
      **{field: int(getattr(nowcast, field))
         for field in ('count', 'records', 'jumps', 'skipped', 'nonfinite')},
  }
  if args.out:
    arrays = {f'params/{path}': leaf for path, leaf in flatten(
        result['params']).items()}
    np.savez(args.out, **arrays,
             **{k: v for k, v in result.items() if k != 'params'})
  return result


if __name__ == '__main__':
  main()
