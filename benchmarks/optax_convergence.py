"""Do nowcast chains still solve optax's own test problems? Blind vs checked.

optax's ``alias_test.test_optimization`` runs each optimizer of its list for
10,000 steps on a parabola and on the Rosenbrock function and requires the
final params within ``rtol=atol=3e-2`` of the optimum. This script runs the
same problems, optimizers and tolerance with ``optimizer + nowcast(...)``
for every forecaster under three ways of ending the jumps:

- ``blind``: jumps to the forecast until the last step
  (``last_jump_step=10_000``: what the default did before checked jumps);
- ``stop-90%``: blind jumps that stop at step 9,000 (``last_jump_step``);
- ``checked``: loss-checked jumps (``value_fn`` passed to ``update``, the
  default ``select`` step sizes), jumping until the last step.

and prints, per forecaster and mode, how many (optimizer, problem) cases
reach optax's target, with the failures named (NaN: the step where the loss
first stopped being finite). Each run is one ``lax.scan`` of 10,000 steps.

Run::

  python benchmarks/optax_convergence.py                 # record_every=10
  python benchmarks/optax_convergence.py --record-every 1 --out results/x.md
"""

from __future__ import annotations

import argparse
import collections
import time

from optax_nowcast.lab.bench.optax_problems import FORECASTERS
from optax_nowcast.lab.bench.optax_problems import MODES
from optax_nowcast.lab.bench.optax_problems import OPTIMIZERS
from optax_nowcast.lab.bench.optax_problems import PROBLEMS
from optax_nowcast.lab.bench.optax_problems import run
from optax_nowcast.lab.bench.optax_problems import STEPS

def main(argv=None):
  parser = argparse.ArgumentParser(
      description=__doc__.split('\n\n')[0],
      formatter_class=argparse.ArgumentDefaultsHelpFormatter)
  parser.add_argument('--record-every', type=int, default=10)
  parser.add_argument('--forecasters', default=','.join(FORECASTERS))
  parser.add_argument('--modes', default=','.join(MODES))
  parser.add_argument('--out', default=None, help='also write the table here')
  args = parser.parse_args(argv)
  forecasters = args.forecasters.split(',')
  modes = args.modes.split(',')
  cases = [(o, k, p) for o, k in OPTIMIZERS for p in PROBLEMS]
  failures = collections.defaultdict(list)
  passed = collections.Counter()
  start = time.perf_counter()
  for forecaster in forecasters:
    for mode in modes:
      if forecaster == 'introspection' and mode != 'checked':
        # Its schedule ends by itself: one blind row, under 'blind'.
        if mode != 'blind':
          continue
      for opt_name, opt_kwargs, problem in cases:
        reached, final_loss, nan_at, *_ = run(
            opt_name, opt_kwargs, problem, forecaster, mode,
            args.record_every)
        if reached:
          passed[forecaster, mode] += 1
        else:
          why = f'NaN at step {nan_at}' if nan_at > 0 else f'loss {final_loss:.3g}'
          label = opt_name + ('(momentum)' if 'momentum' in opt_kwargs else '')
          failures[forecaster, mode].append(f'{label}/{problem}: {why}')
      print(f'{forecaster:14s} {mode:9s} {passed[forecaster, mode]}/'
            f'{len(cases)}  ({time.perf_counter() - start:.0f} s)', flush=True)
  lines = [
      f'optax problems (optax 0.2.8 alias_test), {STEPS} steps,'
      f' record_every={args.record_every}, jump_every=window, horizon 5'
      ' (wnn: its own); cases reaching params within rtol=atol=3e-2 of the'
      ' optimum:', '',
      '| forecaster | jumps | reached | failures |', '|---|---|---|---|']
  for forecaster in forecasters:
    for mode in modes:
      if (forecaster, mode) not in passed and (forecaster, mode) not in failures:
        continue
      shown = 'scheduled, blind' if forecaster == 'introspection' and (
          mode == 'blind') else mode
      fails = failures[forecaster, mode]
      lines.append(f'| {forecaster} | {shown} | {passed[forecaster, mode]}/'
                   f'{len(cases)} | {"; ".join(fails) or "-"} |')
  table = '\n'.join(lines)
  print(table)
  if args.out:
    with open(args.out, 'w') as f:
      f.write(table + '\n')


if __name__ == '__main__':
  main()
