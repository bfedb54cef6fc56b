"""Marshmallow schemas generated from declared classes: load mappings into instances, dump to JSON.

`schema_for(cls)` is a marshmallow `Schema` instance with one field per
attribute (Python attribute names): `FiniteFloat` (a `Float` refusing NaN and infinities), `Integer` within
int64, `Boolean`, `String`, `Enum` (by value), and a time field that takes an
aware `datetime`, ISO 8601 text (with an offset or `Z`) or integer nanoseconds.
Its `load` returns an instance (the class's own validation runs too); `dump`
gives a JSON-ready dict with times as ISO 8601 UTC text with microseconds and
`Z`, which loads back to an equal object.

Loading accepts the InfluxDB key of a column as well as its attribute name
(`anomalyScore` or `anomaly_score`). Errors are keyed by attribute name.

Loading is strict by default: a Python value must already have the declared
type (`"5"` is not an int). Text from outside (CSV cells, form fields, query
strings) goes through `load(..., coerce=True)` (`Cls.load(row, coerce=True)`),
which first reads each *text* value as its column's type: `"5"` for an int,
`"2.5"` for a float, `"true"`/`"yes"`/`"1"` (or `"false"`/`"no"`/`"0"`, also
`t`/`f`, `y`/`n`, `on`/`off`, any case) for a bool, integer nanoseconds or ISO
8601 for the time, and an empty (or blank) cell as *absent* (None for an
optional column, "missing" for a required one). Values that are not text are
loaded strictly as always.
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Any, Iterable, Mapping

import attrs
import marshmallow
from marshmallow import fields as mf
from marshmallow import validate as mv

from influxhtm.core.errors import ValidationError, show_value
from influxhtm.model import line_protocol as lp
from influxhtm.model.columns import FIELD, TAG, TIME, Column, Declaration, convert_time, declaration

__all__ = ["FiniteFloat", "TimeField", "dump", "format_time", "load", "load_many", "schema_for"]

_UNKNOWN = {"raise": marshmallow.RAISE, "exclude": marshmallow.EXCLUDE}


def format_time(value: datetime) -> str:
    """ISO 8601 UTC text with microseconds and `Z`, e.g. `2024-01-31T12:00:00.000000Z`."""
    return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class TimeField(mf.Field):
    """A time: aware datetime, ISO 8601 text or integer nanoseconds in; ISO 8601 UTC text out."""

    def __init__(self, *, naive: str | None = None, **kwargs: Any):
        self.naive = naive
        super().__init__(**kwargs)

    def _serialize(self, value: Any, attr: Any, obj: Any, **kwargs: Any) -> Any:
        return None if value is None else format_time(value)

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> datetime:
        try:
            return convert_time(value, attr or "time", self.naive)
        except ValidationError as error:
            raise marshmallow.ValidationError(_messages(error)) from None


class FiniteFloat(mf.Float):
    """A float that line protocol can carry: NaN and infinities are refused, naming the value."""

    def __init__(self, **kwargs: Any):
        super().__init__(allow_nan=True, **kwargs)  # checked below, with the value in the message

    def _validated(self, value: Any) -> float:
        number = super()._validated(value)
        if not math.isfinite(number):
            raise self.make_error("special", input=value)
        return number


def _messages(error: ValidationError) -> list[str]:
    return [str(m) for messages in error.errors.values() for m in messages] or [str(error)]


def _line_protocol_check(column: Column) -> Any:
    """A marshmallow validator refusing text line protocol cannot carry."""
    check = lp.tag_value_problem if column.kind == TAG else lp.string_field_problem

    def validator(value: Any) -> None:
        text = value.value if column.is_enum else value
        problem = check(text) if isinstance(text, str) else None
        if problem:
            raise marshmallow.ValidationError(f"{show_value(text)} {problem}")

    return validator


def _field_for(column: Column, decl: Declaration, attribute: Any) -> mf.Field:
    """The marshmallow field of one declared column."""
    options: dict[str, Any] = {"allow_none": column.optional}
    options["required"] = attribute.default is attrs.NOTHING
    if column.kind == TIME:
        return TimeField(naive=decl.naive_times, **options)
    if column.is_enum:
        field: mf.Field = mf.Enum(column.type, by_value=True, **options)
    elif column.type is float:
        field = FiniteFloat(
            error_messages={
                "invalid": "{input!r} is not a float",
                "special": "{input!r} is not a finite number",
            },
            **options,
        )
    elif column.type is int:
        field = mf.Integer(
            strict=True,
            validate=mv.Range(
                lp.INT64_MIN, lp.INT64_MAX, error="{input} is outside the 64-bit integer range"
            ),
            error_messages={"invalid": "{input!r} is not an int"},
            **options,
        )
    elif column.type is bool:
        field = mf.Boolean(error_messages={"invalid": "{input!r} is not a bool"}, **options)
    else:
        field = mf.String(error_messages={"invalid": "{input!r} is not a str"}, **options)
    if column.kind in (TAG, FIELD) and (column.type is str or column.is_enum):
        field.validators.append(_line_protocol_check(column))
    return field


class _DeclaredSchema(marshmallow.Schema):
    """Base of generated schemas: InfluxDB keys accepted on load, instances built on load."""

    _declaration: Declaration

    @marshmallow.pre_load
    def _rename_keys(self, data: Any, **kwargs: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        decl = self._declaration
        renamed: dict[str, Any] = {}
        for key, value in data.items():
            column = decl._lookup.get(key) if isinstance(key, str) else None
            attr = column.attr if column is not None else key
            if attr in renamed:
                raise marshmallow.ValidationError(
                    {attr: [f"given twice (as {attr!r} and as its InfluxDB key {column.key!r})"]}  # type: ignore[union-attr]
                )
            renamed[attr] = value
        return renamed

    @marshmallow.post_load
    def _make_instance(self, data: dict[str, Any], **kwargs: Any) -> Any:
        try:
            return self._declaration.cls(**data)
        except ValidationError as error:
            raise marshmallow.ValidationError(error.errors) from None


def schema_for(cls: type) -> marshmallow.Schema:
    """The marshmallow schema instance of a declared class (generated once, cached)."""
    decl = declaration(cls)
    return decl.generated_once("schema", lambda: _generate_schema(decl))


def _generate_schema(decl: Declaration) -> marshmallow.Schema:
    """A schema class of its own (kept out of marshmallow's global class registry) and its instance."""
    attributes = {a.name: a for a in attrs.fields(decl.cls)}
    body: dict[str, Any] = {
        column.attr: _field_for(column, decl, attributes[column.attr]) for column in decl.columns
    }
    body["_declaration"] = decl
    body["Meta"] = type("Meta", (), {"register": False})
    schema_cls = type(f"{decl.cls.__name__}Schema", (_DeclaredSchema,), body)
    return schema_cls()


def load(cls: type, data: Any, *, unknown: str = "raise", coerce: bool = False) -> Any:
    """An instance of `cls` from a mapping, validated; raises ValidationError keyed by field.

    `coerce=True` reads text values as their column's type first (see the module docstring)."""
    schema = schema_for(cls)
    if coerce:
        data = coerce_text(declaration(cls), data)
    try:
        return schema.load(data, unknown=_unknown(unknown))
    except marshmallow.ValidationError as error:
        messages = error.messages if isinstance(error.messages, dict) else {"_schema": error.messages}
        raise ValidationError(_plain(messages)) from None


def load_many(
    cls: type, items: Iterable[Any], *, unknown: str = "raise", coerce: bool = False
) -> list[Any]:
    """Instances from many mappings; every problem is reported at once, `errors[index][field]`."""
    if isinstance(items, (str, bytes, Mapping)):
        raise ValidationError({"_schema": [f"expected a list of mappings, not {type(items).__name__}"]})
    schema = schema_for(cls)
    mode = _unknown(unknown)
    results: list[Any] = []
    errors: dict[int, Any] = {}
    decl = declaration(cls)
    for index, item in enumerate(items):
        try:
            results.append(schema.load(coerce_text(decl, item) if coerce else item, unknown=mode))
        except ValidationError as error:
            errors[index] = error.errors
        except marshmallow.ValidationError as error:
            messages = error.messages if isinstance(error.messages, dict) else {"_schema": error.messages}
            errors[index] = _plain(messages)
    if errors:
        raise ValidationError(errors)
    return results


_TRUE = frozenset({"true", "t", "yes", "y", "1", "on"})
_FALSE = frozenset({"false", "f", "no", "n", "0", "off"})
_INT_TEXT = re.compile(r"[+-]?\d+")


def coerce_text(decl: Declaration, data: Any) -> Any:
    """`data` with each text value read as its column's type; a blank text is left out (absent).

    Unknown keys and values that are not text are kept as they are (the strict load judges them).
    Raises ValidationError naming every text that is not of its column's type.
    """
    if not isinstance(data, Mapping):
        return data
    out: dict[Any, Any] = {}
    errors: dict[str, list[str]] = {}
    for key, value in data.items():
        column = decl._lookup.get(key) if isinstance(key, str) else None
        if column is None or not isinstance(value, str):
            out[key] = value
            continue
        if not value.strip():
            continue  # an empty cell: absent
        try:
            out[key] = _from_text(column, value)
        except ValueError as error:
            errors[column.attr] = [f"{lp._show(value)} {error}"]
    if errors:
        raise ValidationError(errors)
    return out


def _from_text(column: Column, text: str) -> Any:
    """The value of `text` for `column` (tags, str fields and enums keep their text as is)."""
    kind = column.type
    if column.kind == TIME:
        stripped = text.strip()
        return int(stripped) if _INT_TEXT.fullmatch(stripped) else stripped
    if column.is_enum or kind is str:
        return text
    stripped = text.strip()
    if kind is bool:
        lowered = stripped.lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ValueError("is not a bool (true/false, yes/no, 1/0, on/off)")
    if kind is int:
        if not _INT_TEXT.fullmatch(stripped):
            raise ValueError("is not an int")
        return int(stripped)
    try:
        return float(stripped)
    except ValueError:
        raise ValueError("is not a float") from None


def dump(obj: Any) -> dict[str, Any]:
    """A JSON-ready dict of a declared object, keyed by attribute name."""
    return schema_for(type(obj)).dump(obj)


def _unknown(mode: str) -> Any:
    try:
        return _UNKNOWN[mode]
    except KeyError:
        raise ValidationError({"unknown": [f"{mode!r} is not 'raise' or 'exclude'"]}) from None


def _plain(messages: Mapping[Any, Any]) -> dict[Any, Any]:
    """Marshmallow's messages with every leaf a list of str."""
    out: dict[Any, Any] = {}
    for key, value in messages.items():
        if isinstance(value, Mapping):
            out[key] = _plain(value)
        elif isinstance(value, (list, tuple)):
            out[key] = [str(v) for v in value]
        else:
            out[key] = [str(value)]
    return out
