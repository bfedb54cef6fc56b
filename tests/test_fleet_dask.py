"""`Fleet` on a `dask.distributed` LocalCluster: sensors split over the workers, a worker killed mid-run.

Each input point must have exactly one stored result afterwards, with the very
numbers of a run in one process without Dask (the engine is deterministic).
"""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
from fleet_engine import ewma
from test_fleet import STEP, T0, results, wait_for, write

from influxhtm.htm.client import InfluxHtmClient
from influxhtm.running.fleet import Fleet
from influxhtm.running.fleet_dask import Coordinator
from influxhtm.running.report import LagHistogram
from influxhtm.running.routing import owner_of

distributed = pytest.importorskip("distributed")

SENSORS = [f"s{i}" for i in range(8)]


@pytest.fixture
def client(influx_settings, influx_database):
    client = InfluxHtmClient.from_settings(influx_database, influx_settings)
    client.create_database()
    yield client
    client.close()


@pytest.mark.timeout(240)
def test_a_killed_worker_s_sensors_resume_elsewhere_with_exactly_one_result_per_point(client, tmp_path):
    for i, component in enumerate(SENSORS):
        write(client, "power", component, 0, 10, seed=i)
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=":0", silence_logs=40)
    dask = distributed.Client(cluster)
    written = {"n": 10}
    stop_writing = threading.Event()

    def writer():  # one point per sensor every 0.1 s, pushed to the fleet by the subscription
        while not stop_writing.is_set():
            n = written["n"]
            for i, component in enumerate(SENSORS):
                write(client, "power", component, n, 1, seed=i)
            written["n"] = n + 1
            stop_writing.wait(0.1)

    fleet = Fleet(client, "power", engine=ewma, model_id="d1", checkpoint_dir=tmp_path / "ckpt",
                  checkpoint_every=5, poll_interval=0.5, discover_interval=5.0, scheduler=dask)
    out = {}
    runner = threading.Thread(target=lambda: out.setdefault("report", fleet.run()), daemon=True)
    runner.start()
    feeder = threading.Thread(target=writer, daemon=True)
    try:
        wait_for(lambda: all(len(results(client, "power", c, "d1")) >= 10 for c in SENSORS), timeout=90)
        feeder.start()
        workers = sorted(dask.scheduler_info()["workers"])
        victim = workers[0]
        victims = [c for c in SENSORS if owner_of(("power", c), workers) == victim]
        assert victims and len(victims) < len(SENSORS)  # both workers run sensors
        time.sleep(1.0)
        pid = dask.run(os.getpid, workers=[victim])[victim]
        before = {c: len(results(client, "power", c, "d1")) for c in victims}
        killed = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: all(len(results(client, "power", c, "d1")) > before[c] + 5 for c in victims),
                 timeout=60)
        recovered = time.monotonic() - killed
        stop_writing.set()
        feeder.join(10)
        total = written["n"]
        wait_for(lambda: all(len(results(client, "power", c, "d1")) == total for c in SENSORS), timeout=60)
    finally:
        stop_writing.set()
        fleet.stop()
        runner.join(120)
        dask.close()
        cluster.close()
    assert not runner.is_alive()
    report = out["report"]
    print(f"recovered in {recovered:.1f} s; {total} points per sensor; {report}")
    assert report.errors == 0 or report.points >= total * len(SENSORS)
    assert recovered < 30, f"the killed worker's sensors had new results after {recovered:.1f} s"
    # Exactly one result per point (keyed by series and time), the numbers of a run without Dask.
    alone = Fleet(client, "power", engine=ewma, model_id="d2", checkpoint_dir=tmp_path / "alone", mode="poll")
    alone.run(max_points=total * len(SENSORS))
    for component in SENSORS:
        stored = results(client, "power", component, "d1")
        assert sorted(stored) == [T0 + i * STEP for i in range(total)]
        assert stored == results(client, "power", component, "d2")


def test_a_dask_fleet_s_lag_is_over_every_point_of_every_worker_and_generation():
    """Not the worst worker's p95: 10 slow points of 200 (5%) leave the fleet's p95 fast, 11 do not."""
    def histogram(seconds, count):
        lag = LagHistogram()
        for _ in range(count):
            lag.add(seconds)
        return lag.pairs()

    coordinator = Coordinator(fleet=None, dask=None, on_status=None)
    coordinator.latest = {"w1": {"lag_histogram": histogram(0.05, 190), "lag_p95": 0.05},
                          "w2": {"lag_histogram": histogram(8.0, 10), "lag_p95": 8.0}}
    status = coordinator.current()
    assert 0.05 <= status["lag_p95"] <= 0.05 * LagHistogram.RATIO
    assert 0.05 <= status["lag_p50"] <= 0.05 * LagHistogram.RATIO
    coordinator.done_lag.merge(histogram(8.0, 1))  # a generation that ended: its points count too
    assert 8.0 <= coordinator.current()["lag_p95"] <= 8.0 * LagHistogram.RATIO
