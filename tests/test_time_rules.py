"""One meaning of a time range and one rule for naive times, through every entry point, on a real server.

`since` and `until` are both inclusive everywhere (queries, sensors, model
stores, combined data, deletes, the runner, sweep, the CLI); `before` is an
exclusive end. A naive time is UTC wherever it enters (Python API, queries,
CLI, CSV import), unless the process-wide rule says local time or refusal.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner

import influxhtm as ih
from influxhtm.cli import cli
from influxhtm.core.errors import ValidationError
from influxhtm.core.times import get_naive_times, set_naive_times, to_ns
from influxhtm.model.data_layout import HtmResult, SensorReading
from influxhtm.running.engines import ENGINES

T0 = datetime(2024, 7, 1, 12, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


@ih.measurement("ranged")
class Ranged:
    time: datetime = ih.timestamp()
    component: str = ih.tag()
    value: float = ih.field()


@pytest.fixture
def conn(influx_settings, influx_database):
    port = str(influx_settings.port)
    return ["--host", influx_settings.host, "--port", port, "--database", influx_database]


@pytest.fixture
def constant_engine():
    """An engine for the CLI and sweep: a result of 0.5 for every point."""

    def factory(**params):
        return lambda point: {"anomaly_score": 0.5}

    ENGINES["test-constant"] = factory
    yield factory
    ENGINES.pop("test-constant", None)


@pytest.fixture
def local_is_not_utc(monkeypatch):
    """The process's local zone is Europe/Berlin (UTC+2 in July), so local time and UTC differ."""
    monkeypatch.setenv("TZ", "Europe/Berlin")
    time.tzset()
    assert datetime(2024, 7, 1, 12).astimezone().utcoffset() == timedelta(hours=2)
    yield
    monkeypatch.undo()
    time.tzset()


def invoke(conn, *args, ok=True):
    result = CliRunner().invoke(cli, [*conn, *map(str, args)], catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, (result.stdout, result.stderr)
    return result


def write_minutes(client, component, n=10):
    """A sensor `ranged/<component>` with one point a minute from T0, value = the minute."""
    sensor = client.create_sensor("ranged", component)
    sensor.write([{"time": T0 + k * MINUTE, "value": float(k)} for k in range(n)])
    return sensor


def minutes(times):
    return [int((t - T0) / MINUTE) for t in times]


# ------------------------------------------------------------------------------- item 7: ranges


def test_points_exactly_at_until_are_returned_by_every_api_and_before_excludes_them(
    client, conn, constant_engine
):
    sensor = write_minutes(client, "reads")
    lo, hi = T0 + 2 * MINUTE, T0 + 5 * MINUTE
    inclusive, exclusive = [2, 3, 4, 5], [2, 3, 4]
    repo = client.repository(Ranged)
    query = repo.query().where(component="reads")

    assert minutes(r.time for r in sensor.get_data(since=lo, until=hi)) == inclusive
    assert minutes(r.time for r in sensor.get_data(since=lo, before=hi)) == exclusive
    assert minutes(r.time for r in sensor.iter_data(since=lo, until=hi)) == inclusive
    assert minutes(r.time for r in sensor.iter_data(since=lo, before=hi)) == exclusive
    assert minutes(r.time for r in query.since(lo).until(hi)) == inclusive
    assert minutes(r.time for r in query.between(lo, hi)) == inclusive
    assert minutes(r.time for r in query.since(lo).before(hi)) == exclusive
    assert "time <= $p2" in str(query.since(lo).until(hi)) and "time < $p2" in str(query.since(lo).before(hi))
    assert query.since(lo).until(hi).count() == 4 and query.since(lo).before(hi).count() == 3

    store = sensor.create_htm_model("m")
    report = ih.Runner(sensor, store, lambda point: {"anomaly_score": 0.5}).run_batch(since=lo, until=hi)
    assert report.points == 4 and minutes([report.first, report.last]) == [2, 5]
    assert minutes(r.time for r in store.get_results(until=hi)) == inclusive
    assert minutes(r.time for r in store.get_results(before=hi)) == exclusive
    other = ih.Runner(sensor, sensor.create_htm_model("m-before"), lambda p: {"anomaly_score": 0.5})
    assert other.run_batch(since=lo, before=hi).points == 3

    combined = sensor.get_combined_sensor_data(since=lo, until=hi, models=["m"])
    assert minutes(row[0] for row in combined.values) == inclusive
    assert all(row[2] == 0.5 for row in combined.values)  # the result at `until` is combined too
    combined = sensor.get_combined_sensor_data(since=lo, before=hi, models=["m"])
    assert minutes(row[0] for row in combined.values) == exclusive

    with ThreadPoolExecutor(1) as pool:
        frame = ih.sweep(sensor, {"k": [1]}, constant_engine, since=lo, until=hi, executor=pool)
        assert frame["points"].tolist() == [4], frame.to_dict("records")
        frame = ih.sweep(sensor, {"k": [2]}, constant_engine, since=lo, before=hi, executor=pool)
        assert frame["points"].tolist() == [3], frame.to_dict("records")

    span = ["--since", lo.isoformat(), "--until", hi.isoformat()]
    out = invoke(conn, "run", "ranged", "reads", "-e", "test-constant", "--id", "cli", *span, "--no-progress")
    assert "4 points -> 4 results" in out.stdout
    span = ["--since", lo.isoformat(), "--before", hi.isoformat()]
    out = invoke(conn, "run", "ranged", "reads", "-e", "test-constant", "--id", "cli-before", *span)
    assert "3 points -> 3 results" in out.stdout
    both = ["--until", hi.isoformat(), "--before", hi.isoformat()]
    both = invoke(conn, "run", "ranged", "reads", "-e", "test-constant", "--id", "x", *both, ok=False)
    assert both.exit_code == 1 and "not both" in both.stderr
    with pytest.raises(ValidationError, match="not both"):
        sensor.get_data(until=hi, before=hi)


def test_deletes_through_every_api_remove_the_same_points_the_point_at_until_included(client):
    lo, hi = T0 + 2 * MINUTE, T0 + 5 * MINUTE
    survivors = [0, 1, 6, 7, 8, 9]
    by_sensor, by_repo, by_client = (write_minutes(client, c) for c in ("del-s", "del-r", "del-c"))
    by_sensor.delete_data(since=lo, until=hi)
    client.repository(Ranged).delete(since=lo, until=hi, component="del-r")
    client.delete("ranged", since=lo, until=hi, component="del-c")
    for sensor in (by_sensor, by_repo, by_client):
        assert minutes(r.time for r in sensor.get_data()) == survivors, sensor
    # `before` keeps the point at the bound, through every API alike
    by_sensor, by_repo, by_client = (write_minutes(client, c) for c in ("bef-s", "bef-r", "bef-c"))
    by_sensor.delete_data(since=lo, before=hi)
    client.repository(Ranged).delete(since=lo, before=hi, component="bef-r")
    client.delete("ranged", since=lo, before=hi, component="bef-c")
    for sensor in (by_sensor, by_repo, by_client):
        assert minutes(r.time for r in sensor.get_data()) == [0, 1, 5, 6, 7, 8, 9], sensor
    # a model's results: the result at `until` goes too
    sensor = write_minutes(client, "del-results")
    store = sensor.create_htm_model("m")
    ih.Runner(sensor, store, lambda point: {"anomaly_score": 0.5}).run_batch()
    store.delete_results(since=lo, until=hi)
    assert minutes(r.time for r in store.get_results()) == survivors


# ------------------------------------------------------------------------------- item 8: naive times


def test_naive_input_lands_on_the_same_instant_via_the_api_queries_the_cli_and_csv_import(
    client, conn, constant_engine, local_is_not_utc, tmp_path
):
    naive = datetime(2024, 7, 1, 12, 0)  # 10:00 UTC if it were read as Berlin's local time
    instant = naive.replace(tzinfo=UTC)
    client.create_sensor("naive", "api").write({"time": naive, "value": 1.0})
    client.repository(Ranged).add_all([Ranged(time=naive, component="repo", value=1.0)])
    path = tmp_path / "naive.csv"
    path.write_text("timestamp,value\n2024-07-01 12:00:00,1.0\n")
    ih.import_csv(client.create_sensor("naive", "csv"), path)
    invoke(conn, "import", path, "-m", "naive", "-c", "cli")
    stored = {
        "api": client.get_sensor("naive", "api").get_data()[0].time,
        "repo": client.repository(Ranged).query().where(component="repo").first().time,
        "csv": client.get_sensor("naive", "csv").get_data()[0].time,
        "cli": client.get_sensor("naive", "cli").get_data()[0].time,
    }
    assert stored == dict.fromkeys(stored, instant)
    # reading with the same naive time (or its ISO text) finds exactly that point, everywhere
    sensor = client.get_sensor("naive", "api")
    assert [r.time for r in sensor.get_data(since=naive, until=naive)] == [instant]
    assert [r.time for r in sensor.get_data(since=naive.isoformat(), until=naive.isoformat())] == [instant]
    assert client.repository(Ranged).query().since(naive).until(naive).count() == 1
    span = ["--since", "2024-07-01 12:00:00", "--until", "2024-07-01 12:00:00"]
    out = invoke(conn, "run", "naive", "cli", "-e", "test-constant", "--id", "x", *span)
    assert "1 points -> 1 results" in out.stdout


def test_the_process_wide_rule_reads_naive_times_as_local_or_refuses_them_and_is_restored(
    client, local_is_not_utc
):
    sensor = client.create_sensor("naive", "rule")
    naive = datetime(2024, 7, 1, 12, 0)
    assert get_naive_times() == "utc"
    previous = set_naive_times("local")
    try:
        sensor.write({"time": naive, "value": 1.0})
        assert sensor.get_data()[0].time == datetime(2024, 7, 1, 10, 0, tzinfo=UTC)  # Berlin, summer
        assert [r.value for r in sensor.get_data(since=naive, until=naive)] == [1.0]
        assert set_naive_times("error") == "local"
        for attempt in (
            lambda: sensor.write({"time": naive, "value": 2.0}),
            lambda: sensor.get_data(since=naive),
            lambda: client.repository(Ranged).query().since(naive),
            lambda: HtmResult(naive, 0.5),
            lambda: SensorReading.load({"time": "2024-07-01T12:00:00", "value": 1.0, "component": "a"}),
            lambda: Ranged(time=naive, component="c", value=1.0),
        ):
            with pytest.raises(ValidationError, match="naive datetime"):
                attempt()
        assert [r.value for r in sensor.get_data(since=naive.astimezone())] == [1.0]  # aware: accepted
    finally:
        set_naive_times(previous)
    assert get_naive_times() == "utc"
    assert sensor.get_data(since=naive) == []  # 12:00 UTC again: after the point at 10:00 UTC
    assert to_ns(naive) == to_ns(naive.replace(tzinfo=UTC))
