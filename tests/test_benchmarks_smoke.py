"""The benchmark harness works: a `--quick` run measures every case and writes its results.

The floors are not asserted here: they are the claim of the full benchmark run
(`make bench`), on quiet hardware, not of a smoke run with tiny sizes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.__main__ import table  # noqa: E402
from benchmarks.cases import CASES, Row  # noqa: E402


@pytest.mark.timeout(900)
def test_fleet_quick_run_keeps_every_point_exactly_once_through_a_kill_and_a_restart(tmp_path: Path) -> None:
    """`python -m benchmarks fleet --quick` (the soak at a small size, the deterministic engine):
    a worker killed and replaced, a swapping fleet stopped and started again, and every input point
    still has exactly one result, the swapped results equal to a run that never evicted. The
    latency and memory targets are the full run's claim (docs/fleet.rst), not asserted here."""
    output = tmp_path / "fleet.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("INFLUX_")}
    run = subprocess.run([sys.executable, "-m", "benchmarks", "fleet", "--quick", "--output", str(output)],
                         cwd=ROOT, capture_output=True, text=True, timeout=840, env=env)
    assert run.returncode in (0, 1), run.stderr[-3000:]
    results = json.loads(output.read_text())
    memory, swapping = results["memory"], results["swapping"]
    assert memory["points"] > 0 and memory["lost"] == 0 and memory["duplicated"] == 0, memory
    assert memory["killed_worker_recovery_s"] is not None, memory  # its sensors had new results
    assert swapping["points"] > 0 and swapping["lost"] == 0 and swapping["duplicated"] == 0, swapping
    assert swapping["evictions"] > 0 and swapping["restores"] > 0, swapping
    assert swapping["identical_results"] == swapping["compared_results"] > 0, swapping
    assert set(results["passed"]) >= {"memory_p95_le_1s", "swap_p95_le_5s", "killed_recovered_within_30s"}


@pytest.mark.timeout(900)  # twelve cases, each on fresh databases: minutes on a loaded 2-core machine
def test_quick_run_measures_every_case_and_writes_json(tmp_path: Path) -> None:
    output = tmp_path / "results.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("INFLUX_")}
    run = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--output", str(output)],
        cwd=ROOT, capture_output=True, text=True, timeout=840, env=env,
    )
    # 0 when every floor is met, 1 when one is missed; anything else is a crash of the harness.
    assert run.returncode in (0, 1), run.stderr[-3000:]
    results = json.loads(output.read_text())
    rows = results["rows"]
    titles = " | ".join(row["case"] for row in rows)
    for word in ("encode", "write", "typed read", "combined", "runner", "memory", "list read memory",
                 "import", "CLI start", "async", "fast-ingest", "server's limit", "construct + write",
                 "construct "):
        assert word in titles
    assert len(rows) == 21
    for row in rows:
        assert row["ours_figure"] > 0 and row["baseline_figure"] > 0, row
        assert row["ratio"] > 0
        assert row["passed"] == (row["ratio"] >= row["floor"] if row["higher_is_better"]
                                 else row["ratio"] <= row["floor"])
    assert results["passed"] == all(row["passed"] for row in rows)
    assert (run.returncode == 0) == results["passed"]
    assert results["machine"]["nproc"] >= 1
    assert results["machine"]["influxdb_server"].startswith("InfluxDB v1.")
    # The printed table is the one stored.
    assert results["table"] in run.stdout
    assert CASES == (
        "encode", "write", "fast_write", "write_limit", "construct", "read", "combined", "runner", "memory",
        "read_memory", "startup", "asyncio",
    )
    assert results["loadavg"]["before"] and results["loadavg"]["after"]


@pytest.mark.parametrize(
    ("ratio", "floor", "higher", "passed"),
    [(3.1, 3.0, True, True), (2.9, 3.0, True, False), (1.4, 1.5, False, True), (1.6, 1.5, False, False)],
)
def test_rows_judge_their_floor_in_the_right_direction(ratio: float, floor: float, higher: bool,
                                                       passed: bool) -> None:
    row = Row("case", "ours", "theirs", 1.0, 1.0, "points/s" if higher else "s", ratio, floor, higher)
    assert row.passed is passed
    text = table([row])
    assert ("PASS" if passed else "FAIL") in text
    assert (">=" if higher else "<=") in text


def test_sensor_write_fast_path_makes_exactly_the_lines_of_the_checked_path() -> None:
    """`Sensor.write` formats plain dicts column-wise (its repository's pairs path); the text must
    equal the point-by-point encoding of the checked path."""
    from datetime import UTC, datetime, timedelta

    from influxhtm import InfluxHtmClient
    from influxhtm.orm.repository import pair_columns

    client = InfluxHtmClient("nowhere", host="127.0.0.1", port=9)
    sensor = client.create_sensor("my power", "coffee,machine=1")
    start = datetime(2024, 3, 1, 12, tzinfo=UTC)
    forms = [
        [{"time": 1_709_294_400_000_000_000 + i, "value": i * 0.1} for i in range(2500)],  # int ns
        [{"time": start + timedelta(seconds=i), "value": i} for i in range(2500)],  # datetimes, ints
        [{"time": (start + timedelta(seconds=i)).isoformat(), "value": -1.5e300} for i in range(30)],
    ]
    for points in forms:
        assert pair_columns(points, "time", "value") is not None
        batches = sensor.repository.make_batches(points, 1000, validate_first=True)
        fast = "\n".join(batch.data.decode() for batch in batches)
        checked = sensor.repository._checked_batch(points, 0).data.decode()
        assert fast == checked
    # Anything unusual takes the checked path, which names the bad point.
    for bad in ({"time": 1, "value": float("nan")}, {"time": True, "value": 1.0}, {"time": 1, "value": "1"}):
        assert pair_columns([{"time": 5, "value": 1.0}, bad], "time", "value") is None


def test_rows_of_seconds_more_and_of_memory_ratios_say_what_they_compare() -> None:
    from benchmarks.cases import MB_RATIO, SECONDS_MORE

    slow = Row("import", "ours", "bare", 0.5, 0.04, SECONDS_MORE, 0.46, 0.25, False)
    fast = Row("import", "ours", "bare", 0.2, 0.04, SECONDS_MORE, 0.16, 0.25, False)
    assert not slow.passed and fast.passed
    assert "+460 ms" in table([slow]) and "<= +250 ms" in table([slow]) and "FAIL" in table([slow])
    memory = Row("list read memory", "ours", "iterate + list", 300.0, 280.0, MB_RATIO, 300 / 280, 1.2, False)
    assert memory.passed and "<= 1.2x" in table([memory]) and "300 MB" in table([memory])
