"""Steps to the target at multiples of each method's tuned rate."""

import json

import pytest

from optax_nowcast.lab import cli
from optax_nowcast.lab import peers
from optax_nowcast.lab.bench import robustness
from optax_nowcast.lab.bench import runner


def _fake_train(trained):
  """A run that reaches 0.9 at step 100 x |log2 of its rate multiple| + 100,
  and never beyond 4x away from the tuned rate."""
  def train(task, seed, ds, method, steps_per_epoch, cache, reuse,
            lr_factor=1.0, bar=None):
    del ds, steps_per_epoch, cache, reuse, bar
    trained.append((method, lr_factor))
    tuned = 2.0 if method == 'sf-adamw' else 1.0
    import math  # pylint: disable=g-import-not-at-top
    off = abs(math.log2(lr_factor / tuned))
    reach = 100 * off + 100 if off < 2.5 else None
    steps = [100, 200, 300, 400]
    metric = [0.9 if reach is not None and s >= reach else 0.5 for s in steps]
    return runner.Run(method, seed, steps, metric, [s / 100 for s in steps],
                      [0] * 4)
  return train


def test_robustness_trains_each_method_around_its_own_tuned_rate(
    tmp_path, monkeypatch, capsys):
  trained = []
  monkeypatch.setattr(runner, '_train', _fake_train(trained))
  monkeypatch.setitem(peers.TUNED, ('digits-mlp', 'sf-adamw'), 2.0)
  (tmp_path / 'digits-mlp.json').write_text(json.dumps(dict(target=0.9)))
  assert cli.main(['robustness', '--task', 'digits-mlp', '--methods',
                   'adam,sf-adamw', '--suite-dir', str(tmp_path), '--out',
                   str(tmp_path / 'out'), '--no-progress']) == 0
  assert trained == [('adam', f) for f in robustness.FACTORS] + [
      ('sf-adamw', 2.0 * f) for f in robustness.FACTORS]
  rep = json.loads((tmp_path / 'out' / 'digits-mlp.json').read_text())
  steps = {(r['method'], r['factor']): r['steps_to_target']
           for r in rep['rows']}
  assert steps[('adam', 1.0)] == 100 and steps[('adam', 0.5)] == 200
  assert steps[('adam', 0.125)] is None  # 3 octaves off: never
  assert steps[('sf-adamw', 2.0)] == 200  # 4x Adam's, 2x its own tuned
  table = (tmp_path / 'out' / 'digits-mlp.md').read_text()
  assert '| adam | never (0.0005) | 300 (0.001) | 200 (0.002) |' in table
  assert (tmp_path / 'out' / 'digits-mlp.png').stat().st_size > 1000
  assert 'wrote' in capsys.readouterr().out


def test_robustness_needs_the_suite_report_and_known_methods(tmp_path,
                                                             capsys):
  with pytest.raises(ValueError, match='no suite report'):
    robustness.suite_target('digits-mlp', tmp_path)
  assert cli.main(['robustness', '--task', 'digits-mlp', '--methods',
                   'adam-sweep', '--out', str(tmp_path)]) == 2
  assert 'not adam-sweep' in capsys.readouterr().err
