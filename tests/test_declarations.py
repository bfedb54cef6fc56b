"""Declared measurements: introspection, validation at construction, marshmallow load/dump."""

from __future__ import annotations

import enum
import math
import time as time_module
from datetime import UTC, datetime, timedelta, timezone
from typing import ClassVar, Optional

import attrs
import marshmallow
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import influxhtm.model.declarations as d
from influxhtm.core.errors import ValidationError
from influxhtm.core.times import set_naive_times

T0 = datetime(2024, 1, 31, 12, 0, 0, 123456, tzinfo=UTC)


class Mode(enum.Enum):
    AUTO = "auto"
    MANUAL = "manual mode"


@d.measurement("power")
class PowerReading:
    time: datetime = d.timestamp()
    component: str = d.tag()
    value: float = d.field()
    note: Optional[str] = d.field(default=None)


@d.measurement("power_model", retention_policy="results")
class Result:
    time: datetime = d.timestamp()
    component: str = d.tag()
    model_id: str = d.tag(name="id")
    mode: Mode = d.tag(default=Mode.AUTO)
    anomaly_score: float = d.field(name="anomalyScore", validator=attrs.validators.le(1.0))
    count: int | None = d.field(default=None)
    flag: Optional[bool] = d.field(default=None)
    unit: ClassVar[str] = "kW"


@d.measurement("strict", naive_times="error")
class Strict:
    time: datetime = d.timestamp()
    v: float = d.field()


@d.measurement("sparse")
class Sparse:
    time: datetime = d.timestamp(factory=lambda: datetime.now(UTC))
    a: Optional[float] = d.field(default=None)
    b: Optional[str] = d.field(default=None)


# -- introspection ---------------------------------------------------------------------------------


def test_declaration_describes_the_class():
    decl = d.declaration(Result)
    assert decl.cls is Result and d.declaration(Result(**result_args())) is decl
    assert decl.measurement == "power_model" and decl.retention_policy == "results"
    assert decl.time == d.Column("time", "time", "time", datetime, False)
    assert [(c.attr, c.key, c.type, c.optional) for c in decl.tags] == [
        ("component", "component", str, False),
        ("model_id", "id", str, False),
        ("mode", "mode", Mode, False),
    ]
    assert [(c.attr, c.key, c.type, c.optional) for c in decl.fields] == [
        ("anomaly_score", "anomalyScore", float, False),
        ("count", "count", int, True),
        ("flag", "flag", bool, True),
    ]
    assert decl.column("anomalyScore") is decl.column("anomaly_score")
    assert decl.column("id").kind == "tag" and decl.column("time").kind == "time"
    assert Result.unit == "kW"  # ClassVar stays a class attribute
    with pytest.raises(ValidationError, match="'nope' is not a column of Result"):
        decl.column("nope")


def test_declared_class_is_frozen_slotted_attrs():
    reading = PowerReading(time=T0, component="c", value=1.5)
    assert attrs.has(PowerReading) and "__slots__" in PowerReading.__dict__
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        reading.value = 2.0  # type: ignore[misc]
    assert reading == PowerReading(time=T0, component="c", value=1.5)
    assert hash(reading) == hash(PowerReading(time=T0, component="c", value=1.5))
    assert attrs.evolve(reading, value=3).value == 3.0


def test_undeclared_class_is_refused():
    class Plain:
        pass

    with pytest.raises(ValidationError, match="Plain is not a declared measurement"):
        d.declaration(Plain)
    assert not d.is_declared(Plain) and d.is_declared(PowerReading)


def test_string_annotations_resolve_with_local_types():
    class Local(enum.Enum):
        X = "x"

    @d.measurement("m")
    class WithStrings:
        time: "datetime" = d.timestamp()
        kind: "Local" = d.tag()
        v: "Optional[int]" = d.field(default=None)

    decl = d.declaration(WithStrings)
    assert decl.column("kind").type is Local and decl.column("v").type is int and decl.column("v").optional


@pytest.mark.parametrize(
    "body, fragment",
    [
        ({"v": (float, d.field())}, "exactly one timestamp"),
        (
            {"t": (datetime, d.timestamp()), "u": (datetime, d.timestamp()), "v": (float, d.field())},
            "exactly one",
        ),
        ({"t": (datetime, d.timestamp()), "g": (str, d.tag())}, "at least one field"),
        ({"t": (datetime, d.timestamp()), "time": (float, d.field())}, "reserved"),
        (
            {"t": (datetime, d.timestamp()), "g": (str, d.tag(name="time")), "v": (float, d.field())},
            "reserved",
        ),
        ({"t": (datetime, d.timestamp()), "g": (str, d.tag(name="")), "v": (float, d.field())}, "is empty"),
        (
            {"t": (datetime, d.timestamp()), "g": (str, d.tag(name="a\\")), "v": (float, d.field())},
            "backslash",
        ),
        (
            {"t": (datetime, d.timestamp()), "g": (str, d.tag(name="a\nb")), "v": (float, d.field())},
            "newline",
        ),
        ({"t": (datetime, d.timestamp()), "v": (float, d.field(name="a\\=b"))}, "backslash before"),
        ({"t": (datetime, d.timestamp()), "v": (float, d.field(name="a\nb"))}, "newline"),
        (
            {"t": (datetime, d.timestamp()), "g": (int, d.tag()), "v": (float, d.field())},
            "a tag is annotated",
        ),
        ({"t": (datetime, d.timestamp()), "v": (list, d.field())}, "a field is annotated"),
        ({"t": (float, d.timestamp()), "v": (float, d.field())}, "annotated `datetime`"),
        ({"t": (datetime, d.timestamp()), "v": (float, 1.0)}, "needs a specifier"),
        (
            {"t": (datetime, d.timestamp()), "v": (float, d.field()), "w": (float, d.field(name="v"))},
            "used twice",
        ),
        ({"t": (datetime, d.timestamp()), "dump": (float, d.field())}, "taken by the dump() method"),
    ],
)
def test_bad_declarations_are_refused(body, fragment):
    namespace = {name: spec for name, (_, spec) in body.items()}
    namespace["__annotations__"] = {name: hint for name, (hint, _) in body.items()}
    with pytest.raises(ValidationError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        d.measurement("m")(type("Bad", (), namespace))


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"name": ""}, "is empty"),
        ({"name": "a\nb"}, "newline"),
        ({"name": "#m"}, "comment"),
        ({"name": "m\\"}, "backslash"),
        ({"name": "m", "naive_times": "maybe"}, "'maybe' is not one of"),
        ({"name": "m", "retention_policy": ""}, "retention policy"),
    ],
)
def test_bad_measurement_arguments_are_refused(kwargs, fragment):
    with pytest.raises(ValidationError, match=fragment):
        d.measurement(**kwargs)


def test_enum_values_must_be_text():
    class Numbers(enum.Enum):
        ONE = 1

    with pytest.raises(ValidationError, match="must be text"):

        @d.measurement("m")
        class Bad:
            time: datetime = d.timestamp()
            n: Numbers = d.tag()
            v: float = d.field()


# -- construction validates ------------------------------------------------------------------------


def result_args(**changes):
    args = {"time": T0, "component": "coffee-machine", "model_id": "exp-1", "anomaly_score": 0.5}
    args.update(changes)
    return args


def test_construction_converts_values():
    r = Result(**result_args(anomaly_score=1, count=7, mode="manual mode"))
    assert r.anomaly_score == 1.0 and type(r.anomaly_score) is float
    assert r.mode is Mode.MANUAL and r.count == 7
    assert Result(**result_args(time="2024-01-31T13:00:00.123456+01:00")).time == T0
    assert Result(**result_args(time=1706702400123456000)).time == T0
    assert Result(**result_args(time=T0.astimezone(timezone(timedelta(hours=-5))))).time.tzinfo is UTC


@pytest.mark.parametrize(
    "changes, field, fragment",
    [
        ({"anomaly_score": float("nan")}, "anomaly_score", "nan is not a finite number"),
        ({"anomaly_score": float("inf")}, "anomaly_score", "inf is not a finite number"),
        ({"anomaly_score": "0.5"}, "anomaly_score", "'0.5' is not a float"),
        ({"anomaly_score": True}, "anomaly_score", "True is not a float"),
        ({"anomaly_score": 10**400}, "anomaly_score", "too large for a float"),
        ({"anomaly_score": 2.0}, "anomaly_score", "2.0 is refused"),  # the user's attrs validator
        ({"count": 2**63}, "count", "9223372036854775808 is outside the 64-bit integer range"),
        ({"count": -(2**63) - 1}, "count", "outside the 64-bit integer range"),
        ({"count": 1.0}, "count", "1.0 is not an int"),
        ({"flag": 1}, "flag", "1 is not a bool"),
        ({"component": ""}, "component", "'' is empty"),
        ({"component": "a\\"}, "component", "ends in a backslash"),
        ({"component": "a\nb"}, "component", "contains a newline"),
        ({"component": 5}, "component", "5 is not a str"),
        ({"component": "\udc80"}, "component", "lone surrogate"),
        ({"mode": "other"}, "mode", "'other' is not a Mode"),
        ({"time": datetime(1677, 9, 21, tzinfo=UTC)}, "time", "outside InfluxDB's time range"),
        ({"time": datetime(2262, 4, 12, tzinfo=UTC)}, "time", "outside InfluxDB's time range"),
        ({"time": 2**63}, "time", "outside InfluxDB's time range"),
        ({"time": "yesterday"}, "time", "'yesterday' is not an ISO 8601 time"),
        ({"time": None}, "time", "None is not a time"),
        ({"time": 1.5}, "time", "1.5 is not a time"),
    ],
)
def test_construction_refuses_bad_values(changes, field, fragment):
    with pytest.raises(ValidationError) as caught:
        Result(**result_args(**changes))
    assert list(caught.value.errors) == [field]
    assert fragment in str(caught.value)
    assert str(caught.value).startswith(f"{field}: ")


def test_point_with_all_fields_none_is_refused():
    with pytest.raises(ValidationError, match=r"all fields of Sparse are None \(a, b\)"):
        Sparse()
    assert Sparse(b="x").a is None


@d.measurement("local_readings", naive_times="local")
class LocalReading:
    time: datetime = d.timestamp()
    value: float = d.field()


def test_naive_times_are_utc_and_local_time_by_choice_including_daylight_saving(monkeypatch):
    monkeypatch.setenv("TZ", "Europe/Berlin")
    time_module.tzset()
    try:
        naive = datetime(2024, 7, 1, 12, 0)
        assert PowerReading(time=naive, component="c", value=1.0).time == naive.replace(tzinfo=UTC)
        assert PowerReading.load({"time": "2024-07-01T12:00:00", "component": "c", "value": 1}).time == (
            naive.replace(tzinfo=UTC)
        )
        assert LocalReading(time=naive, value=1.0).time == datetime(2024, 7, 1, 10, 0, tzinfo=UTC)
        previous = set_naive_times("local")
        try:
            summer = PowerReading(time=datetime(2024, 7, 1, 12, 0), component="c", value=1.0)
            assert summer.time == LocalReading(time=naive, value=1.0).time
        finally:
            set_naive_times(previous)
        winter = PowerReading(time=datetime(2024, 1, 1, 12, 0), component="c", value=1.0)
        assert summer.time == datetime(2024, 7, 1, 10, 0, tzinfo=UTC)
        assert summer.time.timestamp() == datetime(2024, 7, 1, 12, 0).timestamp()
        winter = LocalReading(time=datetime(2024, 1, 1, 12, 0), value=1.0)
        assert winter.time == datetime(2024, 1, 1, 11, 0, tzinfo=UTC)
        now = LocalReading(time=datetime.now(), value=1.0).time
        assert abs(now - datetime.now(UTC)) < timedelta(seconds=5)
    finally:
        monkeypatch.undo()
        time_module.tzset()


def test_naive_times_error_policy_refuses_naive_times():
    assert Strict(time=T0, v=1).time == T0
    with pytest.raises(ValidationError, match="naive datetime '2024-01-01T00:00:00' refused"):
        Strict(time=datetime(2024, 1, 1), v=1)
    with pytest.raises(ValidationError, match="naive datetime"):
        Strict.load({"time": "2024-01-01T00:00:00", "v": 1})
    assert d.declaration(Strict).naive_times == "error" and d.declaration(PowerReading).naive_times is None


def test_defaults_and_factories():
    before = datetime.now(UTC)
    s = Sparse(a=1)
    assert before <= s.time <= datetime.now(UTC)
    assert Result(**result_args()).mode is Mode.AUTO
    with pytest.raises(TypeError):
        PowerReading(T0, "c", 1.0)  # keyword arguments only


# -- marshmallow -----------------------------------------------------------------------------------


def test_schema_is_a_marshmallow_schema_with_typed_fields():
    schema = d.schema_for(Result)
    assert isinstance(schema, marshmallow.Schema) and d.schema_for(Result) is schema
    assert isinstance(schema.fields["anomaly_score"], marshmallow.fields.Float)
    assert isinstance(schema.fields["count"], marshmallow.fields.Integer)
    assert isinstance(schema.fields["flag"], marshmallow.fields.Boolean)
    assert isinstance(schema.fields["mode"], marshmallow.fields.Enum)
    assert schema.fields["anomaly_score"].required and not schema.fields["count"].required
    assert isinstance(schema.load(result_args()), Result)


def test_dump_is_json_ready_and_loads_back():
    r = Result(**result_args(count=3, mode=Mode.MANUAL))
    dumped = r.dump()
    assert dumped == {
        "time": "2024-01-31T12:00:00.123456Z",
        "component": "coffee-machine",
        "model_id": "exp-1",
        "mode": "manual mode",
        "anomaly_score": 0.5,
        "count": 3,
        "flag": None,
    }
    assert Result.load(dumped) == r


def test_load_accepts_influxdb_keys_and_every_time_form():
    by_key = {"time": 1706702400123456000, "component": "c", "id": "m1", "anomalyScore": 1}
    r = Result.load(by_key)
    assert r.model_id == "m1" and r.anomaly_score == 1.0 and r.time == T0
    assert Result.load({**by_key, "time": "2024-01-31T12:00:00.123456Z"}) == r
    assert Result.load({**by_key, "time": T0}) == r
    with pytest.raises(ValidationError, match="given twice"):
        Result.load({**by_key, "anomaly_score": 0.5})


def test_load_reports_every_problem_of_an_object():
    with pytest.raises(ValidationError) as caught:
        Result.load(
            {"time": "noon", "component": "", "id": "m", "anomalyScore": "x", "count": 1.5, "extra": 1}
        )
    errors = caught.value.errors
    assert set(errors) == {"time", "component", "anomaly_score", "count", "extra"}
    assert "'noon' is not an ISO 8601 time" in errors["time"][0]
    assert "'' is empty" in errors["component"][0]
    assert errors["anomaly_score"] == ["'x' is not a float"]
    assert errors["count"] == ["1.5 is not an int"]
    assert Result.load({**result_args(), "extra": 1}, unknown="exclude") == Result(**result_args())


def test_load_many_reports_all_items_keyed_by_index():
    good = Result(**result_args()).dump()
    with pytest.raises(ValidationError) as caught:
        Result.load_many([good, {**good, "anomaly_score": float("nan")}, good, {**good, "count": 2**64}])
    errors = caught.value.errors
    assert set(errors) == {1, 3}
    assert "nan is not a finite number" in errors[1]["anomaly_score"][0]
    assert "outside the 64-bit integer range" in errors[3]["count"][0]
    assert "1.anomaly_score" in str(caught.value) and "3.count" in str(caught.value)
    assert Result.load_many([good, good]) == [Result(**result_args())] * 2


def test_load_runs_the_class_validation_too():
    with pytest.raises(ValidationError, match="2.0 is refused"):
        Result.load(result_args(anomaly_score=2.0))
    with pytest.raises(ValidationError, match="all fields of Sparse are None"):
        Sparse.load({})


utc_times = st.datetimes(
    min_value=d.MIN_TIME.replace(tzinfo=None),
    max_value=d.MAX_TIME.replace(tzinfo=None),
    timezones=st.just(UTC),
)
results = st.builds(
    Result,
    time=utc_times,
    component=st.text(min_size=1).filter(lambda s: "\n" not in s and not s.endswith("\\")),
    model_id=st.sampled_from(["exp-1", "a b,c=d", "ü😀"]),
    mode=st.sampled_from(Mode),
    anomaly_score=st.floats(max_value=1.0, allow_nan=False, allow_infinity=False),
    count=st.none() | st.integers(-(2**63), 2**63 - 1),
    flag=st.none() | st.booleans(),
)


@settings(max_examples=300, deadline=None)
@given(results)
def test_load_of_dump_is_identity(obj):
    assert Result.load(obj.dump()) == obj
    assert math.copysign(1, Result.load(obj.dump()).anomaly_score) == math.copysign(1, obj.anomaly_score)
