"""Peak memory of a jump step vs a non-jump step, on the GPT-style model.

For the transformer of ``step_overhead.py`` (214 leaves, 10.4M params), this
script compiles the donated training step of ``adam`` and of ``adam +
nowcast(load('wnn'))`` in several settings and reports, per setting:

- XLA's own accounting of the compiled step (``compiled.memory_analysis()``):
  the bytes of the arguments (params, optimizer state, batch) and the
  temporary bytes the step needs at its peak. A ``lax.cond`` allocates for
  its larger branch, so the temporaries of a nowcast step are those of its
  jump; the difference to Adam's is what a jump costs on top.
- The measured peak of the process (host RSS high-water mark, each setting
  in a fresh subprocess): after a few non-jump steps, and after the first
  jump step. On a GPU the device's ``memory_stats()['peak_bytes_in_use']``
  is read instead.

Settings: no chunks (``chunk_size=None``: the forecaster runs over every
weight at once), chunks of 65,536 weights, the default (``'auto'``: chunks
of 262,144 weights for a learned forecaster), and chunks of 65,536 with
``history_dtype=bfloat16``.

Run::

  python benchmarks/jump_memory.py            # prints a Markdown table
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys

SETTINGS = {
    'adam': None,
    # Compiled only: its jump would allocate ~20 GB, most of this machine.
    'nowcast, chunk_size=None (unchunked; not run)': {'chunk_size': None},
    'nowcast, chunk_size=2**16': {'chunk_size': 2**16},
    "nowcast, the default (chunk_size='auto': 2**18 for WNN)": {},
    'nowcast, chunk_size=2**16, history bf16': {
        'chunk_size': 2**16, 'history_dtype': 'bfloat16'},
}


def peak_bytes() -> int:
  import jax  # pylint: disable=g-import-not-at-top
  device = jax.devices()[0]
  if device.platform != 'cpu':
    return int(device.memory_stats()['peak_bytes_in_use'])
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def measure(name: str, batch: int) -> dict:
  """One setting, in this process: XLA's accounting and the measured peaks."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp
  import optax
  import optax_nowcast as onc
  sys.path.insert(0, __file__.rsplit('/', 1)[0])
  import step_overhead  # pylint: disable=g-import-not-at-top

  kwargs = SETTINGS[name]
  model = step_overhead.GPT()
  x, y = step_overhead.make_batch('GPT', batch)
  params = model.init(jax.random.key(0), x)['params']
  if kwargs is None:
    tx = optax.adam(1e-3)
  else:
    kwargs = dict(kwargs)
    if 'history_dtype' in kwargs:
      kwargs['history_dtype'] = jnp.dtype(kwargs['history_dtype'])
    tx = optax.chain(optax.adam(1e-3), onc.nowcast(
        onc.forecasters.load('wnn'), record_every=1, jump_every=5,
        last_jump_step=2**31 - 1, **kwargs))

  def loss_fn(p):
    logits = model.apply({'params': p}, x)
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

  def step(p, s):
    grads = jax.grad(loss_fn)(p)
    updates, s = tx.update(grads, s, p)
    return optax.apply_updates(p, updates), s

  state = tx.init(params)
  compiled = jax.jit(step, donate_argnums=(0, 1)).lower(
      params, state).compile()
  analysis = compiled.memory_analysis()
  out = {
      'params': sum(p.nbytes for p in jax.tree.leaves(params)),
      'leaves': len(jax.tree.leaves(params)),
      'arguments': int(analysis.argument_size_in_bytes),
      'temp': int(analysis.temp_size_in_bytes),
  }
  if 'not run' in name:
    out['peak_plain'] = out['peak_jump'] = None
    return out
  for _ in range(4):  # steps 1-4: records, no jump
    params, state = compiled(params, state)
  jax.block_until_ready(params)
  out['peak_plain'] = peak_bytes()
  params, state = compiled(params, state)  # step 5: the first jump
  jax.block_until_ready(params)
  out['peak_jump'] = peak_bytes()
  if kwargs is not None:
    assert int(state[1].jumps) == 1, int(state[1].jumps)
  return out


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--batch', type=int, default=4)
  parser.add_argument('--one', default='', help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.one:
    print(json.dumps(measure(args.one, args.batch)))
    return
  import jax  # pylint: disable=g-import-not-at-top
  print(f'jax {jax.__version__}, {jax.devices()[0].device_kind}; GPT-style'
        f' transformer, batch {args.batch} x 64 tokens; wnn,'
        ' record_every=1, jump_every=5 (MiB)')
  print('| setting | leaves | params | arguments | XLA temp (peak of the'
        ' step) | temp - adam | peak RSS, plain steps | peak RSS, after a'
        ' jump | jump - plain |')
  print('|---|---|---|---|---|---|---|---|---|')
  adam_temp = None
  mib = lambda b: '-' if b is None else f'{b / 2**20:,.1f}'
  for name in SETTINGS:
    result = subprocess.run(
        [sys.executable, __file__, '--one', name, '--batch', str(args.batch)],
        check=True, capture_output=True, text=True)
    r = json.loads(result.stdout.strip().splitlines()[-1])
    if adam_temp is None:
      adam_temp = r['temp']
    print(f'| {name} | {r["leaves"]} | {mib(r["params"])} |'
          f' {mib(r["arguments"])} | {mib(r["temp"])} |'
          f' {mib(r["temp"] - adam_temp)} | {mib(r["peak_plain"])} |'
          f' {mib(r["peak_jump"])} |'
          f' {mib(r["peak_jump"] and r["peak_jump"] - r["peak_plain"])} |',
          flush=True)


if __name__ == '__main__':
  main()
