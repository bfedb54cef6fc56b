"""The one write pipeline over several connections: faster, still exact in what it counts.

A real influxd answers too fast to see two POSTs overlap, so `FlakyProxy` holds every answer
back a little (and forwards the write to the real server, where the points are counted).
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta

import pytest

from influxhtm import InfluxHtmClient, field, measurement, tag, timestamp
from influxhtm.core.errors import PartialWriteError, ServerError
from influxhtm.io.settings import Settings
from influxhtm.io.writing import DEFAULT_CONNECTIONS, WritePipeline
from influxhtm.model.line_protocol import Batch

T0 = datetime.fromisoformat("2024-01-04T00:00:00+00:00")
DELAY = 0.4


@measurement("conn")
class Point:
    time: datetime = timestamp()
    sensor: str = tag()
    v: float = field()


def objects(n: int, start: int = 0) -> list[Point]:
    return [Point(time=T0 + timedelta(seconds=i), sensor="s", v=float(i)) for i in range(start, start + n)]


def through(proxy, database: str) -> InfluxHtmClient:
    settings = Settings(host=proxy.host, port=proxy.port, retries=0, timeout=10)
    return InfluxHtmClient.from_settings(database, settings)


def stored(influx_settings: Settings, database: str) -> int:
    client = InfluxHtmClient.from_settings(database, influx_settings)
    return client.repository(Point).query().count()


def test_add_all_sends_two_batches_at_once_by_default_when_their_times_are_apart(
    influx_settings, influx_database, flaky_proxy
):
    proxy = flaky_proxy(influx_settings.host, influx_settings.port, always=("slow", DELAY))
    repo = through(proxy, influx_database).repository(Point)
    assert DEFAULT_CONNECTIONS == 4
    started = time.monotonic()
    assert repo.add_all(objects(400), batch_size=100, connections=1) == 400  # 4 batches, each DELAY late
    assert time.monotonic() - started >= 4 * DELAY
    assert stored(influx_settings, influx_database) == 400

    started = time.monotonic()
    assert repo.add_all(objects(400, 400), batch_size=100) == 400
    overlapped = time.monotonic() - started
    # one at a time takes at least 4 * DELAY; two at once about 2 * DELAY
    assert overlapped < 3.5 * DELAY, overlapped
    assert stored(influx_settings, influx_database) == 800


@pytest.mark.parametrize("connections", [None, 2, 4])
def test_a_repeated_point_keeps_its_later_value(influx_settings, influx_database, flaky_proxy, connections):
    """The same series and time in two batches: the first POST is answered late, yet the value
    given later is the one stored (were the batches sent side by side, the second would land
    first and be overwritten by the first)."""
    proxy = flaky_proxy(influx_settings.host, influx_settings.port, script=[("slow", 0.5)])
    repo = through(proxy, influx_database).repository(Point)
    first = Point(time=T0, sensor="s", v=1.0)
    later = Point(time=T0, sensor="s", v=2.0)
    assert repo.add_all([first, later], batch_size=1, connections=connections) == 2
    assert [p.v for p in repo.query().all()] == [2.0]


def test_batches_whose_times_meet_travel_one_after_another(influx_settings, influx_database, flaky_proxy):
    """Four batches whose time spans overlap by half: each waits for the one before it, and every
    point of the overlap keeps the value given last."""
    proxy = flaky_proxy(influx_settings.host, influx_settings.port, always=("slow", DELAY))
    repo = through(proxy, influx_database).repository(Point)
    batches = [
        [Point(time=T0 + timedelta(seconds=s), sensor="s", v=float(k)) for s in range(50 * k, 50 * k + 100)]
        for k in range(4)
    ]
    started = time.monotonic()
    assert repo.add_all([p for batch in batches for p in batch], batch_size=100, connections=4) == 400
    assert time.monotonic() - started >= 4 * DELAY
    values = {p.time: p.v for p in repo.query().all()}
    assert len(values) == 250
    assert all(values[T0 + timedelta(seconds=s)] == min(s // 50, 3) for s in range(250))


def test_points_the_server_stamps_travel_alone(influx_settings, influx_database, flaky_proxy):
    """Points without a timestamp get the server's clock: their batches are never sent side by side."""
    proxy = flaky_proxy(influx_settings.host, influx_settings.port, always=("slow", DELAY))
    client = through(proxy, influx_database)
    pipeline = WritePipeline(client, connections=4)
    started = time.monotonic()
    for k in range(3):
        pipeline.put(Batch.of_lines([f"conn,sensor=s{k} v={k}.5"]))
    assert pipeline.close() == 3
    assert time.monotonic() - started >= 3 * DELAY
    assert stored(influx_settings, influx_database) == 3


def test_refusals_over_three_connections_are_counted_exactly(influx_settings, influx_database, flaky_proxy):
    """A batch the server refuses travels alongside others: they are stored and counted, the refused
    point is named, and written + dropped is the whole write."""
    proxy = flaky_proxy(influx_settings.host, influx_settings.port, always=("slow", 0.05))
    client = through(proxy, influx_database)
    repo = client.repository(Point)
    before = int((T0 - timedelta(days=1)).timestamp()) * 10**9
    client.write_lines([f"conn,sensor=s v=1.5 {before}"])  # v is a float field from here on
    conflict = Batch.of_lines([f'conn,sensor=s v="text" {before + 1}'])
    pipeline = WritePipeline(client, connections=3)
    pipeline.put(one_batch(repo, objects(100)))
    pipeline.put(conflict)
    pipeline.put(one_batch(repo, objects(100, 100)))
    with pytest.raises(PartialWriteError) as info:
        pipeline.close()
    error = info.value
    assert (error.written, error.dropped, error.not_sent) == (200, 1, 0)
    assert 'v="text"' in error.lines[0]
    assert stored(influx_settings, influx_database) == 201


def test_a_failed_post_stops_the_write_over_two_connections(influx_settings, influx_database, flaky_proxy):
    """The server fails from the third POST on: the write stops there; the two batches before it
    are stored, and no batch after the ones already travelling is started."""
    proxy = flaky_proxy(influx_settings.host, influx_settings.port, script=[("slow", 0.2), ("slow", 0.2)],
                        always=503)
    repo = through(proxy, influx_database).repository(Point)
    with pytest.raises(ServerError):
        repo.add_all(objects(1000), batch_size=100, connections=2)
    assert stored(influx_settings, influx_database) == 200
    assert len(proxy.seen) <= 2 + 2  # the failing POST and the one beside it


def one_batch(repo, objs):
    return next(repo._batches(objs, len(objs)))
