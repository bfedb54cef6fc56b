"""The docs' guides stay true: the migration guides and the tutorial's query section run, block after
block, against a real server, and what they compute is checked here from their own input."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import Any

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
BLOCK = re.compile(r"^\.\. code-block:: python\n\n((?:(?: {4}.*)?\n)+)", flags=re.M)


def section(text: str, title: str) -> str:
    """The text of the section titled `title` (up to the next title of the same level)."""
    lines = text.splitlines(keepends=True)
    for index, line in enumerate(lines[:-1]):
        underline = lines[index + 1].rstrip("\n")
        if line.rstrip("\n") == title and underline and set(underline) == {underline[0]}:
            rest = lines[index + 2 :]
            for end, next_line in enumerate(rest[:-1]):
                after = rest[end + 1].rstrip("\n")
                if after and set(after) == {underline[0]} and len(after) >= len(next_line.rstrip("\n")) > 0:
                    return "".join(rest[:end])
            return "".join(rest)
    raise AssertionError(f"no section {title!r}")


def python_blocks(path: Path, title: str | None = None) -> list[str]:
    """The `.. code-block:: python` blocks of a page (or of one section), dedented, in order."""
    text = path.read_text()
    if title is not None:
        text = section(text, title)
    return [textwrap.dedent(block) for block in BLOCK.findall(text)]


def run_blocks(path: Path, title: str | None = None) -> dict[str, Any]:
    blocks = python_blocks(path, title)
    assert blocks, f"{path.name} has no python block"
    namespace: dict[str, Any] = {"__name__": f"docs_{path.stem.replace('-', '_')}"}
    for block in blocks:
        exec(compile(block, str(path), "exec"), namespace)
    return namespace


@pytest.fixture
def env_server(influxd, monkeypatch, tmp_path):
    """The INFLUX_* variables of the suite's server, as a reader of the docs would set them."""
    monkeypatch.setenv("INFLUX_HOST", influxd.host)
    monkeypatch.setenv("INFLUX_PORT", str(influxd.port))
    monkeypatch.chdir(tmp_path)
    return influxd


def drop(database: str) -> None:
    import influxhtm as ih

    with ih.InfluxHtmClient(database) as client:
        client.drop_database()


def test_python_blocks_are_found_in_order_and_by_section(tmp_path):
    path = tmp_path / "page.rst"
    path.write_text(
        "T\n=\n\nOne\n---\n\n.. code-block:: python\n\n    a = 1\n\n    b = 2\nx\n\n"
        "::\n\n    not = run\n\nTwo\n---\n\n.. code-block:: python\n\n    c = 3\n"
    )
    assert python_blocks(path) == ["a = 1\n\nb = 2\n", "c = 3\n"]
    assert python_blocks(path, "One") == ["a = 1\n\nb = 2\n"]
    assert python_blocks(path, "Two") == ["c = 3\n"]


def test_influxdb_python_migration_guide_runs(env_server, capsys):
    try:
        ns = run_blocks(DOCS / "migrate-influxdb-python.rst")
    finally:
        drop("migration")
    start = ns["start"]
    web1 = {}  # 10-minute bucket -> usages of web-1, as the old code wrote them
    for i in range(1, 120, 2):
        web1.setdefault(i // 10, []).append(10.0 + i % 30)
    expected = [(start + ns["timedelta"](minutes=10 * k), sum(v) / len(v)) for k, v in sorted(web1.items())]
    assert [t for t, _ in ns["new_means"]] == [t for t, _ in expected]
    assert [m for _, m in ns["new_means"]] == pytest.approx([m for _, m in expected])
    assert len(ns["old_means"]) == len(expected)
    assert [f.usage for f in ns["firsts"]] == [10.0, 12.0, 14.0]  # web-2: the even minutes
    assert {row["host"]: row["max"] for row in ns["rows"]} == {"web-1": 39.0, "web-2": 38.0, "web-3": 7.5}
    assert len(ns["frame"]) == 60 and list(ns["frame"]["usage"][:2]) == [11.0, 13.0]
    assert sorted(ns["per_host"]["count"]) == [60, 60, 121]
    assert ns["remaining"] == 120
    out = capsys.readouterr().out
    assert "10.0 2024-05-01 00:00:00+00:00" in out and "did you mean 'host'" in out


def test_original_influxhtm_migration_guide_runs(env_server, capsys):
    try:
        ns = run_blocks(DOCS / "migrate-influxhtm.rst")
        counts = ns["store"].count(), ns["htmModelStore"].count()
    finally:
        drop("original")
    # first 10 minutes: the mean value, the highest score (aggregated anomaly columns take the max)
    assert tuple(ns["old_rows"][0][1:3]) == (4.5, 0.09)
    assert len(ns["old_rows"]) == 6
    assert ns["report"].points == 60
    assert ns["latest"].anomaly_score == pytest.approx(0.59)
    assert ns["busy"] == 30
    assert [row.max for row in ns["hourly"]] == [59.0]
    assert counts == (60, 60)
    assert len(ns["frame"]) == 6 and ns["frame"]["value"].iloc[0] == 4.5
    out = capsys.readouterr().out
    assert "power/coffee-machine" in out and "2024-05-01 08:59:00+00:00 0.59" in out


def test_tutorial_query_with_transformation_and_arithmetic_runs(env_server, capsys):
    title = "A query with a transformation and arithmetic, run"
    import influxhtm as ih

    try:
        ns = run_blocks(DOCS / "tutorial.rst", title)
        mixed = ns["first_hour"].select("temperature", ih.fn.moving_average(ih.col("temperature"), 10))
        with pytest.raises(ih.errors.QueryError, match="mixing aggregate and non-aggregate"):
            mixed.all()  # as the text says: hence two queries
    finally:
        drop("tutorial_queries")
    assert "derivative(mean(" in str(ns["warming"]) and "1.8" not in str(ns["warming"])
    per_minute = 1 / 120  # the readings' own slope
    assert len(ns["rates"]) == 6 * 6 - 1  # 36 buckets of 10 minutes, one rate less
    assert ns["rates"] == pytest.approx([per_minute * 60] * 35)
    temps = [15.0 + m / 120 for m in range(60)]
    assert [row.f for row in ns["raw"]] == pytest.approx([t * 1.8 + 32 for t in temps])
    smooth = [sum(temps[i - 9 : i + 1]) / 10 * 1.8 + 32 for i in range(9, 60)]
    assert [row.smooth_f for row in ns["smooth"]] == pytest.approx(smooth)
    out = capsys.readouterr().out
    assert "SELECT derivative(mean(temp), 1h) AS per_hour FROM greenhouse WHERE site = $p0" in out
    assert "59.0 59.0675" in out
