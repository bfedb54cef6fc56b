"""`AsyncRepository`: a `Repository` for asyncio, on the same encoders, batches and row mappers.

The sync `Repository` (its `core` here) makes the batches, the queries and the rows;
this class only awaits the I/O: `await repo.add_all(objects)` (a list, a generator or an
async iterator, streamed and pipelined), and queries bound to it: `await q.all()`,
`await q.first()`, `await q.count()`, `await q.exists()`, `await q.to_dataframe()`,
`async for row in q`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

from influxhtm.core.errors import InfluxHtmError, ValidationError, check_positive_int
from influxhtm.influxql import Query, admin
from influxhtm.io.async_writing import batches_in_thread, batches_of_async, post_pipelined
from influxhtm.io.writing import UnmadeBatch
from influxhtm.model.line_protocol import Batch
from influxhtm.orm.client import DatabaseClient
from influxhtm.orm.repository import (
    Repository,
    count_from,
    count_query,
    data_bounds_query,
    frame_of,
    typed_rows,
)

if TYPE_CHECKING:
    import pandas



class AsyncRepository:
    """Objects of one declared class in `measurement` with the fixed `tags` (see `Repository`)."""

    def __init__(
        self,
        client: Any,  # an AsyncDatabaseClient (it makes its repositories: named loosely, no cycle)
        cls: type,
        measurement: str | None = None,
        tags: Mapping[str, str] | None = None,
        *,
        extra_tags: bool = False,
    ):
        self.client = client
        #: The sync repository's encoders, batches and queries (it does no I/O for this class).
        self.core: Repository[Any] = Repository(
            cast(Any, client), cls, measurement=measurement, tags=tags, extra_tags=extra_tags
        )
        self.cls = cls
        self.declaration = self.core.declaration
        self.measurement = self.core.measurement
        self.tags = self.core.tags

    def __repr__(self) -> str:
        return "Async" + repr(self.core)

    @property
    def encoder(self) -> Callable[..., str]:
        return self.core.encoder

    def line(self, obj: Any) -> str:
        return self.core.line(obj)

    # -- writing -------------------------------------------------------------
    async def add(self, obj: Any) -> None:
        await self.add_all([obj])

    async def add_all(
        self,
        objects: Iterable[Any] | AsyncIterable[Any],
        batch_size: int = 10_000,
        *,
        validate_first: bool = False,
        connections: int | None = None,
    ) -> int:
        """Write objects in batches (validated before each leaves; the next made while one travels);
        returns how many were written. `objects`: a list, a generator or an async iterator.
        `validate_first`: a list is validated whole first (see `Repository.make_batches`).
        `connections`: batches travelling at once, as `Repository.add_all`."""
        check_positive_int(batch_size, "batch_size")
        if isinstance(objects, (self.cls, Mapping)):
            raise ValidationError({"objects": ["give an iterable of objects (use add() for one)"]})
        if isinstance(objects, AsyncIterable):
            batches = batches_of_async(objects, batch_size, self._chunk_batches)
            total = None
        else:
            made = await asyncio.to_thread(
                self.core.make_batches, objects, batch_size, validate_first=validate_first
            )
            batches = batches_in_thread(made)
            total = len(objects) if isinstance(objects, Sequence) else None
        return await post_pipelined(
            self.client, batches, total=total, retention_policy=self.declaration.retention_policy,
            connections=connections,
        )

    def _chunk_batches(self, chunk: list[Any], offset: int) -> list[Batch]:
        try:
            return list(self.core.make_batches(chunk, len(chunk), offset=offset))
        except UnmadeBatch:
            raise
        except ValidationError as error:
            raise UnmadeBatch(error, len(chunk)) from None

    # -- reading -------------------------------------------------------------
    def query(self) -> Query:
        """A query of this measurement bound to this repository (`await q.all()`, `async for`)."""
        return self.core.query().bind(cast(Any, self))

    async def statement(self, query: Query) -> Query:
        """The query as it is sent (a time-grouped one gets its open ends set to the data)."""
        if query.interval is None or (query.has_lower_time_bound and query.has_upper_time_bound):
            return query
        found = await self._data_bounds(query)
        return DatabaseClient.bounded(query, lambda: found)

    async def _data_bounds(self, query: Query) -> tuple[int, int] | None:
        base = data_bounds_query(query)
        first = await self.client.rows(base)
        if not first:
            return None
        last = await self.client.rows(base.order_by("time", "desc"))
        return first[0][0], last[0][0]

    def iter_query(self, query: Query) -> Any:
        raise InfluxHtmError("this query is bound to an async repository: use `async for` or `await q.all()`")

    async def aiter_query(self, query: Query, chunk_size: int = 10_000) -> AsyncIterator[Any]:
        """Stream the results: instances for plain selects, typed rows otherwise."""
        query = await self.statement(query)
        if self.core.gives_typed_rows(query):
            for row in typed_rows(await self.client.result_series(query)):
                yield row
            return
        mapper = self.core.instance_mapper()
        series_stream = self.client.stream_series(query, chunk_size)
        try:
            async for series in series_stream:
                for item in mapper.rows(series):
                    yield item
        finally:
            await series_stream.aclose()

    async def all(self, query: Query) -> list[Any]:
        return [item async for item in self.aiter_query(query)]

    async def first(self, query: Query) -> Any:
        """The first result, or None."""
        items = await self.all(query.limit(1) if query.limit_value is None else query)
        return items[0] if items else None

    async def count(self, query: Query) -> int:
        return count_from(await self.client.result_series(count_query(query)))

    async def exists(self, query: Query) -> bool:
        return await self.first(query) is not None

    async def to_dataframe(self, query: Query) -> pandas.DataFrame:
        """The results as a DataFrame with a UTC `time` index."""
        return frame_of(await self.all(query))

    # -- dropping ------------------------------------------------------------
    async def drop(self) -> None:
        """Drop the whole measurement."""
        await self.client.execute(admin.drop_measurement(self.measurement))
