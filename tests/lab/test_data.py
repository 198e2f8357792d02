"""Specifications of optax_nowcast.lab.data: offline dataset loaders."""

from __future__ import annotations

import gzip
import os
import pathlib
import struct

import numpy as np
import pytest

from optax_nowcast.lab import data

# --------------------------------------------------------------------------
# Helpers: small IDX files written by the tests themselves.


def _idx_bytes(array: np.ndarray) -> bytes:
  """Big-endian IDX encoding of a uint8 array."""
  header = struct.pack('>BBBB', 0, 0, 0x08, array.ndim)
  header += struct.pack(f'>{array.ndim}I', *array.shape)
  return header + np.ascontiguousarray(array, np.uint8).tobytes()


def _write_gz(file: pathlib.Path, payload: bytes) -> pathlib.Path:
  file.parent.mkdir(parents=True, exist_ok=True)
  file.write_bytes(gzip.compress(payload))
  return file


def _fake_mnist(root: pathlib.Path, name: str = 'mnist', n_train=12, n_test=5):
  """Writes a tiny MNIST-layout dataset; returns the arrays written."""
  rng = np.random.RandomState(0)
  arrays = {}
  for prefix, n in (('train', n_train), ('t10k', n_test)):
    x = rng.randint(0, 256, size=(n, 28, 28)).astype(np.uint8)
    y = (np.arange(n) % 10).astype(np.uint8)
    _write_gz(root / name / f'{prefix}-images-idx3-ubyte.gz', _idx_bytes(x))
    _write_gz(root / name / f'{prefix}-labels-idx1-ubyte.gz', _idx_bytes(y))
    arrays[prefix] = (x, y)
  return arrays


# --------------------------------------------------------------------------
# IDX parsing.


def test_read_idx_gz_round_trips_the_array_it_was_written_from(tmp_path):
  array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
  file = _write_gz(tmp_path / 'a.gz', _idx_bytes(array))
  got = data.read_idx_gz(file)
  assert got.dtype == np.uint8
  np.testing.assert_array_equal(got, array)


def test_parse_idx_rejects_a_bad_magic():
  payload = b'\x01' + _idx_bytes(np.zeros(3, np.uint8))[1:]
  with pytest.raises(ValueError, match='magic'):
    data.parse_idx(payload, 'thing.idx')


def test_parse_idx_rejects_a_non_uint8_type_byte():
  payload = bytearray(_idx_bytes(np.zeros(3, np.uint8)))
  payload[2] = 0x0D  # float32, not used by MNIST
  with pytest.raises(ValueError, match='type byte 0x0d'):
    data.parse_idx(bytes(payload))


def test_parse_idx_rejects_trailing_bytes():
  with pytest.raises(ValueError, match='trailing'):
    data.parse_idx(_idx_bytes(np.zeros(3, np.uint8)) + b'\x00')


def test_truncated_idx_data_raises_value_error_naming_the_file(tmp_path):
  payload = _idx_bytes(np.zeros((4, 28, 28), np.uint8))[:-10]
  file = _write_gz(tmp_path / 'short-idx3-ubyte.gz', payload)
  with pytest.raises(ValueError, match='truncated') as e:
    data.read_idx_gz(file)
  assert str(file) in str(e.value)


def test_truncated_gzip_stream_raises_value_error_naming_the_file(tmp_path):
  compressed = gzip.compress(_idx_bytes(np.arange(200, dtype=np.uint8)))
  file = tmp_path / 'cut.gz'
  file.write_bytes(compressed[: len(compressed) // 2])
  with pytest.raises(ValueError) as e:
    data.read_idx_gz(file)
  assert str(file) in str(e.value)


def test_load_mnist_reads_the_idx_layout_as_float_images_and_int_labels(
    tmp_path,
):
  written = _fake_mnist(tmp_path)
  ds = data.load_mnist(tmp_path)
  assert ds.name == 'mnist' and ds.num_classes == 10
  assert ds.x_train.shape == (12, 28, 28, 1)
  assert ds.x_test.shape == (5, 28, 28, 1)
  assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int32
  np.testing.assert_allclose(
      ds.x_train[..., 0], written['train'][0].astype(np.float32) / 255.0
  )
  np.testing.assert_array_equal(ds.y_test, written['t10k'][1])


def test_load_fashion_mnist_reads_its_own_subdirectory(tmp_path):
  _fake_mnist(tmp_path, name='fashion_mnist', n_train=3, n_test=2)
  ds = data.load('fashion_mnist', tmp_path)
  assert ds.name == 'fashion_mnist'
  assert ds.x_train.shape == (3, 28, 28, 1) and ds.y_test.shape == (2,)


def test_mismatched_image_and_label_counts_raise_value_error(tmp_path):
  _fake_mnist(tmp_path)
  labels = tmp_path / 'mnist' / 't10k-labels-idx1-ubyte.gz'
  _write_gz(labels, _idx_bytes(np.zeros(4, np.uint8)))
  with pytest.raises(ValueError, match='t10k-labels'):
    data.load_mnist(tmp_path)


def test_missing_file_raises_file_not_found_naming_the_expected_path(tmp_path):
  with pytest.raises(FileNotFoundError) as e:
    data.load_mnist(tmp_path)
  message = str(e.value)
  assert str(tmp_path / 'mnist' / 'train-images-idx3-ubyte.gz') in message
  assert 'MNIST' in message
  assert data.DATA_DIR_ENV in message


def test_missing_shakespeare_names_input_txt(tmp_path):
  with pytest.raises(FileNotFoundError, match='tinyshakespeare/input.txt'):
    data.load_shakespeare(tmp_path)


def test_verify_rejects_files_whose_checksum_differs(tmp_path):
  _fake_mnist(tmp_path)
  with pytest.raises(ValueError, match='checksum mismatch'):
    data.load_mnist(tmp_path, verify=True)


def test_checksum_table_covers_every_file_the_loaders_read():
  for name in ('mnist', 'fashion_mnist'):
    for images, labels in data._SPLIT_FILES.values():
      assert f'{name}/{images}' in data.SHA256
      assert f'{name}/{labels}' in data.SHA256
  assert 'tinyshakespeare/input.txt' in data.SHA256
  assert all(len(h) == 64 for h in data.SHA256.values())


# --------------------------------------------------------------------------
# Data directory resolution.


def test_data_dir_argument_wins_over_the_env_var(monkeypatch, tmp_path):
  monkeypatch.setenv(data.DATA_DIR_ENV, str(tmp_path / 'env'))
  assert data.data_dir(tmp_path / 'arg') == tmp_path / 'arg'


def test_data_dir_uses_the_env_var_without_an_argument(monkeypatch, tmp_path):
  monkeypatch.setenv(data.DATA_DIR_ENV, str(tmp_path / 'env'))
  assert data.data_dir() == tmp_path / 'env'


def test_data_dir_defaults_to_the_xdg_cache(monkeypatch, tmp_path):
  monkeypatch.delenv(data.DATA_DIR_ENV, raising=False)
  monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path))
  assert data.data_dir() == tmp_path / 'optax_nowcast' / 'data'


def test_data_dir_defaults_to_home_cache_without_xdg(monkeypatch, tmp_path):
  monkeypatch.delenv(data.DATA_DIR_ENV, raising=False)
  monkeypatch.delenv('XDG_CACHE_HOME', raising=False)
  monkeypatch.setenv('HOME', str(tmp_path))
  assert data.data_dir() == tmp_path / '.cache' / 'optax_nowcast' / 'data'


def test_loaders_read_from_the_env_var_directory(monkeypatch, tmp_path):
  _fake_mnist(tmp_path, n_train=2, n_test=1)
  monkeypatch.setenv(data.DATA_DIR_ENV, str(tmp_path))
  assert data.load_mnist().x_train.shape == (2, 28, 28, 1)


def test_load_rejects_unknown_names_listing_the_valid_ones():
  with pytest.raises(ValueError) as e:
    data.load('cifar10')
  for name in ('digits', 'mnist', 'fashion_mnist', 'shakespeare'):
    assert name in str(e.value)


# --------------------------------------------------------------------------
# Character corpus (on a small text written here).


def test_shakespeare_splits_90_10_and_round_trips_text(tmp_path):
  text = 'To be, or not to be: that is the question.\n' * 10
  (tmp_path / 'tinyshakespeare').mkdir()
  (tmp_path / 'tinyshakespeare' / 'input.txt').write_text(text)
  corpus = data.load_shakespeare(tmp_path)
  assert corpus.vocab == ''.join(sorted(set(text)))
  assert len(corpus.train) == int(0.9 * len(text))
  assert len(corpus.train) + len(corpus.valid) == len(text)
  assert corpus.train.dtype == np.int32 and corpus.valid.dtype == np.int32
  assert corpus.decode(np.concatenate([corpus.train, corpus.valid])) == text
  np.testing.assert_array_equal(corpus.encode('To be'), corpus.train[:5])


def test_encode_rejects_characters_outside_the_vocabulary(tmp_path):
  (tmp_path / 'tinyshakespeare').mkdir()
  (tmp_path / 'tinyshakespeare' / 'input.txt').write_text('abc')
  with pytest.raises(ValueError, match='vocabulary'):
    data.load_shakespeare(tmp_path).encode('abz')


# --------------------------------------------------------------------------
# scikit-learn digits (embedded in the package, always available).


@pytest.fixture(scope='module')
def digits():
  return data.load_digits()


def test_digits_are_float_images_in_unit_range(digits):
  assert digits.x_train.shape[1:] == (8, 8, 1)
  assert digits.x_test.shape[1:] == (8, 8, 1)
  assert digits.x_train.dtype == np.float32
  assert digits.y_train.dtype == np.int32
  for x in (digits.x_train, digits.x_test):
    assert x.min() >= 0.0 and x.max() <= 1.0
  assert digits.x_train.max() == 1.0  # pixel 16 maps to exactly 1


def test_digits_split_80_20_stratified(digits):
  assert len(digits.x_train) + len(digits.x_test) == 1797
  assert len(digits.y_train) == len(digits.x_train)
  assert abs(len(digits.x_test) - 0.2 * 1797) < 10
  counts = np.bincount(digits.y_test, minlength=10)
  assert counts.min() >= 34 and counts.max() <= 38  # ~20% of ~180 per class
  assert digits.num_classes == 10
  assert set(np.unique(digits.y_train)) == set(range(10))


def test_digits_load_is_deterministic(digits):
  again = data.load('digits')
  np.testing.assert_array_equal(again.x_train, digits.x_train)
  np.testing.assert_array_equal(again.y_test, digits.y_test)


def test_digits_train_and_test_do_not_overlap(digits):
  train = {row.tobytes() + bytes([y]) for row, y in
           zip(digits.x_train, digits.y_train)}
  overlap = sum(row.tobytes() + bytes([y]) in train for row, y in
                zip(digits.x_test, digits.y_test))
  assert overlap == 0


# --------------------------------------------------------------------------
# The generated teacher dataset (the demo's; nothing to download).


def _teacher_logits(x, seed=0):
  """The teacher's logits, recomputed from load_teacher's description."""
  rng = np.random.default_rng(seed)
  w1 = rng.standard_normal((64, 32)) * np.sqrt(12 / 64)
  w2 = rng.standard_normal((32, 10)) / np.sqrt(32)
  return np.tanh((x.reshape(len(x), 64) - 0.5) @ w1) @ w2


def test_teacher_is_float_images_in_unit_range_with_int_labels():
  d = data.load_teacher(train=300, test=200)
  assert (d.name, d.num_classes) == ('teacher', 10)
  assert d.x_train.shape == (300, 8, 8, 1) and d.x_test.shape == (200, 8, 8, 1)
  assert d.x_train.dtype == d.x_test.dtype == np.float32
  assert d.y_train.dtype == d.y_test.dtype == np.int32
  for x in (d.x_train, d.x_test):
    assert 0.0 <= x.min() and x.max() <= 1.0


def test_teacher_labels_are_the_teachers_argmax_with_a_margin():
  d = data.load_teacher(train=500, test=500)
  for x, y in ((d.x_train, d.y_train), (d.x_test, d.y_test)):
    logits = _teacher_logits(x)
    np.testing.assert_array_equal(y, logits.argmax(axis=1))
  # The kept half is the farther from the boundaries: every kept margin is
  # above the median margin of fresh draws from the same teacher.
  fresh = np.random.default_rng(1).random((5000, 64)).astype(np.float32)
  top2 = np.sort(_teacher_logits(fresh), axis=1)[:, -2:]
  kept = np.sort(_teacher_logits(d.x_test), axis=1)[:, -2:]
  assert (kept[:, 1] - kept[:, 0]).min() > 0.8 * np.median(
      top2[:, 1] - top2[:, 0])


def test_teacher_label_noise_touches_the_training_labels_only():
  clean = data.load_teacher(train=2000, test=500)
  noisy = data.load_teacher(train=2000, test=500, label_noise=0.5)
  np.testing.assert_array_equal(noisy.x_train, clean.x_train)
  np.testing.assert_array_equal(noisy.y_test, clean.y_test)
  changed = np.mean(noisy.y_train != clean.y_train)
  assert 0.35 < changed < 0.55  # half made random, 1 in 10 keeps its class


def test_teacher_is_deterministic_and_seeded():
  a, b = data.load_teacher(train=50, test=50), data.load_teacher(train=50,
                                                                 test=50)
  np.testing.assert_array_equal(a.x_train, b.x_train)
  np.testing.assert_array_equal(a.y_test, b.y_test)
  c = data.load_teacher(train=50, test=50, seed=1)
  assert not np.array_equal(a.x_train, c.x_train)


@pytest.mark.parametrize('kwargs,message', [
    (dict(train=0), 'train must be a positive int, got 0'),
    (dict(test=2.5), 'test must be a positive int, got 2.5'),
    (dict(train=True), 'train must be a positive int, got True'),
    (dict(label_noise=1.0), r'label_noise must be in \[0, 1\), got 1.0'),
    (dict(label_noise=-0.1), r'label_noise must be in \[0, 1\)'),
    (dict(seed=-1), 'seed'),
])
def test_teacher_rejects_bad_arguments(kwargs, message):
  with pytest.raises(ValueError, match=message):
    data.load_teacher(**kwargs)


# --------------------------------------------------------------------------
# Minibatching.


def test_batches_are_deterministic_given_seed():
  x, y = np.arange(20).reshape(10, 2), np.arange(10)
  a = list(data.batches(x, y, 3, seed=7, epochs=2))
  b = list(data.batches(x, y, 3, seed=7, epochs=2))
  c = list(data.batches(x, y, 3, seed=8, epochs=2))
  assert all(np.array_equal(p[1], q[1]) for p, q in zip(a, b))
  assert not all(np.array_equal(p[1], q[1]) for p, q in zip(a, c))


def test_batches_drop_the_last_partial_batch():
  x, y = np.arange(10), np.arange(10)
  got = list(data.batches(x, y, 3, seed=0, epochs=1))
  assert len(got) == 3
  assert all(len(xb) == 3 and len(yb) == 3 for xb, yb in got)
  seen = np.concatenate([yb for _, yb in got])
  assert len(set(seen.tolist())) == 9  # no repeats within an epoch


def test_batches_keep_x_and_y_aligned_and_reshuffle_each_epoch():
  x, y = np.arange(8) * 10, np.arange(8)
  got = list(data.batches(x, y, 4, seed=0, epochs=2))
  for xb, yb in got:
    np.testing.assert_array_equal(xb, yb * 10)
  first = np.concatenate([yb for _, yb in got[:2]])
  second = np.concatenate([yb for _, yb in got[2:]])
  assert sorted(first) == sorted(second) == list(range(8))
  assert not np.array_equal(first, second)


def test_batches_without_epochs_repeat_forever():
  x, y = np.arange(4), np.arange(4)
  it = data.batches(x, y, 2, seed=0)
  assert len([next(it) for _ in range(11)]) == 11


def test_batches_validate_arguments_at_call_time():
  with pytest.raises(ValueError, match='batch_size'):
    data.batches(np.arange(4), np.arange(4), 5, seed=0)
  with pytest.raises(ValueError, match='lengths'):
    data.batches(np.arange(4), np.arange(3), 2, seed=0)


# --------------------------------------------------------------------------
# Real data: run where a ../shared/data-style directory is available.


def _real_data_dir() -> pathlib.Path | None:
  candidates = []
  if os.environ.get(data.DATA_DIR_ENV):
    candidates.append(pathlib.Path(os.environ[data.DATA_DIR_ENV]))
  beside_repo = pathlib.Path(__file__).resolve().parents[3] / 'shared' / 'data'
  candidates.append(beside_repo)
  for root in candidates:
    if (root / 'mnist').is_dir():
      return root
  return None


REAL_DATA = _real_data_dir()
requires_real_data = pytest.mark.skipif(
    REAL_DATA is None,
    reason=(
        f'real datasets not found: set ${data.DATA_DIR_ENV} or place them at'
        ' ../shared/data beside the repository'
    ),
)


@pytest.fixture(scope='module')
def mnist():
  return data.load_mnist(REAL_DATA)


@pytest.fixture(scope='module')
def fashion_mnist():
  return data.load_fashion_mnist(REAL_DATA)


@requires_real_data
def test_real_mnist_has_60000_train_and_10000_test_images(mnist):
  assert mnist.x_train.shape == (60000, 28, 28, 1)
  assert mnist.x_test.shape == (10000, 28, 28, 1)
  assert mnist.y_train.shape == (60000,) and mnist.y_test.shape == (10000,)
  assert mnist.x_train.dtype == np.float32 and mnist.y_train.dtype == np.int32
  assert 0.0 <= mnist.x_test.min() and mnist.x_test.max() == 1.0


@requires_real_data
def test_real_mnist_labels_cover_0_to_9(mnist):
  for y in (mnist.y_train, mnist.y_test):
    assert set(np.unique(y).tolist()) == set(range(10))


@requires_real_data
def test_real_fashion_mnist_shapes_and_balanced_labels(fashion_mnist):
  assert fashion_mnist.x_train.shape == (60000, 28, 28, 1)
  assert fashion_mnist.x_test.shape == (10000, 28, 28, 1)
  assert fashion_mnist.x_train.dtype == np.float32
  np.testing.assert_array_equal(np.bincount(fashion_mnist.y_train), [6000] * 10)
  np.testing.assert_array_equal(np.bincount(fashion_mnist.y_test), [1000] * 10)


@requires_real_data
def test_real_shakespeare_has_65_chars_and_the_90_10_split():
  corpus = data.load('shakespeare', REAL_DATA, verify=True)
  assert corpus.vocab_size == 65
  assert len(corpus.text) == 1115394
  assert len(corpus.train) == 1003854 and len(corpus.valid) == 111540
  assert corpus.decode(corpus.train[:9]) == 'First Cit'


@requires_real_data
def test_real_files_match_the_published_checksums():
  for relpath, expected in data.SHA256.items():
    data.verify_file(REAL_DATA / relpath, expected)


@requires_real_data
def test_real_checksum_table_matches_the_shipped_sha256sums():
  sums = REAL_DATA / 'SHA256SUMS'
  if not sums.is_file():
    pytest.skip(f'{sums} not present')
  listed = dict(
      reversed(line.split()) for line in sums.read_text().splitlines() if line
  )
  assert {k: v for k, v in listed.items() if k in data.SHA256} == data.SHA256


# --------------------------------------------------------------------------
# The Python standard library's source as a text corpus.


def _fake_stdlib(root: pathlib.Path) -> pathlib.Path:
  root.mkdir()
  (root / 'b.py').write_text('x = 1\n')
  (root / 'a.py').write_text('def f():\n\treturn "caf\u00e9"\n')
  (root / 'notes.txt').write_text('not python\n')
  (root / 'sub').mkdir()
  (root / 'sub' / 'c.py').write_text('in a subdirectory\n')
  return root


def test_pystdlib_joins_top_level_py_files_sorted_tabs_expanded_ascii_only(
    tmp_path):
  corpus = data.load_pystdlib(_fake_stdlib(tmp_path / 'lib'))
  assert corpus.text == 'def f():\n    return "caf"\n\n\nx = 1\n\n\n'
  assert corpus.vocab == data.PYSTDLIB_VOCAB and corpus.vocab_size == 96
  assert len(corpus.train) == int(0.9 * len(corpus.text))
  assert corpus.decode(np.concatenate([corpus.train, corpus.valid])) == (
      corpus.text)


def test_pystdlib_is_cut_after_max_chars(tmp_path):
  corpus = data.load_pystdlib(_fake_stdlib(tmp_path / 'lib'), max_chars=10)
  assert corpus.text == 'def f():\n '


def test_pystdlib_without_py_files_raises_naming_the_directory(tmp_path):
  with pytest.raises(FileNotFoundError, match='no \\*.py files in'):
    data.load_pystdlib(tmp_path)
  with pytest.raises(ValueError, match='max_chars must be a positive int'):
    data.load_pystdlib(tmp_path, max_chars=0)


def test_real_pystdlib_is_deterministic_capped_and_not_shakespeare():
  first, second = data.load('pystdlib'), data.load_pystdlib()
  assert first.text == second.text
  np.testing.assert_array_equal(first.train, second.train)
  assert len(first.text) == data.PYSTDLIB_MAX_CHARS
  assert first.name == 'pystdlib' and first.vocab_size == 96
  assert 'def ' in first.text and 'ROMEO' not in first.text
