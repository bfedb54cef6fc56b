"""`python -m benchmarks [--quick] [--output PATH] [--only CASE ...] [CASE ...]`: run the benchmarks.

Starts a managed `influxd`, runs every case in this one process against it,
prints the table, writes the JSON results, and exits 1 when a case misses its
floor.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import attrs

from influxhtm.tools.server import LocalInfluxd

from .cases import CASES, Bench, Row, Sizes

DEFAULT_OUTPUT = Path(__file__).with_name("results.json")


def machine(influxd_binary: str) -> dict[str, Any]:
    """What the figures were measured on."""
    cpu = ""
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), "")
    except OSError:
        pass
    try:
        version = subprocess.run(
            [influxd_binary, "version"], capture_output=True, text=True, timeout=10
        ).stdout
    except (OSError, subprocess.SubprocessError):
        version = ""
    import influxdb

    import influxhtm

    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "influxdb_server": version.strip(),
        "influxdb_python": influxdb.__version__,
        "influxhtm": getattr(influxhtm, "__version__", ""),
    }


def loadavg() -> str:
    """The machine's load (/proc/loadavg): the figures of a shared machine are read with it."""
    try:
        with open("/proc/loadavg") as load:
            return " ".join(load.read().split()[:3])
    except OSError:
        return "unknown"


def table(rows: list[Row]) -> str:
    """The rows as an aligned text table."""
    header = ("case", "influxhtm", "baseline", "ratio", "floor", "")
    lines = [header]
    for row in rows:
        lines.append((
            row.case,
            f"{row.ours}: {_figure(row.ours_figure, row.unit)}",
            f"{row.baseline}: {_figure(row.baseline_figure, row.unit)}",
            row.ratio_text,
            row.floor_text,
            "PASS" if row.passed else "FAIL",
        ))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in lines
    )


def _figure(value: float, unit: str) -> str:
    if unit == "points/s":
        return f"{value:,.0f} points/s"
    if unit in ("MB", "MB ratio"):
        return f"{value:.0f} MB"
    return f"{value * 1000:,.0f} ms"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, two repeats: a smoke run")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="where to write the JSON results")
    parser.add_argument("--only", nargs="+", choices=CASES, help="run only these cases")
    parser.add_argument("--repeats", type=int, help="runs per case (the median is reported)")
    parser.add_argument("case", nargs="*", default=[],  # checked below: argparse refuses [] among choices
                        help=f"cases to run, of {', '.join([*CASES, 'fleet'])} "
                             "(default: every one but fleet); 'fleet' runs the fleet soak")
    parser.add_argument("--full", action="store_true", help="fleet: the issue's full sizes (long, 5+ GB)")
    args = parser.parse_args(argv)
    unknown = [case for case in args.case if case not in (*CASES, "fleet")]
    if unknown:
        parser.error(f"unknown case {unknown[0]!r} (choose from {', '.join([*CASES, 'fleet'])})")
    if "fleet" in args.case:
        return fleet_main(args)
    if args.case:
        args.only = [*(args.only or []), *args.case]
    sizes = Sizes.quick() if args.quick else Sizes()
    if args.repeats:
        sizes = attrs.evolve(sizes, repeats=args.repeats)
    cases = args.only or list(CASES)

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    rows: list[Row] = []
    started = time.perf_counter()
    load_before = loadavg()
    with LocalInfluxd() as server:
        bench = Bench(server.host, server.port, sizes, log)
        for name in cases:
            case_started = time.perf_counter()
            log(f"running {name} ...")
            rows.extend(getattr(bench, name)())
            log(f"  {name} took {time.perf_counter() - case_started:.1f} s")
        about = machine(server.binary)
    text = table(rows)
    print(text)
    passed = all(row.passed for row in rows)
    load_after = loadavg()
    print(f"\n{'every case met its floor' if passed else 'FLOOR MISSED'}"
          f" ({time.perf_counter() - started:.0f} s, {about['nproc']} CPUs: {about['cpu']};"
          f" load average {load_before} before, {load_after} after)")
    results = {
        "command": "python -m benchmarks" + (" --quick" if args.quick else ""),
        "machine": about,
        "loadavg": {"before": load_before, "after": load_after},
        "sizes": attrs.asdict(sizes),
        "passed": passed,
        "rows": [row.as_dict() for row in rows],
        "table": text,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    return 0 if passed else 1


def fleet_main(args: argparse.Namespace) -> int:
    """`python -m benchmarks fleet`: the fleet benchmark and soak (see benchmarks/fleet.py)."""
    import tempfile

    from . import fleet

    sizes = fleet.FleetSizes.chosen(full=args.full, quick=args.quick)
    with LocalInfluxd() as server, tempfile.TemporaryDirectory(prefix="influxhtm-fleet-") as workdir:
        results = fleet.run(server.host, server.port, sizes, Path(workdir), fleet.log)
        results["machine"] = machine(server.binary)
    output = args.output if args.output != DEFAULT_OUTPUT else DEFAULT_OUTPUT.with_name("fleet_results.json")
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2) + "\n")
    for name, passed in results["passed"].items():
        print(f"{name:32} {'PASS' if passed else 'FAIL'}")
    print(json.dumps({k: results[k] for k in ("memory", "swapping")}, indent=2))
    return 0 if all(results["passed"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
