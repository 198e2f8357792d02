"""NiNo's FM-16 task (``nino-fm16``) and its benchmark, on generated data.

Checks the model against NiNo's reference (``utils/vision.py``: conv 1->16
stride 2 no padding, 16->32 and 32->32 stride 1 'same', ReLU, global
average pool, Dense 10; 14,378 params), the fast conv against
``flax.linen.Conv``, the input normalisation, the 55,000-image training
subset and the benchmark's batches, loop and table. Nothing here reads the
real datasets: a tiny Fashion-MNIST is written to a temporary directory.
"""

import gzip
import importlib.util
import json
import math
import pathlib
import struct

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from optax_nowcast.lab import data as data_lib
from optax_nowcast.lab import tasks

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _bench():
  spec = importlib.util.spec_from_file_location(
      'nino_fm16_bench', ROOT / 'benchmarks' / 'nino_fm16.py')
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def _write_idx_gz(file: pathlib.Path, array: np.ndarray) -> None:
  header = struct.pack('>BBBB', 0, 0, 0x08, array.ndim)
  header += struct.pack(f'>{array.ndim}I', *array.shape)
  file.parent.mkdir(parents=True, exist_ok=True)
  file.write_bytes(gzip.compress(
      header + np.ascontiguousarray(array, np.uint8).tobytes()))


def _fake_fashion_mnist(root: pathlib.Path, n_train: int = 24,
                        n_test: int = 10):
  """A tiny Fashion-MNIST in the publishers' layout; returns the arrays."""
  rng = np.random.RandomState(0)
  arrays = {}
  for prefix, n in (('train', n_train), ('t10k', n_test)):
    x = rng.randint(0, 256, size=(n, 28, 28)).astype(np.uint8)
    y = (np.arange(n) % 10).astype(np.uint8)
    _write_idx_gz(root / 'fashion_mnist' / f'{prefix}-images-idx3-ubyte.gz',
                  x)
    _write_idx_gz(root / 'fashion_mnist' / f'{prefix}-labels-idx1-ubyte.gz',
                  y)
    arrays[prefix] = (x, y)
  return arrays


def _count(params) -> int:
  return sum(int(np.prod(a.shape)) for a in jax.tree.leaves(params))


# --------------------------------------------------------------- the model


@pytest.mark.slow
def test_fm16_has_nino_params_and_layout():
  model = tasks.NiNoConvNet()
  params = model.init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)))['params']
  assert _count(params) == 14_378
  shapes = jax.tree.map(lambda a: a.shape, params)
  assert shapes == {
      'Conv3x3_0': {'kernel': (3, 3, 1, 16), 'bias': (16,)},
      'Conv3x3_1': {'kernel': (3, 3, 16, 32), 'bias': (32,)},
      'Conv3x3_2': {'kernel': (3, 3, 32, 32), 'bias': (32,)},
      'Dense_0': {'kernel': (32, 10), 'bias': (10,)},
  }
  # The same tree as an ordinary Flax CNN with nn.Conv.
  conv = nn.Conv(16, (3, 3), 2, 'VALID')
  ref = conv.init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)))['params']
  assert jax.tree.map(lambda a: a.shape, ref) == shapes['Conv3x3_0']
  # FM-32: the same network with (32, 64, 64) channels.
  fm32 = tasks.NiNoConvNet((32, 64, 64)).init(
      jax.random.key(0), jnp.zeros((1, 28, 28, 1)))['params']
  assert _count(fm32) == 56_394  # 320 + 18,496 + 36,928 + 650


def test_fm16_output_shapes():
  model = tasks.NiNoConvNet()
  x = jnp.zeros((3, 28, 28, 1))
  variables = model.init(jax.random.key(0), x)
  logits, state = model.apply(variables, x, capture_intermediates=True)
  inter = state['intermediates']
  assert logits.shape == (3, 10)
  assert inter['Conv3x3_0']['__call__'][0].shape == (3, 13, 13, 16)
  assert inter['Conv3x3_1']['__call__'][0].shape == (3, 13, 13, 32)
  assert inter['Conv3x3_2']['__call__'][0].shape == (3, 13, 13, 32)


def _reference_fm16(params, x, mean=0.1307, std=0.3081):
  """NiNo's Net, written with lax.conv (differentiated by JAX itself)."""
  dn = ('NHWC', 'HWIO', 'NHWC')
  h = (x - mean) / std
  for i, name in enumerate(('Conv3x3_0', 'Conv3x3_1', 'Conv3x3_2')):
    p = params[name]
    h = jax.lax.conv_general_dilated(
        h, p['kernel'], (2, 2) if i == 0 else (1, 1),
        'VALID' if i == 0 else 'SAME', dimension_numbers=dn) + p['bias']
    h = jax.nn.relu(h)
  h = h.mean(axis=(1, 2))
  return h @ params['Dense_0']['kernel'] + params['Dense_0']['bias']


@pytest.mark.slow
def test_fm16_is_nino_net_with_its_normalisation_and_gradients():
  model = tasks.NiNoConvNet()
  x = jax.random.uniform(jax.random.key(1), (4, 28, 28, 1))  # pixels [0, 1]
  y = jnp.arange(4) % 10
  params = model.init(jax.random.key(2), x)['params']
  np.testing.assert_allclose(model.apply({'params': params}, x),
                             _reference_fm16(params, x), rtol=1e-5,
                             atol=1e-5)

  def loss(f):
    return lambda p: optax.softmax_cross_entropy_with_integer_labels(
        f(p), y).mean()

  got = jax.grad(loss(lambda p: model.apply({'params': p}, x)))(params)
  want = jax.grad(loss(lambda p: _reference_fm16(p, x)))(params)
  for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_normalisation_is_nino_mnist_norm_on_unit_pixels():
  assert (tasks.NINO_MNIST_MEAN, tasks.NINO_MNIST_STD) == (0.1307, 0.3081)
  x = jax.random.uniform(jax.random.key(3), (2, 28, 28, 1))
  params = tasks.NiNoConvNet().init(jax.random.key(0), x)['params']
  plain = tasks.NiNoConvNet(mean=0.0, std=1.0)
  np.testing.assert_allclose(
      tasks.NiNoConvNet().apply({'params': params}, x),
      plain.apply({'params': params}, (x - 0.1307) / 0.3081),
      rtol=1e-6, atol=1e-6)


def test_fm16_starts_from_pytorch_default_init():
  params = tasks.NiNoConvNet().init(
      jax.random.key(0), jnp.zeros((1, 28, 28, 1)))['params']
  fan_in = {'Conv3x3_0': 9, 'Conv3x3_1': 144, 'Conv3x3_2': 288,
            'Dense_0': 32}
  for layer, n in fan_in.items():
    bound = 1 / math.sqrt(n)
    for name in ('kernel', 'bias'):
      a = np.asarray(params[layer][name])
      assert np.all(np.abs(a) <= bound), (layer, name)
    kernel = np.asarray(params[layer]['kernel'])
    if kernel.size > 1000:  # U(-b, b) has std b / sqrt(3)
      assert abs(kernel.std() - bound / math.sqrt(3)) < 0.1 * bound


@pytest.mark.parametrize('impl', ['xla', 'patches'])
@pytest.mark.parametrize('shape, features, strides, padding', [
    ((3, 28, 28, 1), 16, 2, 'VALID'),   # NiNo's first conv: 28 -> 13
    ((3, 13, 13, 16), 32, 1, 'SAME'),   # its second and third
    pytest.param((2, 28, 28, 3), 5, 2, 'SAME',  # the stride-2 ConvNet's
                 marks=pytest.mark.slow),
    pytest.param((2, 9, 9, 4), 6, 1, 'VALID', marks=pytest.mark.slow),
])
def test_conv3x3_equals_flax_conv(impl, shape, features, strides, padding):
  x = jax.random.normal(jax.random.key(4), shape)
  ours = tasks.Conv3x3(features, strides, padding, impl=impl)
  ref = nn.Conv(features, (3, 3), strides, padding)
  params = ref.init(jax.random.key(5), x)
  params = jax.tree.map(lambda a: a + 0.05, params)  # a nonzero bias
  assert (jax.tree.map(jnp.shape, ours.init(jax.random.key(5), x))
          == jax.tree.map(jnp.shape, params))
  np.testing.assert_allclose(ours.apply(params, x), ref.apply(params, x),
                             rtol=1e-5, atol=1e-5)
  f = lambda m: lambda p, x: jnp.sum(jnp.sin(m.apply(p, x)))
  got = jax.grad(f(ours), (0, 1))(params, x)
  want = jax.grad(f(ref), (0, 1))(params, x)
  for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    # Sums of up to 13 * 13 * 3 products of size ~30: float32 rounding.
    np.testing.assert_allclose(a, b, rtol=1e-5,
                               atol=1e-5 * float(jnp.abs(b).max()))


def test_conv3x3_rejects_bad_padding_and_impl():
  x = jnp.zeros((1, 5, 5, 1))
  with pytest.raises(ValueError, match="padding must be 'SAME' or 'VALID'"):
    tasks.Conv3x3(2, padding='FULL').init(jax.random.key(0), x)
  with pytest.raises(ValueError, match="impl must be 'patches' or 'xla'"):
    tasks.Conv3x3(2, impl='cudnn').init(jax.random.key(0), x)


# ------------------------------------------------------- the data and task


def test_nino_subset_is_the_first_eleven_twelfths_in_file_order(tmp_path):
  assert data_lib.nino_train_examples(60_000) == 55_000
  written = _fake_fashion_mnist(tmp_path, n_train=24, n_test=10)
  ds = data_lib.load('fashion_mnist_nino', tmp_path)
  assert ds.name == 'fashion_mnist_nino' and ds.num_classes == 10
  assert ds.x_train.shape == (22, 28, 28, 1)  # 24 - 24 // 12
  x, y = written['train']
  np.testing.assert_array_equal(ds.y_train, y[:22])
  # Pixels scaled to [0, 1] first (NiNo's ToTensor), then the model
  # normalises.
  np.testing.assert_allclose(ds.x_train[..., 0],
                             x[:22].astype(np.float32) / 255.0, rtol=1e-6)
  tx, ty = written['t10k']
  assert ds.x_test.shape == (10, 28, 28, 1)
  np.testing.assert_array_equal(ds.y_test, ty)
  assert 'fashion_mnist_nino' in data_lib.DATASETS


def test_nino_fm16_task_is_nino_protocol():
  task = tasks.get('nino-fm16')
  assert task.dataset == 'fashion_mnist_nino'
  assert isinstance(task.model(), tasks.NiNoConvNet)
  assert tuple(task.model().channels) == (16, 32, 32)
  assert (task.optimizer, task.learning_rate, task.batch_size,
          task.steps, task.decay) == ('adam', 6e-3, 128, 10_000, 'constant')
  assert task.metric == 'test_accuracy' and task.record_every == 200


# ---------------------------------------------------------- the benchmark


def test_batches_are_torch_like_epochs_with_a_partial_last_batch():
  bench = _bench()
  idx, w = bench.batch_plan(n=300, batch=128, steps=7, seed=1000)
  assert idx.shape == w.shape == (7, 128)
  # Each epoch is 3 batches (128, 128, 44) covering all 300 images once.
  for epoch in range(2):
    rows = idx[3 * epoch:3 * epoch + 3][w[3 * epoch:3 * epoch + 3] > 0]
    assert sorted(rows.tolist()) == list(range(300))
  assert w[2].sum() == 44 and w[0].sum() == 128 and w[6].sum() == 128
  np.testing.assert_array_equal(
      idx[:3][w[:3] > 0], np.random.RandomState(1000).permutation(300))
  np.testing.assert_array_equal(
      idx[3:6][w[3:6] > 0], np.random.RandomState(1001).permutation(300))
  again, _ = bench.batch_plan(n=300, batch=128, steps=7, seed=1000)
  np.testing.assert_array_equal(idx, again)


@pytest.mark.slow
def test_benchmark_runs_resumes_skips_bad_methods_and_tables(tmp_path,
                                                             capsys):
  bench = _bench()
  _fake_fashion_mnist(tmp_path / 'data', n_train=24, n_test=10)
  out = tmp_path / 'out'
  argv = ['--methods', 'adam,no-such-forecaster', '--seeds', '1',
          '--steps', '100', '--data', str(tmp_path / 'data'), '--out',
          str(out), '--eval-batch', '5', '--no-early-stop']
  assert bench.main(argv) == 1  # the unknown method is reported
  log = capsys.readouterr().out
  assert "SKIPPING method 'no-such-forecaster'" in log
  run = json.loads((out / 'runs' / 'adam-s1.json').read_text())
  assert run['stopped_at'] == 100 and run['config']['train_images'] == 22
  assert 100 in run['eval_steps'] and run['coarse_steps'] == [100]
  assert all(0.0 <= a <= 1.0 for a in run['eval_accuracy'])
  assert run['chunk_jumps'] == [0]
  table = (out / 'table.md').read_text()
  assert '| adam (1 seeds) |' in table and 'no-such-forecaster' in table
  # Resumed: the matching run is not trained again.
  bench.main(argv)
  assert 'done already (adam-s1.json)' in capsys.readouterr().out


def test_table_medians_and_speed_ups_count_misses_as_beyond_budget(tmp_path):
  bench = _bench()
  runs = tmp_path / 'runs'
  runs.mkdir()
  reach = {'adam': [8000, 9000, None], 'wnn': [4000, 4500, 5000],
           'slow': [None, None, 9000]}
  for method, steps in reach.items():
    for seed, s in zip((1000, 2000, 3000), steps):
      cfg = dict(protocol_version=bench.PROTOCOL_VERSION, steps=10_000)
      (runs / f'{method}-s{seed}.json').write_text(json.dumps(dict(
          config=cfg, method=method, seed=seed, steps_to_target=s,
          command='python benchmarks/nino_fm16.py', seconds_per_step=0.1,
          seconds_per_eval=1.0, evaluations=10, max_window_excess=0.002)))

  class Args:
    steps, margin = 10_000, 0.015

  bench.write_table(tmp_path, runs, Args, ['adam', 'wnn', 'slow'], {})
  table = (tmp_path / 'table.md').read_text()
  assert '| adam (3 seeds) | 8,000 | 9,000 | >10,000 | 9,000 | 1.00x |' in (
      table)
  assert '| wnn (3 seeds) | 4,000 | 4,500 | 5,000 | 4,500 | 2.00x |' in table
  assert '| slow (3 seeds) | >10,000 | >10,000 | 9,000 | >10,000 | <0.90x |' \
      in table
  assert 'python benchmarks/nino_fm16.py' in table
