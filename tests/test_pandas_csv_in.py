"""pandas and CSV in: DataFrames through `add_all`, the coercing load, the CSV import of declared
classes (API and CLI), against a real server."""

import enum
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from typing import Optional

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import influxhtm as ih
from influxhtm.cli import cli

T0 = datetime(2024, 5, 1, tzinfo=UTC)


class Mode(enum.Enum):
    AUTO = "auto"
    MANUAL = "manual"


@ih.measurement("climate")
class Climate:
    time: datetime = ih.timestamp()
    site: str = ih.tag()
    room: Optional[str] = ih.tag(default=None)
    temperature: float = ih.field()
    humidity: Optional[float] = ih.field(default=None)
    count: Optional[int] = ih.field(default=None)
    heating: Optional[bool] = ih.field(default=None)
    mode: Optional[Mode] = ih.field(default=None)
    note: Optional[str] = ih.field(default=None)


@pytest.fixture
def client(influx_settings, influx_database):
    return ih.InfluxHtmClient.from_settings(influx_database, influx_settings)


@pytest.fixture
def repo(client):
    return client.repository(Climate)


# -- DataFrames --------------------------------------------------------------------------------
def test_a_dataframe_with_a_datetime_index_is_written_and_nan_is_absent(repo):
    index = pd.date_range(T0, periods=6, freq="1min", tz="UTC")
    frame = pd.DataFrame(
        {
            "site": ["lab"] * 6,
            "temperature": [20.5, 21.0, 21.5, 22.0, 22.5, 23.0],
            "humidity": [0.4, np.nan, 0.5, None, 0.6, np.nan],
            "count": pd.array([1, None, 3, 4, None, 6], dtype="Int64"),
            "heating": [True, False, None, True, False, True],
        },
        index=index,
    )
    assert repo.add_all(frame) == 6
    back = repo.query().all()
    assert [r.time for r in back] == [T0 + timedelta(minutes=i) for i in range(6)]
    assert [r.temperature for r in back] == [20.5, 21.0, 21.5, 22.0, 22.5, 23.0]
    assert [r.humidity for r in back] == [0.4, None, 0.5, None, 0.6, None]
    assert [r.count for r in back] == [1, None, 3, 4, None, 6]
    assert [r.heating for r in back] == [True, False, None, True, False, True]
    assert repo.client.field_keys("climate") == {
        "temperature": "float",
        "humidity": "float",
        "count": "integer",
        "heating": "boolean",
    }


def test_a_time_column_and_naive_times_follow_the_naive_rule(repo):
    frame = pd.DataFrame(
        {
            "time": [datetime(2024, 5, 1, 12, 0), datetime(2024, 5, 1, 12, 1)],  # naive: UTC by default
            "site": ["a", "b"],
            "temperature": [1.0, 2.0],
        }
    )
    assert repo.add_all(frame) == 2
    assert [r.time for r in repo.query().all()] == [
        datetime(2024, 5, 1, 12, 0, tzinfo=UTC),
        datetime(2024, 5, 1, 12, 1, tzinfo=UTC),
    ]
    previous = ih.set_naive_times("error")
    try:
        with pytest.raises(ih.ValidationError, match="naive datetime"):
            repo.add_all(frame)
    finally:
        ih.set_naive_times(previous)


def test_nan_in_a_required_field_names_row_and_field_and_writes_nothing(repo):
    index = pd.date_range(T0, periods=4, freq="1min", tz="UTC")
    frame = pd.DataFrame({"site": ["x", "x", None, "x"], "temperature": [1.0, 2.0, 3.0, np.nan]}, index=index)
    with pytest.raises(ih.ValidationError) as info:
        repo.add_all(frame)
    errors = info.value.errors
    assert set(errors) == {2, 3}
    assert "site" in errors[2] and "row 2" in errors[2]["site"][0] and "required" in errors[2]["site"][0]
    assert "temperature" in errors[3] and "NaN" in errors[3]["temperature"][0]
    assert repo.query().count() == 0


def test_a_dataframe_column_that_is_not_declared_is_refused(repo):
    frame = pd.DataFrame({"site": ["x"], "temprature": [1.0]}, index=pd.DatetimeIndex([T0]))
    with pytest.raises(ih.ValidationError, match="temprature.*columns"):
        repo.add_all(frame)
    no_time = pd.DataFrame({"site": ["x"], "temperature": [1.0]})
    with pytest.raises(ih.ValidationError, match="no time"):
        repo.add_all(no_time)
    assert repo.query().count() == 0


# -- the coercing load ---------------------------------------------------------------------------
def test_the_strict_load_stays_the_default_and_the_coercing_load_reads_text():
    cells = {
        "time": "2024-05-01T00:00:00Z",
        "site": "lab",
        "room": "",
        "temperature": " 21.5",
        "humidity": "",
        "count": "5",
        "heating": "yes",
        "mode": "auto",
        "note": "",
    }
    with pytest.raises(ih.ValidationError) as info:
        Climate.load(cells)
    assert "count" in info.value.errors and "humidity" in info.value.errors  # "5" is no int, "" no float
    obj = Climate.load(cells, coerce=True)
    assert obj == Climate(time=T0, site="lab", temperature=21.5, count=5, heating=True, mode=Mode.AUTO)
    for text, value in (("true", True), ("1", True), ("No", False), ("0", False), ("off", False)):
        assert Climate.load({**cells, "heating": text}, coerce=True).heating is value
    with pytest.raises(ih.ValidationError) as info:
        Climate.load({**cells, "count": "5.5", "heating": "maybe", "temperature": ""}, coerce=True)
    errors = info.value.errors
    assert "is not an int" in errors["count"][0] and "is not a bool" in errors["heating"][0]
    with pytest.raises(ih.ValidationError) as info:
        Climate.load_many([cells, {**cells, "count": "x"}], coerce=True)
    assert set(info.value.errors) == {1}


# -- CSV import of declared classes ------------------------------------------------------------
CSV = """\
time,site,temperature,humidity,count,heating,note
2024-05-01 00:00:00,lab,20.5,0.4,5,true,fine
2024-05-01 00:01:00,lab,abc,0.4,5,true,
2024-05-01 00:02:00,lab,21.5,,7,no,
2024-05-01 00:03:00,,22.0,,,,
2024-05-01 00:04:00,lab,22.5,,1.5,,
2024-05-01 00:05:00,lab,23.0,0.5,,yes,"a, b"
2024-05-01 00:05:00,lab,23.5,0.5,,yes,later
"""


def test_import_csv_writes_good_rows_and_reports_bad_ones_by_line(repo, tmp_path):
    path = tmp_path / "climate.csv"
    path.write_text(CSV)
    report = repo.import_csv(path)
    assert report.rows == 7 and report.written == 4 and report.merged == 1 and report.stored == 3
    assert [e.line for e in report.errors] == [3, 5, 6]
    assert "temperature" in report.errors[0].message and "'abc'" in report.errors[0].message
    assert "site" in report.errors[1].message
    assert "count" in report.errors[2].message and "is not an int" in report.errors[2].message
    back = repo.query().all()
    assert [(r.time, r.temperature, r.humidity, r.count, r.heating, r.note) for r in back] == [
        (T0, 20.5, 0.4, 5, True, "fine"),
        (T0 + timedelta(minutes=2), 21.5, None, 7, False, None),
        (T0 + timedelta(minutes=5), 23.5, 0.5, None, True, "later"),
    ]
    assert report.first == T0 and report.last == T0 + timedelta(minutes=5)
    assert "3 row(s) could not be read" in report.summary() and "line 3:" in report.summary()


def test_import_csv_refuses_a_header_that_does_not_fit_before_writing(repo, tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("time,site,temprature\n2024-05-01 00:00:00,lab,1.0\n")
    with pytest.raises(ih.ValidationError, match="temprature"):
        repo.import_csv(path)
    path.write_text("time,site,humidity\n2024-05-01 00:00:00,lab,1.0\n")
    with pytest.raises(ih.ValidationError, match="temperature"):
        repo.import_csv(path)
    path.write_text("when,site,temperature\n2024-05-01 00:00:00,lab,1.0\n")
    with pytest.raises(ih.ValidationError, match="no time column"):
        repo.import_csv(path)
    assert repo.query().count() == 0
    assert repo.import_csv(path, time_column="when").written == 1


def test_import_csv_reads_naive_times_in_tz(repo, tmp_path):
    path = tmp_path / "tz.csv"
    path.write_text("time,site,temperature\n2024-05-01 02:00:00,lab,1.0\n1714528800000000000,lab,2.0\n")
    report = repo.import_csv(path, tz="Europe/Berlin")
    assert report.written == 2
    assert [r.time for r in repo.query().all()] == [T0, T0 + timedelta(hours=2)]


def test_cli_import_of_a_declared_class(influx_settings, influx_database, tmp_path, monkeypatch):
    module = tmp_path / "app_models.py"
    module.write_text(
        textwrap.dedent(
            """
            from datetime import datetime
            from typing import Optional
            import influxhtm as ih

            @ih.measurement("cli_climate")
            class Reading:
                time: datetime = ih.timestamp()
                site: str = ih.tag()
                temperature: float = ih.field()
                count: Optional[int] = ih.field(default=None)
            """
        )
    )
    data = tmp_path / "r.csv"
    data.write_text("time,site,temperature,count\n2024-05-01 00:00:00,a,1.5,2\n2024-05-01 00:01:00,a,x,3\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(sys.modules, "app_models", raising=False)
    monkeypatch.setattr(sys, "path", list(sys.path))  # the CLI adds the current directory
    conn = ["--host", influx_settings.host, "--port", str(influx_settings.port)]
    conn += ["--database", influx_database]
    result = CliRunner().invoke(cli, [*conn, "import", "--class", "app_models:Reading", str(data)])
    assert result.exit_code == 0, result.output
    assert "1 row(s) could not be read" in result.output and "line 3:" in result.output
    client = ih.InfluxHtmClient.from_settings(influx_database, influx_settings)
    query = ih.Query().from_("cli_climate").select("temperature", "count")
    assert client.rows(query) == [[to_ns(T0), 1.5, 2]]
    bad = CliRunner().invoke(cli, [*conn, "import", "--class", "nope_module:X", str(data)])
    assert bad.exit_code != 0 and "nope_module" in bad.output
    neither = CliRunner().invoke(cli, [*conn, "import", str(data)])
    assert neither.exit_code != 0 and "--class" in neither.output


def to_ns(value):
    from influxhtm.core.times import to_ns

    return to_ns(value)
