"""Run in a child process by the read-memory case: read a sensor's points one way, report the peak RSS.

Usage: `python -m benchmarks.read_memory_child HOST PORT DATABASE MODE` with MODE `list`
(`len(sensor.get_data())`) or `iterate` (count the readings of `sensor.iter_data()`); prints
one JSON line with `points`, `imported_kb` (RSS once everything is imported), `peak_kb`
(VmHWM) and, for `list`, `list_kb`: the size of the list itself (the list, each reading, its
datetime and its float), which a list of that many readings needs whatever reads it.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from .memory_child import _status_kb


def list_size_kb(readings: list[Any]) -> int:
    """Bytes held by the list of readings and what only they reference (the component is shared)."""
    size = sys.getsizeof(readings)
    getsizeof = sys.getsizeof
    for reading in readings:
        size += getsizeof(reading) + getsizeof(reading.time) + getsizeof(reading.value)
    return size // 1024


def main(argv: list[str]) -> None:
    host, port, database, mode = argv[0], int(argv[1]), argv[2], argv[3]
    from influxhtm import InfluxHtmClient

    sensor = InfluxHtmClient(database, host=host, port=port).create_sensor("power", "machine-0")
    imported = _status_kb("VmRSS")
    report = {"imported_kb": imported}
    if mode == "list":
        readings = sensor.get_data()
        report["peak_kb"] = _status_kb("VmHWM")
        report["points"] = len(readings)
        report["list_kb"] = list_size_kb(readings)
    else:
        report["points"] = sum(1 for _ in sensor.iter_data())
        report["peak_kb"] = _status_kb("VmHWM")
    print(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1:])
