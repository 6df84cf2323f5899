"""Benchmarks of the kidsfin pipeline (issue 5): `make bench` or `python -m bench.run_all`."""
