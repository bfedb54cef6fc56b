"""`influxhtm demo`, the project's main command, run end to end through the installed console script.

Without INFLUX_HOST it starts its own managed influxd (the README's path); with
INFLUX_HOST it uses that server and a database of its own, dropped afterwards.
"""

import csv
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from influxhtm.tools import nab

KEY = "realKnownCause/machine_temperature_system_failure.csv"
RESULTS = (
    nab.NAB_DATA_DIR
    / "results"
    / "numenta"
    / "realKnownCause"
    / "numenta_machine_temperature_system_failure.csv"
)
PROFILES = ("standard", "reward_low_FP_rate", "reward_low_FN_rate")
FN_WEIGHT = {"standard": 1.0, "reward_low_FP_rate": 1.0, "reward_low_FN_rate": 2.0}
BUDGET_SECONDS = 180
# The first test also waits for the demo itself (the module's fixture, at most 2 x the budget).
pytestmark = pytest.mark.timeout(2 * BUDGET_SECONDS + 120)


def console_script() -> list[str]:
    script = Path(sys.executable).with_name("influxhtm")
    return [str(script)] if script.exists() else [sys.executable, "-m", "influxhtm.cli"]


def nab_sums() -> dict[str, float]:
    sums = dict.fromkeys(PROFILES, 0.0)
    with open(RESULTS, newline="") as fh:
        for row in csv.DictReader(fh):
            for profile in PROFILES:
                sums[profile] += float(row[f"S(t)_{profile}"])
    return sums


def table_rows(stdout: str) -> dict[str, list[list[str]]]:
    """The demo table's rows by model name, each split on runs of two or more spaces."""
    import re

    lines = stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("model "))
    rows: dict[str, list[list[str]]] = {}
    for line in lines[header + 2 :]:
        if not line.strip() or line.startswith(("thresholds", "brainblocks'")):
            break
        cells = re.split(r"\s{2,}", line.strip())
        rows.setdefault(cells[0], []).append(cells)
    return rows


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "out"
    args = [*console_script()]
    external = bool(os.environ.get("INFLUX_HOST"))
    database = f"demo_{uuid.uuid4().hex[:8]}"
    if external:
        args += ["--database", database]
    started = time.monotonic()
    done = subprocess.run(
        [*args, "demo", "--output-dir", str(out)], capture_output=True, text=True, timeout=2 * BUDGET_SECONDS
    )
    elapsed = time.monotonic() - started
    if external:
        from influxhtm.htm.client import InfluxHtmClient

        InfluxHtmClient(database).drop_database()
    return done, out, elapsed


def test_demo_exits_zero_within_budget(demo_run):
    done, _, elapsed = demo_run
    assert done.returncode == 0, done.stderr[-3000:]
    assert elapsed < BUDGET_SECONDS
    assert done.stderr.strip() == ""  # no progress bars when stderr is not a terminal, no warnings


def test_demo_announces_every_stage(demo_run):
    stdout = demo_run[0].stdout
    for stage in ("[1/5] Importing 5 NAB series", "[2/5] Running the brainblocks", "[3/5] Storing Numenta",
                  "[4/5] Scoring", "[5/5] Writing plots"):  # fmt: skip
        assert stage in stdout
    assert "machine_temperature_system_failure.csv: 22,695 rows -> 22,683 points, 12 duplicate" in stdout
    for name, rows in (("art_daily_jumpsup", 4032), ("nyc_taxi", 10320), ("ambient_temperature", 7267)):
        assert f"{name}" in stdout and f"{rows:,} rows -> {rows:,} points" in stdout


def test_demo_table_scores_numenta_as_nab_does(demo_run):
    rows = table_rows(demo_run[0].stdout)
    assert set(rows) == {"numenta", "brainblocks"}
    (numenta,) = rows["numenta"]
    windows = len(nab.load_windows(nab.NAB_WINDOWS_FILE, KEY))
    sums = nab_sums()
    # normalised = 100 (raw - null) / (perfect - null), null = -fn_weight * windows, perfect = windows
    for column, profile in zip(numenta[3:6], PROFILES, strict=True):
        null = -FN_WEIGHT[profile] * windows
        expected = 100 * (sums[profile] - null) / (windows - null)
        assert float(column) == pytest.approx(expected, abs=0.0005)
    assert numenta[1].startswith("NAB default 0.5422/0.5752/0.5422")
    assert numenta[2] == "22,683"
    assert int(numenta[6]) >= 1 and int(numenta[7]) >= 0  # detections in and outside the windows


def test_demo_table_has_brainblocks_at_default_and_optimised_thresholds(demo_run):
    default, optimised = table_rows(demo_run[0].stdout)["brainblocks"]
    assert default[1].startswith("NAB default") and optimised[1].startswith("optimised")
    assert default[2] == optimised[2] == "22,683"
    for at_default, at_best in zip(default[3:6], optimised[3:6], strict=True):
        assert float(at_best) >= float(at_default) - 1e-9


def test_demo_writes_plots_and_scores(demo_run):
    _, out, _ = demo_run
    png = out / "machine_temperature_system_failure.png"
    html = out / "machine_temperature_system_failure.html"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 50_000
    page = html.read_text()
    assert "numenta" in page and "brainblocks" in page and '<script src="http' not in page
    scores = json.loads((out / "scores.json").read_text())
    sums = nab_sums()
    numenta = next(r for r in scores["rows"] if r["model"] == "numenta")
    for profile in PROFILES:
        assert numenta["scores"][profile]["raw"] == pytest.approx(sums[profile], abs=1e-6)
        assert scores["numenta_check"][profile][1] == pytest.approx(sums[profile], abs=1e-9)
    assert "equal" in demo_run[0].stdout and "DIFFERENT" not in demo_run[0].stdout
