"""Saving and loading learned forecasters: orbax weights plus a manifest.

A checkpoint is a directory ``<root>/<name>/``::

  weights/        the forecaster's weights, written by orbax-checkpoint
  manifest.json   kind, config, data summary, validation figures, the command
                  that made it, and the SHA256 of every file under weights/

The shipped checkpoints live in the repository's top-level ``checkpoints/``
directory, which the wheel installs as the package data
``optax_nowcast/checkpoints`` (see ``pyproject.toml``), so :func:`load` works
from an installed wheel, from any working directory, with no network.
"""

from __future__ import annotations

import importlib.resources
import json
import os
import pathlib
import shutil
from typing import Any, Callable, Optional, Union

import jax
import orbax.checkpoint as ocp

from optax_nowcast import data as data_lib
from optax_nowcast.forecasters._base import Forecaster

PathLike = Union[str, os.PathLike]
MANIFEST = 'manifest.json'
RESTORE_HINT = (
    'Restore it with `git checkout -- checkpoints/{name}` in a source'
    ' checkout, reinstall the optax-nowcast wheel, or rebuild it with the'
    ' command in the README ("Reproducing the shipped forecasters").'
)


def _factories() -> dict[str, tuple[Callable[..., Forecaster],
                                    Callable[[jax.Array], Any]]]:
  # Imported here: the learned forecasters import flax modules.
  from optax_nowcast.forecasters import _introspection  # pylint: disable=g-import-not-at-top
  from optax_nowcast.forecasters import _wnn  # pylint: disable=g-import-not-at-top
  return {
      'wnn': (_wnn.wnn, _wnn.init_wnn_weights),
      'introspection': (_introspection.introspection,
                        _introspection.init_introspection_weights),
  }


def shipped_root() -> pathlib.Path:
  """Where the shipped checkpoints are: package data, else the checkout."""
  try:
    root = importlib.resources.files('optax_nowcast.checkpoints')
    path = pathlib.Path(str(root))
    if path.is_dir():
      return path
  except ModuleNotFoundError:
    pass
  return pathlib.Path(__file__).resolve().parents[2] / 'checkpoints'


def _checksums(weights_dir: pathlib.Path) -> dict[str, str]:
  return {str(p.relative_to(weights_dir)): data_lib.sha256_file(p)
          for p in sorted(weights_dir.rglob('*')) if p.is_file()}


def save(directory: PathLike, kind: str, weights: Any, *,
         manifest: Optional[dict] = None) -> pathlib.Path:
  """Writes ``weights`` of a ``kind`` forecaster and its manifest.

  Args:
    directory: The checkpoint directory (replaced if it exists).
    kind: ``'wnn'`` or ``'introspection'``.
    weights: The forecaster's weights pytree.
    manifest: Extra manifest entries (config, data, validation, command).

  Returns:
    The checkpoint directory.
  """
  if kind not in _factories():
    raise ValueError(
        f'kind must be one of {sorted(_factories())}, got {kind!r}')
  directory = pathlib.Path(directory).resolve()
  if directory.exists():
    shutil.rmtree(directory)
  directory.mkdir(parents=True)
  weights_dir = directory / 'weights'
  with ocp.StandardCheckpointer() as checkpointer:
    checkpointer.save(weights_dir, jax.device_get(weights))
    checkpointer.wait_until_finished()
  content = dict(manifest or {})
  content.update(kind=kind, format=1, checksums=_checksums(weights_dir))
  (directory / MANIFEST).write_text(json.dumps(content, indent=1))
  return directory


def read_manifest(directory: PathLike) -> dict:
  """The manifest of a checkpoint directory, checked against its files."""
  directory = pathlib.Path(directory)
  name = directory.name
  manifest_file = directory / MANIFEST
  if not manifest_file.is_file():
    raise FileNotFoundError(
        f'forecaster checkpoint {name!r}: {manifest_file} is missing. '
        + RESTORE_HINT.format(name=name))
  try:
    manifest = json.loads(manifest_file.read_text())
  except json.JSONDecodeError as e:
    raise ValueError(
        f'forecaster checkpoint {name!r}: {manifest_file} is not valid JSON'
        f' ({e}). ' + RESTORE_HINT.format(name=name)) from e
  weights_dir = directory / 'weights'
  expected = manifest.get('checksums', {})
  actual = _checksums(weights_dir) if weights_dir.is_dir() else {}
  for rel, digest in expected.items():
    if rel not in actual:
      raise FileNotFoundError(
          f'forecaster checkpoint {name!r}: {weights_dir / rel} is missing. '
          + RESTORE_HINT.format(name=name))
    if actual[rel] != digest:
      raise ValueError(
          f'forecaster checkpoint {name!r}: {weights_dir / rel} does not'
          f' match its checksum in {manifest_file} (truncated or modified). '
          + RESTORE_HINT.format(name=name))
  return manifest


def load_from(directory: PathLike, **kwargs: Any) -> Forecaster:
  """Loads the forecaster in a checkpoint directory (checksums verified)."""
  directory = pathlib.Path(directory)
  manifest = read_manifest(directory)
  kind = manifest.get('kind')
  factories = _factories()
  if kind not in factories:
    raise ValueError(
        f'forecaster checkpoint {directory.name!r}: unknown kind {kind!r} in'
        f' {directory / MANIFEST}')
  factory, init = factories[kind]
  target = jax.eval_shape(init, jax.random.key(0))
  with ocp.StandardCheckpointer() as checkpointer:
    weights = checkpointer.restore(directory / 'weights', target)
  config = dict(manifest.get('forecaster', {}))
  config.update(kwargs)
  return factory(weights, **config)


def load(name: str, **kwargs: Any) -> Forecaster:
  """A shipped pretrained forecaster, ready to pass to ``nowcast``.

  Args:
    name: ``'wnn'`` or ``'introspection'``.
    **kwargs: Passed on to the forecaster's factory (e.g. ``horizon``).

  Returns:
    The :class:`Forecaster`.

  Raises:
    ValueError: for an unknown name, or a checkpoint that fails its checksum.
    FileNotFoundError: for a missing checkpoint file; the message names it
      and says how to restore it.

  Example:
    >>> import optax, optax_nowcast as onc
    >>> tx = optax.chain(optax.adam(1e-3), onc.nowcast(
    ...     onc.forecasters.load('wnn'), record_every=100, jump_every=5))
  """
  known = sorted(_factories())
  if name not in known:
    raise ValueError(f'name must be one of {known}, got {name!r}')
  return load_from(shipped_root() / name, **kwargs)
