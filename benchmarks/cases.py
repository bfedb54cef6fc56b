"""The benchmark cases: each runs influxhtm and its baseline against the same server and data.

A case returns `Row`s: the two figures, their ratio and whether the ratio meets
the case's floor. "Faster" cases compare rates (points per second, higher is
better, ratio = influxhtm / baseline, floor a minimum); "time" cases compare
seconds (ratio = influxhtm / baseline, floor a maximum).
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import attrs
import requests
from influxdb import InfluxDBClient
from influxdb.line_protocol import make_lines

from influxhtm import AsyncInfluxHtmClient, InfluxHtmClient
from influxhtm.model.line_protocol import encode

from . import data
from .timing import compare
from .write_cases import WriteSpeedCases


@attrs.frozen
class Sizes:
    """How much each case moves, and how often it repeats."""

    encode: int = 200_000
    write: int = 200_000
    read: int = 200_000
    combined_minutes: int = 7 * 24 * 60
    runner: int = 100_000
    memory: int = 2_000_000
    repeats: int = 5
    memory_repeats: int = 2
    batch: int = 10_000
    queries: int = 100
    read_memory: int = 2_000_000
    startup_repeats: int = 10

    @classmethod
    def quick(cls) -> Sizes:
        return cls(
            encode=5_000, write=5_000, read=5_000, combined_minutes=600, runner=2_000, memory=20_000,
            repeats=2, memory_repeats=1, batch=1_000, read_memory=20_000, startup_repeats=2,
        )


#: The unit of a row whose "ratio" is a difference: seconds more than the baseline.
SECONDS_MORE = "s more"
#: The unit of a row of memory figures (MB) compared as a ratio.
MB_RATIO = "MB ratio"


@attrs.frozen
class Row:
    """One line of the table."""

    case: str
    ours: str
    baseline: str
    ours_figure: float
    baseline_figure: float
    unit: str
    ratio: float
    floor: float
    higher_is_better: bool
    runs: dict[str, list[float]] = attrs.field(factory=dict)

    @property
    def passed(self) -> bool:
        return self.ratio >= self.floor if self.higher_is_better else self.ratio <= self.floor

    @property
    def floor_text(self) -> str:
        if self.unit == "MB":
            return f"< {self.floor:g} MB"
        if self.unit == SECONDS_MORE:
            return f"<= +{self.floor * 1000:.0f} ms"
        return f">= {self.floor:g}x" if self.higher_is_better else f"<= {self.floor:g}x"

    @property
    def ratio_text(self) -> str:
        if self.unit == "MB":
            return f"{self.ratio:.2f}"
        if self.unit == SECONDS_MORE:
            return f"+{self.ratio * 1000:.0f} ms"
        return f"{self.ratio:.2f}x"

    def as_dict(self) -> dict[str, Any]:
        out = attrs.asdict(self)
        out["passed"] = self.passed
        out["floor_text"] = self.floor_text
        return out


class Bench(WriteSpeedCases):
    """The server, the clients and the sizes shared by every case."""

    def __init__(self, host: str, port: int, sizes: Sizes, log: Callable[[str], None] = print):
        self.host = host
        self.port = port
        self.url = f"http://{host}:{port}"
        self.sizes = sizes
        self.log = log
        self.admin = InfluxDBClient(host=host, port=port)

    # -- helpers ---------------------------------------------------------------
    def fresh_database(self, name: str) -> None:
        self.admin.drop_database(name)
        self.admin.create_database(name)

    def influxhtm_client(self, database: str) -> InfluxHtmClient:
        client = InfluxHtmClient(database, host=self.host, port=self.port)
        client.create_database()
        return client

    def influxdb_client(self, database: str) -> InfluxDBClient:
        return InfluxDBClient(host=self.host, port=self.port, database=database)

    def count(self, database: str, measurement: str = "power") -> int:
        result = self.admin.query(f'SELECT count(*) FROM "{measurement}"', database=database)
        points = list(result.get_points())
        return int(max(v for k, v in points[0].items() if k != "time")) if points else 0

    # -- encode ----------------------------------------------------------------
    def encode(self) -> list[Row]:
        n = self.sizes.encode
        objects = data.objects(n)
        dicts = data.influxdb_dicts(n)
        # Same text, so the comparison is of equal work (make_lines ends with a newline).
        assert encode(objects) + "\n" == make_lines({"points": dicts}), "encoders disagree"
        timings = compare(
            {
                "influxhtm": (lambda: encode(objects), None),
                "make_lines": (lambda: make_lines({"points": dicts}), None),
            },
            self.sizes.repeats,
        )
        return [_rate_row(f"encode {n:,} points (1 tag, 1 float field)", "encode(objects)",
                          "make_lines(dicts)", n, timings["influxhtm"], timings["make_lines"], 3.0)]

    # -- write -----------------------------------------------------------------
    def write(self) -> list[Row]:
        n, batch = self.sizes.write, self.sizes.batch
        objects = data.objects(n)
        points = data.sensor_points(n)
        dicts = data.influxdb_dicts(n)
        lines = data.lines(n)
        bodies = ["\n".join(lines[i : i + batch]).encode() for i in range(0, n, batch)]
        del lines
        databases = {side: f"bench_write_{side}" for side in ("raw", "dicts", "repo", "sensor")}
        session = requests.Session()
        raw_params = {"db": databases["raw"]}
        raw_url = f"{self.url}/write"

        def raw() -> None:
            for body in bodies:
                response = session.post(raw_url, params=raw_params, data=body)
                if response.status_code != 204:
                    raise RuntimeError(f"raw write failed: {response.status_code} {response.text}")

        influxdb = self.influxdb_client(databases["dicts"])
        repo = self.influxhtm_client(databases["repo"]).repository(data.PowerReading)
        sensor = self.influxhtm_client(databases["sensor"]).create_sensor("power", "machine-0")

        def setup(side: str) -> Callable[[], None]:
            return lambda: self.fresh_database(databases[side])

        timings = compare(
            {
                "raw": (raw, setup("raw")),
                "dicts": (lambda: influxdb.write_points(dicts, batch_size=batch), setup("dicts")),
                "repo": (lambda: repo.add_all(objects), setup("repo")),
                "sensor": (lambda: sensor.write(points), setup("sensor")),
            },
            self.sizes.repeats,
        )
        for side, database in databases.items():
            stored = self.count(database)
            if stored != n:
                raise RuntimeError(f"{side} write stored {stored} of {n} points")
            self.admin.drop_database(database)
        title = f"write {n:,} validated points"
        raw_label = f"raw POST, requests ({batch:,}/batch)"
        dicts_label = f"InfluxDBClient.write_points(batch_size={batch:,})"
        repo_label, sensor_label = "repo.add_all(objects)", "Sensor.write(points)"
        return [
            _rate_row(title, repo_label, raw_label, n, timings["repo"], timings["raw"], 1.0),
            _rate_row(title, sensor_label, raw_label, n, timings["sensor"], timings["raw"], 1.0),
            _rate_row(title, repo_label, dicts_label, n, timings["repo"], timings["dicts"], 2.5),
            _rate_row(title, sensor_label, dicts_label, n, timings["sensor"], timings["dicts"], 2.5),
        ]

    # -- read ------------------------------------------------------------------
    def read(self) -> list[Row]:
        n = self.sizes.read
        database = "bench_read"
        self.fresh_database(database)
        client = self.influxhtm_client(database)
        repo = client.repository(data.PowerReading)
        repo.add_all(data.iter_objects(n))
        influxdb = self.influxdb_client(database)
        got: dict[str, int] = {}
        text = 'SELECT * FROM "power"'

        def ours() -> None:
            objects = repo.query().all()
            got["influxhtm"] = len(objects)
            assert objects[-1].time.tzinfo is not None, "typed objects hold aware datetimes"

        def theirs_ns() -> None:
            got["influxdb_ns"] = len(list(influxdb.query(text, epoch="ns").get_points()))

        def theirs() -> None:
            got["influxdb"] = len(list(influxdb.query(text).get_points()))

        timings = compare(
            {"influxhtm": (ours, None), "influxdb_ns": (theirs_ns, None), "influxdb": (theirs, None)},
            self.sizes.repeats,
        )
        if set(got.values()) != {n}:
            raise RuntimeError(f"read the wrong number of points: {got} (expected {n})")
        self.admin.drop_database(database)
        title = f"typed read of {n:,} points"
        label = "repo.query().all() (typed, aware datetimes)"
        return [
            _rate_row(title, label, 'InfluxDBClient.query(epoch="ns").get_points()', n,
                      timings["influxhtm"], timings["influxdb_ns"], 1.5),
            _rate_row(title, label, "InfluxDBClient.query().get_points() (default epoch)", n,
                      timings["influxhtm"], timings["influxdb"], 3.0),
        ]

    def read_memory(self) -> list[Row]:
        """Peak RSS of `len(sensor.get_data())` against iterating `iter_data()` plus the list's own size."""
        n = self.sizes.read_memory
        database = "bench_read_memory"
        self.fresh_database(database)
        sensor = self.influxhtm_client(database).create_sensor("power", "machine-0")
        sensor.write(data.sensor_points(n))
        runs: dict[str, list[float]] = {"list_peak_mb": [], "iterate_peak_mb": [], "list_size_mb": []}
        for _ in range(self.sizes.memory_repeats):
            listed = self._read_memory_child(database, "list", n)
            iterated = self._read_memory_child(database, "iterate", n)
            runs["list_peak_mb"].append(listed["peak_kb"] / 1024)
            runs["list_size_mb"].append(listed["list_kb"] / 1024)
            runs["iterate_peak_mb"].append(iterated["peak_kb"] / 1024)
        self.admin.drop_database(database)
        peak = max(runs["list_peak_mb"])
        allowed = min(runs["iterate_peak_mb"]) + min(runs["list_size_mb"])
        return [Row(f"list read memory, {n:,} points", "peak RSS of len(sensor.get_data())",
                    "peak RSS of iterating sensor.iter_data() + the list's size", peak, allowed, MB_RATIO,
                    peak / allowed, 1.2, False, runs)]

    def _read_memory_child(self, database: str, mode: str, n: int) -> dict[str, Any]:
        child = subprocess.run(
            [sys.executable, "-m", "benchmarks.read_memory_child", self.host, str(self.port), database, mode],
            capture_output=True, text=True, check=False,
            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
        )
        if child.returncode != 0:
            raise RuntimeError(f"the read-memory child failed: {child.stderr[-2000:]}")
        report: dict[str, Any] = json.loads(child.stdout.strip().splitlines()[-1])
        if report["points"] != n:
            raise RuntimeError(f"the read-memory child read {report['points']} of {n} points ({mode})")
        return report

    # -- start-up ----------------------------------------------------------------
    def startup(self) -> list[Row]:
        """Seconds `import influxhtm` and `influxhtm --help` take more than a bare interpreter.

        Counted in CPU seconds of the child (user + system): on a shared machine the wall clock
        of a short process mostly measures its wait for a core. Wall seconds are kept in the runs.
        """
        script = os.path.join(os.path.dirname(sys.executable), "influxhtm")
        cli = [script] if os.path.exists(script) else [sys.executable, "-m", "influxhtm.cli"]
        commands = {
            "pass": [sys.executable, "-c", "pass"],
            "import": [sys.executable, "-c", "import influxhtm"],
            "cli": [*cli, "--help"],
        }
        # Byte code cached as an installed package has it (PYTHONDONTWRITEBYTECODE would time the
        # compiler instead); the first runs write the caches.
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        for command in commands.values():
            subprocess.run(command, stdout=subprocess.DEVNULL, check=True, env=env)
        cpu: dict[str, list[float]] = {name: [] for name in commands}
        wall: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(self.sizes.startup_repeats):
            for name, command in commands.items():
                seconds, cpu_seconds = _child_seconds(command, env)
                wall[name].append(seconds)
                cpu[name].append(cpu_seconds)
        bare = statistics.median(cpu["pass"])
        rows = []
        for name, case, label, floor in (("import", "import", 'python -c "import influxhtm"', 0.25),
                                         ("cli", "CLI start", "influxhtm --help", 0.4)):
            mine = statistics.median(cpu[name])
            runs = {"influxhtm_cpu_s": cpu[name], "baseline_cpu_s": cpu["pass"],
                    "influxhtm_wall_s": wall[name], "baseline_wall_s": wall["pass"]}
            rows.append(Row(case, f"{label} (CPU time)", 'python -c "pass"', mine, bare, SECONDS_MORE,
                            mine - bare, floor, False, runs))
        return rows

    # -- combined --------------------------------------------------------------
    def combined(self) -> list[Row]:
        minutes = self.sizes.combined_minutes
        database = "bench_combined"
        self.fresh_database(database)
        client = self.influxhtm_client(database)
        sensor = client.create_sensor("power", "machine-0")
        minute = 60 * 10**9
        start = data.START_NS
        sensor.write([{"time": start + i * minute, "value": data.value(i)} for i in range(minutes)])
        models = ["model-a", "model-b"]
        for k, model_id in enumerate(models):
            store = sensor.create_htm_model(model_id, params={"k": k})
            store.write_results(
                {"time": start + i * minute, "anomalyScore": (i * 7 + k) % 100 / 100.0,
                 "anomalyLikelihood": (i * 3 + k) % 100 / 100.0}
                for i in range(minutes)
            )
        since, until = start, start + (minutes - 1) * minute
        influxdb = self.influxdb_client(database)
        where = f"component = 'machine-0' AND time >= {since} AND time <= {until}"
        ids = " OR ".join(f"id = '{m}'" for m in models)
        result_fields = "anomalyScore, anomalyLikelihood, rawScore, prediction, predictionConfidence"
        aggregates = ("max(anomalyScore) AS anomalyScore, max(anomalyLikelihood) AS anomalyLikelihood, "
                      "max(rawScore) AS rawScore, mean(prediction) AS prediction, "
                      "mean(predictionConfidence) AS predictionConfidence")
        queries = {
            None: [
                f'SELECT value FROM "power" WHERE {where}',
                f'SELECT {result_fields} FROM "power_model" WHERE {where} AND ({ids}) GROUP BY id',
            ],
            "10m": [
                f'SELECT mean(value) AS value FROM "power" WHERE {where} GROUP BY time(10m) fill(none)',
                f'SELECT {aggregates} FROM "power_model" WHERE {where} AND ({ids}) '
                "GROUP BY time(10m), id fill(none)",
            ],
        }
        rows = []
        for aggregation, texts in queries.items():
            got: dict[str, int] = {}

            def ours(aggregation: str | None = aggregation, got: dict[str, int] = got) -> None:
                combined = sensor.get_combined_sensor_data(
                    since, until, aggregation=aggregation, models=models
                )
                got["influxhtm"] = len(combined)

            def theirs(texts: list[str] = texts, got: dict[str, int] = got) -> None:
                answers = [influxdb.query(text) for text in texts]
                got["influxdb"] = len(list(answers[0].get_points()))
                for _key, points in answers[1].items():
                    list(points)

            timings = compare({"influxhtm": (ours, None), "influxdb": (theirs, None)}, self.sizes.repeats)
            if got["influxhtm"] != got["influxdb"] or not got["influxhtm"]:
                raise RuntimeError(f"combined data has the wrong number of rows: {got}")
            label = "raw" if aggregation is None else f"{aggregation}-aggregated"
            rows.append(_time_row(
                f"combined data, {minutes // 1440 or minutes} {'days' if minutes >= 1440 else 'minutes'} "
                f"of 1-minute data, 2 models, {label}",
                "get_combined_sensor_data", "the 2 InfluxQL queries via InfluxDBClient",
                timings["influxhtm"], timings["influxdb"], 1.5,
            ))
        self.admin.drop_database(database)
        return rows

    # -- runner ----------------------------------------------------------------
    def runner(self) -> list[Row]:
        from influxhtm.running import Runner

        n = self.sizes.runner
        database = "bench_runner"
        self.fresh_database(database)
        client = self.influxhtm_client(database)
        sensor = client.create_sensor("power", "machine-0")
        sensor.write(data.sensor_points(n))
        store = sensor.create_htm_model("noop")
        runner = Runner(sensor, store, lambda point: {"anomalyScore": 0.0})
        readings = client.repository(data.PowerReading)
        results = client.repository(data.PowerResult)
        got: dict[str, int] = {}

        def ours() -> None:
            report = runner.run_batch()
            got["influxhtm"] = report.results

        def theirs() -> None:
            points = readings.query().where(component="machine-0")
            got["repository"] = results.add_all(
                data.PowerResult(time=p.time, component=p.component, model_id="baseline", anomaly_score=0.0)
                for p in points
            )

        def drop_results() -> None:
            client.connection.query('DROP MEASUREMENT "power_model"', database=database, method="POST")

        timings = compare({"influxhtm": (ours, drop_results), "repository": (theirs, drop_results)},
                          self.sizes.repeats)
        if got != {"influxhtm": n, "repository": n}:
            raise RuntimeError(f"the runner case moved the wrong number of points: {got} (expected {n})")
        self.admin.drop_database(database)
        return [_time_row(f"runner, no-op model, {n:,} points", "Runner.run_batch()",
                          "read + write through the repository", timings["influxhtm"], timings["repository"],
                          2.0)]

    # -- memory ----------------------------------------------------------------
    def memory(self) -> list[Row]:
        n = self.sizes.memory
        database = "bench_memory"
        peaks, baselines = [], []
        for _ in range(self.sizes.memory_repeats):
            self.fresh_database(database)
            child = subprocess.run(
                [sys.executable, "-m", "benchmarks.memory_child",
                 self.host, str(self.port), database, str(n)],
                capture_output=True, text=True, check=False,
                cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
            )
            if child.returncode != 0:
                raise RuntimeError(f"the memory child failed: {child.stderr[-2000:]}")
            report = json.loads(child.stdout.strip().splitlines()[-1])
            if report["written"] != n:
                raise RuntimeError(f"the memory child wrote {report['written']} of {n} points")
            peaks.append(report["peak_kb"] / 1024)
            baselines.append(report["imported_kb"] / 1024)
        self.admin.drop_database(database)
        peak = max(peaks)
        return [Row(f"memory: add_all of a {n:,}-point generator", "peak RSS of the writing process",
                    "RSS after import (context)", peak, max(baselines), "MB", peak, 200.0, False,
                    {"peak_mb": peaks, "imported_mb": baselines})]


    # -- asyncio ---------------------------------------------------------------
    def asyncio(self) -> list[Row]:
        """The async client against the sync one in the same run: `add_all` of the write case's
        points, and `queries` small queries at once (asyncio.gather) against one after another."""
        n, many = self.sizes.write, self.sizes.queries
        objects = data.objects(n)
        databases = {side: f"bench_async_{side}" for side in ("sync", "async")}
        loop = asyncio.new_event_loop()
        sync_client = self.influxhtm_client(databases["sync"])
        async_client = AsyncInfluxHtmClient(databases["async"], host=self.host, port=self.port)
        sync_repo = sync_client.repository(data.PowerReading)
        async_repo = async_client.repository(data.PowerReading)

        def setup(side: str) -> Callable[[], None]:
            return lambda: self.fresh_database(databases[side])

        writes = compare(
            {
                "sync": (lambda: sync_repo.add_all(objects), setup("sync")),
                "async": (lambda: loop.run_until_complete(async_repo.add_all(objects)), setup("async")),
            },
            self.sizes.repeats,
        )
        for side, database in databases.items():
            stored = self.count(database)
            if stored != n:
                raise RuntimeError(f"{side} add_all stored {stored} of {n} points")
        # small queries: 100 seconds of one component (10 points) each, over the same data
        async_queries = [_small_query(async_repo, i) for i in range(many)]
        sync_queries = [_small_query(sync_repo, i) for i in range(many)]
        got: dict[str, int] = {}

        def sequential() -> None:
            got["sync"] = sum(len(q.all()) for q in sync_queries)

        async def concurrent() -> int:
            return sum(map(len, await asyncio.gather(*(async_repo.all(q) for q in async_queries))))

        def gathered() -> None:
            got["async"] = loop.run_until_complete(concurrent())

        queries = compare({"sync": (sequential, None), "async": (gathered, None)}, self.sizes.repeats)
        if got["sync"] != got["async"] or not got["sync"]:
            raise RuntimeError(f"small queries read {got} rows")
        loop.run_until_complete(async_client.aclose())
        loop.close()
        sync_client.close()
        for database in databases.values():
            self.admin.drop_database(database)
        return [
            _rate_row(f"async: add_all of {n:,} points", "AsyncInfluxHtmClient: await repo.add_all",
                      "InfluxHtmClient: repo.add_all (same run)", n, writes["async"], writes["sync"], 0.9),
            _time_row(f"async: {many} small queries", "asyncio.gather of await q.all()",
                      "the same queries one after another, sync", queries["async"], queries["sync"], 1.0),
        ]


def _small_query(repo: Any, i: int) -> Any:
    start = data.START + timedelta(seconds=1000 * i)
    return repo.query().where(component=data.component(i)).within(start, start + timedelta(seconds=99))


def _child_seconds(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system) of one run of `command`."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(command, stdout=subprocess.DEVNULL, check=True, env=env)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _rate_row(case: str, ours: str, baseline: str, n: int, mine: Any, theirs: Any, floor: float) -> Row:
    ours_rate, their_rate = n / mine.median, n / theirs.median
    return Row(case, ours, baseline, ours_rate, their_rate, "points/s", ours_rate / their_rate, floor, True,
               {"influxhtm_s": list(mine.seconds), "baseline_s": list(theirs.seconds)})


def _time_row(case: str, ours: str, baseline: str, mine: Any, theirs: Any, floor: float) -> Row:
    ratio = mine.median / theirs.median
    return Row(case, ours, baseline, mine.median, theirs.median, "s", ratio, floor, False,
               {"influxhtm_s": list(mine.seconds), "baseline_s": list(theirs.seconds)})


CASES = (
    "encode", "write", "fast_write", "write_limit", "construct", "read", "combined", "runner", "memory",
    "read_memory", "startup", "asyncio",
)
