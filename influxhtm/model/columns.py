"""What a declared class stores: its columns (time, tags, fields) and the `Declaration` describing it.

The lowest module of the model layer: the line encoder, the schema and the row mappers are generated
from a `Declaration` (and kept on it, `Declaration.generated`); `declarations` makes one per class.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime, timedelta
from typing import Any, Callable, Optional

import attrs

from influxhtm.core.errors import ValidationError, show_value
from influxhtm.core.times import EPOCH, MAX_NS, MIN_NS, from_ns, to_ns

__all__ = ["Column", "Declaration", "FIELD", "TAG", "TIME", "convert_time", "declaration", "is_declared"]

TIME = "time"
TAG = "tag"
FIELD = "field"
FIELD_TYPES = (float, int, bool, str)

#: The earliest and latest instants with whole microseconds that InfluxDB can store.
MIN_TIME = EPOCH + timedelta(microseconds=-(-MIN_NS // 1000))
MAX_TIME = EPOCH + timedelta(microseconds=MAX_NS // 1000)


# -- the description -----------------------------------------------------------
@attrs.frozen
class Column:
    """One declared attribute: its Python name, InfluxDB key, kind and value type."""

    attr: str
    key: str
    kind: str  # "time", "tag" or "field"
    type: Any  # float, int, bool, str, datetime (the time) or an Enum subclass
    optional: bool = False

    @property
    def is_enum(self) -> bool:
        return isinstance(self.type, type) and issubclass(self.type, enum.Enum)


@attrs.frozen
class Declaration:
    """What a declared class stores: measurement, retention policy, time, tags, fields."""

    cls: type
    measurement: str
    retention_policy: Optional[str]
    naive_times: Optional[str]
    time: Column
    tags: tuple[Column, ...]
    fields: tuple[Column, ...]
    _lookup: dict[str, Column] = attrs.field(eq=False, repr=False, hash=False)
    #: Code generated for this class (encoders per measurement and fixed tags, row mappers, its
    #: schema), made once and kept here, so it lives exactly as long as the class (see `codegen`).
    generated: dict[Any, Any] = attrs.field(factory=dict, eq=False, repr=False, hash=False)

    def generated_once(self, key: Any, make: Callable[[], Any]) -> Any:
        """`make()` the first time `key` is asked for, then the same object."""
        try:
            return self.generated[key]
        except KeyError:
            value = self.generated[key] = make()
            return value

    @property
    def columns(self) -> tuple[Column, ...]:
        """Time, then tags, then fields, in declaration order."""
        return (self.time, *self.tags, *self.fields)

    def column(self, key_or_attr: str) -> Column:
        """The column with this InfluxDB key or Python attribute name."""
        try:
            return self._lookup[key_or_attr]
        except (KeyError, TypeError):
            known = ", ".join(c.attr if c.attr == c.key else f"{c.attr} ({c.key})" for c in self.columns)
            raise ValidationError(
                {key_or_attr: [f"{key_or_attr!r} is not a column of {self.cls.__name__} (columns: {known})"]}
            ) from None


def declaration(cls_or_obj: Any) -> Declaration:
    """The declaration of a declared class or of one of its instances."""
    cls = cls_or_obj if isinstance(cls_or_obj, type) else type(cls_or_obj)
    decl = cls.__dict__.get("__influxhtm__")
    if not isinstance(decl, Declaration):
        raise ValidationError(
            {"cls": [f"{cls.__qualname__} is not a declared measurement: decorate it with @measurement(...)"]}
        )
    return decl


def is_declared(cls_or_obj: Any) -> bool:
    """Whether this class (or the class of this object) was declared with `@measurement`."""
    cls = cls_or_obj if isinstance(cls_or_obj, type) else type(cls_or_obj)
    return isinstance(cls.__dict__.get("__influxhtm__"), Declaration)


def _fail(name: str, value: Any, reason: str) -> ValidationError:
    return ValidationError({name: [f"{show_value(value)} {reason}"]})


def convert_time(value: Any, name: str = TIME, naive: Optional[str] = None) -> datetime:
    """A UTC-aware datetime within InfluxDB's range from any accepted time."""
    if value.__class__ is datetime and value.tzinfo is UTC:
        result = value
    else:
        if value is None:
            raise _fail(
                name, value, "is not a time: give a datetime, an ISO 8601 text or integer nanoseconds"
            )
        result = from_ns(to_ns(value, name=name, naive=naive))
    if MIN_TIME <= result <= MAX_TIME:
        return result
    raise _fail(name, value, "is outside InfluxDB's time range (1677-09-21 to 2262-04-11)")
