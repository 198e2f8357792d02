"""The benchmark's peers: each does what its reference says, is tuned like
Adam, and runs in the benchmark side by side with the nowcast methods."""

import json

import chex
import jax
import jax.numpy as jnp
import optax
import pytest

from optax_nowcast.lab import cli
from optax_nowcast.lab import peers
from optax_nowcast.lab.bench import runner
from optax_nowcast.lab.bench import tune


def _params():
  return {'w': jnp.array([[1.0, -2.0], [0.5, 3.0]]), 'b': jnp.array([0.1, 0.2])}


def _grads(step):
  return jax.tree.map(lambda p: jnp.sin(p * (step + 1.0)), _params())


def test_lookahead_on_params_is_optax_lookahead_step_for_step():
  fast_tx = optax.adam(0.1)
  ours = peers.lookahead_on_params(fast_tx, sync_period=3, slow_step_size=0.5)
  theirs = optax.lookahead(fast_tx, sync_period=3, slow_step_size=0.5)
  params = _params()
  state = ours.init(params)
  both = optax.LookaheadParams.init_synced(_params())
  their_state = theirs.init(both)
  for step in range(10):
    updates, state = ours.update(_grads(step), state, params)
    params = optax.apply_updates(params, updates)
    their_updates, their_state = theirs.update(_grads(step), their_state,
                                               both)
    both = optax.apply_updates(both, their_updates)
    chex.assert_trees_all_close(params, both.fast, rtol=1e-6)
    chex.assert_trees_all_close(peers.slow_weights(state, params), both.slow,
                                rtol=1e-6)


def test_snoo_with_rate_one_and_no_momentum_is_the_inner_optimizer():
  inner = optax.adam(0.05)
  tx = peers.snoo(inner, every=2, learning_rate=1.0, momentum=0.0)
  params, plain = _params(), _params()
  state, plain_state = tx.init(params), inner.init(plain)
  for step in range(7):
    updates, state = tx.update(_grads(step), state, params)
    params = optax.apply_updates(params, updates)
    plain_updates, plain_state = inner.update(_grads(step), plain_state)
    plain = optax.apply_updates(plain, plain_updates)
    chex.assert_trees_all_close(params, plain, rtol=1e-6, atol=1e-7)


def test_snoo_outer_step_is_nesterov_on_the_k_step_displacement():
  # Inner: SGD(1) on a constant gradient -1, so each inner step adds 1.
  tx = peers.snoo(optax.sgd(1.0), every=2, learning_rate=0.5, momentum=0.5)
  w = jnp.zeros(())
  state = tx.init(w)
  ones = -jnp.ones(())
  seen = []
  for _ in range(4):
    u, state = tx.update(ones, state, w)
    w = w + u
    seen.append(float(w))
  # Step 1: 1. Step 2: fast 2, delta 2, m = 2, slow = 0 + 0.5 (2 + 0.5 * 2)
  # = 1.5. Step 3: 2.5. Step 4: fast 3.5, delta 2, m = 0.5 * 2 + 2 = 3,
  # slow = 1.5 + 0.5 (2 + 0.5 * 3) = 3.25.
  assert seen == [1.0, 1.5, 2.5, 3.25]
  assert float(peers.slow_weights(state, w)) == 3.25
  with pytest.raises(ValueError, match='every must be a positive int'):
    peers.snoo(optax.sgd(1.0), every=0)


def test_wsd_is_constant_then_linear_to_zero_over_the_last_fifth():
  schedule = peers.wsd_schedule(2.0, 100)
  assert [float(schedule(s)) for s in (0, 50, 80, 90, 100)] == [
      2.0, 2.0, 2.0, 1.0, 0.0]
  with pytest.raises(ValueError, match='decay must be in'):
    peers.wsd_schedule(1.0, 10, decay=0.0)


@pytest.mark.parametrize('name', sorted(peers.PEERS))
@pytest.mark.parametrize('optimizer', ['adam', 'adamw'])
def test_every_peer_trains_and_says_where_to_evaluate(name, optimizer):
  peer = peers.PEERS[name]
  tx = peer.make(optimizer, 1e-2, 20)
  params = _params()
  state = tx.init(params)
  for step in range(6):
    updates, state = tx.update(_grads(step), state, params, value=1.0)
    params = optax.apply_updates(params, updates)
  chex.assert_trees_all_equal_structs(params, _params())
  assert not all(jax.tree.leaves(jax.tree.map(
      lambda a, b: bool(jnp.all(a == b)), params, _params())))
  evaluated = (params if peer.eval_params is None
               else peer.eval_params(state, params))
  chex.assert_trees_all_equal_shapes_and_dtypes(evaluated, params)
  if name == 'sf-adamw':
    chex.assert_trees_all_close(
        evaluated, optax.contrib.schedule_free_eval_params(state, params))


def test_a_peer_needs_a_tuned_rate_and_reads_its_sweep(tmp_path,
                                                      monkeypatch):
  monkeypatch.setattr(peers, 'TUNED', {})
  with pytest.raises(ValueError, match='tune --task digits-mlp --method'
                     ' sf-adamw'):
    runner.peer_factor('digits-mlp', 'sf-adamw', sweeps=tmp_path)
  (tmp_path / 'digits-mlp.adam-wsd.json').write_text(
      json.dumps(dict(best_factor=0.5)))
  assert runner.peer_factor('digits-mlp', 'adam-wsd', sweeps=tmp_path) == 0.5
  # A nowcast on the WSD schedule rides at WSD's rate; the others at Adam's.
  assert runner.peer_factor('digits-mlp', 'multihorizon+wsd',
                            sweeps=tmp_path) == 0.5
  assert runner.peer_factor('digits-mlp', 'multihorizon',
                            sweeps=tmp_path) == 1.0
  # The registered rate comes first.
  monkeypatch.setitem(peers.TUNED, ('digits-mlp', 'adam-wsd'), 4.0)
  assert runner.peer_factor('digits-mlp', 'adam-wsd', sweeps=tmp_path) == 4.0


@pytest.mark.parametrize('method,last', [('multihorizon+wsd', 1056),
                                         ('multihorizon+cosine', 660),
                                         ('multihorizon', 1188)])
def test_a_nowcast_on_a_schedule_stops_jumping_where_the_rate_decays(
    method, last):
  # digits-mlp: 1320 steps; WSD decays over the last 20%, the cosine is
  # below half its peak after half the budget; NiNo's schedule alone stops
  # at 90%.
  task = runner.tasks_lib.get('digits-mlp')
  settings = runner.nowcast_settings(method, task, 22)
  assert settings['last_jump_step'] == last
  assert settings['record_every'] == 26 and settings['jump_every'] == 5
  tx = runner._wrap(method, task, 22)(optax.adam(1e-3))
  assert len(optax.tree.get_all_with_path(tx.init({'w': jnp.ones(3)}),
                                          'NowcastState')) == 1


def _fake_train(best_factor, trained):
  """A stand-in run whose best accuracy peaks at ``best_factor``."""
  def train(task, seed, ds, method, steps_per_epoch, cache, reuse,
            lr_factor=1.0, bar=None):
    del ds, steps_per_epoch, cache, reuse, bar
    trained.append((method, lr_factor))
    acc = 1.0 - abs(lr_factor - best_factor) / best_factor / 100
    return runner.Run(method, seed, [1, 2], [0.5, acc], [0.1, 0.2], [0, 0])
  return train


@pytest.mark.parametrize('best,tried', [(1.0, [0.5, 1.0, 2.0]),
                                        (4.0, [0.5, 1.0, 2.0, 4.0, 8.0]),
                                        (0.25, [0.125, 0.25, 0.5, 1.0, 2.0])])
def test_a_peer_is_swept_over_multiples_of_adams_rate(
    tmp_path, monkeypatch, capsys, best, tried):
  monkeypatch.setattr(peers, 'TUNED', {})
  trained = []
  monkeypatch.setattr(runner, '_train', _fake_train(best, trained))
  assert cli.main(['tune', '--task', 'digits-mlp', '--method', 'sf-adamw',
                   '--out', str(tmp_path), '--bench-cache',
                   str(tmp_path / 'runs'), '--no-progress']) == 0
  assert sorted(f for _, f in trained) == tried
  assert {m for m, _ in trained} == {'sf-adamw'}
  rep = json.loads((tmp_path / 'digits-mlp.sf-adamw.json').read_text())
  assert rep['best_factor'] == best and rep['method'] == 'sf-adamw'
  assert "Adam's rate" in (tmp_path / 'digits-mlp.sf-adamw.md').read_text()
  assert f"best rate on digits-mlp is {best:g} x Adam's" in (
      capsys.readouterr().out)
  assert runner.peer_factor('digits-mlp', 'sf-adamw', sweeps=tmp_path) == best
  with pytest.raises(ValueError, match='method must be adam or one of'):
    tune.sweep('digits-mlp', cache_dir=tmp_path, method='wnn')


@pytest.mark.slow
def test_bench_runs_every_peer_at_its_tuned_rate(tmp_path, monkeypatch,
                                                  capsys):
  for peer in runner.PEERS:
    monkeypatch.setitem(peers.TUNED, ('digits-mlp', peer), 2.0)
  methods = ','.join(runner.PEERS) + ',multihorizon+wsd'
  assert cli.main(['bench', '--task', 'digits-mlp', '--methods', methods,
                   '--seeds', '1', '--steps', '30', '--out', str(tmp_path),
                   '--no-progress']) == 0
  rep = json.loads((tmp_path / 'digits-mlp.json').read_text())
  assert rep['methods'] == ['adam', *runner.PEERS, 'multihorizon+wsd']
  runs = tmp_path / 'runs' / 'digits-mlp'
  saved = json.loads((runs / 'sf-adamw-lr2-s0.json').read_text())
  rate = runner.tasks_lib.get('digits-mlp').learning_rate
  assert saved['key']['learning_rate'] == pytest.approx(2 * rate)
  # The runs of a shorter budget are stale for the registered task.
  capsys.readouterr()
  assert cli.main(['bench', '--prune', '--dry-run', '--out',
                   str(tmp_path)]) == 0
  out = capsys.readouterr().out
  assert 'would drop 7 saved runs' in out
  assert 'settings changed: steps' in out
  assert len(list(runs.iterdir())) == 7  # a dry run deletes nothing


def test_prune_drops_only_runs_no_method_would_reuse(tmp_path, capsys):
  runs = tmp_path / 'runs' / 'digits-mlp'
  runs.mkdir(parents=True)
  task = runner.tasks_lib.get('digits-mlp')
  # A run saved with the registered settings is kept; stale ones go.
  (runs / 'adam-s0.json').write_text(json.dumps(dict(
      key=runner._fingerprint(task, 'adam', 1.0), run={})))
  old = dict(runner._fingerprint(task, 'wnn', 1.0), forecaster_sha256='0')
  (runs / 'wnn-s0.json').write_text(json.dumps(dict(key=old, run={})))
  (runs / 'adam-lr3-s0.json').write_text(json.dumps(dict(
      key=runner._fingerprint(task, 'adam', 0.5), run={})))
  (runs / 'magic-s0.json').write_text(json.dumps(dict(
      key=dict(method='magic'), run={})))
  (runs / 'linear-s0.tmp').write_text('{')
  assert cli.main(['bench', '--prune', '--out', str(tmp_path)]) == 0
  out = capsys.readouterr().out
  assert 'settings changed: forecaster_sha256' in out
  assert 'x0.5 the registered' in out and "no method 'magic'" in out
  assert 'dropped 3 saved runs' in out
  # A run being written (.tmp) is left alone.
  assert sorted(p.name for p in runs.iterdir()) == ['adam-s0.json',
                                                     'linear-s0.tmp']
  assert cli.main(['bench', '--task', 'digits-mlp', '--dry-run', '--out',
                   str(tmp_path)]) == 2
  assert '--dry-run goes with --prune' in capsys.readouterr().err


_SWEEPS = runner.SWEEPS if runner.SWEEPS.is_absolute() else (
    __import__('pathlib').Path(__file__).resolve().parents[2] / runner.SWEEPS)


# Every committed peer sweep decides its peer's registered rate (as Adam's
# sweeps decide tasks.py's), and every registered rate has its sweep.
@pytest.mark.parametrize('file', sorted(_SWEEPS.glob('*.*.json')),
                         ids=lambda f: f.stem)
def test_each_peer_sweep_is_registered(file):
  rep = json.loads(file.read_text())
  assert peers.TUNED.get((rep['task'], rep['method'])) == rep['best_factor']


def test_each_registered_peer_rate_has_its_sweep():
  for task, peer in peers.TUNED:
    assert (_SWEEPS / f'{task}.{peer}.json').exists(), (task, peer)
