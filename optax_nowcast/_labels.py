"""Which kind of operation each leaf belongs to, and which leaves to touch."""

from __future__ import annotations

from typing import Any, Callable, Union

import jax
import jax.numpy as jnp

LabelSpec = Union[None, Any, Callable[[Any], Any]]


def default_label(leaf: Any) -> str:
  """``'conv'`` (rank >= 3), ``'dense'`` (2), ``'bias'`` (1) or ``'scalar'``.

  Rank-1 leaves include norm scales, which WNN forecasts like biases.
  """
  ndim = jnp.ndim(leaf)
  if ndim >= 3:
    return 'conv'
  if ndim == 2:
    return 'dense'
  if ndim == 1:
    return 'bias'
  return 'scalar'


def _resolve(name: str, spec: LabelSpec, params: Any, default: Any) -> Any:
  """Returns ``spec`` as a params-shaped tree (calling it if callable)."""
  if spec is None:
    return jax.tree.map(default, params)
  tree = spec(params) if callable(spec) else spec
  want = jax.tree.structure(params)
  got = jax.tree.structure(tree)
  if got != want:
    raise ValueError(
        f'{name} must have the same tree structure as params; params have'
        f' {want}, {name} has {got}'
    )
  return tree


def resolve_labels(spec: LabelSpec, params: Any) -> list[str]:
  """The flat list of leaf labels (default: by rank, see default_label)."""
  leaves = jax.tree.leaves(_resolve('labels', spec, params, default_label))
  for label in leaves:
    if not isinstance(label, str):
      raise ValueError(f'labels must be strings, got {label!r}')
  return leaves


def resolve_mask(spec: LabelSpec, params: Any) -> list[bool]:
  """The flat list of leaves to nowcast (default: all)."""
  leaves = jax.tree.leaves(_resolve('mask', spec, params, lambda _: True))
  for value in leaves:
    if not isinstance(value, bool):
      raise ValueError(
          f'mask must hold Python bools (True: nowcast the leaf), got {value!r}'
      )
  return leaves
