"""`AsyncInfluxHtmClient`: the client for asyncio applications, on the same core as the sync one.

Settings, statements, encoders, batching, answer decoding, retries, 413 splitting and
partial-write accounting are the sync client's own (`protocol`, `line_protocol`,
`repository`); only the transport (`async_connection` over `async_http`: h11 on asyncio
streams) and the waiting differ.

    async with ih.AsyncInfluxHtmClient("plant") as client:
        repo = client.repository(Reading)
        await repo.add_all(readings)            # a list, a generator or an async iterator
        rows = await repo.query().where(...).all()
        async for row in repo.query(): ...
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from typing import Any, Self, TypeVar

from influxhtm.core.errors import NotFound, QueryError, ValidationError
from influxhtm.influxql import Query, admin
from influxhtm.influxql.expressions import bound_parameters
from influxhtm.io.async_connection import AsyncConnection
from influxhtm.io.async_writing import AsyncBatchWriter, post_pipelined
from influxhtm.io.settings import Settings
from influxhtm.model.declarations import is_declared
from influxhtm.model.line_protocol import Batch
from influxhtm.model.row_mappers import from_results
from influxhtm.orm.client import ClientCore, _database_not_found, _row_dicts, _rows_frame

T = TypeVar("T")

__all__ = ["AsyncDatabaseClient", "AsyncBatchWriter", "post_pipelined"]


class AsyncDatabaseClient(ClientCore):
    """Repositories and sensors over one InfluxDB database, for asyncio (`async with`).

    The arguments and settings are those of `InfluxHtmClient` (arguments, then `INFLUX_*`),
    and so are the errors. `max_connections` (default 100): at most this many requests travel
    at once (concurrent queries share a pool of keep-alive connections). The constructor,
    `from_settings` and the creation of a missing database are the sync client's (`ClientCore`).
    """

    connection: AsyncConnection
    transport_options = ("max_connections",)

    def _connect(self, settings: Settings, **transport: Any) -> AsyncConnection:
        return AsyncConnection(settings, **transport)

    async def aclose(self) -> None:
        await self.connection.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- database ------------------------------------------------------------
    async def create_database(self) -> None:
        """Create the database (nothing happens if it exists); needs admin rights."""
        await self.execute(admin.create_database(self.database))

    async def drop_database(self) -> None:
        await self.execute(admin.drop_database(self.database))

    async def ping(self) -> str:
        """The server's version (raises InfluxConnectionError when unreachable)."""
        return await self.connection.ping()

    # -- the one place queries and writes go through ---------------------------
    async def write_lines(self, lines: Sequence[str] | Batch, *, retention_policy: str | None = None) -> None:
        """POST encoded points, or a `Batch` (see `InfluxHtmClient.write_lines`)."""
        if not len(lines):
            return
        batch = lines if isinstance(lines, Batch) else Batch.of_lines(lines)
        await self._on_database(
            lambda: self.connection.write(batch, database=self.database, retention_policy=retention_policy)
        )

    async def _on_database(self, action: Callable[[], Awaitable[T]]) -> T:
        """Run `action`; a missing database is created (with `create`) and `action` run once more,
        as `InfluxHtmClient._on_database` does."""
        try:
            return await action()
        except (NotFound, QueryError) as error:
            if not _database_not_found(error):
                raise
        with self._creating_missing():
            await self.create_database()
        return await action()

    async def execute(self, statement: Any) -> list[dict[str, Any]]:
        """Run a Query or admin Statement; returns the statement results (a read of an absent
        database is empty)."""
        text, params = statement.render()
        reads = getattr(statement, "method", "GET") == "GET"
        try:
            return await self.connection.query(text, params=params, database=self.database)
        except QueryError as error:
            if reads and _database_not_found(error):
                return []
            raise

    async def result_series(self, query: Any) -> list[dict[str, Any]]:
        """The series of a query's answer (`name`, `tags`, `columns`, `values`)."""
        return [s for result in await self.execute(query) for s in result.get("series", [])]

    async def query(self, text: str, params: Mapping[str, Any] | None = None, *, as_: Any = None) -> Any:
        """Hand-written InfluxQL with bound parameters (see `InfluxHtmClient.query`)."""
        if not isinstance(text, str) or not text.strip():
            raise ValidationError({"text": [f"{text!r} is not an InfluxQL statement"]})
        statement = admin.Statement(text, bound_parameters(params))
        if as_ is None or as_ == "dataframe":
            rows = [row for series in await self.result_series(statement) for row in _row_dicts(series)]
            return rows if as_ is None else _rows_frame(rows)
        if isinstance(as_, type) and is_declared(as_):
            return from_results(as_, await self.execute(statement))
        raise ValidationError({"as_": [f"{as_!r} is not None, 'dataframe' or a declared class"]})

    async def rows(self, query: Any) -> list[list[Any]]:
        """All rows of all series."""
        return [row for series in await self.result_series(query) for row in series["values"]]

    async def stream_series(
        self, query: Query, chunk_size: int = 10_000
    ) -> AsyncGenerator[dict[str, Any], None]:
        """The series of a large answer as they arrive in chunks; a database not yet written is empty."""
        text, params = query.render()
        chunks = self.connection.query_chunks(
            text, params=params, database=self.database, chunk_size=chunk_size
        )
        try:
            async for result in chunks:
                for series in result.get("series", []):
                    yield series
        except QueryError as error:
            if not _database_not_found(error):
                raise
        finally:
            await chunks.aclose()

    # -- repositories, sensors, writers ----------------------------------------
    def repository(
        self,
        cls: type,
        *,
        measurement: str | None = None,
        tags: Mapping[str, str] | None = None,
        extra_tags: bool = False,
    ) -> Any:
        """An `AsyncRepository` of a declared class (see `InfluxHtmClient.repository`)."""
        from influxhtm.orm.async_repository import AsyncRepository

        return AsyncRepository(self, cls, measurement=measurement, tags=tags, extra_tags=extra_tags)

    def batch_writer(self, target: Any, *, size: int = 5000, interval: float = 1.0) -> AsyncBatchWriter:
        """A writer for services: `await writer.add(obj)` buffers, and the buffer is written to `target`
        (an async repository or sensor) when it holds `size` points, every `interval` seconds, and on
        exit (`async with`)."""
        return AsyncBatchWriter(target, size=size, interval=interval)
