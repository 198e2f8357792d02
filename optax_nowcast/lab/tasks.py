"""Training tasks: model + data + optimizer + budget, with a jitted loop.

Shared by the meta-training pipeline (which records weight trajectories of
many small runs) and the benchmark (which trains with and without nowcast).
A :class:`Task` is plain data; :func:`train` runs it. Each epoch (or chunk of
steps between evaluations) is one jitted ``lax.scan``, so the host only sees
the model at evaluation and snapshot steps.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from typing import Any, Callable, NamedTuple, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from optax_nowcast.lab import data as data_lib


class MLP(nn.Module):
  """ReLU MLP over flattened inputs."""

  widths: Sequence[int] = (128, 64)
  num_classes: int = 10

  @nn.compact
  def __call__(self, x):
    x = x.reshape(x.shape[0], -1)
    for w in self.widths:
      x = nn.relu(nn.Dense(w)(x))
    return nn.Dense(self.num_classes)(x)


class Conv3x3(nn.Module):
  """A 3x3 convolution computed as patches @ kernel.

  Same parameters (``kernel (3, 3, in, out)``, ``bias``) and outputs as
  ``nn.Conv(features, (3, 3), strides, padding)``, but XLA:CPU runs the small
  convs of these tasks about 6x faster this way (FM-16 train step: 132 ms
  with ``nn.Conv`` vs 21 ms, measured on the 2-core development machine).

  Attributes:
    features: Output channels.
    strides: The stride of both spatial axes.
    padding: ``'SAME'`` (the default) or ``'VALID'`` (no padding), as for
      ``nn.Conv``.
    kernel_init: Initializer of the kernel (default: Flax's
      ``lecun_normal``); :func:`torch_default_init` gives PyTorch's.
    bias_init: Initializer of the bias (default: zeros).
    impl: ``'patches'`` (the default): ``conv_general_dilated_patches`` @
      kernel both ways; ``'xla'``: XLA's conv forward and patch matmuls for
      the gradients (:func:`_conv3x3`), the faster of the two on XLA:CPU
      for NiNo's FM-16 (evaluation 4x, training about the same).
  """

  features: int
  strides: int = 1
  padding: str = 'SAME'
  kernel_init: Callable[..., jax.Array] = nn.initializers.lecun_normal()
  bias_init: Callable[..., jax.Array] = nn.initializers.zeros
  impl: str = 'patches'

  @nn.compact
  def __call__(self, x):
    if self.padding not in ('SAME', 'VALID'):
      raise ValueError(
          f"padding must be 'SAME' or 'VALID', got {self.padding!r}")
    cin = x.shape[-1]
    kernel = self.param('kernel', self.kernel_init,
                        (3, 3, cin, self.features))
    bias = self.param('bias', self.bias_init, (self.features,))
    if self.impl == 'xla':
      return _conv3x3(x, kernel, self.strides, self.padding) + bias
    if self.impl != 'patches':
      raise ValueError(f"impl must be 'patches' or 'xla', got {self.impl!r}")
    patches = jax.lax.conv_general_dilated_patches(
        x, (3, 3), (self.strides, self.strides), self.padding,
        dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
    # The patches' features are ordered (in, kh, kw).
    flat = jnp.transpose(kernel, (2, 0, 1, 3)).reshape(cin * 9, -1)
    return patches @ flat + bias


def _conv3x3_pads(size: int, stride: int,
                  padding: str) -> tuple[tuple[int, int], int]:
  """``((low, high), output size)`` of one spatial axis, as XLA pads it."""
  if padding == 'VALID':
    return (0, 0), (size - 3) // stride + 1
  out = -(-size // stride)
  total = max((out - 1) * stride + 3 - size, 0)
  return (total // 2, total - total // 2), out


def _conv3x3_patches(x: jax.Array, stride: int, padding: str) -> jax.Array:
  """The 3x3 patches of ``x`` (NHWC) by slicing, features ordered (kh, kw,
  in) like a ``(3, 3, in, out)`` kernel's rows."""
  (hl, hh), ho = _conv3x3_pads(x.shape[1], stride, padding)
  (wl, wh), wo = _conv3x3_pads(x.shape[2], stride, padding)
  x = jnp.pad(x, ((0, 0), (hl, hh), (wl, wh), (0, 0)))
  return jnp.concatenate(
      [x[:, i:i + stride * (ho - 1) + 1:stride,
         j:j + stride * (wo - 1) + 1:stride, :]
       for i in range(3) for j in range(3)], axis=-1)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _conv3x3(x: jax.Array, kernel: jax.Array, stride: int,
             padding: str) -> jax.Array:
  """A 3x3 conv (NHWC, HWIO) by XLA, differentiated by patch matmuls.

  XLA:CPU runs the forward conv fast (the FM-16 test set: 4x faster than
  patches @ kernel) but its gradient convs slowly (FM-16 train step about
  1 s with ``nn.Conv``); patch matmuls take the gradients in ~0.1 s.
  """
  pads = [_conv3x3_pads(x.shape[d], stride, padding)[0] for d in (1, 2)]
  return jax.lax.conv_general_dilated(
      x, kernel, (stride, stride), pads,
      dimension_numbers=('NHWC', 'HWIO', 'NHWC'))


def _conv3x3_fwd(x, kernel, stride, padding):
  return _conv3x3(x, kernel, stride, padding), (x, kernel)


def _conv3x3_bwd(stride, padding, residuals, g):
  x, kernel = residuals
  cin, cout = kernel.shape[2], kernel.shape[3]
  patches = _conv3x3_patches(x, stride, padding)
  dkernel = jnp.einsum('nhwp,nhwo->po', patches, g).reshape(kernel.shape)
  if stride == 1 and padding == 'SAME':
    # The input gradient of a stride-1 'same' conv is a 'same' conv of g
    # with the flipped, transposed kernel.
    flipped = jnp.flip(kernel, (0, 1)).transpose(0, 1, 3, 2)
    dx = _conv3x3_patches(g, 1, 'SAME') @ flipped.reshape(9 * cout, cin)
  else:
    _, vjp = jax.vjp(
        lambda x_: _conv3x3_patches(x_, stride, padding)
        @ kernel.reshape(9 * cin, cout), x)
    (dx,) = vjp(g)
  return dx, dkernel


_conv3x3.defvjp(_conv3x3_fwd, _conv3x3_bwd)


def torch_default_init(fan_in: int) -> Callable[..., jax.Array]:
  """PyTorch's default init of ``Conv2d``/``Linear`` weights and biases.

  Both draw from ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` (the weights by
  ``kaiming_uniform_(a=sqrt(5))``, which comes to the same bound).

  Args:
    fan_in: inputs per output unit (``in_channels * kh * kw`` for a conv).

  Returns:
    A Flax initializer ``(key, shape, dtype) -> array``.
  """
  bound = 1.0 / float(fan_in) ** 0.5

  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -bound, bound)

  return init


#: NiNo's Fashion-MNIST input normalisation (``utils/vision.py``
#: ``mnist_norm``), applied to pixels in [0, 1].
NINO_MNIST_MEAN, NINO_MNIST_STD = 0.1307, 0.3081


class NiNoConvNet(nn.Module):
  """NiNo's vision CNN (``utils/vision.py`` ``Net``), FM-16 by default.

  Input normalised by ``(x - mean) / std``; a 3x3 conv with stride 2 and no
  padding (28x28 -> 13x13), then 3x3 convs with stride 1 and 'same' padding,
  ReLU after each, global average pool, Dense. ``channels=(16, 32, 32)`` is
  FM-16 (14,378 params), ``(32, 64, 64)`` FM-32. Weights and biases start
  from PyTorch's default init (:func:`torch_default_init`), as in NiNo's
  runs. The params tree is an ordinary Flax CNN's: ``Conv3x3_0/kernel``
  ``(3, 3, in, out)``, ``Conv3x3_0/bias``, ..., ``Dense_0/kernel``,
  ``Dense_0/bias``.
  """

  channels: Sequence[int] = (16, 32, 32)
  num_classes: int = 10
  mean: float = NINO_MNIST_MEAN
  std: float = NINO_MNIST_STD

  @nn.compact
  def __call__(self, x):
    x = (x - self.mean) / self.std
    for i, c in enumerate(self.channels):
      init = torch_default_init(x.shape[-1] * 9)
      x = nn.relu(Conv3x3(c, strides=2 if i == 0 else 1,
                          padding='VALID' if i == 0 else 'SAME',
                          kernel_init=init, bias_init=init, impl='xla')(x))
    x = jnp.mean(x, axis=(1, 2))
    init = torch_default_init(x.shape[-1])
    return nn.Dense(self.num_classes, kernel_init=init, bias_init=init)(x)


class ConvNet(nn.Module):
  """Stride-2 3x3 convs, global average pool, Dense.

  With ``channels=(16, 32, 32)`` on 28x28x1 inputs this is NiNo's FM-16
  (14,378 params); ``(32, 64, 64)`` is FM-32.
  """

  channels: Sequence[int] = (16, 32, 32)
  num_classes: int = 10

  @nn.compact
  def __call__(self, x):
    for c in self.channels:
      x = nn.relu(Conv3x3(c, strides=2)(x))
    x = jnp.mean(x, axis=(1, 2))
    return nn.Dense(self.num_classes)(x)


class CharTransformer(nn.Module):
  """A small pre-LayerNorm causal transformer over characters.

  Every kernel is a rank-2 ``Dense`` (attention included), so the default
  labels see dense kernels, biases (and LayerNorm scales) and the embeddings.
  """

  vocab_size: int = 65
  context: int = 64
  width: int = 64
  depth: int = 2
  heads: int = 4

  @nn.compact
  def __call__(self, tokens):
    length = tokens.shape[1]
    x = nn.Embed(self.vocab_size, self.width)(tokens)
    pos = self.param('position', nn.initializers.normal(0.02),
                     (self.context, self.width))
    x = x + pos[:length]
    causal = jnp.tril(jnp.ones((length, length), bool))
    head_dim = self.width // self.heads
    for _ in range(self.depth):
      h = nn.LayerNorm()(x)
      q, k, v = jnp.split(nn.Dense(3 * self.width)(h), 3, axis=-1)
      q, k, v = (t.reshape(*t.shape[:2], self.heads, head_dim)
                 for t in (q, k, v))
      scores = jnp.einsum('bqhd,bkhd->bhqk', q, k) / jnp.sqrt(head_dim)
      scores = jnp.where(causal, scores, jnp.finfo(scores.dtype).min)
      attn = jnp.einsum('bhqk,bkhd->bqhd', jax.nn.softmax(scores, -1), v)
      x = x + nn.Dense(self.width)(attn.reshape(*attn.shape[:2], -1))
      h = nn.LayerNorm()(x)
      x = x + nn.Dense(self.width)(nn.gelu(nn.Dense(4 * self.width)(h)))
    return nn.Dense(self.vocab_size)(nn.LayerNorm()(x))


OPTIMIZERS: dict[str, Callable[[float], optax.GradientTransformation]] = {
    'adam': optax.adam,
    'adamw': lambda lr: optax.adamw(lr, weight_decay=1e-4),
    'sgdm': lambda lr: optax.sgd(lr, momentum=0.9),
}


METRICS = ('test_accuracy', 'test_loss', 'valid_loss')
DECAYS = ('constant', 'cosine')


@dataclasses.dataclass(frozen=True)
class Task:
  """One training task.

  Attributes:
    name: Registry name.
    dataset: A name accepted by :func:`optax_nowcast.lab.data.load`.
    model: Builds the Flax module.
    optimizer: Key of :data:`OPTIMIZERS`.
    learning_rate: The optimizer's learning rate.
    batch_size: Minibatch size.
    steps: Training budget in steps.
    eval_every: Steps between evaluations of the test metric.
    metric: ``'test_accuracy'`` (image classification; higher is better) or
      ``'test_loss'`` (image classification: cross-entropy on the test
      images, in nats; lower is better; finer-grained than the accuracy of a
      small test set), or ``'valid_loss'`` (next-character cross-entropy on
      held-out text, in nats; lower is better).
    record_every: Steps between nowcast records in the benchmark (default:
      one epoch of the training set).
    context: Characters per training window (``'valid_loss'`` tasks only).
    decay: The learning-rate schedule: ``'constant'``, or ``'cosine'``
      (cosine decay from ``learning_rate`` to zero at ``steps``).
  """

  name: str
  dataset: str
  model: Callable[[], nn.Module]
  optimizer: str = 'adam'
  learning_rate: float = 1e-3
  batch_size: int = 128
  steps: int = 2000
  eval_every: int = 100
  metric: str = 'test_accuracy'
  record_every: Optional[int] = None
  context: int = 64
  decay: str = 'constant'

  @property
  def higher_is_better(self) -> bool:
    """Whether a larger metric is better (accuracy) or worse (loss)."""
    return self.metric == 'test_accuracy'

  def replace(self, **changes: Any) -> 'Task':
    """A copy with some fields changed (validated like the original)."""
    return dataclasses.replace(self, **changes)

  def __post_init__(self):
    if self.optimizer not in OPTIMIZERS:
      raise ValueError(
          f'optimizer must be one of {sorted(OPTIMIZERS)}, got'
          f' {self.optimizer!r}')
    if self.decay not in DECAYS:
      raise ValueError(f'decay must be one of {DECAYS}, got {self.decay!r}')
    if self.metric not in METRICS:
      raise ValueError(
          f'metric must be one of {METRICS}, got {self.metric!r}')
    for field in ('batch_size', 'steps', 'eval_every', 'context',
                  'record_every'):
      value = getattr(self, field)
      if value is None and field == 'record_every':
        continue
      if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f'{field} must be a positive int, got {value!r}')
    if not self.learning_rate > 0:
      raise ValueError(
          f'learning_rate must be positive, got {self.learning_rate!r}')

  def make_optimizer(self) -> optax.GradientTransformation:
    """The task's optimizer at its learning rate (and schedule)."""
    if self.decay == 'cosine':
      return OPTIMIZERS[self.optimizer](
          optax.cosine_decay_schedule(self.learning_rate, self.steps))
    return OPTIMIZERS[self.optimizer](self.learning_rate)


@dataclasses.dataclass
class TrainResult:
  """Evaluation curve of one run.

  Attributes:
    eval_steps: The steps at which the test metric was evaluated.
    eval_metric: The task's metric (test accuracy or validation loss) at
      ``eval_steps``.
    eval_seconds: Wall-clock seconds of training (compilation, recording and
      forecasting included; evaluation excluded) up to each eval step.
    eval_jumps: Nowcast jumps done up to each eval step (0 without nowcast).
    final_params: The params at the end.
    final_opt_state: The optimizer state at the end.
  """

  eval_steps: list[int]
  eval_metric: list[float]
  eval_seconds: list[float]
  eval_jumps: list[int]
  final_params: Any
  final_opt_state: Any


def nowcast_jumps(opt_state: Any) -> int:
  """Jumps done so far by the nowcast inside an optimizer state (0 if none)."""
  found = optax.tree.get_all_with_path(opt_state, 'NowcastState')
  return int(found[0][1].jumps) if found else 0


def train(
    task: Task,
    seed: int,
    *,
    dataset: Optional[data_lib.Dataset] = None,
    wrap_tx: Optional[Callable[[optax.GradientTransformation],
                               optax.GradientTransformation]] = None,
    snapshot_every: Optional[int] = None,
    on_snapshot: Optional[Callable[[int, Any], None]] = None,
    on_eval: Optional[Callable[[int, float], None]] = None,
    value_fn: Optional[Callable[[Callable[[Any], jax.Array],
                                 Callable[[Any], jax.Array]],
                                Callable[[Any], jax.Array]]] = None,
    optimizer: Optional[optax.GradientTransformation] = None,
    eval_params: Optional[Callable[[Any, Any], Any]] = None,
) -> TrainResult:
  """Trains ``task`` from seed ``seed``.

  Args:
    task: What to train.
    seed: Seed of the init and of the batch order.
    dataset: The loaded dataset (default: ``data.load(task.dataset)``).
    wrap_tx: Optional function applied to the task's optimizer, e.g. to chain
      ``nowcast`` after it.
    snapshot_every: If set, ``on_snapshot(step, params)`` is called with host
      copies of the params at step 0 and every ``snapshot_every`` steps.
    on_snapshot: See ``snapshot_every``.
    on_eval: If set, called as ``on_eval(step, metric)`` after each
      evaluation (e.g. to move a progress bar).
    value_fn: If given, ``update`` also receives the extra argument
      ``value_fn=value_fn(batch_loss, other_loss)``, which turns a
      ``nowcast`` in ``wrap_tx`` into checked jumps: ``batch_loss`` is the
      loss of a params tree on the step's minibatch, ``other_loss`` on
      another minibatch drawn for the step (only when called: on jump
      steps). E.g. ``lambda batch, _: batch``, or a look-ahead
      (:func:`optax_nowcast.lookahead`). Default: no ``value_fn`` (with
      one, every nowcast in the chain is checked).
    optimizer: Replaces the task's optimizer (``task.make_optimizer()``),
      e.g. a peer of the benchmark; ``wrap_tx`` still applies.
    eval_params: ``(opt_state, params) -> params`` to evaluate instead of
      the params, e.g. the averaged iterate of a schedule-free optimizer.

  Returns:
    A :class:`TrainResult` with the task's metric every ``task.eval_every``
    steps (and at the end).
  """
  ds = dataset if dataset is not None else data_lib.load(task.dataset)
  model = task.model()
  tx = task.make_optimizer() if optimizer is None else optimizer
  if wrap_tx is not None:
    tx = wrap_tx(tx)
  key = jax.random.key(seed)
  init_key, data_key = jax.random.split(key)
  # The other minibatches of value_fn: a stream apart from the steps' own.
  other_data_key = jax.random.fold_in(data_key, 2**31 - 1)
  prob = problem(task, ds)
  # The data are the compiled functions' inputs, never their constants.
  data = prob.arrays
  params = model.init(init_key, prob.example)['params']
  opt_state = tx.init(params)

  def loss_fn(params, x, y):
    logits = model.apply({'params': params}, x)
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

  def step(arrays, carry, step_index):
    sample = lambda key: prob.sample(arrays, key)
    params, opt_state = carry
    x, y = sample(jax.random.fold_in(data_key, step_index))
    loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
    extra = {}
    if value_fn is not None:
      other_key = jax.random.fold_in(other_data_key, step_index)
      extra['value_fn'] = value_fn(
          lambda p: loss_fn(p, x, y),
          lambda p: loss_fn(p, *sample(other_key)))
    updates, opt_state = tx.update(grads, opt_state, params, value=loss,
                                   **extra)
    return (optax.apply_updates(params, updates), opt_state), loss

  evaluate = lambda params, arrays: prob.evaluate(params, model.apply, arrays)
  if eval_params is None:
    metric_fn = jax.jit(lambda params, opt_state, arrays: evaluate(
        params, arrays))
  else:
    metric_fn = jax.jit(lambda params, opt_state, arrays: evaluate(
        eval_params(opt_state, params), arrays))

  chunk_fns = {}

  def chunk(params, opt_state, start, length):
    if length not in chunk_fns:
      def fn(params, opt_state, start, arrays):
        (params, opt_state), _ = jax.lax.scan(
            functools.partial(step, arrays), (params, opt_state),
            start + jnp.arange(length))
        return params, opt_state
      chunk_fns[length] = jax.jit(fn, donate_argnums=(0, 1))
    return chunk_fns[length](params, opt_state, start, data)

  # Stop at every evaluation and snapshot step.
  stops = set(range(task.eval_every, task.steps + 1, task.eval_every))
  stops.add(task.steps)
  if snapshot_every is not None:
    stops.update(range(snapshot_every, task.steps + 1, snapshot_every))
    on_snapshot(0, jax.device_get(params))
  eval_steps, eval_metric, eval_seconds, eval_jumps = [], [], [], []
  done, seconds = 0, 0.0
  for stop in sorted(stops):
    start = time.perf_counter()
    params, opt_state = chunk(params, opt_state, jnp.int32(done), stop - done)
    jax.block_until_ready(params)
    seconds += time.perf_counter() - start
    done = stop
    if snapshot_every is not None and stop % snapshot_every == 0:
      on_snapshot(stop, jax.device_get(params))
    if stop % task.eval_every == 0 or stop == task.steps:
      eval_steps.append(stop)
      eval_metric.append(float(metric_fn(params, opt_state, data)))
      eval_seconds.append(seconds)
      eval_jumps.append(nowcast_jumps(opt_state))
      if on_eval is not None:
        on_eval(stop, eval_metric[-1])
  return TrainResult(eval_steps, eval_metric, eval_seconds, eval_jumps,
                     params, opt_state)


def steps_per_epoch(task: Task, dataset: Any) -> int:
  """Steps in one pass over the training set (images, or characters)."""
  if task.metric == 'valid_loss':
    return max(1, len(dataset.train) // (task.batch_size * task.context))
  return max(1, len(dataset.x_train) // task.batch_size)


class Problem(NamedTuple):
  """A task's data as arrays and the pure functions that read them.

  The functions take the arrays as an argument, so a jitted loop can take
  them as inputs rather than as constants folded into its program (which
  costs seconds of compilation per program on a 60,000-image dataset).

  Attributes:
    arrays: The device arrays (train split, evaluation split).
    sample: ``(arrays, key) -> (inputs, targets)``, one minibatch.
    evaluate: ``(params, apply, arrays) -> metric``, the task's metric.
    example: One input, to initialise the model.
  """

  arrays: dict[str, jax.Array]
  sample: Callable[[dict[str, jax.Array], jax.Array], tuple[Any, Any]]
  evaluate: Callable[[Any, Callable[..., Any], dict[str, jax.Array]],
                     jax.Array]
  example: jax.Array


def problem(task: Task, ds: Any,
            eval_examples: Optional[int] = None) -> Problem:
  """The data arrays, minibatch sampler and metric of ``task`` on ``ds``.

  Minibatches are drawn uniformly (with replacement across steps): cheap
  inside the scan, and an epoch is :func:`steps_per_epoch` steps.

  Args:
    task: The task.
    ds: Its loaded dataset.
    eval_examples: Evaluate on at most this many test images or held-out
      text windows (default: all test images, and up to 256 windows, never
      more).

  Returns:
    The :class:`Problem`.
  """
  if task.metric == 'valid_loss':
    if not isinstance(ds, data_lib.CharCorpus):
      raise ValueError(f'task {task.name!r} needs a text corpus, got'
                       f' dataset {task.dataset!r}')
    span = task.context + 1
    # Held-out windows: up to 256 disjoint spans of the validation text.
    count = min(256, eval_examples or 256, len(ds.valid) // span)
    arrays = dict(train=jnp.asarray(ds.train), valid=jnp.asarray(
        ds.valid[:count * span].reshape(count, span)))

    def sample(arrays, key):
      train_ids = arrays['train']
      starts = jax.random.randint(key, (task.batch_size,), 0,
                                  len(train_ids) - span)
      windows = jax.vmap(
          lambda s: jax.lax.dynamic_slice(train_ids, (s,), (span,)))(starts)
      return windows[:, :-1], windows[:, 1:]

    def evaluate(params, apply, arrays):
      valid = arrays['valid']
      logits = apply({'params': params}, valid[:, :-1])
      return optax.softmax_cross_entropy_with_integer_labels(
          logits, valid[:, 1:]).mean()

    return Problem(arrays, sample, evaluate, arrays['valid'][:1, :-1])

  end = None if eval_examples is None else eval_examples
  arrays = dict(x_train=jnp.asarray(ds.x_train),
                y_train=jnp.asarray(ds.y_train),
                x_test=jnp.asarray(ds.x_test[:end]),
                y_test=jnp.asarray(ds.y_test[:end]))

  def sample(arrays, key):
    idx = jax.random.randint(key, (task.batch_size,), 0,
                             len(arrays['x_train']))
    return arrays['x_train'][idx], arrays['y_train'][idx]

  def evaluate(params, apply, arrays):
    logits = apply({'params': params}, arrays['x_test'])
    if task.metric == 'test_loss':
      return optax.softmax_cross_entropy_with_integer_labels(
          logits, arrays['y_test']).mean()
    return jnp.mean(jnp.argmax(logits, -1) == arrays['y_test'])

  return Problem(arrays, sample, evaluate, arrays['x_train'][:1])


def _fm16():
  return ConvNet((16, 32, 32))


TASKS: dict[str, Task] = {}


def register(task: Task) -> Task:
  """Adds a task to :data:`TASKS` (names are unique)."""
  if task.name in TASKS:
    raise ValueError(f'task {task.name!r} is already registered')
  TASKS[task.name] = task
  return task


def get(name: str) -> Task:
  """The registered task called ``name``."""
  if name not in TASKS:
    zoo = [t for t in TASKS if t.startswith('zoo-')]
    raise ValueError(
        f'unknown task {name!r}; known: {public_names()} (and'
        f' {len(zoo)} tasks of the meta-training zoo, zoo-*: {zoo[0]}, ...)')
  return TASKS[name]


def public_names() -> list[str]:
  """The registered tasks but the meta-training zoo's (``zoo-*``), sorted."""
  return sorted(t for t in TASKS if not t.startswith('zoo-'))


# The benchmark tasks' learning rates are the best of a sweep
# (``optax-nowcast tune --suite``, results/lr_sweep/<task>.md).
register(Task('digits-mlp', 'digits', lambda: MLP((128, 64)),
              learning_rate=4e-3, batch_size=64, steps=1320, eval_every=22))
# The demo's task: generated, with 10,000 test images (data.load_teacher).
register(Task('teacher-mlp', 'teacher', lambda: MLP((128, 64)),
              learning_rate=5e-4, batch_size=128, steps=3000, eval_every=50))
register(Task('fmnist-cnn16', 'fashion_mnist', _fm16, learning_rate=4e-3,
              batch_size=128, steps=10_000, eval_every=200))
register(Task('fmnist-cnn32', 'fashion_mnist', lambda: ConvNet((32, 64, 64)),
              learning_rate=4e-3, batch_size=128, steps=10_000,
              eval_every=200))
register(Task('mnist-mlp', 'mnist', lambda: MLP((256, 128)),
              learning_rate=2e-3, batch_size=128, steps=5_000, eval_every=100))
register(Task('mnist-cnn', 'mnist', lambda: ConvNet((16, 32, 32)),
              learning_rate=8e-3, batch_size=128, steps=5_000,
              eval_every=100))


# NiNo's own FM-16 (Knyazev et al., 2025; utils/vision.py and
# train_vision.py of its repository): its CNN, the first 55,000 training
# images, AdamW at 6e-3 with no weight decay (= Adam), batch 128, 10k steps,
# target 89.5% test accuracy (benchmarks/nino_fm16.py runs its protocol).
register(Task('nino-fm16', 'fashion_mnist_nino', NiNoConvNet,
              learning_rate=6e-3, batch_size=128, steps=10_000,
              eval_every=10, record_every=200))


register(Task('shakespeare-charlm', 'shakespeare', CharTransformer,
              learning_rate=8e-3, batch_size=32, steps=3_000, eval_every=100,
              metric='valid_loss', record_every=100, context=64))


# Tasks used only to record meta-training trajectories.
register(Task('digits-mlp-wide', 'digits', lambda: MLP((256, 128)),
              batch_size=64, steps=1320, eval_every=110))
register(Task('digits-cnn', 'digits', lambda: ConvNet((16, 32, 32)),
              batch_size=64, steps=1320, eval_every=110))
register(Task('digits-mlp-narrow', 'digits', lambda: MLP((64,)),
              batch_size=64, steps=1320, eval_every=110))
register(Task('fmnist-mlp', 'fashion_mnist', lambda: MLP((128,)),
              batch_size=128, steps=2340, eval_every=234))


# The meta-training corpus (zoo 'corpus', optax_nowcast/lab/meta/zoo.py):
# MLPs and CNNs of many widths and depths on digits, MNIST and Fashion-MNIST,
# and character transformers on the Python standard library's source. All
# named zoo-*, so none is a benchmark task; there is no CNN on MNIST (the
# benchmark's unseen mnist-cnn) and no text but pystdlib (shakespeare-charlm
# stays unseen).
_ZOO_IMAGES = {
    # dataset: (short name, steps, batch size, MLP (width, depth)s,
    #           CNN (base channels, depth)s)
    'digits': ('digits', 2000, 64,
               ((32, 1), (64, 2), (128, 1), (128, 3), (256, 2), (512, 1)),
               ((8, 2), (8, 3), (32, 2))),
    'mnist': ('mnist', 3000, 128,
              ((32, 3), (64, 1), (128, 2), (256, 1), (512, 2)), ()),
    'fashion_mnist': ('fmnist', 3000, 128,
                      ((32, 2), (64, 2), (128, 3), (256, 1), (512, 1)),
                      ((8, 2), (8, 3), (8, 4), (12, 3))),
}
#: Character transformers on pystdlib: (width, depth, context).
_ZOO_TRANSFORMERS = ((32, 1, 64), (32, 2, 32), (48, 2, 32), (64, 1, 32),
                     (64, 2, 32))
ZOO_TEXT_STEPS = 2400


def _zoo_mlp(widths: tuple[int, ...]) -> Callable[[], nn.Module]:
  return lambda: MLP(widths)


def _zoo_cnn(channels: tuple[int, ...]) -> Callable[[], nn.Module]:
  return lambda: ConvNet(channels)


def _zoo_transformer(width: int, depth: int,
                     context: int) -> Callable[[], nn.Module]:
  return lambda: CharTransformer(
      vocab_size=len(data_lib.PYSTDLIB_VOCAB), context=context, width=width,
      depth=depth, heads=max(1, width // 16))


def _register_zoo_tasks() -> None:
  for dataset, (short, steps, batch, mlps, cnns) in _ZOO_IMAGES.items():
    for width, depth in mlps:
      register(Task(f'zoo-{short}-mlp-{width}x{depth}', dataset,
                    _zoo_mlp((width,) * depth), batch_size=batch,
                    steps=steps, eval_every=steps // 10))
    for base, depth in cnns:
      channels = (base,) + (2 * base,) * (depth - 1)
      register(Task(f'zoo-{short}-cnn-{base}x{depth}', dataset,
                    _zoo_cnn(channels), batch_size=batch, steps=steps,
                    eval_every=steps // 10))
  for width, depth, context in _ZOO_TRANSFORMERS:
    register(Task(f'zoo-pystdlib-tf-{width}x{depth}', 'pystdlib',
                  _zoo_transformer(width, depth, context),
                  learning_rate=3e-3, batch_size=16, steps=ZOO_TEXT_STEPS,
                  eval_every=ZOO_TEXT_STEPS // 10, metric='valid_loss',
                  context=context))


_register_zoo_tasks()
