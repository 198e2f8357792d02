"""Cost of ``nowcast`` per step kind, measured side by side with plain Adam.

For an MLP and a CNN of about 1M parameters each (``--models mlp,cnn``), and
for a ResNet-50-style CNN with GroupNorm (214 leaves, 23.5M params) and a
GPT-style transformer (214 leaves, 10.4M params; ``--models resnet,gpt``,
on 64-token sequences), this script builds two
jitted training steps, ``adam`` and ``adam + nowcast(linear)``, and times them
interleaved in one process (alternating which goes first), so that machine
noise hits both alike. It prints the median step time of each on non-jump,
record and jump steps, their ratio, and the optimizer-state bytes of both.
A third run, ``adam + cond-floor``, only passes the updates through a
``lax.cond``: the cost of any data-dependent change of the updates, i.e. the
floor under what ``nowcast`` can cost per step. With ``--guard-steps K`` a
fourth run, ``adam + nowcast(linear, guard_steps=K)``, times the jump guard
side by side with the unguarded ``nowcast`` (same schedule, same steps).
With ``--baseline-package DIR`` another run, ``adam + nowcast(linear)`` of
the optax_nowcast source tree in ``DIR`` (e.g. a ``git worktree`` of an
earlier commit, imported under another name), times that version side by
side with this one: a refactoring's before and after in one process.
With ``--checked`` another run passes ``value_fn`` (the batch's loss) to
``update``: checked jumps, which evaluate the loss at ``1 + len(select)``
candidates on jump steps.

Run::

  python benchmarks/step_overhead.py              # default settings
  python benchmarks/step_overhead.py --steps 2000 --history-dtype bfloat16
  git worktree add /tmp/v010 cb3aaff   # optax_nowcast 0.1.0
  python benchmarks/step_overhead.py --baseline-package /tmp/v010

Targets (issue 2): a non-jump step <= 1.03x plain Adam, a record step
<= 1.10x, state bytes = Adam's + history (``window - 1`` params-shaped trees,
half that in bfloat16).
"""

from __future__ import annotations

import argparse
import importlib
import pathlib
import re
import shutil
import statistics
import sys
import tempfile
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

import optax_nowcast as onc


class MLP(nn.Module):
  """784 -> 1024 -> hidden -> 10: about 1.0M parameters (hidden 192), or
  1.07M (hidden 256, issue 22's model)."""

  hidden: int = 192

  @nn.compact
  def __call__(self, x):
    x = x.reshape(x.shape[0], -1)
    x = nn.relu(nn.Dense(1024)(x))
    x = nn.relu(nn.Dense(self.hidden)(x))
    return nn.Dense(10)(x)


class CNN(nn.Module):
  """Three 3x3 convs (32, 64/2, 128/2), Dense 128, Dense 10: about 0.9M."""

  @nn.compact
  def __call__(self, x):
    x = nn.relu(nn.Conv(32, (3, 3))(x))
    x = nn.relu(nn.Conv(64, (3, 3), strides=2)(x))
    x = nn.relu(nn.Conv(128, (3, 3), strides=2)(x))
    x = x.reshape(x.shape[0], -1)
    x = nn.relu(nn.Dense(128)(x))
    return nn.Dense(10)(x)


class Bottleneck(nn.Module):
  """ResNet bottleneck: 1x1, 3x3 (stride), 1x1 convs with GroupNorm."""

  features: int
  strides: int = 1

  @nn.compact
  def __call__(self, x):
    h = nn.relu(nn.GroupNorm(8)(nn.Conv(self.features, (1, 1))(x)))
    h = nn.Conv(self.features, (3, 3), strides=self.strides)(h)
    h = nn.relu(nn.GroupNorm(8)(h))
    h = nn.GroupNorm(8)(nn.Conv(4 * self.features, (1, 1))(h))
    if x.shape[-1] != h.shape[-1] or self.strides != 1:
      x = nn.GroupNorm(8)(nn.Conv(4 * self.features, (1, 1),
                                  strides=self.strides)(x))
    return nn.relu(x + h)


class ResNet(nn.Module):
  """A ResNet-50-style CNN (3-4-6-3 bottlenecks of 64-512 features, each
  conv followed by a GroupNorm) for 28x28 inputs: 214 leaves, 23.5M params.
  """

  @nn.compact
  def __call__(self, x):
    x = nn.relu(nn.GroupNorm(8)(nn.Conv(64, (3, 3))(x)))
    for stage, (blocks, features) in enumerate(
        zip((3, 4, 6, 3), (64, 128, 256, 512))):
      for b in range(blocks):
        x = Bottleneck(features, strides=2 if b == 0 and stage else 1)(x)
    return nn.Dense(10)(jnp.mean(x, axis=(1, 2)))


class Block(nn.Module):
  """A pre-norm GPT block: LayerNorm, causal self-attention, LayerNorm, MLP."""

  width: int
  heads: int

  @nn.compact
  def __call__(self, x):
    mask = nn.make_causal_mask(jnp.ones(x.shape[:2]))
    x = x + nn.MultiHeadDotProductAttention(self.heads)(
        nn.LayerNorm()(x), mask=mask)
    h = nn.gelu(nn.Dense(4 * self.width)(nn.LayerNorm()(x)))
    return x + nn.Dense(self.width)(h)


class GPT(nn.Module):
  """A GPT-style character transformer: 13 blocks of width 256, 4 heads,
  a 256-token vocabulary, 128 positions: 214 leaves, 10.4M params.
  """

  layers: int = 13
  width: int = 256
  vocab: int = 256
  positions: int = 128

  @nn.compact
  def __call__(self, tokens):
    x = nn.Embed(self.vocab, self.width)(tokens)
    x = x + nn.Embed(self.positions, self.width)(jnp.arange(tokens.shape[1]))
    for _ in range(self.layers):
      x = Block(self.width, heads=4)(x)
    return nn.Dense(self.vocab)(nn.LayerNorm()(x))


DONATE = {'both': (0, 1), 'state': (1,), 'none': ()}

#: The forecasters this script can time, by name: window -> Forecaster.
FORECASTERS = {
    'last': lambda window: onc.forecasters.last(window=window),
    'linear': lambda window: onc.forecasters.linear(window=window, horizon=5),
    'wnn': lambda window: onc.forecasters.load('wnn'),
    'multihorizon': lambda window: onc.forecasters.load('multihorizon'),
    'nino-mlp': lambda window: onc.forecasters.load('nino-mlp'),
}


def cond_floor() -> optax.GradientTransformationExtraArgs:
  """A transformation that only passes the updates through a ``lax.cond``.

  The cheapest possible data-dependent change of the updates: it shows what
  any control flow on the updates costs, the floor under ``nowcast``.
  """

  def update(updates, count, params=None, **extra_args):
    del params, extra_args
    # Never true, but XLA cannot know: the cond is not folded away.
    updates = jax.lax.cond(
        count < 0, lambda u: jax.tree.map(jnp.negative, u),
        lambda u: u, updates)
    return updates, count + 1

  return optax.GradientTransformationExtraArgs(
      lambda params: jnp.zeros([], jnp.int32), update)


def load_baseline(source: str):
  """The optax_nowcast package of the source tree ``source``, renamed.

  Copies ``source/optax_nowcast`` to a temporary directory as
  ``optax_nowcast_baseline`` (its own imports rewritten to that name) and
  imports it, so two versions can be timed in one process.
  """
  tmp = pathlib.Path(tempfile.mkdtemp()) / 'optax_nowcast_baseline'
  shutil.copytree(pathlib.Path(source) / 'optax_nowcast', tmp,
                  ignore=shutil.ignore_patterns('__pycache__'))
  for file in tmp.rglob('*.py'):
    file.write_text(re.sub(r'\boptax_nowcast\b', 'optax_nowcast_baseline',
                           file.read_text()))
  sys.path.insert(0, str(tmp.parent))
  return importlib.import_module('optax_nowcast_baseline')


def tree_bytes(tree) -> int:
  return sum(x.nbytes for x in jax.tree.leaves(tree))


def make_step(model, tx, donate: bool, checked: bool = False):
  def loss_fn(params, x, y):
    logits = model.apply({'params': params}, x)
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

  def step(params, opt_state, x, y):
    loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
    extra = ({'value_fn': lambda p: loss_fn(p, x, y)} if checked else {})
    updates, opt_state = tx.update(grads, opt_state, params, value=loss,
                                   **extra)
    return optax.apply_updates(params, updates), opt_state, loss

  return jax.jit(step, donate_argnums=donate)


def make_batch(name, batch):
  """Inputs and integer targets: 28x28 images and 10 classes, or tokens."""
  rng = np.random.default_rng(0)
  if name == 'GPT':
    tokens = rng.integers(0, 256, size=(batch, 65))
    return (jnp.asarray(tokens[:, :-1], jnp.int32),
            jnp.asarray(tokens[:, 1:], jnp.int32))
  return (jnp.asarray(rng.normal(size=(batch, 28, 28, 1)), jnp.float32),
          jnp.asarray(rng.integers(0, 10, size=(batch,)), jnp.int32))


def bench_model(name, model, args):
  x, y = make_batch(name, args.batch)
  params = model.init(jax.random.key(0), x)['params']
  n_params = sum(p.size for p in jax.tree.leaves(params))
  names = args.forecaster.split(',')
  history_dtype = None if args.history_dtype == 'none' else args.history_dtype
  def with_nowcast(guard_steps, checked=False, name=names[0]):
    # Blind jumps (no value_fn) need an end: one past any run here.
    end = {} if checked else {'last_jump_step': 2**31 - 1}
    return optax.chain(optax.adam(1e-3), onc.nowcast(
        FORECASTERS[name](args.window), record_every=args.record_every,
        jump_every=args.window, history_dtype=history_dtype,
        guard_steps=guard_steps, chunk_size=args.chunk_size, **end))

  runs = {
      'adam': optax.adam(1e-3),
      'cond-floor': optax.chain(optax.adam(1e-3), cond_floor()),
      'nowcast': with_nowcast(None),
  }
  # More forecasters side by side (--forecaster a,b,c): same schedule.
  for other in names[1:]:
    runs[other] = with_nowcast(None, name=other)
  if args.guard_steps:
    runs['guard'] = with_nowcast(args.guard_steps)
  if args.checked:
    runs['checked'] = with_nowcast(None, checked=True)
  if args.baseline_package:
    old = load_baseline(args.baseline_package)
    runs['before'] = optax.chain(optax.adam(1e-3), old.nowcast(
        old.forecasters.linear(window=args.window, horizon=5),
        record_every=args.record_every, jump_every=args.window,
        history_dtype=history_dtype, guard_steps=args.guard_steps or None,
        last_jump_step=2**31 - 1))
  state = {}
  for key, tx in runs.items():
    p = jax.tree.map(jnp.copy, params)
    s = tx.init(p)
    state[key] = [make_step(model, tx, DONATE[args.donate],
                            checked=key == 'checked'), p, s]
  bytes_ = {k: tree_bytes(v[2]) for k, v in state.items()}

  times = {k: {'plain': [], 'record': [], 'jump': []} for k in runs}
  jumps_so_far = 0
  for n in range(1, args.steps + 1):
    order = list(runs) if n % 2 else list(reversed(list(runs)))
    kind, took = None, {}
    for key in order:
      step, p, s = state[key]
      t0 = time.perf_counter()
      p, s, loss = step(p, s, x, y)
      jax.block_until_ready((p, s, loss))
      dt = time.perf_counter() - t0
      state[key][1:] = [p, s]
      took[key] = dt
      if key == 'nowcast':
        jumps = int(s[1].jumps)
        if jumps > jumps_so_far:
          kind = 'jump'
        elif n % args.record_every == 0:
          kind = 'record'
        else:
          kind = 'plain'
        jumps_so_far = jumps
    if n > args.warmup:
      for key in runs:
        times[key][kind].append(took[key])

  print(f'\n## {name}: {n_params:,} params in {len(jax.tree.leaves(params))}'
        f' leaves, batch {args.batch},'
        f' record_every={args.record_every}, window={args.window},'
        f' jump_every={args.window}, forecaster={names[0]},'
        f' history_dtype={args.history_dtype},'
        f' guard_steps={args.guard_steps}, chunk_size={args.chunk_size},'
        f' donate={args.donate}')
  extra = [k for k in ('guard', 'checked', 'before') if k in runs]
  extra += names[1:]
  head = {name: f' adam+nowcast({name}) ms | {name} ratio |'
          for name in names[1:]}
  head |= {'guard': ' adam+nowcast+guard ms | guard ratio |',
          'checked': ' adam+nowcast, value_fn ms | checked ratio |',
          'before': ' adam+nowcast(baseline package) ms | baseline ratio |'}
  print(f'| step kind | n | adam ms | adam+nowcast({names[0]}) ms | ratio |'
        ' adam+cond-floor ms | floor ratio |' + ''.join(head[k] for k in extra))
  print('|---|---|---|---|---|---|---|' + '---|---|' * len(extra))
  for kind in ('plain', 'record', 'jump'):
    if not times['adam'][kind]:
      continue
    ms = {k: statistics.median(t[kind]) * 1e3 for k, t in times.items()}
    row = f'| {kind} | {len(times["adam"][kind])} | {ms["adam"]:.3f} |'
    for k in ['nowcast', 'cond-floor'] + extra:
      row += f' {ms[k]:.3f} | {ms[k] / ms["adam"]:.3f} |'
    print(row)
  params_bytes = tree_bytes(params)
  hist_bytes = bytes_['nowcast'] - bytes_['adam']
  print(f'state bytes: adam {bytes_["adam"]:,}; adam+nowcast'
        f' {bytes_["nowcast"]:,} = adam + {hist_bytes / params_bytes:.3f}'
        f' x params ({params_bytes:,} B)'
        + (f'; adam+nowcast+guard {bytes_["guard"]:,}' if 'guard' in bytes_
           else '')
        + (f'; baseline package {bytes_["before"]:,}' if 'before' in bytes_
           else ''))


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--steps', type=int, default=1200)
  parser.add_argument('--warmup', type=int, default=20)
  parser.add_argument('--batch', type=int, default=128)
  parser.add_argument('--record-every', type=int, default=4)
  parser.add_argument('--window', type=int, default=5)
  parser.add_argument('--history-dtype', default='none',
                      help="'none' (param dtype) or e.g. bfloat16")
  parser.add_argument('--donate', default='both', choices=sorted(DONATE),
                      help='which arguments of the jitted step to donate')
  parser.add_argument('--models', default='mlp,cnn')
  parser.add_argument('--forecaster', default='linear',
                      help='one of %s, or several joined by commas (timed'
                      ' side by side; the first is the table\'s'
                      ' "nowcast"); wnn and multihorizon need --window 5'
                      % ', '.join(FORECASTERS))
  parser.add_argument('--chunk-size', default='auto',
                      type=lambda v: v if v == 'auto' else
                      None if v == 'none' else int(v),
                      help="nowcast's chunk_size: 'auto' (the default, as"
                      " shipped), 'none' or a number")
  parser.add_argument('--guard-steps', type=int, default=0,
                      help='also time nowcast with this guard_steps (0: no'
                      ' guarded run)')
  parser.add_argument('--checked', action='store_true',
                      help='also time nowcast with checked jumps (value_fn:'
                      ' the batch loss, default select)')
  parser.add_argument('--baseline-package', default='',
                      help='also time the optax_nowcast source tree in this'
                      ' directory (e.g. a git worktree of an earlier commit)')
  args = parser.parse_args()
  print(f'jax {jax.__version__}, devices {jax.devices()}')
  models = {'mlp': ('MLP', MLP()), 'mlp256': ('MLP256', MLP(hidden=256)),
            'cnn': ('CNN', CNN()),
            'resnet': ('ResNet', ResNet()), 'gpt': ('GPT', GPT())}
  for key in args.models.split(','):
    bench_model(*models[key], args)


if __name__ == '__main__':
  main()
