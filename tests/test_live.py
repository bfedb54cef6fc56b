"""Live runs (poll and subscription) against a real influxd, and the line protocol parser behind push mode.

The runs through a server restart are in tests/reliability/test_live_restart.py.
"""

from __future__ import annotations

import gzip
import queue
import threading
import time
import uuid

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from influxhtm.core.errors import ValidationError
from influxhtm.core.times import now_ns
from influxhtm.htm.client import InfluxHtmClient
from influxhtm.htm.model_store import HtmModelStore
from influxhtm.influxql import admin
from influxhtm.model.line_protocol import encode_point, key_problem, measurement_problem
from influxhtm.running import Runner, SubscriptionReceiver, parse_line, parse_lines
from influxhtm.running.subscription import series_filter


# -- the parser ------------------------------------------------------------------------------
def test_parse_line_reads_every_part():
    point = parse_line(
        'power,component=coffee\\ machine,site=a\\,b value=1.5,n=3i,u=4u,ok=t,s="x \\"y\\" \\\\" 17')
    assert point.measurement == "power"
    assert point.tags == {"component": "coffee machine", "site": "a,b"}
    assert point.fields == {"value": 1.5, "n": 3, "u": 4, "ok": True, "s": 'x "y" \\'}
    assert point.time == 17


def test_parse_line_escapes_precision_and_comments():
    point = parse_line("my\\ power\\,x,k\\=1=v\\=2 f\\ 1=-2e3,b=FALSE 5", precision="s")
    assert (point.measurement, point.tags, point.fields, point.time) == (
        "my power,x", {"k=1": "v=2"}, {"f 1": -2000.0, "b": False}, 5_000_000_000)
    assert parse_line("m v=1").time is None
    assert parse_line("# a comment") is None and parse_line("   ") is None
    assert [p.fields["v"] for p in parse_lines("m v=1 1\n\nm v=2 2\n")] == [1.0, 2.0]


@pytest.mark.parametrize("line", ["m", "m,t v=1", "m v=", 'm s="open', "m v=1 abc", ",t=1 v=1", "m,t= v=1"])
def test_parse_line_refuses_malformed_lines(line):
    with pytest.raises(ValidationError):
        parse_line(line)


names = st.text(st.characters(codec="utf-8", exclude_characters="\n\r\\#"), min_size=1, max_size=12).filter(
    lambda s: s.strip() == s and measurement_problem(s) is None and key_problem(s, kind="field") is None
)
field_values = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(-(2**63), 2**63 - 1),
    st.booleans(),
    st.text(st.characters(codec="utf-8", exclude_characters="\r"), max_size=20),
)


@settings(max_examples=300, deadline=None)
@given(
    measurement=names,
    tags=st.dictionaries(names, names, max_size=3),
    fields=st.dictionaries(names, field_values, min_size=1, max_size=4),
    ns=st.integers(-(2**62), 2**62),
)
def test_parse_line_reads_back_what_the_encoder_writes(measurement, tags, fields, ns):
    line = encode_point(measurement, tags, fields, ns, ints_as_floats=False)
    point = parse_line(line)
    assert point.measurement == measurement
    assert point.tags == tags
    assert point.fields == fields
    assert point.time == ns


# -- the endpoint ----------------------------------------------------------------------------
def drain(points: queue.Queue) -> list:
    """Everything in the queue now, without waiting."""
    got = []
    while True:
        try:
            got.append(points.get_nowait())
        except queue.Empty:
            return got


def test_receiver_queues_the_points_of_one_series():
    with SubscriptionReceiver(series_filter("power", "a"), database="db") as receiver:
        body = (
            "power,component=a value=1 10\npower,component=b value=2 11\npower_model,component=a value=3 12\n"
            "power,component=a value=4i 13\nnot line protocol\npower,component=a other=1 14\n"
        )
        answer = requests.post(receiver.url + "/write?db=db&rp=autogen&precision=ns", data=body, timeout=5)
        assert answer.status_code == 204
        other = "power,component=a value=9 1"
        requests.post(receiver.url + "/write?db=other&precision=ns", data=other, timeout=5)
        answer = requests.post(receiver.url + "/write?db=db&precision=ms", data="power,component=a value=5 7",
                               timeout=5)
        assert answer.status_code == 204
        # A 204 means the points are queued: what is in the queue now is all there will be.
        got = drain(receiver.points)
    assert [(p.time, p.value) for p in got] == [(10, 1.0), (13, 4.0), (7_000_000, 5.0)]
    assert receiver.bad_lines == 1
    assert all(p.received > 0 for p in got)


def test_a_204_means_the_points_are_queued():
    def slow_filter(point):  # a busy endpoint: the answer must still wait for the queue
        time.sleep(0.2)
        return point.measurement == "power"

    with SubscriptionReceiver(slow_filter) as receiver:
        for n in range(3):
            answer = requests.post(receiver.url + "/write?db=db", data=f"power value={n} {n}", timeout=5)
            assert answer.status_code == 204
            assert [(p.time, p.value) for p in drain(receiver.points)] == [(n, float(n))]
        body = gzip.compress(b"power value=7 7\npower value=8 8")
        answer = requests.post(receiver.url + "/write?db=db", data=body, headers={"Content-Encoding": "gzip"},
                               timeout=5)
        assert answer.status_code == 204
        assert [p.value for p in drain(receiver.points)] == [7.0, 8.0]
        answer = requests.post(receiver.url + "/write?db=db", data=b"power value=9 9",
                               headers={"Content-Encoding": "gzip"}, timeout=5)
        assert answer.status_code == 400  # not gzip: refused, nothing queued
        assert drain(receiver.points) == []


# -- live runs -------------------------------------------------------------------------------
class Writer(threading.Thread):
    """Writes `n` points of a sensor, stamped with the wall clock, every `pause` seconds."""

    def __init__(self, sensor, n: int, pause: float = 0.01):
        super().__init__(daemon=True)
        self.sensor, self.n, self.pause = sensor, n, pause
        self.written: list[int] = []
        self.error: BaseException | None = None

    def run(self):
        try:
            for i in range(self.n):
                ns = now_ns()
                self.sensor.write({"time": ns, "value": float(i)})
                self.written.append(ns)
                time.sleep(self.pause)
        except BaseException as error:  # noqa: BLE001 - reported by the test
            self.error = error


def subscriptions(client) -> list:
    """The subscriptions of the client's database."""
    answer = client.result_series(admin.show_subscriptions())
    return [row for series in answer if series["name"] == client.database for row in series.get("values", [])]


def result_times(store) -> list[int]:
    return [row[0] for row in store.sensor.client.rows(store._query().select("anomalyScore"))]


@pytest.mark.parametrize("mode", ["poll", "subscription"])
def test_live_run_processes_each_new_point_once_in_order(client, mode):
    sensor = client.create_sensor("power", f"live-{mode}")
    sensor.write({"time": now_ns() - 10**9, "value": -1.0})  # history: processed first
    store = sensor.create_htm_model("live")
    seen: list[float] = []

    def model(point):
        seen.append(point.value)
        return {"anomaly_score": 0.5}

    writer = Writer(sensor, 40)
    writer.start()
    report = Runner(sensor, store, model).run_live(poll_interval=0.1, max_points=41, mode=mode)
    writer.join()
    assert writer.error is None
    assert seen == [-1.0] + [float(i) for i in range(40)]
    assert report.points == report.results == 41
    assert result_times(store)[1:] == writer.written
    assert report.latency is not None and report.latency.count == 41
    assert report.lag is not None and report.lag.median < 5.0
    assert mode in str(report)
    print(f"\n{mode}: {report}")
    assert not subscriptions(client)  # dropped (or never made)


def test_live_run_stops_on_the_event_and_resumes_after_the_last_result(client):
    sensor = client.create_sensor("power", "resume")
    store = sensor.create_htm_model("m")
    sensor.write([{"time": now_ns() - 10**9 + i, "value": float(i)} for i in range(5)])
    stop, all_seen = threading.Event(), threading.Event()
    stopped_at: list[float] = []

    def model(point):
        if point.value == 4.0:
            all_seen.set()
        return {"anomaly_score": point.value}

    def stop_when_idle():  # not a timer: under load the run may take long to see the 5 points
        if all_seen.wait(60):
            time.sleep(0.3)  # the run is waiting for new points now
        stopped_at.append(time.monotonic())
        stop.set()

    stopper = threading.Thread(target=stop_when_idle)
    stopper.start()
    first = Runner(sensor, store, model).run_live(poll_interval=10.0, stop=stop)
    returned = time.monotonic()
    stopper.join()
    assert returned - stopped_at[0] < 3  # the stop event ends the wait, not the poll interval
    assert first.points == 5
    sensor.write([{"time": now_ns(), "value": 9.0}])
    second = Runner(sensor, store, model).run_live(poll_interval=0.05, max_points=1)
    assert second.points == 1 and second.last == store.last_result_time()
    assert store.count() == 6


def test_subscription_is_dropped_when_the_model_fails(client):
    sensor = client.create_sensor("power", "boom")
    store = sensor.create_htm_model("m")

    def model(point):
        raise RuntimeError("boom")

    sensor.write({"time": now_ns(), "value": 1.0})
    with pytest.raises(RuntimeError, match="boom"):
        Runner(sensor, store, model).run_live(mode="subscription", poll_interval=0.1, max_points=1)
    assert not subscriptions(client)
    assert store.count() == 0


def test_live_run_can_start_before_the_database_exists(influx_settings):
    client = InfluxHtmClient.from_settings(f"later_{uuid.uuid4().hex[:8]}", influx_settings)
    sensor = client.create_sensor("power", "later")
    store = HtmModelStore(sensor, "m", registered=False)  # no registry entry: nothing may be written yet
    writer = threading.Timer(0.3, lambda: sensor.write({"time": now_ns(), "value": 1.0}))
    writer.start()
    try:
        runner = Runner(sensor, store, lambda p: {"anomaly_score": 0.5})
        report = runner.run_live(poll_interval=0.05, max_points=1)
        assert report.points == 1 and store.count() == 1
    finally:
        writer.join()
        client.drop_database()
        client.close()


def test_live_arguments_are_checked(client):
    sensor = client.create_sensor("power", "args")
    runner = Runner(sensor, sensor.create_htm_model("m"), lambda p: None)
    with pytest.raises(ValidationError, match="mode"):
        runner.run_live(mode="push")
    with pytest.raises(ValidationError, match="poll_interval"):
        runner.run_live(poll_interval=0)
    with pytest.raises(ValidationError, match="max_points"):
        runner.run_live(max_points=0)


def test_subscription_runs_leave_no_handler_threads(client):
    import threading

    sensor = client.create_sensor("power", "threads")
    store = sensor.create_htm_model("m")
    before = {t.ident for t in threading.enumerate()}
    for _ in range(3):
        sensor.write({"time": now_ns(), "value": 1.0})
        stop = threading.Event()
        timer = threading.Timer(1.0, stop.set)
        timer.start()
        Runner(sensor, store, lambda p: {"time": p.time, "anomaly_score": 0.0}).run_live(
            poll_interval=0.1, stop=stop, mode="subscription"
        )
        timer.join()
    leftover = [t for t in threading.enumerate() if t.ident not in before and t.is_alive()]
    assert leftover == [], leftover
