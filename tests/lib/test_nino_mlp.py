"""nino-mlp: NiNo's released per-weight forecaster, equal to its reference.

The fixtures (tests/fixtures/nino/nino_mlp.npz) hold the reference PyTorch
code's forecasts with the released weights (NiNo's own scale_params,
NeuralGraph, NiNoModel and unscale_params, run by make_fixtures.py there);
these tests read them only, never torch.
"""

import doctest
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optax_nowcast as onc
from optax_nowcast.forecasters import _io
from optax_nowcast.forecasters import _nino_mlp as nm
from optax_nowcast.forecasters import _registry

FIXTURES = pathlib.Path(__file__).parents[1] / 'fixtures' / 'nino'
REF = np.load(FIXTURES / 'nino_mlp.npz')
PATHS = ('conv/kernel', 'conv/bias', 'bn/scale', 'bn/bias', 'fc/kernel',
         'fc/bias')
KS = tuple(int(k) for k in REF['ks'])
WINDOWS = REF['window/conv/bias'].shape[0]
CASES = [(p, k, i) for p in PATHS for k in KS for i in range(WINDOWS)]

#: The equality asked of the port: max |ours - reference| over a tensor,
#: relative to the tensor's largest |reference| value.
RTOL = 1e-5


@pytest.fixture(scope='module')
def forecaster():
  return onc.forecasters.load('nino-mlp')


def _relative(got, ref):
  return float(np.max(np.abs(np.asarray(got) - ref)) / np.max(np.abs(ref)))


def _per_scalar(f, window, k, label):
  """What nowcast does with a per-scalar forecaster with ``leaf_scale``."""
  shift, scale = f.leaf_scale(jnp.asarray(window))
  scaled = (jnp.asarray(window) - shift) / scale
  flat = scaled.reshape(window.shape[0], -1).T
  times = jnp.arange(-4.0, 1.0) * 200.0  # records 200 steps apart
  target = jnp.float32(k * 200)
  out = jax.vmap(lambda v: f.apply(f.weights, v, times, target, label))(flat)
  return np.asarray(shift + scale * out).reshape(window.shape[1:])


@pytest.mark.parametrize('path,k,i', CASES)
def test_forecast_leaf_equals_the_reference(forecaster, path, k, i):
  label = str(REF[f'label/{path}'])
  got = nm.forecast_leaf(forecaster.weights, REF[f'window/{path}'][i], k,
                         label)
  ref = REF[f'forecast/k{k}/{path}'][i]
  assert _relative(got, ref) <= RTOL


def test_labels_map_to_nino_parameter_types():
  for path in PATHS:
    assert nm.label_type(str(REF[f'label/{path}'])) == int(REF[f'type/{path}'])
  assert nm.label_type('scalar') == nm.label_type('my-label') == 2
  assert nm.label_type('embedding') == 5
  assert [nm.label_type(n) for n in ('query', 'key', 'value')] == [7, 8, 9]
  assert nm.label_type('dense', {'dense': 9}) == 9


def test_each_of_the_15_type_embeddings_equals_the_reference(forecaster):
  window, k = REF['types/window'], int(REF['types/k'])
  types = {f't{t}': t for t in range(15)}
  for t in range(15):
    got = nm.forecast_leaf(forecaster.weights, window, k, f't{t}', types)
    assert _relative(got, REF['types/forecast'][t]) <= RTOL, t


@pytest.mark.parametrize('path', PATHS)
def test_leaf_scale_is_the_mean_and_unbiased_std_plus_eps(path):
  for i in range(WINDOWS):
    shift, scale = nm.leaf_scale(jnp.asarray(REF[f'window/{path}'][i]))
    np.testing.assert_allclose(shift, REF[f'mu/{path}'][i], rtol=1e-6,
                               atol=1e-9)
    np.testing.assert_allclose(scale, REF[f'sigma/{path}'][i] + nm.EPS,
                               rtol=1e-6)


@pytest.mark.parametrize('path,k,i', CASES)
def test_per_scalar_forecaster_reads_back_with_sigma_plus_eps(
    forecaster, path, k, i):
  # Today's interface scales and unscales by one factor: sigma + eps, where
  # NiNo unscales by sigma. Its forecast is the reference's scaled forecast
  # y read back as mu + (sigma + eps) y: eps * |y| (a few 1e-6) off NiNo's.
  label = str(REF[f'label/{path}'])
  got = _per_scalar(forecaster, REF[f'window/{path}'][i], k, label)
  y = REF[f'scaled/k{k}/{path}'][i]
  mu, sigma = REF[f'mu/{path}'][i], REF[f'sigma/{path}'][i]
  assert _relative(got, mu + (sigma + nm.EPS) * y) <= RTOL
  ref = REF[f'forecast/k{k}/{path}'][i]
  slack = RTOL * np.max(np.abs(ref))
  assert np.all(np.abs(got - ref) <= nm.EPS * np.abs(y) + slack)


def test_a_nowcast_jump_lands_on_the_reference_forecast(forecaster):
  i, k = 0, 26
  windows = {p: REF[f'window/{p}'][i] for p in PATHS}

  def tree(fn):
    return {'conv': {'kernel': fn('conv/kernel'), 'bias': fn('conv/bias')},
            'bn': {'scale': fn('bn/scale'), 'bias': fn('bn/bias')},
            'fc': {'kernel': fn('fc/kernel'), 'bias': fn('fc/bias')}}

  tx = onc.nowcast(forecaster, record_every=1, jump_every=5, horizon=k,
                   last_jump_step=2**31 - 1)
  params = tree(lambda p: jnp.asarray(windows[p][0]))
  state = tx.init(params)
  update = jax.jit(tx.update)
  for step in range(5):
    target = tree(lambda p, s=step: jnp.asarray(windows[p][s]))
    updates = jax.tree.map(lambda t, q: t - q, target, params)
    updates, state = update(updates, state, params)
    params = optax.apply_updates(params, updates)
  assert int(state.jumps) == 1
  labels = {'conv/kernel': 'conv', 'conv/bias': 'bias', 'bn/scale': 'norm',
            'bn/bias': 'bias', 'fc/kernel': 'dense', 'fc/bias': 'bias'}
  for path in PATHS:
    assert str(REF[f'label/{path}']) == labels[path]
    module, name = path.split('/')
    got = np.asarray(params[module][name])
    y = REF[f'scaled/k{k}/{path}'][i]
    mu, sigma = REF[f'mu/{path}'][i], REF[f'sigma/{path}'][i]
    assert _relative(got, mu + (sigma + nm.EPS) * y) <= RTOL, path


def test_an_integer_horizon_is_output_k_minus_1_exactly():
  changes = jnp.arange(1.0, 41.0) * 0.1 + 0.001
  for k in (1, 2, 17, 39, 40):
    assert float(nm.at_horizon(changes, k)) == float(changes[k - 1])
  np.testing.assert_allclose(nm.at_horizon(changes, 2.5),
                             (changes[1] + changes[2]) / 2, rtol=1e-6)
  np.testing.assert_allclose(nm.at_horizon(changes, 0.5), changes[0] / 2,
                             rtol=1e-6)
  assert float(nm.at_horizon(changes, 0.0)) == 0.0
  assert float(nm.at_horizon(changes, 100.0)) == float(changes[-1])


def test_the_per_scalar_target_is_k_record_intervals(forecaster):
  values = jnp.asarray([0.1, -0.2, 0.3, 0.0, 0.5])
  changes = nm.displacements(forecaster.weights, values, 1)
  for k in (1, 7, 40):
    got = forecaster.apply(forecaster.weights, values,
                           jnp.arange(-4.0, 1.0) * 50.0, jnp.float32(50 * k),
                           'dense')
    assert float(got) == pytest.approx(float(values[-1] + changes[k - 1]),
                                       rel=1e-6)


def test_the_shipped_checkpoint_is_the_released_model(forecaster):
  assert forecaster.name == 'nino-mlp'
  assert (forecaster.window, forecaster.horizons) == (5, 40)
  assert forecaster.leaf_scale is nm.leaf_scale
  shapes = jax.tree.map(np.shape, forecaster.weights)
  assert shapes['embed'] == (15, 128)
  assert shapes['input'] == {'kernel': (5, 128), 'bias': (128,)}
  assert len(shapes['hidden']) == 3
  assert shapes['output'] == {'kernel': (128, 40), 'bias': (40,)}
  assert sum(np.size(x) for x in jax.tree.leaves(forecaster.weights)) == 57384
  root = _io.shipped_root() / 'nino-mlp'
  manifest = _io.read_manifest(root)
  assert manifest['kind'] == 'nino-mlp'
  assert manifest['source']['sha256'] == (
      '34d9ff3703274fa07615e27937dac8ea07f375ed95b5bde6d39abd8c41c06f52')
  assert manifest['source']['commit'].startswith('84fb0cf2')
  licence = (root / 'LICENSE').read_text()
  assert 'MIT License' in licence and 'Samsung Electronics' in licence


def test_the_registry_knows_it_and_it_is_not_meta_trained_here():
  learned = _registry.get('nino-mlp')
  assert learned.name == 'nino-mlp' and learned.make is nm.nino_mlp
  assert learned.apply_batch is None and learned.trainer is not None
  assert 'nino-mlp' in _io.SHIPPED


def test_fresh_weights_have_the_released_shapes():
  f = nm.nino_mlp()
  assert jax.tree.map(np.shape, f.weights) == jax.tree.map(
      np.shape, onc.forecasters.load('nino-mlp').weights)
  assert f.horizon == 10.0 and f.name == 'nino-mlp'


@pytest.mark.parametrize('kwargs,match', [
    ({'horizon': 0.0}, 'horizon must be a number in'),
    ({'horizon': 41}, r'horizon must be a number in \(0, 40\]'),
    ({'types': {'dense': 15}}, r'types must map labels .* \[0, 15\)'),
    ({'types': ['dense']}, 'types must be a mapping'),
    ({'weights': {'embed': np.zeros((15, 128))}}, 'nino-mlp weights'),
])
def test_bad_arguments_say_what_is_wrong(kwargs, match):
  with pytest.raises(ValueError, match=match):
    nm.nino_mlp(**kwargs)


def test_user_types_pick_the_embedding_row(forecaster):
  f = nm.nino_mlp(forecaster.weights, types={'attn_q': 7})
  values = jnp.asarray([0.1, -0.2, 0.3, 0.0, 0.5])
  times, target = jnp.arange(-4.0, 1.0), jnp.float32(3.0)
  assert float(f.apply(f.weights, values, times, target, 'attn_q')) == float(
      forecaster.apply(forecaster.weights, values, times, target, 'query'))


def test_docstring_examples_run():
  result = doctest.testmod(nm, extraglobs={'onc': onc},
                           optionflags=doctest.ELLIPSIS)
  assert result.attempted > 0 and result.failed == 0
