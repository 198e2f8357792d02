"""The benchmark harness: speed-up arithmetic, and a real run checked
against the JSON schema."""

import json

import chex
import jax.numpy as jnp
import jsonschema
import optax
import pytest

from optax_nowcast.lab import cli
from optax_nowcast.lab.bench import speedup
from optax_nowcast.lab.bench import report
from optax_nowcast.lab.bench import runner


def test_first_reach_is_the_first_step_at_or_past_the_target():
  steps, acc = [100, 200, 300, 400], [0.5, 0.8, 0.79, 0.9]
  assert speedup.first_reach(steps, acc, 0.8) == 200
  assert speedup.first_reach(steps, acc, 0.85) == 400
  assert speedup.first_reach(steps, acc, 0.95) is None
  losses = [3.0, 2.0, 1.5, 1.6]
  assert speedup.first_reach(steps, losses, 1.5,
                             higher_is_better=False) == 300


def test_speedup_arithmetic_on_hand_made_curves():
  # Baseline reaches 0.9 at 600 and 400 (two seeds); the method at 300 and
  # 400: speed-ups 2.0 and 1.0, mean 1.5, std 0.5.
  steps = [100, 200, 300, 400, 500, 600]
  base = [[.1, .2, .3, .5, .7, .9], [.1, .2, .3, .9, .9, .9]]
  meth = [[.1, .5, .9, .9, .9, .9], [.1, .2, .3, .95, .9, .9]]
  b = [speedup.first_reach(steps, c, 0.9) for c in base]
  m = [speedup.first_reach(steps, c, 0.9) for c in meth]
  assert speedup.speedups(b, m) == [2.0, 1.0]
  assert speedup.mean_std(speedup.speedups(b, m)) == (1.5, 0.5)
  # A seed where either never reaches is left out, not counted as 0 or inf.
  assert speedup.speedups([600, None], [300, 200]) == [2.0]
  assert speedup.mean_std([]) is None


def test_envelope_takes_the_best_value_at_each_step():
  assert speedup.envelope([[0.1, 0.5, 0.4], [0.3, 0.2, 0.6]]) == [0.3, 0.5,
                                                                  0.6]
  assert speedup.envelope([[3.0, 1.0], [2.0, 2.0]],
                          higher_is_better=False) == [2.0, 1.0]


def test_default_target_is_reached_by_every_baseline_seed_in_time():
  steps = [1, 2, 3, 4]
  curves = [(steps, [.5, .8, .7, .95]), (steps, [.6, .7, .75, .9])]
  # By step 3: bests .8 and .75; every seed reaches .75.
  assert speedup.level_reached_by_all(curves, 3) == .75
  losses = [(steps, [3., 2., 2.5, 1.]), (steps, [3., 2.2, 1.9, 1.])]
  assert speedup.level_reached_by_all(losses, 3,
                                      higher_is_better=False) == 2.0
  # No evaluation by then: the first one counts.
  assert speedup.level_reached_by_all(curves, 0) == .5


def test_summary_of_a_hand_made_report():
  rep = dict(target=0.9, higher_is_better=True, budget_steps=4,
             methods=['adam', 'linear'],
             runs=[
      dict(method='adam', seed=0, eval_steps=[1, 2, 3, 4],
           eval_metric=[.5, .6, .7, .9], eval_seconds=[1., 2., 3., 4.],
           eval_jumps=[0, 0, 0, 0], skipped=0, rollbacks=0),
      dict(method='linear', seed=0, eval_steps=[1, 2, 3, 4],
           eval_metric=[.5, .9, .7, .9], eval_seconds=[2., 4., 6., 8.],
           eval_jumps=[0, 1, 1, 1], skipped=0, rollbacks=0),
  ])
  s = speedup.summarize(rep)
  assert s['linear']['steps_to_target'] == (2.0, 0.0)
  assert s['linear']['speedup_steps_vs_adam'] == (2.0, 0.0)
  # Wall-clock: 4 s vs 4 s, no speed-up in seconds.
  assert s['linear']['speedup_seconds_vs_adam'] == (1.0, 0.0)
  assert s['linear']['jumps'] == (1.0, 0.0)


def test_seconds_compare_only_runs_timed_on_one_device():
  run = lambda method, device, **kw: dict(
      method=method, seed=0, eval_steps=[1, 2], eval_metric=[.5, .9],
      eval_seconds=[1., 2.], eval_jumps=[0, 0], skipped=0, rollbacks=0,
      **({'device': device} if device is not None else {}), **kw)
  rep = dict(target=0.9, higher_is_better=True, budget_steps=2,
             methods=['adam', 'nino', 'wnn'], seeds=1, task='t',
             metric='test_accuracy', target_rule='r', machine='m', date='d',
             command='c', seen_in_meta_training=False,
             runs=[run('adam', None), run('nino', 'NVIDIA H200'),
                   run('wnn', 'cpu')])
  s = speedup.summarize(rep)
  # A run saved before runs recorded their device was timed on the CPU.
  assert s['wnn']['speedup_seconds_vs_adam'] == (1.0, 0.0)
  assert 'speedup_seconds_vs_adam' not in s['nino']
  assert s['nino']['speedup_steps_vs_adam'] == (1.0, 0.0)
  assert s['nino']['device'] == 'NVIDIA H200'
  assert s['wnn']['device'] == s['adam']['device'] == 'cpu'
  # Seeds on two devices: no mean seconds at all.
  mixed = dict(rep, methods=['adam', 'nino'], runs=[
      run('adam', None), dict(run('adam', None), seed=1),
      run('nino', 'NVIDIA H200'), dict(run('nino', 'cpu'), seed=1)])
  assert speedup.summarize(mixed)['nino']['seconds_to_target'] is None
  assert speedup.summarize(mixed)['nino']['device'] == 'NVIDIA H200 + cpu'
  rep['summary'] = s
  assert 'nino (NVIDIA H200: seed 0)' in report.markdown(rep)
  assert 'wnn (cpu)' not in report.markdown(rep)


def test_summary_of_a_hand_made_loss_report():
  # A validation loss: lower is better, the target is reached from above.
  rep = dict(target=1.5, higher_is_better=False, budget_steps=4,
             methods=['adam', 'wnn'],
             runs=[
                 dict(method='adam', seed=0, eval_steps=[1, 2, 3, 4],
                      eval_metric=[3., 2., 1.6, 1.5],
                      eval_seconds=[1., 2., 3., 4.], eval_jumps=[0] * 4,
                      skipped=0, rollbacks=0),
                 dict(method='wnn', seed=0, eval_steps=[1, 2, 3, 4],
                      eval_metric=[3., 1.4, 1.7, 1.6],
                      eval_seconds=[1., 2., 3., 4.], eval_jumps=[0, 1, 1, 1],
                      skipped=0, rollbacks=0),
             ])
  s = speedup.summarize(rep)
  assert s['wnn']['steps_to_target'] == (2.0, 0.0)
  assert s['wnn']['speedup_steps_vs_adam'] == (2.0, 0.0)
  assert s['wnn']['best'] == (1.4, 0.0)
  rep['target'] = 1.45  # Adam never gets there: it counts as the budget.
  s = speedup.summarize(rep)
  assert s['adam']['steps_to_target'] is None
  assert s['adam']['steps_or_budget'] == (4.0, 0.0)
  assert s['wnn']['steps_or_budget'] == (2.0, 0.0)
  assert s['adam']['best'] == (1.5, 0.0)


@pytest.mark.slow
def test_bench_reuses_saved_runs_and_redoes_changed_ones(tmp_path,
                                                        monkeypatch):
  args = ['bench', '--task', 'digits-mlp', '--methods', 'adam,linear',
          '--seeds', '1', '--steps', '44', '--out', str(tmp_path),
          '--no-progress']
  assert cli.main(args) == 0
  first = json.loads((tmp_path / 'digits-mlp.json').read_text())
  assert sorted(p.name for p in (tmp_path / 'runs' / 'digits-mlp').iterdir()
                ) == ['adam-s0.json', 'linear-s0.json']
  trained = []
  real_train = runner.tasks_lib.train
  monkeypatch.setattr(runner.tasks_lib, 'train',
                      lambda task, *a, **k: trained.append(task.steps)
                      or real_train(task, *a, **k))
  assert cli.main(args) == 0  # Everything saved: nothing is trained again.
  assert trained == []
  # --saved-only reports what is saved and leaves out the rest.
  only = args[:4] + ['adam,wnn,linear'] + args[5:] + ['--saved-only']
  assert cli.main(only) == 0
  assert trained == []
  assert json.loads((tmp_path / 'digits-mlp.json').read_text())['methods'] == [
      'adam', 'linear']
  again = json.loads((tmp_path / 'digits-mlp.json').read_text())
  assert again['runs'] == first['runs']
  # Another budget is another experiment; --fresh ignores saved runs.
  assert cli.main(args[:-4] + ['66'] + args[-3:]) == 0
  assert cli.main(args + ['--fresh']) == 0
  assert trained == [66, 66, 44, 44]
  # A run file cut off mid-write is redone, not trusted.
  (tmp_path / 'runs' / 'digits-mlp' / 'linear-s0.json').write_text('{"ke')
  assert cli.main(args) == 0
  assert trained == [66, 66, 44, 44, 44]


@pytest.mark.slow
def test_bench_command_writes_a_report_that_matches_its_schema(tmp_path):
  assert cli.main(['bench', '--task', 'digits-mlp', '--methods',
                   'adam,linear-guard', '--seeds', '1', '--steps', '132',
                   '--out', str(tmp_path), '--no-progress']) == 0
  rep = json.loads((tmp_path / 'digits-mlp.json').read_text())
  jsonschema.validate(rep, report.SCHEMA)
  assert rep['methods'] == ['adam', 'linear-guard']
  assert rep['seen_in_meta_training'] is False
  assert rep['seen_by_wnn'] is False
  assert [r['method'] for r in rep['runs']] == ['adam', 'linear-guard']
  # NiNo's schedule over 132 steps: a record every 2 steps, a jump every
  # 10, none after step 118: jumps at 10, 20, ..., 110 (a rollback restarts
  # the history, which can push the last one past 118).
  assert rep['runs'][1]['eval_jumps'][-1] in (10, 11)
  assert (tmp_path / 'digits-mlp.png').stat().st_size > 0
  assert '| linear-guard |' in (tmp_path / 'digits-mlp.md').read_text()


@pytest.mark.parametrize('budget,record_every,last', [
    (10_000, 200, 9000), (1320, 26, 1188), (40, 1, 36)])
def test_nino_schedule_records_50_times_and_jumps_every_5_records(
    budget, record_every, last):
  assert runner.nino_schedule(budget) == dict(
      record_every=record_every, jump_every=5, last_jump_step=last)


@pytest.mark.parametrize('method', [m for m in runner.METHODS
                                    if m not in ('adam', 'adam-sweep',
                                                 *runner.PEERS)])
def test_every_nowcast_method_chains_a_nowcast(method):
  task = runner.tasks_lib.get('digits-mlp')
  tx = runner._wrap(method, task, 22)(optax.adam(1e-3))
  params = {'w': jnp.ones((3, 2))}
  state = tx.init(params)
  found = optax.tree.get_all_with_path(state, 'NowcastState')
  assert len(found) == 1


@pytest.mark.slow
def test_checked_method_gets_value_fn_and_reports_its_choices(tmp_path,
                                                              monkeypatch):
  args = ['bench', '--task', 'digits-mlp', '--methods',
          'adam,multihorizon-select', '--seeds', '1', '--steps', '100',
          '--out', str(tmp_path), '--no-progress']
  assert cli.main(args) == 0
  rep = json.loads((tmp_path / 'digits-mlp.json').read_text())
  jsonschema.validate(rep, report.SCHEMA)
  run = rep['runs'][1]
  # A jump every 5 records of 2 steps, to the end: 10 checked jumps, each
  # counted once among no jump and the benchmark's horizons.
  assert len(run['selected']) == 1 + len(runner.SELECT)
  assert sum(run['selected']) == 10
  assert rep['runs'][0]['selected'] == []
  assert 'multihorizon-select: no jump' in (
      tmp_path / 'digits-mlp.md').read_text()
  # Its saved run matches its settings (read back from JSON): reused.
  monkeypatch.setattr(runner.tasks_lib, 'train', None)
  assert cli.main(args) == 0


@pytest.mark.parametrize('optimizer', ['adam', 'adamw', 'sgdm'])
def test_cosine_decay_reaches_zero_at_the_budget(optimizer):
  task = runner.tasks_lib.get('digits-mlp').replace(
      optimizer=optimizer, steps=10, decay='cosine')
  tx = task.make_optimizer()
  params = {'w': jnp.ones(3)}
  state = tx.init(params)
  grads = {'w': jnp.full(3, 0.5)}
  for _ in range(10):
    updates, state = tx.update(grads, state, params)
    chex.assert_trees_all_equal(jnp.isfinite(updates['w']), True)
  updates, state = tx.update(grads, state, params)
  chex.assert_trees_all_close(updates['w'], jnp.zeros(3), atol=1e-12)
  with pytest.raises(ValueError, match='decay must be one of'):
    task.replace(decay='linear')


def test_saved_only_needs_saved_adam_runs_and_no_fresh(tmp_path, capsys):
  args = ['bench', '--task', 'digits-mlp', '--out', str(tmp_path),
          '--saved-only']
  assert cli.main(args) == 2
  assert 'no saved adam runs' in capsys.readouterr().err
  assert cli.main(args + ['--fresh']) == 2
  assert 'give one of them' in capsys.readouterr().err


def test_bench_rejects_unknown_methods_and_task_and_suite_together(capsys):
  assert cli.main(['bench', '--task', 'digits-mlp', '--methods', 'magic',
                   '--out', '/tmp/x']) == 2
  assert "got 'magic'" in capsys.readouterr().err
  assert cli.main(['bench', '--task', 'digits-mlp', '--suite',
                   '--out', '/tmp/x']) == 2
  assert 'exactly one of --task' in capsys.readouterr().err


def test_schema_rejects_a_report_missing_its_summary():
  with pytest.raises(jsonschema.ValidationError):
    jsonschema.validate({'schema': 'optax_nowcast.lab.bench/1'}, report.SCHEMA)


@pytest.mark.slow
def test_workers_share_the_runs_and_saved_only_reports_them(tmp_path,
                                                             monkeypatch):
  args = ['bench', '--task', 'digits-mlp', '--methods', 'adam-sweep,linear',
          '--seeds', '2', '--steps', '44', '--out', str(tmp_path),
          '--no-progress']
  trained = {}
  real_train = runner.tasks_lib.train
  def train(task, seed, *a, **k):
    key = (task.learning_rate, seed, k['wrap_tx'] is not None)
    trained[key] = trained.get(key, 0) + 1
    return real_train(task, seed, *a, **k)
  monkeypatch.setattr(runner.tasks_lib, 'train', train)
  for k in range(3):
    assert cli.main(args + ['--worker', f'{k}/3']) == 0
  # adam at three learning rates and linear, 2 seeds: 8 runs, each once.
  assert len(trained) == 8 and set(trained.values()) == {1}
  assert not (tmp_path / 'digits-mlp.json').exists()  # Workers only train.
  assert cli.main(args + ['--saved-only']) == 0
  assert len(trained) == 8 and set(trained.values()) == {1}
  rep = json.loads((tmp_path / 'digits-mlp.json').read_text())
  assert rep['methods'] == ['adam', 'adam-sweep', 'linear']
  assert [(r['method'], r['seed']) for r in rep['runs']] == [
      (m, s) for s in range(2) for m in rep['methods']]


def test_worker_must_be_k_of_n_and_not_with_saved_only(capsys):
  base = ['bench', '--task', 'digits-mlp', '--out', '/tmp/x']
  for bad in ('2/2', '-1/2', 'a/b', '1'):
    with pytest.raises(SystemExit):
      cli.main(base + [f'--worker={bad}'])
    assert 'must be K/N' in capsys.readouterr().err
  assert cli.main(base + ['--worker', '0/2', '--saved-only']) == 2
  assert 'give one of them' in capsys.readouterr().err
