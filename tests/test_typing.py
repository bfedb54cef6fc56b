"""Typed end to end: the example application in tests/typing/ passes `mypy --strict`, mypy rejects the
deliberate mistakes of tests/typing/rejected/ with the expected messages, and the application runs
against a real server with the results computed here from its own input."""

from __future__ import annotations

import importlib.util
import math
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from influxhtm import InfluxHtmClient

ROOT = Path(__file__).resolve().parent.parent
TYPING = ROOT / "tests" / "typing"
APPS = [TYPING / "readme_app.py", TYPING / "climate_app.py"]
REJECTED = TYPING / "rejected" / "wrong_types.py"
ERROR_LINE = re.compile(r"^(?P<path>[^:]+):(?P<line>\d+): error: (?P<message>.*)$")


@pytest.fixture(scope="module")
def mypy_errors(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, int], str]:
    """One `mypy --strict` run over the application and the rejected file: errors by (file name, line)."""
    cache = tmp_path_factory.mktemp("mypy-cache")
    command = [sys.executable, "-m", "mypy", "--strict", "--config-file", str(TYPING / "mypy.ini")]
    command += ["--cache-dir", str(cache), "--no-error-summary", "--show-absolute-path"]
    result = subprocess.run(
        [*command, *map(str, APPS), str(REJECTED)], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert result.returncode in (0, 1), result.stdout + result.stderr  # 2: mypy itself failed
    errors: dict[tuple[str, int], str] = {}
    for line in result.stdout.splitlines():
        match = ERROR_LINE.match(line)
        if match:
            key = (Path(match["path"]).name, int(match["line"]))
            errors[key] = errors.get(key, "") + match["message"]
    assert errors, "mypy reported no error at all: the rejected file was not checked"
    return errors


def test_typed_application_passes_mypy_strict(mypy_errors):
    in_apps = {key: message for key, message in mypy_errors.items() if key[0] != REJECTED.name}
    assert in_apps == {}


def test_mypy_rejects_each_deliberate_mistake_with_its_message(mypy_errors):
    expected = {
        (REJECTED.name, number): line.split("# rejected: ", 1)[1]
        for number, line in enumerate(REJECTED.read_text().splitlines(), start=1)
        if "# rejected: " in line
    }
    assert len(expected) >= 10
    found = {key: message for key, message in mypy_errors.items() if key[0] == REJECTED.name}
    assert set(found) == set(expected)  # every mistake caught, nothing else flagged
    for key, message in expected.items():
        assert message in found[key], key


def load_app(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"typed_{name}", TYPING / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # the declared classes resolve their annotations through it
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def client(influx_settings, influx_database):
    with InfluxHtmClient.from_settings(influx_database, influx_settings) as client:
        yield client


@pytest.mark.timeout(300)
def test_readme_application_runs(client, tmp_path):
    app = load_app("readme_app")
    store = app.first_look(client, tmp_path)
    assert store.count() == 500
    assert (tmp_path / "power.png").stat().st_size > 10_000
    rows = app.own_measurements(client)
    assert len(rows) >= 24 * 6  # every 10-minute bucket of the day since now - 1 day
    assert sum(row.mean is not None for row in rows) in range(10, 12)  # 100 minutes of points


def test_climate_application_runs(client):
    app = load_app("climate_app")
    out = app.run(client)
    start, Room = app.START, app.Room
    points = {site: list(app.readings(site, hours=3)) for site in ("north", "south")}
    late = app.Climate(time=start + timedelta(hours=3), site="north", room=Room.KITCHEN, temperature=23.5)
    points["north"].append(late)

    assert out["written"] == 2 * 180 + 1
    assert out["latest"] == late
    everything = points["north"] + points["south"]
    hot = [p for p in everything if p.room is Room.KITCHEN and p.temperature > 22.5]
    assert sorted(out["hot"], key=lambda p: (p.time, p.site)) == sorted(hot, key=lambda p: (p.time, p.site))

    summaries = {s.site: s for s in out["summaries"]}
    assert set(summaries) == {"north", "south"}
    for site, summary in summaries.items():
        temps = [p.temperature for p in points[site]]
        assert summary.mean_celsius == pytest.approx(sum(temps) / len(temps))
        assert summary.max_fahrenheit == pytest.approx(max(temps) * 1.8 + 32)
        assert summary.readings == len(temps)

    warming = expected_warming(points["north"], start)
    assert [t for t, _ in out["warming"]] == [t for t, _ in warming]
    assert [v for _, v in out["warming"]] == pytest.approx([v for _, v in warming])
    assert len(out["warming"]) == 18  # 18 ten-minute buckets after the first (3 h, and the late point's)
    hour = start + timedelta(hours=1)
    kitchen = [p.temperature for p in points["south"] if p.room is Room.KITCHEN and p.time < hour]
    averages = [sum(kitchen[i - 4 : i + 1]) / 5 for i in range(4, len(kitchen))]
    assert out["smoothed"] == pytest.approx([a * 1.8 + 32 for a in averages])
    assert out["p90"] == pytest.approx(expected_p90(points["north"], start))
    assert out["doors"] == sum(p.door_open for p in points["north"]) == 6
    assert out["statement"][0] == "SELECT * FROM climate WHERE site = $p0 AND time >= $p1"
    assert out["statement"][1] == {"p0": "north", "p1": 1714521600000000000}
    assert len(out["dumped"]) == 3 and out["dumped"][0]["site"] == "south"
    count, results = out["model"]
    assert count == 60
    assert [r.anomaly_score for r in results] == pytest.approx(
        [min(1.0, abs(1.0 + (m % 5) / 10 - 1.2)) for m in range(50, 60)]
    )


def expected_warming(points: list[Any], start: Any) -> list[tuple[Any, float]]:
    """derivative(mean(temp), 1h) over 10-minute buckets of the kitchen, empty buckets left out."""
    buckets: dict[int, list[float]] = {}
    for p in points:
        if p.room.value == "kitchen":
            buckets.setdefault(int((p.time - start).total_seconds() // 600), []).append(p.temperature)
    keys = sorted(buckets)
    means = [sum(buckets[k]) / len(buckets[k]) for k in keys]
    return [
        (start + timedelta(minutes=10 * keys[i]), (means[i] - means[i - 1]) * 6 / (keys[i] - keys[i - 1]))
        for i in range(1, len(keys))
    ]


def expected_p90(points: list[Any], start: Any) -> dict[Any, float]:
    """InfluxDB's percentile: the value at rank floor(n * p / 100 + 0.5) of the sorted values."""
    out = {}
    for hour in range(3):
        lo, hi = start + timedelta(hours=hour), start + timedelta(hours=hour + 1)
        values = sorted(p.temperature for p in points if lo <= p.time < hi)
        out[lo] = values[math.floor(len(values) * 90 / 100 + 0.5) - 1]
    return out


def test_create_model_gives_every_model_its_params():
    """`create_model(...).params`: an engine's own, else the keyword arguments (a slotted model that
    has no room for them is seen through a wrapper that keeps its other attributes)."""
    from influxhtm.running.engines import FunctionModel, create_model

    class Slotted:
        __slots__ = ("offset",)

        def __init__(self, offset: float):
            self.offset = offset

        def run(self, point: Any) -> dict[str, Any]:
            return {"anomaly_score": self.offset}

    class Reporting:
        def __init__(self, **given: Any):
            self.params = {"resolved": True, **given}

        def run(self, point: Any) -> None:
            return None

    plain = create_model(lambda **_: (lambda point: None), window=3)
    assert isinstance(plain, FunctionModel) and plain.params == {"window": 3}
    slotted = create_model(Slotted, offset=0.5)
    assert slotted.params == {"offset": 0.5} and slotted.offset == 0.5
    assert slotted.run(None) == {"anomaly_score": 0.5}
    assert create_model(Reporting, anything=1).params == {"resolved": True, "anything": 1}
