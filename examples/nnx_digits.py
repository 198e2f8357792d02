"""A small CNN on the 8x8 digits with Flax NNX, Adam and weight nowcasting.

``nnx.Optimizer(model, tx, wrt=nnx.Param)`` hands the model's params to
``tx.update`` and forwards any keyword arguments, so ``nowcast`` chains after
Adam with one addition to the train step: ``value_fn``, the loss of the
current batch as a function of the params, built with ``nnx.split`` and
``nnx.merge``. With it every jump is checked: it goes to the best of not
jumping and a few step sizes along the forecast (``NowcastState.selected``
counts which won), so it never raises the batch loss and may jump until the
last step.

Run from the repository root::

  python examples/nnx_digits.py --epochs 12 --batch-size 32 --seed 0
"""

from __future__ import annotations

import argparse
import itertools
from typing import Optional, Sequence

from flax import nnx
import jax.numpy as jnp
import optax

import optax_nowcast as onc
from optax_nowcast.lab import data as data_lib


class CNN(nnx.Module):
  """Conv 3x3 (16) -> avg pool -> Linear (64) -> Linear (10)."""

  def __init__(self, *, rngs: nnx.Rngs):
    self.conv = nnx.Conv(1, 16, kernel_size=(3, 3), rngs=rngs)
    self.linear1 = nnx.Linear(4 * 4 * 16, 64, rngs=rngs)
    self.linear2 = nnx.Linear(64, 10, rngs=rngs)

  def __call__(self, x):
    x = nnx.avg_pool(nnx.relu(self.conv(x)), (2, 2), strides=(2, 2))
    x = x.reshape(x.shape[0], -1)
    return self.linear2(nnx.relu(self.linear1(x)))


# One compiled initialization instead of one small compiled op per layer.
@nnx.jit(static_argnums=0)
def create_model(seed: int) -> CNN:
  return CNN(rngs=nnx.Rngs(seed))


def loss_fn(model: CNN, x, y):
  logits = model(x)
  return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


# Donating the model and the optimizer lets XLA update the nowcast history in
# place instead of copying it on every step.
@nnx.jit(donate_argnames=('model', 'optimizer'))
def train_step(model: CNN, optimizer: nnx.Optimizer, x, y):
  loss, grads = nnx.value_and_grad(loss_fn)(model, x, y)
  graphdef, _, rest = nnx.split(model, nnx.Param, ...)

  def value_fn(params):
    # The batch's loss at other params: nowcast calls it on jump steps only,
    # with the params as nnx.Optimizer passes them (a State of arrays).
    return loss_fn(nnx.merge(graphdef, params, rest), x, y)

  # Calls tx.update(grads, opt_state, params, value=loss, value_fn=value_fn).
  optimizer.update(model, grads, value=loss, value_fn=value_fn)
  return loss


@nnx.jit
def accuracy(model: CNN, x, y):
  return jnp.mean(jnp.argmax(model(x), -1) == y)


def main(argv: Optional[Sequence[str]] = None) -> dict[str, float]:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--epochs', type=int, default=12)
  parser.add_argument('--batch-size', type=int, default=32)
  parser.add_argument('--seed', type=int, default=0)
  args = parser.parse_args(argv)

  ds = data_lib.load_digits()
  # WNN records the weights once per epoch, so one record = one epoch of steps
  # (the last partial batch is dropped by data.batches).
  steps_per_epoch = len(ds.x_train) // args.batch_size
  tx = optax.chain(
      optax.adam(1e-3),
      onc.nowcast(onc.forecasters.linear(window=5, horizon=5),
                  record_every=steps_per_epoch, jump_every=5),
  )
  model = create_model(args.seed)
  optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)

  train = data_lib.batches(ds.x_train, ds.y_train, args.batch_size,
                           seed=args.seed)
  for epoch in range(1, args.epochs + 1):
    for x, y in itertools.islice(train, steps_per_epoch):
      loss = train_step(model, optimizer, x, y)
    acc = float(accuracy(model, ds.x_test, ds.y_test))
    # The optimizer state holds nnx Variables; as_pure gives plain arrays, and
    # optax.tree.get finds the NowcastState inside the chain's state by name.
    state = optax.tree.get(nnx.as_pure(optimizer.opt_state), 'NowcastState')
    # selected[0]: jumps that stayed put (no step size lowered the loss).
    print(f'epoch {epoch:3d}  loss {float(loss):.4f}  test accuracy'
          f' {acc:.4f}  nowcast jumps {int(state.jumps)}'
          f' (stayed / x{"/x".join(map(str, onc.DEFAULT_SELECT))}:'
          f' {state.selected.tolist()})')
  return {'test_accuracy': acc, 'loss': float(loss),
          'jumps': int(state.jumps), 'steps': int(state.count),
          'selected': state.selected.tolist()}


if __name__ == '__main__':
  main()
