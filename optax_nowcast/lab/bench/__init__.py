"""Benchmark: side-by-side speed-up of every forecaster on a task suite."""
