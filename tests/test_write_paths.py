"""Plain `{time, value}` mappings written through a repository: exact nanoseconds on both paths.

A sensor's repository (every tag fixed, one float field) formats such dicts in C from the
encoder's pairs plan (`line_protocol._pairs_plan`); the Python path (no C module, or a point
the C encoder hands back) stamps each line with the mapping's own time. Both keep the
nanoseconds an instance (a `datetime`) cannot hold, and both write the same text.
"""

from __future__ import annotations

import pytest

from influxhtm import InfluxHtmClient
from influxhtm.core.errors import InfluxHtmError, ValidationError
from influxhtm.influxql import col
from influxhtm.model.data_layout import SensorReading

T = 1_709_294_400_000_000_000


@pytest.fixture
def client(influx_settings, influx_database):
    client = InfluxHtmClient.from_settings(influx_database, influx_settings)
    yield client
    client.close()


@pytest.mark.parametrize("speedups", ["1", "0"])
def test_mappings_keep_their_nanoseconds_in_c_and_in_python(client, monkeypatch, speedups):
    monkeypatch.setenv("INFLUXHTM_NO_SPEEDUPS", "0" if speedups == "1" else "1")
    repo = client.repository(SensorReading, measurement="power", tags={"component": "pump"})
    points = [{"time": T + i * 1_000 + 7, "value": i * 0.5} for i in range(2_500)]
    assert repo.add_all(points, batch_size=1_000) == 2_500
    rows = client.rows(repo.query().select("value"))
    assert [row[0] for row in rows] == [p["time"] for p in points]
    assert [row[1] for row in rows] == [p["value"] for p in points]


def test_the_c_and_python_paths_write_the_same_text(monkeypatch):
    client = InfluxHtmClient("nowhere", host="127.0.0.1", port=9)
    repo = client.repository(SensorReading, measurement="my power", tags={"component": "a,b=c"})
    points = [{"time": T + i, "value": float(i) / 3} for i in range(30)] + [{"time": T + 99, "value": 4}]
    fast = repo.fast_batches(points, 7)
    if fast is None:
        pytest.skip("the C module is not built")  # the first test covers the Python path alone
    c_text = b"\n".join(batch.data for batch in fast)
    monkeypatch.setenv("INFLUXHTM_NO_SPEEDUPS", "1")
    python_pairs = repo.fast_batches(points, 7)  # without C: the columns checked and formatted in Python
    assert python_pairs is not None
    python_text = b"\n".join(batch.data for batch in python_pairs)
    checked_text = repo._checked_batch(points, 0).data  # point by point, loaded and checked
    assert c_text == python_text == checked_text
    assert c_text.startswith(b"my\\ power,component=a\\,b\\=c value=0.0 1709294400000000000\n")


# -- the options that let `Sensor.write` be a facade over its repository ----------------------------
def test_validate_first_sends_nothing_when_a_later_batch_is_bad(client):
    """`add_all(validate_first=True)`: a list is checked whole, so a bad point in the fifth batch
    stops the write before the first batch leaves, and the error names it by index."""
    repo = client.repository(SensorReading, measurement="whole", tags={"component": "pump"})
    points = [{"time": T + i, "value": float(i)} for i in range(25)]
    points[23] = {"time": T + 23, "value": float("nan")}
    with pytest.raises(ValidationError) as caught:
        repo.add_all(points, batch_size=5, validate_first=True)
    assert list(caught.value.errors) == [23]
    assert repo.query().count() == 0
    with pytest.raises(InfluxHtmError):  # without the option the batches before the bad one are sent
        repo.add_all(points, batch_size=5)
    assert repo.query().count() == 20


def test_extra_tags_store_a_mappings_undeclared_keys_as_tags(client):
    repo = client.repository(
        SensorReading, measurement="tagged", tags={"component": "pump"}, extra_tags=True
    )
    points = [
        {"time": T, "value": 1.5, "site": "north side", "room": "b,1"},
        {"time": T + 1, "value": 2.5, "site": "south", "component": "pump"},
    ]
    assert repo.add_all(points) == 2
    rows = client.rows(repo.query().select("value", col("site", checked=False), col("room", checked=False)))
    assert rows == [[T, 1.5, "north side", "b,1"], [T + 1, 2.5, "south", None]]
    with pytest.raises(ValidationError) as caught:  # a tag holds text; a fixed tag keeps its value
        repo.add_all(
            [{"time": T + 2, "value": 1.0, "site": 3}, {"time": T + 3, "value": 1.0, "component": "fan"}]
        )
    assert set(caught.value.errors) == {0, 1}
    assert "site" in caught.value.errors[0] and "component" in caught.value.errors[1]
    plain = client.repository(SensorReading, measurement="tagged", tags={"component": "pump"})
    with pytest.raises(ValidationError, match="site"):  # without the option an undeclared key is refused
        plain.add_all([{"time": T + 4, "value": 1.0, "site": "x"}])
    assert repo.query().count() == 2
