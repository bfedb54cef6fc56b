"""`Declared`: the base class that tells type checkers what `@measurement` gives a class.

A type checker reads `@ih.measurement(...)` through `typing.dataclass_transform`: it knows
the keyword-only `__init__` from the `tag()`, `field()` and `timestamp()` attributes, and that
the instances are frozen. It cannot see methods a decorator adds, so a class that should
have `Cls.load`, `Cls.load_many` and `obj.dump` typed derives from `Declared`::

    @ih.measurement("climate")
    class Climate(ih.Declared):
        time: datetime = ih.timestamp()
        site: str = ih.tag()
        temperature: float = ih.field()

    reading = Climate.load({"time": "2024-05-01T00:00:00Z", "site": "north", "temperature": 21.5})
    # a Climate for mypy, pyright and at run time

At run time the decorator adds the same methods to every declared class, with or without
this base; the base adds no attribute and no state (empty `__slots__`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Self, cast

__all__ = ["Declared"]


class Declared:
    """Base class of a declared measurement, for type checkers (see the module's text)."""

    __slots__ = ()

    @classmethod
    def load(cls, data: Mapping[str, Any], *, unknown: str = "raise", coerce: bool = False) -> Self:
        """An instance from a mapping (keys: attribute names or InfluxDB keys), validated;
        `coerce=True` reads text values (CSV cells) as their column's type."""
        from influxhtm.model.schema import load

        return cast(Self, load(cls, data, unknown=unknown, coerce=coerce))

    @classmethod
    def load_many(
        cls, items: Iterable[Mapping[str, Any]], *, unknown: str = "raise", coerce: bool = False
    ) -> list[Self]:
        """Instances from many mappings; every problem is reported at once, keyed by index."""
        from influxhtm.model.schema import load_many

        return load_many(cls, items, unknown=unknown, coerce=coerce)

    def dump(self) -> dict[str, Any]:
        """A JSON-ready dict keyed by attribute name (time as ISO 8601 UTC text)."""
        from influxhtm.model.schema import dump

        return dump(self)
