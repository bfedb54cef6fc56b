"""The optional C encoders (`influxhtm._speedups`) against the Python ones: the same bytes, or a fallback.

Differential tests: for generated declared objects and sensor points, the C output
equals the Python output byte for byte, and whatever C does not handle is handed back
(None), so that the Python path decides (and raises the same errors). `./run` builds
the extension, so this file fails, not skips, when it is missing.
"""

from __future__ import annotations

import enum
import math
import random
import struct
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any, Optional
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import field_texts, tag_text

import influxhtm.model.declarations as d
from influxhtm import InfluxHtmClient
from influxhtm.core.errors import ValidationError
from influxhtm.core.times import to_ns
from influxhtm.htm.sensor import Sensor
from influxhtm.model.line_protocol import (
    INT64_MAX,
    INT64_MIN,
    Batch,
    body_time_span,
    encode,
    encode_slice_in_c,
    encoder_for,
    points_time_span,
    speedups,
    tally,
)

EXAMPLES = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def test_the_extension_is_built_and_used():
    import influxhtm._speedups as module  # ./run builds it: a missing build must fail here

    assert speedups() is module


@pytest.fixture
def no_speedups(monkeypatch):
    monkeypatch.setenv("INFLUXHTM_NO_SPEEDUPS", "1")


# -- declared objects --------------------------------------------------------------------
class Mood(enum.Enum):
    CALM = "calm"
    ODD = 'o d,d="=\\x'
    EMOJI = "😀 é"


@d.measurement("hostile, measure=ment é")
class Hostile:
    time: datetime = d.timestamp()
    example: str = d.tag()
    label: str = d.tag(name='lab el,="')
    mood: Optional[Mood] = d.tag(default=None)
    place: Optional[str] = d.tag(default=None, name="plàce")
    score: float = d.field(name="anomaly Score,=")
    text: Optional[str] = d.field(default=None)
    count: Optional[int] = d.field(default=None)
    flag: Optional[bool] = d.field(default=None)
    kind: Optional[Mood] = d.field(default=None)


@d.measurement("sparse")
class Sparse:
    """Every field optional: the first one present gets no comma."""

    time: datetime = d.timestamp()
    a: Optional[float] = d.field(default=None)
    b: Optional[str] = d.field(default=None)
    c: Optional[int] = d.field(default=None)


field_text = field_texts()
floats = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.floats(min_value=-1e6, max_value=1e6).map(lambda x: round(x, 3)),
    st.sampled_from([5e-324, -5e-324, 2.2250738585072014e-308, 1e308, -1e308, 1.7976931348623157e308, -0.0,
                     0.0, 1e-4, 9.999999999999999e-05, 2.0**50 + 0.25, 2.0**50 + 0.75, 2.0**53, 1e16]),
)
ints = st.one_of(st.integers(INT64_MIN, INT64_MAX), st.sampled_from([INT64_MIN, INT64_MAX, 0, -1]))
times = st.datetimes(
    min_value=d.MIN_TIME.replace(tzinfo=None),
    max_value=d.MAX_TIME.replace(tzinfo=None),
    timezones=st.just(UTC),
)
hostile = st.builds(
    Hostile,
    time=times,
    example=tag_text,
    label=tag_text,
    mood=st.none() | st.sampled_from(Mood),
    place=st.none() | tag_text,
    score=floats,
    text=st.none() | field_text,
    count=st.none() | ints,
    flag=st.none() | st.booleans(),
    kind=st.none() | st.sampled_from(Mood),
)
sparse = st.one_of(  # at least one field present, the first present one varying
    st.builds(Sparse, time=times, a=floats, b=st.none() | field_text, c=st.none() | ints),
    st.builds(Sparse, time=times, b=field_text, c=st.none() | ints),
    st.builds(Sparse, time=times, c=ints),
)


def python_lines(objs: list[Any]) -> str:
    encoder = encoder_for(type(objs[0]))
    return "\n".join(map(encoder, objs))


@EXAMPLES
@given(st.lists(hostile, min_size=1, max_size=6), st.lists(sparse, min_size=1, max_size=3))
def test_declared_objects_encode_byte_for_byte_as_in_python(objs, sparse_objs):
    for batch in (objs, sparse_objs):
        text = encode_slice_in_c(encoder_for(type(batch[0])), batch, 0, len(batch))
        assert text is not None
        assert text == python_lines(batch)
        assert text.encode("utf-8") == python_lines(batch).encode("utf-8")
    # a slice, and the public encode() (which uses C)
    encoder = encoder_for(Hostile)
    assert encode_slice_in_c(encoder, objs, 1, 3) == "\n".join(map(encoder, objs[1:3]))
    assert encode(objs) == python_lines(objs)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(hostile, min_size=1, max_size=4),
    st.lists(
        st.datetimes(min_value=datetime(1700, 1, 1), max_value=datetime(2200, 1, 1)), min_size=4, max_size=4
    ),
    st.sampled_from(
        [timezone(timedelta(hours=5, minutes=30)), timezone(-timedelta(hours=11)), ZoneInfo("Europe/Paris"),
         ZoneInfo("America/New_York")]
    ),
    st.integers(0, 1),
)
def test_times_in_other_zones_encode_as_in_python(objs, wall_times, zone, fold):
    """Instances hold UTC times; one forced to another zone (fold included) is still encoded exactly."""
    for obj, wall in zip(objs, wall_times):
        object.__setattr__(obj, "time", wall.replace(tzinfo=zone, fold=fold))
    assert encode_slice_in_c(encoder_for(Hostile), objs, 0, len(objs)) == python_lines(objs)


def test_what_c_does_not_handle_is_handed_back_to_python():
    t = datetime(2024, 1, 1, tzinfo=UTC)
    good = Hostile(time=t, example="e", label="l", score=1.5)
    encoder = encoder_for(Hostile)
    odd_values = [("time", datetime(2024, 1, 1)), ("score", type("F", (float,), {})(1.5)), ("count", 2**64),
                  ("count", True), ("flag", 1), ("label", 5), ("mood", "calm"), ("text", b"x")]
    for attr, value in odd_values:  # naive time, float subclass, big int, bool as int, ...
        obj = Hostile(time=t, example="e", label="l", score=1.5)
        object.__setattr__(obj, attr, value)
        assert encode_slice_in_c(encoder, [good, obj], 0, 2) is None, attr
    unset = object.__new__(Hostile)  # slots never filled: Python raises AttributeError, C hands back
    assert encode_slice_in_c(encoder, [good, unset], 0, 2) is None
    sparse_obj = Sparse(time=t, a=1.0)
    assert encode_slice_in_c(encoder, [good, sparse_obj], 0, 2) is None  # another class
    assert encode([good, sparse_obj]) == python_lines([good]) + "\n" + encoder_for(Sparse)(sparse_obj)
    object.__setattr__(sparse_obj, "a", None)  # all fields None: Python decides
    assert encode_slice_in_c(encoder_for(Sparse), [sparse_obj], 0, 1) is None
    assert encode_slice_in_c(encoder, (good,), 0, 1) is None  # not a list
    assert encode_slice_in_c(lambda o: "x", [good], 0, 1) is None  # not a generated encoder
    assert encode_slice_in_c(encoder, [good], -5, 99) == encoder(good)  # bounds are clamped


def test_the_c_functions_refuse_bad_arguments_without_crashing():
    module = speedups()
    with pytest.raises(TypeError):
        module.encode_objects(("not", "a plan"), [], 0, 0)
    with pytest.raises(TypeError):
        module.encode_sensor(b"prefix", [], 0, 0, False)
    assert module.encode_sensor("p ", [], 0, 0, False) == ""
    assert module.encode_sensor("p ", [{"time": 1, "value": 1.0}], 0, 1, True) is True


def test_python_code_that_empties_the_list_midway_is_survived():
    """A tzinfo or a dict key's __eq__ runs Python code in the middle of a C call; it may drop the
    very objects being encoded. C holds its own references and hands the batch back."""
    victims: list[Any] = []

    class Emptying(tzinfo):
        def utcoffset(self, dt):
            victims.clear()
            return timedelta(hours=1)

    class Key(str):
        def __hash__(self):
            return hash("time")

        def __eq__(self, other):
            victims.clear()
            return False

    t = datetime(2024, 1, 1, tzinfo=UTC)
    objs = [Hostile(time=t, example="e", label="l", score=float(i)) for i in range(3)]
    object.__setattr__(objs[0], "time", datetime(2024, 1, 1, tzinfo=Emptying()))
    victims[:] = objs
    del objs
    assert encode_slice_in_c(encoder_for(Hostile), victims, 0, 3) is None
    points = [{"time": datetime(2024, 1, 1, tzinfo=Emptying()), "value": 1.0}, {Key("t"): 1, "value": 1.0}]
    while points:
        victims[:] = [points.pop(), {"time": 1, "value": 2.0}]
        assert speedups().encode_sensor("p value=", victims, 0, 2, False) is None


# -- floats ----------------------------------------------------------------------------------
def c_float_texts(values: list[float]) -> list[str]:
    text = speedups().encode_sensor("", [{"time": 0, "value": v} for v in values], 0, len(values), False)
    return [line[: -len(" 0")] for line in text.split("\n")]


@settings(max_examples=1000, deadline=None)
@given(st.lists(floats, min_size=1, max_size=20))
def test_floats_are_written_exactly_as_repr(values):
    assert c_float_texts(values) == [repr(v) for v in values]


def test_many_random_doubles_are_written_exactly_as_repr():
    rnd = random.Random(20240101)
    values = []
    for _ in range(100_000):
        bits = struct.unpack("<d", struct.pack("<Q", rnd.getrandbits(64)))[0]
        short = round(rnd.uniform(-1e7, 1e7), rnd.randint(0, 10))
        near = math.nextafter(short, rnd.choice([0.0, math.inf]))
        scaled = rnd.uniform(1, 2) * 2.0 ** rnd.randint(-20, 53)
        values += [v for v in (bits, short, near, scaled) if math.isfinite(v)]
    assert c_float_texts(values) == [repr(v) for v in values]


# -- sensor points ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sensor():
    client = InfluxHtmClient("never_written", host="127.0.0.1", port=9)  # makes no connection
    return Sensor(client, "power, é=", "machine 0,=é")


def sensor_outcome(sensor: Sensor, points: list[Any], batch_size: int = 3) -> Any:
    """The bodies `write` would post, or the errors it would raise."""
    try:
        batches = sensor.repository.make_batches(points, batch_size, validate_first=True)
        return [(b.data.decode(), len(b)) for b in batches]
    except ValidationError as error:
        return ("error", error.errors)


GOOD_TIMES = st.one_of(
    st.integers(-(2**63) + 2, 2**63 - 2),
    st.datetimes(
        min_value=datetime(1678, 1, 1), max_value=datetime(2262, 1, 1),
        timezones=st.sampled_from([UTC, timezone(timedelta(hours=-3)), ZoneInfo("Europe/Paris")]),
    ),
)
BAD_TIMES = st.one_of(
    st.sampled_from([-(2**63), 2**63 - 1, 2**70, True, None, 1.5, "2024-01-01T00:00:00Z", "nonsense"]),
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2030, 1, 1)),  # naive: local time
)
GOOD_VALUES = st.one_of(floats, st.integers(-(2**80), 2**80))
BAD_VALUES = st.sampled_from([math.nan, math.inf, -math.inf, True, False, None, "1.5", 10**400, [1.0]])
good_point = st.fixed_dictionaries({"time": GOOD_TIMES, "value": GOOD_VALUES})
bad_point = st.one_of(
    st.fixed_dictionaries({"time": BAD_TIMES, "value": GOOD_VALUES}),
    st.fixed_dictionaries({"time": GOOD_TIMES, "value": BAD_VALUES}),
    st.fixed_dictionaries({"value": GOOD_VALUES}),
    st.fixed_dictionaries({"time": GOOD_TIMES}),
    st.fixed_dictionaries({"time": GOOD_TIMES, "value": GOOD_VALUES, "site": st.sampled_from(["a", 3])}),
    st.fixed_dictionaries({"time": GOOD_TIMES, "value": GOOD_VALUES, "component": st.just("machine 0,=é")}),
    st.sampled_from([None, 3, ("time", 1)]),
)


@EXAMPLES
@given(st.lists(good_point, min_size=1, max_size=8))
def test_sensor_points_encode_byte_for_byte_as_in_python(sensor, monkeypatch, points):
    module = speedups()
    prefix = "power\\,\\ é=,component=machine\\ 0\\,\\=é value="
    assert module.encode_sensor(prefix, points, 0, len(points), True) is True
    text = module.encode_sensor(prefix, points, 0, len(points), False)
    expected = [f"{prefix}{float(p['value'])!r} {to_ns(p['time'])}" for p in points]
    assert text == "\n".join(expected)
    fast = sensor_outcome(sensor, points)
    with monkeypatch.context() as patch:
        patch.setenv("INFLUXHTM_NO_SPEEDUPS", "1")
        assert sensor_outcome(sensor, points) == fast
    assert [body for body, _ in fast] == ["\n".join(expected[i : i + 3]) for i in range(0, len(points), 3)]


@EXAMPLES
@given(st.lists(good_point, max_size=4), bad_point, st.lists(good_point, max_size=4))
def test_any_other_point_falls_back_and_fails_or_succeeds_as_in_python(
    sensor, monkeypatch, before, bad, after
):
    points = [*before, bad, *after]
    assert speedups().encode_sensor("p value=", points, 0, len(points), True) is None
    fast = sensor_outcome(sensor, points)
    with monkeypatch.context() as patch:
        patch.setenv("INFLUXHTM_NO_SPEEDUPS", "1")
        assert sensor_outcome(sensor, points) == fast


def test_a_naive_time_follows_the_python_rule(sensor, monkeypatch):
    from influxhtm.core.times import set_naive_times

    points = [{"time": datetime(2024, 1, 1, 12), "value": 1.0}]
    local = sensor_outcome(sensor, points)
    assert local[0][0].endswith(f" {to_ns(datetime(2024, 1, 1, 12))}")
    previous = set_naive_times("error")
    try:
        outcome = sensor_outcome(sensor, points)
    finally:
        set_naive_times(previous)
    assert outcome[0] == "error" and "naive" in str(outcome[1])


# -- with the C path turned off ----------------------------------------------------------------
def test_the_variable_turns_the_c_path_off(no_speedups, sensor):
    assert speedups() is None
    t = datetime(2024, 1, 1, tzinfo=UTC)
    objs = [Hostile(time=t + timedelta(seconds=i), example="e", label=f"l{i}", score=i / 3) for i in range(5)]
    assert encode_slice_in_c(encoder_for(Hostile), objs, 0, 5) is None
    assert encode(objs) == python_lines(objs)
    bodies = sensor_outcome(sensor, [{"time": t, "value": 1}])
    assert bodies == [(f"power\\,\\ é=,component=machine\\ 0\\,\\=é value=1.0 {to_ns(t)}", 1)]


@pytest.mark.parametrize("disabled", ["0", "1"])
def test_writes_reach_the_server_with_and_without_the_c_path(influx_settings, influx_database, monkeypatch,
                                                             disabled):
    monkeypatch.setenv("INFLUXHTM_NO_SPEEDUPS", disabled)
    assert (speedups() is None) == (disabled == "1")
    client = InfluxHtmClient.from_settings(influx_database, influx_settings)
    t = datetime(2024, 1, 1, tzinfo=UTC)
    objs = [
        Hostile(time=t + timedelta(seconds=i), example="e", label='a "b"', mood=Mood.ODD, score=i + 0.1,
                text='x\\"y', count=-i, flag=i % 2 == 0, kind=Mood.EMOJI)
        for i in range(2500)
    ]
    assert client.repository(Hostile).add_all(objs, batch_size=1000) == 2500
    sensor = client.create_sensor("power", "machine 0")
    assert sensor.write([{"time": t + timedelta(minutes=i), "value": i * 0.37} for i in range(2500)]) == 2500
    assert client.repository(Hostile).query().all() == objs
    assert [r.value for r in sensor.get_data()] == [i * 0.37 for i in range(2500)]


def test_every_built_extension_is_found_by_the_code_that_uses_it():
    """A C module built beside the package is used: a wrong import path (say, after modules moved
    into sub-packages) would quietly turn every C path off and only show as slowness."""
    from pathlib import Path

    import influxhtm
    from influxhtm.model import line_protocol, row_mappers

    package = Path(influxhtm.__file__).parent
    built = {path.name.split(".")[0] for path in package.glob("_*.so")}
    found = {"_speedups": line_protocol.speedups(), "_decode": row_mappers._decoder()}
    for name in built & set(found):
        assert found[name] is not None, f"{name} is built in {package} but not found"


# -- the time span of a body (what the write pipeline reads to send batches side by side) ------------
line_tail = st.one_of(
    st.integers(-(2**64), 2**64).map(lambda t: f" {t}"),  # some beyond int64: no timestamp
    st.sampled_from(["", "=1", "=-5", "=1.5", '="a 1"', "=12i", " ", " -", " --3", "\\ 7", " 0x1", " 1 "]),
)
body_line = st.tuples(st.sampled_from(["m f=1", 'm,t=a\\ b s="x 9"', "m x=2 3"]), line_tail).map("".join)


@settings(max_examples=1000, deadline=None)
@given(st.lists(body_line, min_size=1, max_size=6))
def test_the_span_of_a_body_is_the_same_in_c_and_python(lines):
    body = "\n".join(lines).encode()
    expected = points_time_span(body.split(b"\n"))
    assert speedups().time_span(body) == expected
    assert body_time_span(body) == expected
    if expected is not None:  # every line ends with " <int64>"
        times = [int(line.rsplit(" ", 1)[1]) for line in lines]
        assert expected == (min(times), max(times)) and all(abs(t) < 2**63 for t in times)


@EXAMPLES
@given(st.lists(hostile, min_size=1, max_size=6), st.lists(good_point, min_size=1, max_size=8))
def test_the_span_the_c_encoders_tell_is_the_span_of_their_lines(objs, points):
    told = tally()
    text = encode_slice_in_c(encoder_for(Hostile), objs, 0, len(objs), told)
    lines = [encoder_for(Hostile)(o) for o in objs]  # a string field may hold a newline
    assert text == "\n".join(lines)
    assert tuple(told[:2]) == points_time_span(Batch.of_lines(lines).lines()) == (
        min(to_ns(o.time) for o in objs), max(to_ns(o.time) for o in objs)
    )
    assert told[2] == text.count("\n") - (len(objs) - 1)  # the newlines inside string fields
    batch = Batch.joined(text, len(objs), lambda: lines, told)
    assert batch.lines() == [line.encode() for line in lines] and batch.time_span() == tuple(told[:2])
    told = tally()
    prefix = "power,component=m value="
    text = speedups().encode_sensor(prefix, points, 0, len(points), False, "time", "value", told)
    assert tuple(told) == (*body_time_span(text.encode()), 0) == (
        min(to_ns(p["time"]) for p in points), max(to_ns(p["time"]) for p in points), 0
    )
    # a tally takes in more lines across calls
    more = speedups().encode_sensor(prefix, [{"time": 7, "value": 1.0}], 0, 1, False, "time", "value", told)
    assert more is not None and told[0] == min(7, told[0]) and told[1] == max(7, told[1])


def test_a_batch_made_by_a_repository_carries_its_span(sensor):
    from benchmarks import data

    repo = InfluxHtmClient("never_written", host="127.0.0.1", port=9).repository(data.PowerReading)
    objs = data.objects(30)
    batches = list(repo.make_batches(objs, 10))
    assert [b._span for b in batches] == [
        (to_ns(objs[i].time), to_ns(objs[i + 9].time)) for i in range(0, 30, 10)
    ]
    points = data.sensor_points(20)
    told = [b._span for b in sensor.repository.make_batches(points, 10, validate_first=True)]
    assert told == [(points[0]["time"], points[9]["time"]), (points[10]["time"], points[19]["time"])]
