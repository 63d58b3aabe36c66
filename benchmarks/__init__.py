"""Benchmarks: each measures a stage against a baseline in the same process and writes JSON."""

import sparse_ae  # noqa: F401  (first: sets TF_USE_LEGACY_KERAS before a benchmark imports TensorFlow)
