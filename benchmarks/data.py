"""The data of the benchmarks: one declared class and the same points as objects, dicts and lines."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import influxhtm.model.declarations as d

#: 2024-01-01T00:00:00Z in nanoseconds; points are one second apart from there.
START_NS = 1_704_067_200 * 10**9
START = datetime(2024, 1, 1, tzinfo=UTC)
STEP_NS = 10**9
COMPONENTS = 10


@d.measurement("power")
class PowerReading:
    """The benchmark point: one tag, one float field."""

    time: datetime = d.timestamp()
    component: str = d.tag()
    value: float = d.field()


@d.measurement("power_model")
class PowerResult:
    """What a no-op model's result looks like, written back by the runner baseline."""

    time: datetime = d.timestamp()
    component: str = d.tag()
    model_id: str = d.tag(name="id")
    anomaly_score: float = d.field(name="anomalyScore")


def component(i: int) -> str:
    return f"machine-{i % COMPONENTS}"


def value(i: int) -> float:
    return i * 0.37 + 0.1


def objects(n: int, start_ns: int = START_NS) -> list[PowerReading]:
    """`n` declared points, one second apart."""
    return list(iter_objects(n, start_ns))


def iter_objects(n: int, start_ns: int = START_NS) -> Iterator[PowerReading]:
    start = START + timedelta(microseconds=(start_ns - START_NS) // 1000)
    second = timedelta(seconds=1)
    for i in range(n):
        yield PowerReading(time=start + i * second, component=component(i), value=value(i))


def influxdb_dicts(n: int, start_ns: int = START_NS) -> list[dict[str, Any]]:
    """The same points as influxdb-python's dicts (integer ns times, as its fastest path takes them)."""
    return [
        {
            "measurement": "power",
            "tags": {"component": component(i)},
            "fields": {"value": value(i)},
            "time": start_ns + i * STEP_NS,
        }
        for i in range(n)
    ]


def sensor_points(n: int, start_ns: int = START_NS) -> list[dict[str, Any]]:
    """Points for `Sensor.write`: dicts with integer ns `time` and `value` (one sensor)."""
    return [{"time": start_ns + i * STEP_NS, "value": value(i)} for i in range(n)]


def lines(n: int, start_ns: int = START_NS) -> list[str]:
    """The same points as pre-built line protocol (the raw baseline)."""
    return [f"power,component={component(i)} value={value(i)!r} {start_ns + i * STEP_NS}" for i in range(n)]


# -- the fast-ingest workload: one series, one second apart, in one shard ---------------
#: 2024-01-04T00:00:00Z, a Thursday: InfluxDB's 7-day shard groups start on Thursdays (the epoch's
#: weekday), so 400,000 seconds from here stay in one shard.
FAST_START_NS = START_NS + 3 * 86_400 * 10**9
FAST_COMPONENT = "machine-0"


def fast_times(n: int) -> list[datetime]:
    """The fast-ingest workload's times as aware datetimes."""
    start = START + timedelta(microseconds=(FAST_START_NS - START_NS) // 1000)
    second = timedelta(seconds=1)
    return [start + i * second for i in range(n)]


def fast_ns(n: int) -> list[int]:
    """The same times as integer nanoseconds."""
    return [FAST_START_NS + i * STEP_NS for i in range(n)]


def fast_values(n: int) -> list[float]:
    return [value(i) for i in range(n)]


def fast_objects(n: int) -> list[PowerReading]:
    """`n` declared points of one series, one second apart, in one shard."""
    times, values = fast_times(n), fast_values(n)
    return [PowerReading(time=t, component=FAST_COMPONENT, value=v) for t, v in zip(times, values)]


def fast_sensor_points(n: int) -> list[dict[str, Any]]:
    """The same points for `Sensor.write` of the sensor power/machine-0."""
    return sensor_points(n, FAST_START_NS)


def fast_lines(n: int) -> list[str]:
    """The same points as pre-built line protocol."""
    return [f"power,component={FAST_COMPONENT} value={v!r} {t}" for t, v in zip(fast_ns(n), fast_values(n))]
