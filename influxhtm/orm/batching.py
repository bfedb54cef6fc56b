"""A fire-and-forget batching writer for services: `client.writer(batch_size=..., flush_interval=...)`.

Objects of declared classes are encoded as they are handed over (a bad object
fails at once, in the caller), kept, and sent in batches through the one write
pipeline (`influxhtm.io.writing.WritePipeline`): when `batch_size` points are
waiting, every `flush_interval` seconds from a background thread, on `flush()`,
and on leaving the `with` block (or `close()`), which waits until everything
is sent::

    with client.writer(batch_size=5000, flush_interval=1.0) as writer:
        for reading in incoming():
            writer.write(reading)

Nothing is lost without a word: points the server refuses are gathered and
raised as one `PartialWriteError` by `flush()` and on exit; an error sending a
batch (the server unreachable after the connection's retries) stops the
writer, and is raised by the next `write`, `flush` or the exit, with the
number of points that were not sent (`not_sent`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from influxhtm.core.errors import InfluxHtmError, ValidationError, check_positive_int
from influxhtm.io.writing import WritePipeline
from influxhtm.model.declarations import declaration
from influxhtm.model.line_protocol import Batch, encoder_for

if TYPE_CHECKING:
    from influxhtm.io.protocols import LineWriter


class WriterStopped(InfluxHtmError):
    """The batching writer stopped at an error sending a batch; `not_sent` points were not sent."""

    def __init__(self, message: str, not_sent: int):
        super().__init__(message)
        self.not_sent = not_sent


class BatchingWriter:
    """Buffered, batched writes of declared objects (see the module docstring)."""

    def __init__(
        self, client: LineWriter, *, batch_size: int = 5000, flush_interval: float | None = 1.0
    ):
        check_positive_int(batch_size, "batch_size")
        interval = flush_interval
        if interval is not None and (
            isinstance(interval, bool) or not isinstance(interval, (int, float)) or interval <= 0
        ):
            raise ValidationError({"flush_interval": [f"{interval!r} is not a positive number of seconds"]})
        self.client = client
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self._lock = threading.RLock()
        self._waiting: dict[str | None, list[str]] = {}  # retention policy -> encoded points
        self._count = 0
        self._pipelines: dict[str | None, WritePipeline] = {}
        self._error: WriterStopped | None = None
        self._closed = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if flush_interval is not None:
            self._thread = threading.Thread(target=self._tick, name="influxhtm-writer", daemon=True)
            self._thread.start()

    # -- handing points over ------------------------------------------------------
    def write(self, *objects: Any) -> None:
        """Hand declared objects over to be sent (encoded now: a bad one raises here)."""
        self.write_all(objects)

    def write_all(self, objects: Iterable[Any]) -> None:
        """Hand an iterable of declared objects over to be sent."""
        encoded: list[tuple[str | None, str]] = []
        for index, obj in enumerate(objects):
            try:
                decl = declaration(obj)
            except ValidationError:
                raise ValidationError(
                    {index: [f"{obj!r} is not an object of a declared class (load a mapping with Cls.load)"]}
                ) from None
            encoded.append((decl.retention_policy, encoder_for(type(obj))(obj)))
        with self._lock:
            self._check_open()
            for policy, line in encoded:
                self._waiting.setdefault(policy, []).append(line)
            self._count += len(encoded)
            if self._count >= self.batch_size:
                self._send_waiting()

    # -- sending ------------------------------------------------------------------
    def flush(self) -> None:
        """Send everything handed over so far and wait for it; raise what went wrong so far
        (refusals as one `PartialWriteError`, a stop as `WriterStopped`)."""
        with self._lock:
            self._check_open()
            self._send_waiting()
            self._settle()
            for pipeline in self._pipelines.values():
                pipeline.check()

    def close(self) -> int:
        """Send what is left, stop the background thread; returns the points written (raises as `flush`)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        with self._lock:
            if self._closed:
                self._raise_stop()
                return self.written
            try:
                self._send_waiting()
                self._settle()
            finally:
                self._closed = True
            self._raise_stop()
            return sum(pipeline.close() for pipeline in self._pipelines.values())

    @property
    def written(self) -> int:
        """Points the server has taken so far."""
        return sum(pipeline.written for pipeline in self._pipelines.values())

    def __enter__(self) -> BatchingWriter:
        return self

    def __exit__(self, kind: Any, error: Any, traceback: Any) -> None:
        if error is None:
            self.close()
            return
        try:
            self.close()  # what was handed over is still sent; the block's error goes on
        except Exception as close_error:  # noqa: BLE001 - attached to the block's error, not lost
            error.add_note(f"and closing the influxhtm writer failed too: {close_error}")

    # -- inside ---------------------------------------------------------------------
    def _tick(self) -> None:
        """The background thread: send what is waiting every `flush_interval` seconds."""
        assert self.flush_interval is not None
        while not self._stop.wait(self.flush_interval):
            with self._lock:
                if self._closed or self._error is not None:
                    return
                self._send_waiting()

    def _send_waiting(self) -> None:
        """Hand every waiting point to its pipeline (under the lock); an error sending stops the writer."""
        if self._error is not None or not self._count:
            return
        waiting, self._waiting, count, self._count = self._waiting, {}, self._count, 0
        for policy, lines in waiting.items():
            try:
                self._pipeline(policy).put(Batch.of_lines(lines))
            except Exception as error:  # noqa: BLE001 - kept, raised by the next write, flush or close
                self._stopped_by(error, count)
                return
            count -= len(lines)

    def _settle(self) -> None:
        for pipeline in self._pipelines.values():
            try:
                pipeline.flush()
            except Exception as error:  # noqa: BLE001 - kept and raised by the caller
                self._stopped_by(error, 0)
        self._raise_stop()

    def _stopped_by(self, error: BaseException, unsent: int) -> None:
        for pipeline in self._pipelines.values():
            pipeline.discard()
        failed = sum(pipeline.failed for pipeline in self._pipelines.values())
        self._closed = True
        not_sent = unsent + failed + self._count
        self._waiting, self._count = {}, 0
        message = f"the writer stopped: sending a batch failed ({error}); {not_sent} point(s) were not sent"
        stop = WriterStopped(message, not_sent)
        stop.__cause__ = error
        self._error = stop

    def _pipeline(self, policy: str | None) -> WritePipeline:
        pipeline = self._pipelines.get(policy)
        if pipeline is None:
            pipeline = self._pipelines[policy] = WritePipeline(self.client, retention_policy=policy)
        return pipeline

    def _check_open(self) -> None:
        self._raise_stop()
        if self._closed:
            raise InfluxHtmError("the writer is closed: nothing more can be written with it")

    def _raise_stop(self) -> None:
        if self._error is not None:
            raise self._error
