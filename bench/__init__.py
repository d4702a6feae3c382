"""Benchmarks, run as modules: `python -m bench.leaderboard --help`."""
