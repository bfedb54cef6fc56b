"""Line protocol: exact escaping, formatting, and the refusals, checked by a reference parser."""

from __future__ import annotations

import enum
import math
from datetime import UTC, datetime, timedelta
from typing import Any, Optional

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import field_texts, finite_floats, int64s, tag_text

import influxhtm.model.declarations as d
from influxhtm.core.errors import ValidationError
from influxhtm.model import line_protocol as lp

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# -- a small reference parser, written from the InfluxDB 1.x line protocol documentation ----------


def _scan(text: str, i: int, stops: str, escapable: str) -> tuple[str, int]:
    """Read up to an unescaped stop character; `\\x` for x in `escapable` means x."""
    out = []
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text) and text[i + 1] in escapable:
            out.append(text[i + 1])
            i += 2
            continue
        if c in stops:
            break
        out.append(c)
        i += 1
    return "".join(out), i


def _field_value(text: str, i: int) -> tuple[Any, int]:
    if text[i] == '"':
        out = []
        i += 1
        while text[i] != '"':
            if text[i] == "\\" and text[i + 1] in '"\\':
                out.append(text[i + 1])
                i += 2
            else:
                out.append(text[i])
                i += 1
        return "".join(out), i + 1
    raw, i = _scan(text, i, ", ", "")
    if raw in ("true", "false"):
        return raw == "true", i
    if raw.endswith("i"):
        return int(raw[:-1]), i
    return float(raw), i


def _parse_at(text: str, i: int) -> tuple[tuple[str, dict[str, str], dict[str, Any], int], int]:
    """One line starting at `i`: (measurement, tags, fields, time ns), and where it ends."""
    measurement, i = _scan(text, i, ", ", ", ")
    tags: dict[str, str] = {}
    while text[i] == ",":
        key, i = _scan(text, i + 1, "=", ",= ")
        value, i = _scan(text, i + 1, ", ", ",= ")
        tags[key] = value
    assert text[i] == " "
    fields: dict[str, Any] = {}
    i += 1
    while True:
        key, i = _scan(text, i, "=", ",= ")
        fields[key], i = _field_value(text, i + 1)
        if text[i] == " ":
            break
        assert text[i] == ","
        i += 1
    end = text.find("\n", i)
    end = len(text) if end < 0 else end
    return (measurement, tags, fields, int(text[i + 1 : end])), end


def parse_line(line: str) -> tuple[str, dict[str, str], dict[str, Any], int]:
    record, end = _parse_at(line, 0)
    assert end == len(line)
    return record


def parse(text: str) -> list[tuple[str, dict[str, str], dict[str, Any], int]]:
    """Every line of a batch (string fields may contain newlines)."""
    records, i = [], 0
    while True:
        record, i = _parse_at(text, i)
        records.append(record)
        if i == len(text):
            return records
        assert text[i] == "\n"
        i += 1


# -- hand-checked escaping -------------------------------------------------------------------------


def test_escaping_of_each_part_follows_influxdb_1x():
    assert lp.escape_measurement('a, b=c"\\') == 'a\\,\\ b=c"\\'
    assert lp.escape_key('a, b=c"\\') == 'a\\,\\ b\\=c"\\'
    assert lp.escape_tag_value('a, b=c"\\') == 'a\\,\\ b\\=c"\\'
    assert lp.quote_string_field('say "hi", a\\b = c') == '"say \\"hi\\", a\\\\b = c"'


@pytest.mark.parametrize(
    "value, text",
    [
        (1e308, "1e+308"),
        (5e-324, "5e-324"),
        (-0.0, "-0.0"),
        (0.1, "0.1"),
        (1.0, "1.0"),
        (123456789.125, "123456789.125"),
    ],
)
def test_float_text_is_exact(value, text):
    assert lp.format_float(value) == text
    assert float(text) == value and math.copysign(1, float(text)) == math.copysign(1, value)


def test_encode_point_sorts_tags_and_types_values():
    line = lp.encode_point(
        "cpu load",
        {"zone": "eu west", "host": "a,b", "skip": None},
        {"v": 1.5, "n": 3, "ok": True, "s": 'x"y'},
        -5,
    )
    assert line == 'cpu\\ load,host=a\\,b,zone=eu\\ west v=1.5,n=3.0,ok=true,s="x\\"y" -5'
    assert lp.encode_point("m", None, {"n": 3}, 0, ints_as_floats=False) == "m n=3i 0"


@pytest.mark.parametrize(
    "args, field, fragment",
    [
        (("", {}, {"v": 1.0}, 0), "measurement", "is empty"),
        (("a\nb", {}, {"v": 1.0}, 0), "measurement", "newline"),
        (("#m", {}, {"v": 1.0}, 0), "measurement", "comment"),
        (("m\\", {}, {"v": 1.0}, 0), "measurement", "backslash"),
        (("m\\,x", {}, {"v": 1.0}, 0), "measurement", "backslash before"),
        (("m", {"t": ""}, {"v": 1.0}, 0), "t", "empty"),
        (("m", {"": "x"}, {"v": 1.0}, 0), "tag key", "empty"),
        (("m", {"t": "a\\"}, {"v": 1.0}, 0), "t", "ends in a backslash"),
        (("m", {"t\\": "a"}, {"v": 1.0}, 0), "tag key", "ends in a backslash"),
        (("m", {"t": "a\nb"}, {"v": 1.0}, 0), "t", "newline"),
        (("m", {"time": "a"}, {"v": 1.0}, 0), "tag key", "'time'"),
        (("m", {}, {"time": 1.0}, 0), "field key", "'time'"),
        (("m", {}, {"a\\ b": 1.0}, 0), "field key", "backslash before"),
        (("m", {}, {"v": float("nan")}, 0), "v", "NaN"),
        (("m", {}, {"v": float("-inf")}, 0), "v", "NaN or infinity"),
        (("m", {}, {"v": 2**63}, 0), "v", "64-bit"),
        (("m", {}, {"v": -(2**63) - 1}, 0), "v", "64-bit"),
        (("m", {}, {"v": None}, 0), "fields", "at least one field"),
        (("m", {}, {"v": [1]}, 0), "v", "not a float, int, bool or str"),
        (("m", {}, {"v": "\ud800"}, 0), "v", "surrogate"),
        (("m", {}, {"v": 1.0}, lp.INT64_MAX), "time", "outside InfluxDB's time range"),
        (("m", {}, {"v": 1.0}, -(2**63) + 1), "time", "outside InfluxDB's time range"),
        (("m", {}, {"v": 1.0}, 1.5), "time", "not integer nanoseconds"),
    ],
)
def test_encode_point_refuses_what_line_protocol_cannot_carry(args, field, fragment):
    with pytest.raises(ValidationError) as caught:
        lp.encode_point(*args)
    assert field in caught.value.errors
    message = str(caught.value)
    assert fragment in message
    assert field in message


class Color(enum.Enum):
    RED = "red, hot"
    BLUE = "blue=cold"


@d.measurement("hostile meas,ure=ment")
class Everything:
    time: datetime = d.timestamp()
    where: str = d.tag(name="wh ere,=")
    color: Optional[Color] = d.tag(default=None)
    x: float = d.field(name="x,= y")
    n: Optional[int] = d.field(default=None)
    ok: Optional[bool] = d.field(default=None)
    text: Optional[str] = d.field(name="t{e}xt", default=None)
    shade: Optional[Color] = d.field(default=None)


def expected(obj: Everything) -> tuple[str, dict[str, str], dict[str, Any], int]:
    tags = {"wh ere,=": obj.where}
    if obj.color is not None:
        tags["color"] = obj.color.value
    fields: dict[str, Any] = {"x,= y": obj.x}
    for key, value in (("n", obj.n), ("ok", obj.ok), ("t{e}xt", obj.text)):
        if value is not None:
            fields[key] = value
    if obj.shade is not None:
        fields["shade"] = obj.shade.value
    delta = obj.time - EPOCH
    ns = ((delta.days * 86400 + delta.seconds) * 10**6 + delta.microseconds) * 1000
    return "hostile meas,ure=ment", tags, fields, ns


field_text = field_texts(max_size=20)
times = st.datetimes(
    min_value=d.MIN_TIME.replace(tzinfo=None),
    max_value=d.MAX_TIME.replace(tzinfo=None),
    timezones=st.just(UTC),
)
everything = st.builds(
    Everything,
    time=times,
    where=tag_text,
    color=st.none() | st.sampled_from(Color),
    x=finite_floats,
    n=st.none() | int64s,
    ok=st.none() | st.booleans(),
    text=st.none() | field_text,
    shade=st.none() | st.sampled_from(Color),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(everything, min_size=1, max_size=5))
def test_reference_parser_reads_encode_output_back(objs):
    text = lp.encode(objs)
    assert parse(text) == [expected(o) for o in objs]
    assert lp.encode(objs, as_bytes=True) == text.encode("utf-8")
    assert "\n".join(lp.to_line(o) for o in objs) == text


@settings(max_examples=200, deadline=None)
@given(
    tags=st.dictionaries(tag_text.filter(lambda s: lp.key_problem(s) is None), tag_text, max_size=3),
    fields=st.dictionaries(
        st.text(alphabet='ab ,=é"', min_size=1, max_size=5).filter(lambda s: s != "time"),
        st.one_of(finite_floats, int64s, st.booleans(), field_text),
        min_size=1,
        max_size=3,
    ),
    ns=st.integers(lp.MIN_NS, lp.MAX_NS),
)
def test_reference_parser_reads_plain_rows_back(tags, fields, ns):
    line = lp.encode_point("m e,a=s", tags, fields, ns, ints_as_floats=False)
    measurement, got_tags, got_fields, got_ns = parse_line(line)
    assert (measurement, got_tags, got_ns) == ("m e,a=s", tags, ns)
    assert got_fields == fields
    assert [type(v) for v in got_fields.values()] == [type(v) for v in fields.values()]
    assert list(got_tags) == sorted(tags)


def test_times_before_1970_with_microseconds_are_exact_nanoseconds():
    obj = Everything(time=datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), where="w", x=1)
    assert lp.to_line(obj).endswith(" -1000")
    obj = Everything(time=datetime(1677, 9, 21, 0, 12, 43, 145225, tzinfo=UTC), where="w", x=1)
    assert lp.to_line(obj).endswith(" -9223372036854775000")


def test_int_for_float_field_is_written_as_float():
    obj = Everything(time=EPOCH, where="w", x=3, n=3)
    assert lp.to_line(obj) == "hostile\\ meas\\,ure=ment,wh\\ ere\\,\\==w x\\,\\=\\ y=3.0,n=3i 0"


def test_encoder_is_generated_once_and_handles_mixed_batches():
    @d.measurement("other")
    class Other:
        time: datetime = d.timestamp()
        v: float = d.field()

    assert lp.encoder_for(Everything) is lp.encoder_for(Everything)
    a = Everything(time=EPOCH, where="w", x=1.5)
    b = Other(time=EPOCH + timedelta(microseconds=1), v=2.5)
    assert lp.encode([a, b, a]).split("\n") == [lp.to_line(a), "other v=2.5 1000", lp.to_line(a)]
    # The encoder of one class hands an instance of another class to that class's encoder.
    assert lp.encoder_for(Everything)(b) == "other v=2.5 1000"


def test_encoding_an_undeclared_object_is_refused():
    with pytest.raises(ValidationError, match="not a declared measurement"):
        lp.encode([object()])
    assert lp.encode([]) == "" and lp.encode([], as_bytes=True) == b""


@pytest.mark.parametrize("key", ["time", "TIME", "Time", "tImE"])
def test_any_spelling_of_time_is_refused_as_a_key(key):
    from influxhtm.core.errors import ValidationError
    from influxhtm.model.line_protocol import encode_point

    with pytest.raises(ValidationError, match="time column"):
        encode_point("m", {key: "x"}, {"v": 1.0}, 0)
    with pytest.raises(ValidationError, match="time column"):
        encode_point("m", {}, {key: 1.0}, 0)
