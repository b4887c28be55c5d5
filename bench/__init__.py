"""voip's benchmarks: ``python -m bench`` measures and rewrites docs/benchmarks.md.

Not part of the package and not tests; see :mod:`bench.run`.
"""
