"""The async transport: the same requests as `connection.Connection`, over asyncio (`async_http`).

Only the I/O is here. What to send, what an answer means, what is retried, how a
write is split at point boundaries and how refused points are counted come from the
sans-I/O core (`protocol`), which the sync transport calls too, so both behave alike:
the same retries (refused or reset connections, timeouts, HTTP 5xx, with backoff), the
same 413 splitting, the same exact partial-write counts, the same errors.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any

from influxhtm.core.errors import InfluxHtmError
from influxhtm.io import http_api as protocol
from influxhtm.io.http_api import QUERY_CHUNK_SIZE
from influxhtm.io.settings import Settings
from influxhtm.model.line_protocol import Batch

if TYPE_CHECKING:  # imported when a connection is made: h11 is the `async` extra's dependency
    from influxhtm.io.async_http import Response


class AsyncConnection:
    """A pool of keep-alive HTTP connections to one InfluxDB server, for asyncio."""

    def __init__(self, settings: Settings, *, max_connections: int = 100):
        from influxhtm.io.async_http import Pool

        self.settings = settings
        self.pool = Pool(settings, max_connections)
        #: Largest write body (bytes) known to pass the server's max-body-size; learnt from 413s.
        self.body_limit: int | None = None

    def __repr__(self) -> str:
        return f"<AsyncConnection {self.settings.url} user={self.settings.username!r}>"

    async def aclose(self) -> None:
        await self.pool.aclose()

    async def __aenter__(self) -> AsyncConnection:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- requests with retries ----------------------------------------------
    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        data: Mapping[str, str] | None = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        stream: bool = False,
    ) -> Response:
        """Send one request, retrying as `protocol.Attempts` decides; returns the first final answer
        (read whole unless `stream`; a streamed answer must be closed by the caller)."""
        from influxhtm.io.async_http import TLSFailure, Unreachable

        attempts = protocol.Attempts(self.settings, method, path)
        while True:
            attempts.start()
            try:
                response = await self.pool.request(
                    method, path, params=params, form=data, content=content, headers=headers
                )
                if not stream or response.status_code >= 300:
                    await response.aread()
            except TLSFailure as error:
                raise attempts.tls_failed(str(error)) from None
            except Unreachable as error:
                try:
                    attempts.connection_failed(error.reason, timed_out=error.timed_out)
                except InfluxHtmError as final:
                    raise final from None
            except (OSError, ValueError) as error:
                raise attempts.unsendable(error) from None
            else:
                try:
                    if attempts.answered(response.status_code, partial(_error_text, response)):
                        return response
                finally:
                    if response.status_code in protocol.RETRYABLE_STATUS:
                        await response.aclose()
            await asyncio.sleep(attempts.pause())

    def _raise_for_status(self, response: Response, *, query: str | None = None, what: str = "") -> None:
        protocol.raise_for_status(
            self.settings, response.status_code, partial(_error_text, response), query=query, what=what
        )

    # -- the API -------------------------------------------------------------
    async def ping(self) -> str:
        """The server's version; raises InfluxConnectionError when it cannot be reached."""
        response = await self.request("GET", "ping")
        self._raise_for_status(response)
        return response.headers.get("x-influxdb-version", "")

    async def write(
        self,
        body: Batch | bytes | str,
        *,
        database: str,
        retention_policy: str | None = None,
        precision: str = "n",
    ) -> None:
        """POST line protocol, split and counted as `Connection.write` does (`protocol.WritePlan`)."""
        batch = body if isinstance(body, Batch) else Batch.of_text(body)
        params = protocol.write_params(database, retention_policy, precision)
        plan = protocol.WritePlan(self, batch)
        while (piece := plan.next_piece()) is not None:
            data, headers = plan.request(piece)
            response = await self.request("POST", "write", params=params, content=data, headers=headers)
            plan.answered(piece, response.status_code, partial(_error_text, response), database)
        plan.finish(database)

    async def query(
        self,
        text: str,
        *,
        params: Mapping[str, Any] | None = None,
        database: str | None = None,
        epoch: str = "ns",
    ) -> list[dict[str, Any]]:
        """Run InfluxQL; one complete result dict per statement (chunked, put back together, a
        partial series never returned as complete: see `Connection.query`)."""
        results = [
            result async for result in self.query_chunks(text, params=params, database=database, epoch=epoch)
        ]
        return protocol.whole(results, self.settings.url, text)

    async def query_chunks(
        self,
        text: str,
        *,
        params: Mapping[str, Any] | None = None,
        database: str | None = None,
        chunk_size: int = QUERY_CHUNK_SIZE,
        epoch: str = "ns",
    ) -> AsyncGenerator[dict[str, Any], None]:
        """Each statement result of a chunked answer as it arrives (see `Connection.query_chunks`)."""
        from influxhtm.io.async_http import Unreachable

        form = protocol.query_form(text, params, database, epoch=epoch, chunk_size=chunk_size)
        response = await self.request(
            "POST", "query", data=form, headers=protocol.query_headers(), stream=True
        )
        try:
            self._raise_for_status(response, query=text)
            reader = protocol.AnswerReader(self.settings, text, response.headers.get("content-type", ""))
            try:
                async for block in response.aiter_bytes():
                    for result in reader.feed(block):
                        yield result
                for result in reader.end():
                    yield result
            except InfluxHtmError:
                raise
            except Unreachable as error:
                raise reader.broke_off(error.reason) from None
            except (OSError, ValueError, protocol.UnpackError) as error:
                raise reader.broke_off(type(error).__name__) from None
            reader.finish()
        finally:
            await response.aclose()


def _error_text(response: Response) -> str:
    return protocol.error_text(
        response.content, response.headers.get("content-type", ""), response.status_code
    )
