"""The lab's data loaders reject bad arguments with a message naming them."""

import numpy as np
import pytest

from optax_nowcast.lab import data

NAN = float('nan')

# ----------------------------------------------------------------------------
# Data.

CORPUS = data.CharCorpus(name='tiny', text='ab', vocab='ab',
                         train=np.array([0], np.int32),
                         valid=np.array([1], np.int32))
X, Y = np.zeros((4, 2)), np.arange(4)

DATA_CASES = [
    (lambda: data.batches(X, Y, True, seed=0), 'batch_size must be a positive int, got True'),
    (lambda: data.batches(X, Y, 2.5, seed=0), 'batch_size must be a positive int, got 2.5'),
    (lambda: data.batches(X, Y, '2', seed=0), "batch_size must be a positive int, got '2'"),
    (lambda: data.batches(X, Y, 0, seed=0), 'batch_size must be a positive int, got 0'),
    (lambda: data.batches(X, Y, 2, seed=-1), 'seed must be a non-negative int, got -1'),
    (lambda: data.batches(X, Y, 2, seed=1.5), 'seed must be a non-negative int, got 1.5'),
    (lambda: data.batches(X, Y, 2, seed=2**32), r'seed must be an int in \[0, 2\*\*32\), got 4294967296'),
    (lambda: data.batches(X, Y, 2, seed=0, epochs=-1), 'epochs must be a non-negative int, got -1'),
    (lambda: data.batches(X, Y, 2, seed=0, epochs=1.5), 'epochs must be a non-negative int, got 1.5'),
    (lambda: data.batches(X, Y, 2, seed=0, epochs=True), 'epochs must be a non-negative int, got True'),
    (lambda: data.batches(3.0, Y, 2, seed=0), r'x must be an array with one row per example, got shape \(\)'),
    (lambda: data.batches(X, 1, 2, seed=0), r'y must be an array with one row per example, got shape \(\)'),
    (lambda: data.batches(X[:0], Y[:0], 1, seed=0), 'x and y are empty'),
    (lambda: data.load_digits(test_fraction='0.2'), r"test_fraction must be a number in \(0, 1\), got '0.2'"),
    (lambda: data.load_digits(test_fraction=NAN), r'test_fraction must be a number in \(0, 1\), got nan'),
    (lambda: data.load_digits(test_fraction=True), r'test_fraction must be a number in \(0, 1\), got True'),
    (lambda: data.load_digits(seed=-1), 'seed must be a non-negative int, got -1'),
    (lambda: data.load_digits(seed=True), 'seed must be a non-negative int, got True'),
    (lambda: data.data_dir(5), 'path must be a directory path .*got 5'),
    (lambda: data.load('mnist', path=''), "path must be a directory path .*got ''"),
    (lambda: data.load_shakespeare(['data']), r"path must be a directory path .*got \['data'\]"),
    (lambda: data.parse_idx('abcd'), 'data must be bytes .*got str'),
    (lambda: data.verify_file(__file__, 'abc'), "expected must be a hex SHA256 digest of 64 characters, got 'abc'"),
    (lambda: CORPUS.decode([0.0, 1.0]), 'ids must be integer token ids, got an array of dtype float64'),
    (lambda: CORPUS.decode(['a']), 'ids must be integer token ids'),
    (lambda: CORPUS.decode([2]), r'token ids must lie in \[0, 2\), got range \[2, 2\]'),
]




@pytest.mark.parametrize('call,match', DATA_CASES)
def test_bad_data_arguments_raise_value_errors_naming_them(call, match):
  with pytest.raises(ValueError, match=match):
    call()


def test_valid_edge_data_inputs_are_still_accepted():
  assert len(list(data.batches(X, Y, np.int64(2), seed=np.int64(3),
                               epochs=1))) == 2
  assert CORPUS.decode(np.array([1, 0], np.int64)) == 'ba'
  assert CORPUS.decode([]) == ''
