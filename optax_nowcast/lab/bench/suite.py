"""The suite summary: one table and one figure across the reports (no training).

Reads the ``<task>.json`` reports written by ``optax-nowcast bench`` and
prints a markdown table with a row per method and a column per task: the
speed-up in steps vs ``--baseline`` (``adam``, or ``adam-sweep``, the tuned
baseline; mean ± std over seeds where both reached the target) and how many
seeds reached it. Writes a bar chart of the same to ``--plot``. With
``--readme``, writes both tables (vs ``adam`` and vs ``adam-sweep``) between
the ``<!-- suite:start -->`` and ``<!-- suite:end -->`` lines of that file.

Run::

  python benchmarks/suite_summary.py results/suite/*.json \\
      --plot results/suite/summary.png --readme README.md
"""

from __future__ import annotations

import argparse
import json
import pathlib
import re
import sys
from typing import Optional

START, END = '<!-- suite:start -->', '<!-- suite:end -->'
HEAD_START, HEAD_END = '<!-- headline table -->', '<!-- /headline table -->'
#: The baselines every speed-up is measured against (never ranked).
BASELINES = ('adam', 'adam-sweep')


def _key(baseline: str) -> str:
  return 'speedup_steps_vs_' + baseline.replace('-', '_')


def _methods(reports: list[dict]) -> list[str]:
  return list(dict.fromkeys(m for r in reports for m in r['methods']))


def table(reports: list[dict], baseline: Optional[str]) -> str:
  """Markdown: a row per method, a column per task, each cell the speed-up
  in steps vs ``baseline`` (or, if it is None, the steps to the target with a
  seed that never reached it counted as the budget) and the seeds that
  reached the target."""
  head = [f"{r['task']} ({'seen' if r['seen_in_meta_training'] else 'unseen'})"
          for r in reports]
  lines = ['| method | ' + ' | '.join(head) + ' |',
           '|---|' + '---|' * len(reports)]
  for m in _methods(reports):
    cells = []
    for r in reports:
      s = r['summary'].get(m)
      if s is None:
        cells.append('not run')
        continue
      if baseline is None:
        mean, std = s['steps_or_budget']
        value = f'{mean:.0f} ± {std:.0f}'
      else:
        pair = s.get(_key(baseline))
        value = '-' if pair is None else f'{pair[0]:.2f} ± {pair[1]:.2f}'
      cells.append(f"{value} ({s['reached']}/{r['seeds']})")
    lines.append(f'| {m} | ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines)


def plot(reports: list[dict], baseline: str, path: str) -> None:
  """A bar chart of :func:`table`."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top

  shown = [m for m in _methods(reports) if m != baseline]
  fig, ax = plt.subplots(figsize=(10, 4.5))
  width = 0.8 / len(shown)
  for i, m in enumerate(shown):
    means, errs = [], []
    for r in reports:
      pair = (r['summary'].get(m) or {}).get(_key(baseline))
      means.append(np.nan if pair is None else pair[0])
      errs.append(0.0 if pair is None else pair[1])
    x = np.arange(len(reports)) + (i - (len(shown) - 1) / 2) * width
    ax.bar(x, means, width, yerr=errs, label=m, color=f'C{i + 1}', capsize=2)
  ax.axhline(1.0, color='k', lw=0.8)
  ax.set_xticks(np.arange(len(reports)),
                [f"{r['task']}\n({'seen' if r['seen_in_meta_training'] else 'unseen'})"
                 for r in reports], fontsize=8)
  ax.set_ylabel(f'speed-up in steps vs {baseline}')
  ax.set_title(f'Steps to target, {baseline} ÷ method (mean ± std over seeds'
               ' where both reached; no bar: never reached or not run)',
               fontsize=10)
  ax.legend(fontsize=7, ncol=4)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def readme_block(reports: list[dict], command: str,
                 image: Optional[str], base: str = '.') -> str:
  """The README's suite section: where the numbers come from, two tables.

  Links are relative to ``base``, the directory of the file it goes in
  (paths in ``image`` and the reports' ``results/suite/`` are relative to
  the working directory).
  """
  import os  # pylint: disable=g-import-not-at-top
  rel = lambda path: os.path.relpath(path, base)  # pylint: disable=unnecessary-lambda-assignment
  dates = sorted({r['date'] for r in reports})
  when = dates[0] if len(dates) == 1 else f'{dates[0]} to {dates[-1]}'
  machines = sorted({r['machine'] for r in reports})
  tasks = ', '.join(
      f"[`{r['task']}`]({rel('results/suite/' + r['task'] + '.md')})"
      for r in reports)
  return '\n'.join([
      START,
      f'Made by `{command}` from the reports of {tasks}'
      f' (reports of {when}, on'
      f" {'; '.join(machines)}; each task's report gives its command, target"
      ' and seconds).',
      '',
      'Speed-up in steps to the target vs `adam` (mean ± std over seeds where'
      ' both reached it; in brackets, seeds that reached it):',
      '',
      table(reports, 'adam'),
      '',
      # Only where some report has adam-sweep: a table of dashes says nothing.
      *(['The same vs `adam-sweep` (the best of Adam at 1/3x, 1x and 3x the'
         ' learning rate at each evaluation):', '',
         table(reports, 'adam-sweep'), '']
        if any('adam-sweep' in r['methods'] for r in reports) else []),
      'Steps to the target, mean ± std over all seeds, a seed that never'
      ' reached it counted as the budget (so a lower bound where some did'
      ' not):',
      '',
      table(reports, None),
      *([] if image is None else
        ['', f'![Speed-up in steps vs adam, every method and task]'
         f'({rel(image)})']),
      END,
  ])


def _peers() -> tuple[str, ...]:
  from optax_nowcast.lab.bench import runner  # pylint: disable=g-import-not-at-top
  return runner.PEERS


def _steps(summary: dict) -> float:
  return summary['steps_or_budget'][0]


#: ``--headline best``: per task, the nowcast method with the fewest steps.
BEST = 'best'


def _nowcast_methods(summary: dict) -> list[str]:
  """The methods of a report that add a nowcast (all but Adam's and the
  peers')."""
  return [m for m in summary if m not in (*BASELINES, *_peers())]


def headline_rows(reports: list[dict], nowcast: str) -> list[dict]:
  """Per task: Adam, the best peer (fewest mean steps, a seed that never
  reached counted as the budget) and ``nowcast`` (with :data:`BEST`, the
  nowcast method with the fewest mean steps, chosen per task with
  hindsight), with the ratios."""
  rows = []
  for r in reports:
    s = r['summary']
    peers = [p for p in _peers() if p in s]
    best = min(peers, key=lambda p: _steps(s[p])) if peers else None
    if nowcast == BEST:
      ours = _nowcast_methods(s)
      method = min(ours, key=lambda m: _steps(s[m])) if ours else None
    else:
      method = nowcast if nowcast in s else None
    row = dict(task=r['task'], seen=r['seen_in_meta_training'],
               seeds=r['seeds'], adam=s['adam'], peer=best,
               peer_summary=s.get(best), method=method,
               nowcast=s.get(method))
    if best is not None and method is not None:
      row['steps_ratio'] = _steps(s[best]) / _steps(s[method])
      sec = [x['seconds_to_target'] for x in (s[best], s[method])]
      same = s[best].get('device', 'cpu') == s[method].get('device', 'cpu')
      row['seconds_ratio'] = (sec[0][0] / sec[1][0] if all(sec) and same
                              else None)
    if method is not None:
      row['vs_adam'] = _steps(s['adam']) / _steps(s[method])
    rows.append(row)
  return rows


def _cell(summary: Optional[dict], seeds: int) -> str:
  if summary is None:
    return 'not run'
  mean, std = summary['steps_or_budget']
  sec = summary['seconds_to_target']
  secs = '-' if sec is None else f'{sec[0]:.0f} s'
  return (f'{mean:.0f} ± {std:.0f} ({summary["reached"]}/{seeds});'
          f' {secs}')


def headline(reports: list[dict], nowcast: str) -> str:
  """The headline table: per task, steps (and seconds) to the target of
  tuned Adam, the best peer and ``nowcast``, and the ratios; then the median
  over the unseen tasks of best peer / ``nowcast``."""
  rows = headline_rows(reports, nowcast)
  name = 'best nowcast' if nowcast == BEST else nowcast
  lines = [
      f'| task | adam | best peer | {name} | best peer ÷ {name},'
      f' steps (seconds) | adam ÷ {name}, steps |',
      '|---|---|---|---|---|---|']
  for row in rows:
    ratio = row.get('steps_ratio')
    sec = row.get('seconds_ratio')
    vs_adam = row.get('vs_adam')
    ours = _cell(row['nowcast'], row['seeds'])
    if nowcast == BEST:
      ours = f"{row['method'] or '-'}: {ours}"
    lines.append(
        f"| {row['task']} ({'seen' if row['seen'] else 'unseen'}) |"
        f" {_cell(row['adam'], row['seeds'])} |"
        f" {row['peer'] or '-'}: {_cell(row['peer_summary'], row['seeds'])} |"
        f" {ours} |"
        f" {'-' if ratio is None else f'{ratio:.2f}'}"
        f" ({'-' if sec is None else f'{sec:.2f}'}) |"
        f" {'-' if vs_adam is None else f'{vs_adam:.2f}'} |")
  unseen = [row['steps_ratio'] for row in rows
            if not row['seen'] and 'steps_ratio' in row]
  if unseen:
    median = _median(unseen)
    lines += ['', f'Median over the {len(unseen)} unseen tasks of best peer'
              f' ÷ {name} (steps): **{median:.2f}x** (target 1.3x).']
  chosen = (' The best nowcast method too, among every method that adds a'
            ' nowcast to the task\'s Adam.' if nowcast == BEST else '')
  lines += ['', 'Cells: steps to the target, mean ± std over seeds (a seed'
            ' that never reached it counted as the budget), seeds that'
            ' reached it, and the mean seconds of those that did. The best'
            ' peer is chosen per task, with hindsight, among the peers run'
            f' ({", ".join(_peers())}).{chosen}']
  return '\n'.join(lines)


def _median(values: list[float]) -> float:
  values = sorted(values)
  mid = len(values) // 2
  return values[mid] if len(values) % 2 else (values[mid - 1] +
                                              values[mid]) / 2


def ranking(reports: list[dict], min_unseen: int = 1) -> str:
  """Markdown: every method but Adam's, per task Adam's mean steps to the
  target ÷ the method's (a seed that never reached it counted as the
  budget) with the seeds that reached it, and the median over the unseen
  tasks where it ran; the rows sorted by that median, best first. A method
  run on fewer than ``min_unseen`` unseen tasks is left out."""
  rows = []
  for m in _methods(reports):
    if m in BASELINES:
      continue
    cells, unseen = [], []
    for r in reports:
      s = r['summary']
      if m not in s:
        cells.append('-')
        continue
      ratio = _steps(s['adam']) / _steps(s[m])
      cells.append(f"{ratio:.2f} ({s[m]['reached']}/{r['seeds']})")
      if not r['seen_in_meta_training']:
        unseen.append(ratio)
    if unseen and len(unseen) >= min_unseen:
      rows.append((_median(unseen), len(unseen), m, cells))
  rows.sort(key=lambda row: -row[0])
  lines = ['| method | ' + ' | '.join(r['task'] for r in reports)
           + ' | median, unseen |', '|---|' + '---|' * (len(reports) + 1)]
  for median, n, m, cells in rows:
    kind = ' (peer)' if m in _peers() else ''
    lines.append(f'| {m}{kind} | ' + ' | '.join(cells)
                 + f' | **{median:.2f}** (of {n}) |')
  return '\n'.join(lines)


def headline_plot(reports: list[dict], nowcast: str, path: str) -> None:
  """Bars: steps to the target of the best peer and ``nowcast`` over
  Adam's, per task."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top

  rows = headline_rows(reports, nowcast)
  fig, ax = plt.subplots(figsize=(8, 4))
  x = np.arange(len(rows))
  name = 'best nowcast' if nowcast == BEST else nowcast
  for i, (label, key) in enumerate((('best peer', 'peer_summary'),
                                    (name, 'nowcast'))):
    vals = [np.nan if row[key] is None else
            _steps(row[key]) / _steps(row['adam']) for row in rows]
    ax.bar(x + (i - 0.5) * 0.38, vals, 0.38, label=label, color=f'C{i + 1}')
  ax.axhline(1.0, color='k', lw=0.8, label='tuned adam')
  ticks = [f"{row['task']}\n{row['peer'] or ''}" for row in rows]
  if nowcast == BEST:
    ticks = [f"{t}\n{row['method'] or ''}" for t, row in zip(ticks, rows)]
  ax.set_xticks(x, ticks, fontsize=7)
  ax.set_ylabel("steps to target ÷ adam's (lower is better)")
  ax.set_title('Steps to the target: the best peer and the'
               f' {name} (named under each task)', fontsize=10)
  # Room above the tallest bar for the legend, and Adam's line visible.
  top = np.nanmax([1.0, *[p.get_height() for p in ax.patches]])
  ax.set_ylim(0, 1.25 * top)
  ax.legend(fontsize=8, ncol=3, loc='upper center')
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def _replace_block(file: pathlib.Path, start: str, end: str,
                   block: str) -> None:
  text = file.read_text()
  if text.count(start) != 1 or text.count(end) != 1:
    sys.exit(f'{file} needs one {start} line and one {end} line')
  file.write_text(re.sub(re.escape(start) + '.*?' + re.escape(end),
                         lambda _: f'{start}\n{block}\n{end}', text,
                         flags=re.S))


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('reports', nargs='+', help='bench JSON reports')
  parser.add_argument('--plot', default=None, help='PNG to write')
  parser.add_argument('--baseline', default='adam',
                      choices=BASELINES,
                      help='the method every speed-up is measured against')
  parser.add_argument('--readme', default=None,
                      help='a markdown file whose suite section to rewrite')
  parser.add_argument('--headline', default=None, metavar='METHOD',
                      help='print the headline table of METHOD (or, with'
                      f' {BEST!r}, of the best nowcast method per task) against'
                      ' tuned adam and the best peer (and write it between the'
                      f' {HEAD_START} lines of --readme, its plot to --plot)')
  args = parser.parse_args(argv)
  reports = [json.loads(pathlib.Path(p).read_text()) for p in args.reports]
  command = 'python benchmarks/suite_summary.py ' + ' '.join(
      sys.argv[1:] if argv is None else argv)
  if args.headline:
    text = headline(reports, args.headline)
    if args.headline == BEST:
      text += ('\n\nEvery method run on at least 3 unseen tasks, Adam\'s'
               ' steps to the target ÷ its own (mean over seeds, a seed that'
               ' never reached it counted as the budget; seeds that reached'
               ' it), by its median over the unseen tasks:\n\n'
               + ranking(reports, min_unseen=3))
    print(text)
    if args.plot:
      headline_plot(reports, args.headline, args.plot)
      print(f'wrote {args.plot}')
      import os  # pylint: disable=g-import-not-at-top
      base = pathlib.Path(args.readme).parent if args.readme else '.'
      text += (f'\n\n![Steps to the target vs adam]'
               f'({os.path.relpath(args.plot, base)})')
    if args.readme:
      _replace_block(pathlib.Path(args.readme), HEAD_START, HEAD_END,
                     f'Made by `{command}`.\n\n{text}')
      print(f'wrote the headline table of {args.readme}')
    return
  print(table(reports, args.baseline))
  if args.plot:
    plot(reports, args.baseline, args.plot)
    print(f'wrote {args.plot}')
  if args.readme:
    readme = pathlib.Path(args.readme)
    text = readme.read_text()
    if text.count(START) != 1 or text.count(END) != 1:
      sys.exit(f'{readme} needs one {START} line and one {END} line')
    block = readme_block(reports, command, args.plot, str(readme.parent))
    readme.write_text(re.sub(re.escape(START) + '.*?' + re.escape(END),
                             lambda _: block, text, flags=re.S))
    print(f'wrote the suite section of {readme}')


if __name__ == '__main__':
  main()
