"""Partial writes produced by a real influxd configured to produce them.

- a field written first as integer, then as float: `partial write: field type conflict ... dropped=N`
- `max-values-per-tag = 5`: `partial write: max-values-per-tag limit exceeded ... dropped=N`
- `max-body-size = 4096`: 413 for a larger body, which influxhtm splits and retries

influxhtm must raise `PartialWriteError` saying how many points were dropped and why,
store every point the server accepted, and split an oversize batch rather than fail.
"""

from __future__ import annotations

import uuid

import pytest

from influxhtm.core.errors import InfluxHtmError, PartialWriteError
from influxhtm.io.connection import Connection
from influxhtm.io.settings import Settings
from influxhtm.model.line_protocol import Batch
from influxhtm.tools.server import LocalInfluxd

MAX_BODY = 4096
MAX_VALUES_PER_TAG = 5


@pytest.fixture(scope="module")
def limited_server():
    config = {"http": {"max-body-size": MAX_BODY}, "data": {"max-values-per-tag": MAX_VALUES_PER_TAG}}
    with LocalInfluxd(config=config) as server:
        yield server


@pytest.fixture
def connection(limited_server):
    with Connection(Settings(host=limited_server.host, port=limited_server.port, retries=2)) as connection:
        yield connection


@pytest.fixture
def database(connection):
    name = f"pw_{uuid.uuid4().hex[:10]}"
    connection.query(f'CREATE DATABASE "{name}"', method="POST")
    yield name
    connection.query(f'DROP DATABASE "{name}"', method="POST")


def stored(connection, database, text):
    found = {}
    for result in connection.query(text, database=database):
        for series in result.get("series", []):
            tags = tuple(sorted(series.get("tags", {}).items()))
            for row in series["values"]:
                found[(tags, row[0])] = row[1]
    return found


def test_field_type_conflict_is_reported_with_count_and_reason(connection, database, report_read_back):
    connection.write("power,component=a value=1i 1000", database=database)  # `value` is now an integer
    tags = (("component", "a"),)
    lines, expected = [], {(tags, 1000): 1}
    conflicting = 0
    for i in range(2, 12):
        if i % 3 == 0:
            lines.append(f"power,component=a value={i}.5 {i * 1000}")  # float: conflicts
            conflicting += 1
        else:
            lines.append(f"power,component=a value={i}i {i * 1000}")
            expected[(tags, i * 1000)] = i
    with pytest.raises(PartialWriteError) as info:
        connection.write("\n".join(lines), database=database)
    error = info.value
    assert conflicting == 3
    assert error.dropped == conflicting
    assert sorted(error.lines) == sorted(line for line in lines if ".5 " in line)
    assert error.reason == "field type conflict"
    assert "field type conflict" in str(error) and f"refused {conflicting} of {len(lines)}" in str(error)
    assert connection.settings.url in str(error) and error.url == connection.settings.url
    assert isinstance(error, InfluxHtmError) and error.status == 400
    rows = stored(connection, database, "SELECT value FROM power GROUP BY component")
    read_back, lost, duplicated = report_read_back(
        scenario="partial write: field type conflict",
        faults="float written to an integer field (real server)",
        expected=expected,
        stored=rows.items(),
        written=len(lines) + 1,
        refused=error.dropped,
    )
    assert (read_back, lost, duplicated) == (len(expected), 0, 0)


def test_max_values_per_tag_is_reported_with_count_and_reason(connection, database, report_read_back):
    first = [f"tagged,host=h{i} v={i}.0 {i}" for i in range(MAX_VALUES_PER_TAG)]
    connection.write("\n".join(first), database=database)
    expected = {((("host", f"h{i}"),), i): float(i) for i in range(MAX_VALUES_PER_TAG)}
    # two points for known tag values (accepted), three for new values (over the limit: dropped).
    # The refused points come last on purpose: InfluxDB 1.6 then also loses an accepted point
    # of the batch (it stores 1 of the 2 while saying dropped=3), which influxhtm must recover.
    second = [f"tagged,host=h{i} v={i}.5 {100 + i}" for i in (0, 1)]
    second += [f"tagged,host=new{i} v={i}.5 {100 + i}" for i in range(3)]
    expected.update({((("host", f"h{i}"),), 100 + i): i + 0.5 for i in (0, 1)})
    with pytest.raises(PartialWriteError) as info:
        connection.write("\n".join(second), database=database)
    error = info.value
    assert error.dropped == 3
    assert sorted(error.lines) == sorted(second[2:])
    assert error.reason == "max-values-per-tag limit exceeded"
    assert "max-values-per-tag" in str(error) and "refused 3 of 5" in str(error)
    rows = stored(connection, database, "SELECT v FROM tagged GROUP BY host")
    read_back, lost, duplicated = report_read_back(
        scenario="partial write: max-values-per-tag",
        faults=f"max-values-per-tag = {MAX_VALUES_PER_TAG} (real server)",
        expected=expected,
        stored=rows.items(),
        written=len(first) + len(second),
        refused=error.dropped,
    )
    assert (read_back, lost, duplicated) == (len(expected), 0, 0)


@pytest.mark.parametrize("gzip", [False, True], ids=["plain", "gzip"])
def test_oversize_batch_is_split_and_everything_lands(limited_server, database, gzip, report_read_back):
    settings = Settings(host=limited_server.host, port=limited_server.port, gzip=gzip)
    with Connection(settings) as connection:
        n = 5_000
        body = "\n".join(f"big,sensor=s{i % 3} value={i}.125 {1_000_000 + i}" for i in range(n))
        assert len(body) > 20 * MAX_BODY
        connection.write(body, database=database)
        # the size that passes is learnt, so the next big write goes out in pieces straight away
        # (with gzip the server limits the compressed body, so more uncompressed bytes pass)
        assert connection.body_limit is not None and connection.body_limit < len(body)
        if not gzip:
            assert connection.body_limit <= MAX_BODY
        expected = {((("sensor", f"s{i % 3}"),), 1_000_000 + i): i + 0.125 for i in range(n)}
        rows = stored(connection, database, "SELECT value FROM big GROUP BY sensor")
    read_back, lost, duplicated = report_read_back(
        scenario=f"oversize batch ({'gzip' if gzip else 'plain'})",
        faults=f"max-body-size = {MAX_BODY} B, body {len(body)} B -> 413 (real server)",
        expected=expected,
        stored=rows.items(),
        written=n,
    )
    assert (read_back, lost, duplicated) == (n, 0, 0)


def test_split_batch_reports_all_refusals_of_all_pieces(connection, database, compare):
    connection.write("mixed value=1i 1", database=database)
    lines, expected = [], {((), 1): 1}
    for i in range(2, 1002):
        if i % 100 == 0:  # ten conflicting points spread over many pieces
            lines.append(f"mixed value={i}.5 {i}")
        else:
            lines.append(f"mixed value={i}i {i}")
            expected[((), i)] = i
    with pytest.raises(PartialWriteError) as info:
        connection.write("\n".join(lines), database=database)
    assert info.value.dropped == 10
    assert info.value.reason == "field type conflict"
    rows = stored(connection, database, "SELECT value FROM mixed")
    assert compare(expected, rows.items()) == (len(expected), 0, 0)


def test_single_point_over_max_body_size_is_refused_and_the_rest_lands(connection, database):
    huge = "blob text=\"" + "x" * (2 * MAX_BODY) + "\" 5"
    body = "\n".join(["blob n=1i 1", huge, "blob n=2i 2"])
    with pytest.raises(PartialWriteError) as info:
        connection.write(body, database=database)
    assert info.value.dropped == 1 and info.value.status == 413
    assert "max-body-size" in info.value.reason
    rows = stored(connection, database, "SELECT n FROM blob")
    assert sorted((t, v) for (_, t), v in rows.items()) == [(1, 1), (2, 2)]


def test_unparsable_line_is_counted_as_dropped(connection, database):
    with pytest.raises(PartialWriteError) as info:
        connection.write("parse v=1 1\nthis is not line protocol\nparse v=2 2", database=database)
    assert info.value.dropped == 1 and "unable to parse" in info.value.reason
    rows = stored(connection, database, "SELECT v FROM parse")
    assert sorted(v for v in rows.values()) == [1, 2]


def test_batch_split_keeps_every_point_and_respects_the_limit():
    lines = [f"m v={i} {i}".encode() * (1 + i % 7) for i in range(300)]
    body = b"\n".join(lines) + b"\n"
    pieces = Batch.of_text(body).split(200)
    assert [line for piece in pieces for line in piece.lines()] == lines
    assert all(len(piece.data) <= 200 or len(piece) == 1 for piece in pieces)
    assert sum(map(len, pieces)) == 300
