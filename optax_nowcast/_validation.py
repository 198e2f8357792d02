"""Argument checks shared by the public factories.

Every check raises a :class:`ValueError` that names the argument, the value
it got and what it should be, so a user knows what to change.
"""

from __future__ import annotations

import math
import numbers
import os
import pathlib
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


def _concrete_int(name: str, value: Any) -> Any:
  """A concrete integer scalar ``jax.Array`` as a Python int; else ``value``.

  Raises for a traced one, whose value is not known when the
  transformation is built.
  """
  if (isinstance(value, jax.Array) and value.ndim == 0
      and jnp.issubdtype(value.dtype, jnp.integer)):
    if isinstance(value, jax.core.Tracer):
      raise ValueError(
          f'{name} must be a concrete int, known when the transformation is'
          f' built; got a traced value ({value}): build it outside jit,'
          ' or pass a Python int')
    return int(value)
  return value


def positive_int(name: str, value: Any) -> int:
  """Returns ``value`` if it is a positive integer scalar, else raises.

  Python and NumPy ints pass, and so do concrete integer ``jax.Array``
  scalars (e.g. ``jnp.int32(10)``); a traced one raises.
  """
  value = _concrete_int(name, value)
  if isinstance(value, bool) or not isinstance(value, numbers.Integral):
    raise ValueError(f'{name} must be a positive int, got {value!r}')
  if value <= 0:
    raise ValueError(f'{name} must be a positive int, got {value!r}')
  return int(value)


def non_negative_int(name: str, value: Any) -> Any:
  """Returns ``value`` if it is an int >= 0, else raises.

  A scalar integer ``jax.Array`` (e.g. injected by ``optax.inject_hyperparams``)
  passes as it is: it may be traced, so its value cannot be checked.
  """
  if (
      isinstance(value, jax.Array)
      and value.ndim == 0
      and jnp.issubdtype(value.dtype, jnp.integer)
  ):
    return value
  if isinstance(value, bool) or not isinstance(value, numbers.Integral):
    raise ValueError(f'{name} must be a non-negative int, got {value!r}')
  if value < 0:
    raise ValueError(f'{name} must be a non-negative int, got {value!r}')
  return int(value)


def positive_float(name: str, value: Any) -> float:
  """Returns ``value`` as a float if it is a finite number > 0, else raises."""
  if isinstance(value, bool) or not isinstance(value, numbers.Real):
    raise ValueError(f'{name} must be a positive number, got {value!r}')
  if not float(value) > 0.0 or float(value) == float('inf'):
    raise ValueError(f'{name} must be a positive number, got {value!r}')
  return float(value)


#: The largest step the int32 step counter reaches.
INT32_MAX = 2**31 - 1


def fits_int32(name: str, value: Any) -> Any:
  """Returns ``value`` unless it is a Python int beyond the int32 step range."""
  if isinstance(value, numbers.Integral) and value > INT32_MAX:
    raise ValueError(
        f'{name} must be at most 2**31 - 1 = {INT32_MAX} (steps are counted'
        f' in int32), got {value!r}'
    )
  return value


def non_negative_float(name: str, value: Any) -> float:
  """Returns ``value`` as a float if it is a finite number >= 0, else raises."""
  if isinstance(value, bool) or not isinstance(value, numbers.Real):
    raise ValueError(f'{name} must be a number >= 0, got {value!r}')
  if not (float(value) >= 0.0 and math.isfinite(float(value))):
    raise ValueError(f'{name} must be a finite number >= 0, got {value!r}')
  return float(value)


def finite_float(name: str, value: Any) -> float:
  """Returns ``value`` as a float if it is a finite real number, else raises."""
  if (
      isinstance(value, bool)
      or not isinstance(value, numbers.Real)
      or not math.isfinite(float(value))
  ):
    raise ValueError(f'{name} must be a finite number, got {value!r}')
  return float(value)


def seed(name: str, value: Any) -> int:
  """Returns ``value`` if it is an int in ``[0, 2**32)`` (a NumPy seed)."""
  value = non_negative_int(name, value)
  if int(value) >= 2**32:
    raise ValueError(f'{name} must be an int in [0, 2**32), got {value!r}')
  return int(value)


def path(name: str, value: Any) -> pathlib.Path:
  """Returns ``value`` as a ``pathlib.Path`` if it is a str or PathLike."""
  if not isinstance(value, (str, os.PathLike)) or value == '':
    raise ValueError(
        f'{name} must be a directory path (a non-empty str or os.PathLike),'
        f' got {value!r}'
    )
  return pathlib.Path(value)


def finite_arrays(name: str, tree: Any) -> None:
  """Raises if a concrete leaf of ``tree`` holds a NaN or an infinity.

  Traced leaves (inside ``jit`` or ``grad``) cannot be checked and pass.
  """
  leaves, _ = jax.tree_util.tree_flatten_with_path(tree)
  for key_path, leaf in leaves:
    if isinstance(leaf, jax.core.Tracer):
      continue
    bad = int(np.size(leaf) - np.count_nonzero(np.isfinite(leaf)))
    if bad:
      raise ValueError(
          f'{name}{jax.tree_util.keystr(key_path)} holds {bad} non-finite'
          ' values (NaN or inf); pass finite weights (e.g. from a'
          ' meta-training run that did not diverge)'
      )
