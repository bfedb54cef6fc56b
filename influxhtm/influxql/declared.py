"""What the query builder needs to know about a declared measurement class."""

from __future__ import annotations

from typing import Any, Mapping

import attrs

from ..declarations import declaration, is_declared
from ..errors import ValidationError


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
