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


def _leaves(tree: Any) -> list[tuple[str, Any]]:
  """``(path, leaf)`` pairs of ``tree``, the path as ``jax.tree_util.keystr``."""
  pairs, _ = jax.tree_util.tree_flatten_with_path(tree)
  return [(jax.tree_util.keystr(path), leaf) for path, leaf in pairs]


def _resolve_flat(name: str, spec: LabelSpec, params: Any, default: Any,
                  kind: type, wanted: str) -> list[Any]:
  """The flat leaves of ``spec`` resolved against ``params``, type-checked."""
  pairs = _leaves(_resolve(name, spec, params, default))
  for path, value in pairs:
    if not isinstance(value, kind):
      raise ValueError(f'{name} must {wanted}, got {value!r} at {name}{path}')
  return [value for _, value in pairs]


def resolve_labels(spec: LabelSpec, params: Any) -> list[str]:
  """The flat list of leaf labels (default: by rank, see default_label)."""
  return _resolve_flat('labels', spec, params, default_label, str,
                       "be strings (a leaf kind such as 'dense')")


def resolve_mask(spec: LabelSpec, params: Any) -> list[bool]:
  """The flat list of leaves to nowcast (default: all)."""
  return _resolve_flat('mask', spec, params, lambda _: True, bool,
                       'hold Python bools (True: nowcast the leaf)')
