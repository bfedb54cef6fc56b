"""The fleet benchmark's swapping phase alone: `python -m benchmarks.fleet_swap [--quick | --full]`.

Runs `benchmarks.fleet.swap_phase` (peak RSS of the swapping child against a child holding
`max_models` models alone, lag p95, exactly-once) against a managed influxd and prints its
result as JSON: the phase 2 of `python -m benchmarks fleet`, without the 2-minute phase 1.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from influxhtm.tools.server import LocalInfluxd

from . import fleet


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--full", action="store_true")
    args = parser.parse_args(argv)
    sizes = fleet.FleetSizes.chosen(full=args.full, quick=args.quick)
    with LocalInfluxd() as server, tempfile.TemporaryDirectory(prefix="influxhtm-fleet-") as workdir:
        print(json.dumps(fleet.swap_phase(server.host, server.port, sizes, Path(workdir), fleet.log)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
