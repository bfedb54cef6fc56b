"""Run in a child process by the memory case: `add_all` of a generator, then report the peak RSS.

Usage: `python -m benchmarks.memory_child HOST PORT DATABASE POINTS`; prints one JSON line
with `written`, `imported_kb` (RSS once everything is imported) and `peak_kb` (VmHWM).
"""

from __future__ import annotations

import json
import sys


def _status_kb(key: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {key}")


def main(argv: list[str]) -> None:
    host, port, database, points = argv[0], int(argv[1]), argv[2], int(argv[3])
    from influxhtm import InfluxHtmClient

    from . import data

    client = InfluxHtmClient(database, host=host, port=port)
    repo = client.repository(data.PowerReading)
    imported = _status_kb("VmRSS")
    written = repo.add_all(data.iter_objects(points))
    print(json.dumps({"written": written, "imported_kb": imported, "peak_kb": _status_kb("VmHWM")}))


if __name__ == "__main__":
    main(sys.argv[1:])
