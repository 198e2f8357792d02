"""NiNo's released forecasters, converted from their PyTorch archives.

NiNo (Knyazev et al., 2025; github.com/SamsungSAILMontreal/nino, MIT
licence) ships its trained forecasters as ``torch.save`` archives. This
module reads them without PyTorch (:mod:`optax_nowcast.lab.meta.torch_archive`),
maps their tensors onto this library's weights, and writes a checkpoint that
``optax_nowcast.forecasters.load`` reads, with NiNo's licence beside it.

Rebuild the shipped checkpoint (from the repository root)::

  python -m optax_nowcast.lab.meta.nino \\
      --archive ../shared/nino/nino_mlp.pt \\
      --license ../shared/nino/LICENSE --out checkpoints/nino-mlp

These forecasters are not meta-trained here: ``optax-nowcast
train-forecaster --kind nino-mlp`` says so (:func:`train_forecaster`).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import pathlib
import platform
import shutil
import sys
from typing import Any, Optional, Sequence

import numpy as np

from optax_nowcast._files import sha256_file
from optax_nowcast.forecasters import _io
from optax_nowcast.forecasters import _nino_mlp
from optax_nowcast.lab.meta import torch_archive

#: Where the archives come from.
SOURCE = {
    'repository': 'https://github.com/SamsungSAILMontreal/nino',
    'commit': '84fb0cf2a12e06dfcafd9a1550621a1acd16f35b',
    'license': 'MIT (Copyright (c) 2024 Samsung Electronics Co., Ltd.);'
               ' text in LICENSE beside this manifest',
    'paper': 'https://arxiv.org/abs/2409.04434',
}
#: The released ``nino_mlp.pt`` (``checkpoints/nino_mlp.pt`` at that commit).
NINO_MLP_SHA256 = (
    '34d9ff3703274fa07615e27937dac8ea07f375ed95b5bde6d39abd8c41c06f52')
#: The released ``nino_no_posw.pt`` (the graph network without the GPT-2
#: word-position table).
NINO_SHA256 = (
    '2e2186e4a0e50193080eb9074648786ef25cd5ac3149a7df790127fe41101620')
LICENSE = 'LICENSE'


def _dense(state: dict[str, np.ndarray], name: str) -> dict[str, np.ndarray]:
  """PyTorch's ``Linear`` ``name`` (``(out, in)``, ``x W^T + b``) as our
  ``{'kernel': (in, out), 'bias'}``."""
  return {'kernel': np.ascontiguousarray(state[f'{name}.weight'].T,
                                         np.float32),
          'bias': np.asarray(state[f'{name}.bias'], np.float32)}


def nino_mlp_weights(state: dict[str, np.ndarray],
                     model_args: Optional[dict] = None) -> dict[str, Any]:
  """``nino-mlp`` weights from the state dict of NiNo's ``NiNoModel(gnn=False)``.

  PyTorch's ``Linear`` stores ``(out, in)`` and computes ``x W^T + b``;
  our kernels are ``(in, out)``, so every weight matrix is transposed. The
  reference's layers: ``layer_embed`` (the type embedding), ``edge_proj.fc.0``
  (the input projection), ``edge_mlp.fc.{0,2,4}`` (the SiLU layers; the odd
  indices are the activations) and ``edge_mlp.fc.6`` (the 40 outputs).

  Args:
    state: The reference's state dict (name -> array).
    model_args: The archive's ``model_args`` (must say ``gnn=False``).

  Returns:
    The float32 weights of :func:`optax_nowcast.forecasters._nino_mlp.nino_mlp`.
  """
  if model_args is not None and model_args.get('gnn', True) not in (
      False, None, 'None', 'none'):
    raise ValueError(
        f'the archive is a graph network (model_args {model_args}), not'
        ' NiNo-MLP (gnn=False)')
  mlp = sorted(int(k.split('.')[2]) for k in state
               if k.startswith('edge_mlp.fc.') and k.endswith('.weight'))
  expected = {'layer_embed.weight', 'edge_proj.fc.0.weight',
              'edge_proj.fc.0.bias'}
  expected |= {f'edge_mlp.fc.{i}.{p}' for i in mlp for p in ('weight', 'bias')}
  if set(state) != expected or mlp != list(range(0, 2 * len(mlp), 2)):
    raise ValueError(
        'not a NiNo-MLP state dict: expected layer_embed, edge_proj.fc.0 and'
        f' edge_mlp.fc.0, .2, ..., got {sorted(state)}')

  dense = lambda name: _dense(state, name)

  return {
      'embed': np.asarray(state['layer_embed.weight'], np.float32),
      'input': dense('edge_proj.fc.0'),
      'hidden': [dense(f'edge_mlp.fc.{i}') for i in mlp[:-1]],
      'output': dense(f'edge_mlp.fc.{mlp[-1]}'),
  }


def nino_graph_weights(state: dict[str, np.ndarray],
                       model_args: Optional[dict] = None) -> dict[str, Any]:
  """``nino`` graph weights from the state dict of ``NiNoModel(wte_pos_enc=False)``.

  Kernels are transposed to ``(in, out)``. Names: ``layer_embed`` (types),
  ``node_proj.fc.0`` (positions), ``edge_proj.fc.0`` (edge states),
  ``gnn.convs.{l}`` (``edge_encoder`` the FiLM, ``pre_nns.0.0`` the
  message, ``post_nns.0.0`` and ``lin`` the node update) with
  ``gnn.edge_update.{l}`` (``lin_e``, ``lin_s``, ``lin_t``, ``lin1``) for
  ``l = 0, 1``, and ``edge_out.fc.{0,2}``. ``gnn.convs.2`` updates only
  node features that no edge output reads: it is checked and left out.
  """
  if model_args is not None and (
      model_args.get('gnn', True) in (False, 'None', 'none')
      or model_args.get('wte_pos_enc', True) not in (False, 'False')):
    raise ValueError(
        f'the archive is not NiNo\'s graph network without the word-position'
        f' table (model_args {model_args}); convert nino_no_posw.pt')
  expected = {'layer_embed.weight', 'node_proj.fc.0.weight',
              'node_proj.fc.0.bias', 'edge_proj.fc.0.weight',
              'edge_proj.fc.0.bias'}
  for name in ('edge_out.fc.0', 'edge_out.fc.2'):
    expected |= {f'{name}.weight', f'{name}.bias'}
  for l in range(3):
    for part in ('edge_encoder', 'pre_nns.0.0', 'post_nns.0.0', 'lin'):
      expected |= {f'gnn.convs.{l}.{part}.weight', f'gnn.convs.{l}.{part}.bias'}
  for l in range(2):
    for part in ('lin_e', 'lin_s', 'lin_t', 'lin1'):
      expected |= {f'gnn.edge_update.{l}.{part}.weight',
                   f'gnn.edge_update.{l}.{part}.bias'}
  if set(state) != expected:
    raise ValueError(
        'not the state dict of NiNo\'s graph network (3 PNA layers, 2 edge'
        f' updates): missing {sorted(expected - set(state))}, unexpected'
        f' {sorted(set(state) - expected)}')

  dense = lambda name: _dense(state, name)

  layers = []
  for l in range(2):
    c, u = f'gnn.convs.{l}', f'gnn.edge_update.{l}'
    layers.append({
        'film': dense(f'{c}.edge_encoder'),
        'message': dense(f'{c}.pre_nns.0.0'),
        'post': dense(f'{c}.post_nns.0.0'),
        'node': dense(f'{c}.lin'),
        'edge': dense(f'{u}.lin_e'),
        'source': dense(f'{u}.lin_s'),
        'target': dense(f'{u}.lin_t'),
        'edge_out': dense(f'{u}.lin1'),
    })
  return {
      'embed': np.asarray(state['layer_embed.weight'], np.float32),
      'node_input': dense('node_proj.fc.0'),
      'edge_input': dense('edge_proj.fc.0'),
      'layers': layers,
      'out_hidden': dense('edge_out.fc.0'),
      'out': dense('edge_out.fc.2'),
  }


def _checked_state(archive: pathlib.Path, sha256: str, name: str):
  digest = sha256_file(archive)
  if digest != sha256:
    raise ValueError(
        f'{str(archive)!r} has sha256 {digest}, not that of the released'
        f' {name} ({sha256})')
  state, extras = torch_archive.state_dict(archive)
  return state, extras, digest


def convert_nino(archive: Any, mlp_archive: Any, out: Any, *,
                 license_file: Any, command: Optional[str] = None) -> dict:
  """Writes ``nino_no_posw.pt`` (+ ``nino_mlp.pt``) as a ``nino`` checkpoint.

  The checkpoint holds the graph network and, for the leaves a neural
  graph cannot place, NiNo-MLP: ``{'graph': ..., 'mlp': ...}``.

  Args:
    archive: The released ``nino_no_posw.pt``.
    mlp_archive: The released ``nino_mlp.pt``.
    out: The checkpoint directory (a previous conversion is replaced).
    license_file: NiNo's ``LICENSE``, copied to ``out/LICENSE``.
    command: The command line to record in the manifest.

  Returns:
    The manifest written.
  """
  from optax_nowcast.forecasters import _nino  # pylint: disable=g-import-not-at-top
  out, license_file = pathlib.Path(out), pathlib.Path(license_file)
  if not license_file.is_file():
    raise FileNotFoundError(f'license_file {str(license_file)!r} is missing')
  state, extras, digest = _checked_state(pathlib.Path(archive), NINO_SHA256,
                                         'nino_no_posw.pt')
  mlp_state, mlp_extras, mlp_digest = _checked_state(
      pathlib.Path(mlp_archive), NINO_MLP_SHA256, 'nino_mlp.pt')
  weights = {'graph': nino_graph_weights(state, extras.get('model_args')),
             'mlp': nino_mlp_weights(mlp_state,
                                     mlp_extras.get('model_args'))}
  _nino._check_weights(weights)  # pylint: disable=protected-access
  args = lambda e: {k: repr(v) for k, v in e.get('model_args', {}).items()}
  return _write(
      out, 'nino', weights, license_file, command,
      config={'window': _nino.WINDOW, 'width': _nino.WIDTH,
              'message_layers': _nino.LAYERS, 'horizons': _nino.HORIZONS,
              'types': _nino.NUM_TYPES, 'positions': 8, 'features': 9,
              'scale': 'std', 'eps': _nino.EPS},
      source=dict(SOURCE, file='checkpoints/nino_no_posw.pt',
                  sha256=digest, model_args=args(extras),
                  fallback={'file': 'checkpoints/nino_mlp.pt',
                            'sha256': mlp_digest,
                            'model_args': args(mlp_extras)},
                  omitted='gnn.convs.2 (its node features reach no edge'
                          ' output)'))


def _write(out: pathlib.Path, kind: str, weights: Any,
           license_file: pathlib.Path, command: Optional[str], *,
           config: dict, source: dict) -> dict:
  """Saves a converted checkpoint with its manifest and NiNo's licence."""
  # save() replaces only a directory of its own files: set the licence aside.
  if (out / LICENSE).is_file():
    (out / LICENSE).unlink()
  manifest = {
      'forecaster': {},
      'config': config,
      'source': source,
      'data': 'NiNo\'s meta-training corpus (not here): 300 FM-16, 300'
              ' C10-16 and 200 + 200 small GPT-2 LM Adam runs; L1 loss over'
              ' 40 horizons of 200 steps',
      'machine': f'{platform.machine()}, {platform.python_version()}',
      'command': command or 'python -m optax_nowcast.lab.meta.nino',
  }
  _io.save(out, kind, weights, manifest=manifest)
  shutil.copyfile(license_file, out / LICENSE)
  return _io.read_manifest(out)


def convert_nino_mlp(archive: Any, out: Any, *, license_file: Any,
                     command: Optional[str] = None) -> dict:
  """Writes ``nino_mlp.pt`` as a ``nino-mlp`` checkpoint, licence beside it.

  Args:
    archive: The released ``nino_mlp.pt``.
    out: The checkpoint directory (a previous conversion is replaced).
    license_file: NiNo's ``LICENSE``, copied to ``out/LICENSE``.
    command: The command line to record in the manifest.

  Returns:
    The manifest written.
  """
  archive = pathlib.Path(archive)
  out = pathlib.Path(out)
  license_file = pathlib.Path(license_file)
  if not license_file.is_file():
    raise FileNotFoundError(f'license_file {str(license_file)!r} is missing')
  state, extras, digest = _checked_state(archive, NINO_MLP_SHA256,
                                         'nino_mlp.pt')
  weights = nino_mlp_weights(state, extras.get('model_args'))
  window, width, depth, horizons, num_types = _nino_mlp._check_weights(  # pylint: disable=protected-access
      weights)
  return _write(
      out, 'nino-mlp', weights, license_file, command,
      config={'window': window, 'width': width, 'hidden_layers': depth,
              'horizons': horizons, 'types': num_types,
              'scale': 'std', 'eps': _nino_mlp.EPS},
      source=dict(SOURCE, file='checkpoints/nino_mlp.pt', sha256=digest,
                  model_args={k: repr(v) for k, v in
                              extras.get('model_args', {}).items()}))


@dataclasses.dataclass
class FitConfig:
  """Accepted for the ``train-forecaster`` command line; never used."""

  steps: int = 0
  batch_size: int = 0
  learning_rate: float = 0.0
  seed: int = 0


def train_forecaster(*args: Any, **kwargs: Any) -> dict:
  """Refuses: NiNo's forecasters are converted here, not meta-trained.

  Their weights come from NiNo's corpus (1,000 Adam runs on GPUs); this
  repository has no trainer for their architecture. Fine-tuning them on
  this library's trajectories would need one (NiNo's loss: L1 over the 40
  scaled horizons, AdamW 3e-3 with cosine decay).
  """
  del args, kwargs
  raise ValueError(
      'nino-mlp is not meta-trained here: its weights are NiNo\'s released'
      ' ones. Rebuild its checkpoint with `python -m'
      ' optax_nowcast.lab.meta.nino --archive nino_mlp.pt --license'
      ' LICENSE --out checkpoints/nino-mlp`, or train the same kind of'
      ' model with `--kind multihorizon`')


def main(argv: Optional[Sequence[str]] = None) -> int:
  parser = argparse.ArgumentParser(
      prog='python -m optax_nowcast.lab.meta.nino',
      description='Convert NiNo\'s released nino_mlp.pt (no torch needed)'
      ' into a nino-mlp checkpoint with NiNo\'s licence beside it.')
  parser.add_argument('--archive', required=True,
                      help='nino_mlp.pt, or nino_no_posw.pt for --kind nino')
  parser.add_argument('--kind', choices=('nino-mlp', 'nino'),
                      default='nino-mlp', help='which forecaster to write')
  parser.add_argument('--mlp-archive',
                      help='nino_mlp.pt (--kind nino: the per-weight model'
                      ' for the leaves the neural graph does not place)')
  parser.add_argument('--license', required=True, help='NiNo\'s LICENSE')
  parser.add_argument('--out', required=True, help='checkpoint directory')
  args = parser.parse_args(argv)
  command = 'python -m optax_nowcast.lab.meta.nino ' + ' '.join(
      sys.argv[1:] if argv is None else argv)
  try:
    if args.kind == 'nino':
      if not args.mlp_archive:
        raise ValueError('--kind nino needs --mlp-archive nino_mlp.pt')
      manifest = convert_nino(args.archive, args.mlp_archive, args.out,
                              license_file=args.license, command=command)
    else:
      manifest = convert_nino_mlp(args.archive, args.out,
                                  license_file=args.license, command=command)
  except (ValueError, FileNotFoundError) as e:
    print(f'{parser.prog}: error: {e}', file=sys.stderr)
    return 2
  print(f'wrote {os.fspath(args.out)} ({len(manifest["checksums"])} weight'
        ' files, sha256 in manifest.json) and its LICENSE')
  return 0


if __name__ == '__main__':
  sys.exit(main())
