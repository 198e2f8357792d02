"""The ``optax-nowcast`` command line."""

from __future__ import annotations

import argparse
import importlib.util
import sys
from typing import Optional, Sequence

# Light: the registry module imports no forecaster until one is asked for.
from optax_nowcast.forecasters import _registry as registry


def _positive_int(text: str) -> int:
  try:
    value = int(text)
  except ValueError:
    raise argparse.ArgumentTypeError(
        f'must be a positive int, got {text!r}') from None
  if value < 1:
    raise argparse.ArgumentTypeError(f'must be a positive int, got {text!r}')
  return value


def _worker(text: str) -> tuple[int, int]:
  """``K/N``: the K-th (0-based) of N workers."""
  k, _, n = text.partition('/')
  try:
    k, n = int(k), int(n)
  except ValueError:
    k = n = -1
  if not 0 <= k < n:
    raise argparse.ArgumentTypeError(
        f'must be K/N with 0 <= K < N, e.g. 0/2, got {text!r}')
  return k, n


def _out_dir(text: str) -> str:
  """An output directory: absent (it is created) or a directory."""
  import os  # pylint: disable=g-import-not-at-top
  if os.path.exists(text) and not os.path.isdir(text):
    raise argparse.ArgumentTypeError(
        f'{text!r} exists and is not a directory; give a directory path')
  return text


def _in_dir(text: str) -> str:
  """An existing input directory."""
  import os  # pylint: disable=g-import-not-at-top
  if not os.path.isdir(text):
    raise argparse.ArgumentTypeError(
        f'{text!r} is not a directory; record trajectories there first with'
        ' `optax-nowcast collect --out DIR`')
  return text


def _demo(args: argparse.Namespace) -> int:
  args.task, args.suite, args.steps = 'teacher-mlp', False, None
  args.fresh = True  # The demo always measures anew.
  args.saved_only, args.worker = False, None
  args.prune = args.dry_run = False
  return _bench(args)


def _collect(args: argparse.Namespace) -> int:
  from optax_nowcast.lab.meta import trajectories  # pylint: disable=g-import-not-at-top
  from optax_nowcast.lab.meta import zoo  # pylint: disable=g-import-not-at-top

  specs = zoo.runs(args.zoo)
  try:
    dirs = trajectories.collect(specs, args.out, args.snapshot_every,
                                max_per_leaf=args.max_per_leaf,
                                progress=not args.no_progress,
                                worker=args.worker)
  except KeyboardInterrupt:
    print(f'\ninterrupted: the finished runs are kept under {args.out}; run'
          ' the same command again to resume', file=sys.stderr)
    return 130
  share = '' if args.worker is None else (
      f' (worker {args.worker[0]}/{args.worker[1]}: its share of'
      f' {len(specs)} runs)')
  print(f'{len(dirs)} trajectories under {args.out}{share}; validate on'
        f' --holdout {",".join(zoo.HOLDOUT[args.zoo])}')
  return 0


def _train_forecaster(args: argparse.Namespace) -> int:
  from optax_nowcast.lab.meta import pipeline  # pylint: disable=g-import-not-at-top
  from optax_nowcast.lab.meta import train  # pylint: disable=g-import-not-at-top

  holdout = [t.strip() for t in args.holdout.split(',') if t.strip()]
  trainer = registry.get(args.kind).trainer
  if trainer is not None:  # a forecaster with its own meta-training
    module = importlib.import_module(trainer)
    config = module.FitConfig(steps=args.steps, batch_size=args.batch_size,
                              learning_rate=args.learning_rate,
                              seed=args.seed)
    # The forecaster's own default horizon unless one is given.
    extra = {} if args.horizon is None else {'horizon': args.horizon}
    manifest = module.train_forecaster(
        args.trajectories, args.out, holdout=holdout, config=config,
        per_kind=args.per_label, **extra,
        progress=not args.no_progress,
        command='optax-nowcast ' + ' '.join(sys.argv[1:]))
    print(f'saved {args.kind} to {args.out} ({manifest["train_seconds"]} s);'
          ' validation L1 per horizon on held-out tasks, in leaf standard'
          ' deviations:')
    print(module.format_validation(manifest['validation_l1_per_horizon']))
    return 0
  config = train.TrainConfig(steps=args.steps, batch_size=args.batch_size,
                             learning_rate=args.learning_rate,
                             decay_every=max(1, args.steps // 4),
                             seed=args.seed)
  manifest = pipeline.train_forecaster(
      args.kind, args.trajectories, args.out, holdout=holdout, config=config,
      horizon=5 if args.horizon is None else args.horizon,
      per_label=args.per_label, progress=not args.no_progress,
      command='optax-nowcast ' + ' '.join(sys.argv[1:]))
  print(f'saved {args.kind} to {args.out} ({manifest["train_seconds"]} s);'
        ' validation L1 on held-out tasks, weight units:')
  print(pipeline.format_validation(manifest['validation_l1']))
  return 0


def _bench(args: argparse.Namespace) -> int:
  import pathlib  # pylint: disable=g-import-not-at-top
  from optax_nowcast.lab.bench import report  # pylint: disable=g-import-not-at-top
  from optax_nowcast.lab.bench import runner  # pylint: disable=g-import-not-at-top
  from optax_nowcast.lab.bench import speedup  # pylint: disable=g-import-not-at-top
  from optax_nowcast.lab import tasks  # pylint: disable=g-import-not-at-top

  if args.prune:
    if args.out is None:
      raise ValueError('--prune needs --out DIR (the benchmark to prune)')
    dropped = runner.prune(pathlib.Path(args.out) / 'runs',
                           dry_run=args.dry_run)
    verb = 'would drop' if args.dry_run else 'dropped'
    for file, why in dropped:
      print(f'{verb} {file}: {why}')
    print(f'{verb} {len(dropped)} saved runs')
    return 0
  if args.dry_run:
    raise ValueError('--dry-run goes with --prune')
  if args.suite == bool(args.task):
    raise ValueError('give exactly one of --task T and --suite')
  if args.task:
    tasks.get(args.task)  # an unknown task is named before any other error
  for m in (m.strip() for m in args.methods.split(',') if m.strip()):
    if m not in runner.METHODS:
      raise ValueError(f'methods must be among {runner.METHODS}, got {m!r}')
  if args.out is None:
    raise ValueError('the following argument is required: --out DIR')
  try:
    _out_dir(args.out)
  except argparse.ArgumentTypeError as e:
    raise ValueError(f'--out: {e}') from None
  if args.fresh and args.saved_only:
    raise ValueError('--fresh redoes runs, --saved-only trains none: give'
                     ' one of them')
  names = runner.SUITE if args.suite else [args.task]
  methods = [m.strip() for m in args.methods.split(',') if m.strip()]
  command = 'optax-nowcast ' + ' '.join(sys.argv[1:])
  if args.worker is not None:
    if args.saved_only:
      raise ValueError('--worker trains runs, --saved-only trains none: give'
                       ' one of them')
    k, n = args.worker
    for name in names:
      count = runner.train_share(
          name, methods, args.seeds, k, n, steps=args.steps,
          cache_dir=pathlib.Path(args.out) / 'runs', reuse=not args.fresh,
          progress=not args.no_progress)
      print(f'{name}: worker {k}/{n} has its {count} runs saved under'
            f' {pathlib.Path(args.out) / "runs"}; when every worker is done,'
            ' report them with the same command, --saved-only instead of'
            ' --worker')
    return 0
  tables = []
  for name in names:
    rep = runner.run_task(name, methods, args.seeds, steps=args.steps,
                          progress=not args.no_progress, command=command,
                          cache_dir=pathlib.Path(args.out) / 'runs',
                          reuse=not args.fresh, saved_only=args.saved_only,
                          first_seed=args.first_seed)
    rep['summary'] = speedup.summarize(rep)
    paths = report.write(rep, pathlib.Path(args.out))
    tables.append(report.markdown(rep))
    print(tables[-1])
    print()
    print(report.explain(rep))
    print(f'wrote {", ".join(str(p) for p in paths.values())}\n')
  if args.suite:
    (pathlib.Path(args.out) / 'suite.md').write_text('\n\n'.join(tables))
  return 0


def _tune(args: argparse.Namespace) -> int:
  import pathlib  # pylint: disable=g-import-not-at-top
  from optax_nowcast.lab import tasks  # pylint: disable=g-import-not-at-top
  from optax_nowcast.lab.bench import runner  # pylint: disable=g-import-not-at-top
  from optax_nowcast.lab.bench import tune  # pylint: disable=g-import-not-at-top

  names = runner.SUITE if args.suite else [
      t.strip() for t in args.task.split(',') if t.strip()]
  if args.suite == bool(names):
    raise ValueError('give exactly one of --task T[,T...] and --suite')
  for name in names:
    tasks.get(name)
  command = 'optax-nowcast ' + ' '.join(sys.argv[1:])
  peer = args.method != 'adam'
  cache = (pathlib.Path(args.bench_cache) if peer
           else pathlib.Path(args.out) / 'runs')
  for name in names:
    rep = tune.sweep(name, cache_dir=cache, seed=args.seed, steps=args.steps,
                     progress=not args.no_progress, command=command,
                     method=args.method)
    paths = tune.write(rep, args.out)
    print(tune.markdown(rep))
    registered = tasks.get(name).learning_rate
    if peer:
      verdict = (f"{args.method}'s best rate on {name} is"
                 f" {rep['best_factor']:g} x Adam's; the benchmark reads it"
                 f' from {paths["json"]} (register it in'
                 ' optax_nowcast/lab/peers.py TUNED)')
    else:
      verdict = ('the registered rate is the best' if
                 rep['best_learning_rate'] == registered else
                 f"register learning_rate={rep['best_learning_rate']:g} for"
                 f' {name} in optax_nowcast/lab/tasks.py (now'
                 f' {registered:g})')
    print(f'{verdict}; wrote {paths["json"]} and {paths["md"]}\n')
  return 0


def _robustness(args: argparse.Namespace) -> int:
  import pathlib  # pylint: disable=g-import-not-at-top
  from optax_nowcast.lab import tasks  # pylint: disable=g-import-not-at-top
  from optax_nowcast.lab.bench import robustness  # pylint: disable=g-import-not-at-top
  from optax_nowcast.lab.bench import runner  # pylint: disable=g-import-not-at-top

  names = [t.strip() for t in args.task.split(',') if t.strip()]
  if not names:
    raise ValueError('give --task T[,T...]')
  for name in names:
    tasks.get(name)
  methods = [m.strip() for m in args.methods.split(',') if m.strip()]
  for m in methods:
    if m not in runner.METHODS or m == 'adam-sweep':
      raise ValueError(f'methods must be among {runner.METHODS} (not'
                       f' adam-sweep), got {m!r}')
  command = 'optax-nowcast ' + ' '.join(sys.argv[1:])
  for name in names:
    rep = robustness.run(
        name, methods, target=robustness.suite_target(name, args.suite_dir),
        cache_dir=pathlib.Path(args.suite_dir) / 'runs', seed=args.seed,
        progress=not args.no_progress, command=command)
    paths = robustness.write(rep, args.out)
    print(robustness.markdown(rep))
    print(f'wrote {", ".join(str(p) for p in paths.values())}\n')
  return 0


def _task_arguments(parser: argparse.ArgumentParser, task_help: str) -> None:
  """``--task``, ``--suite`` and ``--steps``, shared by bench and tune."""
  parser.add_argument('--task', default='', help=task_help)
  parser.add_argument('--suite', action='store_true',
                      help='every task of the benchmark suite')
  parser.add_argument('--steps', type=_positive_int, default=None,
                      help="override the task's step budget")


def build_parser() -> argparse.ArgumentParser:
  """The argument parser of ``optax-nowcast``."""
  import optax_nowcast  # pylint: disable=g-import-not-at-top
  from optax_nowcast.lab import tasks  # pylint: disable=g-import-not-at-top
  from optax_nowcast.lab.bench import runner  # pylint: disable=g-import-not-at-top

  task_list = (', '.join(tasks.public_names())
               + ' (and the meta-training zoo: zoo-*)')
  method_list = ', '.join(runner.METHODS)
  parser = argparse.ArgumentParser(
      prog='optax-nowcast',
      description='Weight nowcasting for optax: reach your target sooner.',
      formatter_class=argparse.ArgumentDefaultsHelpFormatter)
  parser.add_argument('--version', action='version',
                      version=f'%(prog)s {optax_nowcast.__version__}')
  sub = parser.add_subparsers(dest='command', required=True)
  sub_parser = sub.add_parser

  def add_parser(*args, **kwargs):
    return sub_parser(*args, formatter_class=(
        argparse.ArgumentDefaultsHelpFormatter), **kwargs)

  sub.add_parser = add_parser
  demo = sub.add_parser(
      'demo',
      help='Adam, the recommended recipe and its peers, side by side, on a'
      ' generated task.',
      description=(
          'The benchmark on its embedded task (teacher-mlp: an MLP learning'
          ' the labels of a random teacher network on generated 8x8 images,'
          ' 10,000 test images, nothing to download): trains it with tuned'
          ' Adam, the recommended recipe (Adam on a tuned cosine decay +'
          ' nowcast(NiNo\'s released per-weight model, nino-mlp) on NiNo\'s'
          ' schedule, blind jumps before the decay), the same cosine decay'
          ' alone, and the peer'
          ' that beats it on most of the suite (schedule-free AdamW), each'
          ' at its tuned rate, for several seeds in one process; prints'
          ' steps and seconds to a target test accuracy and the speed-ups,'
          ' and writes the JSON report and the plot to --out.'))
  demo.add_argument('--methods',
                    default='adam,nino-mlp+cosine,adam-cosine,sf-adamw',
                    help=f'comma-separated methods among {method_list}')
  demo.add_argument('--seeds', type=_positive_int, default=3,
                    help='seeds 0 .. N-1, each method on each')
  demo.add_argument('--first-seed', type=int, default=0,
                    help='start the seeds there (fresh seeds: does the result'
                    ' hold?)')
  demo.add_argument('--out', default='nowcast_demo', type=_out_dir,
                    help='where to write teacher-mlp.{json,md,png}')
  demo.add_argument('--no-progress', action='store_true',
                    help='hide the progress bar')
  demo.set_defaults(func=_demo)

  collect = sub.add_parser(
      'collect', help='Record weight trajectories of the meta-training zoo.',
      description=(
          'Trains every run of a zoo configuration and writes snapshots of all'
          ' params plus the metric curve under --out (one directory per run;'
          ' format in optax_nowcast/lab/meta/trajectories.py). Finished runs'
          ' are skipped, so an interrupted collection resumes where it'
          ' stopped: run the same command again. --worker K/N records only'
          ' the K-th of N shares, so N processes (one per core) can fill'
          ' the same --out. The corpus (360 runs, 390 MB) took about 1.5'
          ' hours in one process on the 2-core development CPU, sharing it'
          ' with other jobs.'))
  collect.add_argument('--zoo', choices=('tiny', 'full', 'corpus'),
                       default='full',
                       help='tiny: a few runs on the embedded digits (CI);'
                       ' full: the runs the shipped forecasters saw;'
                       ' corpus: the meta-training corpus of'
                       ' optax_nowcast/lab/meta/zoo.py')
  collect.add_argument('--out', required=True, type=_out_dir,
                       help='trajectory directory')
  collect.add_argument('--snapshot-every', type=_positive_int, default=20,
                       help='steps between snapshots of all params, for runs'
                       ' whose zoo sets none (tiny, full; the corpus snapshots'
                       ' every 10-15 steps)')
  collect.add_argument('--max-per-leaf', type=_positive_int, default=2048,
                       help='scalars kept per param leaf, for runs whose zoo'
                       ' sets none (the corpus keeps 256)')
  collect.add_argument('--worker', type=_worker, default=None, metavar='K/N',
                       help='record only the K-th of N shares of the runs'
                       ' (K = 0 .. N-1; a group of runs trained at once is'
                       ' never split): start N processes on the same --out')
  collect.add_argument('--no-progress', action='store_true',
                       help='hide the progress bar')
  collect.set_defaults(func=_collect)

  fit = sub.add_parser(
      'train-forecaster',
      help='Fit a learned forecaster to recorded trajectories.',
      description=(
          'Cuts (window, target) samples from the trajectories, fits the'
          ' forecaster with an L1 loss, reports validation L1 on the held-out'
          ' tasks next to the last and linear baselines, and saves weights and'
          ' manifest to --out (orbax-checkpoint).'))
  fit.add_argument('--kind', choices=registry.names(), required=True,
                   help='a registered learned forecaster')
  fit.add_argument('--trajectories', required=True, type=_in_dir,
                   help='directory written by collect')
  fit.add_argument('--out', required=True, type=_out_dir,
                   help='checkpoint directory')
  fit.add_argument('--holdout', default='fmnist-mlp',
                   help='comma-separated tasks used only for validation')
  fit.add_argument('--steps', type=_positive_int, default=4000,
                   help='training steps')
  fit.add_argument('--batch-size', type=_positive_int, default=512,
                   help='samples per label pool and step')
  fit.add_argument('--learning-rate', type=float, default=1e-3,
                   help='initial Adam learning rate, halved every quarter of the'
                   ' steps')
  fit.add_argument('--horizon', type=_positive_int, default=None,
                   help='the checkpoint\'s default horizon in records'
                   ' (default: 5, or the forecaster\'s own, 10 for'
                   ' multihorizon)')
  fit.add_argument('--per-label', type=_positive_int, default=20_000,
                   help='samples per label kind, run and record interval'
                   ' (multihorizon: per leaf kind, run and spacing)')
  fit.add_argument('--seed', type=int, default=0,
                   help='seed of the samples and the initial weights')
  fit.add_argument('--no-progress', action='store_true',
                   help='hide the progress bar')
  fit.set_defaults(func=_train_forecaster)

  bench = sub.add_parser(
      'bench', help='Steps and seconds to a target: every method, side by side.',
      description=(
          'Trains a task with each method for several seeds in one process'
          ' (seed by seed, method by method), and writes <task>.json (schema'
          ' in optax_nowcast/lab/bench/report.py), <task>.md (table) and'
          ' <task>.png (metric vs step, jumps marked) under --out. Each'
          ' finished run is kept under --out/runs/ and reused when the'
          ' command is run again with the same settings, so an interrupted'
          ' benchmark resumes where it stopped (--fresh redoes every run).'))
  _task_arguments(bench, f'a registered task: {task_list}')
  bench.add_argument('--methods',
                     default='adam,nino-mlp+cosine,multihorizon-select,'
                     'multihorizon,multihorizon-guard,wnn,adam-cosine,'
                     'adam-sweep',
                     help='comma-separated methods (adam is always run) among'
                     f' {method_list}')
  bench.add_argument('--seeds', type=_positive_int, default=3,
                     help='seeds 0 .. N-1, each method on each')
  bench.add_argument('--first-seed', type=int, default=0,
                     help='start the seeds there (fresh seeds: does a result'
                     ' hold?)')
  # Required, but checked in _bench, after the task name: an unknown task is
  # the first thing to say.
  bench.add_argument('--out', default=None,
                     help='output directory (created if absent); required')
  bench.add_argument('--no-progress', action='store_true',
                     help='hide the progress bar')
  bench.add_argument('--fresh', action='store_true',
                     help='redo (and save again) runs saved under --out/runs by earlier'
                     ' calls')
  bench.add_argument('--saved-only', action='store_true',
                     help='train nothing: report the methods whose runs are'
                     ' all saved under --out/runs (e.g. of a suite still'
                     ' running)')
  bench.add_argument('--worker', type=_worker, default=None, metavar='K/N',
                     help='train only the K-th of N shares of the runs'
                     ' (K = 0 .. N-1) and save them, writing no report: start'
                     ' N processes to use N cores, then report with'
                     ' --saved-only')
  bench.add_argument('--prune', action='store_true',
                     help='train nothing: delete the runs saved under'
                     ' --out/runs whose settings no longer match any method'
                     ' (an unknown method, task or file, or another'
                     ' fingerprint)')
  bench.add_argument('--dry-run', action='store_true',
                     help='with --prune: only say what it would delete')
  bench.set_defaults(func=_bench)

  tune_parser = sub.add_parser(
      'tune', help="Sweep a task's learning rate (1 seed): tuned Adam.",
      description=(
          "Trains the task's optimizer at 5 learning rates (1e-3 * 2**k,"
          ' centred on the registered rate; extended past an edge while the'
          ' best is there), one seed, the whole budget, and writes'
          ' <task>.json and <task>.md under --out. Runs are saved under'
          ' --out/runs and reused, so an interrupted sweep resumes.'))
  _task_arguments(tune_parser,
                  f'comma-separated registered tasks: {task_list}')
  tune_parser.add_argument('--out', default='results/lr_sweep',
                           type=_out_dir, help='output directory')
  tune_parser.add_argument('--seed', type=int, default=0, help='the seed')
  tune_parser.add_argument(
      '--method', default='adam', choices=('adam', *runner.PEERS),
      help="adam (the task's optimizer), or a peer of the benchmark, swept"
      " at x1/2, x1, x2 the task's Adam rate (extended past an edge)")
  tune_parser.add_argument(
      '--bench-cache', default='results/suite/runs',
      help="where a peer's runs are saved: the benchmark's --out/runs, so"
      ' that it reuses them')
  tune_parser.add_argument('--no-progress', action='store_true',
                           help='hide the progress bar')
  tune_parser.set_defaults(func=_tune)

  robust = add_parser(
      'robustness', help='Steps to the target at untuned learning rates.',
      description=(
          "Trains each method at 1/8, 1/4, 1/2, 1 and 2 times its own tuned"
          ' rate (one seed) and writes steps to the target of the task\'s'
          ' suite report as <task>.json, .md and .png (steps against the'
          ' rate) under --out. Runs are the benchmark\'s, saved under'
          ' --suite-dir/runs and reused.'))
  robust.add_argument('--task', default='',
                      help=f'comma-separated registered tasks: {task_list}')
  robust.add_argument('--methods', default='adam,multihorizon,sf-adamw',
                      help='comma-separated benchmark methods')
  robust.add_argument('--suite-dir', default='results/suite',
                      help='the benchmark output whose target and runs to use')
  robust.add_argument('--out', default='results/robustness', type=_out_dir,
                      help='output directory')
  robust.add_argument('--seed', type=int, default=0, help='the seed')
  robust.add_argument('--no-progress', action='store_true',
                      help='hide the progress bar')
  robust.set_defaults(func=_robustness)
  return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
  """Entry point of the ``optax-nowcast`` console script."""
  missing = [m for m in ('sklearn', 'tqdm', 'matplotlib')
             if importlib.util.find_spec(m) is None]
  if missing:
    print(f'optax-nowcast: error: the lab needs {missing}, which come with'
          " pip install 'optax-nowcast[lab]'", file=sys.stderr)
    return 2
  args = build_parser().parse_args(argv)
  try:
    return args.func(args)
  except (ValueError, FileNotFoundError) as e:
    print(f'optax-nowcast {args.command}: error: {e}', file=sys.stderr)
    return 2


if __name__ == '__main__':
  sys.exit(main())
