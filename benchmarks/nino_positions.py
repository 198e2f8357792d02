"""How much NiNo's forecast moves with its node positions.

NiNo's positions are Laplacian eigenvectors, whose signs (and, for a
repeated eigenvalue, basis) no solver fixes; the reference flips every
sign at random, also at inference. For the three fixture models (an MLP,
NiNo's FM-16 CNN, a 2-block GPT-2: ``tests/fixtures/nino``), this prints the
largest change of the forecast (relative to each tensor's largest value)
between the reference's own positions and (a) ours (deterministic signs),
(b) ours with random sign flips, (c) a random rotation within each repeated
eigenvalue's eigenspace, at horizons 1, 10 and 40.

  python benchmarks/nino_positions.py
"""

import pathlib
import sys

import jax
import jax.numpy as jnp
import numpy as np

import optax_nowcast as onc
from optax_nowcast.forecasters import _neural_graph
from optax_nowcast.forecasters import _nino

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / 'tests'
                       / 'lib'))
import test_nino as fixtures  # pylint: disable=g-import-not-at-top,wrong-import-position

HORIZONS = (1.0, 10.0, 40.0)


def _rotated(pos, values, rng):
  """``pos`` with each group of equal eigenvalues rotated at random."""
  out = pos.copy()
  groups = np.split(np.arange(len(values)),
                    np.where(np.diff(values) > 1e-6)[0] + 1)
  for g in groups:
    if len(g) > 1:
      q, _ = np.linalg.qr(rng.normal(size=(len(g), len(g))))
      out[:, g] = pos[:, g] @ q
  return out


def main():
  weights = onc.forecasters.load('nino').weights
  rng = np.random.default_rng(0)
  print('| model | nodes | ours vs reference | random signs | random basis |')
  print('|---|---|---|---|---|')
  for model in ('mlp', 'cnn', 'gpt'):
    tree, _, _, z = fixtures._load(model)  # pylint: disable=protected-access
    graph = _neural_graph.neural_graph(fixtures._infos(tree),  # pylint: disable=protected-access
                                       2 if model == 'gpt' else None)
    windows = [tuple(jnp.asarray(w)) for w in jax.tree.leaves(tree)]
    run = jax.jit(lambda pos, ws: _nino.forecast_on_graph(
        weights, graph._replace(positions=pos), ws, jnp.array(HORIZONS),
        [''] * len(ws)))
    base = run(jnp.asarray(z['pos']), windows)

    def moved(pos):
      out = run(jnp.asarray(pos, jnp.float32), windows)
      return max(float(jnp.max(jnp.abs(a - b)) / jnp.max(jnp.abs(b)))
                 for a, b in zip(out, base))

    values = z['pos_eigvals'][1:]
    signs = [moved(graph.positions * rng.choice([-1.0, 1.0], size=8))
             for _ in range(5)]
    basis = [moved(_rotated(graph.positions, values, rng)) for _ in range(5)]
    print(f'| {model} | {graph.num_nodes} | {moved(graph.positions):.1e} |'
          f' {min(signs):.1e} - {max(signs):.1e} |'
          f' {min(basis):.1e} - {max(basis):.1e} |')


if __name__ == '__main__':
  main()
