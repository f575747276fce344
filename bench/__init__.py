"""The benchmark: lxp-sync against a fetch-only ceiling and the peers users would pick instead.

`python -m bench --help`; the method is written out in `docs/benchmarks.md`, which the
benchmark regenerates with its latest results.
"""
