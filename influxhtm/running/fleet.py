"""`Fleet`: a model for every sensor a selector matches, live, in one process or across a Dask cluster.

One service keeps a model per sensor (`routing.Selector`: measurements, a regex
of measurements, tag filters), with the engine and parameters given once and
per-sensor overrides. Every model is registered in the model registry like any
other; a sensor that appears gets a model, one that disappears is released.

Points arrive by push (one subscription for the whole database: each pushed
point is routed to its sensor) or by poll. As in a live run
(`influxhtm.running.live`), a push is only news: the values a model sees are
read from the server, a forged push feeds nothing. Results of many sensors are
written together, in one batch per round, through the one write pipeline.

A `Shard` runs the sensors it owns; `ModelCache` bounds the models in memory
(checkpointing and evicting the least recently used). A result is stored under
its series and the time of the point it answers, and a checkpoint records the
last point whose result is stored: after any stop, crash or move a sensor
resumes from its checkpoint and recomputes (overwrites) what came after, so
every input point has exactly one stored result.

With a `dask.distributed` client (or scheduler address) the sensors are split
across the workers by rendezvous hashing, one long-running `Shard` per worker;
when workers join or leave only the sensors whose owner changes move (released
and checkpointed by their old shard, then restored by the new one); the others
never stop (see `influxhtm.running.fleet_dask` and `docs/fleet.rst`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs

from influxhtm.core.errors import ValidationError
from influxhtm.core.times import to_ns
from influxhtm.running.fleet_shard import MODES, FleetSpec, Interrupted, Shard, Timing, run_shard_loop
from influxhtm.running.routing import Selector, SensorKey, owner_of
from influxhtm.running.subscription import Subscription, SubscriptionReceiver

log = logging.getLogger(__name__)


@attrs.define
class FleetReport:
    """What a fleet did: sensors, points, results, errors, models evicted and restored, lag."""

    sensors: int
    points: int
    results: int
    errors: int
    evictions: int
    restores: int
    elapsed: float
    lag_p50: float | None = None
    lag_p95: float | None = None
    failed: dict[str, str] = attrs.field(factory=dict)


class Fleet:
    """A live model for every sensor `selector` matches (see the module's text).

    `measurements` (a name or names), `regex` (of measurement names) and `tags`
    make the selector; `engine` (a name or a picklable factory) and `params` are
    given once, `overrides` maps "measurement/component" to parameters of its own.
    `max_models` / `max_bytes` bound the models in memory; `checkpoint_dir` keeps
    their checkpoints (shared by every worker on a cluster). `mode` is
    "subscription" (push; the default) or "poll". `scheduler` is a
    `dask.distributed.Client` or a scheduler address: the sensors are split over
    its workers; without it everything runs in this process. `replace_grace` is how
    many seconds the sensors of a Dask worker that is gone wait for a replacement of
    the same name (a nanny's restart) before they move to the other workers.
    """

    def __init__(
        self,
        client: Any,
        measurements: str | Iterable[str] | None = None,
        *,
        regex: str | None = None,
        tags: Mapping[str, str] | None = None,
        engine: Any = "brainblocks",
        params: Mapping[str, Any] | None = None,
        overrides: Mapping[Any, Mapping[str, Any]] | None = None,
        model_id: str | None = None,
        checkpoint_dir: str | Path = "influxhtm-fleet",
        max_models: int | None = None,
        max_bytes: int | None = None,
        checkpoint_every: int = 1000,
        mode: str = "subscription",
        since: Any = None,
        poll_interval: float = 1.0,
        discover_interval: float = 10.0,
        status_interval: float = 1.0,
        chunk_size: int = 10_000,
        scheduler: Any = None,
        retention_policy: str = "autogen",
        replace_grace: float = 10.0,
    ):
        if mode not in MODES:
            raise ValidationError({"mode": [f"{mode!r} is not one of {', '.join(MODES)}"]})
        for name, value, least in (("poll_interval", poll_interval, "positive"),
                                   ("discover_interval", discover_interval, "positive"),
                                   ("status_interval", status_interval, "positive"),
                                   ("replace_grace", replace_grace, "0 or more")):
            if (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0
                    or (value == 0 and least == "positive")):
                raise ValidationError({name: [f"{value!r} is not a number of seconds ({least})"]})
        self.client = client
        self.spec = FleetSpec(
            database=client.database, settings=client.settings,
            selector=Selector(measurements, regex, tags), engine=engine, params=dict(params or {}),
            overrides=overrides or {}, model_id=model_id, checkpoint_dir=str(checkpoint_dir),
            max_models=max_models, max_bytes=max_bytes, checkpoint_every=checkpoint_every,
            since=to_ns(since, name="since") if since is not None else None, chunk_size=chunk_size,
            create=client.create,
        )
        self.mode = mode
        self.timing = Timing(float(poll_interval), float(discover_interval), float(status_interval))
        self.scheduler = scheduler
        self.retention_policy = retention_policy
        self.replace_grace = float(replace_grace)
        self.stop_event = threading.Event()
        self.shard: Shard | None = None
        self.last_status: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"Fleet({self.spec.selector!r}, engine={self.spec.engine!r}, mode={self.mode!r})"

    def stop(self) -> None:
        """Ask the fleet to stop: every model is checkpointed and `run` returns."""
        self.stop_event.set()

    def discover(self) -> set[SensorKey]:
        return self.spec.selector.discover(self.client)

    def run(self, *, max_points: int | None = None,
            on_status: Callable[[dict[str, Any]], None] | None = None) -> FleetReport:
        """Run until `stop()` (or `max_points` points, in one process); checkpoints every model at the end."""
        started = time.perf_counter()
        if self.scheduler is not None:
            from influxhtm.running.fleet_dask import run_on_dask

            totals = run_on_dask(self, on_status=on_status)
            return self._report(totals, started)
        shard = self.shard = Shard(self.spec, self.client, stop=self.stop_event)

        def report(status: dict[str, Any]) -> None:
            self.last_status = status
            if on_status is not None:
                on_status(status)

        if self.mode == "poll":
            run_shard_loop(shard, news=None, timing=self.timing, discover=self.discover, report=report,
                           max_points=max_points)
        else:
            self._run_pushed(shard, report, max_points)
        totals = shard.status()
        totals["failed_sensors"] = {f"{k[0]}/{k[1]}": t.failed for k, t in shard.sensors.items() if t.failed}
        return self._report(totals, started)

    def _run_pushed(self, shard: Shard, report: Callable[[dict[str, Any]], None],
                    max_points: int | None) -> None:
        selector = self.spec.selector
        receiver = SubscriptionReceiver(lambda p: selector.matches(p.measurement, p.tags),
                                        database=self.client.database).start()
        subscription = Subscription(self.client, receiver.url, retention_policy=self.retention_policy)
        try:
            shard.until_done(subscription.create)
            run_shard_loop(shard, news=receiver.points, timing=self.timing, discover=self.discover,
                           report=report, max_points=max_points)
        except Interrupted:
            shard.close()
        finally:
            subscription.drop()
            receiver.stop()

    @staticmethod
    def _report(totals: Mapping[str, Any], started: float) -> FleetReport:
        return FleetReport(
            sensors=totals.get("sensors", 0), points=totals.get("points", 0),
            results=totals.get("results", 0),
            errors=totals.get("errors", 0), evictions=totals.get("evictions", 0),
            restores=totals.get("restores", 0), elapsed=time.perf_counter() - started,
            lag_p50=totals.get("lag_p50"), lag_p95=totals.get("lag_p95"),
            failed=dict(totals.get("failed_sensors") or {}),
        )


def status_line(status: Mapping[str, Any], rate: float) -> str:
    """The one-line status: sensors, models in memory, points/s, p50/p95 lag, errors."""
    from influxhtm.running.report import format_seconds

    def lag(value: float | None) -> str:
        return "-" if value is None else format_seconds(value)

    return (f"sensors {status.get('sensors', 0)}  in memory {status.get('in_memory', 0)}  "
            f"{rate:,.1f} points/s  lag p50 {lag(status.get('p50'))} p95 {lag(status.get('p95'))}  "
            f"errors {status.get('errors', 0)}")


__all__ = ["Fleet", "FleetReport", "FleetSpec", "Shard", "Timing", "owner_of", "run_shard_loop",
           "status_line"]
