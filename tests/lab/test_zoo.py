"""The meta-training corpus (zoo 'corpus'): what it holds and keeps out."""

import collections
import math

import pytest

from optax_nowcast.lab import tasks
from optax_nowcast.lab.bench import runner
from optax_nowcast.lab.meta import trajectories
from optax_nowcast.lab.meta import zoo


@pytest.fixture(scope='module')
def corpus():
  return zoo.runs('corpus')


def _task(spec):
  return spec.make_task()


def test_corpus_has_at_least_300_runs_with_distinct_ids(corpus):
  assert len(corpus) >= 300
  assert len({s.run_id for s in corpus}) == len(corpus)


def test_corpus_is_the_same_on_every_call(corpus):
  assert zoo.runs('corpus') == corpus


def test_corpus_never_records_an_unseen_benchmark_task(corpus):
  names = {s.task for s in corpus}
  assert not names & set(zoo.UNSEEN)
  # Nor the unseen tasks' data and model kind under another name: no CNN on
  # MNIST (mnist-cnn), no text but pystdlib (shakespeare-charlm), no MLP
  # (128, 64) on digits (digits-mlp).
  for spec in corpus:
    task = _task(spec)
    model = task.model()
    assert not (task.dataset == 'mnist'
                and isinstance(model, tasks.ConvNet)), spec
    assert task.dataset != 'shakespeare', spec
    assert not (task.dataset == 'digits' and isinstance(model, tasks.MLP)
                and tuple(model.widths) == (128, 64)), spec


def test_corpus_holds_no_recurrent_network_or_autoencoder(corpus):
  # Every model is one of the lab's feed-forward classifiers or its causal
  # transformer, trained on class labels or next characters.
  allowed = (tasks.MLP, tasks.ConvNet, tasks.CharTransformer)
  for name in {s.task for s in corpus}:
    assert isinstance(tasks.get(name).model(), allowed), name
    for word in ('rnn', 'lstm', 'gru', 'recurrent', 'autoencoder', 'vae'):
      assert word not in name.lower(), name


def test_corpus_has_mlps_cnns_and_transformers_of_several_sizes(corpus):
  shapes = collections.defaultdict(set)
  datasets = collections.defaultdict(set)
  for name in {s.task for s in corpus}:
    task = tasks.get(name)
    model = task.model()
    kind = type(model).__name__
    datasets[kind].add(task.dataset)
    if isinstance(model, tasks.MLP):
      shapes[kind].add(tuple(model.widths))
    elif isinstance(model, tasks.ConvNet):
      shapes[kind].add(tuple(model.channels))
    else:
      shapes[kind].add((model.width, model.depth))
  assert len({w for s in shapes['MLP'] for w in s}) >= 5
  assert len({len(s) for s in shapes['MLP']}) >= 3
  assert len({len(s) for s in shapes['ConvNet']}) >= 3
  assert len(shapes['CharTransformer']) >= 4
  assert datasets['MLP'] == {'digits', 'mnist', 'fashion_mnist'}
  assert datasets['ConvNet'] == {'digits', 'fashion_mnist'}
  assert datasets['CharTransformer'] == {'pystdlib'}


def test_corpus_mixes_adam_adamw_and_sgd_momentum(corpus):
  counts = collections.Counter(s.optimizer for s in corpus)
  assert set(counts) == {'adam', 'adamw', 'sgdm'}
  assert min(counts.values()) >= 0.2 * len(corpus)


@pytest.mark.parametrize('optimizer', ['adam', 'adamw', 'sgdm'])
def test_corpus_learning_rates_span_at_least_10x(corpus, optimizer):
  rates = [s.learning_rate for s in corpus if s.optimizer == optimizer]
  low, high = zoo.CORPUS_LEARNING_RATES[optimizer]
  assert high / low >= 10
  assert all(low * 0.995 <= r <= high * 1.005 for r in rates)
  assert max(rates) / min(rates) >= 10
  # Log-uniform: about as many rates in the lower half (in log) as above.
  middle = math.sqrt(low * high)
  below = sum(r < middle for r in rates)
  assert 0.3 < below / len(rates) < 0.7


def test_corpus_uses_several_batch_sizes_per_dataset(corpus):
  sizes = collections.defaultdict(set)
  for spec in corpus:
    sizes[_task(spec).dataset].add(_task(spec).batch_size)
  assert len({b for s in sizes.values() for b in s}) >= 4
  for dataset, found in sizes.items():
    assert len(found) >= 2, dataset


def test_corpus_snapshots_every_10_to_20_steps_for_at_least_100_snapshots(
    corpus):
  for spec in corpus:
    assert 10 <= spec.snapshot_every <= 20, spec
    # Windows of 5 records 8 snapshots apart, and horizons beyond them.
    assert _task(spec).steps // spec.snapshot_every >= 100, spec


def test_corpus_groups_are_trained_together_and_agree_on_all_but_seed_and_lr(
    corpus):
  units = trajectories.units(corpus)
  assert sum(len(u) for u in units) == len(corpus)
  for unit in units:
    assert 1 <= len(unit) <= zoo.CORPUS_GROUP
    first = unit[0]
    for spec in unit:
      assert spec.group == first.group
      assert (spec.task, spec.optimizer, spec.batch_size, spec.steps,
              spec.snapshot_every) == (first.task, first.optimizer,
                                       first.batch_size, first.steps,
                                       first.snapshot_every)
    assert len({s.seed for s in unit}) == len(unit)


def test_corpus_holdout_tasks_are_recorded_and_cover_each_model_kind(corpus):
  names = {s.task for s in corpus}
  holdout = zoo.HOLDOUT['corpus']
  assert set(holdout) <= names and set(holdout) != names
  kinds = {type(tasks.get(t).model()).__name__ for t in holdout}
  assert kinds == {'MLP', 'ConvNet', 'CharTransformer'}


def test_the_corpus_keeps_disk_modest(corpus):
  # At most max_per_leaf scalars per leaf and snapshot, float32.
  total = 0
  for name in {s.task for s in corpus}:
    import jax  # pylint: disable=g-import-not-at-top
    import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
    task = tasks.get(name)
    shape = ((1, task.context) if task.metric == 'valid_loss'
             else ((1, 8, 8, 1) if task.dataset == 'digits'
                   else (1, 28, 28, 1)))
    dtype = jnp.int32 if task.metric == 'valid_loss' else jnp.float32
    params = jax.eval_shape(lambda: task.model().init(
        jax.random.key(0), jnp.zeros(shape, dtype)))['params']
    runs = [s for s in corpus if s.task == name]
    kept = sum(min(math.prod(x.shape), runs[0].max_per_leaf)
               for x in jax.tree.leaves(params))
    for spec in runs:
      total += 4 * kept * (_task(spec).steps // spec.snapshot_every + 1)
  assert total < 1.0e9


def test_of_the_benchmark_tasks_the_corpus_has_only_fmnist_cnn16():
  assert [t for t in runner.SUITE if runner.seen_in_meta_training(t)] == [
      'fmnist-cnn16']


def test_the_report_says_which_tasks_wnn_saw():
  assert runner.seen_by_wnn('fmnist-cnn16')
  assert not runner.seen_by_wnn('mnist-cnn')


@pytest.mark.parametrize('workers', [1, 2, 3])
def test_shards_partition_the_runs_without_splitting_a_group(corpus,
                                                             workers):
  shards = [trajectories.shard(corpus, k, workers) for k in range(workers)]
  ids = [s.run_id for shard in shards for s in shard]
  assert sorted(ids) == sorted(s.run_id for s in corpus)
  for k, shard in enumerate(shards):
    others = {s.group for j, o in enumerate(shards) if j != k for s in o}
    assert not {s.group for s in shard} & others
  sizes = [len(s) for s in shards]
  assert max(sizes) - min(sizes) <= zoo.CORPUS_GROUP


def test_shards_balance_each_run_family():
  specs = zoo.runs('corpus')
  first, second = (trajectories.shard(specs, k, 2) for k in range(2))
  for dataset in ('digits', 'mnist', 'fashion_mnist', 'pystdlib'):
    a = sum(_task(s).dataset == dataset for s in first)
    b = sum(_task(s).dataset == dataset for s in second)
    assert abs(a - b) <= 2 * zoo.CORPUS_GROUP, dataset


@pytest.mark.parametrize('worker, workers', [(2, 2), (-1, 2), (0, 0)])
def test_shard_rejects_a_worker_outside_0_to_n(worker, workers):
  with pytest.raises(ValueError, match='worker must be in'):
    trajectories.shard(zoo.runs('tiny'), worker, workers)


def test_unknown_zoo_names_the_known_ones():
  with pytest.raises(ValueError, match="'tiny', 'full', 'corpus'"):
    zoo.runs('huge')
