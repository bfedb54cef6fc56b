"""The one write pipeline: every point written by influxhtm travels through here.

`WritePipeline` POSTs `Batch`es in background threads while the caller makes
the next one, over `connections` concurrent keep-alive connections (default
`DEFAULT_CONNECTIONS`, four), with at most `depth` batches waiting or travelling.
Batches leave in order and are accounted in order, and they are stored as a
sequential write stores them (a later point overwrites an earlier one of the same
series and time): a batch travels beside the ones before it only when its time
span is apart from theirs (`apart`), else it waits for them. A batch whose
points carry no timestamp (the server stamps them) travels alone. InfluxDB
ingests about 1.6 times as much over two connections as over one on 2 cores, and
a little more over four.
Each POST goes through `Connection.write`, which retries transient faults and
splits a body the server finds too large at point boundaries. Points the server
refuses do not stop the write: every batch is sent, and one `PartialWriteError`
at the end carries the exact counts (`written`, `dropped`, `not_sent`) and the
refused lines. An error making a batch or sending one stops the write: nothing
after it is sent.

`post_pipelined` writes an iterable of batches through it (repository, sensors,
model stores); the batch and live runners and the CSV import push batches as
they make them. The helpers below make batch bodies while handing the GIL over,
so that a POST whose answer has arrived can finish at once.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from itertools import islice
from typing import Any, NoReturn

from influxhtm.core.errors import PartialWriteError
from influxhtm.io.connection import merge_refusals
from influxhtm.io.protocols import AsyncLineWriter, LineWriter
from influxhtm.model.line_protocol import Batch, Tally, encode_slice, encode_slice_in_c


def post_pipelined(
    client: LineWriter,
    batches: Iterable[Batch],
    *,
    total: int | None = None,
    retention_policy: str | None = None,
    connections: int | None = None,
) -> int:
    """Write every batch through a `WritePipeline` (batches in flight over `connections`
    connections, default `DEFAULT_CONNECTIONS`, while the next is made); returns the number
    of points written.

    An error making a batch (a ValidationError, raised as an `UnmadeBatch` by batch
    generators) or sending one (the server unreachable) stops the write and is raised
    as it is, or, when points were refused before it, as the cause of the
    `PartialWriteError` whose `not_sent` counts the points left out (of the `total`
    given, or of the batches taken).
    """
    pipeline = WritePipeline(client, retention_policy=retention_policy, connections=connections)
    taken = 0
    try:
        for batch in batches:
            pipeline.put(batch)
            taken += len(batch)
        pipeline.flush()
    except BaseException as error:  # noqa: BLE001 - re-raised by abort, with the counts if any refusal
        pipeline.abort(error, unmade=unmade(error, total, taken))
    return pipeline.close()


#: Concurrent connections of a write unless told otherwise: four (measured on 2 cores, InfluxDB
#: ingests about 1.6 times as many points over two connections as over one, and a little more over
#: four). Batches whose time spans meet never travel together, so a repeated series and time keeps
#: the later value as over one (`apart`); a write of one batch uses one.
DEFAULT_CONNECTIONS = 4

Span = tuple[int, int] | None


def apart(span: Span, others: Iterable[Span]) -> bool:
    """True when a batch of this time span may travel beside batches of the `others` spans: no
    point of it can share a time, let alone a series and time, with one of theirs. A batch
    without a span (points the server stamps, or a span not worked out) is apart from nothing."""
    if span is None:
        return False
    low, high = span
    return all(other is not None and (other[1] < low or high < other[0]) for other in others)


class AccountedPipeline:
    """What the thread and the task pipelines share: their settings (`connections` default
    `DEFAULT_CONNECTIONS`; `depth`, batches waiting or travelling, default `connections`) and
    what they say of their write, its `WriteAccount`."""

    def __init__(
        self,
        client: LineWriter | AsyncLineWriter,
        *,
        retention_policy: str | None = None,
        depth: int | None = None,
        connections: int | None = None,
    ):
        self.retention_policy = retention_policy
        self.connections = max(1, DEFAULT_CONNECTIONS if connections is None else connections)
        self.depth = max(self.connections, 1 if depth is None else depth)
        self.account = WriteAccount(client)
        self._closed = False

    @property
    def written(self) -> int:
        """Points stored so far."""
        return self.account.written

    @property
    def failed(self) -> int:
        """Points of batches whose POST failed (not a refusal) or never left."""
        return self.account.failed

    def refused(self, not_sent: int = 0, stopped_by: BaseException | None = None) -> PartialWriteError:
        """The one error of the write: every refusal, with the exact counts."""
        return self.account.refused(not_sent, stopped_by)

    def span_of(self, batch: Batch) -> Span:
        """The batch's time span, looked at only when batches may travel side by side (`apart`)."""
        return batch.time_span() if self.connections > 1 else None


class WritePipeline(AccountedPipeline):
    """An ordered, bounded, pipelined write: `put` batches, then `close` (see the module docstring).

    Up to `connections` batches travel at once (default `DEFAULT_CONNECTIONS`; 1: one
    POST at a time), and only batches whose time spans are `apart`: a batch that meets one
    waiting or travelling waits until that one is settled. At most `depth` batches wait or travel
    (default: `connections`); `put` blocks while that many do. An error sending a batch
    is raised by the next `put`, `flush` or `close`, and no batch after it is started
    (batches already travelling finish and are counted); refusals are kept and raised
    together by `close` (or `check`).
    """

    def __init__(
        self,
        client: LineWriter,
        *,
        retention_policy: str | None = None,
        depth: int | None = None,
        connections: int | None = None,
    ):
        super().__init__(client, retention_policy=retention_policy, depth=depth, connections=connections)
        self.client = client
        self._pending: deque[tuple[Future[None], int, Span]] = deque()
        self._poster = ThreadPoolExecutor(max_workers=self.connections, thread_name_prefix="influxhtm-write")

    def put(self, batch: Batch) -> None:
        """Hand one batch over to be sent after the ones before it."""
        self.account.check_open(self._closed)
        if not len(batch):
            return
        span = self.span_of(batch)
        while self._must_wait(span):
            self._settle_one()
        self._pending.append((self._poster.submit(self._post, batch), len(batch), span))

    def _must_wait(self, span: Span) -> bool:
        """A batch of this span waits: `depth` batches are pending, or (over several connections)
        one of them meets its span. Over one connection batches are stored in order anyway."""
        if not self._pending:
            return False
        if len(self._pending) >= self.depth:
            return True
        return self.connections > 1 and not apart(span, (pending[2] for pending in self._pending))

    def _post(self, batch: Batch) -> None:
        with self.account.posting():
            self.client.write_lines(batch, retention_policy=self.retention_policy)

    def _settle_one(self) -> None:
        """Wait for the oldest batch; count it as written, or keep its refusal."""
        future, count, _ = self._pending.popleft()
        with self.account.settling(count):
            future.result()

    def flush(self) -> None:
        """Wait until every batch given so far has been sent (refusals are kept for `close`)."""
        while self._pending:
            self._settle_one()

    def check(self) -> None:
        """Raise the write's `PartialWriteError` now if points were refused so far."""
        self.account.check()

    def close(self) -> int:
        """Send what is left and stop; returns the points written, or raises the one
        `PartialWriteError` of every refusal."""
        try:
            self.flush()
        finally:
            self._closed = True
            self._poster.shutdown(wait=True)
        return self.account.result()

    def abort(self, error: BaseException, unmade: int) -> NoReturn:
        """The write stopped at `error`: settle the batches in flight, then raise with the counts."""
        self.discard()
        self.account.stop(error, unmade)

    def discard(self) -> None:
        """Settle what is in flight, ignoring its errors (counted in `failed`), and stop the thread."""
        while self._pending:
            with self.account.ignoring():
                self._settle_one()
        self._closed = True
        self._poster.shutdown(wait=True)


class WriteAccount:
    """The accounting of one pipelined write, without I/O, shared by the thread pipeline
    (`WritePipeline`) and the task one (`async_writing.AsyncWritePipeline`): only the waiting
    differs between them.

    `written` counts the points stored, `failed` those of batches whose POST failed (not a
    refusal) or never left; `refusals` keeps every `PartialWriteError` of a batch, merged at
    the end into the write's one error with exact `written`, `dropped` and `not_sent`. After a
    POST fails, no later batch is sent (`posting` raises `_NotSent` for it).
    """

    def __init__(self, client: LineWriter | AsyncLineWriter):
        self.client = client
        self.written = 0
        self.failed = 0
        self.refusals: list[PartialWriteError] = []
        self.stopped = False  # set where a POST failed: later batches stay home

    @staticmethod
    def check_open(closed: bool) -> None:
        """Refuse a batch given to a pipeline that is closed."""
        if closed:
            raise RuntimeError("the write pipeline is closed (or was stopped by an error): nothing is sent")

    @contextmanager
    def posting(self) -> Iterator[None]:
        """Around the POST of one batch: not sent after a failed one; a failure (not a refusal)
        stops the batches after it."""
        if self.stopped:
            raise _NotSent()
        try:
            yield
        except PartialWriteError:
            raise
        except BaseException:
            self.stopped = True
            raise

    @contextmanager
    def settling(self, count: int) -> Iterator[None]:
        """Around waiting for a batch of `count` points: count it as written, keep its refusal,
        or count it as failed (and raise its error)."""
        try:
            yield
        except PartialWriteError as refusal:
            self.refusals.append(refusal)
            self.written += refusal.written
        except BaseException:
            self.failed += count
            raise
        else:
            self.written += count

    @staticmethod
    @contextmanager
    def ignoring() -> Iterator[None]:
        """Around settling a batch while a write stops: its error is counted in `failed` (by
        `settling`), and the caller raises its own."""
        try:
            yield
        except BaseException:  # noqa: BLE001, S110 - counted in `failed`; the caller raises its error
            pass

    def check(self) -> None:
        """Raise the write's `PartialWriteError` now if points were refused so far."""
        if self.refusals:
            raise self.refused()

    def result(self) -> int:
        """The points written by a write that ended, or its one `PartialWriteError`."""
        self.check()
        return self.written

    def stop(self, error: BaseException, unmade: int) -> NoReturn:
        """Raise the error that stopped the write (the cause of an `UnmadeBatch`), or, when points
        were refused before it, the write's `PartialWriteError` whose `not_sent` counts the
        `unmade` points and those of the batches that failed."""
        cause = error.error if isinstance(error, UnmadeBatch) else error
        if not self.refusals:
            if cause is error:
                raise error
            raise cause from None
        raise self.refused(not_sent=unmade + self.failed, stopped_by=cause) from cause

    def refused(self, not_sent: int = 0, stopped_by: BaseException | None = None) -> PartialWriteError:
        """The one error of the write: every refusal, with the exact counts."""
        return merge_refusals(
            self.refusals,
            written=self.written,
            not_sent=not_sent,
            database=self.client.database,
            url=self.client.settings.url,
            stopped_by=stopped_by,
        )


class _NotSent(Exception):
    """A batch left unsent because an earlier one failed."""


class UnmadeBatch(Exception):
    """Making a batch of `count` points failed with `error` (raised by batch generators, so that
    a write that stops there can count the points it did not send)."""

    def __init__(self, error: BaseException, count: int):
        super().__init__(str(error))
        self.error = error
        self.count = count


def unmade(error: BaseException, total: int | None, taken: int) -> int:
    """The points a write stopped by `error` did not make: of the `total` given, those not taken
    from the batches; else those of the batch that could not be made (`UnmadeBatch`)."""
    if total is not None:
        return total - taken
    return error.count if isinstance(error, UnmadeBatch) else 0


#: Lines formatted between two releases of the GIL by `encode_in_slices`.
SLICE = 1000
#: The same for the C encoder, ten times faster: a slice takes about 0.3 ms. C code never hands the
#: GIL over by itself, so a POST whose answer arrived waits for the slice to end: over 4 connections
#: slices of 2,000 reached 0.94-0.98 times the raw POSTs' rate, slices of 10,000 0.84 (each
#: `time.sleep(0)` costs about 30 µs of CPU).
C_SLICE = 2_000


def encode_in_slices(encode: Callable[..., str], *columns: Sequence[Any]) -> str:
    """`"\n".join(map(encode, *columns))`, handing the GIL over every `SLICE` lines.

    `join(map(...))` loops in C and holds the GIL throughout, so a POST whose
    answer has arrived would wait for the whole batch to be formatted before it
    could finish; `time.sleep(0)` between slices lets it finish at once, and the
    next POST starts sooner. (Measured: about 10-20% more points/s on 2 cores.)
    """
    if len(columns) == 1:  # declared objects: the C encoder when it is built (see `encode_slice`)
        objs = columns[0]
        return join_slices(lambda start, stop: encode_slice(encode, objs, start, stop), 0, len(objs))
    return join_slices(
        lambda start, stop: "\n".join(map(encode, *(column[start:stop] for column in columns))),
        0,
        len(columns[0]),
    )


def encode_in_c(encode: Callable[[Any], str], objs: list[Any], told: Tally | None = None) -> str | None:
    """`encode_in_slices(encode, objs)` made by the C encoder, or None if it cannot make all of it
    (a `tally` given as `told` takes in what the C encoder tells of the lines)."""
    parts = []
    for start in range(0, len(objs), C_SLICE):
        text = encode_slice_in_c(encode, objs, start, start + C_SLICE, told)
        if text is None:
            return None
        parts.append(text)
        time.sleep(0)
    return parts[0] if len(parts) == 1 else "\n".join(parts)


def join_slices(encode_range: Callable[[int, int], str], start: int, stop: int, size: int = SLICE) -> str:
    """`encode_range(a, b)` of every slice of `size` of `range(start, stop)`, joined by newlines,
    handing the GIL over after each slice (see `encode_in_slices`)."""
    parts = []
    for a in range(start, stop, size):
        parts.append(encode_range(a, min(a + size, stop)))
        time.sleep(0)
    return parts[0] if len(parts) == 1 else "\n".join(parts)


def chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """Lists of up to `size` items: slices of a list, else taken from the iterator as it goes."""
    if isinstance(items, list):
        for start in range(0, len(items), size):
            yield items[start : start + size]
        return
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


