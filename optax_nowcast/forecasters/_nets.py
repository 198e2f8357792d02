"""Helpers shared by the learned forecasters' Flax networks."""

from __future__ import annotations

import math
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np


def check_key(key: Any, name: str = 'key') -> jax.Array:
  """Returns ``key`` if it is one JAX PRNG key (typed or raw), else raises."""
  if isinstance(key, jax.Array):
    if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
      if key.shape == ():
        return key
    elif key.dtype == jnp.uint32 and key.shape == (2,):
      return key
  raise ValueError(
      f'{name} must be a single JAX PRNG key (jax.random.key(0) or'
      f' jax.random.PRNGKey(0)), got {key!r}'
  )


def check_params(name: str, params: Any, expected: Any) -> None:
  """Raises unless ``params`` has the paths, shapes and float dtypes expected.

  Args:
    name: How to name ``params`` in the message, e.g. ``"weights['conv']"``.
    params: A nested mapping of arrays (Flax params).
    expected: The same tree of ``jax.ShapeDtypeStruct``.
  """

  def by_path(tree):
    leaves, _ = jax.tree_util.tree_flatten_with_path(tree)
    return {jax.tree_util.keystr(path): leaf for path, leaf in leaves}

  if not isinstance(params, Mapping):
    raise ValueError(
        f'{name} must be a mapping of Flax params, got {type(params).__name__}'
    )
  got, want = by_path(params), by_path(expected)
  missing = sorted(set(want) - set(got))
  extra = sorted(set(got) - set(want))
  if missing or extra:
    raise ValueError(
        f'{name} does not match the network: missing params {missing},'
        f' unexpected params {extra}'
    )
  for path, spec in want.items():
    leaf = got[path]
    shape = tuple(np.shape(leaf))
    if shape != spec.shape:
      raise ValueError(
          f'{name}{path} must have shape {spec.shape}, got {shape}'
      )
    dtype = jnp.result_type(leaf)
    if not jnp.issubdtype(dtype, jnp.floating):
      raise ValueError(
          f'{name}{path} must be a floating array, got dtype {dtype}'
      )


def uniform_init(
    key: jax.Array, expected: Any, scale: float, copies: int
) -> list[Any]:
  r"""``copies`` fresh params trees in a single random draw.

  Every kernel of shape ``(fan_in, fan_out)`` is drawn from
  :math:`U(-\ell, \ell)` with :math:`\ell = \sqrt{3\,\mathrm{scale} /
  \mathrm{fan\_in}}`, the distribution of ``VarianceScaling(scale,
  'fan_in', 'uniform')``; biases are zero. One draw for all kernels compiles
  much faster than one per kernel (as ``Module.init`` does).

  Args:
    key: A JAX PRNG key.
    expected: A params tree of ``jax.ShapeDtypeStruct`` (from ``eval_shape``).
    scale: The variance scale.
    copies: How many independent trees to draw.

  Returns:
    A list of ``copies`` float32 params trees shaped like ``expected``.
  """
  paths, treedef = jax.tree_util.tree_flatten_with_path(expected)
  kernels = [
      leaf for path, leaf in paths if getattr(path[-1], 'key', '') == 'kernel'
  ]
  total = sum(leaf.size for leaf in kernels)
  draws = jax.random.uniform(
      key, (copies, total), jnp.float32, minval=-1.0, maxval=1.0
  )
  trees = []
  for c in range(copies):
    leaves, offset = [], 0
    for path, leaf in paths:
      if getattr(path[-1], 'key', '') == 'kernel':
        limit = math.sqrt(3.0 * scale / leaf.shape[0])
        chunk = draws[c, offset:offset + leaf.size]
        leaves.append(limit * chunk.reshape(leaf.shape))
        offset += leaf.size
      else:
        leaves.append(jnp.zeros(leaf.shape, jnp.float32))
    trees.append(jax.tree.unflatten(treedef, leaves))
  return trees


def expected_params(network: Any, window: int) -> Any:
  """The Flax params tree of ``network`` on a ``(window,)`` input, abstractly.

  ``jax.ShapeDtypeStruct`` leaves: no computation, no random draw.
  """
  return jax.eval_shape(
      network.init,
      jax.random.PRNGKey(0),
      jax.ShapeDtypeStruct((window,), jnp.float32),
  )['params']
