"""A `Fleet` across the workers of a `dask.distributed` cluster.

The coordinator (the process that called `Fleet.run`) starts one long-running
shard task per worker, pinned to it; each shard runs the sensors that
`routing.owner_of` gives its worker, with its own connection to InfluxDB, and
writes its own results and checkpoints (the checkpoint directory must be shared
by every worker: a network file system on a real cluster). In push mode the
coordinator holds the one subscription and forwards each pushed point's news
to its owner through a Dask `Queue`; shards read the values from the server.

When the workers change (one joins, leaves or dies) the coordinator stops the
generation (a Dask `Event`): every live shard stores its results and checkpoints
every model; then a new generation starts with the new split. The sensors of a
dead worker resume on the others from their last checkpoints and recompute what
came after them; results are keyed by series and time, so each input point
still has exactly one stored result.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from influxhtm.running.report import LagHistogram
from influxhtm.running.routing import SensorKey, owner_of

if TYPE_CHECKING:
    from influxhtm.running.fleet_shard import FleetSpec, Timing

log = logging.getLogger(__name__)

#: Seconds between two looks at the cluster's workers, and the longest wait for a generation to stop.
MEMBERSHIP_CHECK = 0.5
STOP_TIMEOUT = 120.0
#: Seconds pushed news is gathered before it is forwarded to the shards.
FORWARD_EVERY = 0.02
#: Seconds between two looks of a shard at its queue of news.
NEWS_POLL = 0.05


class DaskNews:
    """A Dask `Queue` of lists of (measurement, component, ns, received), read like a `queue.Queue`."""

    def __init__(self, name: str):
        from distributed import Queue

        self.queue = Queue(name)

    def get(self, timeout: float) -> list[tuple[str, str, int, float]]:
        """What is queued, waiting up to `timeout` seconds (queue.Empty if nothing came).

        The queue is asked without a timeout every NEWS_POLL seconds: a Dask queue's
        timed-out `get` is logged as an error by the scheduler.
        """
        deadline = time.monotonic() + timeout
        while True:
            points = _points(self.queue.get(batch=True))
            if points:
                return points
            left = deadline - time.monotonic()
            if left <= 0:
                raise queue.Empty()
            time.sleep(min(NEWS_POLL, left))

    def get_nowait(self) -> list[tuple[str, str, int, float]]:
        return self.get(0.0)


def _points(item: Any) -> list[tuple[str, str, int, float]]:
    """The (measurement, component, ns, received) of a forwarded batch, however lists were nested."""
    if isinstance(item, (list, tuple)) and len(item) == 4 and isinstance(item[0], str):
        return [(str(item[0]), str(item[1]), int(item[2]), float(item[3]))]
    if isinstance(item, (list, tuple)):
        return [point for part in item for point in _points(part)]
    return []


def shard_task(spec: FleetSpec, timing: Timing, me: str, workers: list[str], stop_name: str,
               news_name: str | None, stats_name: str) -> dict[str, Any]:
    """Run one worker's shard until the generation's stop event; its final status."""
    from distributed import Event, Queue, secede

    from influxhtm.htm.client import InfluxHtmClient
    from influxhtm.running.fleet_shard import Shard, run_shard_loop

    secede()  # a long-running task: leave the worker's thread pool free
    client = InfluxHtmClient.from_settings(spec.database, spec.settings, create=spec.create)
    stop = threading.Event()
    generation_stop = Event(stop_name)

    def watch() -> None:
        while not stop.is_set():
            with contextlib.suppress(Exception):  # the scheduler is away for a moment: look again
                if generation_stop.wait(timeout=0.5):
                    stop.set()
                    return
            time.sleep(0.01)

    watcher = threading.Thread(target=watch, name="influxhtm-fleet-stop", daemon=True)
    watcher.start()
    stats = Queue(stats_name)
    shard = Shard(spec, client, owns=lambda key: owner_of(key, workers) == me, stop=stop)

    def report(status: dict[str, Any]) -> None:
        with contextlib.suppress(Exception):
            stats.put({**status, "worker": me, "generation": stop_name})

    try:
        run_shard_loop(shard, news=DaskNews(news_name) if news_name else None, timing=timing,
                       discover=lambda: spec.selector.discover(client), report=report)
    finally:
        stop.set()
        client.close()
    return {**shard.status(), "worker": me, "generation": stop_name}


def _workers(dask: Any) -> list[str]:
    return sorted(dask.scheduler_info()["workers"])


class Coordinator:
    """Starts, watches and stops the generations of shards (see the module's text)."""

    def __init__(self, fleet: Any, dask: Any, on_status: Callable[[dict[str, Any]], None] | None):
        self.fleet = fleet
        self.dask = dask
        self.on_status = on_status
        self.name = f"influxhtm-fleet-{uuid.uuid4().hex[:10]}"
        self.done_totals = {"points": 0, "results": 0, "errors": 0, "evictions": 0, "restores": 0}
        self.latest: dict[str, dict[str, Any]] = {}
        self.generations = 0
        self.snapshot: dict[str, Any] = {}
        self.done_lag = LagHistogram()  # the lag of every point of the generations that ended

    def run(self, news: queue.Queue[Any] | None) -> dict[str, Any]:
        from distributed import Queue

        stats = Queue(f"{self.name}-stats", client=self.dask)
        while not self.fleet.stop_event.is_set():
            workers = _workers(self.dask)
            if not workers:
                self.fleet.stop_event.wait(MEMBERSHIP_CHECK)
                continue
            self._generation(workers, news, stats)
        return self.totals()

    def _generation(self, workers: list[str], news: queue.Queue[Any] | None, stats: Any) -> None:
        from distributed import Event, Queue

        self.generations += 1
        tag = f"{self.name}-{self.generations}"
        stop = Event(f"{tag}-stop", client=self.dask)
        queues = {w: Queue(f"{tag}-news-{w}", client=self.dask) for w in workers} if news is not None else {}
        futures = {
            worker: self.dask.submit(
                shard_task, self.fleet.spec, self.fleet.timing, worker, workers, f"{tag}-stop",
                f"{tag}-news-{worker}" if news is not None else None, f"{self.name}-stats",
                key=f"{tag}-{worker}", workers=[worker], allow_other_workers=False, pure=False,
            )
            for worker in workers
        }
        log.info("fleet generation %d on %d workers", self.generations, len(workers))
        self.latest = {}
        next_check = time.monotonic() + MEMBERSHIP_CHECK
        next_status = time.monotonic() + self.fleet.timing.status_interval
        while not self.fleet.stop_event.is_set():
            if news is not None:
                self._forward(news, queues, workers)
            else:
                self.fleet.stop_event.wait(FORWARD_EVERY)
            now = time.monotonic()
            if now >= next_status:
                self._read_stats(stats)
                next_status = now + self.fleet.timing.status_interval
            if now >= next_check:
                next_check = now + MEMBERSHIP_CHECK
                if _workers(self.dask) != workers or any(f.done() for f in futures.values()):
                    break
        stop.set()
        self._read_stats(stats)
        self._settle(futures)
        self.snapshot = self.current()
        for status in self.latest.values():
            for key in self.done_totals:
                self.done_totals[key] += status.get(key, 0)
            self.done_lag.merge(status.get("lag_histogram") or ())
        self.latest = {}

    def _forward(self, news: queue.Queue[Any], queues: dict[str, Any], workers: list[str]) -> None:
        """Send the pushed points' news to the shards that own their sensors."""
        batches: dict[str, list[tuple[str, str, int, float]]] = {}
        deadline = time.monotonic() + FORWARD_EVERY
        while True:
            try:
                pushed = news.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if pushed.series is not None:
                key: SensorKey = pushed.series
                batches.setdefault(owner_of(key, workers), []).append((*key, pushed.time, pushed.received))
        for worker, batch in batches.items():
            with contextlib.suppress(Exception):  # a worker gone: its sensors catch up in the next generation
                queues[worker].put(batch)

    def _settle(self, futures: dict[str, Any]) -> None:
        """Wait for the live shards to checkpoint and stop; forget the ones of workers that are gone."""
        from distributed import wait

        alive = set(_workers(self.dask))
        live = [f for w, f in futures.items() if w in alive]
        with contextlib.suppress(Exception):
            wait(live, timeout=STOP_TIMEOUT)
        for worker, future in futures.items():
            if future.done() and future.status == "finished":
                self.latest[worker] = future.result()
            elif future.done():
                log.warning("fleet shard on %s ended with %r", worker, future.exception())
            future.cancel()

    def _read_stats(self, stats: Any) -> None:
        with contextlib.suppress(Exception):
            for status in stats.get(batch=True):
                if status.get("generation") == f"{self.name}-{self.generations}-stop":
                    self.latest[status["worker"]] = status
        if self.on_status is not None:
            self.on_status(self.current())

    def current(self) -> dict[str, Any]:
        """The fleet's status: sums over the workers; the lag over every point of every worker and
        generation (`lag_p50`, `lag_p95`); the window's `p50`/`p95` of the worst worker."""
        status: dict[str, Any] = {key: value for key, value in self.done_totals.items()}
        lag = LagHistogram(self.done_lag.pairs())
        for worker_status in self.latest.values():
            for key in ("points", "results", "errors", "evictions", "restores"):
                status[key] = status.get(key, 0) + worker_status.get(key, 0)
            for key in ("sensors", "in_memory", "failed"):
                status[key] = status.get(key, 0) + worker_status.get(key, 0)
            for key in ("p50", "p95"):
                if worker_status.get(key) is not None:
                    status[key] = max(status.get(key) or 0.0, worker_status[key])
            lag.merge(worker_status.get("lag_histogram") or ())
        status["lag_p50"], status["lag_p95"] = lag.quantile(0.5), lag.quantile(0.95)
        status["workers"] = len(self.latest)
        status["generations"] = self.generations
        return status

    def totals(self) -> dict[str, Any]:
        """The status at the end of the last generation, with the counts of every generation."""
        return {**self.snapshot, **self.done_totals, "lag_p50": self.done_lag.quantile(0.5),
                "lag_p95": self.done_lag.quantile(0.95), "generations": self.generations}


def run_on_dask(fleet: Any, on_status: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Run `fleet` on its Dask cluster (`fleet.scheduler`: a Client or a scheduler address)."""
    from distributed import Client

    from influxhtm.running.subscription import Subscription, SubscriptionReceiver

    owned = not isinstance(fleet.scheduler, Client)
    dask = Client(fleet.scheduler) if owned else fleet.scheduler
    receiver = subscription = None
    try:
        coordinator = Coordinator(fleet, dask, on_status)
        if fleet.mode == "subscription":
            selector = fleet.spec.selector
            receiver = SubscriptionReceiver(lambda p: selector.matches(p.measurement, p.tags),
                                            database=fleet.client.database).start()
            subscription = Subscription(fleet.client, receiver.url, retention_policy=fleet.retention_policy)
            subscription.create()
        totals = coordinator.run(receiver.points if receiver is not None else None)
        fleet.last_status = totals
        return totals
    finally:
        if subscription is not None:
            subscription.drop()
        if receiver is not None:
            receiver.stop()
        if owned:
            dask.close()


__all__ = ["Coordinator", "DaskNews", "run_on_dask", "shard_task"]
