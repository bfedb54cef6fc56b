"""Which sensors a fleet runs, and which worker runs each: `Selector` and `owner_of`.

A sensor is a series key ``(measurement, component)``. A `Selector` says which
ones a fleet keeps a model for: measurement names, a regular expression of
measurement names, and tag filters (``tag=value`` on the series). Model results
(``<measurement>_model`` series with an ``id`` tag) and the model registry are
never sensors, so a fleet never models its own output.

`owner_of` places a sensor on one of the workers by rendezvous hashing (the
highest SHA-1 of worker and sensor): stable across processes and runs, and when
a worker joins or leaves only the sensors it gains or loses move.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs

from influxhtm.core.errors import ValidationError
from influxhtm.model.data_layout import REGISTRY_MEASUREMENT, RESULT_SUFFIX

#: A sensor: (measurement, component).
SensorKey = tuple[str, str]


def _names(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = (value,)
    names = tuple(value)
    for name in names:
        if not isinstance(name, str) or not name:
            raise ValidationError({"measurements": [f"{name!r} is not a measurement name"]})
    return names


def _pattern(value: Any) -> re.Pattern[str] | None:
    if value is None or isinstance(value, re.Pattern):
        return value
    try:
        return re.compile(value)
    except (re.error, TypeError) as error:
        raise ValidationError({"regex": [f"{value!r} is not a regular expression: {error}"]}) from None


def _tags(value: Any) -> dict[str, str]:
    tags = dict(value or {})
    for key, tag_value in tags.items():
        if not isinstance(key, str) or not key or not isinstance(tag_value, str) or not tag_value:
            raise ValidationError({"tags": [f"{key!r}={tag_value!r} is not a tag filter (text=text)"]})
    return tags


@attrs.frozen
class Selector:
    """The sensors of a fleet: measurements named, or matching `regex` (full match), with these tags."""

    measurements: tuple[str, ...] = attrs.field(default=(), converter=_names)
    regex: re.Pattern[str] | None = attrs.field(default=None, converter=_pattern)
    tags: Mapping[str, str] = attrs.field(factory=dict, converter=_tags)

    def __attrs_post_init__(self) -> None:
        if not self.measurements and self.regex is None:
            raise ValidationError({"selector": ["name measurements, or a regex of measurement names"]})

    def measurement_matches(self, measurement: str) -> bool:
        if measurement == REGISTRY_MEASUREMENT:
            return False
        if measurement in self.measurements:
            return True
        return self.regex is not None and self.regex.fullmatch(measurement) is not None

    def matches(self, measurement: str, tags: Mapping[str, str]) -> bool:
        """A pushed or listed series is a sensor of the fleet (results and the registry never are)."""
        if "component" not in tags or not self.measurement_matches(measurement):
            return False
        if measurement.endswith(RESULT_SUFFIX) and "id" in tags:
            return False  # a model's results, maybe this fleet's own
        return all(tags.get(key) == value for key, value in self.tags.items())

    def discover(self, client: Any) -> set[SensorKey]:
        """The sensors in the database now (series read from the server)."""
        from influxhtm.running.subscription import parse_line

        if self.regex is None:
            names: Iterable[str] = self.measurements
        else:
            names = [m for m in client.measurements() if self.measurement_matches(m)]
        found: set[SensorKey] = set()
        for measurement in names:
            for key in client.series(measurement, **self.tags):
                point = parse_line(f"{key} value=0")
                if point is not None and self.matches(point.measurement, point.tags):
                    found.add((point.measurement, point.tags["component"]))
        return found


def _score(worker: str, key: SensorKey) -> int:
    digest = hashlib.sha1(f"{worker}\n{key[0]}\n{key[1]}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def owner_of(key: SensorKey, workers: Sequence[str]) -> str:
    """The worker that runs sensor `key` (rendezvous hashing: stable, minimal moves)."""
    if not workers:
        raise ValidationError({"workers": ["no worker to place sensors on"]})
    return max(workers, key=lambda worker: _score(worker, key))


def partition(keys: Iterable[SensorKey], workers: Sequence[str]) -> dict[str, set[SensorKey]]:
    """Every worker's sensors."""
    shares: dict[str, set[SensorKey]] = {worker: set() for worker in workers}
    for key in keys:
        shares[owner_of(key, workers)].add(key)
    return shares


__all__ = ["Selector", "SensorKey", "owner_of", "partition"]
