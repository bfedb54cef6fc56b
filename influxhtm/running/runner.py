"""`Runner`: feed a sensor's points to a model and store its results, over a time slice or live.

A model is any object with ``run(point) -> result`` or a plain callable
``f(point) -> result`` (see `influxhtm.running.engines.base`); ``point`` is a
`SensorReading`, ``result`` anything `HtmModelStore.write_result` accepts, or
None for "no result for this point". A result without a time gets the point's.

Results carry the timestamp of the point they answer, so re-running a slice
overwrites them: a result is stored at most once per point, whatever happens.

Checkpoints: with ``checkpoint=path`` the runner pickles the run's identity
(database, sensor, model id, engine, parameters), ``model.get_state()`` and
``last_ns`` every ``checkpoint_every`` points (after the results up to there are
stored) and at the end; a new Runner given the same path checks the identity
(`CheckpointMismatch` names what differs), restores the model with
``set_state`` and continues after ``last_ns`` when resuming (results after it
are re-computed and overwritten). A run holds its checkpoint for its duration:
a second run given the same path gets `CheckpointInUse` (see
`influxhtm.running.checkpoint`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from influxhtm.core.errors import ValidationError, check_positive_int
from influxhtm.core.times import TimeLike, from_ns, inclusive_range, parse_duration, to_ns
from influxhtm.io.writing import WritePipeline
from influxhtm.model.data_layout import SensorReading
from influxhtm.model.line_protocol import Batch
from influxhtm.running import checkpoint as checkpoints
from influxhtm.running.encoding import ResultEncoder
from influxhtm.running.live import run_live
from influxhtm.running.report import RunReport

if TYPE_CHECKING:
    import threading as _threading

    from influxhtm.htm.model_store import HtmModelStore
    from influxhtm.htm.sensor import Sensor

log = logging.getLogger(__name__)


def as_model(model: Any) -> Any:
    """The model itself when it has `run`, else a wrapper of a plain callable (the engines' rule)."""
    from influxhtm.running.engines.base import as_model as engines_as_model

    return engines_as_model(model)


class Runner:
    """Runs `model` over `sensor`'s points and writes its results to `store`."""

    def __init__(
        self,
        sensor: Sensor,
        store: HtmModelStore,
        model: Any,
        *,
        checkpoint: str | os.PathLike[str] | None = None,
        checkpoint_every: int = 10_000,
    ):
        from influxhtm.htm.model_store import HtmModelStore
        from influxhtm.htm.sensor import Sensor

        if not isinstance(sensor, Sensor):
            raise ValidationError({"sensor": [f"{sensor!r} is not a Sensor (client.create_sensor(...))"]})
        if not isinstance(store, HtmModelStore):
            raise ValidationError({"store": [f"{store!r} is not an HtmModelStore (see create_htm_model)"]})
        if store.sensor != sensor:
            raise ValidationError({"store": [f"{store!r} belongs to sensor {store.sensor}, not {sensor}"]})
        if isinstance(checkpoint_every, bool) or not isinstance(checkpoint_every, int) \
                or checkpoint_every < 1:
            raise ValidationError({"checkpoint_every": [f"{checkpoint_every!r} is not a positive integer"]})
        self.sensor = sensor
        self.store = store
        self.model = as_model(model)
        self.encoder = ResultEncoder(store)
        self.checkpoint = Path(checkpoint) if checkpoint is not None else None
        self.checkpoint_every = checkpoint_every
        #: The time (ns) of the last point whose result is stored, as known from a loaded checkpoint.
        self.checkpoint_ns: int | None = None
        #: What a checkpoint of this run records and what a loaded one must match.
        self.identity = checkpoints.identity(sensor, store, self.model)
        self._checkpoint_stamp: tuple[int, int, int] | None = None
        if self.checkpoint is not None and self.checkpoint.exists():
            self._load_checkpoint()

    def __repr__(self) -> str:
        return f"Runner({self.sensor}, model={self.store.model_id!r}, {self.model!r})"

    # -- checkpoints ---------------------------------------------------------------
    def _load_checkpoint(self) -> None:
        assert self.checkpoint is not None
        stamp = checkpoints.stamp(self.checkpoint)
        saved = checkpoints.load(self.checkpoint, self.identity)
        set_state = getattr(self.model, "set_state", None)
        if saved.get("state") is not None and callable(set_state):
            set_state(saved["state"])
        self.checkpoint_ns = saved["last_ns"]
        self._checkpoint_stamp = stamp

    def save_checkpoint(self, last_ns: int | None) -> None:
        """Save the run's identity, the model's state and the last processed time, atomically."""
        if self.checkpoint is None:
            return
        get_state = getattr(self.model, "get_state", None)
        state = get_state() if callable(get_state) else None
        checkpoints.save(self.checkpoint, self.identity, state, last_ns)
        self.checkpoint_ns = last_ns
        self._checkpoint_stamp = checkpoints.stamp(self.checkpoint)

    @contextlib.contextmanager
    def holding_checkpoint(self) -> Iterator[None]:
        """Hold the checkpoint for one run (CheckpointInUse if another run has it).

        A checkpoint another run wrote since this runner loaded it is loaded again
        first, so the run continues from the newest one.
        """
        if self.checkpoint is None:
            yield
            return
        with checkpoints.held(self.checkpoint):
            if checkpoints.stamp(self.checkpoint) not in (None, self._checkpoint_stamp):
                self._load_checkpoint()
            yield

    def resume_ns(self) -> int | None:
        """Where a resumed run continues after: the checkpoint's time, else the last stored result."""
        if self.checkpoint_ns is not None:
            return self.checkpoint_ns
        return self.store.last_result_ns()

    # -- one point -------------------------------------------------------------------
    def result_line(self, result: Any, point: SensorReading, ns: int | None = None) -> str:
        """The line of a model's result for `point` (at the point's time when the result has none)."""
        return self.encoder.line(result, point, to_ns(point.time) if ns is None else ns)

    # -- batch -----------------------------------------------------------------------
    def run_batch(
        self,
        since: TimeLike | None = None,
        until: TimeLike | None = None,
        aggregation: str | None = None,
        resume: bool = False,
        progress: bool = False,
        chunk_size: int = 10_000,
        batch_size: int = 5000,
        *,
        before: TimeLike | None = None,
    ) -> RunReport:
        """Feed the points between `since` and `until` (both inclusive) in time order; store the results.

        `before` is an exclusive end instead of `until`.

        Points are streamed in chunks of `chunk_size` (constant memory) and results
        written in batches of `batch_size` by a background thread while the model
        works on. With `aggregation` (e.g. "10m") the model gets one reading per
        bucket, the mean of the bucket. `resume=True` starts after the last stored
        result (or the loaded checkpoint). If the model raises, the results so far
        are stored before the error propagates, so a resumed run continues there.
        """
        interval = parse_duration(aggregation, name="aggregation") if aggregation is not None else None
        lo, hi = inclusive_range(since, until, before)
        check_positive_int(chunk_size, "chunk_size")
        check_positive_int(batch_size, "batch_size")
        with self.holding_checkpoint():
            return self._run_batch(lo, hi, aggregation, interval, resume, progress, chunk_size, batch_size)

    def _run_batch(
        self, lo: int | None, hi: int | None, aggregation: str | None, interval: int | None,
        resume: bool, progress: bool, chunk_size: int, batch_size: int,
    ) -> RunReport:
        if resume:
            done = self.resume_ns()
            if done is not None:
                after = done + (interval if interval else 1)
                lo = after if lo is None else max(lo, after)
        if lo is not None and hi is not None and lo > hi:
            return RunReport(0, 0, None, None, 0.0)
        if interval is not None:
            points = self._aggregated(lo, hi, aggregation, interval, chunk_size)
        else:
            points = self._stream(lo, hi, chunk_size)
        bar = self._progress_bar(lo, hi, aggregation) if progress else None
        return self._feed(points, batch_size, bar)

    def _stream(self, lo: int | None, hi: int | None, chunk_size: int) -> Iterator[tuple[int, SensorReading]]:
        """(ns, reading) of the raw points, ascending, streamed in chunks (as `Sensor.iter_data`)."""
        query = self.sensor.query(lo, hi).select("value")
        component = self.sensor.component
        for ns, value in query.rows("value", chunk_size=chunk_size):
            if value is not None:
                yield ns, SensorReading(time=from_ns(ns), value=float(value), component=component)

    def _aggregated(
        self, lo: int | None, hi: int | None, aggregation: str | None, interval: int, chunk_size: int
    ) -> Iterator[tuple[int, SensorReading]]:
        """One reading per bucket, read in slices of `chunk_size` buckets aligned to the interval."""
        bounds = self.sensor.time_bounds_ns()
        if bounds is None:
            return
        start = bounds[0] if lo is None else max(lo, bounds[0] - bounds[0] % interval)
        end = bounds[1] if hi is None else min(hi, bounds[1])
        step = interval * max(1, chunk_size)
        while start <= end:
            slice_end = min(end, start - start % interval + step - 1)
            for reading in self.sensor.get_data(since=start, until=slice_end, aggregation=aggregation):
                yield to_ns(reading.time), reading
            start = slice_end + 1

    def _feed(self, points: Iterator[tuple[int, SensorReading]], batch_size: int, bar: Any) -> RunReport:
        run = self.model.run
        line_of = self.encoder.line
        every = self.checkpoint_every if self.checkpoint is not None else 0
        writer = BackgroundWriter(self.sensor.client)
        started = time.perf_counter()
        count = results = 0
        first_ns = last_ns = None
        lines: list[str] = []
        failed = True
        try:
            for ns, point in points:
                if first_ns is None:
                    first_ns = ns
                result = run(point)
                if result is not None:
                    lines.append(line_of(result, point, ns))
                    if len(lines) >= batch_size:
                        writer.put(lines)
                        results += len(lines)
                        lines = []
                        if bar is not None:
                            bar.update(count + 1 - bar.n)
                last_ns = ns
                count += 1
                if every and count % every == 0:
                    writer.put(lines)
                    results += len(lines)
                    lines = []
                    writer.flush()
                    self.save_checkpoint(ns)
            failed = False
        finally:
            # Store what the model answered so far, also when it raised: a resumed run continues there.
            try:
                writer.put(lines)
                results += len(lines)
                writer.close()
            except BaseException:
                if not failed:
                    raise
                log.exception("could not store the results before the error")
            if bar is not None:
                bar.update(count - bar.n)
                bar.close()
        if last_ns is not None and self.checkpoint is not None:
            self.save_checkpoint(last_ns)
        return RunReport(
            points=count,
            results=results,
            first=from_ns(first_ns) if first_ns is not None else None,
            last=from_ns(last_ns) if last_ns is not None else None,
            elapsed=time.perf_counter() - started,
        )

    def _progress_bar(self, lo: int | None, hi: int | None, aggregation: str | None) -> Any:
        from tqdm.auto import tqdm

        total = None if aggregation is not None else self._count(lo, hi)
        return tqdm(total=total, unit="pt", desc=f"{self.sensor} {self.store.model_id}")

    def _count(self, lo: int | None, hi: int | None) -> int:
        from influxhtm.influxql import count

        row = self.sensor.query(lo, hi).select(count("value")).first()
        return 0 if row is None else int(row.count)

    # -- live ------------------------------------------------------------------------
    def run_live(
        self,
        poll_interval: float = 1.0,
        stop: _threading.Event | None = None,
        max_points: int | None = None,
        mode: str = "poll",
        *,
        since: TimeLike | None = None,
        chunk_size: int = 10_000,
        retention_policy: str = "autogen",
    ) -> RunReport:
        """Process points newer than the last processed one as they arrive, until `stop` or `max_points`.

        See `influxhtm.running.live` for the guarantees and the two modes ("poll", "subscription").
        """
        with self.holding_checkpoint():
            return run_live(self, poll_interval=poll_interval, stop=stop, max_points=max_points, mode=mode,
                            since=since, chunk_size=chunk_size, retention_policy=retention_policy)


class BackgroundWriter:
    """Writes batches of line protocol through the one write pipeline (`influxhtm.io.writing`), so the
    model keeps working while results travel.

    At most `depth` batches wait; an error sending one is raised by the next `put`, `flush` or
    `close` (and nothing after it is sent); refusals are raised by `flush` and `close`, with the
    exact counts.
    """

    def __init__(self, client: Any, depth: int = 2):
        self.client = client
        self._pipeline = WritePipeline(client, depth=depth)

    def put(self, lines: list[str]) -> None:
        if lines:
            self._stopping_on_error(lambda: self._pipeline.put(Batch.of_lines(lines)))

    def flush(self) -> None:
        """Wait until every batch given so far is stored."""
        self._stopping_on_error(self._pipeline.flush)
        self._pipeline.check()

    def _stopping_on_error(self, action: Any) -> None:
        try:
            action()
        except BaseException:
            self._pipeline.discard()
            raise

    def close(self) -> None:
        """Store everything given so far and stop the thread."""
        self._pipeline.close()


__all__ = ["BackgroundWriter", "Runner", "as_model"]
