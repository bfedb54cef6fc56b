"""CSV import into a sensor, against a real InfluxDB: NAB files, bad rows, CRLF, time zones, duplicates."""

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from influxhtm.core.errors import ConfigurationError, ValidationError
from influxhtm.orm.csv_import import count_rows, import_csv, nab_key, parse_timestamp
from influxhtm.tools import nab

NAB_FILES = sorted((nab.NAB_DATA_DIR / "data").glob("*/*.csv"))


def write(tmp_path: Path, text: str, name: str = "data.csv", newline: str = "\n") -> Path:
    path = tmp_path / name
    path.write_bytes(text.replace("\n", newline).encode("utf-8"))
    return path


def plain_rows(path: Path) -> list[tuple[str, str]]:
    """(timestamp, value) of every data row, read with plain string operations (not the csv module)."""
    lines = path.read_bytes().decode("utf-8").splitlines()
    return [tuple(line.split(",")[:2]) for line in lines[1:] if line.strip()]


def test_shipped_nab_files_are_here():
    assert len(NAB_FILES) == 5


@pytest.mark.parametrize("path", NAB_FILES, ids=[p.stem for p in NAB_FILES])
def test_each_shipped_nab_file_imports_completely(client, path):
    rows = plain_rows(path)
    distinct = {t for t, _ in rows}
    sensor = client.create_sensor("nab", path.stem)
    calls = []
    report = import_csv(sensor, path, progress=calls.append)
    assert report.rows == len(rows) == count_rows(path)
    assert report.written == len(rows)
    assert report.errors == ()
    assert report.merged == len(rows) - len(distinct)
    assert report.stored == len(distinct) == sensor.count()
    assert sum(calls) == len(rows)
    # first and last point, read back, are the file's (naive timestamps are UTC by default)
    first = min(datetime.fromisoformat(t) for t in distinct).replace(tzinfo=UTC)
    last = max(datetime.fromisoformat(t) for t in distinct).replace(tzinfo=UTC)
    assert (report.first, report.last) == (first, last) == sensor.time_bounds()
    data = sensor.get_data(limit=1)
    last_row_value = [float(v) for t, v in rows if datetime.fromisoformat(t).replace(tzinfo=UTC) == last][-1]
    assert data[0].value == last_row_value


def test_machine_temperature_has_twelve_merged_duplicates(client):
    path = nab.NAB_DATA_DIR / "data" / "realKnownCause" / "machine_temperature_system_failure.csv"
    sensor = client.create_sensor("nab", "machine")
    report = import_csv(sensor, path)
    assert (report.rows, report.merged, report.stored) == (22695, 12, 22683)
    assert sensor.count() == 22683
    assert "12 row(s) repeated an earlier timestamp" in report.summary()


def test_later_duplicate_wins(client, tmp_path):
    path = write(
        tmp_path, "timestamp,value\n2020-01-01 00:00:00,1\n2020-01-01 00:05:00,2\n2020-01-01 00:00:00,3\n"
    )
    sensor = client.create_sensor("m", "dup")
    report = import_csv(sensor, path)
    assert (report.rows, report.written, report.merged, report.stored) == (3, 3, 1, 2)
    assert [r.value for r in sensor.get_data()] == [3.0, 2.0]


def test_bad_rows_are_reported_with_line_numbers_and_the_rest_written(client, tmp_path):
    text = (
        "timestamp,value\n"  # line 1
        "2020-01-01 00:00:00,1.5\n"  # 2 ok
        "not a time,2\n"  # 3 bad time
        "2020-01-01 00:10:00,abc\n"  # 4 bad value
        "\n"  # 5 blank: ignored
        "2020-01-01 00:15:00,nan\n"  # 6 NaN
        "2020-01-01 00:20:00\n"  # 7 missing cell
        "2020-01-01 00:25:00,\n"  # 8 empty value
        "2020-01-01 00:30:00,7\n"  # 9 ok
        "2020-13-01 00:00:00,8\n"  # 10 month 13
        "2020-01-01 00:40:00,inf\n"  # 11 infinity
    )
    path = write(tmp_path, text)
    sensor = client.create_sensor("m", "bad")
    report = import_csv(sensor, path)
    assert [e.line for e in report.errors] == [3, 4, 6, 7, 8, 10, 11]
    messages = {e.line: e.message for e in report.errors}
    assert "'not a time'" in messages[3]
    assert "'abc'" in messages[4]
    assert "NaN" in messages[6]
    assert (report.rows, report.written, report.stored) == (9, 2, 2)
    values = [(r.time, r.value) for r in sensor.get_data()]
    assert values == [
        (datetime(2020, 1, 1, tzinfo=UTC), 1.5),
        (datetime(2020, 1, 1, 0, 30, tzinfo=UTC), 7.0),
    ]
    summary = report.summary()
    assert "7 row(s) could not be read" in summary and "line 10:" in summary


def test_summary_shortens_a_long_list_of_errors(client, tmp_path):
    text = "timestamp,value\n" + "".join(f"2020-01-01 00:{i:02d}:00,x\n" for i in range(25))
    report = import_csv(client.create_sensor("m", "many"), write(tmp_path, text))
    assert len(report.errors) == 25 and report.written == 0
    assert "... and 15 more" in report.summary()


@pytest.mark.parametrize("newline", ["\n", "\r\n"], ids=["LF", "CRLF"])
def test_crlf_and_lf_give_the_same_points(client, tmp_path, newline):
    text = "timestamp,value\n2020-01-01 00:00:00,1\n2020-01-01 00:05:00,2.25\n"
    path = write(tmp_path, text, newline=newline)
    assert (b"\r\n" in path.read_bytes()) == (newline == "\r\n")
    sensor = client.create_sensor("m", "nl")
    report = import_csv(sensor, path)
    assert report.errors == () and report.rows == 2
    assert [r.value for r in sensor.get_data()] == [1.0, 2.25]


def test_naive_timestamps_are_read_in_the_given_zone(client, tmp_path):
    path = write(tmp_path, "timestamp,value\n2020-07-01 12:00:00,1\n2020-01-01 12:00:00,2\n")
    sensor = client.create_sensor("m", "berlin")
    import_csv(sensor, path, tz="Europe/Berlin")
    berlin = ZoneInfo("Europe/Berlin")
    expected = [
        (datetime(2020, 1, 1, 12, tzinfo=berlin).astimezone(UTC), 2.0),  # CET, UTC+1
        (datetime(2020, 7, 1, 12, tzinfo=berlin).astimezone(UTC), 1.0),  # CEST, UTC+2
    ]
    assert [(r.time, r.value) for r in sensor.get_data()] == expected
    assert expected[0][0].hour == 11 and expected[1][0].hour == 10


def test_timestamps_with_offsets_ignore_tz_and_other_columns_can_be_chosen(client, tmp_path):
    text = "label,when,reading\na,2020-01-01T00:00:00+02:00,5\nb,2020-01-01T00:00:00Z,6\n"
    path = write(tmp_path, text)
    sensor = client.create_sensor("m", "cols")
    report = import_csv(sensor, path, time_column="when", value_column="reading", tz="America/New_York")
    assert report.errors == ()
    assert [(r.time, r.value) for r in sensor.get_data()] == [
        (datetime(2019, 12, 31, 22, tzinfo=UTC), 5.0),
        (datetime(2020, 1, 1, tzinfo=UTC), 6.0),
    ]


def test_byte_order_mark_and_nanoseconds(client, tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes("\ufefftimestamp,value\n2020-01-01T00:00:00.123456789Z,1\n".encode())
    sensor = client.create_sensor("m", "bom")
    report = import_csv(sensor, path)
    assert report.errors == () and report.stored == 1
    assert sensor.time_bounds_ns()[0] == int(datetime(2020, 1, 1, tzinfo=UTC).timestamp()) * 10**9 + 123456789


def test_parse_timestamp_rules():
    zone = ZoneInfo("Asia/Tokyo")
    ns = parse_timestamp("2020-01-01 09:00:00", zone)
    assert ns == int(datetime(2020, 1, 1, tzinfo=UTC).timestamp()) * 10**9
    assert parse_timestamp(" 2020-01-01T00:00:00+00:00 ", zone) == ns
    with pytest.raises(ValueError):
        parse_timestamp("", zone)
    assert parse_timestamp("2020-01-01 09:00:00.5", zone) == ns + 500_000_000


def test_missing_column_unknown_zone_empty_and_absent_files(client, tmp_path):
    sensor = client.create_sensor("m", "errors")
    path = write(tmp_path, "time,value\n2020-01-01,1\n")
    with pytest.raises(ValidationError) as info:
        import_csv(sensor, path)
    assert (
        "time_column" in info.value.errors
        and "'timestamp'" in str(info.value)
        and "'time'" in str(info.value)
    )
    with pytest.raises(ValidationError) as info:
        import_csv(sensor, path, time_column="time", tz="Mars/Olympus")
    assert "Mars/Olympus" in str(info.value)
    with pytest.raises(ValidationError, match="empty"):
        import_csv(sensor, write(tmp_path, "", name="empty.csv"))
    with pytest.raises(ConfigurationError, match="nope.csv"):
        import_csv(sensor, tmp_path / "nope.csv")
    assert client.list_sensors() == []


def test_nab_key_and_row_count(tmp_path):
    assert nab_key("/x/data/realKnownCause/nyc_taxi.csv") == "realKnownCause/nyc_taxi.csv"
    assert count_rows(write(tmp_path, "a,b\n1,2\n3,4", name="nofinal.csv")) == 2
    assert count_rows(write(tmp_path, "a,b\n", name="header.csv")) == 0
