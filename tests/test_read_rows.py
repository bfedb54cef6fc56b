"""`Query.rows`: the one read path for readers that need exact nanosecond times (issue 13, point 4).

A typed object holds a datetime (microseconds); sensors, runners and polls need the server's
exact nanoseconds, and read them as `(time ns, *columns)` tuples of a bound query, streamed.
"""

from __future__ import annotations

import pytest

from influxhtm import InfluxHtmClient, mean
from influxhtm.influxql.functions import count


@pytest.fixture
def sensor(influx_settings, influx_database):
    client = InfluxHtmClient.from_settings(influx_database, influx_settings)
    sensor = client.create_sensor("power", "pump")
    base = 1_700_000_000_000_000_000
    # Three points within one microsecond, then a gap: only exact nanoseconds tell them apart.
    sensor.write([{"time": base + i, "value": float(i)} for i in range(3)]
                 + [{"time": base + 10**9 * k, "value": 10.0 + k} for k in range(1, 40)])
    client.create_sensor("power", "fan").write([{"time": base, "value": -1.0}])
    yield sensor
    client.close()


def test_rows_give_exact_nanoseconds_streamed_in_chunks(sensor):
    base = 1_700_000_000_000_000_000
    expected = [(base + i, float(i)) for i in range(3)] + [(base + 10**9 * k, 10.0 + k) for k in range(1, 40)]
    for chunk_size in (1, 7, 10_000):
        rows = list(sensor.query().select("value").rows("value", chunk_size=chunk_size))
        assert rows == expected  # the other sensor's point is not read
    assert sensor.time_bounds_ns() == (base, base + 39 * 10**9)
    assert [(r.time.timestamp(), r.value) for r in sensor.iter_data(chunk_size=5)][:3] == [
        (base / 1e9, 0.0), (base / 1e9, 1.0), (base / 1e9, 2.0)]
    assert sensor.get_data(limit=2) == list(sensor.iter_data())[-2:]


def test_rows_of_grouped_and_aggregated_queries(sensor):
    base = 1_700_000_000_000_000_000
    # A column the answer lacks is None; a group-by tag is read from the series.
    rows = list(sensor.query().select("value").group_by("component").rows("value", "component", "nope"))
    assert rows[0] == (base, 0.0, "pump", None) and len(rows) == 42
    totals = list(sensor.query().select(count("value")).rows("count"))
    assert totals == [(0, 42)]
    buckets = list(sensor.query().select(mean("value")).group_by_time("20s").fill("none").rows("mean"))
    assert sum(1 for _ in buckets) >= 2 and all(isinstance(ns, int) for ns, _ in buckets)


def test_rows_of_an_unbound_query_say_how_to_bind_it():
    from influxhtm import InfluxHtmError, Query

    with pytest.raises(InfluxHtmError, match="repo.query"):
        list(Query().from_("power").rows("value"))
