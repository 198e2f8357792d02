"""Reading torch.save archives without torch: tiny archives made by hand."""

import pathlib
import pickle
import struct
import zipfile

import numpy as np
import pytest

from optax_nowcast.forecasters import _io
import optax_nowcast as onc
from optax_nowcast.lab.meta import nino
from optax_nowcast.lab.meta import torch_archive

NINO_MLP = pathlib.Path(__file__).parents[2] / '..' / 'shared' / 'nino' / (
    'nino_mlp.pt')


class _Pickle:
  """Writes the pickle opcodes torch.save emits for a dict of tensors."""

  def __init__(self):
    self.out = bytearray(b'\x80\x02}(')  # PROTO 2, EMPTY_DICT, MARK

  def _str(self, s):
    data = s.encode()
    self.out += b'X' + struct.pack('<I', len(data)) + data  # BINUNICODE

  def _int(self, n):
    self.out += b'J' + struct.pack('<i', n)  # BININT

  def _tuple(self, values):
    self.out += b'('
    for v in values:
      self._int(v)
    self.out += b't'  # TUPLE

  def tensor(self, name, storage_type, key, numel, offset, size, stride,
             module='torch'):
    self._str(name)
    self.out += b'ctorch._utils\n_rebuild_tensor_v2\n('  # GLOBAL, MARK
    self.out += b'('  # persistent id tuple
    self._str('storage')
    self.out += f'c{module}\n{storage_type}\n'.encode()
    self._str(key)
    self._str('cpu')
    self._int(numel)
    self.out += b'tQ'  # TUPLE, BINPERSID
    self._int(offset)
    self._tuple(size)
    self._tuple(stride)
    self.out += b'\x89'  # NEWFALSE (requires_grad)
    self.out += b'ccollections\nOrderedDict\n)R'  # backward hooks
    self.out += b'tR'  # TUPLE, REDUCE

  def raw_global(self, name, module, attr):
    self._str(name)
    self.out += f'c{module}\n{attr}\n'.encode()

  def done(self):
    return bytes(self.out + b'u.')  # SETITEMS, STOP


def _archive(path, pkl, storages, byteorder='little'):
  with zipfile.ZipFile(path, 'w') as z:
    z.writestr('model/data.pkl', pkl)
    z.writestr('model/byteorder', byteorder)
    for key, data in storages.items():
      z.writestr(f'model/data/{key}', data)
    z.writestr('model/version', '3\n')
  return path


def test_tensors_come_back_with_their_dtype_offset_shape_and_stride(
    tmp_path):
  base = np.arange(24, dtype=np.float32)
  longs = np.array([7, -3, 2**40], np.int64)
  p = _Pickle()
  p.tensor('dense', 'FloatStorage', '0', 24, 0, (4, 6), (6, 1))
  p.tensor('transposed', 'FloatStorage', '0', 24, 0, (6, 4), (1, 6))
  p.tensor('window', 'FloatStorage', '0', 24, 8, (2, 2), (6, 2))
  p.tensor('longs', 'LongStorage', '1', 3, 1, (2,), (1,))
  p.tensor('scalar', 'DoubleStorage', '2', 1, 0, (), ())
  path = _archive(tmp_path / 'a.pt', p.done(), {
      '0': base.tobytes(), '1': longs.tobytes(),
      '2': np.float64(2.5).tobytes()})
  got = torch_archive.load(path)
  assert list(got) == ['dense', 'transposed', 'window', 'longs', 'scalar']
  np.testing.assert_array_equal(got['dense'], base.reshape(4, 6))
  np.testing.assert_array_equal(got['transposed'], base.reshape(4, 6).T)
  np.testing.assert_array_equal(got['window'],
                                base.reshape(4, 6)[1:3, 2:6:2])
  np.testing.assert_array_equal(got['longs'], longs[1:])
  assert got['longs'].dtype == np.int64
  assert got['scalar'].shape == () and got['scalar'] == 2.5
  assert got['dense'].dtype == np.float32 and got['dense'].flags.writeable


def test_a_big_endian_archive_is_read_in_native_order(tmp_path):
  values = np.array([1.5, -2.25, 3.0], np.float32)
  p = _Pickle()
  p.tensor('w', 'FloatStorage', '0', 3, 0, (3,), (1,))
  path = _archive(tmp_path / 'b.pt', p.done(),
                  {'0': values.astype('>f4').tobytes()}, byteorder='big')
  np.testing.assert_array_equal(torch_archive.load(path)['w'], values)


def test_a_foreign_global_is_refused_by_name(tmp_path):
  p = _Pickle()
  p.raw_global('evil', 'os', 'system')
  path = _archive(tmp_path / 'c.pt', p.done(), {})
  with pytest.raises(ValueError, match='os.system'):
    torch_archive.load(path)


def test_a_view_past_its_storage_is_refused(tmp_path):
  p = _Pickle()
  p.tensor('w', 'FloatStorage', '0', 4, 2, (2, 2), (2, 1))
  path = _archive(tmp_path / 'd.pt', p.done(),
                  {'0': np.zeros(4, np.float32).tobytes()})
  with pytest.raises(ValueError, match='reaches element 5'):
    torch_archive.load(path)


def test_a_file_that_is_not_a_zip_archive_is_refused(tmp_path):
  path = tmp_path / 'legacy.pt'
  path.write_bytes(pickle.dumps({'a': 1}))
  with pytest.raises(ValueError, match='not a PyTorch zip archive'):
    torch_archive.load(path)


@pytest.mark.skipif(not NINO_MLP.is_file(), reason='nino_mlp.pt not here')
def test_the_shipped_nino_mlp_checkpoint_is_the_released_archive():
  import jax  # pylint: disable=g-import-not-at-top
  state, extras = torch_archive.state_dict(NINO_MLP)
  assert extras == {'model_args': {'gnn': False}}
  weights = nino.nino_mlp_weights(state, extras['model_args'])
  shipped = _io.load('nino-mlp').weights
  assert jax.tree.structure(weights) == jax.tree.structure(shipped)
  for a, b in zip(jax.tree.leaves(weights), jax.tree.leaves(shipped)):
    np.testing.assert_array_equal(a, np.asarray(b))
  np.testing.assert_array_equal(weights['input']['kernel'],
                                state['edge_proj.fc.0.weight'].T)


@pytest.mark.skipif(not NINO_MLP.is_file(), reason='../shared/nino not here')
def test_conversion_reproduces_the_shipped_nino_checkpoint(tmp_path):
  # Every value bit for bit, and the manifest but for the command line and
  # orbax's file checksums (its OCDBT files carry timestamps, paths and
  # random names, so the files themselves differ from run to run).
  import jax  # pylint: disable=g-import-not-at-top
  shared = NINO_MLP.parent
  manifest = nino.convert_nino(shared / 'nino_no_posw.pt', NINO_MLP,
                               tmp_path / 'nino',
                               license_file=shared / 'LICENSE')
  ours = onc.forecasters.load_from(tmp_path / 'nino').weights
  shipped = _io.load('nino').weights
  assert jax.tree.structure(ours) == jax.tree.structure(shipped)
  for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(shipped)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  state, _ = torch_archive.state_dict(shared / 'nino_no_posw.pt')
  np.testing.assert_array_equal(ours['graph']['layers'][1]['film']['kernel'],
                                state['gnn.convs.1.edge_encoder.weight'].T)
  released = _io.read_manifest(_io.shipped_root() / 'nino')
  for key in ('command', 'checksums', 'machine'):
    manifest.pop(key)
    released.pop(key)
  assert manifest == released
  assert (tmp_path / 'nino' / 'LICENSE').read_bytes() == (
      shared / 'LICENSE').read_bytes()


def test_a_graph_archive_is_not_taken_for_nino_mlp_and_back():
  with pytest.raises(ValueError, match='graph network'):
    nino.nino_mlp_weights({}, {'wte_pos_enc': False})
  with pytest.raises(ValueError, match='nino_no_posw'):
    nino.nino_graph_weights({}, {'gnn': False})
  with pytest.raises(ValueError, match='missing'):
    nino.nino_graph_weights({'layer_embed.weight': np.zeros((15, 128))},
                            {'wte_pos_enc': False})


def test_train_forecaster_says_nino_mlp_is_converted_not_trained():
  with pytest.raises(ValueError, match='not meta-trained here'):
    nino.train_forecaster('trajectories', 'out', config=nino.FitConfig())
