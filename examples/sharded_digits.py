"""FSDP-style sharded training with nowcast on 8 (CPU) devices.

The params are sharded over a one-axis device mesh (each leaf along its
largest dimension that the device count divides), the batches are split
across the same axis (data parallel), and ``nowcast``'s history is sharded
exactly like the params: ``init`` copies them, and a jump is elementwise, so
it moves no weight between devices. The jumps are checked (``value_fn``, the
batch's loss of the params): the candidate params are sharded like the
params too.

On a machine with 8 accelerators drop the ``jax_num_cpu_devices`` line.

Run::

  python examples/sharded_digits.py --epochs 12
"""

from __future__ import annotations

import argparse
import functools

import jax

jax.config.update('jax_num_cpu_devices', 8)  # 8 CPU devices for the demo

import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
import numpy as np  # pylint: disable=g-import-not-at-top
import optax  # pylint: disable=g-import-not-at-top
from jax.sharding import NamedSharding  # pylint: disable=g-import-not-at-top
from jax.sharding import PartitionSpec as P  # pylint: disable=g-import-not-at-top

import optax_nowcast as onc  # pylint: disable=g-import-not-at-top
from optax_nowcast.lab import data as data_lib  # pylint: disable=g-import-not-at-top
from optax_nowcast.lab import tasks  # pylint: disable=g-import-not-at-top


def fsdp_spec(shape, devices):
  """Shard a leaf along its largest dimension that ``devices`` divides."""
  dims = sorted(range(len(shape)), key=lambda d: -shape[d])
  for d in dims:
    if shape[d] % devices == 0:
      spec = [None] * len(shape)
      spec[d] = 'data'
      return P(*spec)
  return P()


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--epochs', type=int, default=12)
  parser.add_argument('--batch-size', type=int, default=64)
  parser.add_argument('--seed', type=int, default=0)
  args = parser.parse_args(argv)

  mesh = jax.make_mesh((jax.device_count(),), ('data',),
                       axis_types=(jax.sharding.AxisType.Auto,))
  ds = data_lib.load_digits()
  steps_per_epoch = len(ds.x_train) // args.batch_size  # record once an epoch
  model = tasks.MLP((128, 64))
  tx = optax.chain(optax.adam(1e-3), onc.nowcast(
      onc.forecasters.linear(window=5, horizon=5),
      record_every=steps_per_epoch, jump_every=5))

  params = model.init(jax.random.key(args.seed), ds.x_train[:1])['params']
  shardings = jax.tree.map(
      lambda p: NamedSharding(mesh, fsdp_spec(p.shape, mesh.size)), params)
  params = jax.device_put(params, shardings)
  opt_state = jax.jit(tx.init)(params)
  history = optax.tree.get(opt_state, 'NowcastState').history
  same = all(h.sharding.is_equivalent_to(p.sharding, p.ndim)
             for slot in history
             for h, p in zip(jax.tree.leaves(slot), jax.tree.leaves(params)))
  print(f'{mesh.size} devices; history sharded like the params: {same}')

  batch_sharding = NamedSharding(mesh, P('data'))

  @functools.partial(jax.jit, donate_argnums=(0, 1))
  def step(params, opt_state, x, y):
    def loss_fn(p):
      logits = model.apply({'params': p}, x)
      return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = tx.update(grads, opt_state, params, value=loss,
                                   value_fn=loss_fn)
    return optax.apply_updates(params, updates), opt_state, loss

  @jax.jit
  def accuracy(params, x, y):
    return jnp.mean(jnp.argmax(model.apply({'params': params}, x), -1) == y)

  batches = data_lib.batches(ds.x_train, ds.y_train, args.batch_size,
                             seed=args.seed, epochs=args.epochs)
  for i, (x, y) in enumerate(batches, start=1):
    x, y = jax.device_put((x, y), batch_sharding)
    params, opt_state, loss = step(params, opt_state, x, y)
    if i % steps_per_epoch == 0:
      acc = float(accuracy(params, ds.x_test, ds.y_test))
      jumps = int(optax.tree.get(opt_state, 'NowcastState').jumps)
      print(f'epoch {i // steps_per_epoch:3d}  loss {float(loss):.4f}'
            f'  test acc {acc:.4f}  jumps {jumps}')
  state = optax.tree.get(opt_state, 'NowcastState')
  kept = all(h.sharding.is_equivalent_to(p.sharding, p.ndim)
             for slot in state.history
             for h, p in zip(jax.tree.leaves(slot), jax.tree.leaves(params)))
  print(f'after training, history still sharded like the params: {kept}')
  return dict(accuracy=acc, jumps=int(state.jumps), sharded=same and kept,
              params=jax.tree.map(np.asarray, params))


if __name__ == '__main__':
  main()
