"""`AsyncInfluxHtmClient`: the async database client (`orm.async_client`) with sensors, as
`htm.client.InfluxHtmClient` is the sync one's."""

from __future__ import annotations

from influxhtm.htm.async_sensor import AsyncSensor
from influxhtm.orm.async_client import AsyncDatabaseClient


class AsyncInfluxHtmClient(AsyncDatabaseClient):
    """Repositories and sensors over one InfluxDB database, for asyncio (`async with`)."""

    def create_sensor(self, measurement: str, component: str) -> AsyncSensor:
        """An `AsyncSensor` for `measurement` and `component`; nothing is written yet."""
        return AsyncSensor(self, measurement, component)
