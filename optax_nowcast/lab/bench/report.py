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
from typing import Any

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
                'eval_steps': {'type': 'array', 'items': {'type': 'integer'}},
                'eval_metric': _NUMBERS,
                'eval_seconds': _NUMBERS,
                'eval_jumps': {'type': 'array', 'items': {'type': 'integer'}},
                'skipped': {'type': 'integer'},
                'rollbacks': {'type': 'integer'},
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


_NAMES = {'test_accuracy': 'test accuracy', 'valid_loss': 'validation loss'}
_SHORT = {'test_accuracy': 'acc', 'valid_loss': 'loss'}


def markdown(report: dict) -> str:
  """The table in the layout of the WNN paper's Table 5, plus seconds."""
  seen = 'seen' if report['seen_in_meta_training'] else 'unseen'
  lines = [
      f"### {report['task']} ({seen} in meta-training)",
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
  return '\n'.join(lines)


def plot(report: dict, path: pathlib.Path) -> None:
  """The metric vs step per method (one line per seed), jumps marked."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  fig, ax = plt.subplots(figsize=(8, 5))
  colors = {}
  for run in report['runs']:
    color = colors.setdefault(run['method'], f'C{len(colors)}')
    label = run['method'] if run['seed'] == 0 else None
    ax.plot(run['eval_steps'], run['eval_metric'], color=color, lw=1.2,
            alpha=0.8, label=label)
    jumps = [s for s, j, prev in zip(run['eval_steps'], run['eval_jumps'],
                                     [0] + run['eval_jumps'][:-1])
             if j > prev]
    marks = [m for s, m in zip(run['eval_steps'], run['eval_metric'])
             if s in jumps]
    ax.plot(jumps, marks, 'v', color=color, ms=5)
  ax.axhline(report['target'], color='k', ls='--', lw=0.8,
             label=f"target {report['target']:.4f}")
  if report['higher_is_better']:
    lo = min(min(r['eval_metric']) for r in report['runs'])
    ax.set_ylim(max(lo, report['target'] - 0.1), None)
  else:
    lo = min(min(r['eval_metric']) for r in report['runs'])
    hi = min(max(max(r['eval_metric']) for r in report['runs']),
             report['target'] + 0.5)
    ax.set_ylim(lo - 0.05 * (hi - lo), hi)
  ax.set_xlabel('step')
  ax.set_ylabel(_NAMES.get(report['metric'], report['metric']))
  seen = 'seen' if report['seen_in_meta_training'] else 'unseen'
  ax.set_title(f"{report['task']} ({seen} in meta-training); ▼ = evaluation"
               ' after a jump')
  ax.legend(loc='lower right' if report['higher_is_better'] else 'upper right')
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def write(report: dict, out: pathlib.Path) -> dict[str, pathlib.Path]:
  """Writes ``<task>.json``, ``<task>.md`` and ``<task>.png`` under ``out``."""
  out = pathlib.Path(out)
  out.mkdir(parents=True, exist_ok=True)
  paths = {k: out / f"{report['task']}.{k}" for k in ('json', 'md', 'png')}
  paths['json'].write_text(json.dumps(report, indent=1))
  paths['md'].write_text(markdown(report) + '\n')
  plot(report, paths['png'])
  return paths
