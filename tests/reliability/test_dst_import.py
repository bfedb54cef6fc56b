"""A local-time CSV (`import --tz ZONE`) whose times fall in a daylight-saving gap or fold.

A wall-clock time that the clock change skips (02:15 on the last Sunday of March
in Berlin) or repeats (02:30 on the last Sunday of October, twice) has no single
instant. Read silently, the gap row lands an hour off and the two fold rows
merge into one point. influxhtm refuses the file before writing anything,
naming every such line, unless the caller chooses a reading (`ambiguous=` /
`--ambiguous earlier|later`).
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from click.testing import CliRunner

from influxhtm.cli import cli
from influxhtm.core.errors import ValidationError
from influxhtm.orm.csv_import import import_csv

ROWS = [
    ("2024-03-31 01:30:00", 1.0),  # line 2: before the gap (CET, +01:00)
    ("2024-03-31 02:15:00", 2.0),  # line 3: in the gap, does not exist
    ("2024-03-31 03:30:00", 3.0),  # line 4: after the gap (CEST, +02:00)
    ("2024-10-27 01:30:00", 4.0),  # line 5: before the fold
    ("2024-10-27 02:30:00", 5.0),  # line 6: in the fold, first time
    ("2024-10-27 02:30:00", 6.0),  # line 7: in the fold, second time
    ("2024-10-27 03:30:00", 7.0),  # line 8: after the fold
]
AMBIGUOUS_LINES = [3, 6, 7]


@pytest.fixture
def berlin_csv(tmp_path):
    path = tmp_path / "berlin.csv"
    path.write_text("timestamp,value\n" + "".join(f"{t},{v}\n" for t, v in ROWS))
    return path


def connection_options(settings, database):
    return ["--host", settings.host, "--port", str(settings.port), "--database", database]


def utc(text):
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_gap_and_fold_rows_refuse_the_file_by_line_and_nothing_is_written(
    client, berlin_csv, influx_settings, influx_database, reliability_report
):
    sensor = client.create_sensor("dst", "api")
    with pytest.raises(ValidationError) as caught:
        import_csv(sensor, berlin_csv, tz="Europe/Berlin")
    assert list(caught.value.errors) == [f"line {n}" for n in AMBIGUOUS_LINES]
    assert "does not exist" in caught.value.errors["line 3"][0]
    assert all("happens twice" in caught.value.errors[f"line {n}"][0] for n in (6, 7))
    assert "nothing was imported" in str(caught.value) and "ambiguous" in str(caught.value)
    assert sensor.count() == 0

    conn = connection_options(influx_settings, influx_database)
    args = [*conn, "import", str(berlin_csv), "-m", "dst", "-c", "cli", "--tz", "Europe/Berlin"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1 and len(result.stderr.strip().splitlines()) == 1
    assert all(f"line {n}:" in result.stderr for n in AMBIGUOUS_LINES) and "--ambiguous" in result.stderr
    assert client.create_sensor("dst", "cli").count() == 0
    reliability_report(
        scenario="CSV --tz with DST gap/fold rows",
        faults="3 ambiguous local times",
        written=0,
        read_back=sensor.count(),
        refused=len(AMBIGUOUS_LINES),
        lost=0,
        duplicated=0,
    )


@pytest.mark.parametrize(
    "ambiguous, expected",
    [
        (
            "earlier",
            [
                ("2024-03-31 00:15:00", 2.0),  # the gap row read with the summer offset
                ("2024-03-31 00:30:00", 1.0),
                ("2024-03-31 01:30:00", 3.0),
                ("2024-10-26 23:30:00", 4.0),
                ("2024-10-27 00:30:00", 6.0),  # both fold rows on the first 02:30; the later row wins
                ("2024-10-27 02:30:00", 7.0),
            ],
        ),
        (
            "later",
            [
                ("2024-03-31 00:30:00", 1.0),
                ("2024-03-31 01:15:00", 2.0),  # the gap row read with the winter offset
                ("2024-03-31 01:30:00", 3.0),
                ("2024-10-26 23:30:00", 4.0),
                ("2024-10-27 01:30:00", 6.0),  # both fold rows on the second 02:30
                ("2024-10-27 02:30:00", 7.0),
            ],
        ),
    ],
)
def test_an_explicit_reading_imports_the_file_and_counts_the_merged_fold(
    client, berlin_csv, influx_settings, influx_database, ambiguous, expected
):
    sensor = client.create_sensor("dst", ambiguous)
    report = import_csv(sensor, berlin_csv, tz="Europe/Berlin", ambiguous=ambiguous)
    assert report.errors == () and report.written == 7 and report.merged == 1  # the fold rows: one instant
    assert [(r.time, r.value) for r in sensor.get_data()] == [(utc(t), v) for t, v in expected]
    conn = connection_options(influx_settings, influx_database)
    args = [*conn, "import", str(berlin_csv), "-m", "dst", "-c", f"cli-{ambiguous}", "--tz", "Europe/Berlin"]
    result = CliRunner().invoke(cli, [*args, "--ambiguous", ambiguous])
    assert result.exit_code == 0, result.stderr
    cli_points = client.get_sensor("dst", f"cli-{ambiguous}").get_data()
    assert [(r.time, r.value) for r in cli_points] == [(utc(t), v) for t, v in expected]


def test_a_local_time_file_without_daylight_saving_changes_imports_as_before(client, tmp_path):
    path = tmp_path / "summer.csv"
    path.write_text("timestamp,value\n2024-07-01 12:00:00,1.0\n2024-07-01 12:00:00+00:00,2.0\nbad,3\n")
    sensor = client.create_sensor("dst", "summer")
    report = import_csv(sensor, path, tz="Europe/Berlin")
    assert [str(e) for e in report.errors] == [
        "line 4: 'bad' is not an ISO 8601 timestamp (YYYY-MM-DD HH:MM:SS)"
    ]
    assert [(r.time, r.value) for r in sensor.get_data()] == [
        (utc("2024-07-01 10:00:00"), 1.0),
        (utc("2024-07-01 12:00:00"), 2.0),
    ]
    with pytest.raises(ValidationError, match="ambiguous"):
        import_csv(sensor, path, tz="Europe/Berlin", ambiguous="both")
