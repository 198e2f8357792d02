"""The ``optax-nowcast`` command line."""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence


def _positive_int(text: str) -> int:
  try:
    value = int(text)
  except ValueError:
    raise argparse.ArgumentTypeError(
        f'must be a positive int, got {text!r}') from None
  if value < 1:
    raise argparse.ArgumentTypeError(f'must be a positive int, got {text!r}')
  return value


def _demo(args: argparse.Namespace) -> int:
  from optax_nowcast import demo  # pylint: disable=g-import-not-at-top

  methods = [m.strip() for m in args.methods.split(',') if m.strip()]
  report = demo.run(methods=methods, seeds=args.seeds, epochs=args.epochs,
                    progress=not args.no_progress)
  print(report)
  return 0


def build_parser() -> argparse.ArgumentParser:
  """The argument parser of ``optax-nowcast``."""
  parser = argparse.ArgumentParser(
      prog='optax-nowcast',
      description='Weight nowcasting for optax: reach your target sooner.')
  sub = parser.add_subparsers(dest='command', required=True)
  demo = sub.add_parser(
      'demo',
      help='Adam vs Adam + nowcast on scikit-learn digits, side by side.',
      description=(
          'Trains an MLP on the digits that ship with scikit-learn, with plain'
          ' Adam and with Adam + nowcast, for several seeds in one process,'
          ' and prints steps to a target test accuracy and the speed-up.'))
  demo.add_argument('--methods', default='adam,linear,quadratic',
                    help='comma-separated: adam, linear, quadratic')
  demo.add_argument('--seeds', type=_positive_int, default=3)
  demo.add_argument('--epochs', type=_positive_int, default=60)
  demo.add_argument('--no-progress', action='store_true',
                    help='hide the progress bar')
  demo.set_defaults(func=_demo)
  return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
  """Entry point of the ``optax-nowcast`` console script."""
  args = build_parser().parse_args(argv)
  try:
    return args.func(args)
  except ValueError as e:
    print(f'optax-nowcast {args.command}: error: {e}', file=sys.stderr)
    return 2


if __name__ == '__main__':
  sys.exit(main())
