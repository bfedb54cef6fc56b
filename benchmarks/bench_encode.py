"""Encoding speed: declared objects through influxhtm's generated encoder vs influxdb-python's make_lines.

Both encode the same 200,000 points (one tag, one float field, nanosecond
times) in the same process; the best of a few runs counts. Run:
`python benchmarks/bench_encode.py`.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from influxdb.line_protocol import make_lines

import influxhtm.declarations as d
from influxhtm.line_protocol import encode

POINTS = 200_000
REPEATS = 3


@d.measurement("power")
class PowerReading:
    time: datetime = d.timestamp()
    component: str = d.tag()
    value: float = d.field()


def make_data(n: int = POINTS) -> tuple[list[PowerReading], list[dict], list[dict]]:
    """The same points three ways: declared objects, dicts with int ns times, dicts with datetimes."""
    start = datetime(2024, 1, 1, tzinfo=UTC)
    objects, dicts_ns, dicts_dt = [], [], []
    for i in range(n):
        t = start + timedelta(seconds=i, microseconds=i % 1000)
        component = f"machine-{i % 10}"
        value = i * 0.37 + 0.1
        objects.append(PowerReading(time=t, component=component, value=value))
        ns = ((t - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)) * 1000
        fields = {"value": value}
        dicts_ns.append(
            {"measurement": "power", "tags": {"component": component}, "fields": fields, "time": ns}
        )
        dicts_dt.append(
            {"measurement": "power", "tags": {"component": component}, "fields": fields, "time": t}
        )
    return objects, dicts_ns, dicts_dt


def best_rate(function, data, repeats: int = REPEATS) -> float:
    """Points per second of the fastest of `repeats` runs."""
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        function(data)
        best = min(best, time.perf_counter() - started)
    return len(data) / best


def measure(n: int = POINTS) -> dict[str, float]:
    objects, dicts_ns, dicts_dt = make_data(n)
    # Same output (make_lines ends with a newline and writes the float the same way).
    assert encode(objects[:1000]) + "\n" == make_lines({"points": dicts_ns[:1000]}), "outputs differ"
    rates = {
        "influxhtm.encode": best_rate(encode, objects),
        "make_lines (int ns times)": best_rate(lambda p: make_lines({"points": p}), dicts_ns),
        "make_lines (datetime times)": best_rate(lambda p: make_lines({"points": p}), dicts_dt, repeats=1),
    }
    return rates


def main() -> None:
    rates = measure()
    for name, rate in rates.items():
        print(f"{name:30s} {rate:12,.0f} points/s")
    ours = rates["influxhtm.encode"]
    print(f"ratio vs make_lines (int ns times):   {ours / rates['make_lines (int ns times)']:.1f}x")
    print(f"ratio vs make_lines (datetime times): {ours / rates['make_lines (datetime times)']:.1f}x")


if __name__ == "__main__":
    main()
