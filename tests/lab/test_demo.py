"""The ``optax-nowcast demo`` command (the README's main job), tiny budget."""

import json

import pytest

from optax_nowcast.lab import cli

# End-to-end (subprocesses or training runs): .ci/run runs them after the
# quick suite; `pytest -m slow` runs them alone.
pytestmark = pytest.mark.slow


def test_demo_prints_the_table_and_writes_report_and_plot(tmp_path, capsys):
  assert cli.main(['demo', '--seeds', '1', '--methods',
                   'adam,multihorizon-select', '--out', str(tmp_path),
                   '--no-progress']) == 0
  out = capsys.readouterr().out
  assert ("digits-mlp (unseen by multihorizon's corpus, unseen by WNN's zoo)"
          in out)
  rows = [line for line in out.splitlines() if line.startswith('| ')]
  assert [r.split('|')[1].strip() for r in rows[1:]] == [
      'adam', 'multihorizon-select']
  report = json.loads((tmp_path / 'digits-mlp.json').read_text())
  # 1320 steps, a record every 26 (budget / 50), a checked jump every 5
  # records to the end: 10 jumps, each choosing no jump or a horizon.
  assert sum(report['runs'][1]['selected']) == 10
  assert 'multihorizon-select: no jump' in out
  assert (tmp_path / 'digits-mlp.png').stat().st_size > 0


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
