"""An MLP on the 8x8 digits in a plain JAX + optax loop, with weight nowcasting.

The params are a dict of arrays and the step is ``jax.jit(step,
donate_argnums=(0, 1))``: donating the params and the optimizer state lets XLA
update the nowcast history in place instead of copying it on every step.
The step passes ``value_fn``, the batch's loss as a function of the params:
every jump then goes to the best of not jumping and a few step sizes along
the forecast (``NowcastState.selected`` counts which won), so it never raises
the batch loss and jumps may go on until the last step.

Run from the repository root::

  python examples/optax_loop_digits.py --epochs 12 --batch-size 32 --seed 0
"""

from __future__ import annotations

import argparse
import itertools
from typing import Optional, Sequence

import jax
import jax.numpy as jnp
import optax

import optax_nowcast as onc
from optax_nowcast.lab import data as data_lib

SIZES = (64, 128, 64, 10)


@jax.jit
def init_params(key: jax.Array) -> dict[str, jax.Array]:
  """LeCun-normal weights and zero biases of a 64-128-64-10 MLP."""
  params = {}
  keys = jax.random.split(key, len(SIZES) - 1)
  for i, (k, n_in, n_out) in enumerate(zip(keys, SIZES[:-1], SIZES[1:])):
    params[f'w{i}'] = jax.random.normal(k, (n_in, n_out)) / jnp.sqrt(n_in)
    params[f'b{i}'] = jnp.zeros((n_out,))
  return params


def predict(params, x):
  x = x.reshape(x.shape[0], -1)
  for i in range(len(SIZES) - 1):
    x = x @ params[f'w{i}'] + params[f'b{i}']
    if i < len(SIZES) - 2:
      x = jax.nn.relu(x)
  return x


def loss_fn(params, x, y):
  logits = predict(params, x)
  return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


@jax.jit
def accuracy(params, x, y):
  return jnp.mean(jnp.argmax(predict(params, x), -1) == y)


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

  def step(params, opt_state, x, y):
    loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
    # value_fn runs on jump steps only, on the candidate params.
    updates, opt_state = tx.update(
        grads, opt_state, params, value=loss,
        value_fn=lambda p: loss_fn(p, x, y))
    return optax.apply_updates(params, updates), opt_state, loss

  step = jax.jit(step, donate_argnums=(0, 1))

  params = init_params(jax.random.key(args.seed))
  opt_state = tx.init(params)
  train = data_lib.batches(ds.x_train, ds.y_train, args.batch_size,
                           seed=args.seed)
  for epoch in range(1, args.epochs + 1):
    for x, y in itertools.islice(train, steps_per_epoch):
      params, opt_state, loss = step(params, opt_state, x, y)
    acc = float(accuracy(params, ds.x_test, ds.y_test))
    # optax.tree.get finds the NowcastState inside the chain's state by name.
    nowcast = optax.tree.get(opt_state, 'NowcastState')
    # selected[0]: jumps that stayed put (no step size lowered the loss).
    print(f'epoch {epoch:3d}  loss {float(loss):.4f}  test accuracy'
          f' {acc:.4f}  nowcast jumps {int(nowcast.jumps)}'
          f' (stayed / x{"/x".join(map(str, onc.DEFAULT_SELECT))}:'
          f' {nowcast.selected.tolist()})')
  return {'test_accuracy': acc, 'loss': float(loss),
          'jumps': int(nowcast.jumps), 'steps': int(nowcast.count),
          'selected': nowcast.selected.tolist()}


if __name__ == '__main__':
  main()
