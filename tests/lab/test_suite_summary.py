"""The suite summary (optax_nowcast.lab.bench.suite): its table and README block."""

import json

from optax_nowcast.lab.bench import runner
from optax_nowcast.lab.bench import speedup
from optax_nowcast.lab.bench import suite as suite_summary



def _report(task, seen, adam_reach, wnn_reach, sweep=True):
  """Two seeds; each method's curve jumps from .5 to 1 at its reach step."""
  methods = ['adam', 'adam-sweep', 'wnn'] if sweep else ['adam', 'wnn']
  reaches = {'adam': adam_reach, 'adam-sweep': adam_reach, 'wnn': wnn_reach}
  return _peer_report(task, seen, {m: reaches[m] for m in methods},
                      seconds_per_step=1.0, date='2026-11-23')


def _write(tmp_path, reports):
  """Each report as ``<task>.json`` under ``tmp_path``; their paths."""
  paths = [tmp_path / f"{r['task']}.json" for r in reports]
  for path, r in zip(paths, reports):
    path.write_text(json.dumps(r))
  return paths


def test_readme_section_is_rewritten_from_the_reports(tmp_path):
  reports = [_report('a', False, [4, 2], [2, 2]),
             _report('b', True, [4, 4], [None, 2])]
  paths = _write(tmp_path, reports)
  readme = tmp_path / 'README.md'
  readme.write_text('# x\n\n<!-- suite:start -->\nold\n<!-- suite:end -->\n'
                    '\nafter\n')
  suite_summary.main([str(p) for p in paths] + ['--readme', str(readme)])
  text = readme.read_text()
  assert 'old' not in text and text.endswith('\nafter\n')
  assert text.count('<!-- suite:start -->') == 1
  assert '| method | a (unseen) | b (seen) |' in text
  # Speed-ups: a: 4/2 and 2/2; b: only seed 1 reached by both, 4/2.
  assert '| wnn | 1.50 ± 0.50 (2/2) | 2.00 ± 0.00 (1/2) |' in text
  # Steps, never reached = budget: b's wnn (4 + 2) / 2.
  assert '| wnn | 2 ± 0 (2/2) | 3 ± 1 (1/2) |' in text
  assert 'python benchmarks/suite_summary.py' in text


def test_the_adam_sweep_table_is_shown_only_where_a_report_has_it(tmp_path):
  def section(*reports):
    paths = _write(tmp_path, reports)
    readme = tmp_path / 'README.md'
    readme.write_text('<!-- suite:start -->\n<!-- suite:end -->\n')
    suite_summary.main([str(p) for p in paths] + ['--readme', str(readme)])
    return readme.read_text()

  without = _report('a', False, [4, 2], [2, 2], sweep=False)
  assert 'adam-sweep' not in section(without)
  assert 'The same vs `adam-sweep`' in section(
      without, _report('b', True, [4, 4], [None, 2]))


def _peer_report(task, seen, reaches, seconds_per_step=10.0,
                 date='2026-12-03'):
  """Two seeds of each method in ``reaches`` (method -> reach steps); each
  curve jumps from .5 to 1 at its reach step."""
  runs = []
  for method, reach in reaches.items():
    for seed, step in enumerate(reach):
      metric = [1. if step is not None and s >= step else .5
                for s in (1, 2, 3, 4)]
      runs.append(dict(method=method, seed=seed, eval_steps=[1, 2, 3, 4],
                       eval_metric=metric,
                       eval_seconds=[seconds_per_step * s for s in range(1, 5)],
                       eval_jumps=[0] * 4, skipped=0, rollbacks=0))
  rep = dict(task=task, seen_in_meta_training=seen, target=.9,
             higher_is_better=True, budget_steps=4, seeds=2,
             methods=list(reaches), runs=runs,
             date=date, machine='x86_64, Python 3.11')
  rep['summary'] = speedup.summarize(rep)
  return rep


def test_headline_sets_a_method_against_adam_and_the_best_peer(tmp_path):
  reports = [
      # Unseen: sf-adamw (3) beats adam-cosine (4, then never = 4);
      # multihorizon takes 2 and 2: ratio 1.5 in steps and seconds.
      _peer_report('a', False, {'adam': [4, 4], 'adam-cosine': [4, None],
                                'sf-adamw': [3, 3], 'multihorizon': [2, 2]}),
      # Seen: no peer run; the ratio is left blank, the median ignores it.
      _peer_report('b', True, {'adam': [4, 2], 'multihorizon': [2, None]}),
      _peer_report('c', False, {'adam': [4, 4], 'snoo': [2, 2],
                                'multihorizon': [4, 4]}),
  ]
  text = suite_summary.headline(reports, 'multihorizon')
  lines = text.splitlines()
  row_a = next(l for l in lines if l.startswith('| a (unseen)'))
  assert 'sf-adamw: 3 ± 0 (2/2); 30 s' in row_a
  assert '| 1.50 (1.50) | 2.00 |' in row_a
  row_b = next(l for l in lines if l.startswith('| b (seen)'))
  assert '| -: not run |' in row_b and '| - (-) |' in row_b
  # The median of the unseen tasks' ratios: (1.5 + 0.5) / 2.
  assert 'Median over the 2 unseen tasks of best peer ÷ multihorizon' in text
  assert '**1.00x**' in text
  paths = _write(tmp_path, reports)
  readme = tmp_path / 'README.md'
  readme.write_text('a\n<!-- headline table -->\nold\n<!-- /headline table -->'
                    '\nb\n')
  suite_summary.main([str(p) for p in paths] + [
      '--headline', 'multihorizon', '--readme', str(readme), '--plot',
      str(tmp_path / 'headline.png')])
  text = readme.read_text()
  assert 'old' not in text and text.startswith('a\n') and text.endswith('\nb\n')
  assert '](headline.png)' in text  # relative to the README
  assert (tmp_path / 'headline.png').stat().st_size > 1000


def test_headline_best_picks_the_nowcast_method_with_fewest_steps_per_task():
  reports = [
      # wnn (2) beats multihorizon (3); the peers and adam-sweep never count
      # as nowcast methods, even when they are faster.
      _peer_report('a', False, {'adam': [4, 4], 'adam-sweep': [1, 1],
                                'sf-adamw': [3, 3], 'multihorizon': [3, 3],
                                'wnn': [2, 2]}),
      _peer_report('b', False, {'adam': [4, 4], 'snoo': [2, 2],
                                'multihorizon': [4, 4], 'wnn': [4, None]}),
  ]
  text = suite_summary.headline(reports, suite_summary.BEST)
  lines = text.splitlines()
  assert lines[0].startswith('| task | adam | best peer | best nowcast |')
  row_a = next(l for l in lines if l.startswith('| a (unseen)'))
  assert '| wnn: 2 ± 0 (2/2); 20 s | 1.50 (1.50) | 2.00 |' in row_a
  row_b = next(l for l in lines if l.startswith('| b (unseen)'))
  assert '| multihorizon: 4 ± 0 (2/2); 40 s | 0.50 (0.50) | 1.00 |' in row_b
  assert 'of best peer ÷ best nowcast (steps): **1.00x**' in text


def test_ranking_orders_every_method_by_its_median_over_unseen_tasks():
  reports = [
      # adam ÷ method: wnn 4/2 = 2, snoo 4/4 = 1, multihorizon 4/4 = 1.
      _peer_report('a', False, {'adam': [4, 4], 'adam-sweep': [2, 2],
                                'snoo': [4, 4], 'multihorizon': [4, 4],
                                'wnn': [2, 2]}),
      # Seen: shown, left out of the median (wnn's 4/1 would lift it).
      _peer_report('b', True, {'adam': [4, 4], 'wnn': [1, 1]}),
      # A seed that never reached counts as the budget: multihorizon
      # (4 + 1) / 2 -> 4 / 2.5 = 1.6; wnn 4 / 4 = 1.
      _peer_report('c', False, {'adam': [4, 4], 'multihorizon': [None, 1],
                                'wnn': [4, 4]}),
  ]
  lines = suite_summary.ranking(reports).splitlines()
  assert lines[0] == '| method | a | b | c | median, unseen |'
  rows = [l.split(' | ')[0].lstrip('| ') for l in lines[2:]]
  # Medians: wnn (2 + 1) / 2 = 1.5, multihorizon (1 + 1.6) / 2 = 1.3, snoo 1.
  assert rows == ['wnn', 'multihorizon', 'snoo (peer)']
  assert lines[2] == ('| wnn | 2.00 (2/2) | 4.00 (2/2) | 1.00 (2/2) |'
                      ' **1.50** (of 2) |')
  assert lines[3].endswith('| 1.60 (1/2) | **1.30** (of 2) |')
  assert lines[4] == '| snoo (peer) | 1.00 (2/2) | - | - | **1.00** (of 1) |'
  # adam-sweep is a baseline, not a method to rank.
  assert not any('adam-sweep' in l for l in lines)
  # min_unseen leaves out what ran on too few unseen tasks.
  short = suite_summary.ranking(reports, min_unseen=2).splitlines()
  assert [l.split(' | ')[0].lstrip('| ') for l in short[2:]] == [
      'wnn', 'multihorizon']
