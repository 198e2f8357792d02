"""The ``optax-nowcast demo`` command on a tiny budget."""

import pytest

from optax_nowcast import cli
from optax_nowcast import demo


def test_demo_prints_a_table_with_every_method(capsys):
  assert cli.main(['demo', '--seeds', '1', '--epochs', '6',
                   '--methods', 'adam,linear', '--no-progress']) == 0
  out = capsys.readouterr().out
  assert 'target test accuracy' in out
  rows = [line for line in out.splitlines() if line.startswith('| ')]
  assert [r.split('|')[1].strip() for r in rows[1:]] == ['adam', 'linear']
  # 6 epochs with a jump every 5 records (one per epoch): exactly one jump.
  assert rows[2].rstrip('|').split('|')[-1].strip() == '1'


def test_steps_to_reports_the_first_step_reaching_the_target():
  run = demo.RunResult('adam', 0, steps=[10, 20, 30],
                       accuracy=[0.5, 0.9, 0.8], jumps=0, seconds=1.0)
  assert run.steps_to(0.85) == 20
  assert run.steps_to(0.5) == 10
  assert run.steps_to(0.95) is None


@pytest.mark.parametrize('argv,message', [
    (['demo', '--seeds', '0'], 'must be a positive int'),
    (['demo', '--epochs', 'x'], 'must be a positive int'),
])
def test_bad_demo_arguments_are_rejected(argv, message, capsys):
  with pytest.raises(SystemExit) as e:
    cli.main(argv)
  assert e.value.code == 2
  assert message in capsys.readouterr().err


def test_unknown_method_is_an_error_naming_it(capsys):
  assert cli.main(['demo', '--methods', 'adam,wizard', '--seeds', '1',
                   '--epochs', '1', '--no-progress']) == 2
  assert "got 'wizard'" in capsys.readouterr().err
