"""Forged subscription pushes never reach a live model (issue 16, item 2).

Any local process can POST line protocol to the subscription endpoint. The
endpoint answers 403 unless the path carries the secret token given to CREATE
SUBSCRIPTION, and even a push with the token is only a signal: the live run
feeds the model the values the server holds. The model is held on its first
point while the real push and then a forged push for the same time (with the
token, as an administrator could read it from SHOW SUBSCRIPTIONS) are queued,
so the forged value is the latest one pushed for that time.
"""

from __future__ import annotations

import threading
import time
from urllib.parse import urlsplit

import requests

from influxhtm.core.times import now_ns, to_ns
from influxhtm.influxql import admin
from influxhtm.running import Runner

MS = 1_000_000


def destination(client) -> str:
    """The URL the live run's subscription gives InfluxDB (what SHOW SUBSCRIPTIONS lists)."""
    for series in client.result_series(admin.show_subscriptions()):
        if series["name"] == client.database:
            for row in series.get("values", []):
                return row[-1][0]
    raise AssertionError("no subscription")


def wait_for(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_forged_pushes_never_reach_the_model(client, reliability_report):
    sensor = client.create_sensor("power", "pump")
    store = sensor.create_htm_model("live")
    t0 = now_ns() - 10 * 10**9
    sensor.write({"time": t0, "value": 1.0})
    gate = threading.Event()
    seen: list[float] = []

    def model(point):
        seen.append(point.value)
        if point.value == 1.0:
            gate.wait(30)  # hold the live run while pushes queue up
        return {"anomaly_score": 0.5}

    reports = []
    runner = Runner(sensor, store, model)
    thread = threading.Thread(target=lambda: reports.append(
        runner.run_live(mode="subscription", poll_interval=60, max_points=3)))
    thread.start()
    try:
        wait_for(lambda: seen == [1.0])
        url = destination(client)
        origin = "{0.scheme}://{0.netloc}".format(urlsplit(url))
        forged = f"power,component=pump value=999 {t0 + MS}"
        statuses = [requests.post(f"{origin}{path}?db={client.database}&precision=ns", data=forged,
                                  timeout=5).status_code for path in ("/write", "/not-the-token/write")]
        assert statuses == [403, 403]  # no token, a wrong token: refused
        sensor.write({"time": t0 + MS, "value": 2.0})  # pushed by InfluxDB
        time.sleep(1.0)  # the real push is queued; the forged one below comes after it
        answer = requests.post(f"{url}/write?db={client.database}&precision=ns", data=forged, timeout=5)
        assert answer.status_code == 204  # the right token: accepted, but only as a signal
    finally:
        gate.set()
    wait_for(lambda: len(seen) >= 2)
    # A push (with the token) of a point the server never stored feeds nothing.
    requests.post(f"{url}/write?db={client.database}&precision=ns",
                  data=f"power,component=pump value=555 {t0 + 2 * MS}", timeout=5)
    sensor.write({"time": t0 + 3 * MS, "value": 3.0})
    thread.join(60)
    assert not thread.is_alive()
    results = store.get_results()
    lost = sum(1 for value in (1.0, 2.0, 3.0) if value not in seen)
    reliability_report(
        scenario="forged subscription pushes",
        faults="POSTs with no token, a wrong token (403), the token and a forged value or time",
        written=3, read_back=len(results), lost=lost, duplicated=len(seen) - 3 + lost,
    )
    assert seen == [1.0, 2.0, 3.0]
    assert [to_ns(r.time) for r in results] == [t0, t0 + MS, t0 + 3 * MS]
    assert reports[0].points == 3 and len(results) == 3
