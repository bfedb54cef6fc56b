"""influxhtm's benchmarks: the ORM against the raw protocol and influxdb-python, in one process.

`python -m benchmarks` (or `make bench`) starts its own `influxd`, runs every
case against it, prints a table and writes `benchmarks/results.json`; it exits
non-zero when a case misses its floor. `--quick` runs small sizes as a smoke
test. See `docs/performance.rst` for the cases, floors and figures.
"""
