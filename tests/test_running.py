"""Batch runs: the replay engine reproduces NAB's recorded results, resume and checkpoints are exact."""

from __future__ import annotations

import csv
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from counting_model import Counter

from influxhtm.core.errors import ValidationError
from influxhtm.core.times import to_ns
from influxhtm.model.data_layout import HtmResult
from influxhtm.running import Runner, RunReport
from influxhtm.running.engines import create_model

NAB = Path(__file__).resolve().parents[1] / "influxhtm" / "data" / "nab"
SERIES = NAB / "data" / "artificialWithAnomaly" / "art_daily_jumpsup.csv"
RECORDED = NAB / "results" / "numenta" / "artificialWithAnomaly" / "numenta_art_daily_jumpsup.csv"
T0 = datetime(2024, 3, 1, tzinfo=UTC)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def minutes(n: int) -> datetime:
    return T0 + timedelta(minutes=n)


def write_minutes(sensor, n: int, start: int = 0) -> list[float]:
    values = [float(i % 17) + 0.25 for i in range(start, start + n)]
    sensor.write([{"time": minutes(start + i), "value": v} for i, v in enumerate(values)])
    return values



def test_replay_of_nab_results_is_identical_row_for_row(client):
    sensor = client.create_sensor("nab", "art_daily_jumpsup")
    with open(SERIES, newline="") as fh:
        points = [{"time": utc(row["timestamp"]), "value": float(row["value"])} for row in csv.DictReader(fh)]
    sensor.write(points)
    store = sensor.create_htm_model("numenta-replay", engine="replay")
    model = create_model("replay", path=str(RECORDED))

    report = Runner(sensor, store, model).run_batch()

    with open(RECORDED, newline="") as fh:
        recorded = list(csv.DictReader(fh))
    assert report.points == report.results == len(points) == len(recorded)
    stored = store.get_results()
    assert len(stored) == len(recorded)
    for row, result in zip(recorded, stored, strict=True):
        assert result.time == utc(row["timestamp"])
        assert result.anomaly_score == float(row["anomaly_score"])
        assert result.raw_score == float(row["raw_score"])
    assert report.first == utc(recorded[0]["timestamp"]) and report.last == utc(recorded[-1]["timestamp"])


def test_a_model_failing_half_way_then_resumed_stores_each_result_once(client):
    sensor = client.create_sensor("power", "kettle")
    write_minutes(sensor, 300)
    store = sensor.create_htm_model("counter")

    with pytest.raises(RuntimeError, match="after 140 points"):
        Runner(sensor, store, Counter(fail_after=140)).run_batch(chunk_size=50, batch_size=32)
    assert store.count() == 140  # what the model answered before it failed was stored
    assert store.last_result_time() == minutes(139)

    report = Runner(sensor, store, Counter()).run_batch(resume=True, chunk_size=50, batch_size=32)
    assert report.points == 160 and report.first == minutes(140)
    results = store.get_results()
    assert [r.time for r in results] == [minutes(i) for i in range(300)]
    assert store.count() == 300


def test_until_half_way_then_resume_and_rerun_overwrite(client):
    sensor = client.create_sensor("power", "fridge")
    write_minutes(sensor, 200)
    store = sensor.create_htm_model("c")
    first = Runner(sensor, store, Counter()).run_batch(until=minutes(99))  # inclusive
    assert (first.points, first.last) == (100, minutes(99))
    second = Runner(sensor, store, Counter()).run_batch(resume=True)
    assert (second.points, second.first, second.last) == (100, minutes(100), minutes(199))
    assert store.count() == 200
    # Running a slice again writes the same timestamps: still one result per point.
    again = Runner(sensor, store, Counter()).run_batch(since=minutes(50), until=minutes(59))
    assert again.points == 10
    assert store.count() == 200
    assert store.get_results(since=minutes(50), until=minutes(50))[0].anomaly_score == 1.0
    # Resuming when everything is done processes nothing.
    assert Runner(sensor, store, Counter()).run_batch(resume=True).points == 0


def test_checkpoint_restores_the_model_state(client, tmp_path):
    sensor = client.create_sensor("power", "oven")
    write_minutes(sensor, 120)
    store = sensor.create_htm_model("stateful")
    path = tmp_path / "run" / "oven.ckpt"

    with pytest.raises(RuntimeError):
        Runner(sensor, store, Counter(fail_after=75), checkpoint=path, checkpoint_every=20).run_batch()
    assert path.exists()

    fresh = Counter()
    runner = Runner(sensor, store, fresh, checkpoint=path, checkpoint_every=20)
    assert fresh.seen == 60 and runner.checkpoint_ns == to_ns(minutes(59))  # last checkpoint before failing
    report = runner.run_batch(resume=True)
    assert report.first == minutes(60)  # from the checkpoint, not from the last stored result (74)
    scores = [r.anomaly_score for r in store.get_results()]
    assert scores == [float(i + 1) for i in range(120)]  # the same as one uninterrupted run
    assert Runner(sensor, store, Counter(), checkpoint=path).checkpoint_ns == to_ns(minutes(119))


def test_aggregation_feeds_one_reading_per_bucket(client):
    sensor = client.create_sensor("power", "heater")
    write_minutes(sensor, 600)  # 10 hours
    expected = sensor.get_data(aggregation="1h")
    seen = []

    def model(point):
        seen.append(point)
        return {"anomaly_score": point.value / 100}

    store = sensor.create_htm_model("hourly", aggregation="1h")
    report = Runner(sensor, store, model).run_batch(aggregation="1h", chunk_size=3)  # slices of 3 buckets
    assert report.points == len(expected) == 10
    assert [(p.time, p.value) for p in seen] == [(p.time, p.value) for p in expected]
    assert [r.time for r in store.get_results()] == [p.time for p in expected]
    # Resuming an aggregated run starts at the next bucket.
    sensor.write([{"time": minutes(600 + i), "value": 1.0} for i in range(60)])
    more = Runner(sensor, store, model).run_batch(aggregation="1h", resume=True)
    assert (more.points, more.first) == (1, minutes(600))


def test_result_forms_and_none(client):
    sensor = client.create_sensor("power", "lamp")
    write_minutes(sensor, 6)
    forms = {
        0: lambda p: {"anomaly_score": 0.5},  # no time: the point's
        1: lambda p: {"time": p.time, "anomalyScore": 0.25, "rawScore": 1},  # camelCase, an int
        2: lambda p: HtmResult(time=p.time, anomaly_score=0.125, anomaly_likelihood=0.9),
        3: lambda p: None,  # no result for this point
        4: lambda p: {"inferences": {"anomalyScore": 0.75}},  # the original's form, no time
        5: lambda p: {"anomaly_score": 1, "value": p.value},  # ignored key
    }
    counter = iter(range(6))

    def model(point):
        return forms[next(counter)](point)

    store = sensor.create_htm_model("forms")
    report = Runner(sensor, store, model).run_batch()
    assert (report.points, report.results) == (6, 5)
    got = {r.time: (r.anomaly_score, r.raw_score, r.anomaly_likelihood) for r in store.get_results()}
    assert got == {
        minutes(0): (0.5, None, None),
        minutes(1): (0.25, 1.0, None),
        minutes(2): (0.125, None, 0.9),
        minutes(4): (0.75, None, None),
        minutes(5): (1.0, None, None),
    }


def test_a_result_that_cannot_be_stored_names_the_problem(client):
    sensor = client.create_sensor("power", "tv")
    write_minutes(sensor, 3)
    store = sensor.create_htm_model("nan")
    with pytest.raises(ValidationError, match="finite"):
        Runner(sensor, store, lambda p: {"anomaly_score": float("nan")}).run_batch()
    with pytest.raises(ValidationError, match="bogus"):
        Runner(sensor, store, lambda p: {"anomaly_score": 0.1, "bogus": 1}).run_batch()


def test_nanosecond_timestamps_are_kept(client):
    sensor = client.create_sensor("power", "ns")
    base = to_ns(T0) + 123  # not a whole microsecond
    client.write_lines([f"power,component=ns value={i}.5 {base + i * 1000}" for i in range(3)])
    store = sensor.create_htm_model("m")
    Runner(sensor, store, lambda p: {"anomaly_score": 0.5}).run_batch()
    rows = client.rows(store._query().select("anomalyScore"))
    assert [row[0] for row in rows] == [base, base + 1000, base + 2000]


def test_progress_bar_and_report(client, capsys):
    sensor = client.create_sensor("power", "bar")
    write_minutes(sensor, 50)
    store = sensor.create_htm_model("m")
    report = Runner(sensor, store, lambda p: {"anomaly_score": 0.0}).run_batch(progress=True, batch_size=10)
    assert "50/50" in capsys.readouterr().err
    assert isinstance(report, RunReport) and report.points_per_second > 0
    text = str(report)
    assert "50 points -> 50 results" in text and minutes(0).isoformat() in text
    with pytest.raises(AttributeError):
        report.points = 3  # frozen


def test_an_empty_slice_and_bad_arguments(client):
    sensor = client.create_sensor("power", "empty")
    store = sensor.create_htm_model("m")
    report = Runner(sensor, store, lambda p: {"anomaly_score": 0.0}).run_batch()
    assert (report.points, report.results, report.first) == (0, 0, None)
    assert Runner(sensor, store, lambda p: None).run_batch(aggregation="1h").points == 0
    with pytest.raises(ValidationError, match="aggregation"):
        Runner(sensor, store, lambda p: None).run_batch(aggregation="hourly")
    with pytest.raises(ValidationError, match="run"):
        Runner(sensor, store, object())
    other = client.create_sensor("power", "other").create_htm_model("m")
    with pytest.raises(ValidationError, match="store"):
        Runner(sensor, other, lambda p: None)
