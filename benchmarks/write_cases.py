"""The write-speed cases of issue 15: the fast-ingest workload, the server's limit, construction.

The fast-ingest workload is one series, points one second apart, in one shard:
the server ingests it fastest, so the client's own cost shows most. Each case
runs influxhtm and its baseline in the same run; the rows are their ratios.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import attrs
import requests

from . import data
from .timing import Timings, compare

if TYPE_CHECKING:
    from .cases import Row, Sizes

#: Concurrent connections of the raw baselines against the server's limit.
RAW_CONNECTIONS = (1, 2, 4)


@attrs.define
class PlainReading:
    """The same fields as `data.PowerReading`, in a plain attrs class: no conversion, no checks."""

    time: Any
    component: str
    value: float


class RawPoster:
    """POSTs pre-built bodies over `connections` concurrent keep-alive connections (one
    `requests.Session` per thread): the baseline any client is measured against."""

    def __init__(self, url: str, database: str):
        self.url = f"{url}/write"
        self.params = {"db": database}
        self._local = threading.local()

    def post(self, body: bytes) -> None:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        response = session.post(self.url, params=self.params, data=body)
        if response.status_code != 204:
            raise RuntimeError(f"raw write failed: {response.status_code} {response.text}")

    def post_all(self, bodies: list[bytes], connections: int = 1) -> None:
        if connections == 1:
            for body in bodies:
                self.post(body)
            return
        with ThreadPoolExecutor(max_workers=connections) as pool:
            list(pool.map(self.post, bodies))


def bodies_of(lines: list[str], batch: int) -> list[bytes]:
    return ["\n".join(lines[i : i + batch]).encode() for i in range(0, len(lines), batch)]


class WriteSpeedCases:
    """Mixed into `cases.Bench`: the cases `fast_write`, `write_limit` and `construct`."""

    url: str
    sizes: Sizes
    log: Callable[[str], None]

    # provided by Bench
    def fresh_database(self, name: str) -> None: ...  # pragma: no cover
    def influxhtm_client(self, database: str) -> Any: ...  # pragma: no cover
    def count(self, database: str, measurement: str = "power") -> int: ...  # pragma: no cover
    admin: Any

    def _check_stored(self, databases: dict[str, str], n: int) -> None:
        for side, database in databases.items():
            stored = self.count(database)
            if stored != n:
                raise RuntimeError(f"{side} write stored {stored} of {n} points")
            self.admin.drop_database(database)

    # -- write, fast-ingest workload -------------------------------------------
    def fast_write(self) -> list[Row]:
        from .cases import _rate_row

        n, batch = self.sizes.write, self.sizes.batch
        objects = data.fast_objects(n)
        points = data.fast_sensor_points(n)
        bodies = bodies_of(data.fast_lines(n), batch)
        databases = {side: f"bench_fast_{side}" for side in ("raw", "repo", "sensor")}
        raw = RawPoster(self.url, databases["raw"])
        repo = self.influxhtm_client(databases["repo"]).repository(data.PowerReading)
        sensor = self.influxhtm_client(databases["sensor"]).create_sensor("power", data.FAST_COMPONENT)

        def setup(side: str) -> Callable[[], None]:
            return lambda: self.fresh_database(databases[side])

        timings = compare(
            {
                "raw": (lambda: raw.post_all(bodies), setup("raw")),
                "repo": (lambda: repo.add_all(objects), setup("repo")),
                "sensor": (lambda: sensor.write(points), setup("sensor")),
            },
            self.sizes.repeats,
        )
        self._check_stored(databases, n)
        title = f"write {n:,} points, fast-ingest workload (1 series, 1 s apart, 1 shard)"
        raw_label = f"raw POST, requests ({batch:,}/batch)"
        return [
            _rate_row(title, "repo.add_all(objects)", raw_label, n, timings["repo"], timings["raw"], 1.0),
            _rate_row(title, "Sensor.write(points)", raw_label, n, timings["sensor"], timings["raw"], 1.0),
        ]

    # -- write against the server's limit -----------------------------------------
    def write_limit(self) -> list[Row]:
        from .cases import _rate_row

        n, batch = 2 * self.sizes.write, self.sizes.batch
        objects = data.fast_objects(n)
        bodies = bodies_of(data.fast_lines(n), batch)
        sides: dict[str, tuple[Callable[[], Any], Callable[[], Any] | None]] = {}
        databases: dict[str, str] = {}
        for k in RAW_CONNECTIONS:
            database = databases[f"raw{k}"] = f"bench_limit_raw{k}"
            poster = RawPoster(self.url, database)
            sides[f"raw{k}"] = (
                lambda poster=poster, k=k: poster.post_all(bodies, k),  # type: ignore[misc]
                lambda database=database: self.fresh_database(database),  # type: ignore[misc]
            )
        databases["repo"] = "bench_limit_repo"
        repo = self.influxhtm_client(databases["repo"]).repository(data.PowerReading)
        sides["repo"] = (
            lambda: repo.add_all(objects), lambda: self.fresh_database(databases["repo"])
        )
        timings = compare(sides, self.sizes.repeats)
        self._check_stored(databases, n)
        best = min((f"raw{k}" for k in RAW_CONNECTIONS), key=lambda side: timings[side].median)
        rates = ", ".join(f"{k}: {n / timings[f'raw{k}'].median:,.0f}/s" for k in RAW_CONNECTIONS)
        self.log(f"  raw POST rates by connections: {rates}")
        row = _rate_row(
            f"write {n:,} points against the server's limit (fast-ingest workload)",
            "repo.add_all(objects)",
            f"best raw POST over 1, 2, 4 connections ({best[3:]})",
            n, timings["repo"], timings[best], 0.9,
        )
        row.runs.update({f"raw{k}_s": list(timings[f"raw{k}"].seconds) for k in RAW_CONNECTIONS})
        return [row]

    # -- construction ----------------------------------------------------------
    def construct(self) -> list[Row]:
        from .cases import _rate_row, _time_row

        n, batch = self.sizes.write, self.sizes.batch
        times, ns, values = data.fast_times(n), data.fast_ns(n), data.fast_values(n)
        component = data.FAST_COMPONENT
        cls = data.PowerReading
        databases = {side: f"bench_construct_{side}" for side in ("raw", "repo")}
        raw = RawPoster(self.url, databases["raw"])
        repo = self.influxhtm_client(databases["repo"]).repository(cls)

        def ours() -> None:
            repo.add_all(cls(time=t, component=component, value=v) for t, v in zip(times, values))

        def theirs() -> None:
            for i in range(0, n, batch):
                lines = [
                    f"power,component={component} value={v!r} {t}"
                    for t, v in zip(ns[i : i + batch], values[i : i + batch])
                ]
                raw.post("\n".join(lines).encode())

        timings = compare(
            {
                "raw": (theirs, lambda: self.fresh_database(databases["raw"])),
                "repo": (ours, lambda: self.fresh_database(databases["repo"])),
            },
            self.sizes.repeats,
        )
        self._check_stored(databases, n)
        def declared() -> None:
            [cls(time=t, component=component, value=v) for t, v in zip(times, values)]

        def plain() -> None:
            [PlainReading(time=t, component=component, value=v) for t, v in zip(times, values)]

        built = compare(
            {"declared": (declared, None), "plain": (plain, None)},
            self.sizes.repeats,
        )
        return [
            _rate_row(f"construct + write {n:,} points (fast-ingest workload)",
                      "add_all(PowerReading(...) for ...)", "f-string lines + raw POST per batch", n,
                      timings["repo"], timings["raw"], 0.85),
            _time_row(f"construct {n:,} objects", "PowerReading(...) (validated)",
                      "a plain attrs.define class", built["declared"], built["plain"], 1.5),
        ]


__all__ = ["WriteSpeedCases", "RawPoster", "PlainReading", "Timings"]
