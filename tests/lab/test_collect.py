"""Recording trajectories: runs trained at once, the format, resuming."""

import dataclasses
import json

import jax
import numpy as np
import pytest

from optax_nowcast.lab import cli
from optax_nowcast.lab import data
from optax_nowcast.lab import tasks
from optax_nowcast.lab.meta import batched
from optax_nowcast.lab.meta import trajectories

_TASK = 'digits-mlp-narrow'  # MLP (64,) on the embedded digits: 8x8x1 -> 10.
_GROUP = [trajectories.RunSpec(_TASK, 'adam', lr, seed, steps=30,
                               snapshot_every=10, max_per_leaf=16,
                               eval_examples=100, group='g')
          for seed, lr in ((0, 1e-3), (1, 3e-3), (2, 1e-2))]
_ALONE = trajectories.RunSpec(_TASK, 'sgdm', 0.05, 0, steps=30)
_SPECS = _GROUP + [_ALONE]


@pytest.fixture(scope='module')
def digits():
  return data.load_digits()


@pytest.fixture(scope='module')
def recorded(tmp_path_factory):
  root = tmp_path_factory.mktemp('trajectories')
  trajectories.collect(_SPECS, root, snapshot_every=15, progress=False)
  return root


def _mtimes(root):
  return {p.name: (p / 'meta.json').stat().st_mtime_ns
          for p in trajectories.list_runs(root)}


# (Seconds of compiling: the slow suite, to keep the quick one under 6 min.)
@pytest.mark.slow
def test_a_batched_member_trains_exactly_like_train_alone(digits):
  task = tasks.get(_TASK).replace(steps=20, eval_every=10)
  together = batched.train_batched(task, [3, 4], [2e-3, 5e-3],
                                   dataset=digits)
  # The second member: its own seed and learning rate, not the first's.
  alone = tasks.train(task.replace(learning_rate=5e-3), 4, dataset=digits)
  for a, b in zip(jax.tree.leaves(together.final_params),
                  jax.tree.leaves(alone.final_params)):
    np.testing.assert_allclose(a[1], b, rtol=1e-5, atol=1e-6)
    assert np.abs(a[0] - b).max() > 1e-3
  np.testing.assert_allclose(together.eval_metric[1], alone.eval_metric)
  assert together.eval_steps == alone.eval_steps == [10, 20]


def test_train_batched_rejects_mismatched_seeds_and_rates(digits):
  with pytest.raises(ValueError, match='of one length'):
    batched.train_batched(tasks.get(_TASK), [0, 1], [1e-3], dataset=digits)


def test_collect_records_every_run_with_its_own_spacing(recorded):
  assert sorted(p.name for p in trajectories.list_runs(recorded)) == sorted(
      s.run_id for s in _SPECS)
  group = trajectories.load_run(recorded / _GROUP[1].run_id)
  alone = trajectories.load_run(recorded / _ALONE.run_id)
  assert group.meta['snapshot_steps'] == [0, 10, 20, 30]
  assert alone.meta['snapshot_steps'] == [0, 15, 30]
  assert group.meta['vmapped_runs'] == 3 and alone.meta['vmapped_runs'] == 1
  assert group.meta['learning_rate'] == 3e-3 and group.meta['seed'] == 1
  assert group.meta['eval_examples'] == 100 and group.meta['finite']
  assert group.meta['format'] == trajectories.FORMAT == 2


def test_subsampled_leaves_keep_their_indexed_scalars_and_whole_leaf_stats(
    recorded, digits):
  spec = _GROUP[1]
  run = trajectories.load_run(recorded / spec.run_id)
  init = tasks.get(_TASK).model().init(
      jax.random.split(jax.random.key(spec.seed))[0],
      digits.x_train[:1])['params']
  kernel = np.asarray(init['Dense_0']['kernel']).reshape(-1)  # 64 * 64
  index = run.indices['Dense_0/kernel']
  assert run.snapshots['Dense_0/kernel'].shape == (4, 16)
  assert len(set(index.tolist())) == 16
  np.testing.assert_allclose(run.snapshots['Dense_0/kernel'][0],
                             kernel[index], rtol=1e-6)
  np.testing.assert_allclose(run.stats['Dense_0/kernel'][0],
                             [kernel.mean(), kernel.std()], rtol=1e-5)
  assert run.snapshots['Dense_1/bias'].shape == (4, 10)  # kept whole
  leaf = run.meta['leaves']['Dense_0/kernel']
  assert leaf == {'shape': [64, 64], 'label': 'dense', 'kind': 'dense'}


def test_leaf_kinds_name_norm_scales_and_embeddings():
  # pylint: disable=protected-access
  recorder = trajectories._Recorder(seed=0, max_per_leaf=4)
  recorder.add(0, {'Embed_0': {'embedding': np.ones((3, 2))},
                   'LayerNorm_0': {'scale': np.ones(2)}})
  assert {p: v['kind'] for p, v in recorder.leaves.items()} == {
      'Embed_0/embedding': 'embedding', 'LayerNorm_0/scale': 'norm'}
  assert {p: v['label'] for p, v in recorder.leaves.items()} == {
      'Embed_0/embedding': 'dense', 'LayerNorm_0/scale': 'bias'}


def test_collect_resumes_redoing_only_unfinished_runs(recorded, monkeypatch):
  import shutil  # pylint: disable=g-import-not-at-top
  before = _mtimes(recorded)
  # One run of the group lost, one interrupted (a .partial left behind).
  shutil.rmtree(recorded / _GROUP[0].run_id)
  shutil.move(recorded / _GROUP[2].run_id,
              recorded / (_GROUP[2].run_id + '.partial'))
  trained = []
  real = batched.train_batched

  def spy(task, seeds, learning_rates, **kwargs):
    trained.append(list(zip(seeds, learning_rates)))
    return real(task, seeds, learning_rates, **kwargs)

  monkeypatch.setattr(batched, 'train_batched', spy)
  monkeypatch.setattr(tasks, 'train', lambda *a, **k: pytest.fail(
      'a finished run was trained again'))
  trajectories.collect(_SPECS, recorded, snapshot_every=15, progress=False)
  assert trained == [[(0, 1e-3), (2, 1e-2)]]
  after = _mtimes(recorded)
  assert set(after) == set(before)
  for spec in (_GROUP[1], _ALONE):
    assert after[spec.run_id] == before[spec.run_id]
  assert not list(recorded.glob('*.partial'))


def test_a_group_whose_runs_disagree_is_refused(tmp_path):
  bad = [_GROUP[0], dataclasses.replace(_GROUP[1], batch_size=8)]
  with pytest.raises(ValueError, match='must differ only in seed'):
    trajectories.collect(bad, tmp_path, snapshot_every=10, progress=False)


def test_collect_with_a_worker_records_only_its_share(tmp_path, monkeypatch):
  recorded = []
  monkeypatch.setattr(trajectories, 'record_batch',
                      lambda specs, *a, **k: recorded.extend(specs))
  monkeypatch.setattr(trajectories, 'record_run',
                      lambda spec, *a, **k: recorded.append(spec))
  trajectories.collect(_SPECS, tmp_path, 10, progress=False, worker=(1, 2))
  assert recorded == [_ALONE]
  recorded.clear()
  trajectories.collect(_SPECS, tmp_path, 10, progress=False, worker=(0, 2))
  assert recorded == _GROUP


def test_format_1_runs_still_load(tmp_path):
  run = tmp_path / 'old'
  run.mkdir()
  np.savez(run / 'snapshots.npz', w=np.ones((3, 2), np.float32))
  (run / 'meta.json').write_text(json.dumps(
      {'format': 1, 'task': 't', 'leaves': {'w': {'shape': [2],
                                                  'label': 'bias'}}}))
  t = trajectories.load_run(run)
  assert list(t.snapshots) == ['w'] and t.stats == {}
  np.testing.assert_array_equal(t.indices['w'], [0, 1])


def test_cli_collect_accepts_the_corpus_and_a_worker(tmp_path):
  args = cli.build_parser().parse_args(
      ['collect', '--zoo', 'corpus', '--out', str(tmp_path), '--worker',
       '1/2'])
  assert (args.zoo, args.worker, args.max_per_leaf) == ('corpus', (1, 2),
                                                        2048)


def test_cli_collect_rejects_a_worker_outside_0_to_n(tmp_path, capsys):
  with pytest.raises(SystemExit):
    cli.main(['collect', '--out', str(tmp_path), '--worker', '2/2'])
  assert 'must be K/N with 0 <= K < N' in capsys.readouterr().err
