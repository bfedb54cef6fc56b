"""The benchmark cases: each runs influxhtm and its baseline against the same server and data.

A case returns `Row`s: the two figures, their ratio and whether the ratio meets
the case's floor. "Faster" cases compare rates (points per second, higher is
better, ratio = influxhtm / baseline, floor a minimum); "time" cases compare
seconds (ratio = influxhtm / baseline, floor a maximum).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import attrs
import requests
from influxdb import InfluxDBClient
from influxdb.line_protocol import make_lines

from influxhtm import InfluxHtmClient
from influxhtm.line_protocol import encode

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

    @classmethod
    def quick(cls) -> Sizes:
        return cls(
            encode=5_000, write=5_000, read=5_000, combined_minutes=600, runner=2_000, memory=20_000,
            repeats=2, memory_repeats=1, batch=1_000,
        )


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
        return f">= {self.floor:g}x" if self.higher_is_better else f"<= {self.floor:g}x"

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

        def ours() -> None:
            got["influxhtm"] = len(repo.query().all())

        def theirs() -> None:
            got["influxdb"] = len(list(influxdb.query('SELECT * FROM "power"').get_points()))

        timings = compare({"influxhtm": (ours, None), "influxdb": (theirs, None)}, self.sizes.repeats)
        if got != {"influxhtm": n, "influxdb": n}:
            raise RuntimeError(f"read the wrong number of points: {got} (expected {n})")
        self.admin.drop_database(database)
        return [_rate_row(f"read {n:,} points", "repo.query().all() (typed objects)",
                          "InfluxDBClient.query().get_points()", n,
                          timings["influxhtm"], timings["influxdb"], 1.0)]

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


def _rate_row(case: str, ours: str, baseline: str, n: int, mine: Any, theirs: Any, floor: float) -> Row:
    ours_rate, their_rate = n / mine.median, n / theirs.median
    return Row(case, ours, baseline, ours_rate, their_rate, "points/s", ours_rate / their_rate, floor, True,
               {"influxhtm_s": list(mine.seconds), "baseline_s": list(theirs.seconds)})


def _time_row(case: str, ours: str, baseline: str, mine: Any, theirs: Any, floor: float) -> Row:
    ratio = mine.median / theirs.median
    return Row(case, ours, baseline, mine.median, theirs.median, "s", ratio, floor, False,
               {"influxhtm_s": list(mine.seconds), "baseline_s": list(theirs.seconds)})


CASES = ("encode", "write", "fast_write", "write_limit", "construct", "read", "combined", "runner", "memory")
