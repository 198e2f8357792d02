"""Bad input to the ``optax-nowcast`` command: a one-line error, exit code 2."""

import pytest

from optax_nowcast.lab import cli
from optax_nowcast.lab.bench import runner


@pytest.fixture
def a_file(tmp_path):
  path = tmp_path / 'not_a_dir'
  path.write_text('x')
  return str(path)


@pytest.mark.parametrize('argv, match', [
    (['collect', '--out', '{file}'], 'exists and is not a directory'),
    (['collect', '--out', '{tmp}', '--snapshot-every', '0'],
     "must be a positive int, got '0'"),
    (['collect', '--out', '{tmp}', '--zoo', 'huge'], "invalid choice: 'huge'"),
    (['bench', '--task', 'digits-mlp', '--out', '{tmp}', '--steps', '-3'],
     "must be a positive int, got '-3'"),
    (['demo', '--seeds', 'two'], "must be a positive int, got 'two'"),
    (['demo', '--out', '{file}'], 'exists and is not a directory'),
    (['train-forecaster', '--kind', 'wnn', '--trajectories', '{tmp}/none',
      '--out', '{tmp}/ckpt'], 'is not a directory; record trajectories'),
    (['train-forecaster', '--kind', 'wnn', '--trajectories', '{tmp}',
      '--out', '{file}'], 'exists and is not a directory'),
    (['train-forecaster', '--kind', 'lstm', '--trajectories', '{tmp}',
      '--out', '{tmp}/ckpt'], "invalid choice: 'lstm'"),
])
def test_argument_errors(argv, match, tmp_path, a_file, capsys):
  argv = [a.format(file=a_file, tmp=tmp_path) for a in argv]
  with pytest.raises(SystemExit) as info:
    cli.main(argv)
  assert info.value.code == 2
  assert match in capsys.readouterr().err


@pytest.mark.parametrize('argv, match', [
    (['bench', '--task', 'cifar', '--out', '{tmp}'], "unknown task 'cifar'"),
    # The unknown task is named first, whatever else is wrong.
    (['bench', '--out', '{file}', '--task', 'cifar'], "unknown task 'cifar'"),
    (['bench', '--task', 'cifar'], "unknown task 'cifar'"),
    (['bench', '--task', 'digits-mlp'], 'required: --out DIR'),
    (['bench', '--task', 'digits-mlp', '--out', '{file}'],
     'exists and is not a directory'),
    (['bench', '--task', 'digits-mlp', '--methods', 'adam,magic',
      '--out', '{tmp}'], "got 'magic'"),
    (['train-forecaster', '--kind', 'wnn', '--trajectories', '{tmp}',
      '--out', '{tmp}/ckpt'], 'no complete trajectories under'),
])
def test_value_errors_exit_2_with_one_line(argv, match, tmp_path, a_file,
                                          capsys):
  argv = [a.format(tmp=tmp_path, file=a_file) for a in argv]
  assert cli.main(argv) == 2
  err = capsys.readouterr().err
  assert match in err
  assert err.startswith(f'optax-nowcast {argv[0]}: error: ')
  assert 'Traceback' not in err


def test_version_prints_the_package_version(capsys):
  import optax_nowcast  # pylint: disable=g-import-not-at-top
  with pytest.raises(SystemExit) as info:
    cli.main(['--version'])
  assert info.value.code == 0
  assert capsys.readouterr().out.strip() == (
      f'optax-nowcast {optax_nowcast.__version__}')


def test_bench_help_lists_tasks_methods_and_defaults(capsys):
  with pytest.raises(SystemExit):
    cli.main(['bench', '--help'])
  out = ' '.join(capsys.readouterr().out.split())
  for name in ('shakespeare-charlm', 'digits-mlp-narrow', 'wnn-guard',
               'adam-sweep', '(default: 3)'):
    assert name in out.replace('- ', '-'), name


def test_bench_defaults_to_the_suite_methods_all_registered():
  args = cli.build_parser().parse_args(['bench', '--task', 'digits-mlp',
                                        '--out', 'unused'])
  methods = args.methods.split(',')
  assert set(methods) <= set(runner.METHODS), methods
  for name in ('adam', 'adam-sweep', 'adam-cosine', 'wnn', 'multihorizon',
               'multihorizon-select'):
    assert name in methods, name


def test_without_the_lab_extra_it_says_what_to_install(monkeypatch, capsys):
  import importlib.util  # pylint: disable=g-import-not-at-top
  real = importlib.util.find_spec
  monkeypatch.setattr(importlib.util, 'find_spec',
                      lambda name, *a: None if name == 'tqdm' else real(name,
                                                                        *a))
  assert cli.main(['demo']) == 2
  assert "pip install 'optax-nowcast[lab]'" in capsys.readouterr().err
