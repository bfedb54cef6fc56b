"""The client's read/write surface as typing Protocols.

The write pipeline (`writing`) and repositories need a client to write lines to and read series
from; they name this surface instead of importing `InfluxHtmClient`, so imports go one way
(io -> orm -> htm domain) and the client may hand itself to them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterator, Protocol, Sequence

if TYPE_CHECKING:
    from influxhtm.influxql import Query
    from influxhtm.io.settings import Settings
    from influxhtm.model.line_protocol import Batch


class LineWriter(Protocol):
    """Where the write pipeline sends batches: one database of one server."""

    database: str
    settings: Settings

    def write_lines(self, lines: Sequence[str] | Batch, *, retention_policy: str | None = None) -> None: ...


class ClientSession(LineWriter, Protocol):
    """What a repository uses of its client: writing lines, running statements, reading series."""

    def execute(self, statement: Any) -> list[dict[str, Any]]: ...

    def result_series(self, query: Any) -> list[dict[str, Any]]: ...

    def rows(self, query: Any, columns: Sequence[str] | None = None) -> list[list[Any]]: ...

    def stream_series(self, query: Query, chunk_size: int = 10_000) -> Iterator[dict[str, Any]]: ...

    def bounded(self, query: Query, bounds: Any) -> Query: ...


class AsyncLineWriter(Protocol):
    """Where the async write pipeline sends batches: one database of one server."""

    database: str
    settings: Settings

    async def write_lines(
        self, lines: Sequence[str] | Batch, *, retention_policy: str | None = None
    ) -> None: ...
