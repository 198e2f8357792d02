"""The ``optax-nowcast demo`` command (the README's main job), tiny budget."""

import json

import pytest

from optax_nowcast.lab import cli

# End-to-end (subprocesses or training runs): .ci/run runs them after the
# quick suite; `pytest -m slow` runs them alone.
pytestmark = pytest.mark.slow


def test_demo_prints_the_table_and_writes_report_and_plot(tmp_path, capsys):
  assert cli.main(['demo', '--seeds', '1', '--methods',
                   'adam,nino-mlp+cosine', '--out', str(tmp_path),
                   '--no-progress']) == 0
  out = capsys.readouterr().out
  assert ("teacher-mlp (unseen by multihorizon's corpus, unseen by WNN's"
          " zoo)" in out)
  rows = [line for line in out.splitlines() if line.startswith('| ')]
  assert [r.split('|')[1].strip() for r in rows[1:]] == [
      'adam', 'nino-mlp+cosine']
  report = json.loads((tmp_path / 'teacher-mlp.json').read_text())
  # 3000 steps, a record every 60 (budget / 50), a jump every 5 records,
  # none once the cosine decays (from step 1500): jumps at 300, ..., 1500.
  assert report['runs'][1]['eval_jumps'][-1] == 5
  assert report['runs'][0]['eval_jumps'][-1] == 0
  assert (tmp_path / 'teacher-mlp.png').stat().st_size > 0


def test_demo_defaults_to_the_recipe_its_schedule_and_the_best_peer():
  args = cli.build_parser().parse_args(['demo'])
  assert args.methods.split(',') == [
      'adam', 'nino-mlp+cosine', 'adam-cosine', 'sf-adamw']


@pytest.mark.parametrize('argv,message', [
    (['demo', '--seeds', '0'], 'must be a positive int'),
    (['demo', '--seeds', 'x'], 'must be a positive int'),
])
def test_bad_demo_arguments_are_rejected(argv, message, capsys):
  with pytest.raises(SystemExit) as e:
    cli.main(argv)
  assert e.value.code == 2
  assert message in capsys.readouterr().err


def test_unknown_method_is_an_error_naming_it(tmp_path, capsys):
  assert cli.main(['demo', '--methods', 'adam,wizard', '--seeds', '1',
                   '--out', str(tmp_path), '--no-progress']) == 2
  assert "got 'wizard'" in capsys.readouterr().err
