"""Bad arguments at entry points raise an influxhtm ValidationError naming the argument (issue 16, item 8).

Before, `batch_size=0` ended in `ValueError: range() arg 3 must not be zero` (or
was ignored), and a naive time near year 1 read as local time in `ValueError:
year 0 is out of range`. Nothing is written when an argument is refused.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import influxhtm as ih
from influxhtm.core.errors import ValidationError
from influxhtm.core.times import from_ns, set_naive_times, to_ns

POINTS = [{"time": 1_700_000_000_000_000_000 + i, "value": float(i)} for i in range(3)]


@pytest.fixture
def local_naive_times():
    set_naive_times("local")
    yield
    set_naive_times("utc")


def entry_points(client, tmp_path):
    """(name, call(bad value), argument named) of the entry points that take a size or a time."""
    sensor = client.create_sensor("guarded", "a")
    store = sensor.create_htm_model("m")
    runner = ih.Runner(sensor, store, lambda point: {"anomaly_score": 0.5})
    csv = tmp_path / "data.csv"
    csv.write_text("timestamp,value\n2024-01-01 00:00:00,1\n")
    repository = client.repository(ih.SensorReading)
    table = [
        ("Sensor.write", lambda bad: sensor.write(POINTS, batch_size=bad), "batch_size"),
        ("Sensor.write (generator)", lambda bad: sensor.write(iter(POINTS), batch_size=bad), "batch_size"),
        ("write_results", lambda bad: store.write_results(
            [{"time": 1, "anomaly_score": 0.5}], batch_size=bad), "batch_size"),
        ("write_results (generator)", lambda bad: store.write_results(
            iter([{"time": 1, "anomaly_score": 0.5}]), batch_size=bad), "batch_size"),
        ("import_csv", lambda bad: ih.import_csv(sensor, csv, batch_size=bad), "batch_size"),
        ("Runner.run_batch batch", lambda bad: runner.run_batch(batch_size=bad), "batch_size"),
        ("Runner.run_batch chunk", lambda bad: runner.run_batch(chunk_size=bad), "chunk_size"),
        ("Sensor.iter_data", lambda bad: list(sensor.iter_data(chunk_size=bad)), "chunk_size"),
        ("Runner.run_live chunk", lambda bad: runner.run_live(chunk_size=bad, max_points=1), "chunk_size"),
        ("Repository.add_all", lambda bad: repository.add_all([], batch_size=bad), "batch_size"),
    ]
    return sensor, store, table


BAD_SIZES = [0, -1, 2.5, "10", True, None]


def test_bad_sizes_raise_validation_errors_naming_the_argument(client, tmp_path, reliability_report):
    sensor, store, table = entry_points(client, tmp_path)
    refused = 0
    for name, call, argument in table:
        for bad in BAD_SIZES:
            with pytest.raises(ValidationError) as info:
                call(bad)
            assert argument in str(info.value) and repr(bad) in str(info.value), (name, bad, info.value)
            refused += 1
    stored = sensor.count() + store.count()
    reliability_report(
        scenario="bad sizes at entry points",
        faults=f"{len(table)} entry points x {len(BAD_SIZES)} bad batch/chunk sizes",
        written=0, read_back=stored, lost=0, duplicated=stored,
    )
    assert stored == 0  # nothing half-written


zones = st.sampled_from([timezone(timedelta(hours=h)) for h in (-14, -5, 0, 5, 9, 14)])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=st.one_of(
    st.datetimes(max_value=datetime(1677, 9, 19)),
    st.datetimes(min_value=datetime(2262, 4, 13)),
    st.datetimes(max_value=datetime(1677, 9, 19), timezones=zones),
    st.datetimes(min_value=datetime(2262, 4, 13), timezones=zones),
))
@example(datetime(1, 1, 1))
@example(datetime(9999, 12, 31, 23, 59, 59, 999999))
def test_times_out_of_range_in_any_zone_name_the_argument(local_naive_times, value):
    for policy in ("utc", "local"):
        with pytest.raises(ValidationError) as info:
            to_ns(value, name="since", naive=policy)
        assert "since" in str(info.value) and "range" in str(info.value)


def test_a_naive_time_near_year_1_read_as_local_time(client, local_naive_times):
    sensor = client.create_sensor("guarded", "a")
    with pytest.raises(ValidationError, match="since"):
        sensor.get_data(since=datetime(1, 1, 1))
    with pytest.raises(ValidationError, match="until"):
        sensor.get_data(until=datetime(9999, 12, 31, 23, 59, 59))


@pytest.mark.parametrize("ns", [2**70, -(2**70), 2**63])
def test_from_ns_out_of_range(ns):
    with pytest.raises(ValidationError, match="range"):
        from_ns(ns)
