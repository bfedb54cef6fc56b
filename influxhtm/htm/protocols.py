"""What model stores and combined data use of a sensor, as a typing Protocol.

`influxhtm.htm.sensor.Sensor` is the facade that hands itself to model stores and combined data;
they name this surface instead of importing it, so imports in the htm domain go one way
(model stores, combined data -> sensor -> client).
"""

from __future__ import annotations

from typing import Any, Protocol

from influxhtm.influxql import Query
from influxhtm.orm.client import DatabaseClient


class SensorSeries(Protocol):
    """A sensor: the series of `measurement` tagged `component=<component>` in `client`'s database."""

    client: DatabaseClient
    measurement: str
    component: str

    @property
    def result_measurement(self) -> str: ...

    def query(self, since: Any = None, until: Any = None, *, before: Any = None) -> Query: ...

    def time_bounds_ns(self) -> tuple[int, int] | None: ...

    def list_htm_models(self) -> list[Any]: ...
