"""Declared objects through a real InfluxDB and back: hostile values round-trip or are refused unwritten."""

from __future__ import annotations

import enum
import itertools
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, Optional

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import field_texts, finite_floats, int64s, tag_text

import influxhtm.model.declarations as d
from influxhtm.core.errors import ValidationError
from influxhtm.io.connection import Connection
from influxhtm.model import row_mappers as rows
from influxhtm.model.line_protocol import encode, encode_point, to_line

SERVER = settings(
    max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


class Mood(enum.Enum):
    CALM = "calm"
    ODD = 'o d,d="=\\x'


@d.measurement("hostile, measure=ment")
class Hostile:
    time: datetime = d.timestamp()
    example: str = d.tag()
    idx: str = d.tag()
    label: str = d.tag(name='lab el,="')
    mood: Optional[Mood] = d.tag(default=None)
    score: float = d.field(name="anomaly Score,=")
    text: Optional[str] = d.field(default=None)
    count: Optional[int] = d.field(default=None)
    flag: Optional[bool] = d.field(default=None)


@d.measurement("power")
class PowerReading:
    time: datetime = d.timestamp()
    component: str = d.tag()
    value: float = d.field()
    note: Optional[str] = d.field(default=None)


@pytest.fixture
def db(influx_settings: Any, influx_database: str) -> Any:
    """(connection, database): one retention policy with very long shards, so that points spread over
    InfluxDB's whole time range land in a few shards instead of thousands."""
    connection = Connection(influx_settings)
    connection.query(
        f'CREATE RETENTION POLICY "wide" ON "{influx_database}" DURATION INF REPLICATION 1 '
        "SHARD DURATION 520000w DEFAULT",
        method="POST",
    )
    yield connection, influx_database
    connection.close()


def select(db: Any, text: str, **params: Any) -> dict[str, Any]:
    connection, database = db
    return connection.query(text, params=params or None, database=database)[0]


def measurements(db: Any) -> list[str]:
    series = select(db, "SHOW MEASUREMENTS").get("series") or []
    return [row[0] for s in series for row in s["values"]]


field_text = field_texts()
floats = finite_floats
ints = int64s
times = st.datetimes(
    min_value=d.MIN_TIME.replace(tzinfo=None),
    max_value=d.MAX_TIME.replace(tzinfo=None),
    timezones=st.just(UTC),
)
hostile_values = st.fixed_dictionaries(
    {
        "time": times,
        "label": tag_text,
        "mood": st.none() | st.sampled_from(Mood),
        "score": floats,
        "text": st.none() | field_text,
        "count": st.none() | ints,
        "flag": st.none() | st.booleans(),
    }
)
_examples = itertools.count()


@SERVER
@given(st.lists(hostile_values, min_size=1, max_size=8))
def test_hostile_objects_round_trip_through_the_server(db, values):
    example = f"{uuid.uuid4().hex[:8]}-{next(_examples)}"
    objs = [Hostile(example=example, idx=str(i), **v) for i, v in enumerate(values)]
    connection, database = db
    connection.write(encode(objs, as_bytes=True), database=database)
    result = select(db, 'SELECT * FROM "hostile, measure=ment" WHERE "example" = $example', example=example)
    back = sorted(rows.from_result(Hostile, result), key=lambda o: int(o.idx))
    assert back == objs
    assert all(type(o.score) is float and o.time.tzinfo is UTC for o in back)


def test_time_range_ends_and_microseconds_round_trip(db):
    objs = [
        PowerReading(time=t, component="edge", value=float(i))
        for i, t in enumerate(
            [
                d.MIN_TIME,
                d.MAX_TIME,
                datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
                datetime(1970, 1, 1, 0, 0, 0, 1, tzinfo=UTC),
                datetime(2000, 2, 29, 12, 30, 15, 500001, tzinfo=UTC),
            ]
        )
    ]
    connection, database = db
    connection.write(encode(objs), database=database)
    back = rows.from_result(PowerReading, select(db, "SELECT * FROM power"))
    assert sorted(back, key=lambda o: o.time) == sorted(objs, key=lambda o: o.time)
    assert d.MIN_TIME == datetime(1677, 9, 21, 0, 12, 43, 145225, tzinfo=UTC)
    assert d.MAX_TIME == datetime(2262, 4, 11, 23, 47, 16, 854775, tzinfo=UTC)


def test_thousands_of_readings_round_trip_in_any_column_order(db):
    start = datetime(2024, 3, 1, tzinfo=UTC)
    objs = [
        PowerReading(
            time=start + timedelta(seconds=i, microseconds=i),
            component=f"machine {i % 3}",
            value=i / 7,
            note="even" if i % 2 == 0 else None,
        )
        for i in range(5000)
    ]
    connection, database = db
    connection.write(encode(objs, as_bytes=True), database=database)
    assert rows.from_result(PowerReading, select(db, "SELECT * FROM power")) == sorted(
        objs, key=lambda o: o.time
    )
    # Columns in another order, tags from GROUP BY, a missing optional field: still equal objects.
    grouped = select(db, "SELECT value, note FROM power GROUP BY component")
    assert "component" in grouped["series"][0]["tags"]
    back = rows.from_result(PowerReading, grouped)
    assert sorted(back, key=lambda o: o.time) == sorted(objs, key=lambda o: o.time)
    without_note = rows.from_result(PowerReading, select(db, "SELECT component, value FROM power"))
    assert [o.note for o in without_note] == [None] * 5000
    assert [o.value for o in without_note] == [o.value for o in sorted(objs, key=lambda o: o.time)]


def _bad_values() -> list[tuple[str, Any, str, str]]:
    """(what, a function that builds a batch whose last line is bad, field, message fragment)."""
    t = datetime(2024, 1, 1, tzinfo=UTC)

    def readings(**bad: Any) -> Any:
        return lambda: [
            PowerReading(time=t, component="ok", value=1.0),
            PowerReading(**{"time": t, "component": "c", "value": 1.0, **bad}),
        ]

    def rows_(measurement: str = "power", tags: Any = None, fields: Any = None, ns: int = 0) -> Any:
        return lambda: [
            encode_point("power", {"component": "ok"}, {"value": 1.0}, 0),
            encode_point(measurement, tags or {}, fields or {"value": 1.0}, ns),
        ]

    return [
        ("empty tag value", readings(component=""), "component", "'' is empty"),
        (
            "tag value ending in backslash",
            readings(component="a\\"),
            "component",
            "'a\\\\' ends in a backslash",
        ),
        ("newline in tag value", readings(component="a\nb"), "component", "'a\\nb' contains a newline"),
        ("NaN", readings(value=float("nan")), "value", "nan is not a finite number"),
        ("infinity", readings(value=float("-inf")), "value", "-inf is not a finite number"),
        (
            "time before 1677",
            readings(time=datetime(1677, 9, 21, tzinfo=UTC)),
            "time",
            "outside InfluxDB's time",
        ),
        (
            "time after 2262",
            readings(time=datetime(2262, 4, 12, tzinfo=UTC)),
            "time",
            "outside InfluxDB's time",
        ),
        ("ns out of range", readings(time=-(2**63)), "time", "outside InfluxDB's time range"),
        ("empty tag key", rows_(tags={"": "x"}), "tag key", "'' is empty"),
        ("tag key ending in backslash", rows_(tags={"k\\": "x"}), "tag key", "ends in a backslash"),
        ("newline in tag key", rows_(tags={"a\nb": "x"}), "tag key", "contains a newline"),
        ("newline in field key", rows_(fields={"a\nb": 1.0}), "field key", "contains a newline"),
        ("newline in measurement", rows_(measurement="po\nwer"), "measurement", "contains a newline"),
        ("tag named time", rows_(tags={"time": "x"}), "tag key", "'time' is reserved"),
        ("field named time", rows_(fields={"time": 1.0}), "field key", "'time' is reserved"),
        ("int above int64", rows_(fields={"n": 2**63}), "n", "9223372036854775808 is outside the 64-bit"),
        ("int below int64", rows_(fields={"n": -(2**63) - 1}), "n", "is outside the 64-bit"),
        ("all fields None", rows_(fields={"a": None, "b": None}), "fields", "at least one field"),
        ("time out of range", rows_(ns=2**63 - 1), "time", "outside InfluxDB's time range"),
    ]


@pytest.mark.parametrize("what, build, field, fragment", _bad_values(), ids=[b[0] for b in _bad_values()])
def test_rejections_name_field_and_value_and_write_nothing(db, what, build, field, fragment):
    connection, database = db

    def write_batch() -> None:
        batch = build()
        lines = [line if isinstance(line, str) else to_line(line) for line in batch]
        connection.write("\n".join(lines), database=database)

    with pytest.raises(ValidationError) as caught:
        write_batch()
    assert field in caught.value.errors
    assert f"{field}: " in str(caught.value) and fragment in str(caught.value)
    assert measurements(db) == []


def test_declaration_time_rejections_write_nothing(db):
    with pytest.raises(ValidationError, match="'time' is reserved"):

        @d.measurement("power")
        class TimeTag:
            time: datetime = d.timestamp()
            when: str = d.tag(name="time")
            value: float = d.field()

    with pytest.raises(ValidationError, match="all fields of Sparse are None"):

        @d.measurement("sparse")
        class Sparse:
            time: datetime = d.timestamp()
            a: Optional[float] = d.field(default=None)

        encode([Sparse(time=0, a=1.0), Sparse(time=0)])
    assert measurements(db) == []


def test_row_mapper_converts_json_style_values_and_refuses_missing_columns():
    mapper = rows.row_mapper(PowerReading, ["value", "time", "component"])
    obj = mapper([3, -1000, "c"])  # a JSON answer gives 3 for the float 3.0
    assert obj == PowerReading(
        time=datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), component="c", value=3
    )
    assert type(obj.value) is float and obj.note is None
    assert (
        rows.row_mapper(PowerReading, ["time", "value"], tags={"component": "x"})([0, 1.5]).component == "x"
    )
    with pytest.raises(ValidationError, match="lacks column.*'component'"):
        rows.row_mapper(PowerReading, ["time", "value"])
    with pytest.raises(ValidationError, match="cannot be read as PowerReading"):
        rows.from_result(PowerReading, {"series": [{"name": "cpu", "columns": ["time"], "values": [[0]]}]})
    assert rows.from_result(PowerReading, {"statement_id": 0}) == []
