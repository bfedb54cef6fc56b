"""A sensor whose measurement ends in `_model` (issue 16, item 6).

Sensor `pump`/`c1` has a model whose results live in `pump_model` with
component `c1`; a sensor `pump_model`/`c1` of its own (plain sensor data in
the same measurement, without an `id` tag) is still listed and found. Results
are told from sensors by the model registry, not by the name.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from influxhtm.core.errors import SensorNotFound

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def keys(client) -> list[tuple[str, str]]:
    return [(s.measurement, s.component) for s in client.list_sensors()]


@pytest.mark.parametrize("order", ["sensor first", "results first"])
def test_a_sensor_named_like_results_is_listed_and_found(client, order, reliability_report):
    pump = client.create_sensor("pump", "c1")
    pump.write([{"time": T0 + timedelta(minutes=i), "value": float(i)} for i in range(5)])
    twin = client.create_sensor("pump_model", "c1")
    twin_points = [{"time": T0 + timedelta(minutes=i), "value": 100.0 + i} for i in range(7)]

    def results():
        store = pump.create_htm_model("m1")
        store.write_results([{"time": T0 + timedelta(minutes=i), "anomaly_score": 0.1} for i in range(5)])
        return store

    if order == "sensor first":
        twin.write(twin_points)
        store = results()
    else:
        store = results()
        twin.write(twin_points)
    assert keys(client) == [("pump", "c1"), ("pump_model", "c1")]
    found = client.get_sensor("pump_model", "c1")
    values = [r.value for r in found.get_data()]
    reliability_report(
        scenario=f"sensor named like results ({order})",
        faults="sensor pump_model/c1 next to the results of pump/c1's model",
        written=len(twin_points), read_back=len(values), lost=len(twin_points) - len(values), duplicated=0,
    )
    assert values == [p["value"] for p in twin_points]
    assert store.count() == 5
    assert [m.id for m in pump.list_htm_models()] == ["m1"]


def test_results_alone_are_not_sensors(client):
    pump = client.create_sensor("pump", "c2")
    pump.write({"time": T0, "value": 1.0})
    pump.create_htm_model("m").write_results([{"time": T0, "anomaly_score": 0.2}])
    assert keys(client) == [("pump", "c2")]
    with pytest.raises(SensorNotFound):
        client.get_sensor("pump_model", "c2")
