"""``onc.lookahead``: a value_fn that judges params after sign-descent steps."""

from absl.testing import parameterized
import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax

import optax_nowcast as onc


def _valley(p):
  # A slow direction (p[0], optimum 10) and a sharp one (p[1], optimum 0).
  return 0.01 * (p[0] - 10.0) ** 2 + 100.0 * p[1] ** 2


class LookaheadTest(parameterized.TestCase):

  def test_zero_steps_is_the_loss_itself(self):
    value_fn = onc.lookahead(_valley, steps=0, learning_rate=0.1)
    p = jnp.array([1.0, 0.5])
    chex.assert_trees_all_close(value_fn(p), _valley(p))

  @parameterized.parameters(1, 3, 7)
  def test_judges_after_m_sign_descent_steps(self, steps):
    # From (0, 0.35), sign descent at 0.1 moves p[0] up by 0.1 a step and
    # p[1] down while it is positive.
    value_fn = jax.jit(onc.lookahead(_valley, steps=steps, learning_rate=0.1))
    p = np.array([0.0, 0.35])
    for _ in range(steps):
      g = jax.grad(_valley)(jnp.asarray(p))
      p = p - 0.1 * np.sign(np.asarray(g))
    chex.assert_trees_all_close(value_fn(jnp.array([0.0, 0.35])),
                                _valley(jnp.asarray(p)), rtol=1e-5)

  def test_eval_fn_is_what_is_judged(self):
    value_fn = onc.lookahead(_valley, steps=2, learning_rate=0.1,
                             eval_fn=lambda p: p[0])
    chex.assert_trees_all_close(value_fn(jnp.zeros(2)), 0.2, rtol=1e-6)

  def test_keeps_each_leaf_dtype_and_returns_float32(self):
    params = {'w': jnp.ones(3, jnp.bfloat16), 'b': jnp.ones(2)}
    seen = []

    def loss(p):
      seen.append(jax.tree.map(lambda x: x.dtype, p))
      return jnp.sum(p['w'].astype(jnp.float32) ** 2) + jnp.sum(p['b'] ** 2)

    value = onc.lookahead(loss, steps=2, learning_rate=0.25)(params)
    self.assertEqual(value.dtype, jnp.float32)
    self.assertTrue(all(s == {'w': jnp.bfloat16, 'b': jnp.float32}
                        for s in seen))
    chex.assert_trees_all_close(value, 3 * 0.25 + 2 * 0.25)

  def test_a_jump_that_pays_after_recovery_is_taken(self):
    # p_n = (5, 0.375), linear's forecast (10, 0.625). Right after the jump
    # the sharp direction costs more (19.5 vs 9.5 without it); after 10
    # sign-descent steps of 0.125 p[1] is back at 0 either way and p[0] is
    # at 10 vs 6.25: 0 vs 1.4. A greedy check stays; the look-ahead jumps.
    def loss(p):
      return 0.1 * (p[0] - 10.0) ** 2 + 50.0 * p[1] ** 2

    chosen = {}
    for name, steps in (('greedy', 0), ('lookahead', 10)):
      value_fn = onc.lookahead(loss, steps=steps, learning_rate=0.125)
      tx = onc.nowcast(onc.forecasters.linear(window=2, horizon=1.0),
                       record_every=1, jump_every=2, select=(1.0,))
      params = jnp.zeros(2)
      state = tx.init(params)
      for update in (jnp.array([0.0, 0.125]), jnp.array([5.0, 0.25])):
        u, state = tx.update(update, state, params, value_fn=value_fn)
        params = optax.apply_updates(params, u)
      chosen[name] = (state.selected.tolist(), params)
    self.assertEqual(chosen['greedy'][0], [1, 0])
    chex.assert_trees_all_close(chosen['greedy'][1], jnp.array([5.0, 0.375]))
    self.assertEqual(chosen['lookahead'][0], [0, 1])
    # The jump goes to the forecast itself, not to the look-ahead's end.
    chex.assert_trees_all_close(chosen['lookahead'][1],
                                jnp.array([10.0, 0.625]), rtol=1e-6)

  @parameterized.parameters(
      dict(steps=-1, learning_rate=0.1, match='steps'),
      dict(steps=1.5, learning_rate=0.1, match='steps'),
      dict(steps=2, learning_rate=0.0, match='learning_rate'),
      dict(steps=2, learning_rate=float('nan'), match='learning_rate'),
  )
  def test_bad_arguments_are_named(self, steps, learning_rate, match):
    with self.assertRaisesRegex(ValueError, match):
      onc.lookahead(_valley, steps=steps, learning_rate=learning_rate)
