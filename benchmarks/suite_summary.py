"""One table and one figure across the suite's reports (no training).

The code is :mod:`optax_nowcast.lab.bench.suite`; this script runs it::

  python benchmarks/suite_summary.py results/suite/*.json \\
      --plot results/suite/summary.png --readme README.md
"""

import sys

from optax_nowcast.lab.bench import suite

if __name__ == '__main__':
  sys.exit(suite.main())
