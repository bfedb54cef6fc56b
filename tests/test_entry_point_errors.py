"""Public entry points given a wrong type or value raise influxhtm's own errors, naming the argument."""

from datetime import UTC, datetime

import pytest

import influxhtm as ih
from influxhtm.core.errors import InfluxHtmError
from influxhtm.influxql import admin
from influxhtm.tools import nab


@pytest.fixture
def sensor(client):
    sensor = client.create_sensor("power", "a")
    sensor.write({"time": datetime(2024, 1, 1, tzinfo=UTC), "value": 1.0})
    return sensor


CASES = {
    "settings": (lambda c, s: ih.InfluxHtmClient("db", timeot=5), "timeot"),
    "cq query": (lambda c, s: admin.create_continuous_query("cq", database="db", query="SELECT 1"), "query"),
    "results": (lambda c, s: s.create_htm_model("m").write_results(5), "results"),
    "runner store": (lambda c, s: ih.Runner(s, 5, lambda p: None), "store"),
    "runner sensor": (lambda c, s: ih.Runner("power", s.create_htm_model("m"), lambda p: None), "sensor"),
    "nab store": (lambda c, s: nab.score("x", []), "store"),
    "nab key": (lambda c, s: nab.load_windows(nab.NAB_WINDOWS_FILE, 5), "key"),
    "replay path": (lambda c, s: ih.create_model("replay", path=5), "path"),
    "plot path": (lambda c, s: s.get_combined_sensor_data().plot(5), "path"),
    "sweep executor": (lambda c, s: ih.sweep([s], {"factor": [1]}, lambda **k: None, executor=5), "executor"),
    "engine": (lambda c, s: ih.create_model("no-such-engine"), "no-such-engine"),
    "limit": (lambda c, s: s.get_data(limit=-1), "limit"),
    "aggregation": (lambda c, s: s.get_data(aggregation="ten minutes"), "aggregation"),
    "model id": (lambda c, s: s.create_htm_model(""), "model_id"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_wrong_input_raises_a_named_influxhtm_error(client, sensor, case):
    call, name = CASES[case]
    with pytest.raises(InfluxHtmError) as info:
        call(client, sensor)
    assert name in str(info.value)
