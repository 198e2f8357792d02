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
from typing import Any, Optional, Union

import jax

from optax_nowcast import _validation
from optax_nowcast._files import sha256_file
from optax_nowcast.forecasters import _registry
from optax_nowcast.forecasters._base import Forecaster

PathLike = Union[str, os.PathLike]
MANIFEST = 'manifest.json'
RESTORE_HINT = (
    'Restore it with `git checkout -- checkpoints/{name}` in a source'
    ' checkout, reinstall the optax-nowcast wheel, or rebuild it with the'
    ' command in docs/meta_training.md ("Reproducing the shipped'
    ' forecasters").'
)


def _orbax():
  """orbax-checkpoint, imported when a checkpoint is read or written."""
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  return ocp


def _read_every_value(weights: pathlib.Path) -> None:
  """Reads every value of an OCDBT weights directory, synchronously.

  orbax restores many arrays concurrently on an event loop of its own; when
  one read fails (a truncated data file) it raises at once and closes that
  loop while the other reads are in flight, and those then fail later in
  tensorstore's threads ("Event loop is closed", unraisable). Reading each
  value here first, with blocking tensorstore calls, finds such a file before
  orbax starts, and raises a ``ValueError`` like orbax's read errors.
  """
  if not (weights / 'manifest.ocdbt').is_file():
    return  # not OCDBT: leave it to orbax
  import tensorstore as ts  # pylint: disable=g-import-not-at-top
  store = ts.KvStore.open(
      {'driver': 'ocdbt', 'base': weights.resolve().as_uri() + '/'}).result()
  for key in store.list().result():
    store.read(key).result()


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


#: The registered forecasters with a checkpoint in the wheel: those of the
#: registry (``_registry.MODULES``) with a directory under
#: :func:`shipped_root`, sorted.
SHIPPED = tuple(sorted(name for name in _registry.names()
                       if (shipped_root() / name).is_dir()))


def _checksums(weights_dir: pathlib.Path) -> dict[str, str]:
  return {str(p.relative_to(weights_dir)): sha256_file(p)
          for p in sorted(weights_dir.rglob('*')) if p.is_file()}


def save(directory: PathLike, kind: str, weights: Any, *,
         manifest: Optional[dict] = None) -> pathlib.Path:
  """Writes ``weights`` of a ``kind`` forecaster and its manifest.

  Args:
    directory: The checkpoint directory (replaced if it holds a checkpoint).
    kind: A registered learned forecaster's name (``_registry.MODULES``),
      e.g. ``'wnn'``.
    weights: The forecaster's weights pytree.
    manifest: Extra manifest entries (config, data, validation, command).

  Returns:
    The checkpoint directory.

  Raises:
    ValueError: for an unknown ``kind``, ``weights`` that do not fit a
      ``kind`` forecaster, a ``manifest`` that is not a JSON-serialisable
      dict, or a ``directory`` that is a file or a non-empty directory other
      than a checkpoint (which ``save`` refuses to delete).
  """
  directory = _validation.path('directory', directory).resolve()
  if not isinstance(kind, str) or kind not in _registry.names():
    raise ValueError(
        f'kind must be one of {sorted(_registry.names())}, got {kind!r}')
  _registry.get(kind).make(weights)  # raises if the weights do not fit
  if manifest is not None and not isinstance(manifest, dict):
    raise ValueError(
        f'manifest must be a dict of extra entries or None, got {manifest!r}')
  try:
    json.dumps(manifest)
  except (TypeError, ValueError) as e:
    raise ValueError(
        f'manifest must be JSON-serialisable (str, numbers, lists, dicts),'
        f' got {manifest!r}: {e}') from e
  if directory.exists():
    if not directory.is_dir():
      raise ValueError(
          f'directory {str(directory)!r} is a file; pass a directory path')
    foreign = sorted(p.name for p in directory.iterdir()
                     if p.name not in (MANIFEST, 'weights'))
    if foreign:
      raise ValueError(
          f'directory {str(directory)!r} holds {foreign}, so it is not a'
          ' forecaster checkpoint that save may replace; pass a new or empty'
          ' directory')
    shutil.rmtree(directory)
  directory.mkdir(parents=True)
  weights_dir = directory / 'weights'
  ocp = _orbax()
  with ocp.StandardCheckpointer() as checkpointer:
    checkpointer.save(weights_dir, jax.device_get(weights))
    checkpointer.wait_until_finished()
  content = dict(manifest or {})
  content.update(kind=kind, format=1, checksums=_checksums(weights_dir))
  (directory / MANIFEST).write_text(json.dumps(content, indent=1))
  return directory


def read_manifest(directory: PathLike) -> dict:
  """The manifest of a checkpoint directory, checked against its files."""
  directory = _validation.path('directory', directory)
  name = directory.name
  manifest_file = directory / MANIFEST
  if not directory.is_dir() or not any(directory.iterdir()):
    what = ('is empty' if directory.is_dir() else
            'is a file' if directory.exists() else 'does not exist')
    raise FileNotFoundError(
        f'directory {str(directory)!r} {what}: it is not a forecaster'
        f' checkpoint ({MANIFEST} and weights/). Pass a directory written by'
        ' optax_nowcast.forecasters.save (or `optax-nowcast train-forecaster'
        ' --out`), or use forecasters.load(name) for a shipped one.')
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
  expected = manifest.get('checksums') if isinstance(manifest, dict) else None
  if not isinstance(expected, dict) or not expected:
    raise ValueError(
        f'forecaster checkpoint {name!r}: {manifest_file} is not a manifest'
        ' written by optax_nowcast.forecasters.save (it needs a JSON object'
        ' with a non-empty "checksums" table). '
        + RESTORE_HINT.format(name=name))
  if manifest.get('format', 1) != 1:
    raise ValueError(
        f'forecaster checkpoint {name!r}: {manifest_file} has format'
        f' {manifest.get("format")!r}, but this optax-nowcast reads format 1;'
        ' upgrade optax-nowcast or rebuild the checkpoint.')
  weights_dir = directory / 'weights'
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
  """Loads the forecaster in a checkpoint directory (checksums verified).

  Args:
    directory: A checkpoint directory written by :func:`save`.
    **kwargs: Passed on to the forecaster's factory (e.g. ``horizon``); they
      override the manifest's ``forecaster`` entries.

  Returns:
    The :class:`Forecaster`.

  Raises:
    FileNotFoundError: if ``directory`` does not exist, is a file or is
      empty, or its manifest or a weights file is missing; the message names
      it.
    ValueError: if the manifest is not one :func:`save` writes, a file fails
      its checksum, or the weights do not fit the kind the manifest names.
  """
  directory = _validation.path('directory', directory)
  manifest = read_manifest(directory)
  kind = manifest.get('kind')
  if kind not in _registry.names():
    raise ValueError(
        f'forecaster checkpoint {directory.name!r}: unknown kind {kind!r} in'
        f' {directory / MANIFEST}')
  learned = _registry.get(kind)
  target = jax.eval_shape(learned.init_weights, jax.random.key(0))
  ocp = _orbax()
  try:
    _read_every_value(directory / 'weights')
    with ocp.StandardCheckpointer() as checkpointer:
      weights = checkpointer.restore(directory / 'weights', target)
  except (ValueError, KeyError, TypeError) as e:
    raise ValueError(
        f'forecaster checkpoint {directory.name!r}: the weights in'
        f' {directory / "weights"} cannot be read as weights of kind'
        f' {kind!r} (the kind its {MANIFEST} names): {str(e)[:300]}. '
        + RESTORE_HINT.format(name=directory.name)) from e
  config = manifest.get('forecaster', {})
  if not isinstance(config, dict):
    raise ValueError(
        f'forecaster checkpoint {directory.name!r}: "forecaster" in'
        f' {directory / MANIFEST} must be a dict of keyword arguments, got'
        f' {config!r}')
  return learned.make(weights, **{**config, **kwargs})


def load(name: str, **kwargs: Any) -> Forecaster:
  """A shipped pretrained forecaster, ready to pass to ``nowcast``.

  Args:
    name: A shipped forecaster's name (:data:`SHIPPED`), e.g. ``'wnn'``.
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
  known = sorted(SHIPPED)
  if name not in known:
    raise ValueError(f'name must be one of {known}, got {name!r}'
                     + (' (it has no shipped checkpoint yet; train one with'
                        ' `optax-nowcast train-forecaster` and load it with'
                        ' load_from)' if name in _registry.names() else ''))
  return load_from(shipped_root() / name, **kwargs)
