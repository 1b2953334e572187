"""Benchmarks for janus-jax: run ``python -m benchmarks --help``."""
