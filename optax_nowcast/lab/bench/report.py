"""Benchmark outputs: JSON (schema below), a markdown table and a plot.

The JSON report (``<out>/<task>.json``) follows :data:`SCHEMA` (JSON Schema
draft 2020-12): the task, whether the shipped forecasters saw it during
meta-training, the metric and target (and the rule that set it), the budget,
the machine, date and command, every run's evaluation curve (steps, metric
(test accuracy, or validation loss where ``higher_is_better`` is false),
training seconds, jumps so far) and, under ``summary``, per method: best
metric, steps and seconds to the target, how many seeds reached it,
jumps, and speed-ups (baseline ÷ method, mean and std over seeds) against
``adam`` and ``adam-sweep``. ``[mean, std]`` pairs are ``null`` when no seed
gave a value.
"""

from __future__ import annotations

import json
import pathlib
from typing import Any, Optional

import numpy as np

_PAIR = {'oneOf': [{'type': 'null'},
                   {'type': 'array', 'items': {'type': 'number'},
                    'minItems': 2, 'maxItems': 2}]}
_NUMBERS = {'type': 'array', 'items': {'type': 'number'}}

SCHEMA: dict[str, Any] = {
    '$schema': 'https://json-schema.org/draft/2020-12/schema',
    'type': 'object',
    'required': ['schema', 'task', 'seen_in_meta_training', 'metric',
                 'higher_is_better', 'target', 'target_rule', 'budget_steps',
                 'steps_per_epoch', 'seeds', 'methods', 'machine', 'date',
                 'command', 'runs', 'summary'],
    'properties': {
        'schema': {'const': 'optax_nowcast.lab.bench/1'},
        'task': {'type': 'string'},
        'seen_in_meta_training': {'type': 'boolean'},
        'seen_by_wnn': {'type': 'boolean'},
        'metric': {'type': 'string'},
        'higher_is_better': {'type': 'boolean'},
        'target': {'type': 'number'},
        'target_rule': {'type': 'string'},
        'budget_steps': {'type': 'integer', 'minimum': 1},
        'steps_per_epoch': {'type': 'integer', 'minimum': 1},
        'seeds': {'type': 'integer', 'minimum': 1},
        'methods': {'type': 'array', 'items': {'type': 'string'}},
        'machine': {'type': 'string'},
        'date': {'type': 'string'},
        'command': {'type': 'string'},
        'runs': {'type': 'array', 'items': {
            'type': 'object',
            'required': ['method', 'seed', 'eval_steps', 'eval_metric',
                         'eval_seconds', 'eval_jumps', 'skipped',
                         'rollbacks'],
            'properties': {
                'method': {'type': 'string'},
                'seed': {'type': 'integer'},
                'selected': {'type': 'array',
                             'items': {'type': 'integer', 'minimum': 0}},
                'eval_steps': {'type': 'array', 'items': {'type': 'integer'}},
                'eval_metric': _NUMBERS,
                'eval_seconds': _NUMBERS,
                'eval_jumps': {'type': 'array', 'items': {'type': 'integer'}},
                'skipped': {'type': 'integer'},
                'rollbacks': {'type': 'integer'},
                'device': {'type': 'string'},
            }}},
        'summary': {'type': 'object', 'additionalProperties': {
            'type': 'object',
            'required': ['best', 'steps_to_target', 'steps_or_budget',
                         'seconds_to_target',
                         'reached', 'jumps', 'skipped', 'rollbacks'],
            'properties': {
                'best': _PAIR, 'steps_to_target': _PAIR,
                'steps_or_budget': _PAIR,
                'seconds_to_target': _PAIR, 'reached': {'type': 'integer'},
                'jumps': _PAIR, 'skipped': _PAIR, 'rollbacks': _PAIR,
                'device': {'type': 'string'},
                'speedup_steps_vs_adam': _PAIR,
                'speedup_seconds_vs_adam': _PAIR,
                'speedup_steps_vs_adam_sweep': _PAIR,
                'speedup_seconds_vs_adam_sweep': _PAIR,
            }}},
    },
}


def _fmt(pair, digits=0, scale=1.0):
  if pair is None:
    return '-'
  mean, std = pair
  return f'{mean * scale:.{digits}f} ± {std * scale:.{digits}f}'


_NAMES = {'test_accuracy': 'test accuracy', 'test_loss': 'test loss',
          'valid_loss': 'validation loss'}
_SHORT = {'test_accuracy': 'acc', 'test_loss': 'loss', 'valid_loss': 'loss'}


def markdown(report: dict) -> str:
  """The table in the layout of the WNN paper's Table 5, plus seconds."""
  seen = 'seen' if report['seen_in_meta_training'] else 'unseen'
  seen = (f"{seen} by multihorizon's corpus,"
          f" {'seen' if report['seen_by_wnn'] else 'unseen'} by WNN's zoo"
          if 'seen_by_wnn' in report else f'{seen} in meta-training')
  lines = [
      f"### {report['task']} ({seen})",
      '',
      f"Target {_NAMES[report['metric']]} {report['target']:.4f}"
      f" ({report['target_rule']});"
      f" budget {report['budget_steps']} steps; {report['seeds']} seeds;"
      f" {report['machine']}; {report['date']}.",
      f"Command: `{report['command']}`",
      '',
      f"| method | best {_SHORT[report['metric']]} | steps to target | reach |"
      ' steps, never = budget | speed-up (steps) vs adam | vs adam-sweep |'
      ' seconds to target | speed-up (s) vs adam | jumps | rollbacks |',
      '|---|---|---|---|---|---|---|---|---|---|---|',
  ]
  for method, s in report['summary'].items():
    lines.append(
        f"| {method} | {_fmt(s['best'], 4)} | {_fmt(s['steps_to_target'])} |"
        f" {s['reached']}/{report['seeds']} |"
        f" {_fmt(s.get('steps_or_budget'))} |"
        f" {_fmt(s.get('speedup_steps_vs_adam'), 2)} |"
        f" {_fmt(s.get('speedup_steps_vs_adam_sweep'), 2)} |"
        f" {_fmt(s['seconds_to_target'], 1)} |"
        f" {_fmt(s.get('speedup_seconds_vs_adam'), 2)} |"
        f" {_fmt(s['jumps'])} | {_fmt(s['rollbacks'])} |")
  elsewhere: dict[tuple[str, str], list[int]] = {}
  for r in report['runs']:
    if r.get('device') not in (None, '', 'cpu'):
      elsewhere.setdefault((r['method'], r['device']), []).append(r['seed'])
  if elsewhere:
    lines += ['', 'Timed on another device than the CPU (their seconds'
              " are not compared with adam's, nor averaged over devices):"
              + ';'.join(
                  f" {m} ({d}: seed{'s' if len(s) > 1 else ''}"
                  f" {', '.join(map(str, sorted(s)))})"
                  for (m, d), s in sorted(elsewhere.items()))]
  chosen = choices(report)
  if chosen:
    lines += ['', 'Checked jumps, candidates chosen (summed over seeds):']
    lines += [f'- {m}: {c}' for m, c in chosen.items()]
  return '\n'.join(lines)


def choices(report: dict) -> dict[str, str]:
  """Per checked method, how often each candidate won, as a phrase.

  Candidate 0 is no jump; candidate ``k`` the forecast at the ``k``-th step
  size of the benchmark's ``select`` (``runner.SELECT``).
  """
  out = {}
  for m in report['methods']:
    counts = [r.get('selected') or [] for r in report['runs']
              if r['method'] == m]
    if not any(counts):
      continue
    total = [sum(c) for c in zip(*counts)]
    names = ['no jump'] + [f'x{s:g}' for s in _select_sizes(len(total) - 1)]
    out[m] = ', '.join(f'{n} {t}' for n, t in zip(names, total))
  return out


def _select_sizes(count: int) -> list[float]:
  from optax_nowcast.lab.bench import runner  # pylint: disable=g-import-not-at-top
  sizes = list(runner.SELECT)
  return sizes if len(sizes) == count else list(range(1, count + 1))


def explain(report: dict) -> str:
  """A few lines that say what the table measured and how to read it."""
  s = report['summary']
  base = s.get('adam', {})
  lines = [
      f"What ran: {report['task']}, {report['seeds']} seed(s) per method,"
      f" {report['budget_steps']} steps each, side by side in one process;"
      " adam is the task's own optimizer at its tuned rate; the peers"
      ' (adam-cosine, adam-wsd, sf-adamw, lookahead, snoo) replace or wrap'
      ' it, each at its own tuned peak rate; every other method adds a'
      ' nowcast (or a learning-rate sweep) to it.',
      f"Target: {_NAMES[report['metric']]} {report['target']:.4f}"
      f" ({report['target_rule']}).",
      'Speed-up (steps) = adam\'s steps to the target / the method\'s, per'
      ' seed, mean ± std over the seeds where both reached it; "steps,'
      ' never = budget" also counts a seed that never reached it, as the'
      ' whole budget (a lower bound on its cost).',
      'Seconds: training wall-clock up to the target, compilation, records'
      ' and jumps included, evaluation excluded; on a small model compiling'
      ' the jump costs more than the steps it saves.',
  ]
  for m, e in s.items():
    if m == 'adam' or e['reached'] == report['seeds']:
      continue
    lines.append(
        f"{m}: {e['reached']} of {report['seeds']} seeds reached the target"
        f" (adam: {base.get('reached', '?')}); its speed-up counts only"
        ' the seeds where both did.')
  return '\n'.join(lines)


def _median_band(runs: list[dict], better: bool
                 ) -> tuple[list[float], list[float], list[float],
                            list[float]]:
  """Steps, then the median, min and max over the runs of the best metric
  so far (what "steps to the target" reads: its first crossing)."""
  steps = runs[0]['eval_steps']
  arr = np.asarray([r['eval_metric'][:len(steps)] for r in runs], np.float64)
  arr = (np.maximum if better else np.minimum).accumulate(arr, axis=1)
  return (steps, np.median(arr, 0).tolist(), arr.min(0).tolist(),
          arr.max(0).tolist())


def _reach(run: dict, target: float, better: bool) -> Optional[float]:
  for x, m in zip(run['eval_steps'], run['eval_metric']):
    if (m >= target) if better else (m <= target):
      return x
  return None


def plot(report: dict, path: pathlib.Path) -> None:
  """Left: per method, the median over seeds of the best metric so far,
  with a band (min..max over seeds), the target and the jumps (▼): where
  a line crosses the target is its median steps to the target; right: each
  seed's steps to the target per method."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  better, target = report['higher_is_better'], report['target']
  budget = report['budget_steps']
  methods = list(dict.fromkeys(r['method'] for r in report['runs']))
  fig, (ax, bx) = plt.subplots(
      1, 2, figsize=(12, 5), gridspec_kw={'width_ratios': [3, 2]})
  shown = []
  for i, method in enumerate(methods):
    runs = [r for r in report['runs'] if r['method'] == method]
    color = f'C{i}'
    steps, median, lo, hi = _median_band(runs, better)
    ax.plot(steps, median, color=color, lw=1.6,
            label=f'{method} (median of {len(runs)})')
    ax.fill_between(steps, lo, hi, color=color, alpha=0.15, lw=0)
    shown += lo + hi
    jumps = runs[0]['eval_jumps']
    marks = [k for k in range(len(steps))
             if jumps[k] > (jumps[k - 1] if k else 0)]
    ax.plot([steps[k] for k in marks], [median[k] for k in marks], 'v',
            color=color, ms=6)
    reach = [_reach(r, target, better) for r in runs]
    got = [x for x in reach if x is not None]
    bx.scatter(got, [i] * len(got), color=color, zorder=3)
    if got:
      bx.plot([np.median(got)] * 2, [i - 0.3, i + 0.3], color=color, lw=2)
    never = len(reach) - len(got)
    if never:
      bx.scatter([budget] * never, [i] * never, marker='x', color=color,
                 zorder=3)
      bx.annotate(f'{never} never', (budget, i), textcoords='offset points',
                  xytext=(-8, 8), ha='right', fontsize=8, color=color)
  ax.axhline(target, color='k', ls='--', lw=0.8, label=f'target {target:.4f}')
  # The range of every band past the first tenth of the budget: post-jump
  # dips stay in view, the initial descent does not squash the rest.
  late = [v for r in report['runs'] for x, v in zip(
      r['eval_steps'], (np.maximum if better else np.minimum).accumulate(
          r['eval_metric'])) if x >= 0.1 * budget] or shown
  lo, hi = min(late + [target]), max(late + [target])
  pad = 0.05 * (hi - lo or 1.0)
  ax.set_ylim(lo - pad, hi + pad)
  ax.set_xlabel('step')
  ax.set_ylabel(f"best {_NAMES.get(report['metric'], report['metric'])} so far")
  seen = 'seen' if report['seen_in_meta_training'] else 'unseen'
  ax.set_title(f"{report['task']} ({seen} in meta-training): best so far,"
               ' median over seeds, band = min..max, ▼ = jump', fontsize=10)
  ax.legend(loc='lower right' if better else 'upper right', fontsize=8)
  bx.set_yticks(range(len(methods)), methods)
  bx.invert_yaxis()
  bx.set_xlim(0, budget * 1.05)
  bx.axvline(budget, color='grey', lw=0.8, ls=':')
  bx.set_xlabel('steps to the target (dot: a seed, bar: median; x: never)')
  bx.set_title('sooner is better', fontsize=10)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def write(report: dict, out: pathlib.Path) -> dict[str, pathlib.Path]:
  """Writes ``<task>.json``, ``<task>.md`` and ``<task>.png`` under ``out``."""
  out = pathlib.Path(out)
  out.mkdir(parents=True, exist_ok=True)
  paths = {k: out / f"{report['task']}.{k}" for k in ('json', 'md', 'png')}
  paths['json'].write_text(json.dumps(report, indent=1))
  paths['md'].write_text(markdown(report) + '\n\n' + explain(report) + '\n')
  plot(report, paths['png'])
  return paths
