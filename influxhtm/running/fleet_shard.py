"""The fleet's worker side: `FleetSpec` (what to run, picklable), `Shard` (the models of the
sensors one process owns: reading, routing, the model cache, batched result writes) and
`run_shard_loop`. `fleet.Fleet` runs one shard in its own process; `fleet_dask` runs one per
Dask worker (see `influxhtm.running.fleet`)."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs

from influxhtm.core.errors import InfluxConnectionError, ServerError, ValidationError
from influxhtm.core.times import from_ns
from influxhtm.influxql import Query
from influxhtm.io.settings import Settings
from influxhtm.io.writing import post_pipelined
from influxhtm.model.data_layout import SensorReading
from influxhtm.model.line_protocol import Batch
from influxhtm.running import checkpoint as checkpoints
from influxhtm.running.live import SETTLE_SECONDS, Interrupted, UntilDone
from influxhtm.running.model_cache import ModelCache
from influxhtm.running.report import LagHistogram
from influxhtm.running.routing import Selector, SensorKey
from influxhtm.running.subscription import PushedPoint

log = logging.getLogger(__name__)

MODES = ("subscription", "poll")
#: Sensors of a round whose checkpoints are read ahead of the one being fed (`ModelCache.prefetch`).
PREFETCH = 3


def _key_of(value: Any) -> SensorKey:
    if isinstance(value, str) and "/" in value:
        measurement, component = value.split("/", 1)
        return measurement, component
    if isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, str) for v in value):
        return value
    raise ValidationError({"overrides": [f"{value!r} is not a sensor ('measurement/component')"]})


def _overrides(value: Any) -> dict[SensorKey, dict[str, Any]]:
    out: dict[SensorKey, dict[str, Any]] = {}
    for key, params in dict(value or {}).items():
        if not isinstance(params, Mapping):
            raise ValidationError({"overrides": [f"{key!r}: {params!r} is not a dict of parameters"]})
        out[_key_of(key)] = dict(params)
    return out


def _optional_positive(name: str) -> Callable[[Any, Any, Any], None]:
    def check(_instance: Any, _attribute: Any, value: Any) -> None:
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValidationError({name: [f"{value!r} is not a positive integer"]})

    return check


@attrs.frozen
class FleetSpec:
    """Everything a shard needs, picklable (it travels to Dask workers)."""

    database: str
    settings: Settings
    selector: Selector
    engine: Any
    params: dict[str, Any] = attrs.field(factory=dict, converter=dict)
    overrides: dict[SensorKey, dict[str, Any]] = attrs.field(factory=dict, converter=_overrides)
    model_id: str | None = None
    checkpoint_dir: str = "influxhtm-fleet"
    max_models: int | None = attrs.field(default=None, validator=_optional_positive("max_models"))
    max_bytes: int | None = attrs.field(default=None, validator=_optional_positive("max_bytes"))
    checkpoint_every: int = attrs.field(default=1000, validator=_optional_positive("checkpoint_every"))
    since: int | None = None
    chunk_size: int = attrs.field(default=10_000, validator=_optional_positive("chunk_size"))
    create: bool = True

    def params_of(self, key: SensorKey) -> dict[str, Any]:
        return {**self.params, **self.overrides.get(key, {})}

    def model_id_of(self, key: SensorKey) -> str:
        from influxhtm.running.sweep import model_id_for

        return self.model_id or model_id_for(self.engine, self.params_of(key))


def checkpoint_offset(key: SensorKey, every: int) -> int:
    """Where sensor `key` starts counting towards its first checkpoint (0 to `every` - 1, a stable
    hash): sensors that start together are checkpointed in different rounds, not all in one
    (1,000 BrainBlocks checkpoints at once keep a worker busy for a minute). A resumed sensor
    still recomputes at most `every` points."""
    digest = hashlib.sha1("\n".join(key).encode()).digest()
    return int.from_bytes(digest[:4], "big") % max(1, every)


@attrs.define
class Tracked:
    """A sensor a shard runs: its store (registry entry), the last stored time, checkpoint counters."""

    sensor: Any
    store: Any
    identity: dict[str, Any]
    last_ns: int | None
    since_checkpoint: int = 0
    failed: str | None = None
    #: The newest result stored when this shard took the sensor: the points up to it are recomputed
    #: (a resume from an older checkpoint), their results were stored before, so they add no lag.
    replay_until: int | None = None


class Shard:
    """The sensors of one process: their models (bounded by `ModelCache`), reads, results, checkpoints."""

    def __init__(self, spec: FleetSpec, client: Any, *, owns: Callable[[SensorKey], bool] | None = None,
                 stop: threading.Event | None = None):
        from influxhtm.running.engines import get_engine
        from influxhtm.running.sweep import engine_name

        if isinstance(spec.engine, str):
            get_engine(spec.engine)
        self.spec = spec
        self.client = client
        self.owns = owns or (lambda key: True)
        self.stop = stop or threading.Event()
        self.engine_name = engine_name(spec.engine)
        self.sensors: dict[SensorKey, Tracked] = {}
        self.cache = ModelCache(
            spec.checkpoint_dir, self._make, self._identity, max_models=spec.max_models,
            max_bytes=spec.max_bytes, before_evict=self._before_evict,
        )
        self._fresh: dict[SensorKey, Any] = {}  # models made to register a sensor, used by its first take
        self._lines: list[str] = []
        self._unstored: dict[SensorKey, tuple[int, int]] = {}  # key -> (last ns fed, points fed)
        self._seen: list[tuple[int, float, bool]] = []  # (ns, wall time seen, a first result) of _lines
        self.points = 0
        self.results = 0
        self.own_errors = 0  # sensors that could not be added or failed
        self.lag = LagHistogram()  # point timestamp -> result stored, of each point's first result
        self.window_lag = LagHistogram()  # seen (pushed or read) -> stored, since the last status
        self.until_done = UntilDone(self.stop, "fleet")
        #: Stop after about this many points (a round may take one more chunk per sensor).
        self.max_points: int | None = None
        #: Seconds the shard's start took (`run_shard_loop`): finding and adding its sensors
        #: (`sync_s`), then restoring and catching them up (`catch_up_s`).
        self.startup_s: dict[str, float] = {}

    # -- sensors -------------------------------------------------------------------------
    def _identity(self, key: SensorKey) -> dict[str, Any]:
        return self.sensors[key].identity

    def _make(self, key: SensorKey) -> Any:
        from influxhtm.running.engines import create_model

        fresh = self._fresh.pop(key, None)
        if fresh is not None:
            return fresh
        return create_model(self.spec.engine, **(self.sensors[key].store.params or {}))

    def add(self, key: SensorKey, registered: Any = None) -> Tracked:
        """Run sensor `key`: register its model (or find it registered: `registered`, its store when
        known already) and read where it stopped."""
        from influxhtm.core.errors import ModelNotFound
        from influxhtm.htm.model_store import get_model
        from influxhtm.running.engines import create_model_for

        tracked = self.sensors.get(key)
        if tracked is not None:
            return tracked
        sensor = registered.sensor if registered is not None else self.client.create_sensor(*key)
        model_id = self.spec.model_id_of(key)
        try:
            store = registered if registered is not None else get_model(sensor, model_id)
            if not store.registered:
                raise ModelNotFound(model_id)
        except ModelNotFound:
            params = self.spec.params_of(key)
            model = create_model_for(sensor, self.spec.engine, **dict(params))
            resolved = getattr(model, "params", None)
            store = sensor.create_htm_model(
                model_id, params=resolved if isinstance(resolved, dict) else params,
                engine=self.engine_name, exist_ok=True,
            )
            if self.spec.max_models is None and self.spec.max_bytes is None:
                self._fresh[key] = model  # used by its first take; not held outside a bounded cache
        identity = checkpoints.identity(sensor, store, _Registered(store.params))
        identity["model_class"] = f"engine:{self.engine_name}"
        tracked = Tracked(sensor, store, identity, None)
        self.sensors[key] = tracked
        saved = self.cache.saved_last_ns(key)
        if saved is not None:  # its points count from its checkpoint: the checkpoints stay spread
            tracked.last_ns = saved
        else:  # a new model: its first checkpoint comes at a point of its own (`checkpoint_offset`)
            tracked.since_checkpoint = checkpoint_offset(key, self.spec.checkpoint_every)
            if self.spec.since is not None:
                tracked.last_ns = self.spec.since - 1
        return tracked

    def remove(self, key: SensorKey) -> None:
        """Release sensor `key`: store its results, checkpoint its model (written beside the loop:
        `released` waits for it), forget it."""
        if key not in self.sensors:
            return
        self.flush()
        self.cache.release(key)
        self._fresh.pop(key, None)
        del self.sensors[key]

    def sync(self, present: Iterable[SensorKey]) -> tuple[int, int]:
        """Run the owned sensors of `present` and release the others; (added, removed)."""
        wanted = {key for key in present if self.owns(key)}
        new = self._add_all(sorted(wanted - set(self.sensors)))
        removed = 0
        for key in sorted(set(self.sensors) - wanted):
            self.remove(key)
            removed += 1
        return len(new), removed

    def take(self, keys: Iterable[SensorKey]) -> list[SensorKey]:
        """Run `keys`, sensors this shard gained (a take-over slice, `fleet_dask.Membership`): add them,
        restore their models and catch up just them; the keys added. The caller then serves the
        sensors it kept before the next slice."""
        new = self._add_all(sorted(keys))
        self.catch_up(new)
        return new

    def _add_all(self, keys: list[SensorKey]) -> list[SensorKey]:
        """`try_add` each of `keys` (their registry entries found in one query), note their stored results."""
        registered = self.registered(keys)
        new = [key for key in keys if self.try_add(key, registered.get(key))]
        self.learn_stored(new)
        return new

    def registered(self, keys: Iterable[SensorKey]) -> dict[SensorKey, Any]:
        """The registered model stores of `keys`, from one registry query per measurement and model id
        (a shard that takes over hundreds of sensors does not ask for each one)."""
        from influxhtm.htm.model_store import get_models

        groups: dict[tuple[str, str], list[str]] = {}
        for key in keys:
            with contextlib.suppress(Exception):  # a bad model id is `add`'s to report
                groups.setdefault((key[0], self.spec.model_id_of(key)), []).append(key[1])
        found: dict[SensorKey, Any] = {}
        for (measurement, model_id), components in sorted(groups.items()):
            stores = self.until_done(functools.partial(get_models, self.client, measurement, model_id,
                                                       components)) or {}
            found.update({(measurement, component): store for component, store in stores.items()})
        return found

    def released(self) -> None:
        """Wait until the checkpoints of the sensors removed so far are written (a new owner reads them)."""
        self.cache.written()

    def try_add(self, key: SensorKey, registered: Any = None) -> bool:
        """`add`, counting a sensor that cannot be added (bad parameters, say) as an error of its own."""
        try:
            self.add(key, registered)
            return True
        except (InfluxConnectionError, ServerError):
            raise
        except Exception as error:  # noqa: BLE001 - one bad sensor is an error of its own, not the fleet's
            self.own_errors += 1
            log.warning("fleet: sensor %s/%s: %s", key[0], key[1], error)
            return False

    def learn_stored(self, keys: Iterable[SensorKey]) -> None:
        """Note each sensor's newest stored result (`Tracked.replay_until`): one query per result
        measurement and model id. A sensor resumed from an older checkpoint recomputes the points
        after it; their results were stored before (by a killed worker, a stopped run), so
        those points count as done, not as lag."""
        groups: dict[tuple[str, str], list[SensorKey]] = {}
        for key in keys:
            tracked = self.sensors.get(key)
            if tracked is not None:
                groups.setdefault((tracked.sensor.result_measurement, tracked.store.model_id), []).append(key)
        for (measurement, model_id), group in sorted(groups.items()):
            newest = self._newest_results(measurement, model_id, [key[1] for key in group])
            for key in group:
                self.sensors[key].replay_until = newest.get(key[1])

    def _newest_results(self, measurement: str, model_id: str, components: list[str]) -> dict[str, int]:
        from influxhtm.influxql.expressions import MAX_IN_VALUES

        query = Query().from_(measurement).select("*").where(id=model_id).group_by("component")
        if len(components) <= MAX_IN_VALUES:
            query = query.where(component=sorted(components))
        query = query.order_by("time", "desc").limit(1)
        series = self.until_done(lambda: self.client.result_series(query)) or []
        return {(part.get("tags") or {}).get("component", ""): part["values"][0][0]
                for part in series if part.get("values")}

    # -- reading ---------------------------------------------------------------------------
    def read(self, keys: Iterable[SensorKey], upto: int | None = None
             ) -> tuple[dict[SensorKey, list[tuple[int, float]]], bool]:
        """The stored points after each sensor's last stored time (up to `upto`), and whether more wait.

        One query per measurement (GROUP BY component, at most `chunk_size` points per
        series); a sensor the shared query cannot move on is read on its own.
        """
        by_measurement: dict[str, list[SensorKey]] = {}
        for key in keys:
            tracked = self.sensors.get(key)
            if tracked is not None and tracked.failed is None:
                by_measurement.setdefault(key[0], []).append(key)
        found: dict[SensorKey, list[tuple[int, float]]] = {}
        more = False
        for measurement, group in sorted(by_measurement.items()):
            more |= self._read_measurement(measurement, group, upto, found)
        return found, more

    def _read_measurement(self, measurement: str, group: list[SensorKey], upto: int | None,
                          found: dict[SensorKey, list[tuple[int, float]]]) -> bool:
        from influxhtm.influxql.expressions import MAX_IN_VALUES

        lasts = [self.sensors[key].last_ns for key in group]
        lo = None if any(last is None for last in lasts) else min(x for x in lasts if x is not None)
        query = Query().from_(measurement).select("value").group_by("component").limit(self.spec.chunk_size)
        if len(group) <= MAX_IN_VALUES:
            query = query.where(component=sorted(key[1] for key in group))
        series = self.until_done(lambda: self.client.result_series(self._bounded(query, lo, upto))) or []
        more = False
        alone: list[SensorKey] = []
        for part in series:
            key = (measurement, (part.get("tags") or {}).get("component", ""))
            tracked = self.sensors.get(key)
            if tracked is None or not self.owns(key) or tracked.failed is not None:
                continue
            columns = part["columns"]
            t, v = columns.index("time"), columns.index("value")
            rows = [(row[t], float(row[v])) for row in part["values"] if row[v] is not None]
            new = [row for row in rows if tracked.last_ns is None or row[0] > tracked.last_ns]
            if len(part["values"]) >= self.spec.chunk_size:
                more = True
                if not new:
                    alone.append(key)
            if new:
                found[key] = new
        for key in alone:  # held back by other sensors' older points: read on its own
            last = self.sensors[key].last_ns
            own = query.where(component=key[1])
            bounded = self._bounded(own, last, upto)
            read = functools.partial(self.client.rows, bounded, columns=("time", "value"))
            rows = self.until_done(read) or []
            found[key] = [(row[0], float(row[1])) for row in rows if row[1] is not None]
        return more

    @staticmethod
    def _bounded(query: Query, after: int | None, upto: int | None) -> Query:
        if after is not None:
            query = query.since(after + 1)
        if upto is not None:
            query = query.until(upto)
        return query

    # -- processing --------------------------------------------------------------------------
    def feed(self, rows: Mapping[SensorKey, list[tuple[int, float]]],
             seen: Mapping[tuple[SensorKey, int], float] | None = None, now: float | None = None) -> int:
        """Feed each sensor its new points in time order; results wait in the round's batch. Points fed."""
        now = time.time() if now is None else now
        fed = 0
        keys = sorted(rows)
        for i, key in enumerate(keys):
            self.cache.prefetch(keys[i:i + PREFETCH])  # the next restores decompress meanwhile
            fed += self._feed_one(key, rows[key], seen or {}, now)
        return fed

    def _feed_one(self, key: SensorKey, rows: list[tuple[int, float]],
                  seen: Mapping[tuple[SensorKey, int], float], now: float) -> int:
        tracked = self.sensors.get(key)
        if tracked is None or tracked.failed is not None or not rows:
            return 0
        try:
            taken = self.cache.take(key)
        except Exception as error:  # noqa: BLE001 - a checkpoint of another run, an engine that fails
            return self._fail(key, error)
        model = taken.model
        after = self._unstored[key][0] if key in self._unstored else tracked.last_ns
        component = key[1]
        line_of = _encoder(tracked.store)
        fed = 0
        last = after
        for ns, value in rows:
            if after is not None and ns <= after:
                continue
            point = SensorReading(time=from_ns(ns), value=value, component=component)
            try:
                result = model.run(point)
            except Exception as error:  # noqa: BLE001 - this sensor stops; the others go on
                self._note(key, last, fed)
                return fed + self._fail(key, error)
            if result is not None:
                self._lines.append(line_of(result, point, ns))
            first = tracked.replay_until is None or ns > tracked.replay_until
            self._seen.append((ns, seen.get((key, ns), now), first))
            last = ns
            fed += 1
        self._note(key, last, fed)
        return fed

    def _note(self, key: SensorKey, last: int | None, fed: int) -> None:
        if fed and last is not None:
            count = self._unstored.get(key, (None, 0))[1]
            self._unstored[key] = (last, count + fed)

    def _fail(self, key: SensorKey, error: BaseException) -> int:
        self.own_errors += 1
        self.sensors[key].failed = f"{type(error).__name__}: {error}"
        log.error("fleet: sensor %s/%s stopped: %s", key[0], key[1], error)
        return 0

    def _before_evict(self, key: SensorKey) -> None:
        if key in self._unstored:
            self.flush()

    def flush(self) -> int:
        """Store the round's results (one batch across sensors), then advance and checkpoint."""
        if not self._unstored:
            return 0
        lines, unstored, seen = self._lines, self._unstored, self._seen
        if lines:
            try:
                self.until_done(lambda: post_pipelined(self.client, [Batch.of_lines(lines)]))
            except Interrupted:
                raise InfluxConnectionError(
                    f"fleet stopped while the server was unreachable: the results of {len(seen)} point(s) "
                    f"were not stored and will be computed again by the next run") from None
        self._lines, self._unstored, self._seen = [], {}, []
        stored = time.time()
        for ns, at, first in seen:
            if first:
                self.lag.add(stored - ns / 1e9)
                self.window_lag.add(stored - at)
        self.points += len(seen)
        self.results += len(lines)
        for key, (last, count) in unstored.items():
            tracked = self.sensors.get(key)
            if tracked is None:
                continue
            tracked.last_ns = last
            tracked.since_checkpoint += count
            if key in self.cache:
                self.cache.stored(key, last)
                if tracked.since_checkpoint >= self.spec.checkpoint_every:
                    self.cache.save(key)
                    tracked.since_checkpoint = 0
        self.cache.trim()
        return len(seen)

    def close(self) -> int:
        """Store what waits and checkpoint every model in memory; how many checkpoints were written."""
        self.flush()
        saved = self.cache.save_all()
        self.cache.close()
        return saved

    # -- rounds -------------------------------------------------------------------------------
    def poll_once(self, keys: Iterable[SensorKey] | None = None) -> bool:
        """Read and feed every sensor's (or `keys`') new points, store the results; whether more wait."""
        rows, more = self.read(list(self.sensors) if keys is None else keys)
        self.feed(rows)
        self.flush()
        return more

    def catch_up(self, keys: Iterable[SensorKey] | None = None) -> None:
        """Poll every sensor (or `keys`) until none has more waiting (or the shard is stopped or has
        its `max_points`)."""
        keys = None if keys is None else list(keys)
        while not self.done() and self.poll_once(keys):
            pass

    @property
    def errors(self) -> int:
        """Sensors that could not be added or failed, and retried reads and writes."""
        return self.own_errors + self.until_done.errors

    def done(self) -> bool:
        return self.stop.is_set() or (self.max_points is not None and self.points >= self.max_points)

    def take_pushed(self, pending: dict[SensorKey, dict[int, float]]) -> None:
        """Feed the pushed sensors the points the server holds up to their latest pushed time.

        As `LiveRun._take_pushed`: a push is news only; the read is repeated for up
        to SETTLE_SECONDS until it holds every pushed time, then the server decides.
        """
        self._forget(pending)
        if not pending:
            return
        upto = max(max(times) for times in pending.values())
        deadline = time.monotonic() + SETTLE_SECONDS
        pause = 0.002
        while True:
            rows, more = self.read(list(pending), upto)
            held = all(set(times) <= {ns for ns, _ in rows.get(key, ())} for key, times in pending.items())
            if more or held or time.monotonic() >= deadline or self.stop.is_set():
                break
            time.sleep(pause)
            pause = min(pause * 2, 0.05)
        seen = {(key, ns): at for key, times in pending.items() for ns, at in times.items()}
        self.feed(rows, seen)
        self.flush()
        self._forget(pending)

    def _forget(self, pending: dict[SensorKey, dict[int, float]]) -> None:
        for key in list(pending):
            tracked = self.sensors.get(key)
            if tracked is None or tracked.failed is not None:
                del pending[key]
                continue
            last = tracked.last_ns
            if last is not None:
                for ns in [ns for ns in pending[key] if ns <= last]:
                    del pending[key][ns]
            if not pending[key]:
                del pending[key]

    def status(self) -> dict[str, Any]:
        """Counters for the status line (the window's lag is reset)."""
        window, self.window_lag = self.window_lag, LagHistogram()
        return {
            "lag_p50": self.lag.quantile(0.5),
            "lag_p95": self.lag.quantile(0.95),
            "lag_histogram": self.lag.pairs(),
            "sensors": len(self.sensors),
            "in_memory": len(self.cache),
            "points": self.points,
            "results": self.results,
            "errors": self.errors,
            "failed": sum(1 for t in self.sensors.values() if t.failed is not None),
            "evictions": self.cache.evictions,
            "restores": self.cache.restores,
            "p50": window.quantile(0.5),
            "p95": window.quantile(0.95),
            "window_count": window.count,
            **self.startup_s,
        }


class _Registered:
    """The parameters registered for a model, as `checkpoint.identity` reads them."""

    def __init__(self, params: Any):
        self.params = params


def _encoder(store: Any) -> Callable[[Any, Any, int], str]:
    from influxhtm.running.encoding import ResultEncoder

    encoder = store.__dict__.get("_fleet_encoder")
    if encoder is None:
        encoder = store.__dict__["_fleet_encoder"] = ResultEncoder(store)
    line: Callable[..., str] = encoder.line
    return line


# -- the loop of one shard ---------------------------------------------------------------------
@attrs.frozen
class Timing:
    """How often a shard polls, looks for new and removed sensors, and reports."""

    poll_interval: float = 1.0
    discover_interval: float = 10.0
    status_interval: float = 1.0


def _drain(news: Any, pending: dict[SensorKey, dict[int, float]], timeout: float) -> list[SensorKey]:
    """Move pushed points from `news` into `pending`; the sensors that had none pending.

    `news` is a queue of `PushedPoint`s (one process) or of lists of (measurement,
    component, ns, received) tuples (a Dask queue, from the coordinator).
    """
    fresh: list[SensorKey] = []
    try:
        item = news.get(timeout=timeout)
        while True:
            for pushed in item if isinstance(item, list) else [item]:
                if isinstance(pushed, PushedPoint):
                    if pushed.series is None:
                        continue
                    key, ns, at = pushed.series, pushed.time, pushed.received
                else:
                    key, ns, at = (pushed[0], pushed[1]), pushed[2], pushed[3]
                if key not in pending:
                    fresh.append(key)
                pending.setdefault(key, {})[ns] = at
            item = news.get_nowait() if hasattr(news, "get_nowait") else news.get(timeout=0)
    except queue.Empty:
        pass
    except Exception as error:  # noqa: BLE001 - a Dask queue raises its own timeout errors
        if "Timeout" not in type(error).__name__:
            raise
    return fresh


def run_shard_loop(shard: Shard, *, news: Any, timing: Timing, discover: Callable[[], set[SensorKey]],
                   report: Callable[[dict[str, Any]], None] | None = None,
                   max_points: int | None = None, between: Callable[[], None] | None = None) -> None:
    """Run `shard` until its stop event (or `max_points`): discover, catch up, take pushes, poll.

    `between` is called at the top of every round (a Dask shard follows the coordinator's
    assignment of sensors there: `fleet_dask.Membership.follow`).
    """
    shard.max_points = max_points
    try:
        began = time.monotonic()
        shard.sync(shard.until_done(discover) or set())
        synced = time.monotonic()
        shard.catch_up()
        shard.startup_s = {"sync_s": synced - began, "catch_up_s": time.monotonic() - synced}
        pending: dict[SensorKey, dict[int, float]] = {}
        next_poll = time.monotonic() + timing.poll_interval
        next_discover = time.monotonic() + timing.discover_interval
        next_report = time.monotonic()  # the first round reports how long the start took
        while not shard.done():
            if between is not None:
                between()
            wait = max(0.0, min(0.1, next_poll - time.monotonic()))
            if news is not None:
                for key in _drain(news, pending, wait):
                    if key not in shard.sensors and shard.owns(key) and shard.try_add(key):
                        shard.learn_stored([key])  # a new sensor, told by its push
                if pending:
                    shard.take_pushed(pending)
            else:
                shard.stop.wait(wait)
            now = time.monotonic()
            if now >= next_discover:
                shard.sync(shard.until_done(discover) or set())
                next_discover = now + timing.discover_interval
            if now >= next_poll:
                shard.catch_up()  # fills gaps: lost pushes, writes while stopped
                next_poll = time.monotonic() + timing.poll_interval
            if report is not None and now >= next_report:
                report(shard.status())
                next_report = now + timing.status_interval
    except Interrupted:
        pass
    finally:
        try:
            shard.close()
        finally:
            if report is not None:
                report(shard.status())


# -- the service ---------------------------------------------------------------------------------
