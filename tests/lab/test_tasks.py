"""The task registry and its training loop (images and characters)."""

import math

import numpy as np
import optax
import pytest

import optax_nowcast as onc
from optax_nowcast.lab import data as data_lib
from optax_nowcast.lab import tasks

# These tests check the blind jumps themselves, so they let them run to the
# end of the run (nowcast asks for an end, or for value_fn-checked jumps).
JUMP_TO_THE_END = 2**31 - 1


def _corpus():
  # A generated text with an obvious next-character rule: 'abcd' repeated,
  # so a char LM's validation loss falls well below log(vocab) quickly.
  text = 'abcd' * 3000
  vocab = ''.join(sorted(set(text)))
  ids = np.array([vocab.index(c) for c in text], np.int32)
  cut = int(0.9 * len(ids))
  return data_lib.CharCorpus('generated', text, vocab, ids[:cut], ids[cut:])


@pytest.mark.slow
def test_charlm_trains_and_reports_validation_loss():
  task = tasks.get('shakespeare-charlm').replace(
      steps=60, eval_every=20, batch_size=8, context=16,
      learning_rate=3e-3)  # (the tuned 8e-3 fits this toy text by step 20)
  assert not task.higher_is_better
  wrap = lambda tx: optax.chain(tx, onc.nowcast(
      onc.forecasters.linear(3, 2), record_every=10, jump_every=3,
      last_jump_step=JUMP_TO_THE_END))
  result = tasks.train(task, 0, dataset=_corpus(), wrap_tx=wrap)
  assert result.eval_steps == [20, 40, 60]
  assert all(math.isfinite(m) for m in result.eval_metric)
  assert result.eval_metric[-1] < 0.5 * math.log(65)
  assert result.eval_metric[-1] < result.eval_metric[0]
  assert result.eval_jumps[-1] == 2  # Records at 10..60: jumps at 30, 60.
  assert tasks.steps_per_epoch(task, _corpus()) == len(_corpus().train) // 128


def test_charlm_needs_a_text_corpus():
  task = tasks.get('shakespeare-charlm').replace(steps=2, eval_every=1)
  with pytest.raises(ValueError, match='needs a text corpus'):
    tasks.train(task, 0, dataset=data_lib.load('digits'))


@pytest.mark.parametrize('change, match', [
    (dict(metric='bleu'), "metric must be one of .*got 'bleu'"),
    (dict(record_every=0), 'record_every must be a positive int, got 0'),
    (dict(context=True), 'context must be a positive int, got True'),
    (dict(steps=2.5), 'steps must be a positive int, got 2.5'),
    (dict(optimizer='lion'), "optimizer must be one of .*got 'lion'"),
    (dict(learning_rate=-1.0), 'learning_rate must be positive, got -1.0'),
])
def test_task_rejects_bad_fields(change, match):
  with pytest.raises(ValueError, match=match):
    tasks.get('digits-mlp').replace(**change)


def test_unknown_task_lists_the_known_ones():
  with pytest.raises(ValueError, match="unknown task 'cifar'.*digits-mlp"):
    tasks.get('cifar')


@pytest.mark.parametrize('metric', ['test_accuracy', 'test_loss'])
def test_image_metric_is_the_accuracy_or_the_cross_entropy_on_the_test_set(
    metric):
  import jax  # pylint: disable=g-import-not-at-top
  task = tasks.get('teacher-mlp').replace(metric=metric)
  assert task.higher_is_better == (metric == 'test_accuracy')
  ds = data_lib.load_teacher(train=64, test=50)
  model = task.model()
  params = model.init(jax.random.PRNGKey(0), ds.x_test[:1])['params']
  prob = tasks.problem(task, ds)
  got = float(prob.evaluate(params, model.apply, prob.arrays))
  logits = np.asarray(model.apply({'params': params}, ds.x_test),
                      np.float64)
  if metric == 'test_accuracy':
    want = np.mean(logits.argmax(-1) == ds.y_test)
  else:
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    want = -np.mean(logp[np.arange(len(ds.y_test)), ds.y_test])
  np.testing.assert_allclose(got, want, rtol=1e-5)
