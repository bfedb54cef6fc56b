"""A `Fleet` across the workers of a `dask.distributed` cluster.

The coordinator (the process that called `Fleet.run`) starts one long-running
shard task per worker, pinned to it; each shard runs the sensors that
`routing.owner_of` gives its worker, with its own connection to InfluxDB, and
writes its own results and checkpoints (the checkpoint directory must be shared
by every worker: a network file system on a real cluster). In push mode the
coordinator holds the one subscription and forwards each pushed point's news
to its owner through a Dask `Queue`; shards read the values from the server.

Rebalancing is incremental. The coordinator publishes an *assignment* (a Dask
`Variable`): an epoch, the workers, and a phase. When the workers change (one
joins, leaves or dies) it publishes a new epoch in the *release* phase: every
live shard stores its results, checkpoints and drops exactly the sensors whose
owner changes (`Shard.remove`), keeps running the others, and acknowledges (a
Dask `Queue`). Once every live shard has acknowledged, the coordinator
publishes the *run* phase: each shard takes the sensors it gained, restores
them from the checkpoints just written and catches them up, a group at a time
for up to TAKE_SLICE seconds per round, serving the sensors it kept between
rounds (a survivor that gains hundreds of models does not stall its own
sensors while it restores them all). So a sensor runs in
at most one shard at a time, and one that keeps its owner never stops. A new
worker gets a shard at once (holding nothing until the run phase).

Workers own sensors by *name* (`owner_of` over the workers' Dask names): a
nanny restarts a killed worker under its name, so its replacement takes exactly
its sensors and no other sensor moves. A worker gone keeps its sensors for
`Fleet.replace_grace` seconds; with no replacement by then, a new epoch moves
them to the others (and back if the name returns). The sensors of a dead worker
resume on their new owners from their last checkpoints and recompute what came
after them; results are keyed by series and time, so each
input point still has exactly one stored result. Pushed news goes to the
owner of the newest epoch (a new owner drops it until the run phase and then
reads from its checkpoint anyway).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from influxhtm.running.report import LagHistogram
from influxhtm.running.routing import SensorKey, owner_of

if TYPE_CHECKING:
    from influxhtm.running.fleet_shard import FleetSpec, Shard, Timing

log = logging.getLogger(__name__)

#: Seconds between two looks at the cluster's workers, and the longest wait for the shards to stop.
MEMBERSHIP_CHECK = 0.5
STOP_TIMEOUT = 120.0
#: Seconds pushed news is gathered before it is forwarded to the shards.
FORWARD_EVERY = 0.02
#: Seconds between two looks of a shard at its queue of news.
NEWS_POLL = 0.05
#: Seconds between two looks of a shard at the assignment.
ASSIGNMENT_POLL = 0.05
#: Seconds of releasing models a shard does per round (between them it serves the sensors it keeps).
RELEASE_SLICE = 0.2
#: Seconds of taking gained sensors a shard does per round (restoring and catching up a group of
#: TAKE_GROUP at a time; between rounds it serves the sensors it kept). At least one group per round.
TAKE_SLICE = 0.2
TAKE_GROUP = 4  # BrainBlocks: about 60 ms a restore, so a group is about one slice
#: The phases of an assignment (see the module's text).
RELEASE, RUN, STOP = "release", "run", "stop"


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


class Membership:
    """A shard's side of the assignment: which sensors it runs now, and following a new one.

    `running` are the workers of the last run phase it followed (None before its first);
    during a release phase it runs only the sensors it owns under both those and the new workers.
    """

    def __init__(self, me: str, first: Mapping[str, Any], shard_key: str | None = None):
        self.me = me
        self.shard_key = shard_key  # this shard's task key: one the assignment no longer names stops
        self.named = False  # whether the assignment has named this shard (a new one may see its predecessor)
        self.latest: Mapping[str, Any] = first  # the newest assignment read (see `shard_task`)
        self.phase: str = first["phase"]
        self.target: list[str] = list(first["workers"])
        self.running: list[str] | None = None
        self.followed: tuple[int, str] | None = None
        self.handover_s: dict[str, float] = {}  # seconds the last release and take-over took here
        self.releasing: float | None = None  # when the release under way began
        #: Sensors gained in the run phase and not taken yet (`owns` them not until taken), and
        #: when that take-over began.
        self.gained: set[SensorKey] = set()
        self.taking: float | None = None
        if self.phase == RUN:  # a shard started in a run phase holds nothing to release
            self.running = self.target
            self.followed = (first["epoch"], RUN)

    def owns(self, key: SensorKey) -> bool:
        """Whether this shard runs sensor `key` now (`Shard.owns`)."""
        running = self.running
        if key in self.gained or not running or self.me not in running or owner_of(key, running) != self.me:
            return False
        return self.phase == RUN or (self.me in self.target and owner_of(key, self.target) == self.me)

    def follow(self, shard: Shard, discover: Callable[[], set[SensorKey]],
               ack: Callable[[int], None]) -> None:
        """Follow the newest assignment: release and acknowledge, or take the sensors gained, or stop."""
        latest = self.latest
        if self.replaced(latest):
            shard.stop.set()  # the coordinator cancelled this shard (a cancelled Dask task runs on)
            return
        step = (int(latest["epoch"]), str(latest["phase"]))
        if step == self.followed:
            if self.gained and self.phase == RUN:
                self._take(shard)  # the next slice of a take-over (a new epoch's release stops it)
            return
        self.target, self.phase = list(latest["workers"]), step[1]
        if self.phase == STOP or self.me not in self.target:
            shard.stop.set()  # the fleet stops, or this worker is no longer one of it
        elif self.phase == RELEASE:
            if not self._release(shard):
                return  # more to release in the next round
            try:
                ack(step[0])
            except Exception as error:  # noqa: BLE001 - the scheduler away for a moment: ask again
                log.warning("fleet shard on %s: acknowledging epoch %d: %s", self.me, step[0], error)
                return
        else:
            self.running, self.gained, self.taking = self.target, set(), time.monotonic()
            present = shard.until_done(discover) or set()
            self.gained = {key for key in present if key not in shard.sensors and self.owns(key)}
            self._take(shard)
        self.followed = step

    def replaced(self, latest: Mapping[str, Any]) -> bool:
        """Whether the assignment, having named this shard task for this worker, names another now."""
        current = (latest.get("shards") or {}).get(self.me)
        if self.shard_key is None or current is None:
            return False
        self.named = self.named or current == self.shard_key
        return self.named and current != self.shard_key

    def _take(self, shard: Shard) -> None:
        """Take gained sensors, TAKE_GROUP at a time, for up to TAKE_SLICE seconds (at least one group)."""
        deadline = time.monotonic() + TAKE_SLICE
        while self.gained and not shard.done():
            group = sorted(self.gained)[:TAKE_GROUP]
            self.gained.difference_update(group)  # owned from now on
            shard.take(group)  # added, restored and caught up
            if time.monotonic() >= deadline:
                break
        if not self.gained and self.taking is not None:
            self.handover_s["take_over_s"] = time.monotonic() - self.taking
            self.taking = None

    def _release(self, shard: Shard) -> bool:
        """Release the sensors this shard loses, for up to RELEASE_SLICE seconds; whether all are."""
        now = time.monotonic()
        began = self.releasing = self.releasing or now
        deadline = now + RELEASE_SLICE
        for key in [key for key in shard.sensors if not self.owns(key)]:
            if time.monotonic() >= deadline:
                return False
            shard.remove(key)  # its results stored, its model checkpointed and dropped
        shard.released()  # the checkpoints written (beside the loop, in parallel) before the ack
        self.handover_s["release_s"] = time.monotonic() - began
        self.releasing = None
        return True


def shard_task(spec: FleetSpec, timing: Timing, me: str, name: str, push: bool,
               shard_key: str) -> dict[str, Any]:
    """Run one worker's shard, following the coordinator's assignment, until it stops; its final status."""
    from distributed import Queue, Variable, secede

    from influxhtm.htm.client import InfluxHtmClient
    from influxhtm.running.fleet_shard import Shard, run_shard_loop

    secede()  # a long-running task: leave the worker's thread pool free
    assignment = Variable(f"{name}-assignment")
    membership = Membership(me, assignment.get(), shard_key)
    client = InfluxHtmClient.from_settings(spec.database, spec.settings, create=spec.create)
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            with contextlib.suppress(Exception):  # the scheduler is away for a moment: look again
                membership.latest = latest = assignment.get(timeout=1)
                if latest["phase"] == STOP:
                    stop.set()
                    return
            stop.wait(ASSIGNMENT_POLL)

    watcher = threading.Thread(target=watch, name="influxhtm-fleet-assignment", daemon=True)
    watcher.start()
    stats, acks = Queue(f"{name}-stats"), Queue(f"{name}-acks")
    shard = Shard(spec, client, owns=membership.owns, stop=stop)

    def discover() -> set[SensorKey]:
        return spec.selector.discover(client)

    def report(status: dict[str, Any]) -> None:
        with contextlib.suppress(Exception):
            stats.put({**status, **membership.handover_s, "worker": me, "shard": shard_key})

    def ack(epoch: int) -> None:
        acks.put({"worker": me, "shard": shard_key, "epoch": epoch})

    try:
        run_shard_loop(shard, news=DaskNews(f"{name}-news-{me}") if push else None, timing=timing,
                       discover=discover, report=report,
                       between=lambda: membership.follow(shard, discover, ack))
    finally:
        stop.set()
        client.close()
    return {**shard.status(), "worker": me, "shard": shard_key}


def _workers(dask: Any) -> dict[str, str] | None:
    """The scheduler's workers, asked now: name -> address (None if it could not be asked).

    A worker's *name* is what owns sensors: a nanny restarts a killed worker under the
    same name (at a new address), so its replacement takes exactly its sensors.

    Not `Client.scheduler_info()`: that returns the client's cached identity, which the
    client's own periodic update (every `distributed.client.scheduler-info-interval`)
    replaces with one that lists no workers; a look that raced with it saw every worker
    gone (at full size twice in five minutes: every shard ended and restarted).
    """
    try:
        identity = dask.sync(dask.scheduler.identity, n_workers=-1)
    except OSError as error:
        log.warning("fleet: could not ask the scheduler for its workers: %s", error)
        return None
    workers = identity.get("workers") or {}
    return {str(info.get("name", address)): address for address, info in sorted(workers.items())}


def worker_names(dask: Any) -> dict[str, str]:
    """The cluster's workers now, by the name that owns sensors (`owner_of(key, sorted(names))`)."""
    return _workers(dask) or {}


#: The counts of a shard, summed over every shard that ran; the figures of the live shards, summed.
COUNTS = ("points", "results", "errors", "evictions", "restores")
GAUGES = ("sensors", "in_memory", "failed")
STARTUP = ("sync_s", "catch_up_s")


class Coordinator:
    """Starts and watches the shards, publishes the assignment and hands sensors over (see the module)."""

    def __init__(self, fleet: Any, dask: Any, on_status: Callable[[dict[str, Any]], None] | None):
        self.fleet = fleet
        self.dask = dask
        self.on_status = on_status
        self.name = f"influxhtm-fleet-{uuid.uuid4().hex[:10]}"
        self.epoch = 0
        self.phase = RUN
        self.workers: list[str] = []  # the workers (names) of the newest epoch
        self.shards: dict[str, Any] = {}  # worker name -> the future of its shard task
        self.addresses: dict[str, str] = {}  # worker name -> the address its shard task is pinned to
        self.gone: dict[str, float] = {}  # worker name -> since when it is gone (awaiting a replacement)
        self.waiting: set[str] = set()  # workers whose release of this epoch is awaited
        self.released_at = 0.0
        self.started = 0
        self.handovers: list[float] = []  # seconds from a release phase to its run phase
        self.latest: dict[str, dict[str, Any]] = {}  # shard task key -> its newest status
        self.done_totals = dict.fromkeys(COUNTS, 0)
        self.done_lag = LagHistogram()  # the lag of every point of the shards that ended
        self.queues: dict[str, Any] = {}
        self.assignment: Any = None
        self.stats: Any = None
        self.acks: Any = None

    def run(self, news: queue.Queue[Any] | None) -> dict[str, Any]:
        from distributed import Queue, Variable

        self.assignment = Variable(f"{self.name}-assignment", client=self.dask)
        self.stats = Queue(f"{self.name}-stats", client=self.dask)
        self.acks = Queue(f"{self.name}-acks", client=self.dask)
        next_check = next_status = time.monotonic()
        try:
            while not self.fleet.stop_event.is_set():
                if news is not None and self.workers:
                    self._forward(news)
                else:
                    self.fleet.stop_event.wait(FORWARD_EVERY)
                now = time.monotonic()
                if now >= next_check:
                    self._check_members()
                    next_check = now + MEMBERSHIP_CHECK
                if self.phase == RELEASE:
                    self._read_acks()
                if now >= next_status:
                    self._read_stats()
                    next_status = now + self.fleet.timing.status_interval
        finally:
            self._stop_all()
        return self.current()

    # -- membership and the assignment -------------------------------------------------------------
    def _check_members(self) -> None:
        """Forget the shards of workers gone (and restart ended ones); a new epoch if the workers changed.

        A worker gone keeps its sensors for `Fleet.replace_grace` seconds: a replacement of
        the same name (its nanny's restart) takes them, and no other sensor moves.
        """
        alive = _workers(self.dask)
        if alive is None:
            return  # the scheduler away for a moment: look again at the next check
        now = time.monotonic()
        for worker, future in list(self.shards.items()):
            if alive.get(worker) != self.addresses.get(worker) or future.done():
                self._ended(worker, future)
        for worker in self.workers:
            if worker not in alive:
                self.gone.setdefault(worker, now)  # a member gone: since now, or since it was first seen gone
        self.gone = {worker: since for worker, since in self.gone.items()
                     if worker not in alive and now - since < self.fleet.replace_grace}
        members = sorted({*alive, *self.gone})
        if members != self.workers:
            self.workers = members
            if members:
                self._new_epoch()
        missing = [worker for worker in alive if worker not in self.shards]
        for worker in missing:
            self._start(worker, alive[worker])
        if missing and self.assignment is not None:
            self._publish()  # names the new shards: a cancelled one still running stops

    def _new_epoch(self) -> None:
        self.epoch += 1
        self.waiting = set(self.shards)  # every live shard may hold sensors that move
        self.phase = RELEASE if self.waiting else RUN
        self.released_at = time.monotonic()
        self._publish()
        log.info("fleet epoch %d on %d workers (%s)", self.epoch, len(self.workers), self.phase)

    def _publish(self) -> None:
        self.assignment.set({"epoch": self.epoch, "workers": self.workers, "phase": self.phase,
                             "shards": {worker: future.key for worker, future in self.shards.items()}})

    def _read_acks(self) -> None:
        """Once every live shard has released what it loses, publish the run phase."""
        with contextlib.suppress(Exception):
            for ack in self.acks.get(batch=True):
                future = self.shards.get(ack.get("worker", ""))
                if ack.get("epoch") == self.epoch and future is not None and future.key == ack.get("shard"):
                    self.waiting.discard(ack.get("worker", ""))  # from the worker's current shard only
        if not self.waiting & set(self.shards):
            self.phase = RUN
            self._publish()
            self.handovers.append(time.monotonic() - self.released_at)
            log.info("fleet epoch %d: released in %.3f s", self.epoch, self.handovers[-1])

    def _start(self, worker: str, address: str) -> None:
        """Start the shard of worker `worker` (a name) on its process at `address`."""
        self.started += 1
        self.addresses[worker] = address
        self.shards[worker] = self.dask.submit(
            shard_task, self.fleet.spec, self.fleet.timing, worker, self.name, self.fleet.mode != "poll",
            f"{self.name}-shard-{self.started}",
            key=f"{self.name}-shard-{self.started}", workers=[address], allow_other_workers=False, pure=False,
        )

    def _ended(self, worker: str, future: Any) -> None:
        """A shard task ended or its worker is gone: keep its counts, forget it."""
        del self.shards[worker]
        self.addresses.pop(worker, None)
        self.waiting.discard(worker)
        status = self.latest.pop(future.key, None)
        if future.done() and future.status == "finished":
            status = future.result()
        else:
            with contextlib.suppress(Exception):
                log.warning("fleet shard on %s ended: %r", worker,
                            future.exception(timeout=0) if future.done() else "its worker is gone")
        future.cancel()
        for key in COUNTS:
            self.done_totals[key] += (status or {}).get(key, 0)
        self.done_lag.merge((status or {}).get("lag_histogram") or ())

    def _stop_all(self) -> None:
        """Stop every shard (each stores its results and checkpoints its models); keep their figures."""
        from distributed import wait

        self.phase = STOP
        with contextlib.suppress(Exception):
            self._publish()
            alive = _workers(self.dask) or {}  # a shard whose worker is gone will not answer
            wait([future for worker, future in self.shards.items()
                  if alive.get(worker) == self.addresses.get(worker)], timeout=STOP_TIMEOUT)
        self._read_stats()
        for worker, future in self.shards.items():
            if future.done() and future.status == "finished":
                self.latest[future.key] = future.result()
            else:
                log.warning("fleet shard on %s did not stop in time", worker)
            future.cancel()

    # -- news and figures -------------------------------------------------------------------------------
    def _forward(self, news: queue.Queue[Any]) -> None:
        """Send the pushed points' news to the shards that own their sensors (in the newest epoch)."""
        from distributed import Queue

        batches: dict[str, list[tuple[str, str, int, float]]] = {}
        deadline = time.monotonic() + FORWARD_EVERY
        while True:
            try:
                pushed = news.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if pushed.series is not None:
                key: SensorKey = pushed.series
                owner = owner_of(key, self.workers)
                batches.setdefault(owner, []).append((*key, pushed.time, pushed.received))
        for worker, batch in batches.items():
            with contextlib.suppress(Exception):  # a worker gone: its sensors catch up from their checkpoints
                if worker not in self.queues:
                    self.queues[worker] = Queue(f"{self.name}-news-{worker}", client=self.dask)
                self.queues[worker].put(batch)

    def _read_stats(self) -> None:
        live = {future.key for future in self.shards.values()}
        with contextlib.suppress(Exception):
            for status in self.stats.get(batch=True):
                if status.get("shard") in live:
                    self.latest[status["shard"]] = status
        if self.on_status is not None:
            self.on_status(self.current())

    def current(self) -> dict[str, Any]:
        """The fleet's status: counts summed over every shard, figures over the live ones (the window's
        p50/p95 of the worst), the lag (`lag_p50`, `lag_p95`) over every point of every shard."""
        status: dict[str, Any] = dict(self.done_totals)
        lag = LagHistogram(self.done_lag.pairs())
        for shard_status in self.latest.values():
            for key in (*COUNTS, *GAUGES):
                status[key] = status.get(key, 0) + shard_status.get(key, 0)
            for key in ("p50", "p95", "release_s", "take_over_s"):
                if shard_status.get(key) is not None:
                    status[key] = max(status.get(key) or 0.0, shard_status[key])
            lag.merge(shard_status.get("lag_histogram") or ())
        status["lag_p50"], status["lag_p95"] = lag.quantile(0.5), lag.quantile(0.95)
        #: How long each worker's current shard took to start (`Shard.startup_s`).
        status["startups"] = {shard_status.get("worker"): {key: shard_status[key] for key in STARTUP
                                                           if key in shard_status}
                              for shard_status in self.latest.values()}
        status.update(workers=len(self.shards), epoch=self.epoch, handing_over=self.phase == RELEASE,
                      handovers=len(self.handovers), handover_max_s=max(self.handovers, default=None),
                      shards_started=self.started)
        return status


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


__all__ = ["Coordinator", "DaskNews", "Membership", "run_on_dask", "shard_task"]
