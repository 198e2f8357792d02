"""The learning-rate sweep that makes ``adam`` tuned Adam."""

import json
import pathlib

import pytest

from optax_nowcast.lab import cli
from optax_nowcast.lab import tasks
from optax_nowcast.lab.bench import runner
from optax_nowcast.lab.bench import tune


def test_grid_is_log_spaced_around_1e_3():
  assert [tune.grid_rate(k) for k in (-2, -1, 0, 1, 2, 3)] == [
      2.5e-4, 5e-4, 1e-3, 2e-3, 4e-3, 8e-3]
  assert tune.nearest_index(1e-3) == 0
  assert tune.nearest_index(6e-3) == 3  # log2(6) = 2.58
  assert tune.nearest_index(3e-3) == 2
  with pytest.raises(ValueError, match='positive'):
    tune.nearest_index(0.0)


def test_best_of_follows_the_metric_direction_and_breaks_ties_low():
  acc = {1e-3: 0.9, 2e-3: 0.95, 4e-3: 0.95}
  assert tune.best_of(acc, higher_is_better=True) == 2e-3
  loss = {1e-3: 1.5, 2e-3: 1.4, 4e-3: 1.6}
  assert tune.best_of(loss, higher_is_better=False) == 2e-3


def _fake_train(best_lr, trained):
  """A stand-in for a run whose best accuracy peaks at ``best_lr``."""
  def train(task, seed, ds, method, steps_per_epoch, cache, reuse, lr_factor=1.0,
            bar=None):
    del ds, steps_per_epoch, cache, reuse, lr_factor, bar
    trained.append(task.learning_rate)
    acc = 1.0 - abs(task.learning_rate - best_lr) / best_lr / 100
    return runner.Run(method, seed, [1, 2], [0.5, acc], [0.1, 0.2], [0, 0])
  return train


@pytest.mark.parametrize('best,tried,at_edge', [
    (2e-3, [2.5e-4, 5e-4, 1e-3, 2e-3, 4e-3], False),  # inside: 5 runs
    (8e-3, [2.5e-4, 5e-4, 1e-3, 2e-3, 4e-3, 8e-3, 1.6e-2], False),  # grows
    (1, [2.5e-4, 5e-4, 1e-3, 2e-3, 4e-3, 8e-3, 1.6e-2, 3.2e-2], True),
    (1e-6, [3.125e-5, 6.25e-5, 1.25e-4, 2.5e-4, 5e-4, 1e-3, 2e-3, 4e-3],
     True),
])
def test_sweep_grows_past_an_edge_until_the_best_is_inside(
    tmp_path, monkeypatch, best, tried, at_edge):
  trained = []
  monkeypatch.setattr(runner, '_train', _fake_train(best, trained))
  monkeypatch.setitem(tasks.TASKS, 'digits-mlp', tasks.get(
      'digits-mlp').replace(learning_rate=1e-3))
  rep = tune.sweep('digits-mlp', cache_dir=tmp_path, progress=False)
  assert sorted(trained) == tried  # each rate once
  assert [r['learning_rate'] for r in rep['runs']] == tried
  assert rep['best_at_edge'] is at_edge
  assert rep['best_learning_rate'] == (
      min(tried, key=lambda lr: abs(lr - best) / best))
  assert rep['registered_learning_rate'] == 1e-3


def test_tune_command_writes_its_report(tmp_path, capsys, monkeypatch):
  # The runs are stand-ins (the sweep's logic is tested above; a real run
  # is the benchmark's, tested in test_bench.py).
  trained = []
  monkeypatch.setattr(runner, '_train', _fake_train(2e-3, trained))
  args = ['tune', '--task', 'digits-mlp', '--out', str(tmp_path),
          '--no-progress']
  assert cli.main(args) == 0
  out = capsys.readouterr().out
  rep = json.loads((tmp_path / 'digits-mlp.json').read_text())
  assert len(rep['runs']) == len(trained) >= tune.POINTS
  assert rep['best_learning_rate'] == 2e-3
  assert 'register learning_rate=0.002 for digits-mlp' in out or (
      'the registered rate is the best' in out)
  assert '| 0.002 **best**' in (tmp_path / 'digits-mlp.md').read_text()


def test_tune_needs_a_task_or_the_suite(capsys):
  assert cli.main(['tune', '--out', '/tmp/x']) == 2
  assert 'exactly one of --task' in capsys.readouterr().err
  assert cli.main(['tune', '--task', 'nope', '--out', '/tmp/x']) == 2
  assert "unknown task 'nope'" in capsys.readouterr().err


_SWEEPS = pathlib.Path(__file__).resolve().parents[2] / 'results' / 'lr_sweep'


# Every committed sweep (``optax-nowcast tune``) decides its task's ``adam``.
# (A suite task without a committed sweep yet is listed in the README.)
@pytest.mark.parametrize('task', [t for t in runner.SUITE
                                  if (_SWEEPS / f'{t}.json').exists()])
def test_each_benchmark_task_registers_the_best_rate_of_its_sweep(task):
  assert tune.tuned(task, _SWEEPS) == tasks.get(task).learning_rate
