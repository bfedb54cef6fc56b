"""A live run through a crash of the real influxd: every point written gets exactly one result.

A writer thread adds points (stamped with the wall clock) while `Runner.run_live`
processes them; half-way the managed influxd is killed with SIGKILL and started
again on the same port and data directory. Both modes: polling, and push through
a subscription (kept in the server's meta store across the restart).
"""

from __future__ import annotations

import threading
import time

import pytest

from influxhtm.core.times import now_ns
from influxhtm.htm.client import InfluxHtmClient
from influxhtm.influxql import admin
from influxhtm.io.settings import Settings
from influxhtm.running import Runner
from influxhtm.tools.server import LocalInfluxd

POINTS = 150
PAUSE = 0.02  # seconds between two points: the writer runs about 3 s plus the downtime


@pytest.fixture
def server(tmp_path):
    with LocalInfluxd(data_dir=tmp_path / "influxd") as server:
        yield server


class Writer(threading.Thread):
    def __init__(self, sensor):
        super().__init__(daemon=True)
        self.sensor = sensor
        self.written: list[int] = []
        self.error: BaseException | None = None

    def run(self):
        try:
            for i in range(POINTS):
                ns = now_ns()
                self.sensor.write({"time": ns, "value": float(i)})  # retried by the connection while down
                self.written.append(ns)
                time.sleep(PAUSE)
        except BaseException as error:  # noqa: BLE001 - reported by the test
            self.error = error


@pytest.mark.slow
@pytest.mark.timeout(300)  # about 7 s; its waits are bounded at 3 x 60 s
@pytest.mark.parametrize("mode", ["poll", "subscription"])
def test_live_run_under_restart(server, mode, reliability_report):
    # The runner's connection does not retry by itself (retries=0): the live loop must ride out the restart.
    settings = Settings(host=server.host, port=server.port, retries=0, timeout=5.0)
    client = InfluxHtmClient.from_settings("live_restart", settings)
    client.create_database()
    sensor = client.create_sensor("power", "pump")
    writer_client = InfluxHtmClient.from_settings(
        "live_restart", Settings(host=server.host, port=server.port, backoff=0.05, max_backoff=0.5))
    store = sensor.create_htm_model("live")
    seen: list[float] = []
    reports = []

    def model(point):
        seen.append(point.value)
        return {"anomaly_score": 0.5}

    stop = threading.Event()
    runner = Runner(sensor, store, model)
    live = threading.Thread(
        target=lambda: reports.append(runner.run_live(poll_interval=0.2, stop=stop, mode=mode)), daemon=True
    )
    writer = Writer(writer_client.create_sensor("power", "pump"))
    live.start()
    time.sleep(0.3)
    writer.start()
    time.sleep(1.0)
    server.kill()
    time.sleep(0.5)
    server.restart()
    writer.join(60)
    assert writer.error is None and len(writer.written) == POINTS
    deadline = time.monotonic() + 60  # bounds only: the points arrive in seconds
    while len(seen) < POINTS and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    live.join(60)
    assert not live.is_alive()

    stored = [row[0] for row in client.rows(store._query().select("anomalyScore"))]
    lost = len(set(writer.written) - set(stored))
    duplicated = len(seen) - len(set(seen))
    reliability_report(
        scenario=f"live run under restart ({mode})",
        faults="influxd killed (SIGKILL) mid-run, restarted 0.5 s later",
        written=POINTS, read_back=len(stored), lost=lost, duplicated=duplicated,
    )
    assert seen == [float(i) for i in range(POINTS)]  # each point once, in order
    assert stored == writer.written  # one result per point, at its timestamp
    report = reports[0]
    assert report.points == report.results == POINTS
    assert report.errors > 0  # the restart did hit the run
    print(f"\n{report}")
    if mode == "subscription":
        series = client.result_series(admin.show_subscriptions())
        assert not any(s.get("values") for s in series if s["name"] == "live_restart")
    client.close()
    writer_client.close()
