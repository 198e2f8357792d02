"""Which kind of operation each leaf belongs to, and which leaves to touch."""

from __future__ import annotations

from typing import Any, Callable, Union

import jax
import jax.numpy as jnp

LabelSpec = Union[None, Any, Callable[[Any], Any]]


#: Param names (the last key of a leaf's path) of normalisation scales, as
#: Flax (LayerNorm, BatchNorm, RMSNorm, GroupNorm), Haiku and Equinox name
#: them.
NORM_NAMES = ('scale', 'gamma', 'weight_norm')
#: Param names of embedding tables (Flax ``Embed``, Haiku ``Embed``).
EMBEDDING_NAMES = ('embedding', 'embeddings', 'embed')
#: Module names of attention projections (Flax ``MultiHeadDotProductAttention``
#: and common transformer code), whose rank-3 kernels are dense maps.
ATTENTION_NAMES = ('query', 'key', 'value', 'out', 'qkv', 'q_proj', 'k_proj',
                   'v_proj', 'o_proj', 'out_proj')


def _key_name(entry: Any) -> str:
  for attr in ('key', 'name', 'idx'):
    if hasattr(entry, attr):
      return str(getattr(entry, attr))
  return str(entry)


def default_label(leaf: Any, path: tuple[Any, ...] = ()) -> str:
  """The kind of a leaf, from its name where that says it, else its rank.

  ``'norm'`` for a rank-1 leaf named like a normalisation scale
  (:data:`NORM_NAMES`), ``'embedding'`` for a rank-2 leaf named like an
  embedding table (:data:`EMBEDDING_NAMES`), ``'dense'`` for the rank-3
  kernel of an attention projection (its module named in
  :data:`ATTENTION_NAMES`); otherwise ``'conv'`` (rank >= 3), ``'dense'``
  (2), ``'bias'`` (1) or ``'scalar'`` (0). The names are the last keys of
  ``path`` (as ``jax.tree_util.tree_map_with_path`` gives it); without a
  path, the rank decides.
  """
  ndim = jnp.ndim(leaf)
  name = _key_name(path[-1]).lower() if path else ''
  if ndim == 1 and name in NORM_NAMES:
    return 'norm'
  if ndim == 2 and name in EMBEDDING_NAMES:
    return 'embedding'
  module = _key_name(path[-2]).lower() if len(path) >= 2 else ''
  if ndim >= 3 and module in ATTENTION_NAMES:
    return 'dense'
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
    return jax.tree_util.tree_map_with_path(
        lambda path, leaf: default(leaf, path), params)
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
  """The flat list of leaf labels (default: see default_label)."""
  return _resolve_flat('labels', spec, params, default_label, str,
                       "be strings (a leaf kind such as 'dense')")


def resolve_mask(spec: LabelSpec, params: Any) -> list[bool]:
  """The flat list of leaves to nowcast (default: all)."""
  return _resolve_flat('mask', spec, params, lambda *_: True, bool,
                       'hold Python bools (True: nowcast the leaf)')
