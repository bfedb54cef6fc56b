"""InfluxDB 1.x line protocol: exact escaping, the checks of what it can carry, fast encoders.

Escaping follows InfluxDB 1.x exactly: measurement names escape comma and
space; tag keys, tag values and field keys escape comma, equals sign and space;
string field values are double-quoted with ``"`` and ``\\`` escaped. Nothing else
is escaped.

Some values cannot be carried at all, and are refused (with the field and the
value named) before anything is written. The limits were checked against a
real InfluxDB 1.6 server:

- tag keys and tag values: empty, containing a newline, or ending in a
  backslash (InfluxDB has no escape for a backslash in tags);
- field keys and measurement names: the same, and also a backslash directly
  before a comma, space, equals sign or double quote (the server drops that
  backslash); a measurement name starting with `#` (the line is a comment);
- the key `time`; integers outside int64; NaN and infinities; text that is not
  valid Unicode (lone surrogates); times outside InfluxDB's range;
- a measurement name or field key starting with a tab or NUL (the server skips
  them: the point would be stored under another name, or dropped as a comment);
  a measurement name, tag key or field key with a carriage return or NUL
  (the server stores it, but InfluxQL cannot name it: no query could read it);
  the names InfluxDB's query engine reserves (`SYSTEM_MEASUREMENTS`, `SYSTEM_KEYS`).

Declared classes get an encoder generated once per class (`encoder_for`), the
way attrs generates `__init__`: one f-string per point, no per-point dispatch.
Batches go through the optional C module `influxhtm._speedups` when it is built
(`encode_slice`): it formats the simple cases byte for byte as the Python
encoder does and hands anything else back to it. `INFLUXHTM_NO_SPEEDUPS=1`
turns it off (read at each use, never at import).
"""

from __future__ import annotations

import math
import re
import sys
from datetime import timedelta
from typing import Any, Callable, Iterable, Mapping, Sequence

from influxhtm.core.errors import ValidationError, show_value
from influxhtm.core.times import EPOCH, MAX_NS, MIN_NS
from influxhtm.model.codegen import compile_function, extension
from influxhtm.model.columns import Declaration, declaration

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

_BAD_BACKSLASH = re.compile(r'\\[, ="]')
#: Measurement names InfluxDB 1.6 reserves for system sources: `SELECT ... FROM _series` is refused.
SYSTEM_MEASUREMENTS = frozenset(
    {"_fieldKeys", "_measurements", "_name", "_series", "_tagKey", "_tagKeys", "_tags"}
)
#: Keys InfluxDB 1.6's query engine answers itself (measurement name, tag keys, ...), not from the data.
SYSTEM_KEYS = {
    "tag": frozenset({"_name", "_tagKey", "_seriesKey"}),
    "field": frozenset({"_name", "_tagKey", "_fieldKey", "_seriesKey"}),
}
_US = timedelta(microseconds=1)


# -- escaping ------------------------------------------------------------------
def escape_measurement(name: str) -> str:
    """Escape a measurement name: comma and space."""
    return name.replace(",", "\\,").replace(" ", "\\ ")


def escape_key(key: str) -> str:
    """Escape a tag key or field key: comma, equals sign and space."""
    return key.replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")


def escape_tag_value(value: str) -> str:
    """Escape a tag value: comma, equals sign and space."""
    return value.replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")


def quote_string_field(value: str) -> str:
    """A string field value: double-quoted, with `\\` and `"` escaped."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def float_value(value: Any) -> float:
    """`float(value)`; a numpy float narrower than 64 bits (float32, float16) is read from the
    shortest decimal text that reads back to it (numpy's own `str`), so `numpy.float32(0.1)` is
    written `0.1`, not `0.10000000149011612`, and still reads back as the same float32."""
    dtype = getattr(value, "dtype", None)
    if dtype is not None and getattr(dtype, "kind", "") == "f" and dtype.itemsize < 8:
        return float(str(value))
    return float(value)


def format_float(value: float) -> str:
    """The shortest text InfluxDB parses back to exactly this float (Python's repr)."""
    return repr(float(value))


# -- checks: None when fine, else the reason -------------------------------------
def _unicode_problem(text: str) -> str | None:
    if text.isascii():
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid Unicode text (it contains a lone surrogate)"
    return None


def measurement_problem(name: object) -> str | None:
    """Why `name` cannot be a measurement name, or None."""
    if not isinstance(name, str):
        return "is not a str"
    if not name:
        return "is empty"
    if "\n" in name:
        return "contains a newline, which line protocol cannot carry"
    if name.startswith("#"):
        return "starts with '#', which makes the line a comment"
    if name[0] in "\t\x00":
        return "starts with a tab or NUL, which InfluxDB skips (the point would land elsewhere or be dropped)"
    if "\r" in name or "\x00" in name:
        return "contains a carriage return or NUL, which InfluxQL cannot name (it could never be queried)"
    if name in SYSTEM_MEASUREMENTS:
        return "is reserved by InfluxDB for a system source, which cannot be queried"
    if name.endswith("\\"):
        return "ends in a backslash, which line protocol cannot carry"
    if _BAD_BACKSLASH.search(name):
        return "has a backslash before a comma, space, '=' or '\"', which InfluxDB would drop"
    return _unicode_problem(name)


def key_problem(key: object, *, kind: str = "tag") -> str | None:
    """Why `key` cannot be a tag key (kind="tag") or field key (kind="field"), or None."""
    if not isinstance(key, str):
        return "is not a str"
    if not key:
        return "is empty"
    if key.lower() == "time":
        return "is reserved: InfluxDB reads any spelling of 'time' as the time column"
    if "\n" in key:
        return "contains a newline, which line protocol cannot carry"
    if key.endswith("\\"):
        return "ends in a backslash, which line protocol cannot carry"
    if key in SYSTEM_KEYS.get(kind, ()):
        return "is reserved by InfluxDB's query engine, which answers it with its own values, not the data"
    if kind == "field" and key[0] in "\t\x00":
        return "starts with a tab or NUL, which InfluxDB skips (the field would be stored under another key)"
    if kind == "field" and _BAD_BACKSLASH.search(key):
        return "has a backslash before a comma, space, '=' or '\"', which InfluxDB would drop"
    if "\r" in key or "\x00" in key:
        return "contains a carriage return or NUL, which InfluxQL cannot name (it could never be queried)"
    return _unicode_problem(key)


def tag_value_problem(value: str) -> str | None:
    """Why the str `value` cannot be a tag value, or None."""
    if not value:
        return "is empty: InfluxDB cannot store an empty tag value (leave the tag out instead)"
    if "\n" in value:
        return "contains a newline, which line protocol cannot carry in a tag"
    if value.endswith("\\"):
        return "ends in a backslash, which line protocol cannot carry in a tag"
    return _unicode_problem(value)


def string_field_problem(value: str) -> str | None:
    """Why the str `value` cannot be a string field value, or None.

    Newlines, NUL and long texts are fine: InfluxDB 1.6 stores and returns them
    exactly (its documented 64 KiB limit is not enforced).
    """
    return _unicode_problem(value)


def _fail(name: str, value: object, reason: str) -> ValidationError:
    return ValidationError({name: [f"{_show(value)} {reason}"]})


_show = show_value


# -- escaped tag values, cached (tag values repeat: components, ids) ---------------
_TAG_CACHE: dict[str, str] = {}
_TAG_CACHE_LIMIT = 100_000


def _escape_tag_cached(value: str) -> str:
    escaped = value.replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")
    if len(_TAG_CACHE) >= _TAG_CACHE_LIMIT:
        _TAG_CACHE.clear()
    _TAG_CACHE[value] = escaped
    return escaped


# -- plain rows ----------------------------------------------------------------
def encode_point(
    measurement: str,
    tags: Mapping[str, Any] | None,
    fields: Mapping[str, Any],
    time_ns: int,
    *,
    ints_as_floats: bool = True,
) -> str:
    """One line for a plain row, every part checked.

    A None tag or field is left out; a row whose fields are all None is
    refused. Python ints are written as floats unless `ints_as_floats=False`
    (so `value=5` and `value=5.5` never cause a "field type conflict").
    """
    problem = measurement_problem(measurement)
    if problem:
        raise _fail("measurement", measurement, problem)
    if isinstance(time_ns, bool) or not isinstance(time_ns, int):
        raise _fail("time", time_ns, "is not integer nanoseconds")
    if not MIN_NS <= time_ns <= MAX_NS:
        raise _fail("time", time_ns, "is outside InfluxDB's time range (1677-09-21 to 2262-04-11)")
    parts = [escape_measurement(measurement)]
    if tags:
        for key in sorted(tags):
            value = tags[key]
            if value is None:
                continue
            problem = key_problem(key, kind="tag")
            if problem:
                raise _fail("tag key", key, problem)
            if not isinstance(value, str):
                value = getattr(value, "value", value)  # an Enum member
                if not isinstance(value, str):
                    raise _fail(key, value, "is not a str: tag values are text")
            problem = tag_value_problem(value)
            if problem:
                raise _fail(key, value, problem)
            parts.append(f",{escape_key(key)}={escape_tag_value(value)}")
    field_parts = []
    for key, value in fields.items():
        if value is None:
            continue
        problem = key_problem(key, kind="field")
        if problem:
            raise _fail("field key", key, problem)
        field_parts.append(f"{escape_key(key)}={_field_value(key, value, ints_as_floats)}")
    if not field_parts:
        raise ValidationError(
            {"fields": [f"a point needs at least one field that is not None (got {_show(dict(fields))})"]}
        )
    parts.append(" ")
    parts.append(",".join(field_parts))
    parts.append(f" {time_ns}")
    return "".join(parts)


def _field_value(key: str, value: Any, ints_as_floats: bool) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _fail(key, value, "is not a finite number: line protocol cannot carry NaN or infinity")
        return repr(float(value))
    if isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            raise _fail(key, value, "is outside the 64-bit integer range InfluxDB stores")
        if ints_as_floats:
            try:
                return repr(float(value))
            except OverflowError:  # pragma: no cover - int64 always fits a float
                raise _fail(key, value, "is too large for a float") from None
        return f"{int(value)}i"
    if isinstance(value, str):
        problem = string_field_problem(value)
        if problem:
            raise _fail(key, value, problem)
        return quote_string_field(value)
    kind = type(value).__name__
    if kind.startswith("bool"):  # numpy.bool_
        return "true" if value else "false"
    if hasattr(value, "__float__") and not hasattr(value, "__index__"):  # numpy floats
        return _field_value(key, float_value(value), ints_as_floats)
    if hasattr(value, "__index__"):  # numpy ints
        return _field_value(key, int(value.__index__()), ints_as_floats)
    raise _fail(key, value, "is not a float, int, bool or str")


# -- declared objects ----------------------------------------------------------
def encoder_for(
    cls: type, measurement: str | None = None, tags: Mapping[str, str] | None = None
) -> Callable[[Any], str]:
    """The line encoder of a declared class, written to `measurement` (default: the declared
    one) with the fixed `tags`: generated once per class, measurement and tags, and kept on the
    class's declaration (`Declaration.generated`).

    Instances were validated when they were built, so the encoder only formats.
    `encode(obj, ns)` stamps the point with `ns` (nanoseconds) instead of the object's
    time, whose datetime holds only microseconds (a runner keeps its input's exact time).
    Given an instance of another class, the class's own encoder hands over to that
    class's encoder; one for another measurement or fixed tags refuses it. A
    fixed tag that is also a declared tag must agree with the object's value.
    """
    decl = declaration(cls)
    name = decl.measurement if measurement is None else measurement
    fixed = check_fixed_tags(name, tags)
    key = ("encoder", name, tuple(sorted(fixed.items())))
    return decl.generated_once(key, lambda: _generate_encoder(decl, name, fixed))


def check_fixed_tags(measurement: str, tags: Mapping[str, str] | None) -> dict[str, str]:
    """The measurement name and fixed tags of a repository, checked (ValidationError naming them)."""
    problem = measurement_problem(measurement)
    if problem:
        raise _fail("measurement", measurement, problem)
    fixed: dict[str, str] = {}
    for key, value in (tags or {}).items():
        problem = key_problem(key, kind="tag")
        if problem:
            raise _fail("tag key", key, problem)
        if not isinstance(value, str):
            raise _fail(key, value, "is not a str: tag values are text")
        problem = tag_value_problem(value)
        if problem:
            raise _fail(key, value, problem)
        fixed[key] = value
    return fixed


def to_line(obj: Any) -> str:
    """The line-protocol line of one declared object."""
    return encoder_for(obj.__class__)(obj)


def encode(objs: Iterable[Any], *, as_bytes: bool = False) -> str | bytes:
    """Lines of many declared objects (of one or several classes), joined by newlines."""
    if type(objs) is not list:
        objs = list(objs)
    if not objs:
        return b"" if as_bytes else ""
    text = encode_slice(encoder_for(objs[0].__class__), objs, 0, len(objs))
    return text.encode("utf-8") if as_bytes else text


# -- the optional C encoders ------------------------------------------------------
#: What the C encoders tell of the lines they make (`tally`): [least time, greatest time, extra newlines].
Tally = list[int | None]


def speedups() -> Any:
    """The C module `influxhtm._speedups`, or None: not built, or `INFLUXHTM_NO_SPEEDUPS` set (not "0")."""
    return extension("_speedups")


def encode_slice(encode: Callable[[Any], str], objs: Sequence[Any], start: int, stop: int) -> str:
    """The lines of `objs[start:stop]`, joined by newlines: made in C when `encode` came from
    `encoder_for` and every object is of its class and simple, else by `encode` itself."""
    text = encode_slice_in_c(encode, objs, start, stop)
    return "\n".join(map(encode, objs[start:stop])) if text is None else text


def encode_slice_in_c(
    encode: Callable[[Any], str], objs: Sequence[Any], start: int, stop: int, told: Tally | None = None
) -> str | None:
    """What `encode_slice` returns, made by the C encoder; None when it cannot (not built, turned
    off, `encode` not from `encoder_for`, another class or an unusual value in the slice). A
    `tally` given as `told` takes in what the C encoder tells of the lines made."""
    plan = getattr(encode, "__speedup_plan__", None)
    module = speedups() if plan is not None and type(objs) is list else None
    text = None if module is None else module.encode_objects(plan, objs, start, stop, told)
    if text is None and type(objs) is list and start < len(objs) and type(objs[start]) is dict:
        text = encode_pairs_in_c(encode, objs, start, stop, told=told)  # plain dicts, a sensor-like class
    result: str | None = text
    return result


def _speedup_plan(decl: "Declaration", prefix: str) -> tuple[Any, ...]:
    """What the C encoder needs of a class: (cls, prefix, time attribute, tag columns, field columns).

    A column is (key text, attribute, type code, enum member texts or None, optional), in the
    order and with the escaping `_generate_encoder` uses; an enum's texts are final (escaped or
    quoted), looked up by member identity.
    """
    tags = tuple(
        (
            f",{escape_key(col.key)}=",
            sys.intern(col.attr),
            "e" if col.is_enum else "s",
            tuple((m, escape_tag_value(m.value)) for m in col.type) if col.is_enum else None,
            col.optional,
        )
        for col in sorted(decl.tags, key=lambda c: c.key)
    )
    codes = {float: "f", int: "i", bool: "b", str: "s"}
    fields = tuple(
        (
            f"{escape_key(col.key)}=",
            sys.intern(col.attr),
            "e" if col.is_enum else codes[col.type],
            tuple((m, quote_string_field(m.value)) for m in col.type) if col.is_enum else None,
            col.optional,
        )
        for col in sorted(decl.fields, key=lambda c: c.optional)
    )
    return (decl.cls, prefix, sys.intern(decl.time.attr), tags, fields)


def _generate_encoder(decl: "Declaration", measurement: str, fixed: dict[str, str]) -> Callable[[Any], str]:
    """Write and compile the source of an encoder for one declared class, measurement and
    fixed tags.

    Every name and key is escaped here, once; the generated function only
    fetches attributes and formats values into one f-string. Fixed tags follow
    the measurement name, then the declared tags by key.
    """
    own = measurement == decl.measurement and not fixed
    namespace: dict[str, Any] = {
        "_cls": decl.cls,
        "_other": to_line if own else _refuse_other(decl.cls),
        "_EPOCH": EPOCH,
        "_US": _US,
        "_tc": _TAG_CACHE,
        "_esc": _escape_tag_cached,
        "_BS": "\\",
        "_BS2": "\\\\",
        "_Q": '"',
        "_BSQ": '\\"',
        "_T": "true",
        "_F": "false",
    }
    body = ["def encode(obj, ns=None):", "    if obj.__class__ is not _cls:", "        return _other(obj)"]
    prefix = escape_measurement(measurement) + "".join(
        f",{escape_key(key)}={escape_tag_value(value)}" for key, value in sorted(fixed.items())
    )
    line = [_literal(prefix)]

    for i, col in enumerate(c for c in decl.tags if c.key in fixed):
        namespace[f"_fix{i}"] = fixed[col.key]
        namespace[f"_mismatch{i}"] = _mismatch(col.attr, fixed[col.key])
        value = "v.value" if col.is_enum else "v"
        body.append(f"    v = obj.{col.attr}")
        body.append(f"    if v is not None and {value} != _fix{i}:")
        body.append(f"        raise _mismatch{i}(v)")

    for i, col in enumerate(sorted((c for c in decl.tags if c.key not in fixed), key=lambda c: c.key)):
        var = f"t{i}"
        if col.is_enum:
            namespace[f"_e{i}"] = {m: escape_tag_value(m.value) for m in col.type}
            expr = f"_e{i}[{var}]"
        else:
            expr = f"(_tc.get({var}) or _esc({var}))"
        segment = f",{_literal(escape_key(col.key))}={{{expr}}}"
        body.append(f"    {var} = obj.{col.attr}")
        if col.optional:
            body.append(f"    {var} = '' if {var} is None else f{segment!r}")
            line.append(f"{{{var}}}")
        else:
            line.append(segment)

    # Required fields first, so that the first segment needs no comma.
    ordered = sorted(decl.fields, key=lambda c: c.optional)
    all_optional = all(c.optional for c in ordered)
    segments = []
    for i, col in enumerate(ordered):
        var = f"f{i}"
        comma = "" if i == 0 and not all_optional else ","
        segment = f"{comma}{_literal(escape_key(col.key))}={_value_piece(col, var)}"
        body.append(f"    {var} = obj.{col.attr}")
        if col.optional:
            body.append(f"    {var} = '' if {var} is None else f{segment!r}")
            segments.append(f"{{{var}}}")
        else:
            segments.append(segment)
    fields = "".join(segments)
    if all_optional:
        body.append(f"    fs = f{fields!r}[1:]")
        fields = "{fs}"
    line.append(f" {fields} {{(obj.{decl.time.attr} - _EPOCH) // _US * 1000 if ns is None else ns}}")
    body.append(f"    return f{''.join(line)!r}")
    source = "\n".join(body) + "\n"
    what = f"encoder for {decl.cls.__qualname__} in {measurement}"
    encoder = compile_function(source, what, namespace, "encode")
    # The C encoder formats declared tags only: a fixed tag that is also declared needs the check above.
    overridden = any(c.key in fixed for c in decl.tags)
    encoder.__speedup_plan__ = None if overridden else _speedup_plan(decl, prefix)
    encoder.__pairs_plan__ = _pairs_plan(decl, prefix, fixed)
    encoder.__fixed_prefix__ = prefix
    return encoder


def _pairs_plan(decl: "Declaration", prefix: str, fixed: dict[str, str]) -> tuple[str, str, str] | None:
    """What the C encoder needs to format plain `{time, <field>}` dicts of a declaration whose
    every tag is fixed and whose one field is a required float (a sensor's points): the line's
    start up to the value, and the two keys; else None."""
    if any(c.key not in fixed for c in decl.tags) or len(decl.fields) != 1:
        return None
    (column,) = decl.fields
    if column.type is not float or column.optional or column.is_enum:
        return None
    return (f"{prefix} {escape_key(column.key)}=", decl.time.key, column.key)


def encode_pairs_in_c(
    encode: Callable[..., str],
    points: list[Any],
    start: int,
    stop: int,
    check_only: bool = False,
    told: Tally | None = None,
) -> Any:
    """The lines of plain `{time, <field>}` dicts `points[start:stop]` made by the C encoder from
    `encode`'s pairs plan (see `_pairs_plan`): every time an int (ns) or an aware datetime in range,
    every value a finite float or int. None when it cannot make all of them; with `check_only`,
    True when it could (nothing is formatted)."""
    plan: tuple[str, str, str] | None = getattr(encode, "__pairs_plan__", None)
    module = speedups() if type(points) is list else None
    if plan is None or module is None:
        return None
    prefix, time_key, value_key = plan
    return module.encode_sensor(prefix, points, start, stop, check_only, time_key, value_key, told)


def _refuse_other(cls: type) -> Callable[[Any], str]:
    def refuse(obj: Any) -> str:
        raise _fail("object", obj, f"is not a {cls.__name__}")

    return refuse


def _mismatch(attr: str, fixed: str) -> Callable[[Any], ValidationError]:
    def mismatch(value: Any) -> ValidationError:
        shown = getattr(value, "value", value)
        return _fail(attr, shown, f"is not this repository's {attr} {fixed!r}")

    return mismatch


def _literal(text: str) -> str:
    """Text for the literal part of an f-string."""
    return text.replace("{", "{{").replace("}", "}}")


def _value_piece(col: Any, var: str) -> str:
    """The f-string piece that formats field `var` of column `col`."""
    if col.type is float:
        return f"{{{var}!r}}"
    if col.type is bool:
        return f"{{_T if {var} else _F}}"
    if col.type is int:
        return f"{{{var}}}i"
    value = f"{var}.value" if col.is_enum else var
    return f'"{{{value}.replace(_BS, _BS2).replace(_Q, _BSQ)}}"'


# -- batches: encoded points and where each one ends --------------------------------
_SCAN_SPECIAL = re.compile(rb'[\\ =,"\n]')


class Batch:
    """Encoded points ready to send: the body, and where each point ends.

    A string field may hold raw newlines (InfluxDB keeps them inside the quotes),
    so a body cannot be cut at every `b"\\n"`: a batch of N points whose body has
    exactly N - 1 newlines has a boundary at each of them (`points` is None);
    any other batch keeps its points (`points`). A body is only ever split, halved
    or counted through these boundaries.
    """

    __slots__ = ("data", "points", "_count", "_span")

    def __init__(
        self, data: bytes, points: list[bytes] | None, count: int, span: tuple[int, int] | None = None
    ):
        self.data = data
        self.points = points
        self._count = count
        self._span = span  # told by the C encoders as they make the body; else worked out when asked

    @classmethod
    def of_lines(cls, lines: Sequence[str | bytes]) -> "Batch":
        """A batch of encoded points, one per item (an item may hold newlines inside a string field)."""
        if all(isinstance(line, str) for line in lines):
            text = "\n".join(lines)  # type: ignore[arg-type]
            if text.count("\n") == len(lines) - 1:
                return cls(text.encode("utf-8"), None, len(lines))
        encoded = [line.encode("utf-8") if isinstance(line, str) else line for line in lines]
        data = b"\n".join(encoded)
        return cls(data, None if data.count(b"\n") == len(encoded) - 1 else encoded, len(encoded))

    @classmethod
    def joined(
        cls,
        text: str | bytes,
        count: int,
        lines: Callable[[], Sequence[str | bytes]] | None = None,
        told: Sequence[int | None] | None = None,
    ) -> "Batch":
        """A batch from a body of `count` points joined by newlines; when the body holds more
        newlines than that (inside string fields), its points are taken from `lines()`. `told`:
        what the C encoders told of the body as they made it (a `tally`), if they made all of it."""
        data = text.encode("utf-8") if isinstance(text, str) else text
        known = told_span(told)
        if known is not None and told is not None and told[2] == 0:  # one newline between each two
            return cls(data, None, count, known)
        if data.count(b"\n") == count - 1:
            return cls(data, None, count, known)
        if lines is None:
            newlines = data.count(b"\n")
            raise ValueError(f"a body of {count} point(s) holds {newlines} newline(s) and no list of points")
        batch = cls.of_lines(lines())
        batch._span = known
        return batch

    @classmethod
    def of_text(cls, text: str | bytes) -> "Batch":
        """A batch of raw line protocol from outside the encoders, cut where InfluxDB's scanner cuts
        it (`scan_points`); blank and comment lines are not points."""
        data = text.encode("utf-8") if isinstance(text, str) else text
        if b'"' in data or b"\\" in data:
            points = scan_points(data)
        else:
            points = []
            for line in data.split(b"\n"):
                _add_point(points, line)
        if len(points) - 1 == data.count(b"\n"):
            return cls(data, None, len(points))
        return cls(data, points, len(points))

    def __len__(self) -> int:
        return self._count

    def __repr__(self) -> str:
        return f"<Batch of {self._count} point(s), {len(self.data)} bytes>"

    def time_span(self) -> tuple[int, int] | None:
        """The least and greatest timestamp of the points, or None when a point has none (the
        server stamps it): the write pipeline sends two batches at once only when their spans
        are apart, so that no series and time can be stored out of order."""
        if self._span is None:
            self._span = body_time_span(self.data) if self.points is None else points_time_span(self.points)
        return self._span

    def lines(self) -> list[bytes]:
        """Each point's bytes."""
        return self.data.split(b"\n") if self.points is None else self.points

    def split(self, limit: int) -> list["Batch"]:
        """Batches of whole points of at most `limit` bytes each (a longer point stands alone)."""
        pieces: list[Batch] = []
        current: list[bytes] = []
        size = 0
        for line in self.lines():
            extra = len(line) + (1 if current else 0)
            if current and size + extra > limit:
                pieces.append(Batch.of_lines(current))
                current, size, extra = [], 0, len(line)
            current.append(line)
            size += extra
        if current:
            pieces.append(Batch.of_lines(current))
        return pieces

    def halves(self) -> tuple["Batch", "Batch"]:
        """The first and second half of the points (of a batch of two or more)."""
        lines = self.lines()
        half = len(lines) // 2
        return Batch.of_lines(lines[:half]), Batch.of_lines(lines[half:])


_TIMESTAMP = re.compile(rb"-?[0-9]{1,19}")
_INT64 = range(-(2**63) + 1, 2**63)


def point_time(point: bytes) -> int | None:
    """The timestamp ending an encoded point (after its last space), or None when it has none:
    a point without one ends with a field value, which follows a `=`."""
    space = point.rfind(b" ")
    tail = point[space + 1 :]
    if space < 0 or _TIMESTAMP.fullmatch(tail) is None:
        return None
    t = int(tail)
    return t if t in _INT64 else None


def points_time_span(points: Iterable[bytes]) -> tuple[int, int] | None:
    """The least and greatest timestamp of encoded points, or None when one has none."""
    times = []
    for point in points:
        t = point_time(point)
        if t is None:
            return None
        times.append(t)
    return (min(times), max(times)) if times else None


def tally() -> Tally:
    """A list the C encoders fill as they make lines, across calls: the least and greatest time
    (`[None, None, 0]` until they make one; read by `told_span`) and the newlines beyond one
    between each two lines (raw newlines inside string fields: then a body cannot be cut at
    every newline, see `Batch`)."""
    return [None, None, 0]


def told_span(told: Sequence[int | None] | None) -> tuple[int, int] | None:
    """The span a `tally` was told, or None."""
    if told is None or told[0] is None or told[1] is None:
        return None
    return told[0], told[1]


def body_time_span(data: bytes) -> tuple[int, int] | None:
    """`points_time_span` of a body of points one per line: in C when it is built (a 10,000-line
    body in about 0.4 ms, the GIL handed over), else in Python (the reference)."""
    module = speedups()
    if module is not None:
        span: tuple[int, int] | None = module.time_span(data)
        return span
    return points_time_span(data.split(b"\n"))


def scan_points(data: bytes) -> list[bytes]:
    """The points of raw line protocol, cut as InfluxDB 1.x's scanner (`models.scanLine`) cuts them.

    A newline ends a point unless it is escaped by a backslash or inside a string
    field value: after the first unescaped space (the field set), a `"` opens or
    closes a string when more `=` than `,` were seen outside quotes. Blank lines
    and lines starting with `#` (comments) are skipped, as the server skips them.
    """
    points: list[bytes] = []
    start = 0
    skip = -1  # the byte after a backslash is not special
    fields = quoted = False
    equals = commas = 0
    end = len(data)
    for match in _SCAN_SPECIAL.finditer(data):
        i = match.start()
        if i <= skip:
            continue
        byte = data[i]
        if byte == 0x5C:  # backslash: the server skips it and the next byte (not at the very end)
            if i + 2 < end:
                skip = i + 1
            continue
        if byte == 0x20:
            fields = True
        if fields and not quoted and byte == 0x3D:
            equals += 1
        elif fields and not quoted and byte == 0x2C:
            commas += 1
        elif fields and byte == 0x22 and equals > commas:
            quoted = not quoted
        elif byte == 0x0A and not quoted:
            _add_point(points, data[start:i])
            start, skip, fields, quoted, equals, commas = i + 1, -1, False, False, 0, 0
    _add_point(points, data[start:])
    return points


def _add_point(points: list[bytes], line: bytes) -> None:
    stripped = line.lstrip()
    if stripped.strip() and not stripped.startswith(b"#"):
        points.append(line)
