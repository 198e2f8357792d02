"""One table and one figure across the suite's reports (no training).

Reads the ``<task>.json`` reports written by ``optax-nowcast bench`` and
prints a markdown table with a row per method and a column per task: the
speed-up in steps vs ``adam`` (mean ± std over seeds where both reached the
target) and how many seeds reached it. Writes a bar chart of the same to
``--plot``. ``--baseline adam-sweep`` compares against the tuned baseline
(Adam's learning-rate sweep) instead.

Run::

  python benchmarks/suite_summary.py results/suite/*.json \\
      --plot results/suite/summary.png
"""

from __future__ import annotations

import argparse
import json


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('reports', nargs='+', help='bench JSON reports')
  parser.add_argument('--plot', default=None, help='PNG to write')
  parser.add_argument('--baseline', default='adam',
                      choices=('adam', 'adam-sweep'),
                      help='the method every speed-up is measured against')
  args = parser.parse_args(argv)
  key = 'speedup_steps_vs_' + args.baseline.replace('-', '_')
  reports = [json.load(open(p)) for p in args.reports]
  methods = list(dict.fromkeys(m for r in reports for m in r['methods']))
  head = [f"{r['task']} ({'seen' if r['seen_in_meta_training'] else 'unseen'})"
          for r in reports]
  print('| method | ' + ' | '.join(head) + ' |')
  print('|---|' + '---|' * len(reports))
  for m in methods:
    cells = []
    for r in reports:
      s = r['summary'].get(m)
      if s is None:
        cells.append('not run')
        continue
      pair = s.get(key)
      value = '-' if pair is None else f'{pair[0]:.2f} ± {pair[1]:.2f}'
      cells.append(f"{value} ({s['reached']}/{r['seeds']})")
    print(f'| {m} | ' + ' | '.join(cells) + ' |')
  if args.plot:
    import matplotlib  # pylint: disable=g-import-not-at-top
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
    import numpy as np  # pylint: disable=g-import-not-at-top

    shown = [m for m in methods if m != args.baseline]
    fig, ax = plt.subplots(figsize=(10, 4.5))
    width = 0.8 / len(shown)
    for i, m in enumerate(shown):
      means, errs = [], []
      for r in reports:
        pair = (r['summary'].get(m) or {}).get(key)
        means.append(np.nan if pair is None else pair[0])
        errs.append(0.0 if pair is None else pair[1])
      x = np.arange(len(reports)) + (i - (len(shown) - 1) / 2) * width
      ax.bar(x, means, width, yerr=errs, label=m, color=f'C{i + 1}',
             capsize=2)
    ax.axhline(1.0, color='k', lw=0.8)
    ax.set_xticks(np.arange(len(reports)), head, fontsize=8)
    ax.set_ylabel(f'speed-up in steps vs {args.baseline}')
    ax.set_title(f'Steps to target, {args.baseline} ÷ method (mean ± std over seeds'
                 ' where both reached; no bar: never reached or not run)')
    ax.legend(fontsize=7, ncol=4)
    fig.tight_layout()
    fig.savefig(args.plot, dpi=110)
    plt.close(fig)


if __name__ == '__main__':
  main()
