"""The shared behaviour suite: every test runs with the sync and the async client against the real
server (issue 18), through `clients.Driver` (`d.run` awaits an async client's coroutine).

Fault scenarios (retries, 413 splitting, partial writes, cut answers, special servers) are in
tests/reliability/test_shared_reliability.py.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Optional

import pytest
from clients import KINDS, Driver

import influxhtm as ih
from influxhtm.core.errors import (
    DatabaseNotFound,
    InfluxConnectionError,
    PartialWriteError,
    QueryError,
    ValidationError,
)
from influxhtm.io.settings import Settings
from influxhtm.tools.server import free_port

T0 = datetime(2024, 3, 1, tzinfo=UTC)


@ih.measurement("shared_power")
class Power:
    time: datetime = ih.timestamp()
    component: str = ih.tag()
    value: float = ih.field()
    note: Optional[str] = ih.field(default=None)


def powers(n: int, start: int = 0) -> list[Power]:
    return [
        Power(time=T0 + timedelta(seconds=i), component=f"c{i % 3}", value=i * 0.5, note=f"n{i}\nline")
        for i in range(start, start + n)
    ]


@pytest.fixture(params=KINDS)
def d(request, influx_settings, influx_database):
    driver = Driver(request.param, influx_database, influx_settings)
    yield driver
    driver.close()


def test_the_client_is_exported_and_reads_the_same_settings(monkeypatch):
    monkeypatch.setenv("INFLUX_HOST", "db.example")
    monkeypatch.setenv("INFLUX_PORT", "8123")
    client = ih.AsyncInfluxHtmClient("plant", username="u", password="p")
    sync = ih.InfluxHtmClient("plant", username="u", password="p")
    assert client.settings == sync.settings and client.settings.url == "http://db.example:8123"
    with pytest.raises(ValidationError, match="database"):
        ih.AsyncInfluxHtmClient("bad[name")


def test_add_all_and_every_read_form_give_back_what_was_written(d):
    repo = d.client.repository(Power)
    objects = powers(25_000)
    assert d.run(repo.add_all(objects, batch_size=7_000)) == 25_000
    q = repo.query()
    assert d.run(q.count()) == 25_000
    read = d.run(q.all())
    assert sorted(read, key=lambda p: p.time) == objects
    assert d.collect(q.where(component="c1")) == [p for p in objects if p.component == "c1"]
    assert d.run(q.order_by("time", "desc").first()) == objects[-1]
    assert d.run(q.where(component="nobody").first()) is None
    assert d.run(q.exists()) is True
    frame = d.run(q.where(component="c2").to_dataframe())
    assert len(frame) == len(objects[2::3]) and str(frame.index.tz) == "UTC"
    assert list(frame["value"]) == [p.value for p in objects[2::3]]


def test_typed_rows_and_time_grouped_queries_are_bounded_by_the_data(d):
    repo = d.client.repository(Power)
    d.run(repo.add_all(powers(600)))
    rows = d.run(repo.query().select(ih.mean("value").as_("m")).group_by_time("1m").all())
    assert [r.time for r in rows] == [T0 + timedelta(minutes=i) for i in range(10)]  # no buckets from 1970
    assert [r.m for r in rows] == [sum(j * 0.5 for j in range(60 * i, 60 * i + 60)) / 60 for i in range(10)]
    grouped = d.run(repo.query().select(ih.fn.count("value").as_("n")).group_by("component").all())
    assert sorted((r.component, r.n) for r in grouped) == [("c0", 200), ("c1", 200), ("c2", 200)]


def test_a_generator_is_written_batch_by_batch(d):
    repo = d.client.repository(Power)
    made = []

    def generate():
        for p in powers(5_000):
            made.append(p)
            yield p

    assert d.run(repo.add_all(generate(), batch_size=1_000)) == 5_000
    assert d.run(repo.query().count()) == 5_000 and len(made) == 5_000


def test_a_bad_object_stops_the_write_before_its_batch_leaves(d):
    repo = d.client.repository(Power)
    objects = [{"time": T0 + timedelta(seconds=i), "component": "a", "value": float(i)} for i in range(30)]
    objects[17]["value"] = float("nan")
    with pytest.raises(ValidationError) as info:
        d.run(repo.add_all(objects, batch_size=10))
    assert 17 in info.value.errors and "nan" in str(info.value).lower()
    # each batch is validated whole before it leaves: the first is stored, nothing from the bad one on
    assert d.run(repo.query().count()) == 10


def test_a_missing_database_is_created_on_write_or_refused(d, influx_settings):
    name = f"shared_new_{uuid.uuid4().hex[:8]}"
    refusing = Driver(d.kind, name, influx_settings, create=False)
    try:
        with pytest.raises(DatabaseNotFound, match="create it first"):
            refusing.run(refusing.client.repository(Power).add_all(powers(3)))
    finally:
        refusing.close()
    creating = Driver(d.kind, name, influx_settings)
    try:
        assert creating.run(creating.client.repository(Power).add_all(powers(3))) == 3
        assert creating.run(creating.client.repository(Power).query().count()) == 3
    finally:
        creating.run(creating.client.drop_database())
        creating.close()


def test_hand_written_queries_bind_parameters_and_give_rows_frames_or_objects(d):
    d.run(d.client.repository(Power).add_all(powers(30)))
    text = "SELECT value, note FROM shared_power WHERE component = $c"
    rows = d.run(d.client.query(text, {"c": "c1"}))
    assert [r["value"] for r in rows] == [i * 0.5 for i in range(1, 30, 3)]
    assert rows[0]["time"] == T0 + timedelta(seconds=1)
    frame = d.run(d.client.query(text, {"c": "c2"}, as_="dataframe"))
    assert len(frame) == 10 and str(frame.index.tz) == "UTC"
    objects = d.run(d.client.query("SELECT * FROM shared_power WHERE component = $c", {"c": "c0"}, as_=Power))
    assert objects == [p for p in powers(30) if p.component == "c0"]
    assert d.run(d.client.query("SELECT * FROM nothing_here")) == []


def test_query_errors_and_an_unreachable_server_raise_the_same_errors(d):
    with pytest.raises(QueryError, match="SELEC nothing"):
        d.run(d.client.query("SELEC nothing"))
    settings = Settings(host="127.0.0.1", port=free_port(), retries=1, backoff=0.01)
    gone = Driver(d.kind, "anything", settings)
    try:
        with pytest.raises(
            InfluxConnectionError, match=r"cannot reach InfluxDB at http://127\.0\.0\.1.*2 attempt"
        ):
            gone.run(gone.client.ping())
    finally:
        gone.close()


def test_a_refused_point_is_counted_and_the_rest_stored(d):
    ns = int(T0.timestamp()) * 10**9 - 1
    d.run(d.client.write_lines([f"shared_power,component=a value=1i {ns}"]))  # `value` is an integer now
    lines = [f"shared_power,component=c{i % 3} value={i}.5 {ns + 1 + i}" for i in range(10)]
    lines[4] = f"shared_power,component=c1 value=4i {ns + 5}"  # an integer, as the field is: stored
    with pytest.raises(PartialWriteError) as info:
        d.run(d.client.write_lines(lines))
    assert (info.value.dropped, info.value.written, info.value.not_sent) == (9, 1, 0)
    assert "field type conflict" in info.value.reason and len(info.value.lines) == 9
    assert d.run(d.client.query("SELECT value FROM shared_power WHERE component = 'c1'"))[0]["value"] == 4


def test_sensors_write_read_stream_and_combine_with_model_results(d):
    sensor = d.client.create_sensor("shared_machine", "pump")
    points = [{"time": T0 + timedelta(minutes=i), "value": float(i)} for i in range(500)]
    assert d.run(sensor.write(points)) == 500
    assert d.run(sensor.write(iter([{"time": T0 + timedelta(minutes=500), "value": 500.0}]))) == 1
    data = d.run(sensor.get_data())
    assert [r.value for r in data] == [float(i) for i in range(501)] and data[0].time == T0
    assert [r.value for r in d.run(sensor.get_data(limit=3))] == [498.0, 499.0, 500.0]
    hourly = d.run(sensor.get_data(aggregation="1h"))
    assert [r.value for r in hourly][:2] == [29.5, 89.5] and len(hourly) == 9
    assert [r.value for r in d.collect(sensor.iter_data(chunk_size=100))] == [float(i) for i in range(501)]
    assert d.run(sensor.count()) == 501
    # a model's results, written by the (sync) registry, then through this client's store
    ih.InfluxHtmClient.from_settings(d.client.database, d.client.settings).create_sensor(
        "shared_machine", "pump"
    ).create_htm_model("m1")
    store = d.run(sensor.get_htm_model("m1"))
    results = [ih.HtmResult(time=T0 + timedelta(minutes=i), anomaly_score=i / 1000) for i in range(0, 501, 2)]
    assert d.run(store.write_results(results)) == len(results)
    assert d.run(store.get_results(limit=2)) == results[-2:]
    assert d.collect(store.results.query()) == results
    combined = d.run(sensor.get_combined_sensor_data(until=T0 + timedelta(minutes=9)))
    assert combined.columns[:3] == ("time", "value", "m1.anomalyScore") and len(combined) == 10
    assert [row[2] for row in combined.values] == [i / 1000 if i % 2 == 0 else None for i in range(10)]
