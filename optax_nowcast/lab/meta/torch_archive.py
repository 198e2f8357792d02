r"""Reading PyTorch ``.pt`` archives without PyTorch.

``torch.save`` (since PyTorch 1.6) writes a zip archive::

  <prefix>/data.pkl          the pickled object (e.g. a dict with a state_dict)
  <prefix>/byteorder         'little' or 'big' (absent: little)
  <prefix>/data/<key>        the raw bytes of each storage
  <prefix>/version, ...      bookkeeping

In ``data.pkl`` each tensor is a call ``torch._utils._rebuild_tensor_v2(
storage, storage_offset, size, stride, requires_grad, backward_hooks[,
metadata])`` whose ``storage`` is a persistent id ``('storage',
<storage type>, key, location, numel)``: the storage type (``torch
FloatStorage``, ...) gives the element dtype, ``key`` the file under
``data/``. Element ``i`` of a tensor, at multi-index :math:`(i_0, \dots)`,
is storage element :math:`\text{offset} + \sum_d i_d\,\text{stride}_d`.

:func:`load` rebuilds every tensor as a NumPy array from those facts with a
restricted :class:`pickle.Unpickler`: it resolves only the few globals a
state dict needs (the tensor and parameter rebuilders, the storage types,
``collections.OrderedDict``) and refuses any other, so reading an archive
never runs code from it.
"""

from __future__ import annotations

import collections
import os
import pickle
import sys
import zipfile
from typing import Any, Union

import numpy as np

PathLike = Union[str, os.PathLike]


def _bfloat16() -> np.dtype:
  import ml_dtypes  # pylint: disable=g-import-not-at-top  (ships with jax)
  return np.dtype(ml_dtypes.bfloat16)


#: Legacy storage class names (as ``torch.save`` pickles them) -> dtype.
STORAGE_DTYPES = {
    'DoubleStorage': 'float64',
    'FloatStorage': 'float32',
    'HalfStorage': 'float16',
    'BFloat16Storage': 'bfloat16',
    'LongStorage': 'int64',
    'IntStorage': 'int32',
    'ShortStorage': 'int16',
    'CharStorage': 'int8',
    'ByteStorage': 'uint8',
    'BoolStorage': 'bool',
    'ComplexFloatStorage': 'complex64',
    'ComplexDoubleStorage': 'complex128',
    'UntypedStorage': 'uint8',
}


class _StorageType:
  """What a pickled storage class stands for: its element dtype."""

  def __init__(self, name: str):
    self.name = name
    kind = STORAGE_DTYPES[name]
    self.dtype = _bfloat16() if kind == 'bfloat16' else np.dtype(kind)

  def __repr__(self) -> str:
    return f'torch.{self.name}'


def _rebuild_tensor(storage: np.ndarray, offset: int, size: tuple,
                    stride: tuple, *unused: Any) -> np.ndarray:
  """The strided view ``(offset, size, stride)`` of ``storage``, copied."""
  del unused  # requires_grad, backward hooks, metadata
  size, stride = tuple(int(s) for s in size), tuple(int(s) for s in stride)
  offset = int(offset)
  if len(size) != len(stride):
    raise pickle.UnpicklingError(
        f'tensor size {size} and stride {stride} differ in rank')
  if any(s < 0 for s in size) or any(s < 0 for s in stride) or offset < 0:
    raise pickle.UnpicklingError(
        f'negative tensor size, stride or offset: {size}, {stride}, {offset}')
  if 0 in size:
    return np.zeros(size, storage.dtype)
  last = offset + sum((n - 1) * s for n, s in zip(size, stride))
  if last >= storage.size:
    raise pickle.UnpicklingError(
        f'tensor (offset {offset}, size {size}, stride {stride}) reaches'
        f' element {last} of a storage of {storage.size}')
  view = np.lib.stride_tricks.as_strided(
      storage[offset:], shape=size,
      strides=tuple(s * storage.itemsize for s in stride), writeable=False)
  return np.array(view)


def _rebuild_parameter(data: np.ndarray, *unused: Any) -> np.ndarray:
  del unused  # requires_grad, backward hooks
  return data


#: The only globals an archive may name: (module, name) -> object.
_ALLOWED = {
    ('collections', 'OrderedDict'): collections.OrderedDict,
    ('torch._utils', '_rebuild_tensor_v2'): _rebuild_tensor,
    ('torch._utils', '_rebuild_parameter'): _rebuild_parameter,
}


class _Unpickler(pickle.Unpickler):
  """Resolves storages from the archive and only the allowed globals."""

  def __init__(self, file, archive: zipfile.ZipFile, prefix: str,
               byteorder: str):
    super().__init__(file)
    self._archive = archive
    self._prefix = prefix
    self._byteorder = byteorder
    self._storages: dict[str, np.ndarray] = {}

  def find_class(self, module: str, name: str) -> Any:
    if (module, name) in _ALLOWED:
      return _ALLOWED[(module, name)]
    if module in ('torch', 'torch.storage') and name in STORAGE_DTYPES:
      return _StorageType(name)
    raise pickle.UnpicklingError(
        f'the archive names the global {module}.{name}, which a state dict'
        ' does not need; refusing to load it (only tensors, parameters,'
        ' storages and OrderedDict are read)')

  def persistent_load(self, pid: Any) -> np.ndarray:
    if (not isinstance(pid, tuple) or len(pid) != 5 or pid[0] != 'storage'
        or not isinstance(pid[1], _StorageType)):
      raise pickle.UnpicklingError(f'unsupported persistent id {pid!r}')
    _, storage_type, key, _, numel = pid
    key = str(key)
    if key not in self._storages:
      dtype = storage_type.dtype
      raw = self._archive.read(f'{self._prefix}data/{key}')
      if len(raw) < int(numel) * dtype.itemsize:
        raise pickle.UnpicklingError(
            f'storage {key} has {len(raw)} bytes, fewer than its {numel}'
            f' elements of {dtype}')
      data = np.frombuffer(raw, dtype, count=int(numel))
      if self._byteorder != sys.byteorder and dtype.itemsize > 1:
        data = data.byteswap()  # to native order (a copy)
      self._storages[key] = data
    return self._storages[key]


def load(path: PathLike) -> Any:
  """The object ``torch.save`` wrote to ``path``, tensors as NumPy arrays.

  Args:
    path: A ``.pt`` file in PyTorch's zip format (``torch.save`` since 1.6).

  Returns:
    The unpickled object (typically a dict holding a state dict), every
    tensor or parameter a native-byte-order ``np.ndarray`` of its dtype
    (``bfloat16`` as ``ml_dtypes.bfloat16``).

  Raises:
    ValueError: if ``path`` is not a zip archive with one ``data.pkl``
      (the legacy non-zip format is not read), or the pickle names a
      global other than the tensor machinery (the message names it).
  """
  path = os.fspath(path)
  if not zipfile.is_zipfile(path):
    raise ValueError(
        f'{path!r} is not a PyTorch zip archive (torch.save >= 1.6); the'
        ' legacy format is not read')
  with zipfile.ZipFile(path) as archive:
    pickles = [n for n in archive.namelist()
               if n == 'data.pkl' or n.endswith('/data.pkl')]
    if len(pickles) != 1:
      raise ValueError(
          f'{path!r} must hold exactly one data.pkl, found {pickles}')
    prefix = pickles[0][:-len('data.pkl')]
    names = set(archive.namelist())
    byteorder = (archive.read(prefix + 'byteorder').decode().strip()
                 if prefix + 'byteorder' in names else 'little')
    if byteorder not in ('little', 'big'):
      raise ValueError(f'{path!r}: unknown byteorder {byteorder!r}')
    with archive.open(pickles[0]) as f:
      try:
        return _Unpickler(f, archive, prefix, byteorder).load()
      except pickle.UnpicklingError as e:
        raise ValueError(f'{path!r}: {e}') from e


def state_dict(path: PathLike) -> tuple[dict[str, np.ndarray], dict]:
  """``(state_dict, extras)`` of an archive that holds a model.

  Accepts either a bare state dict or NiNo's layout ``{'state_dict': ...,
  'model_args': ..., 'step': ...}``; ``extras`` holds the other entries.
  """
  obj = load(path)
  if not isinstance(obj, dict):
    raise ValueError(f'{os.fspath(path)!r} holds a {type(obj).__name__},'
                     ' not a dict')
  if 'state_dict' in obj:
    extras = {k: v for k, v in obj.items() if k != 'state_dict'}
    return dict(obj['state_dict']), extras
  return dict(obj), {}
