"""What the query builder needs to know about a declared measurement class."""

from __future__ import annotations

import difflib
from typing import Any, Mapping

import attrs

from influxhtm.core.errors import ValidationError
from influxhtm.model.declarations import declaration, is_declared


@attrs.frozen
class ClassInfo:
    """Measurement, retention policy, and the InfluxDB keys of the tags and fields of a declared class."""

    measurement: str
    retention_policy: str | None = None
    fields: frozenset[str] = frozenset()
    tags: frozenset[str] = frozenset()
    names: Mapping[str, str] = attrs.field(factory=dict)  # Python attribute name -> InfluxDB key

    def influx_name(self, name: str) -> str:
        """The InfluxDB key of a Python attribute name (a key is returned as it is)."""
        return self.names.get(name, name)

    def resolve(self, name: str, *, what: str) -> str:
        """The InfluxDB key `name` stands for (a key, or a Python attribute name, or `time`);
        a name the class does not declare raises ValidationError naming the known columns and
        the closest match. `what` names the clause in the error."""
        if name == "time" or name in self.fields or name in self.tags:
            return name
        if name in self.names:
            return self.names[name]
        known = sorted(self.tags | self.fields)
        close = difflib.get_close_matches(name, [*known, *self.names], n=1)
        hint = f"; did you mean {self.influx_name(close[0])!r}?" if close else ""
        raise ValidationError(
            {
                what: [
                    f"{name!r} is not a column of measurement {self.measurement!r}{hint} "
                    f"(known columns: {', '.join(known)}, and time; col({name!r}, checked=False) "
                    "names an undeclared column)"
                ]
            }
        )


def describe_class(cls: Any) -> ClassInfo:
    """The `ClassInfo` of a declared class; ValidationError when `cls` is not declared."""
    if not is_declared(cls):
        raise ValidationError(
            {"measurement": [f"{cls!r} is neither a measurement name nor a class declared with @measurement"]}
        )
    decl = declaration(cls)
    return ClassInfo(
        measurement=decl.measurement,
        retention_policy=decl.retention_policy,
        fields=frozenset(c.key for c in decl.fields),
        tags=frozenset(c.key for c in decl.tags),
        names={c.attr: c.key for c in decl.columns},
    )
