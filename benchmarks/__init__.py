"""Benchmarks: each measures a stage against a baseline in the same process and writes JSON."""
