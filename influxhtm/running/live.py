"""Live runs: process a sensor's new points as they arrive, each exactly once, through server restarts.

The guarantee: every point with a time later than the last processed point is
processed, once, in time order. A point written later with an *older* time
than one already processed is not (a model sees time move forwards only);
write a sensor's points in time order, as a sensor produces them.

The runner starts after the last point a checkpoint or a stored result names
(or at `since`, or at the sensor's first point), and advances only once the
results of a point are stored; a point's result is stored under the point's own
timestamp, so a point processed again after a crash overwrites its result
rather than adding one.

Two modes:

- ``"poll"``: ask the server for points newer than the last processed one every
  `poll_interval` seconds.
- ``"subscription"``: serve an HTTP endpoint on 127.0.0.1, register it with
  ``CREATE SUBSCRIPTION ... DESTINATIONS ALL``, and take the points InfluxDB
  pushes to it. InfluxDB pushes a write concurrently with storing it, from
  several goroutines, so pushes can come before the data is readable and out of
  order. A push is only a signal: the points after the last processed one, up
  to the latest pushed time, are read from the server (again, for a moment,
  until it holds every pushed time), and those values are what the model sees;
  a forged push cannot feed it a value. The endpoint accepts only POSTs to its
  URL with a secret token (see `subscription`). A lost push or a restart is
  filled by a query; an idle endpoint is polled every `poll_interval` seconds
  too. The subscription is dropped on exit.

Connection errors (a server restart) are ridden out with exponential backoff;
nothing is lost or repeated.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from influxhtm.core.errors import InfluxConnectionError, ServerError, ValidationError
from influxhtm.core.times import TimeLike, from_ns, to_ns
from influxhtm.htm.sensor import Sensor
from influxhtm.io.writing import post_pipelined
from influxhtm.model.data_layout import SensorReading
from influxhtm.model.line_protocol import Batch
from influxhtm.running.encoding import ResultEncoder
from influxhtm.running.report import RunReport, StreamingStats
from influxhtm.running.subscription import PushedPoint, Subscription, SubscriptionReceiver, series_filter


class LiveRunner(Protocol):
    """What the live loop uses of its `influxhtm.running.runner.Runner` (which calls `run_live`)."""

    sensor: Sensor
    model: Any
    encoder: ResultEncoder
    checkpoint: Path | None
    checkpoint_every: int

    def resume_ns(self) -> int | None: ...

    def save_checkpoint(self, last_ns: int | None) -> None: ...

log = logging.getLogger(__name__)

MODES = ("poll", "subscription")
#: Backoff after a connection error: first delay, factor, ceiling (seconds).
BACKOFF = (0.2, 2.0, 5.0)
#: How long pushed points that the server does not show yet are waited for before a query decides.
SETTLE_SECONDS = 0.5


def _no_database(error: BaseException) -> bool:
    """The database does not exist (yet): for a live run, the same as no data."""
    return isinstance(error, ServerError) and "database not found" in str(error)


def _retryable(error: BaseException) -> bool:
    if isinstance(error, InfluxConnectionError):
        return True
    return isinstance(error, ServerError) and (error.status or 0) >= 500


class Interrupted(Exception):
    """The stop event was set while waiting for the server."""


class UntilDone:
    """Calls an action against the server until it succeeds, for the live runs and the fleet: a
    connection error or a 5xx answer is retried after a growing delay (`BACKOFF`) and counted in
    `errors`; once `stop` is set, `Interrupted`. A missing database reads as no data (None)."""

    def __init__(self, stop: threading.Event, what: str):
        self.stop = stop
        self.what = what  # who waits, for the log
        self.errors = 0
        self._delay = BACKOFF[0]

    def __call__(self, action: Callable[[], Any]) -> Any:
        while True:
            try:
                value = action()
                self._delay = BACKOFF[0]
                return value
            except Exception as error:
                if _no_database(error):
                    return None  # nothing written yet: no data, no results
                if not _retryable(error):
                    raise
                if self.stop.is_set():
                    raise Interrupted() from error
                self.errors += 1
                log.warning("%s: %s; trying again in %.1f s", self.what, error, self._delay)
                self.stop.wait(self._delay)
                self._delay = min(self._delay * BACKOFF[1], BACKOFF[2])


class LiveRun:
    """The state of one live run; `run()` loops until stopped."""

    def __init__(
        self,
        runner: LiveRunner,
        *,
        poll_interval: float,
        stop: threading.Event | None,
        max_points: int | None,
        mode: str,
        since: TimeLike | None,
        chunk_size: int,
        retention_policy: str = "autogen",
    ):
        if mode not in MODES:
            raise ValidationError({"mode": [f"{mode!r} is not one of {', '.join(MODES)}"]})
        if isinstance(poll_interval, bool) or not isinstance(poll_interval, (int, float)) \
                or poll_interval <= 0:
            raise ValidationError(
                {"poll_interval": [f"{poll_interval!r} is not a positive number of seconds"]})
        if max_points is not None and (isinstance(max_points, bool) or not isinstance(max_points, int)
                                       or max_points < 1):
            raise ValidationError({"max_points": [f"{max_points!r} is not a positive integer"]})
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
            raise ValidationError({"chunk_size": [f"{chunk_size!r} is not a positive integer"]})
        self.runner = runner
        self.sensor = runner.sensor
        self.client = runner.sensor.client
        self.poll_interval = float(poll_interval)
        self.stop = stop if stop is not None else threading.Event()
        self.max_points = max_points
        self.mode = mode
        self.chunk_size = chunk_size
        self.retention_policy = retention_policy
        self.since_ns = to_ns(since, name="since") if since is not None else None
        self.last_ns: int | None = None
        self.points = 0
        self.results = 0
        self.first_ns: int | None = None
        self.latency = StreamingStats()  # constant memory: a live run may never end
        self.lag = StreamingStats()
        self._until_done = UntilDone(self.stop, f"live run of {self.sensor}")
        self._since_checkpoint = 0

    # -- helpers ---------------------------------------------------------------------
    def done(self) -> bool:
        return self.stop.is_set() or (self.max_points is not None and self.points >= self.max_points)

    def remaining(self) -> int:
        if self.max_points is None:
            return self.chunk_size
        return min(self.chunk_size, self.max_points - self.points)

    def _query(self, after: int | None, upto: int | None) -> Any:
        query = self.sensor.query()
        if after is not None:
            query = query.since(after + 1)
        if upto is not None:
            query = query.until(upto)
        return query

    def fetch(self, after: int | None, upto: int | None = None) -> list[tuple[int, float]]:
        """Up to `remaining()` points after `after` (and up to `upto`), ascending."""
        query = self._query(after, upto).select("value").limit(self.remaining())
        return [(ns, float(value)) for ns, value in query.rows("value") if value is not None]

    # -- processing ------------------------------------------------------------------
    def process(self, items: list[tuple[int, float, float]]) -> None:
        """Feed (ns, value, seen wall time) items in order, store their results, then advance."""
        items = items[: self.remaining()]
        if not items:
            return
        runner = self.runner
        run = runner.model.run
        component = self.sensor.component
        lines: list[str] = []
        done = 0
        try:
            for ns, value, _seen in items:
                point = SensorReading(time=from_ns(ns), value=value, component=component)
                result = run(point)
                if result is not None:
                    lines.append(runner.encoder.line(result, point, ns))
                done += 1
        finally:
            if done:
                self._store(lines, items[:done])

    def _store(self, lines: list[str], items: list[tuple[int, float, float]]) -> None:
        try:
            self._until_done(lambda: post_pipelined(self.client, [Batch.of_lines(lines)]))
        except Interrupted:
            # Not stored: the points stay unprocessed for the next run (the model has seen them, though).
            raise InfluxConnectionError(
                f"live run of {self.sensor} stopped while the server was unreachable; the results of "
                f"{len(items)} point(s) were not stored and will be computed again by the next run"
            ) from None
        stored = time.time()
        for ns, _value, seen in items:
            self.latency.add(stored - seen)
            self.lag.add(stored - ns / 1e9)
        if self.first_ns is None:
            self.first_ns = items[0][0]
        self.last_ns = items[-1][0]
        self.points += len(items)
        self.results += len(lines)
        self._since_checkpoint += len(items)
        if self.runner.checkpoint is not None and self._since_checkpoint >= self.runner.checkpoint_every:
            self.runner.save_checkpoint(self.last_ns)
            self._since_checkpoint = 0

    def poll_once(self) -> int:
        """Fetch and process one chunk of new points; how many there were."""
        rows = self._until_done(lambda: self.fetch(self.last_ns)) or []
        seen = time.time()
        self.process([(ns, value, seen) for ns, value in rows])
        return len(rows)

    def catch_up(self) -> None:
        """Process everything already stored after the last processed point."""
        while not self.done() and self.poll_once() >= self.chunk_size:
            pass

    # -- the loops -------------------------------------------------------------------
    def run(self) -> RunReport:
        started = time.perf_counter()
        if self.since_ns is not None:
            self.last_ns = self.since_ns - 1
        else:
            self.last_ns = self._until_done(self.runner.resume_ns)
        try:
            if self.mode == "poll":
                self._poll_loop()
            else:
                self._subscription_loop()
        except Interrupted:
            pass
        finally:
            if self.runner.checkpoint is not None and self.points:
                self.runner.save_checkpoint(self.last_ns)
        return RunReport(
            points=self.points,
            results=self.results,
            first=from_ns(self.first_ns) if self.first_ns is not None else None,
            last=from_ns(self.last_ns) if self.points and self.last_ns is not None else None,
            elapsed=time.perf_counter() - started,
            mode=f"live ({self.mode})",
            latency=self.latency.summary(),
            lag=self.lag.summary(),
            errors=self._until_done.errors,
        )

    def _poll_loop(self) -> None:
        while not self.done():
            if self.poll_once() >= self.chunk_size:
                continue  # more is waiting
            self.stop.wait(self.poll_interval)

    def _subscription_loop(self) -> None:
        receiver = SubscriptionReceiver(
            series_filter(self.sensor.measurement, self.sensor.component), database=self.client.database
        ).start()
        subscription = Subscription(self.client, receiver.url, retention_policy=self.retention_policy)
        try:
            self._until_done(subscription.create)
            self.catch_up()
            pending: dict[int, PushedPoint] = {}
            next_poll = time.monotonic() + self.poll_interval
            while not self.done():
                wait = max(0.0, min(0.1, next_poll - time.monotonic()))
                try:
                    pushed = receiver.points.get(timeout=wait)
                    pending[pushed.time] = pushed
                    while True:
                        pushed = receiver.points.get_nowait()
                        pending[pushed.time] = pushed
                except queue.Empty:
                    pass
                if pending:
                    self._take_pushed(pending)
                if time.monotonic() >= next_poll:
                    self.catch_up()  # fills gaps: lost pushes, writes during a restart
                    self._forget(pending)
                    next_poll = time.monotonic() + self.poll_interval
        finally:
            subscription.drop()
            receiver.stop()

    def _forget(self, pending: dict[int, PushedPoint]) -> None:
        """Drop pushed points at or before the last processed one (done, or older than it)."""
        if self.last_ns is not None:
            for ns in [ns for ns in pending if ns <= self.last_ns]:
                del pending[ns]

    def _take_pushed(self, pending: dict[int, PushedPoint]) -> None:
        """Process the points after the last processed one, up to the latest pushed, as the server holds them.

        A push is only the news that a point exists: the values fed to the model are
        read from the server, never taken from the push (anyone who can reach the
        endpoint could forge one). Pushes can come before the server makes the points
        readable, so the read is repeated (for up to SETTLE_SECONDS) until it holds
        every pushed time; after that the server decides (a push of a point that was
        never stored feeds nothing).
        """
        self._forget(pending)
        if not pending:
            return
        upto = max(pending)
        deadline = time.monotonic() + SETTLE_SECONDS
        pause = 0.002
        while True:
            rows = self._until_done(lambda: self.fetch(self.last_ns, upto)) or []
            held = {ns for ns, _value in rows}
            if len(rows) >= self.remaining() or held.issuperset(pending) \
                    or time.monotonic() >= deadline or self.stop.is_set():
                break
            time.sleep(pause)  # pushed before the server made them readable: wait a moment
            pause = min(pause * 2, 0.05)
        now = time.time()
        self.process([(ns, value, pending[ns].received if ns in pending else now) for ns, value in rows])
        self._forget(pending)


def run_live(
    runner: LiveRunner,
    *,
    poll_interval: float = 1.0,
    stop: threading.Event | None = None,
    max_points: int | None = None,
    mode: str = "poll",
    since: TimeLike | None = None,
    chunk_size: int = 10_000,
    retention_policy: str = "autogen",
) -> RunReport:
    """Run `runner`'s model live over its sensor (see the module's documentation)."""
    return LiveRun(
        runner, poll_interval=poll_interval, stop=stop, max_points=max_points, mode=mode, since=since,
        chunk_size=chunk_size, retention_policy=retention_policy,
    ).run()
