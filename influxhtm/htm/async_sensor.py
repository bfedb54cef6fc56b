"""`AsyncSensor` and `AsyncHtmModelStore`: the sensor and model-store facades for asyncio.

They make their batches, statements and rows with the sync facades' own pieces (a
`Sensor` without I/O as `core`, `sensor.values_query`, `combined.results_query`,
`combined.assemble`, the repositories' encoders) and await only the I/O, through
`AsyncRepository` and `AsyncDatabaseClient`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

from influxhtm.core.errors import ModelNotFound, ValidationError, check_name, check_positive_int
from influxhtm.core.times import from_ns, inclusive_range
from influxhtm.htm.combined import (
    CombinedData,
    _span,
    assemble,
    choose_models,
    results_by_model,
    results_query,
    values_from,
    values_query,
)
from influxhtm.htm.model_store import _htm_results, to_htm_result
from influxhtm.htm.sensor import Sensor, sensor_points
from influxhtm.influxql import Query, admin, col
from influxhtm.io.async_writing import chunks_of
from influxhtm.io.writing import UnmadeBatch
from influxhtm.model.data_layout import RESULT_KEYS, RESULT_SUFFIX, HtmResult, ModelRecord, SensorReading
from influxhtm.orm.async_repository import AsyncRepository
from influxhtm.orm.client import DatabaseClient

if TYPE_CHECKING:
    from influxhtm.orm.async_client import AsyncDatabaseClient


class AsyncSensor:
    """The series of `measurement` tagged `component=<component>` (see `Sensor`), for asyncio."""

    def __init__(self, client: AsyncDatabaseClient, measurement: str, component: str):
        self.client = client
        #: The sync sensor (its name checks and pieces; it does no I/O for this class).
        self.core = Sensor(cast(Any, client), measurement, component)
        self.measurement = self.core.measurement
        self.component = self.core.component
        self.repository = AsyncRepository(
            client, SensorReading, measurement=self.measurement, tags={"component": self.component},
            extra_tags=True,
        )

    def __repr__(self) -> str:
        return f"AsyncSensor(measurement={self.measurement!r}, component={self.component!r})"

    def __str__(self) -> str:
        return f"{self.measurement}/{self.component}"

    @property
    def result_measurement(self) -> str:
        return self.measurement + RESULT_SUFFIX

    def query(self, since: Any = None, until: Any = None, *, before: Any = None) -> Query:
        """The sensor's points as a query bound to its async repository (see `Sensor.query`)."""
        return self.repository.query().within(*inclusive_range(since, until, before))

    # -- writing -------------------------------------------------------------
    async def write(self, points: Any, *, batch_size: int = 10_000) -> int:
        """Store one point, many (a list, a generator, an async iterator) or a DataFrame; returns
        how many were written (see `Sensor.write`)."""
        if not isinstance(points, AsyncIterable):
            points = sensor_points(points)
        return await self.repository.add_all(points, batch_size, validate_first=True)

    # -- reading -------------------------------------------------------------
    async def get_data(
        self,
        since: Any = None,
        until: Any = None,
        limit: int | None = None,
        aggregation: str | None = None,
        agg: str = "mean",
        *,
        before: Any = None,
    ) -> list[SensorReading]:
        """Readings in ascending time (see `Sensor.get_data`)."""
        lo, hi = inclusive_range(since, until, before)
        return [
            SensorReading(time=from_ns(ns), value=float(value), component=self.component)
            for ns, value in await self._values(lo, hi, limit, aggregation, agg)
        ]

    async def _values(
        self, since: Any, until: Any, limit: int | None, aggregation: str | None, agg: str
    ) -> list[tuple[int, Any]]:
        """(time ns, value) pairs, ascending: `sensor.sensor_values` on the async transport."""
        query = self.query(since, until)
        found = None
        if aggregation is not None and not (query.has_lower_time_bound and query.has_upper_time_bound):
            found = await self.time_bounds_ns()
        statement = values_query(
            query, limit, aggregation, agg, lambda q: DatabaseClient.bounded(q, lambda: found)
        )
        series = await self.client.result_series(statement)
        return values_from((row for s in series for row in _time_value(s)), limit)

    async def iter_data(
        self, since: Any = None, until: Any = None, chunk_size: int = 10_000, *, before: Any = None
    ) -> AsyncIterator[SensorReading]:
        """`async for reading in sensor.iter_data(...)`: readings streamed in ascending time."""
        check_positive_int(chunk_size, "chunk_size")
        query = self.query(since, until, before=before).select("value")
        stream = self.client.stream_series(query, chunk_size)
        try:
            async for series in stream:
                for ns, value in _time_value(series):
                    if value is not None:
                        yield SensorReading(time=from_ns(ns), value=float(value), component=self.component)
        finally:
            await stream.aclose()

    def __aiter__(self) -> AsyncIterator[SensorReading]:
        """`async for reading in sensor`: every reading, ascending."""
        return self.iter_data()

    async def time_bounds_ns(self) -> tuple[int, int] | None:
        """First and last time in nanoseconds, or None for an empty sensor."""
        first = await self.client.rows(self.query().select("value").limit(1))
        if not first:
            return None
        last = await self.client.rows(self.query().select("value").order_by("time", "desc").limit(1))
        return first[0][0], last[0][0]

    async def count(self) -> int:
        from influxhtm.influxql import count

        row = await cast(Any, self.query().select(count("value")).first())
        return 0 if row is None else int(row.count)

    # -- models --------------------------------------------------------------
    def model_store(self, model_id: str) -> AsyncHtmModelStore:
        """The results store of model `model_id` (no I/O: the model need not be registered)."""
        return AsyncHtmModelStore(self, model_id)

    async def model_ids(self) -> list[str]:
        """The ids of the sensor's models: registered, or with results (as `Sensor.list_htm_models`)."""
        registry = AsyncRepository(
            self.client, ModelRecord, tags={"measurement": self.measurement, "component": self.component}
        )
        ids = {record.model_id for record in await registry.all(registry.query())}
        statement = admin.show_tag_values("id", self.result_measurement, col("component") == self.component)
        ids |= {row[1] for row in await self.client.rows(statement)}
        return sorted(ids)

    async def get_htm_model(self, model_id: str) -> AsyncHtmModelStore:
        """The store of an existing model, or ModelNotFound."""
        check_name(model_id, "model_id")
        if model_id not in await self.model_ids():
            raise ModelNotFound(f"no model {model_id!r} for sensor {self}")
        return AsyncHtmModelStore(self, model_id)

    async def get_combined_sensor_data(
        self,
        since: Any = None,
        until: Any = None,
        aggregation: str | None = None,
        agg: str = "mean",
        models: Iterable[str] | None = None,
        limit: int | None = None,
        *,
        before: Any = None,
    ) -> CombinedData:
        """The data with its models' results aligned by time (`Sensor.get_combined_sensor_data`)."""
        lo, hi = inclusive_range(since, until, before)
        model_ids = choose_models(self, await self.model_ids(), models)
        rows = await self._values(lo, hi, limit, aggregation, agg)
        span = _span(rows, lo, hi, aggregation)
        results = {}
        if rows and model_ids:
            statement = results_query(self, model_ids, span, aggregation)
            results = results_by_model(await self.client.result_series(statement))
        return assemble(self, rows, results, model_ids, aggregation)


class AsyncHtmModelStore:
    """Where one model's results for one sensor are stored and read back (see `HtmModelStore`)."""

    def __init__(self, sensor: AsyncSensor, model_id: str):
        self.sensor = sensor
        self.model_id = check_name(model_id, "model_id")
        self.results = AsyncRepository(
            sensor.client,
            HtmResult,
            measurement=sensor.result_measurement,
            tags={"component": sensor.component, "id": self.model_id},
        )

    def __repr__(self) -> str:
        return f"AsyncHtmModelStore({self.sensor}, id={self.model_id!r})"

    async def write_result(self, result: Any) -> HtmResult:
        htm_result = to_htm_result(result)
        await self.results.add(htm_result)
        return htm_result

    async def write_results(self, results: Any, *, batch_size: int = 5000) -> int:
        """Store many results (a list, a generator or an async iterator); `None` results are skipped
        (see `HtmModelStore.write_results`)."""
        if isinstance(results, (Mapping, HtmResult)) or not isinstance(results, Iterable | AsyncIterable):
            raise ValidationError({"results": [f"{results!r} is not an iterable of results"]})
        check_positive_int(batch_size, "batch_size")
        if isinstance(results, Sequence):
            converted = await asyncio.to_thread(_htm_results, results, 0)
            return await self.results.add_all(converted, batch_size=batch_size)
        return await self.results.add_all(self._converted(results, batch_size), batch_size=batch_size)

    async def _converted(
        self, results: Iterable[Any] | AsyncIterable[Any], batch_size: int
    ) -> AsyncIterator[HtmResult]:
        source = results if isinstance(results, AsyncIterable) else _aiter(results)
        offset = 0
        async for chunk in chunks_of(source, batch_size):
            try:
                converted = _htm_results(chunk, offset)
            except ValidationError as error:
                raise UnmadeBatch(error, len(chunk)) from None
            for result in converted:
                yield result
            offset += len(chunk)

    def query(self, since: Any = None, until: Any = None, *, before: Any = None) -> Query:
        return (
            self.results.query().select(*RESULT_KEYS.values()).within(*inclusive_range(since, until, before))
        )

    async def get_results(
        self, since: Any = None, until: Any = None, limit: int | None = None, *, before: Any = None
    ) -> list[HtmResult]:
        """Results in ascending time; `limit`: the latest N."""
        query = self.query(since, until, before=before)
        if limit is not None:
            query = query.order_by("time", "desc").limit(check_positive_int(limit, "limit"))
        results = await self.results.all(query)
        if limit is not None:
            results.reverse()
        return results

    def __aiter__(self) -> AsyncIterator[HtmResult]:
        """`async for result in store`: every result, ascending."""
        return self.query().__aiter__()

    async def count(self) -> int:
        from influxhtm.influxql import count

        row = await cast(Any, self.results.query().select(count("anomalyScore")).first())
        return 0 if row is None else int(row.count)


async def _aiter(items: Iterable[Any]) -> AsyncIterator[Any]:
    for item in items:
        yield item


def _time_value(series: Mapping[str, Any]) -> Iterator[tuple[int, Any]]:
    columns = series["columns"]
    t, v = columns.index("time"), columns.index("value")
    for row in series["values"]:
        yield row[t], row[v]
