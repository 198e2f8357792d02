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
LICENSE = 'LICENSE'


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

  def dense(name):
    return {'kernel': np.ascontiguousarray(state[f'{name}.weight'].T,
                                           np.float32),
            'bias': np.asarray(state[f'{name}.bias'], np.float32)}

  return {
      'embed': np.asarray(state['layer_embed.weight'], np.float32),
      'input': dense('edge_proj.fc.0'),
      'hidden': [dense(f'edge_mlp.fc.{i}') for i in mlp[:-1]],
      'output': dense(f'edge_mlp.fc.{mlp[-1]}'),
  }


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
  digest = sha256_file(archive)
  if digest != NINO_MLP_SHA256:
    raise ValueError(
        f'{str(archive)!r} has sha256 {digest}, not that of the released'
        f' nino_mlp.pt ({NINO_MLP_SHA256})')
  state, extras = torch_archive.state_dict(archive)
  weights = nino_mlp_weights(state, extras.get('model_args'))
  window, width, depth, horizons, num_types = _nino_mlp._check_weights(  # pylint: disable=protected-access
      weights)
  # save() replaces only a directory of its own files: set the licence aside.
  if (out / LICENSE).is_file():
    (out / LICENSE).unlink()
  manifest = {
      'forecaster': {},
      'config': {'window': window, 'width': width, 'hidden_layers': depth,
                 'horizons': horizons, 'types': num_types,
                 'scale': 'std', 'eps': _nino_mlp.EPS},
      'source': dict(SOURCE, file='checkpoints/nino_mlp.pt',
                     sha256=digest,
                     model_args={k: repr(v) for k, v in
                                 extras.get('model_args', {}).items()}),
      'data': 'NiNo\'s meta-training corpus (not here): 300 FM-16, 300'
              ' C10-16 and 200 + 200 small GPT-2 LM Adam runs; L1 loss over'
              ' 40 horizons of 200 steps',
      'machine': f'{platform.machine()}, {platform.python_version()}',
      'command': command or 'python -m optax_nowcast.lab.meta.nino',
  }
  _io.save(out, 'nino-mlp', weights, manifest=manifest)
  shutil.copyfile(license_file, out / LICENSE)
  return _io.read_manifest(out)


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
  parser.add_argument('--archive', required=True, help='nino_mlp.pt')
  parser.add_argument('--license', required=True, help='NiNo\'s LICENSE')
  parser.add_argument('--out', required=True, help='checkpoint directory')
  args = parser.parse_args(argv)
  command = 'python -m optax_nowcast.lab.meta.nino ' + ' '.join(
      sys.argv[1:] if argv is None else argv)
  try:
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
