"""Benchmarks of awayd against baselines measured in the same run (see bench/RESULTS.md)."""
