"""NiNo's own FM-16 table, run with NiNo's protocol, method by method.

Protocol (SamsungSAILMontreal/nino, ``utils/vision.py`` and
``train_vision.py``; the task ``nino-fm16`` of ``optax_nowcast.lab.tasks``):

- Model: NiNo's FM-16 CNN (``tasks.NiNoConvNet``): 3x3 conv 1->16 stride 2,
  no padding (28 -> 13), 3x3 convs 16->32 and 32->32 stride 1 'same', ReLU
  after each, global average pool, Dense 32->10; 14,378 params; inputs
  ``(x / 255 - 0.1307) / 0.3081``; PyTorch's default init (uniform
  +-1/sqrt(fan_in) for weights and biases) from ``jax.random.key(seed)``.
- Data: the first 55,000 Fashion-MNIST training images in the files' order
  (``data.load('fashion_mnist_nino')``); the metric is the accuracy on all
  10,000 test images.
- Batches as PyTorch's ``DataLoader(shuffle=True, batch_size=128)`` makes
  them: each epoch a fresh permutation (``numpy.random.RandomState(seed +
  epoch)``, as NiNo reseeds with ``seed + epoch``), 430 batches per epoch,
  the last of 88 images (its loss is the mean over those 88). Every method
  sees the same batches for a seed.
- Optimizer: AdamW at 6e-3 with weight decay 0 (= ``optax.adam(6e-3)``),
  constant, 10,000 steps; seeds 1000..5000 (NiNo's).
- Nowcast as NiNo: ``optax.chain(optax.adam(6e-3), onc.nowcast(f,
  record_every=200, jump_every=5, horizon=onc.schedules.NINO_HORIZONS,
  last_jump_step=10_000))``: a record every 200 steps, a jump every 1,000
  steps (steps 1,000 .. 10,000, ten jumps, the last at the last step with
  k = 1, as NiNo's ``optim/nino.py`` does with ``max_train_steps=10000``),
  blind (no ``value_fn``), Adam's state kept.
- Target: test accuracy 89.5%; steps to target = the first evaluated step
  whose accuracy is >= 0.895. A run stops there (as NiNo's does) unless
  ``--no-early-stop``.

Evaluation scheme. NiNo evaluates after every step; the issue asks for every
10 steps. On the 2-core development machine (measured, idle) one train step
takes 0.064 s and one evaluation on the 10,000 test images 0.40 s (jitted,
1,000 images at a time; 0.86 s at 2,000, 1.04 s at 10,000); shared with
other jobs, 0.10-0.12 s and 1.0-1.5 s. A 10k-step run is thus ~11 min of
training (18+ min under load), and evaluating every 10 steps adds 1,000
evaluations (~7 min idle, up to ~25 min under load). Instead (exact to
10-step resolution under a stated, checked condition):

- every step that is a multiple of 10 has its params kept (within the
  100-step chunk being run: 10 copies of 14k floats);
- the coarse points are evaluated: every multiple of 100, and the step just
  before every 1,000th step (990, 1990, ...: a jump step's predecessor), so
  that a crossing just before a jump that knocks the accuracy down is not
  hidden by the jump;
- when a coarse accuracy of a 100-step window is >= target - margin, every
  kept 10-step point of that window is evaluated; the first point that
  reaches the target is the crossing.

So the first crossing at 10-step resolution is found exactly unless a
10-step point of some window exceeds every coarse point of that window by
more than ``margin``. The margin was measured, not guessed: a dense
calibration run (``--dense``: every 10 steps evaluated; Adam, seed 0, not one
of the five, 4,000 steps, ``results/nino_fm16/calibration/``) gave a
step-to-step test-accuracy noise of 1.7 points (std of the 10-step
differences; 0.9 points around a 110-step running mean) and a largest
excess of a window's 10-step points over its coarse points of 3.37 points
(40 windows; 90% quantile ~2 points). The margin is 1.5 x that, rounded up:
5 points (``DEFAULT_MARGIN``). The noise is large, so this refines most
windows past ~85% accuracy and saves only the evaluations of the early
steps and of the dips after jumps (~15-30%); every run records the excess
``D`` of each window it refined (``window_excess`` in its JSON) and the
table reports the largest, so the condition is checked on the real runs.

Each (method, seed) run writes ``results/nino_fm16/runs/<method>-s<seed>.json``
and is skipped when one with the same config fingerprint exists, so the
command resumes. ``table.md`` (rewritten after every run) gives steps to
target per seed, the median and the speed-up vs adam (median adam steps /
median method steps; a seed that never reaches counts as > 10,000).

Example (what ``results/nino_fm16/run.log`` comes from)::

  nohup .venv/bin/python benchmarks/nino_fm16.py --methods adam,nino-mlp \\
    --seeds 1000,2000,3000,4000,5000 > results/nino_fm16/run.log 2>&1 &
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import pathlib
import platform
import shlex
import statistics
import sys
import time
import traceback
from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax

import optax_nowcast as onc
from optax_nowcast.lab import data as data_lib
from optax_nowcast.lab import tasks

ROOT = pathlib.Path(__file__).resolve().parents[1]
OUT = ROOT / 'results' / 'nino_fm16'

TASK = 'nino-fm16'
TARGET = 0.895
FINE = 10          # resolution of the steps to target
COARSE = 100       # steps between coarse evaluations (one jitted chunk)
RECORD_EVERY, JUMP_EVERY = 200, 5
LAST_JUMP_STEP = 10_000
#: 1.5 x the largest excess (0.0337) seen in the dense calibration run,
#: rounded up (see the docstring).
DEFAULT_MARGIN = 0.05
#: Bump when the protocol or the loop changes (part of the fingerprint).
PROTOCOL_VERSION = 1


def log(*args: Any) -> None:
  print(*args, flush=True)


# ---------------------------------------------------------------- the data


def batch_plan(n: int, batch: int, steps: int,
               seed: int) -> tuple[np.ndarray, np.ndarray]:
  """PyTorch-DataLoader-like batches: ``(indices, weights)``, each
  ``(steps, batch)``; the last batch of an epoch is padded with weight 0."""
  per_epoch = -(-n // batch)
  idx = np.zeros((steps, batch), np.int32)
  weight = np.zeros((steps, batch), np.float32)
  for epoch in range(-(-steps // per_epoch)):
    perm = np.random.RandomState(seed + epoch).permutation(n)
    for b in range(per_epoch):
      s = epoch * per_epoch + b
      if s >= steps:
        break
      rows = perm[b * batch:(b + 1) * batch]
      idx[s, :len(rows)] = rows
      weight[s, :len(rows)] = 1.0
  return idx, weight


# ------------------------------------------------------------ the methods


def make_tx(method: str, task: tasks.Task) -> optax.GradientTransformation:
  """Adam, or Adam + NiNo's nowcast schedule with forecaster ``method``."""
  base = task.make_optimizer()
  if method == 'adam':
    return base
  forecaster = onc.forecasters.load(method)
  return optax.chain(base, onc.nowcast(
      forecaster, record_every=RECORD_EVERY, jump_every=JUMP_EVERY,
      horizon=onc.schedules.NINO_HORIZONS, last_jump_step=LAST_JUMP_STEP))


def forecaster_digest(method: str) -> Optional[str]:
  """SHA256 over the files of the shipped checkpoint (None for adam)."""
  if method == 'adam':
    return None
  from optax_nowcast.forecasters import _io  # pylint: disable=g-import-not-at-top
  root = _io.shipped_root() / method
  h = hashlib.sha256()
  for f in sorted(p for p in root.rglob('*') if p.is_file()):
    h.update(str(f.relative_to(root)).encode())
    h.update(hashlib.sha256(f.read_bytes()).digest())
  return h.hexdigest()


def config(method: str, seed: int, args: argparse.Namespace,
           task: tasks.Task, ds: data_lib.Dataset) -> dict[str, Any]:
  return dict(
      protocol_version=PROTOCOL_VERSION, task=TASK, method=method, seed=seed,
      model='NiNoConvNet(channels=(16, 32, 32)), torch default init',
      dataset=ds.name, train_images=len(ds.x_train),
      test_images=len(ds.x_test), batches='torch-like epochs, '
      'RandomState(seed + epoch), last batch partial',
      optimizer=task.optimizer, learning_rate=task.learning_rate,
      batch_size=task.batch_size, steps=args.steps, target=TARGET,
      fine=FINE, coarse=COARSE, margin=None if args.dense else args.margin,
      dense=args.dense, early_stop=not args.no_early_stop,
      nowcast=None if method == 'adam' else dict(
          record_every=RECORD_EVERY, jump_every=JUMP_EVERY,
          horizon=list(onc.schedules.NINO_HORIZONS),
          last_jump_step=LAST_JUMP_STEP, value_fn=None),
      forecaster_sha256=forecaster_digest(method))


def fingerprint(cfg: dict[str, Any]) -> str:
  return hashlib.sha256(
      json.dumps(cfg, sort_keys=True).encode()).hexdigest()[:16]


# ---------------------------------------------------------------- one run


def run_one(method: str, seed: int, args: argparse.Namespace,
            task: tasks.Task, ds: data_lib.Dataset, arrays: dict[str, Any],
            cfg: dict[str, Any]) -> dict[str, Any]:
  model = task.model()
  tx = make_tx(method, task)
  steps = args.steps
  idx_plan, w_plan = batch_plan(len(ds.x_train), task.batch_size, steps,
                                seed)
  params = model.init(jax.random.key(seed), arrays['x_train'][:1])['params']
  opt_state = tx.init(params)
  x_train, y_train = arrays['x_train'], arrays['y_train']

  def loss_fn(p, idx, w):
    logits = model.apply({'params': p}, x_train[idx])
    ce = optax.softmax_cross_entropy_with_integer_labels(logits,
                                                         y_train[idx])
    return jnp.sum(w * ce) / jnp.sum(w)

  def step(carry, batch):
    p, o = carry
    loss, grads = jax.value_and_grad(loss_fn)(p, *batch)
    updates, o = tx.update(grads, o, p, value=loss)
    return (optax.apply_updates(p, updates), o), loss

  def block(carry, batches):  # FINE steps, then keep the params
    carry, losses = jax.lax.scan(step, carry, batches)
    return carry, (carry[0], losses[-1])

  @jax.jit
  def chunk(p, o, idx, w):
    (p, o), (kept, losses) = jax.lax.scan(block, (p, o), (idx, w))
    return p, o, kept, losses

  eb = args.eval_batch
  x_test, y_test = arrays['x_test'], arrays['y_test']
  n_test = len(x_test)
  assert n_test % eb == 0, (n_test, eb)

  @jax.jit
  def accuracy(p):
    xs = x_test.reshape(n_test // eb, eb, *x_test.shape[1:])
    ys = y_test.reshape(n_test // eb, eb)
    correct = jax.lax.map(
        lambda b: jnp.sum(jnp.argmax(model.apply({'params': p}, b[0]), -1)
                          == b[1]), (xs, ys))
    return jnp.sum(correct) / n_test

  jump_steps = set(range(1000, min(LAST_JUMP_STEP, steps) + 1, 1000)) \
      if method != 'adam' else set()
  # The step before every (would-be) jump step, for every method alike.
  pre_jump = {s - FINE for s in range(1000, min(LAST_JUMP_STEP, steps) + 1,
                                      1000)}
  evals: dict[int, float] = {}
  coarse_steps: list[int] = []
  jumps_at: dict[int, int] = {}
  train_s_at: dict[int, float] = {}
  window_excess: list[tuple[int, float]] = []
  train_s = eval_s = 0.0
  reached: Optional[int] = None
  done = 0
  last_loss = float('nan')
  t_run = time.perf_counter()
  while done < steps:
    n = min(COARSE, steps - done)
    assert n % FINE == 0, 'steps must be a multiple of 10'
    t0 = time.perf_counter()
    params, opt_state, kept, losses = chunk(
        params, opt_state,
        jnp.asarray(idx_plan[done:done + n].reshape(n // FINE, FINE, -1)),
        jnp.asarray(w_plan[done:done + n].reshape(n // FINE, FINE, -1)))
    jax.block_until_ready(params)
    train_s += time.perf_counter() - t0
    last_loss = float(losses[-1])
    points = [done + FINE * (i + 1) for i in range(n // FINE)]
    at = {s: i for i, s in enumerate(points)}
    t0 = time.perf_counter()

    def evaluate(s):
      if s not in evals:
        evals[s] = float(accuracy(jax.tree.map(lambda a: a[at[s]], kept)))
      return evals[s]

    coarse = [s for s in points if s == points[-1] or s in pre_jump]
    coarse_acc = [evaluate(s) for s in coarse]
    coarse_steps.extend(coarse)
    if args.dense or max(coarse_acc) >= TARGET - args.margin:
      window = [evaluate(s) for s in points]
      window_excess.append((points[-1], max(window) - max(coarse_acc)))
    for s in points:
      if s in evals and evals[s] >= TARGET and reached is None:
        reached = s
    eval_s += time.perf_counter() - t0
    done += n
    jumps_at[done] = tasks.nowcast_jumps(opt_state)
    train_s_at[done] = train_s
    if done % 1000 == 0 or done == steps or (
        reached is not None and not args.no_early_stop):
      log(f'[{method} s{seed}] step {done:>5}/{steps} acc'
          f' {evals[done]:.4f} best {max(evals.values()):.4f} loss'
          f' {last_loss:.4f} jumps {jumps_at[done]} train {train_s:.0f}s'
          f' eval {eval_s:.0f}s'
          + (f' -> target at step {reached}' if reached else ''))
    if reached is not None and not args.no_early_stop:
      break
  if method != 'adam':
    expected = sum(1 for s in jump_steps if s <= done)
    if jumps_at[done] != expected:
      log(f'[{method} s{seed}] WARNING: {jumps_at[done]} jumps done by step'
          f' {done}, the schedule has {expected}')
  order = sorted(evals)
  return dict(
      config=cfg, fingerprint=fingerprint(cfg), method=method, seed=seed,
      steps_to_target=reached, stopped_at=done,
      eval_steps=order, eval_accuracy=[evals[s] for s in order],
      coarse_steps=coarse_steps,
      chunk_steps=sorted(jumps_at), chunk_jumps=[jumps_at[s] for s in
                                                 sorted(jumps_at)],
      chunk_train_seconds=[round(train_s_at[s], 3) for s in sorted(jumps_at)],
      window_excess=[[s, round(d, 6)] for s, d in window_excess],
      max_window_excess=max((d for _, d in window_excess), default=None),
      final_accuracy=evals[done], final_loss=last_loss,
      train_seconds=round(train_s, 2), eval_seconds=round(eval_s, 2),
      evaluations=len(evals),
      wall_seconds=round(time.perf_counter() - t_run, 2),
      seconds_per_step=round(train_s / done, 5),
      seconds_per_eval=round(eval_s / max(1, len(evals)), 4),
      command=' '.join(shlex.quote(a) for a in [sys.executable] + sys.argv),
      machine=machine(), jax=jax.__version__,
      finished=time.strftime('%Y-%m-%d %H:%M:%S'))


def machine() -> str:
  return (f'{platform.machine()} {platform.processor() or "CPU"},'
          f' {os.cpu_count()} cores, {platform.system()}, jax'
          f' {jax.__version__} ({jax.default_backend()})')


# --------------------------------------------------------------- the table


def _fmt_steps(s: Optional[int], steps: int) -> str:
  return f'>{steps:,}' if s is None else f'{s:,}'


def _median(values: list[Optional[int]], steps: int) -> float:
  return statistics.median(math.inf if v is None else v for v in values)


def write_table(out: pathlib.Path, runs_dir: pathlib.Path, args, methods,
                failures: dict[str, str]) -> None:
  runs = []
  for f in sorted(runs_dir.glob('*.json')):
    try:
      r = json.loads(f.read_text())
    except (OSError, ValueError):
      continue
    c = dict(r['config'])
    if (c.get('protocol_version') != PROTOCOL_VERSION
        or c.get('steps') != args.steps):
      continue
    runs.append(r)
  by_method: dict[str, dict[int, dict]] = {}
  for r in runs:
    by_method.setdefault(r['method'], {})[r['seed']] = r
  order = ['adam'] + [m for m in methods if m != 'adam']
  order += sorted(m for m in by_method if m not in order)
  seeds = sorted({s for m in by_method.values() for s in m})
  steps = args.steps
  medians = {m: _median([r['steps_to_target'] for r in by_method[m].values()],
                        steps) for m in by_method}
  lines = [
      "# NiNo's FM-16 with NiNo's protocol: steps to 89.5% test accuracy",
      '',
      'Commands:',
      '',
  ]
  for c in sorted({r['command'] for r in runs}) or [
      ' '.join(shlex.quote(a) for a in [sys.executable] + sys.argv)]:
    lines.append(f'    {c}')
  sec_step = [r['seconds_per_step'] for r in runs]
  sec_eval = [r['seconds_per_eval'] for r in runs if r['evaluations']]
  lines += [
      '',
      f'Machine: {machine()} (2-core development machine, shared with'
      ' other jobs).',
      '',
      'Protocol: `benchmarks/nino_fm16.py` (docstring): NiNo\'s FM-16 CNN'
      ' (14,378 params), first 55,000 Fashion-MNIST training images, Adam'
      ' 6e-3 constant, batch 128, 10,000 steps; nowcast record_every=200,'
      ' jump_every=5, horizons NINO_HORIZONS, blind jumps at steps'
      ' 1,000..10,000. Steps to target: first step (10-step resolution)'
      ' with test accuracy >= 89.5% on all 10,000 test images; `>10,000`:'
      ' never reached (counted as infinite in the median).',
      '',
      '| method | ' + ' | '.join(f's{s}' for s in seeds)
      + ' | median | speed-up vs adam |',
      '|---' * (len(seeds) + 3) + '|',
  ]
  adam = medians.get('adam')
  for m in order:
    if m not in by_method:
      continue
    cells = []
    for s in seeds:
      r = by_method[m].get(s)
      cells.append('—' if r is None else
                   _fmt_steps(r['steps_to_target'], steps))
    med = medians[m]
    med_s = f'>{steps:,}' if math.isinf(med) else f'{med:,.0f}'
    if m == 'adam':
      speed = '1.00x' if not math.isinf(med) else '—'
    elif adam is None:
      speed = '(no adam runs)'
    elif math.isinf(med) and math.isinf(adam):
      speed = '?'
    elif math.isinf(med):
      speed = f'<{adam / steps:.2f}x'
    elif math.isinf(adam):
      speed = f'>{steps / med:.2f}x'
    else:
      speed = f'{adam / med:.2f}x'
    done_seeds = len(by_method[m])
    lines.append(f'| {m} ({done_seeds} seeds) | ' + ' | '.join(cells)
                 + f' | {med_s} | {speed} |')
  excess = [r['max_window_excess'] for r in runs
            if r.get('max_window_excess') is not None]
  lines += [
      '',
      f'Seconds per train step: median {statistics.median(sec_step):.3f}'
      if sec_step else 'Seconds per train step: —',
      f'Seconds per evaluation (10,000 test images): median'
      f' {statistics.median(sec_eval):.3f}' if sec_eval else '',
      '',
      f'Evaluation: coarse every {COARSE} steps (and 10 steps before each'
      f' jump step), the 10-step points of a window evaluated when a coarse'
      f' accuracy is >= target - margin (margin {args.margin:.3f}).'
      f' Largest excess of a 10-step point over its window\'s coarse points,'
      f' over all refined windows: '
      + (f'{max(excess):.4f}' if excess else '—')
      + ' (the scheme is exact while this stays below the margin).',
  ]
  if failures:
    lines += ['', 'Not run:', '']
    lines += [f'- {m}: {why}' for m, why in failures.items()]
  (out / 'table.md').write_text('\n'.join(lines) + '\n')


# -------------------------------------------------------------------- main


def main(argv: Optional[list[str]] = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--methods', default='adam,nino-mlp,wnn,multihorizon,'
                      'nino', help='comma-separated: adam and names of'
                      ' onc.forecasters.load')
  parser.add_argument('--seeds', default='1000,2000,3000,4000,5000')
  parser.add_argument('--steps', type=int, default=10_000)
  parser.add_argument('--margin', type=float, default=DEFAULT_MARGIN,
                      help='refine a 100-step window when a coarse accuracy'
                      ' is >= target - margin')
  parser.add_argument('--dense', action='store_true',
                      help='evaluate every 10 steps (calibration)')
  parser.add_argument('--no-early-stop', action='store_true',
                      help='train all steps even after reaching the target')
  parser.add_argument('--eval-batch', type=int, default=1000,
                      help='test images per forward pass (1,000 is the'
                      ' fastest on the 2-core CPU)')
  parser.add_argument('--data', default=None,
                      help='data directory (default: $OPTAX_NOWCAST_DATA,'
                      ' else ../shared/data beside the checkout if present)')
  parser.add_argument('--out', default=str(OUT))
  args = parser.parse_args(argv)
  if args.steps % COARSE:
    parser.error(f'--steps must be a multiple of {COARSE}')
  methods = [m for m in args.methods.split(',') if m]
  seeds = [int(s) for s in args.seeds.split(',') if s]
  out = pathlib.Path(args.out)
  runs_dir = out / 'runs'
  runs_dir.mkdir(parents=True, exist_ok=True)

  data_path = args.data
  if data_path is None and not os.environ.get(data_lib.DATA_DIR_ENV):
    shared = ROOT.parent / 'shared' / 'data'
    if (shared / 'fashion_mnist').is_dir():
      data_path = str(shared)
  task = tasks.get(TASK)
  ds = data_lib.load(task.dataset, data_path)
  arrays = dict(x_train=jnp.asarray(ds.x_train),
                y_train=jnp.asarray(ds.y_train),
                x_test=jnp.asarray(ds.x_test), y_test=jnp.asarray(ds.y_test))
  log(f'{TASK}: {ds}; machine: {machine()}')
  log(f'methods {methods}, seeds {seeds}, steps {args.steps}, margin'
      f' {args.margin}, dense {args.dense}')

  failures: dict[str, str] = {}
  usable = []
  for m in methods:
    if m == 'adam':
      usable.append(m)
      continue
    try:
      onc.forecasters.load(m)
      forecaster_digest(m)
    except Exception as e:  # pylint: disable=broad-except
      why = f'{type(e).__name__}: {e}'.splitlines()[0][:300]
      failures[m] = f'does not load ({why})'
      log(f'SKIPPING method {m!r}: onc.forecasters.load({m!r}) failed:'
          f' {why}')
      continue
    usable.append(m)

  for m in usable:
    for seed in seeds:
      cfg = config(m, seed, args, task, ds)
      fp = fingerprint(cfg)
      path = runs_dir / f'{m}-s{seed}.json'
      if path.exists():
        try:
          old = json.loads(path.read_text())
        except (OSError, ValueError):
          old = {}
        if old.get('fingerprint') == fp:
          log(f'[{m} s{seed}] done already ({path.name}): steps to target'
              f' {old.get("steps_to_target")}')
          continue
        log(f'[{m} s{seed}] {path.name} has another config: running again')
      log(f'[{m} s{seed}] start')
      try:
        result = run_one(m, seed, args, task, ds, arrays, cfg)
      except Exception as e:  # pylint: disable=broad-except
        why = f'{type(e).__name__}: {e}'.splitlines()[0][:300]
        failures[f'{m} s{seed}'] = f'failed ({why})'
        log(f'[{m} s{seed}] FAILED: {why}')
        traceback.print_exc()
        sys.stdout.flush()
        continue
      tmp = path.with_suffix('.json.tmp')
      tmp.write_text(json.dumps(result, indent=1) + '\n')
      tmp.replace(path)
      log(f'[{m} s{seed}] steps to target {result["steps_to_target"]}'
          f' ({result["train_seconds"]:.0f}s train,'
          f' {result["eval_seconds"]:.0f}s eval, {result["evaluations"]}'
          f' evaluations) -> {path}')
      write_table(out, runs_dir, args, methods, failures)
  write_table(out, runs_dir, args, methods, failures)
  log(f'table: {out / "table.md"}')
  return 1 if failures else 0


if __name__ == '__main__':
  sys.exit(main())
