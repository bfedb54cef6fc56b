"""The `__init__` generated per declaration: exactly as strict as the converters, readable in tracebacks.

The reference is each attribute's converter (what attrs's own `__init__` calls): for any
values, the generated `__init__` builds the same object (same values, same types) or raises
the same ValidationError.
"""

from __future__ import annotations

import enum
import linecache
import sys
import traceback
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Optional

import attrs
from hypothesis import given, settings
from hypothesis import strategies as st

from influxhtm import field, measurement, tag, timestamp
from influxhtm.core.errors import ValidationError


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Text(str):
    pass


@measurement("every_kind")
class EveryKind:
    time: datetime = timestamp()
    name: str = tag()
    color: Color = tag()
    x: float = field()
    n: int = field()
    flag: bool = field()
    note: Optional[str] = field(default=None)
    maybe: Optional[float] = field(default=None)
    shade: Optional[Color] = field(default=None)


@measurement("positional", kw_only=False)
class Positional:
    time: datetime = timestamp()
    a: Optional[float] = field()
    b: Optional[float] = field(default=None)


times = st.one_of(
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)),
    st.datetimes(min_value=datetime(1677, 1, 1), max_value=datetime(2263, 1, 1),
                 timezones=st.sampled_from([UTC, timezone(timedelta(hours=5)), timezone(timedelta(0))])),
    st.datetimes(min_value=datetime(1677, 9, 20), max_value=datetime(2262, 4, 12)),  # naive
    st.integers(min_value=-(2**63) - 2, max_value=2**63 + 2),
    st.sampled_from(["2024-01-01T00:00:00Z", "nope", None, True, 1.5]),
)
texts = st.one_of(
    st.text(st.characters(codec=None, exclude_categories=()), max_size=6),  # lone surrogates too
    st.sampled_from(["pump", "a\\", "a\nb", "", "x y,z=1", "ü", Text("pump"), Text(""), 5, None, b"b"]),
)
colors = st.one_of(st.sampled_from([Color.RED, Color.BLUE, "red", "blue", "green", None, 1]))
numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.sampled_from([True, False, None, "1.5", 0.0, -0.0, 2**1100]),
)


def reference(cls: type, given_values: dict[str, Any]) -> Any:
    """What attrs's `__init__` did: each converter, in order; then the post-init hook."""
    values = {}
    for a in attrs.fields(cls):
        raw = given_values[a.name] if a.name in given_values else a.default
        values[a.name] = a.converter(raw)
    obj = object.__new__(cls)
    for name, value in values.items():
        object.__setattr__(obj, name, value)
    if hasattr(cls, "__attrs_post_init__"):
        obj.__attrs_post_init__()
    return obj


def outcome(make: Any) -> Any:
    try:
        obj = make()
    except ValidationError as error:
        return ("error", error.errors)
    return ("ok", [(type(getattr(obj, a.name)), getattr(obj, a.name)) for a in attrs.fields(type(obj))])


def same(a: Any, b: Any) -> bool:
    return repr(a) == repr(b)  # NaN never gets stored; repr also tells 0.0 from -0.0


@settings(max_examples=400, deadline=None)
@given(time=times, name=texts, color=colors, x=numbers, n=numbers, flag=numbers, note=texts,
       maybe=numbers, shade=colors)
def test_generated_init_matches_the_converters(**values: Any) -> None:
    expected = outcome(lambda: reference(EveryKind, values))
    got = outcome(lambda: EveryKind(**values))
    assert same(got, expected), (got, expected)
    # The tag values it has seen are remembered: a second build answers the same.
    assert same(outcome(lambda: EveryKind(**values)), expected)


@settings(max_examples=150, deadline=None)
@given(time=times, a=numbers, b=numbers)
def test_generated_positional_init_matches_the_converters(time: Any, a: Any, b: Any) -> None:
    expected = outcome(lambda: reference(Positional, {"time": time, "a": a, "b": b}))
    assert same(outcome(lambda: Positional(time, a, b)), expected)


def test_generated_init_is_readable_in_a_traceback() -> None:
    init = EveryKind.__init__
    filename = init.__code__.co_filename
    assert filename.startswith("<influxhtm __init__ of EveryKind")
    assert linecache.getline(filename, 1).startswith("def __init__(self, *, time, name, color")
    try:
        EveryKind(time=1, name="pump", color=Color.RED, x=float("nan"), n=1, flag=True)
    except ValidationError:
        text = "".join(traceback.format_exception(*sys.exc_info()))
    assert filename in text and "x = _conv" in text
    assert EveryKind.__init__.__qualname__ == "EveryKind.__init__"


def test_missing_and_unknown_arguments_are_type_errors_as_before() -> None:
    for kwargs in ({"time": 1, "name": "p", "color": Color.RED, "x": 1.0, "n": 1},
                   {"time": 1, "name": "p", "color": Color.RED, "x": 1.0, "n": 1, "flag": True, "bad": 1}):
        try:
            EveryKind(**kwargs)
        except TypeError as error:
            assert "EveryKind.__init__()" in str(error)
        else:
            raise AssertionError("accepted")


def test_the_generated_init_sets_only_instances_of_its_class() -> None:
    """With the C module, one call stores every slot by offset: it checks the instance's class first."""
    import pytest

    @measurement("other")
    class Other:
        time: datetime = timestamp()
        v: float = field()

    stranger = Other(time=1, v=1.0)
    with pytest.raises(TypeError):
        EveryKind.__init__(stranger, time=1, name="p", color=Color.RED, x=1.0, n=1, flag=True)
    assert (stranger.time, stranger.v) == (datetime(1970, 1, 1, tzinfo=UTC), 1.0)

    class Child(EveryKind):
        pass

    child = Child(time=2, name="p", color="red", x=1, n=2, flag=False)
    assert (child.name, child.color, child.x, child.n, child.flag) == ("p", Color.RED, 1.0, 2, False)
