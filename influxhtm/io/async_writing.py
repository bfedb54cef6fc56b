"""The async write pipeline and the batching writer for services.

`AsyncWritePipeline` is `writing.WritePipeline` for asyncio: batches are POSTed in
order over `connections` concurrent requests (default `writing.DEFAULT_CONNECTIONS`), side
by side only when their time spans are apart (`writing.apart`), at most `depth` waiting,
each through `AsyncInfluxHtmClient.write_lines` (which
retries, splits at point boundaries and collects refusals by the shared core,
`protocol.WritePlan`); refusals do not stop the write and are raised together at the
end as one `PartialWriteError` with exact counts; an error making or sending a batch stops
the write, counted as `not_sent`, as in the sync pipeline. The counting is the sync
pipeline's own (`writing.WriteAccount`): only the waiting (tasks, not threads) is here.

Batches are made in a worker thread (`batches_in_thread`) while the event loop sends the
previous one: the encoders hand the GIL over between slices (`writing.join_slices`), so
the POST goes on while the next batch is made, as the sync pipeline's posting thread does.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, NoReturn

from influxhtm.core.errors import PartialWriteError, ValidationError, check_positive_int
from influxhtm.io.writing import AccountedPipeline, Span, apart, unmade
from influxhtm.model.line_protocol import Batch

if TYPE_CHECKING:
    from influxhtm.io.protocols import AsyncLineWriter

_END = object()


async def batches_in_thread(batches: Iterator[Batch]) -> AsyncIterator[Batch]:
    """The batches of a (CPU-bound) batch generator, each made in a worker thread."""
    while (batch := await asyncio.to_thread(next, batches, _END)) is not _END:
        yield batch  # type: ignore[misc]


async def chunks_of(items: AsyncIterable[Any], size: int) -> AsyncIterator[list[Any]]:
    """Lists of up to `size` items of an async iterable, as they come."""
    chunk: list[Any] = []
    async for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


async def batches_of_async(
    items: AsyncIterable[Any], size: int, make: Callable[[list[Any], int], Iterable[Batch]]
) -> AsyncIterator[Batch]:
    """Batches of an async iterable: each chunk of `size` items made into batches by `make(chunk,
    offset)` in a worker thread (a chunk that cannot be made raises `UnmadeBatch`)."""
    offset = 0
    async for chunk in chunks_of(items, size):
        for batch in await asyncio.to_thread(_made, make, chunk, offset):
            yield batch
        offset += len(chunk)


def _made(make: Callable[[list[Any], int], Iterable[Batch]], chunk: list[Any], offset: int) -> list[Batch]:
    return list(make(chunk, offset))


async def post_pipelined(
    client: AsyncLineWriter,
    batches: AsyncIterator[Batch],
    *,
    total: int | None = None,
    retention_policy: str | None = None,
    connections: int | None = None,
) -> int:
    """Write every batch through an `AsyncWritePipeline`; returns the points written (the counts
    and errors of `writing.post_pipelined`)."""
    pipeline = AsyncWritePipeline(client, retention_policy=retention_policy, connections=connections)
    taken = 0
    try:
        async for batch in batches:
            await pipeline.put(batch)
            taken += len(batch)
        await pipeline.flush()
    except BaseException as error:  # noqa: BLE001 - re-raised by abort, with the counts if any refusal
        await pipeline.abort(error, unmade=unmade(error, total, taken))
    finally:
        await _close(batches)
    return await pipeline.close()


async def _close(batches: AsyncIterator[Batch]) -> None:
    aclose = getattr(batches, "aclose", None)
    if aclose is not None:
        await aclose()


class AsyncWritePipeline(AccountedPipeline):
    """An ordered, bounded, pipelined async write: `await put(batch)`, then `await close()`.

    As `writing.WritePipeline`: up to `connections` batches travel at once (only batches whose
    time spans are apart; one that meets an earlier batch starts when that one is done), at most
    `depth` (default: `connections`) wait or travel."""

    def __init__(self, client: AsyncLineWriter, **settings: Any):
        super().__init__(client, **settings)
        self.client = client
        self._pending: deque[tuple[asyncio.Task[None], int, Span]] = deque()

    async def put(self, batch: Batch) -> None:
        """Hand one batch over to be sent after the ones before it."""
        self.account.check_open(self._closed)
        if not len(batch):
            return
        while len(self._pending) >= self.depth:
            await self._settle_one()
        span = self.span_of(batch)
        before = [task for task, _, other in self._pending if not apart(span, [other])]
        task = asyncio.create_task(self._post(batch, before))
        self._pending.append((task, len(batch), span))
        await asyncio.sleep(0)  # let the POST start before the caller makes the next batch

    async def _post(self, batch: Batch, before: list[asyncio.Task[None]]) -> None:
        if before:  # the earlier batches whose spans meet this one's
            await asyncio.wait(before)
        with self.account.posting():
            await self.client.write_lines(batch, retention_policy=self.retention_policy)

    async def _settle_one(self) -> None:
        task, count, _ = self._pending.popleft()
        with self.account.settling(count):
            await task

    async def flush(self) -> None:
        """Wait until every batch given so far has been sent (refusals are kept for `close`)."""
        while self._pending:
            await self._settle_one()

    async def close(self) -> int:
        """Send what is left; returns the points written, or raises the one `PartialWriteError`."""
        try:
            await self.flush()
        finally:
            self._closed = True
        return self.account.result()

    async def abort(self, error: BaseException, unmade: int) -> NoReturn:
        """The write stopped at `error`: settle what is in flight, then raise with the counts."""
        while self._pending:
            with self.account.ignoring():
                await self._settle_one()
        self._closed = True
        self.account.stop(error, unmade)


class AsyncBatchWriter:
    """Buffers points for a service and writes them to `target` (anything with an async
    `add_all`, or an async sensor's `write`): when `size` points wait, every `interval` seconds,
    and on exit. Use it as `async with client.batch_writer(repo) as writer: await writer.add(p)`.

    `written` counts the points stored. A failed flush (the server unreachable after the
    retries, points refused) is raised by the next `add`, `flush` or the exit; the points of a
    flush that failed are not kept for another try.
    """

    def __init__(self, target: Any, *, size: int = 5000, interval: float = 1.0):
        check_positive_int(size, "size")
        if not isinstance(interval, int | float) or isinstance(interval, bool) or not interval > 0:
            raise ValidationError({"interval": [f"{interval!r} is not a positive number of seconds"]})
        write = getattr(target, "add_all", None) or getattr(target, "write", None)
        if write is None:
            raise ValidationError({"target": [f"{target!r} has no async add_all or write"]})
        self._write: Callable[[list[Any]], Awaitable[int]] = write
        self.size = size
        self.interval = float(interval)
        self.written = 0
        self._buffer: list[Any] = []
        self._lock = asyncio.Lock()
        self._error: BaseException | None = None
        self._ticker: asyncio.Task[None] | None = None

    async def __aenter__(self) -> AsyncBatchWriter:
        self._ticker = asyncio.create_task(self._tick())
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self._flush()
            except Exception as error:  # noqa: BLE001 - kept and raised to the caller by the next call
                self._error = self._error or error

    def _raise_kept(self) -> None:
        error, self._error = self._error, None
        if error is not None:
            raise error

    async def add(self, point: Any) -> None:
        """Buffer one point; writes the buffer when it holds `size` points."""
        self._raise_kept()
        self._buffer.append(point)
        if len(self._buffer) >= self.size:
            await self._flush()

    async def add_all(self, points: Any) -> None:
        for point in points:
            await self.add(point)

    async def flush(self) -> None:
        """Write what is buffered now."""
        self._raise_kept()
        await self._flush()

    async def _flush(self) -> None:
        async with self._lock:
            points, self._buffer = self._buffer, []
            if points:
                try:
                    self.written += await self._write(points)
                except PartialWriteError as refusal:
                    self.written += refusal.written
                    raise

    async def close(self) -> None:
        """Stop the interval flushes and write what is left."""
        if self._ticker is not None:
            self._ticker.cancel()
            try:
                await self._ticker
            except asyncio.CancelledError:
                pass
            self._ticker = None
        await self.flush()
