"""Argument checks shared by the public factories.

Every check raises a :class:`ValueError` that names the argument and the value
it got, so a user knows what to change.
"""

from __future__ import annotations

import numbers
from typing import Any

import jax
import jax.numpy as jnp


def positive_int(name: str, value: Any) -> int:
  """Returns ``value`` if it is a positive Python/NumPy int, else raises."""
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
