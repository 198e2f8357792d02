"""Bad input to every public function raises an error that says what to change.

Each case calls one public function with one bad argument and checks the
exception type and that the message names the argument and the bad value.
The ``nowcast`` arguments themselves are covered in ``test_nowcast.py``, the
checksums of the shipped checkpoints in ``test_checkpoints.py``.
"""

import json
import re
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import optax_nowcast as onc
from optax_nowcast import forecasters
from optax_nowcast import schedules
from optax_nowcast.forecasters import _curve_fit
from optax_nowcast.forecasters import _introspection
from optax_nowcast.forecasters import _io
from optax_nowcast.forecasters import _wnn

NAN = float('nan')
INF = float('inf')
KEY = jax.random.PRNGKey(0)


def _wnn_weights():
  return _wnn.init_wnn_weights()


def _intro_weights():
  return _introspection.init_introspection_weights()


def _with(tree, value):
  """``tree`` with its first leaf's first element set to ``value``."""
  leaves, treedef = jax.tree.flatten(tree)
  leaves[0] = np.asarray(leaves[0]).copy()
  leaves[0].flat[0] = value
  return jax.tree.unflatten(treedef, leaves)


# ----------------------------------------------------------------------------
# Schedules.

SCHEDULE_CASES = [
    (lambda: schedules.periodic(2**31, 5, 5), r'record_every must be at most 2\*\*31 - 1 .* got 2147483648'),
    (lambda: schedules.periodic(1, 5.0, 5), 'jump_every must be a positive int, got 5.0'),
    (lambda: schedules.periodic(1, 5, True), 'window must be a positive int, got True'),
    (lambda: schedules.periodic(1, 5, 5, horizon=NAN), 'horizon must be a positive number, got nan'),
    (lambda: schedules.periodic(1, 5, 5, horizon=[5.0, INF]), 'horizon must be a positive number, got inf'),
    (lambda: schedules.periodic(1, 5, 5, horizon=np.array([[1.0]])), r'horizon must be a positive number, got array\(\[1\.\]\)'),
    (lambda: schedules.periodic(1, 5, 5, horizon=np.array(-1.0)), r'horizon must be a positive number, got -1\.0'),
    (lambda: schedules.periodic(1, 5, 5, first_jump_step=True), 'first_jump_step must be a non-negative int, got True'),
    (lambda: schedules.periodic(1, 5, 5, first_jump_step=2.5), 'first_jump_step must be a non-negative int, got 2.5'),
    (lambda: schedules.periodic(1, 5, 5, last_jump_step=2**40), r'last_jump_step must be at most 2\*\*31 - 1 .* got 1099511627776'),
    (lambda: schedules.introspection('10'), "jump_steps must be a sequence of ints, got '10'"),
    (lambda: schedules.introspection([10.0]), 'jump_steps must be a positive int, got 10.0'),
    (lambda: schedules.introspection([10, True]), 'jump_steps must be a positive int, got True'),
    (lambda: schedules.introspection([2**31]), r'jump_steps must be at most 2\*\*31 - 1 .* got 2147483648'),
    (lambda: schedules.introspection([10], fractions=0.4), 'fractions must be a sequence of numbers in \\(0, 1\\), got 0.4'),
    (lambda: schedules.introspection([10], fractions='0.4'), "fractions must be a sequence of numbers in \\(0, 1\\), got '0.4'"),
    (lambda: schedules.introspection([10], fractions=('0.4', 0.7)), "fractions must be a finite number, got '0.4'"),
    (lambda: schedules.introspection([10], fractions=(0.4, None)), 'fractions must be a finite number, got None'),
    (lambda: schedules.introspection([10], fractions=(0.4, NAN)), 'fractions must be a finite number, got nan'),
    (lambda: schedules.introspection([10], fractions=()), r'fractions must be increasing values in \(0, 1\), got \[\]'),
    (lambda: schedules.introspection([10], fractions=(0.4, 1.0)), r'fractions must be increasing values in \(0, 1\), got \[0.4, 1.0\]'),
    (lambda: schedules.introspection([10], target_factor=INF), 'target_factor must be a positive number, got inf'),
    (lambda: schedules.introspection([10], target_factor=True), 'target_factor must be a positive number, got True'),
]


# ----------------------------------------------------------------------------
# Curve fits.

CURVE_FIT_CASES = [
    (lambda: forecasters.linear(True), 'window must be a positive int, got True'),
    (lambda: forecasters.linear(None), 'window must be a positive int, got None'),
    (lambda: forecasters.linear(5, NAN), 'horizon must be a positive number, got nan'),
    (lambda: forecasters.linear(5, '5'), "horizon must be a positive number, got '5'"),
    (lambda: forecasters.quadratic(5, -1.0), 'horizon must be a positive number, got -1.0'),
    (lambda: forecasters.quadratic(np.float32(5.0)), r'window must be a positive int, got .*5\.0'),
    (lambda: forecasters.last(True), 'window must be a positive int, got True'),
    (lambda: _curve_fit.polyfit_coefficients(jnp.arange(5.0), 7.0, -1), 'degree must be a non-negative int, got -1'),
    (lambda: _curve_fit.polyfit_coefficients(jnp.arange(5.0), 7.0, 1.0), 'degree must be a non-negative int, got 1.0'),
    (lambda: _curve_fit.polyfit_coefficients(jnp.arange(5.0), 7.0, True), 'degree must be a non-negative int, got True'),
    (lambda: _curve_fit.polyfit_coefficients(jnp.arange(5.0), 7.0, 5), r'degree must be less than the number of times \(5\) .* got 5'),
    (lambda: _curve_fit.polyfit_coefficients(jnp.zeros((2, 5)), 7.0, 1), r'times must be 1-d .* got shape \(2, 5\)'),
    (lambda: _curve_fit.polyfit_coefficients(jnp.arange(5.0), jnp.ones(3), 1), r'target must be a scalar step, got shape \(3,\)'),
]


# ----------------------------------------------------------------------------
# Learned forecasters: weights of the wrong structure or with NaN/inf.

LEARNED_CASES = [
    (lambda: forecasters.wnn(_intro_weights()), r"weights must have exactly the labels \['conv', 'dense', 'bias'\]; missing \['conv', 'dense', 'bias'\], unexpected \['hidden', 'output'\]"),
    (lambda: forecasters.wnn(_with(_wnn_weights(), NAN)), r"weights\['bias'\]\['differences'\]\['activation'\]\['gate'\]\['bias'\] holds 1 non-finite values"),
    (lambda: forecasters.wnn(_with(_wnn_weights(), INF)), 'holds 1 non-finite values .*pass finite weights'),
    (lambda: forecasters.wnn(horizon=NAN), 'horizon must be a positive number, got nan'),
    (lambda: forecasters.wnn(horizon=True), 'horizon must be a positive number, got True'),
    (lambda: forecasters.introspection(_wnn_weights()), r"weights does not match the network: missing params \[\"\['hidden'\]\['bias'\]\""),
    (lambda: forecasters.introspection([1, 2]), 'weights must be a mapping of Flax params, got list'),
    (lambda: forecasters.introspection(jax.tree.map(lambda w: w[..., :3], _intro_weights())), r"weights\['hidden'\]\['bias'\] must have shape \(40,\), got \(3,\)"),
    (lambda: forecasters.introspection(_with(_intro_weights(), NAN)), r"weights\['hidden'\]\['bias'\] holds 1 non-finite values"),
    (lambda: forecasters.introspection(_intro_weights(), key=KEY), 'pass either weights or key, not both'),
    (lambda: _wnn.init_wnn_weights(3), 'key must be a single JAX PRNG key .*got 3'),
    (lambda: _introspection.init_introspection_weights(jax.random.split(KEY)), 'key must be a single JAX PRNG key'),
    (lambda: _wnn.wnn_apply_batch(_intro_weights(), jnp.zeros((3, 5)), 'conv'), 'weights must have exactly the labels'),
    (lambda: _introspection.introspection_apply_batch(_wnn_weights(), jnp.zeros((3, 4))), 'weights does not match the network'),
    (lambda: _wnn.wnn_l1_penalty(_wnn_weights(), kernel=NAN), 'kernel must be a finite number >= 0, got nan'),
    (lambda: _wnn.wnn_l1_penalty(_wnn_weights(), bias=INF), 'bias must be a finite number >= 0, got inf'),
    (lambda: _wnn.wnn_l1_penalty(_wnn_weights(), kernel=True), 'kernel must be a number >= 0, got True'),
]


# ----------------------------------------------------------------------------
# Labels and masks (resolved by nowcast's init and update).

PARAMS = {'w': jnp.zeros((2, 2)), 'b': jnp.zeros(2)}


def _init_and_update(**kwargs):
  tx = onc.nowcast(forecasters.linear(2, 1), record_every=1, jump_every=2,
                   **kwargs)
  state = tx.init(PARAMS)
  tx.update(PARAMS, state, PARAMS)


LABEL_CASES = [
    (lambda: _init_and_update(labels={'w': 3, 'b': 'bias'}), r"labels must be strings \(a leaf kind such as 'dense'\), got 3 at labels\['w'\]"),
    (lambda: _init_and_update(mask={'w': 1, 'b': True}), r"mask must hold Python bools \(True: nowcast the leaf\), got 1 at mask\['w'\]"),
    (lambda: _init_and_update(mask=lambda p: {'w': True, 'b': 'yes'}), r"mask must hold Python bools .*got 'yes' at mask\['b'\]"),
]


@pytest.mark.parametrize(
    'call,match',
    SCHEDULE_CASES + CURVE_FIT_CASES + LEARNED_CASES + LABEL_CASES,
)
def test_bad_arguments_raise_value_errors_naming_them(call, match):
  with pytest.raises(ValueError, match=match):
    call()


def test_valid_edge_inputs_are_still_accepted():
  schedules.periodic(1, 5, 5, horizon=np.array(5.0))  # a 0-d NumPy horizon
  schedules.periodic(np.int64(2), 5, 5, last_jump_step=2**31 - 1)
  schedules.introspection([10], fractions=np.array([0.4, 0.7]))
  _curve_fit.polyfit_coefficients(jnp.arange(5.0), jnp.float32(7.0), 4)


# ----------------------------------------------------------------------------
# Checkpoints: directories that are not checkpoints, manifests that are not
# save's, weights of the wrong kind.


def _copy_wnn(tmp_path, name='ckpt'):
  dst = tmp_path / name
  shutil.copytree(_io.shipped_root() / 'wnn', dst)
  return dst


def _edit_manifest(ckpt, **changes):
  manifest = json.loads((ckpt / _io.MANIFEST).read_text())
  manifest.update(changes)
  (ckpt / _io.MANIFEST).write_text(json.dumps(manifest))


@pytest.mark.parametrize('directory', [None, 3, ''])
def test_load_from_a_non_path_names_the_argument(directory):
  with pytest.raises(ValueError, match='directory must be a directory path'):
    forecasters.load_from(directory)


@pytest.mark.parametrize('what', ['does not exist', 'is empty', 'is a file'])
def test_load_from_a_directory_that_is_no_checkpoint_says_what_to_pass(
    tmp_path, what):
  path = tmp_path / 'ckpt'
  if what == 'is empty':
    path.mkdir()
  elif what == 'is a file':
    path.write_text('weights')
  with pytest.raises(FileNotFoundError,
                     match=f'{re.escape(str(path))}.* {what}: it is not a'
                     ' forecaster checkpoint .*forecasters.save'):
    forecasters.load_from(path)


@pytest.mark.parametrize(
    'manifest,match',
    [
        ('[1, 2]', 'is not a manifest written by .*forecasters.save'),
        ('{"kind": "wnn"}', 'needs a JSON object with a non-empty "checksums"'),
        ('{"kind": "wnn", "checksums": []}', 'non-empty "checksums" table'),
    ],
)
def test_a_manifest_that_save_did_not_write_is_rejected(tmp_path, manifest,
                                                        match):
  ckpt = _copy_wnn(tmp_path)
  (ckpt / _io.MANIFEST).write_text(manifest)
  with pytest.raises(ValueError, match=match):
    forecasters.load_from(ckpt)


def test_a_manifest_of_a_newer_format_says_to_upgrade(tmp_path):
  ckpt = _copy_wnn(tmp_path)
  _edit_manifest(ckpt, format=2)
  with pytest.raises(ValueError, match='has format 2, but this optax-nowcast'
                     ' reads format 1; upgrade'):
    forecasters.load_from(ckpt)


def test_an_unknown_kind_in_the_manifest_is_named(tmp_path):
  ckpt = _copy_wnn(tmp_path)
  _edit_manifest(ckpt, kind='nosuch')
  with pytest.raises(ValueError, match="unknown kind 'nosuch' in .*manifest.json"):
    forecasters.load_from(ckpt)


def test_weights_of_another_kind_than_the_manifest_says_are_named(tmp_path):
  ckpt = _copy_wnn(tmp_path)
  _edit_manifest(ckpt, kind='introspection')
  with pytest.raises(ValueError, match="cannot be read as weights of kind"
                     " 'introspection' .*Restore it"):
    forecasters.load_from(ckpt)


def test_a_truncated_weights_file_with_matching_checksums_is_named(tmp_path):
  # The checksums agree (the file was truncated before they were taken), so
  # only reading the weights finds it.
  ckpt = _copy_wnn(tmp_path)
  weights = ckpt / 'weights'
  victim = sorted((weights / 'ocdbt.process_0' / 'd').iterdir())[0]
  victim.write_bytes(victim.read_bytes()[:100])
  _edit_manifest(ckpt, checksums=_io._checksums(weights))
  with pytest.raises(ValueError, match="cannot be read as weights of kind"
                     " 'wnn'"):
    forecasters.load_from(ckpt)


def test_a_forecaster_entry_that_is_not_a_dict_is_named(tmp_path):
  ckpt = _copy_wnn(tmp_path)
  _edit_manifest(ckpt, forecaster=[10.0])
  with pytest.raises(ValueError, match=r'"forecaster" in .*manifest.json must'
                     r' be a dict of keyword arguments, got \[10.0\]'):
    forecasters.load_from(ckpt)


@pytest.mark.parametrize(
    'kind,weights,manifest,match',
    [
        ('nosuch', 'wnn', None, r"kind must be one of \['introspection', 'multihorizon', 'nino', 'nino-mlp', 'wnn'\], got 'nosuch'"),
        (['wnn'], 'wnn', None, r"kind must be one of .*got \['wnn'\]"),
        ('wnn', 'introspection', None, 'weights must have exactly the labels'),
        ('introspection', 'wnn', None, 'weights does not match the network'),
        ('introspection', 'nan', None, 'holds 1 non-finite values'),
        ('introspection', 'introspection', 'abc', "manifest must be a dict of extra entries or None, got 'abc'"),
        ('introspection', 'introspection', {'seed': object()}, 'manifest must be JSON-serialisable'),
    ],
)
def test_save_checks_its_arguments_before_touching_the_directory(
    tmp_path, kind, weights, manifest, match):
  weights = {'wnn': _wnn_weights, 'introspection': _intro_weights,
             'nan': lambda: _with(_intro_weights(), NAN)}[weights]()
  ckpt = _copy_wnn(tmp_path)
  before = sorted(p.name for p in ckpt.rglob('*'))
  with pytest.raises(ValueError, match=match):
    forecasters.save(ckpt, kind, weights, manifest=manifest)
  assert sorted(p.name for p in ckpt.rglob('*')) == before  # not deleted


def test_save_refuses_to_replace_a_file_or_a_foreign_directory(tmp_path):
  weights = _intro_weights()
  with pytest.raises(ValueError, match='directory must be a directory path'):
    forecasters.save(None, 'introspection', weights)
  file = tmp_path / 'notes.txt'
  file.write_text('keep me')
  with pytest.raises(ValueError, match='notes.txt.* is a file; pass a'
                     ' directory path'):
    forecasters.save(file, 'introspection', weights)
  with pytest.raises(ValueError, match=r"holds \['notes.txt'\], so it is not a"
                     ' forecaster checkpoint that save may replace'):
    forecasters.save(tmp_path, 'introspection', weights)
  assert file.read_text() == 'keep me'


def test_save_still_replaces_an_existing_checkpoint(tmp_path):
  ckpt = _copy_wnn(tmp_path)
  forecasters.save(ckpt, 'introspection', _intro_weights(),
                   manifest={'note': 'replaced'})
  assert forecasters.load_from(ckpt).name == 'introspection'
  assert json.loads((ckpt / _io.MANIFEST).read_text())['note'] == 'replaced'
