"""Offline dataset loaders: digits, MNIST, Fashion-MNIST, Tiny Shakespeare, and
the Python standard library's source as a character corpus.

Nothing here touches the network. scikit-learn's 8x8 digits ship inside the
package, and the standard library's ``.py`` files come with every Python; the
other datasets are read from a data directory holding the publishers'
original files::

  <data_dir>/
    mnist/            train-images-idx3-ubyte.gz  train-labels-idx1-ubyte.gz
                      t10k-images-idx3-ubyte.gz   t10k-labels-idx1-ubyte.gz
    fashion_mnist/    (the same four file names)
    tinyshakespeare/  input.txt

The directory is the ``path`` argument if given, else the
``$OPTAX_NOWCAST_DATA`` environment variable, else
``~/.cache/optax_nowcast/data`` (under ``$XDG_CACHE_HOME`` when set).

Example::

  ds = load('mnist')
  for x, y in batches(ds.x_train, ds.y_train, 128, seed=0, epochs=1):
    ...
"""

from __future__ import annotations

import dataclasses
import gzip
import numbers
import os
import pathlib
import sysconfig
import zlib
from typing import Iterator, NoReturn, Optional, Union

import numpy as np

from optax_nowcast import _validation
from optax_nowcast._files import sha256_file  # pylint: disable=unused-import

PathLike = Union[str, os.PathLike]

DATA_DIR_ENV = 'OPTAX_NOWCAST_DATA'

DATASETS = ('digits', 'teacher', 'mnist', 'fashion_mnist',
            'fashion_mnist_nino', 'shakespeare', 'pystdlib')

#: The fixed vocabulary of :func:`load_pystdlib`: newline and printable ASCII.
PYSTDLIB_VOCAB = '\n' + ''.join(chr(c) for c in range(32, 127))

#: Characters :func:`load_pystdlib` keeps by default (about 2 MB of text).
PYSTDLIB_MAX_CHARS = 2_000_000

_SPLIT_FILES = {
    'train': ('train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz'),
    'test': ('t10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz'),
}

# Published SHA256 of every data file, keyed by its path in the data directory.
SHA256 = {
    'mnist/train-images-idx3-ubyte.gz': (
        '440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609'
    ),
    'mnist/train-labels-idx1-ubyte.gz': (
        '3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c'
    ),
    'mnist/t10k-images-idx3-ubyte.gz': (
        '8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6'
    ),
    'mnist/t10k-labels-idx1-ubyte.gz': (
        'f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6'
    ),
    'fashion_mnist/train-images-idx3-ubyte.gz': (
        '3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84'
    ),
    'fashion_mnist/train-labels-idx1-ubyte.gz': (
        'a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845'
    ),
    'fashion_mnist/t10k-images-idx3-ubyte.gz': (
        '346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073'
    ),
    'fashion_mnist/t10k-labels-idx1-ubyte.gz': (
        '67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5'
    ),
    'tinyshakespeare/input.txt': (
        '86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed'
    ),
}

# Where each dataset's canonical files come from (named in error messages).
_SOURCES = {
    'mnist': (
        'MNIST, http://yann.lecun.com/exdb/mnist/ (mirror:'
        ' https://ossci-datasets.s3.amazonaws.com/mnist/)'
    ),
    'fashion_mnist': (
        'Fashion-MNIST, https://github.com/zalandoresearch/fashion-mnist'
        ' (data/fashion/)'
    ),
    'tinyshakespeare': (
        'Tiny Shakespeare, https://github.com/karpathy/char-rnn'
        ' (data/tinyshakespeare/input.txt)'
    ),
}

_IDX_DTYPES = {0x08: np.dtype(np.uint8)}


@dataclasses.dataclass(frozen=True)
class Dataset:
  """A classification dataset split into train and test arrays.

  Attributes:
    name: the dataset's name, e.g. ``'mnist'``.
    num_classes: number of label classes; labels are ``0..num_classes - 1``.
    x_train: float32 images in [0, 1], shape ``(N, H, W, 1)``.
    y_train: int32 labels, shape ``(N,)``.
    x_test: float32 images in [0, 1], shape ``(M, H, W, 1)``.
    y_test: int32 labels, shape ``(M,)``.
  """

  name: str
  num_classes: int
  x_train: np.ndarray
  y_train: np.ndarray
  x_test: np.ndarray
  y_test: np.ndarray

  def __repr__(self) -> str:
    return (
        f'Dataset(name={self.name!r}, num_classes={self.num_classes},'
        f' x_train={self.x_train.shape}, x_test={self.x_test.shape})'
    )


@dataclasses.dataclass(frozen=True)
class CharCorpus:
  """A character-level text corpus with its vocabulary and split.

  Attributes:
    name: the corpus name, e.g. ``'shakespeare'``.
    text: the whole text.
    vocab: the sorted distinct characters of ``text``.
    train: int32 token ids of the first 90% of the characters.
    valid: int32 token ids of the last 10% of the characters.
  """

  name: str
  text: str
  vocab: str
  train: np.ndarray
  valid: np.ndarray

  def __repr__(self) -> str:
    return (
        f'CharCorpus(name={self.name!r}, vocab_size={self.vocab_size},'
        f' train={self.train.shape}, valid={self.valid.shape})'
    )

  @property
  def vocab_size(self) -> int:
    """Number of distinct characters."""
    return len(self.vocab)

  def encode(self, text: str) -> np.ndarray:
    """Maps characters to token ids.

    Args:
      text: a string made of characters in ``vocab``.

    Returns:
      An int32 array of shape ``(len(text),)``.

    Raises:
      ValueError: if ``text`` holds a character outside the vocabulary.
    """
    table = {c: i for i, c in enumerate(self.vocab)}
    try:
      return np.fromiter((table[c] for c in text), np.int32, len(text))
    except KeyError as e:
      raise ValueError(
          f'character {e.args[0]!r} is not in the {self.name} vocabulary'
      ) from None

  def decode(self, ids: Union[np.ndarray, list[int]]) -> str:
    """Maps token ids back to text.

    Args:
      ids: integer token ids in ``[0, vocab_size)``.

    Returns:
      The decoded string.

    Raises:
      ValueError: if an id is out of range.
    """
    ids = np.asarray(ids).reshape(-1)
    if ids.size and not np.issubdtype(ids.dtype, np.integer):
      raise ValueError(
          f'ids must be integer token ids, got an array of dtype {ids.dtype}'
      )
    if ids.size and (ids.min() < 0 or ids.max() >= len(self.vocab)):
      raise ValueError(
          f'token ids must lie in [0, {len(self.vocab)}), got range'
          f' [{ids.min()}, {ids.max()}]'
      )
    return ''.join(self.vocab[i] for i in ids.tolist())


def data_dir(path: Optional[PathLike] = None) -> pathlib.Path:
  """The directory holding the dataset files.

  Args:
    path: an explicit directory; wins over everything else.

  Returns:
    ``path`` if given, else ``$OPTAX_NOWCAST_DATA`` if set and non-empty, else
    ``$XDG_CACHE_HOME/optax_nowcast/data`` (``~/.cache`` when
    ``XDG_CACHE_HOME`` is unset). The directory need not exist.
  """
  if path is not None:
    return _validation.path('path', path).expanduser()
  env = os.environ.get(DATA_DIR_ENV)
  if env:
    return pathlib.Path(env).expanduser()
  cache = os.environ.get('XDG_CACHE_HOME') or os.path.join('~', '.cache')
  return pathlib.Path(cache).expanduser() / 'optax_nowcast' / 'data'


def _missing(root: pathlib.Path, relpath: str, dataset: str) -> NoReturn:
  """Raises FileNotFoundError explaining where the file should be."""
  raise FileNotFoundError(
      f'{dataset} data file not found: expected {root / relpath}. This'
      ' package never downloads anything; copy the original file'
      f' {relpath.split("/")[-1]!r} from {_SOURCES[relpath.split("/")[0]]}'
      f' to <data_dir>/{relpath}, where <data_dir> is the path= argument, else'
      f' ${DATA_DIR_ENV}, else $XDG_CACHE_HOME/optax_nowcast/data (default'
      ' ~/.cache/optax_nowcast/data).'
  )


def verify_file(file: PathLike, expected: str) -> None:
  """Checks a file's SHA256.

  Args:
    file: the file to hash.
    expected: the expected hex digest.

  Raises:
    ValueError: if the digest differs, naming the file.
  """
  if not isinstance(expected, str) or len(expected) != 64:
    raise ValueError(
        f'expected must be a hex SHA256 digest of 64 characters, got'
        f' {expected!r}'
    )
  got = sha256_file(pathlib.Path(file))
  if got != expected.lower():
    raise ValueError(
        f'checksum mismatch for {file}: sha256 {got}, expected {expected}'
    )


def _locate(
    root: pathlib.Path, relpath: str, dataset: str, verify: bool
) -> pathlib.Path:
  """The path of ``relpath`` under ``root``, checked to exist (and verified)."""
  file = root / relpath
  if not file.is_file():
    _missing(root, relpath, dataset)
  if verify:
    verify_file(file, SHA256[relpath])
  return file


def parse_idx(data: bytes, source: str = '<bytes>') -> np.ndarray:
  """Parses uncompressed big-endian IDX bytes.

  Args:
    data: the IDX bytes: two zero bytes, a type byte (only ``0x08``, uint8,
      is supported), a dimension count, one big-endian uint32 per dimension,
      then the row-major data.
    source: a name for ``data`` used in error messages.

  Returns:
    A read-only uint8 array with the stored shape (a view of ``data``).

  Raises:
    ValueError: if the header is malformed or the data size does not match it.
  """
  if not isinstance(data, (bytes, bytearray, memoryview)):
    raise ValueError(
        f'data must be bytes (e.g. gzip.decompress of the file), got'
        f' {type(data).__name__}'
    )
  if len(data) < 4:
    raise ValueError(f'{source}: not an IDX file (only {len(data)} bytes)')
  if data[0] != 0 or data[1] != 0:
    raise ValueError(
        f'{source}: not an IDX file (magic bytes {data[:2].hex()}, expected'
        ' 0000)'
    )
  dtype = _IDX_DTYPES.get(data[2])
  if dtype is None:
    raise ValueError(
        f'{source}: unsupported IDX type byte 0x{data[2]:02x} (only 0x08,'
        ' uint8)'
    )
  ndim = data[3]
  if ndim == 0:
    raise ValueError(f'{source}: IDX header has 0 dimensions')
  header = 4 + 4 * ndim
  if len(data) < header:
    raise ValueError(
        f'{source}: truncated IDX header ({len(data)} bytes, expected'
        f' {header})'
    )
  shape = tuple(int(d) for d in np.frombuffer(data, '>u4', ndim, 4))
  want = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
  if len(data) != want:
    kind = 'truncated' if len(data) < want else 'trailing bytes in'
    raise ValueError(
        f'{source}: {kind} IDX data ({len(data)} bytes; shape {shape} needs'
        f' {want})'
    )
  return np.frombuffer(data, dtype, offset=header).reshape(shape)


def read_idx_gz(file: PathLike) -> np.ndarray:
  """Reads a gzipped IDX file.

  Args:
    file: path of a ``*.gz`` IDX file.

  Returns:
    The stored array, see :func:`parse_idx`.

  Raises:
    FileNotFoundError: if ``file`` does not exist.
    ValueError: if the file is not valid gzip, is truncated, or is not a valid
      IDX file; the message names the file.
  """
  file = pathlib.Path(file)
  try:
    data = gzip.decompress(file.read_bytes())
  except (OSError, EOFError, zlib.error) as e:
    if isinstance(e, FileNotFoundError):
      raise
    raise ValueError(f'{file}: corrupt or truncated gzip data ({e})') from e
  return parse_idx(data, str(file))


def _load_idx_dataset(
    name: str, dataset: str, path: Optional[PathLike], verify: bool
) -> Dataset:
  """Loads the four gzipped IDX files of an MNIST-style dataset."""
  root = data_dir(path)
  arrays = {}
  for split, (images, labels) in _SPLIT_FILES.items():
    x_file = _locate(root, f'{name}/{images}', dataset, verify)
    y_file = _locate(root, f'{name}/{labels}', dataset, verify)
    x = read_idx_gz(x_file)
    y = read_idx_gz(y_file)
    if x.ndim != 3:
      raise ValueError(f'{x_file}: expected 3-d images, got shape {x.shape}')
    if y.ndim != 1 or y.shape[0] != x.shape[0]:
      raise ValueError(
          f'{y_file}: expected {x.shape[0]} labels to match {x_file}, got'
          f' shape {y.shape}'
      )
    if y.size and y.max() > 9:
      raise ValueError(f'{y_file}: labels must lie in 0..9, max is {y.max()}')
    x = x.astype(np.float32)
    x *= np.float32(1.0 / 255.0)
    arrays[f'x_{split}'] = x[..., None]
    arrays[f'y_{split}'] = y.astype(np.int32)
  return Dataset(name=name, num_classes=10, **arrays)


def load_mnist(
    path: Optional[PathLike] = None, *, verify: bool = False
) -> Dataset:
  """Loads MNIST from ``<data_dir>/mnist/``.

  Args:
    path: the data directory (see :func:`data_dir`).
    verify: check each file against its published SHA256 first.

  Returns:
    A :class:`Dataset` with 60000 train and 10000 test images, float32 in
    [0, 1] of shape ``(N, 28, 28, 1)``, and int32 labels 0..9.

  Raises:
    FileNotFoundError: if a file is missing; the message names the path.
    ValueError: if a file is corrupt or truncated, or (``verify=True``) its
      checksum differs.
  """
  return _load_idx_dataset('mnist', 'MNIST', path, verify)


def load_fashion_mnist(
    path: Optional[PathLike] = None, *, verify: bool = False
) -> Dataset:
  """Loads Fashion-MNIST from ``<data_dir>/fashion_mnist/``.

  Args:
    path: the data directory (see :func:`data_dir`).
    verify: check each file against its published SHA256 first.

  Returns:
    A :class:`Dataset` with 60000 train and 10000 test images, float32 in
    [0, 1] of shape ``(N, 28, 28, 1)``, and int32 labels 0..9.

  Raises:
    FileNotFoundError: if a file is missing; the message names the path.
    ValueError: if a file is corrupt or truncated, or (``verify=True``) its
      checksum differs.
  """
  return _load_idx_dataset('fashion_mnist', 'Fashion-MNIST', path, verify)


def nino_train_examples(n: int) -> int:
  """How many of ``n`` training images NiNo trains on: the first ``n - n // 12``.

  NiNo's ``train_vision.py`` keeps ``torch.arange(n_all - n_all // 12)`` of
  the training set in its stored order (55,000 of Fashion-MNIST's 60,000),
  the last 1/12 being its held-out validation images.
  """
  return n - n // 12


def load_fashion_mnist_nino(
    path: Optional[PathLike] = None, *, verify: bool = False
) -> Dataset:
  """Fashion-MNIST as NiNo trains on it: the first 55,000 training images.

  :func:`load_fashion_mnist` with the training split cut to its first
  :func:`nino_train_examples` images, in the files' order (NiNo's FM-16
  protocol); the test split is all 10,000 test images. Pixels stay in
  [0, 1]: NiNo's mean/std normalisation is the model's
  (``optax_nowcast.lab.tasks.NiNoConvNet``).

  Args:
    path: the data directory (see :func:`data_dir`).
    verify: check each file against its published SHA256 first.

  Returns:
    A :class:`Dataset` named ``'fashion_mnist_nino'``.

  Raises:
    FileNotFoundError: if a file is missing; the message names the path.
    ValueError: if a file is corrupt or truncated, or (``verify=True``) its
      checksum differs.
  """
  ds = load_fashion_mnist(path, verify=verify)
  keep = nino_train_examples(len(ds.x_train))
  return dataclasses.replace(ds, name='fashion_mnist_nino',
                             x_train=ds.x_train[:keep],
                             y_train=ds.y_train[:keep])


def load_shakespeare(
    path: Optional[PathLike] = None, *, verify: bool = False
) -> CharCorpus:
  """Loads Tiny Shakespeare from ``<data_dir>/tinyshakespeare/input.txt``.

  Args:
    path: the data directory (see :func:`data_dir`).
    verify: check the file against its published SHA256 first.

  Returns:
    A :class:`CharCorpus` with the sorted vocabulary (65 characters) and the
    usual split: the first 90% of characters for training, the last 10% for
    validation.

  Raises:
    FileNotFoundError: if the file is missing; the message names the path.
    ValueError: if the file is not UTF-8 text, or (``verify=True``) its
      checksum differs.
  """
  relpath = 'tinyshakespeare/input.txt'
  file = _locate(data_dir(path), relpath, 'Tiny Shakespeare', verify)
  raw = file.read_bytes()
  try:
    text = raw.decode('utf-8')
  except UnicodeDecodeError as e:
    raise ValueError(f'{file}: not UTF-8 text ({e})') from e
  vocab = ''.join(sorted(set(text)))
  if all(ord(c) < 256 for c in vocab):
    # Fast path: a byte-level lookup table.
    table = np.zeros(256, np.int32)
    table[[ord(c) for c in vocab]] = np.arange(len(vocab), dtype=np.int32)
    ids = table[np.frombuffer(text.encode('latin-1'), np.uint8)]
  else:
    index = {c: i for i, c in enumerate(vocab)}
    ids = np.fromiter((index[c] for c in text), np.int32, len(text))
  n = int(0.9 * len(ids))
  return CharCorpus(
      name='shakespeare', text=text, vocab=vocab, train=ids[:n], valid=ids[n:]
  )


def load_pystdlib(
    path: Optional[PathLike] = None, *, max_chars: int = PYSTDLIB_MAX_CHARS
) -> CharCorpus:
  """The Python standard library's own source as a character corpus.

  A text every machine has, different from Tiny Shakespeare: the top-level
  ``*.py`` files of the standard library directory (no subdirectories),
  sorted by file name, each with tabs expanded to 4 spaces and every
  character outside :data:`PYSTDLIB_VOCAB` (newline and printable ASCII)
  dropped, concatenated with a blank line between files, and cut after
  ``max_chars`` characters. The text, and so every run trained on it,
  depends only on the Python version (the stdlib of CPython 3.11.7 gives
  the same corpus on every machine).

  Args:
    path: the directory to read (default: ``sysconfig.get_paths()
      ['stdlib']`` of the running interpreter, a virtual environment's base
      Python included).
    max_chars: characters kept, a positive int.

  Returns:
    A :class:`CharCorpus` named ``'pystdlib'`` whose vocabulary is the
    fixed :data:`PYSTDLIB_VOCAB` (96 characters, whether or not each
    appears), split 90/10 into train and validation like Tiny Shakespeare.

  Raises:
    ValueError: if ``max_chars`` is not a positive int.
    FileNotFoundError: if the directory holds no ``*.py`` file.
  """
  max_chars = _validation.positive_int('max_chars', max_chars)
  root = pathlib.Path(
      sysconfig.get_paths()['stdlib'] if path is None
      else _validation.path('path', path)).expanduser()
  files = sorted(root.glob('*.py'), key=lambda f: f.name)
  if not files:
    raise FileNotFoundError(
        f'no *.py files in {root}: pass the directory of a Python standard'
        ' library (default: sysconfig.get_paths()["stdlib"])')
  keep = set(PYSTDLIB_VOCAB)
  parts, size = [], 0
  for file in files:
    raw = file.read_bytes().decode('utf-8', errors='replace')
    text = ''.join(c for c in raw.expandtabs(4) if c in keep) + '\n\n'
    parts.append(text)
    size += len(text)
    if size >= max_chars:
      break
  text = ''.join(parts)[:max_chars]
  table = np.zeros(128, np.int32)
  table[[ord(c) for c in PYSTDLIB_VOCAB]] = np.arange(
      len(PYSTDLIB_VOCAB), dtype=np.int32)
  ids = table[np.frombuffer(text.encode('ascii'), np.uint8)]
  n = int(0.9 * len(ids))
  return CharCorpus(name='pystdlib', text=text, vocab=PYSTDLIB_VOCAB,
                    train=ids[:n], valid=ids[n:])


def load_digits(*, test_fraction: float = 0.2, seed: int = 0) -> Dataset:
  """Loads scikit-learn's embedded 8x8 digits (no download, no data dir).

  The split is stratified: within each class, a ``numpy.random.RandomState
  (seed)`` permutation puts ``round(test_fraction * class_size)`` examples
  in the test set and the rest in the train set.

  Args:
    test_fraction: fraction of each class held out for testing.
    seed: seed of the split.

  Returns:
    A :class:`Dataset` of float32 images in [0, 1] (pixels 0..16 divided by
    16) of shape ``(N, 8, 8, 1)`` and int32 labels 0..9; 1797 images in all.

  Raises:
    ValueError: if ``test_fraction`` is not a number in (0, 1) or ``seed`` is
      not an int in ``[0, 2**32)``.
  """
  if (
      isinstance(test_fraction, bool)
      or not isinstance(test_fraction, numbers.Real)
      or not 0.0 < test_fraction < 1.0
  ):
    raise ValueError(
        f'test_fraction must be a number in (0, 1), got {test_fraction!r}'
    )
  seed = _validation.seed('seed', seed)
  from sklearn import datasets  # pylint: disable=g-import-not-at-top

  digits = datasets.load_digits()
  x = (digits.images.astype(np.float32) / np.float32(16.0))[..., None]
  y = digits.target.astype(np.int32)
  rng = np.random.RandomState(seed)
  test = np.zeros(len(y), bool)
  for c in np.unique(y):
    idx = rng.permutation(np.flatnonzero(y == c))
    test[idx[: int(round(test_fraction * len(idx)))]] = True
  train_idx = rng.permutation(np.flatnonzero(~test))
  test_idx = rng.permutation(np.flatnonzero(test))
  return Dataset(
      name='digits',
      num_classes=10,
      x_train=x[train_idx],
      y_train=y[train_idx],
      x_test=x[test_idx],
      y_test=y[test_idx],
  )


def load_teacher(*, train: int = 100_000, test: int = 10_000,
                 label_noise: float = 0.0, seed: int = 0) -> Dataset:
  """A generated dataset: 8x8 images labelled by a random teacher network.

  Every pixel is uniform in [0, 1]; the label of an image :math:`x` is the
  class of the largest logit of a fixed random two-layer network,
  :math:`y = \\arg\\max_c \\, (W_2^\\top \\tanh(W_1^\\top (x - 1/2)))_c`
  (64 -> 32 -> 10, Gaussian weights scaled to unit-variance
  pre-activations). Twice the images needed are drawn and the half farthest
  from the teacher's class boundaries (largest gap between its two largest
  logits) is kept, so that the classes are separable with a margin; a
  fraction ``label_noise`` of the *training* labels is then replaced by a
  uniformly random class (the test labels stay clean).

  The test set is large, so one test image is 1e-4 of accuracy: a steps to
  target comparison is not decided by a handful of images, as on digits
  (360 test images, one of them 0.0028 of accuracy).

  Args:
    train: number of training examples.
    test: number of test examples.
    label_noise: fraction of training labels made random, in [0, 1).
    seed: seed of the teacher, the images and the noise
      (``numpy.random.default_rng``).

  Returns:
    A :class:`Dataset` named ``'teacher'`` of float32 images in [0, 1] of
    shape ``(N, 8, 8, 1)`` and int32 labels 0..9.

  Raises:
    ValueError: if a size is not a positive int, ``label_noise`` is not in
      [0, 1), or ``seed`` is not an int in ``[0, 2**32)``.
  """
  for name, value in (('train', train), ('test', test)):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or (
        value < 1):
      raise ValueError(f'{name} must be a positive int, got {value!r}')
  if (isinstance(label_noise, bool)
      or not isinstance(label_noise, numbers.Real)
      or not 0.0 <= label_noise < 1.0):
    raise ValueError(f'label_noise must be in [0, 1), got {label_noise!r}')
  seed = _validation.seed('seed', seed)
  n = int(train) + int(test)
  rng = np.random.default_rng(seed)
  w1 = rng.standard_normal((64, 32)) * np.sqrt(12 / 64)  # Var(x - 1/2) = 1/12
  w2 = rng.standard_normal((32, 10)) / np.sqrt(32)
  x = rng.random((2 * n, 64)).astype(np.float32)
  logits = np.tanh((x - 0.5) @ w1) @ w2
  top2 = np.sort(logits, axis=1)[:, -2:]
  keep = np.sort(np.argsort(top2[:, 1] - top2[:, 0], kind='stable')[n:])
  x = x[keep].reshape(-1, 8, 8, 1)
  y = np.argmax(logits[keep], axis=1).astype(np.int32)
  noisy = rng.random(int(train)) < label_noise
  y[:train][noisy] = rng.integers(0, 10, int(noisy.sum()), dtype=np.int32)
  return Dataset(name='teacher', num_classes=10, x_train=x[:train],
                 y_train=y[:train], x_test=x[train:], y_test=y[train:])


def load(
    name: str, path: Optional[PathLike] = None, *, verify: bool = False
) -> Union[Dataset, CharCorpus]:
  """Loads a dataset by name.

  Args:
    name: one of ``'digits'``, ``'teacher'`` (generated,
      :func:`load_teacher`), ``'mnist'``, ``'fashion_mnist'``,
      ``'fashion_mnist_nino'`` (its first 55,000 training images),
      ``'shakespeare'``, ``'pystdlib'``.
    path: the data directory (see :func:`data_dir`); unused for digits,
      teacher and pystdlib (which reads the running Python's standard library).
    verify: check file checksums first; unused for digits, teacher and
      pystdlib.

  Returns:
    A :class:`Dataset`, or a :class:`CharCorpus` for ``'shakespeare'`` and
    ``'pystdlib'``.

  Raises:
    ValueError: if ``name`` is unknown, or a file is corrupt.
    FileNotFoundError: if a data file is missing.
  """
  if name == 'digits':
    return load_digits()
  if name == 'teacher':
    return load_teacher()
  if name == 'mnist':
    return load_mnist(path, verify=verify)
  if name == 'fashion_mnist':
    return load_fashion_mnist(path, verify=verify)
  if name == 'fashion_mnist_nino':
    return load_fashion_mnist_nino(path, verify=verify)
  if name == 'shakespeare':
    return load_shakespeare(path, verify=verify)
  if name == 'pystdlib':
    return load_pystdlib()
  raise ValueError(
      f'unknown dataset {name!r}; valid names: {", ".join(DATASETS)}'
  )


def batches(
    x: np.ndarray,
    y: np.ndarray,
    batch_size: int,
    *,
    seed: int,
    epochs: Optional[int] = None,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
  """Yields shuffled minibatches, reshuffling every epoch.

  The last partial batch of each epoch is dropped, so every batch has exactly
  ``batch_size`` rows. The sequence depends only on ``seed`` and the inputs.

  Args:
    x: inputs, indexed along the first axis.
    y: targets, with the same first dimension as ``x``.
    batch_size: rows per batch, at most ``len(x)``.
    seed: seed of a ``numpy.random.RandomState`` drawing the permutations.
    epochs: passes over the data; ``None`` repeats forever.

  Returns:
    An iterator of ``(x_batch, y_batch)`` pairs of numpy arrays.

  Raises:
    ValueError: (at call time, not on first iteration) if ``x`` or ``y`` has
      no first axis, is empty, or the lengths differ, ``batch_size`` is not
      an int in ``[1, len(x)]``, ``seed`` is not an int in ``[0, 2**32)`` or
      ``epochs`` is not an int >= 0 or ``None``.
  """
  for name, array in (('x', x), ('y', y)):
    if np.ndim(array) == 0:
      raise ValueError(
          f'{name} must be an array with one row per example, got shape'
          f' {np.shape(array)}'
      )
  n = len(x)
  if len(y) != n:
    raise ValueError(f'x and y lengths differ: {n} vs {len(y)}')
  if n == 0:
    raise ValueError('x and y are empty; pass at least one example')
  batch_size = _validation.positive_int('batch_size', batch_size)
  if batch_size > n:
    raise ValueError(f'batch_size must be in [1, {n}], got {batch_size}')
  seed = _validation.seed('seed', seed)
  if epochs is not None:
    epochs = _validation.non_negative_int('epochs', epochs)
  return _batches(x, y, batch_size, seed, epochs)


def _batches(
    x: np.ndarray,
    y: np.ndarray,
    batch_size: int,
    seed: int,
    epochs: Optional[int],
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
  """The generator behind :func:`batches` (arguments already checked)."""
  n = len(x)
  rng = np.random.RandomState(seed)
  epoch = 0
  while epochs is None or epoch < epochs:
    perm = rng.permutation(n)
    for start in range(0, n - batch_size + 1, batch_size):
      idx = perm[start : start + batch_size]
      yield x[idx], y[idx]
    epoch += 1
