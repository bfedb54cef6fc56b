"""Transient faults are retried with backoff and jitter, bounded in attempts and time; nothing is lost.

Connection refused comes from the real managed influxd, killed and restarted on the
same port and data directory. 5xx answers, answers that come too late (timeouts) and
connections reset in the middle of a request come from `FlakyProxy` (see conftest):
a real influxd cannot be made to produce them on demand, so a small proxy on loopback
injects them and forwards everything else to the real server, where the data is counted.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from datetime import datetime

import pytest
import requests

from influxhtm import field, measurement, tag, timestamp
from influxhtm.core.errors import InfluxConnectionError, InfluxHtmError, QueryError, ServerError
from influxhtm.htm.client import InfluxHtmClient
from influxhtm.io.connection import Connection
from influxhtm.io.settings import Settings
from influxhtm.tools.server import LocalInfluxd, free_port

T0 = 1_600_000_000_000_000_000
FAST = {"backoff": 0.02, "max_backoff": 0.2}


def new_database(connection: Connection) -> str:
    name = f"tf_{uuid.uuid4().hex[:10]}"
    connection.query(f'CREATE DATABASE "{name}"', method="POST")
    return name


def points(start: int, stop: int, sensors: int = 4) -> tuple[str, dict]:
    """Line protocol for points start..stop-1, and what each must read back as."""
    lines, expected = [], {}
    for i in range(start, stop):
        sensor, t, v = f"s{i % sensors}", T0 + i * 1000, i + 0.25
        lines.append(f"rel,sensor={sensor} v={v!r} {t}")
        expected[(sensor, t)] = v
    return "\n".join(lines), expected


@measurement("rel")
class Reading:
    """The million-point test's measurement: the same layout as `points()` writes."""

    time: datetime = timestamp()
    sensor: str = tag()
    v: float = field()


def write_all(settings: Settings, database: str, n: int, batch: int = 10_000) -> dict:
    """Write points 0..n-1 through `Repository.add_all`; returns what must be stored."""
    client = InfluxHtmClient.from_settings(database, settings)
    try:
        readings = (Reading(time=T0 + i * 1000, sensor=f"s{i % 4}", v=i + 0.25) for i in range(n))
        assert client.repository(Reading).add_all(readings, batch_size=batch) == n
    finally:
        client.close()
    return {(f"s{i % 4}", T0 + i * 1000): i + 0.25 for i in range(n)}


def stored(connection, database, read_points):
    return read_points(connection, "SELECT v FROM rel GROUP BY sensor", database, tag="sensor")


def retry_warnings(caplog) -> int:
    return sum(1 for r in caplog.records if r.name == "influxhtm.io.connection" and "retry" in r.getMessage())


# -- connection refused: the real server goes away and comes back --------------
def test_refused_while_server_is_down_then_written_after_restart(
    tmp_path, compare, read_points, reliability_report, caplog
):
    with LocalInfluxd(data_dir=tmp_path / "influxd") as server:
        settings = Settings(host=server.host, port=server.port, retries=50, retry_deadline=60, **FAST)
        with Connection(settings) as connection:
            database = new_database(connection)
            body, expected = points(0, 100)
            connection.write(body, database=database)
            server.kill()
            restarter = threading.Timer(2.0, server.restart)
            restarter.start()
            body, more = points(100, 200)
            started = time.monotonic()
            with caplog.at_level(logging.WARNING, logger="influxhtm.io.connection"):
                connection.write(body, database=database)  # refused until the server is back
            waited = time.monotonic() - started
            restarter.join()
            expected.update(more)
            read_back, lost, duplicated = compare(expected, stored(connection, database, read_points))
    assert waited >= 1.5 and retry_warnings(caplog) >= 2
    assert "ConnectionError" in caplog.text and settings.url in caplog.text
    assert (read_back, lost, duplicated) == (200, 0, 0)
    reliability_report(
        scenario="server down 2 s during a write",
        faults="SIGKILL influxd, restart after 2 s (connection refused)",
        written=200,
        read_back=read_back,
        lost=lost,
        duplicated=duplicated,
    )


def test_refused_retries_are_bounded_in_attempts(caplog):
    settings = Settings(host="127.0.0.1", port=free_port(), retries=3, **FAST)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="influxhtm.io.connection"):
        with pytest.raises(InfluxConnectionError) as info:
            Connection(settings).write("m v=1 1", database="db")
    assert time.monotonic() - started < 5
    assert retry_warnings(caplog) == 3
    assert "after 4 attempt(s)" in str(info.value) and settings.url in str(info.value)
    assert "Connection refused" in str(info.value) and info.value.url == settings.url


def test_refused_retries_are_bounded_in_time():
    settings = Settings(
        host="127.0.0.1", port=free_port(), retries=10_000, retry_deadline=1.0, backoff=0.05, max_backoff=0.1
    )
    started = time.monotonic()
    with pytest.raises(InfluxConnectionError) as info:
        Connection(settings).query("SHOW DATABASES")
    elapsed = time.monotonic() - started
    assert 0.9 <= elapsed < 3.0
    attempts = int(str(info.value).split(" after ")[1].split(" attempt")[0])
    assert 2 < attempts < 10_000


def test_retry_settings_come_from_settings_and_are_validated():
    with pytest.raises(InfluxHtmError, match="retries=-1"):
        Settings(retries=-1)
    with pytest.raises(InfluxHtmError, match="retry_deadline='soon'"):
        Settings(retry_deadline="soon")
    with pytest.raises(InfluxHtmError, match="timeout=0"):
        Settings(timeout=0)
    settings = Settings.resolve(environ={}, retries=7, retry_deadline=3.5, backoff=0.5, max_backoff=4.0)
    got = (settings.retries, settings.retry_deadline, settings.backoff, settings.max_backoff)
    assert got == (7, 3.5, 0.5, 4.0)


def test_backoff_doubles_is_capped_and_jittered():
    connection = Connection(Settings(backoff=0.1, max_backoff=1.0))
    for attempt, base in [(1, 0.1), (2, 0.2), (3, 0.4), (4, 0.8), (5, 1.0), (12, 1.0)]:
        delays = [connection.backoff_delay(attempt) for _ in range(200)]
        assert all(0.5 * base <= d <= 1.5 * base for d in delays)
        assert len(set(delays)) > 150  # jitter: the delays differ
        assert 0.8 * base < sum(delays) / len(delays) < 1.2 * base


# -- 5xx, resets, timeouts: injected by a proxy in front of the real server -----
@pytest.fixture
def real(influx_settings):
    with Connection(influx_settings) as connection:
        database = new_database(connection)
        yield connection, database
        connection.query(f'DROP DATABASE "{database}"', method="POST")


def through(proxy, **options) -> Connection:
    return Connection(Settings(host=proxy.host, port=proxy.port, **{**FAST, **options}))


@pytest.mark.parametrize(
    "script",
    [[503, 503], [500, 502, 504], ["reset"], ["reset", 503, "reset"]],
    ids=["503x2", "500-502-504", "reset", "reset-503-reset"],
)
def test_5xx_and_resets_are_retried_and_the_write_lands(
    real, flaky_proxy, script, compare, read_points, reliability_report
):
    connection, database = real
    proxy = flaky_proxy(connection.settings.host, connection.settings.port, script=list(script))
    body, expected = points(0, 1000)
    through(proxy, retries=5).write(body, database=database)
    assert proxy.seen == [*script, "pass"]
    read_back, lost, duplicated = compare(expected, stored(connection, database, read_points))
    assert (read_back, lost, duplicated) == (1000, 0, 0)
    reliability_report(
        scenario="5xx / reset then success",
        faults=" ".join(str(a) for a in script) + " (proxy)",
        written=1000,
        read_back=read_back,
        lost=lost,
        duplicated=duplicated,
    )


def test_timeout_is_retried_and_the_late_write_is_not_duplicated(
    real, flaky_proxy, compare, read_points, reliability_report
):
    connection, database = real
    # the first answer comes after the client gave up; the server did store that write,
    # and the retry stores the same points again: overwritten, not duplicated
    proxy = flaky_proxy(connection.settings.host, connection.settings.port, script=[("slow", 1.0)])
    body, expected = points(0, 1000)
    through(proxy, retries=3, timeout=0.3).write(body, database=database)
    assert proxy.seen == [("slow", 1.0), "pass"]
    time.sleep(0.8)  # let the late answer finish
    read_back, lost, duplicated = compare(expected, stored(connection, database, read_points))
    assert (read_back, lost, duplicated) == (1000, 0, 0)
    reliability_report(
        scenario="timeout then success",
        faults="answer 1 s late, client timeout 0.3 s (proxy)",
        written=1000,
        read_back=read_back,
        lost=lost,
        duplicated=duplicated,
    )


def test_persistent_5xx_gives_up_after_the_retries(real, flaky_proxy):
    connection, database = real
    proxy = flaky_proxy(connection.settings.host, connection.settings.port, always=503)
    client = through(proxy, retries=2)
    with pytest.raises(ServerError) as info:
        client.write("m v=1 1", database=database)
    assert info.value.status == 503 and len(proxy.seen) == 3
    assert "after 3 attempt(s)" in str(info.value) and client.settings.url in str(info.value)


def test_persistent_timeout_gives_up_after_the_retries(real, flaky_proxy):
    connection, database = real
    proxy = flaky_proxy(connection.settings.host, connection.settings.port, always=("slow", 0.5))
    client = through(proxy, retries=1, timeout=0.2)
    with pytest.raises(InfluxConnectionError) as info:
        client.query("SHOW DATABASES")
    assert "timed out" in str(info.value) and "after 2 attempt(s)" in str(info.value)
    assert len(proxy.seen) == 2


def test_queries_are_retried_too(real, flaky_proxy):
    connection, database = real
    connection.write("q v=2.5 5", database=database)
    proxy = flaky_proxy(connection.settings.host, connection.settings.port, script=[503, "reset"])
    results = through(proxy, retries=3).query("SELECT v FROM q", database=database)
    assert results[0]["series"][0]["values"] == [[5, 2.5]]
    assert proxy.seen == [503, "reset", "pass"]


def test_client_errors_are_not_retried(real, flaky_proxy):
    connection, database = real
    proxy = flaky_proxy(connection.settings.host, connection.settings.port)
    client = through(proxy, retries=5)
    with pytest.raises(QueryError) as info:
        client.query("SELEC nothing", database=database)
    assert len(proxy.seen) == 1
    assert client.settings.url in str(info.value) and "SELEC nothing" in str(info.value)


# -- the million points -----------------------------------------------------------
def kill_and_restart(server: LocalInfluxd, after_points: int, down_for: float, log: dict) -> None:
    """Wait until the server has stored `after_points` points, SIGKILL it, restart it later."""
    vars_url = f"{server.url}/debug/vars"
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            stats = requests.get(vars_url, timeout=2).json()
            written = sum(
                v["values"].get("pointsWrittenOK", 0) for k, v in stats.items() if k.startswith("httpd")
            )
            if written >= after_points:
                break
            time.sleep(0.01)
        log["killed_at"] = written
        server.kill()
        log["killed"] = time.monotonic()
        time.sleep(down_for)
        server.restart()
        log["restarted"] = time.monotonic()
    except BaseException as error:  # reported by the test
        log["error"] = error


@pytest.mark.slow
@pytest.mark.timeout(900)  # a million points, a crash and a restart: 73 s on a loaded 2-core machine
def test_million_points_survive_a_server_crash(tmp_path, compare, read_points, reliability_report):
    n = 1_000_000
    with LocalInfluxd(data_dir=tmp_path / "influxd") as server:
        settings = Settings(host=server.host, port=server.port, retries=100, retry_deadline=60,
                            backoff=0.05, max_backoff=0.5)
        with Connection(settings) as connection:
            database = new_database(connection)
            log: dict = {}
            killer = threading.Thread(target=kill_and_restart, args=(server, 200_000, 3.0, log))
            killer.start()
            started = time.monotonic()
            expected = write_all(settings, database, n)
            finished = time.monotonic()
            killer.join()
            assert "error" not in log, log.get("error")
            # the crash happened in the middle of the writing, and the writer waited it out
            assert started < log["killed"] < finished and log["restarted"] < finished
            assert 200_000 <= log["killed_at"] < n
            count = connection.query("SELECT count(v) FROM rel", database=database)
            assert count[0]["series"][0]["values"][0][1] == n
            read_back, lost, duplicated = compare(expected, stored(connection, database, read_points))
    assert len(expected) == n
    assert (read_back, lost, duplicated) == (n, 0, 0)
    reliability_report(
        scenario="1,000,000 points, server crash",
        faults=f"SIGKILL influxd at {log['killed_at']} points, restart on same data dir after 3 s",
        written=n,
        read_back=read_back,
        lost=lost,
        duplicated=duplicated,
    )
