"""optax_nowcast: reach your training target sooner by weight nowcasting.

Chain :func:`nowcast` after any optax optimizer; every few records it jumps
all weights to the values a forecaster predicts they will reach later.

``import optax_nowcast`` loads jax, optax and numpy only: the learned
forecasters (Flax) and their checkpoints (orbax) are imported when first
used, and the lab (:mod:`optax_nowcast.lab`: data, tasks, meta-training,
benchmark) only when imported itself.
"""

from optax_nowcast import forecasters
from optax_nowcast import guards
from optax_nowcast import schedules
from optax_nowcast._check import check_state
from optax_nowcast._labels import default_label
from optax_nowcast._nowcast import nowcast
from optax_nowcast._nowcast import NowcastState
from optax_nowcast._select import DEFAULT_SELECT
from optax_nowcast._select import lookahead
from optax_nowcast.forecasters._neural_graph import nino_graph

__version__ = '0.2.0'

__all__ = (
    'DEFAULT_SELECT',
    'NowcastState',
    'check_state',
    'default_label',
    'forecasters',
    'guards',
    'lookahead',
    'nino_graph',
    'nowcast',
    'schedules',
)
