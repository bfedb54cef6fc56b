"""What a write says it stored is what the server holds (issue 12, items 1, 3 and 6).

- A string field may hold raw newlines: a body is re-split (after a 413 from
  `max-body-size`), halved (after a partial write) and counted only at the point
  boundaries the encoder knows, so a note holding a line of line protocol is stored
  verbatim and injects nothing.
- One refused point does not stop the rest of a write: every batch is sent, and the
  `PartialWriteError` carries exact `written`, `dropped` and `not_sent` counts.
- A class's declared retention policy is where its points are written, where its
  queries read them, and where a continuous query built from it writes.

Every scenario reads back everything the database holds (every measurement), so an
injected point shows up as "duplicated" in the reliability report.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Optional

import pytest

import influxhtm as ih
from influxhtm.core.errors import PartialWriteError, ValidationError
from influxhtm.io.settings import Settings
from influxhtm.model.line_protocol import Batch, scan_points, to_line
from influxhtm.tools.server import LocalInfluxd

MAX_BODY = 4096
#: A note whose text holds a whole line of line protocol between two newlines.
INJECTION = "\nevil,component=pwned value=666 1\n"
#: A Thursday 00:00 UTC: InfluxDB's weekly shard groups start here (multiples of 7 days since 1970).
T0 = datetime(2024, 1, 4, tzinfo=UTC)
DAY = timedelta(days=1)
NS = 10**9


@ih.measurement("notes")
class Note:
    time: datetime = ih.timestamp()
    component: str = ih.tag()
    text: str = ih.field()
    extra: Optional[float] = ih.field(default=None)


@ih.measurement("power3w")
class Reading:
    time: datetime = ih.timestamp()
    component: str = ih.tag()
    value: float = ih.field()
    note: Optional[str] = ih.field(default=None)


@ih.measurement("rp_power", retention_policy="short")
class ShortReading:
    time: datetime = ih.timestamp()
    component: str = ih.tag()
    value: float = ih.field()


@pytest.fixture(scope="module")
def small_body_server():
    with LocalInfluxd(config={"http": {"max-body-size": MAX_BODY}}) as server:
        yield server


def fresh_client(settings: Settings, database: str) -> ih.InfluxHtmClient:
    client = ih.InfluxHtmClient.from_settings(database, settings)
    client.create_database()
    return client


@pytest.fixture
def small_client(small_body_server):
    settings = Settings(host=small_body_server.host, port=small_body_server.port, retries=2)
    client = fresh_client(settings, "integrity")
    yield client
    client.drop_database()
    client.close()


@pytest.fixture
def client(influx_settings, influx_database):
    client = fresh_client(influx_settings, influx_database)
    yield client
    client.close()


def everything(client, policy: str | None = None) -> list[tuple[tuple, dict]]:
    """((measurement, tags, time ns), fields) of every point of every measurement of the database."""
    source = f'"{policy}"./.*/' if policy else "/.*/"
    rows = []
    for result in client.connection.query(f"SELECT * FROM {source} GROUP BY *", database=client.database):
        for series in result.get("series", []):
            tags = tuple(sorted((k, v) for k, v in (series.get("tags") or {}).items() if v))
            columns = series["columns"]
            for values in series["values"]:
                fields = {c: v for c, v in zip(columns[1:], values[1:]) if v is not None}
                rows.append(((series["name"], tags, values[0]), fields))
    return rows


def expected_of(objs, measurement: str, fields: tuple[str, ...]) -> dict[tuple, dict]:
    out = {}
    for obj in objs:
        key = (measurement, (("component", obj.component),), int(obj.time.timestamp()) * NS)
        out[key] = {f: getattr(obj, f) for f in fields if getattr(obj, f) is not None}
    return out


# -- item 1: a string field cannot inject points ------------------------------------------
def test_string_fields_with_newlines_survive_a_413_resplit(small_client, report_read_back):
    notes = [
        Note(time=T0 + timedelta(seconds=i), component="a", text=f"note {i}{INJECTION}end {i}")
        for i in range(200)
    ]
    huge = Note(time=T0 + timedelta(hours=1), component="huge", text="x" * (2 * MAX_BODY) + INJECTION)
    batch = [*notes[:100], huge, *notes[100:]]
    assert len(Batch.of_lines([to_line(n) for n in batch]).data) > 5 * MAX_BODY  # several 413s
    with pytest.raises(PartialWriteError) as info:
        small_client.repository(Note).add_all(batch)
    error = info.value
    assert "evil" not in small_client.measurements()
    assert small_client.repository(Note).query().all() == notes  # verbatim, newlines and all
    read_back, lost, duplicated = report_read_back(
        scenario="string fields with newlines, 413 re-split",
        faults=f"max-body-size = {MAX_BODY} B, line protocol inside 200 notes, 1 note over the limit",
        expected=expected_of(notes, "notes", ("text",)),
        stored=everything(small_client),
        written=len(batch),
        refused=error.dropped,
    )
    assert (read_back, lost, duplicated) == (200, 0, 0)
    assert (error.written, error.dropped, error.not_sent) == (200, 1, 0)
    assert error.status == 413 and error.reason == "point larger than max-body-size"
    assert "notes,component=huge" in str(error) and "refused 1 of 201" in str(error)
    assert error.lines == [to_line(huge)[:200] + f"... ({len(to_line(huge))} characters)"]
    assert small_client.connection.body_limit is not None and small_client.connection.body_limit <= MAX_BODY


def test_string_fields_with_newlines_survive_partial_write_halving(client, report_read_back):
    # `extra` is an integer in this shard already, so the one note with a float `extra` is refused
    client.write_lines([f"notes,component=old extra=1i {int(T0.timestamp()) * NS}"])
    notes = [
        Note(time=T0 + timedelta(seconds=i), component="a", text=f"{i}{INJECTION}", extra=extra)
        for i in range(1, 41)
        for extra in [2.5 if i == 17 else None]
    ]
    with pytest.raises(PartialWriteError) as info:
        client.repository(Note).add_all(notes)
    error = info.value
    assert "evil" not in client.measurements()
    kept = [n for n in notes if n.extra is None]
    expected = expected_of(kept, "notes", ("text",))
    expected[("notes", (("component", "old"),), int(T0.timestamp()) * NS)] = {"extra": 1}
    read_back, lost, duplicated = report_read_back(
        scenario="string fields with newlines, partial write halved",
        faults="line protocol inside 40 notes, 1 field type conflict (real server)",
        expected=expected,
        stored=everything(client),
        written=len(notes) + 1,
        refused=error.dropped,
    )
    assert (read_back, lost, duplicated) == (40, 0, 0)
    assert (error.written, error.dropped, error.not_sent) == (39, 1, 0)
    assert error.reason == "field type conflict" and error.lines == [to_line(notes[16])]
    assert "refused 1 of 40" in str(error) and "the other 39 are stored" in str(error)


def test_raw_text_is_cut_where_influxdb_cuts_it():
    body = (
        b'notes,component=a text="a\nevil v=1 1\n" 1\n'
        b'm,t=x\\ y v=1,s="q\\"\n,x=1" 2\n'  # an escaped quote inside a string, a comma after it
        b"# a comment\n\n"
        b'm,t=a"b v=1 3\n'  # a quote in a tag is no string
        b"m v=2 4"
    )
    assert scan_points(body) == [
        b'notes,component=a text="a\nevil v=1 1\n" 1',
        b'm,t=x\\ y v=1,s="q\\"\n,x=1" 2',
        b'm,t=a"b v=1 3',
        b"m v=2 4",
    ]
    assert len(Batch.of_text(body)) == 4
    assert len(Batch.of_text(b"m v=1 1\nm v=2 2\n\n")) == 2


def test_raw_text_with_newlines_in_strings_is_stored_verbatim_after_a_413(small_body_server, compare):
    settings = Settings(host=small_body_server.host, port=small_body_server.port)
    client = fresh_client(settings, "integrity_raw")
    try:
        lines = [f'raw,component=a text="{i}{INJECTION}" {i}' for i in range(1, 201)]
        client.connection.write("\n".join(lines), database=client.database)  # raw text, no boundaries
        assert client.connection.body_limit is not None
        expected = {("raw", (("component", "a"),), i): {"text": f"{i}{INJECTION}"} for i in range(1, 201)}
        assert compare(expected, everything(client)) == (200, 0, 0)
    finally:
        client.drop_database()
        client.close()


# -- item 6: one refused point does not stop the rest of a write ---------------------------
def three_weeks(step: timedelta) -> list[Reading]:
    count = int(21 * DAY / step)
    return [Reading(time=T0 + i * step, component="a", value=float(i % 97)) for i in range(count)]


def test_a_refused_point_in_week_two_does_not_stop_week_three(client, report_read_back):
    week_two = T0 + 8 * DAY
    client.write_lines([f"power3w,component=old note=1i {int(week_two.timestamp()) * NS}"])  # note: integer
    readings = three_weeks(timedelta(minutes=1))
    bad = readings[10 * 1440]
    readings[10 * 1440] = Reading(time=bad.time, component="a", value=bad.value, note="a text")
    with pytest.raises(PartialWriteError) as info:
        client.repository(Reading).add_all(readings, batch_size=1440)  # a batch a day
    error = info.value
    total = len(readings)
    kept = [r for r in readings if r.note is None]
    expected = expected_of(kept, "power3w", ("value",))
    expected[("power3w", (("component", "old"),), int(week_two.timestamp()) * NS)] = {"note": 1}
    read_back, lost, duplicated = report_read_back(
        scenario="3-week write, one refused point in week 2",
        faults="field type conflict in batch 11 of 21 (real server)",
        expected=expected,
        stored=everything(client),
        written=total + 1,
        refused=error.dropped,
    )
    assert (read_back, lost, duplicated) == (total, 0, 0)
    assert (error.written, error.dropped, error.not_sent) == (total - 1, 1, 0)
    assert error.lines == [to_line(readings[10 * 1440])]
    assert f"refused 1 of {total}" in str(error) and f"the other {total - 1} are stored" in str(error)


def test_a_type_conflict_inside_one_batch_is_a_partial_write(client, report_read_back):
    # InfluxDB answers `400 field type conflict` (no "partial write") and stores none of the batch
    hours = int(21 * DAY / timedelta(hours=1))
    conflict = 10 * 24 + 5  # week 2
    lines = [f"power1b,component=a value={float(i)} {i * 3600 * NS}" for i in range(hours)]
    lines[conflict] = f"power1b,component=a value={conflict}i {conflict * 3600 * NS}"  # an integer
    with pytest.raises(PartialWriteError) as info:
        client.write_lines(lines)
    error = info.value
    assert (error.written, error.dropped, error.not_sent) == (hours - 1, 1, 0)
    assert error.reason == "field type conflict" and error.lines == [lines[conflict]]
    series = ("power1b", (("component", "a"),))
    expected = {(*series, i * 3600 * NS): {"value": float(i)} for i in range(hours) if i != conflict}
    read_back, lost, duplicated = report_read_back(
        scenario="type conflict inside one batch",
        faults="400 field type conflict without 'partial write' (real server)",
        expected=expected,
        stored=everything(client),
        written=hours,
        refused=error.dropped,
    )
    assert (read_back, lost, duplicated) == (hours - 1, 0, 0)


def test_a_write_stopped_by_bad_input_counts_what_it_did_not_send(client, compare):
    week_two = T0 + 8 * DAY
    client.write_lines([f"power3w,component=old note=1i {int(week_two.timestamp()) * NS}"])

    def points():
        for i in range(250):
            note = "refused" if i == 42 else None
            value = "not a number" if i == 230 else float(i)  # in the third batch
            yield {"time": week_two + timedelta(minutes=i), "component": "a", "value": value, "note": note}

    with pytest.raises(PartialWriteError) as info:
        client.repository(Reading).add_all(points(), batch_size=100)
    error = info.value
    assert (error.written, error.dropped, error.not_sent) == (199, 1, 50)
    assert isinstance(error.__cause__, ValidationError) and 230 in error.__cause__.errors
    assert "199 stored, 50 not sent because the write stopped: ValidationError" in str(error)
    expected = {
        ("power3w", (("component", "a"),), int((week_two + timedelta(minutes=i)).timestamp()) * NS): {
            "value": float(i)
        }
        for i in range(200)
        if i != 42
    }
    expected[("power3w", (("component", "old"),), int(week_two.timestamp()) * NS)] = {"note": 1}
    assert compare(expected, everything(client)) == (200, 0, 0)
    # with nothing refused before it, the caller's error is raised as it is
    with pytest.raises(ValidationError):
        client.repository(Reading).add_all(
            ({"time": T0, "component": "b", "value": v} for v in (1.0, "x")), batch_size=1
        )


# -- item 3: the declared retention policy -------------------------------------------------
def test_declared_retention_policy_is_written_read_and_used_by_continuous_queries(client, report_read_back):
    client.create_retention_policy("short", duration="1000w")  # not the default policy
    repo = client.repository(ShortReading)
    readings = [
        ShortReading(time=T0 + i * timedelta(minutes=10), component="a", value=float(i)) for i in range(144)
    ]
    assert repo.add_all(readings) == 144
    assert repo.query().all() == readings
    assert everything(client, "autogen") == []
    expected = expected_of(readings, "rp_power", ("value",))
    read_back, lost, duplicated = report_read_back(
        scenario="declared retention policy",
        faults='class declares retention_policy="short" (not the default)',
        expected=expected,
        stored=everything(client, "short"),
        written=len(readings),
    )
    assert (read_back, lost, duplicated) == (144, 0, 0)

    hourly = ih.Query().from_(ShortReading).select(ih.mean("value")).into("rp_power_1h").group_by_time("1h")
    assert str(hourly).startswith("SELECT mean(value) INTO short.rp_power_1h FROM short.rp_power")
    told = hourly.into("rp_power_1h", retention_policy="autogen")
    assert " INTO autogen.rp_power_1h " in str(told)
    client.create_continuous_query("hourly", hourly)
    (cq,) = client.continuous_queries()
    assert ".short.rp_power_1h" in cq["query"]
    # run the continuous query's statement over the data now (the server would run it each hour)
    text, params = hourly.since(T0).until(T0 + DAY - timedelta(minutes=1)).render()
    client.connection.query(text, params=params, database=client.database, method="POST")
    means = [row for row in everything(client, "short") if row[0][0] == "rp_power_1h"]
    assert [fields["mean"] for _, fields in means] == [6 * h + 2.5 for h in range(24)]
    assert everything(client, "autogen") == []
