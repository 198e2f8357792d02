"""The lab: datasets, tasks, meta-training and the benchmark.

It serves the library (:mod:`optax_nowcast`) and is never imported by it.
Its extra dependencies come with ``pip install 'optax-nowcast[lab]'``.
"""
