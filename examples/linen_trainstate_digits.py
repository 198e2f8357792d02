"""An MLP on the 8x8 digits with Flax Linen's TrainState and weight nowcasting.

``TrainState.apply_gradients`` calls ``tx.update(grads, opt_state, params)``:
it passes the params, which is all ``nowcast`` needs, so the nowcast chain is
a drop-in ``tx``. It passes no extra keyword arguments, so no ``value_fn``
for checked jumps: the jumps are blind, and ``last_jump_step`` stops them
before the end of training (here: no jump in the last epoch) so that the
run does not end on a jump. (To check the jumps, call ``tx.update`` yourself
with ``value_fn=`` as in ``optax_loop_digits.py``.)

Run from the repository root::

  python examples/linen_trainstate_digits.py --epochs 12 --batch-size 32
"""

from __future__ import annotations

import argparse
import itertools
from typing import Optional, Sequence

import flax.linen as nn
from flax.training import train_state
import jax
import jax.numpy as jnp
import optax

import optax_nowcast as onc
from optax_nowcast.lab import data as data_lib


class MLP(nn.Module):
  """64 -> 128 -> 64 -> 10 ReLU MLP."""

  @nn.compact
  def __call__(self, x):
    x = x.reshape(x.shape[0], -1)
    x = nn.relu(nn.Dense(128)(x))
    x = nn.relu(nn.Dense(64)(x))
    return nn.Dense(10)(x)


# Donating the state lets XLA update the nowcast history in place instead of
# copying it on every step.
@jax.jit(donate_argnums=0)
def train_step(state: train_state.TrainState, x, y):
  def loss_fn(params):
    logits = state.apply_fn({'params': params}, x)
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

  loss, grads = jax.value_and_grad(loss_fn)(state.params)
  return state.apply_gradients(grads=grads), loss


@jax.jit
def accuracy(state: train_state.TrainState, x, y):
  logits = state.apply_fn({'params': state.params}, x)
  return jnp.mean(jnp.argmax(logits, -1) == y)


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
                  record_every=steps_per_epoch, jump_every=5,
                  last_jump_step=(args.epochs - 1) * steps_per_epoch),
  )
  model = MLP()
  # jax.jit: one compiled initialization instead of one op per layer.
  params = jax.jit(model.init)(jax.random.key(args.seed),
                               ds.x_train[:1])['params']
  state = train_state.TrainState.create(apply_fn=model.apply, params=params,
                                        tx=tx)

  train = data_lib.batches(ds.x_train, ds.y_train, args.batch_size,
                           seed=args.seed)
  for epoch in range(1, args.epochs + 1):
    for x, y in itertools.islice(train, steps_per_epoch):
      state, loss = train_step(state, x, y)
    acc = float(accuracy(state, ds.x_test, ds.y_test))
    # optax.tree.get finds the NowcastState inside the chain's state by name.
    nowcast = optax.tree.get(state.opt_state, 'NowcastState')
    print(f'epoch {epoch:3d}  loss {float(loss):.4f}  test accuracy'
          f' {acc:.4f}  nowcast jumps {int(nowcast.jumps)}')
  return {'test_accuracy': acc, 'loss': float(loss),
          'jumps': int(nowcast.jumps), 'steps': int(state.step)}


if __name__ == '__main__':
  main()
