"""Parameter sweeps: ids, grids, and runs on a process pool and on a Dask cluster of 2 worker processes."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from influxhtm.core.errors import ModelNotFound, ValidationError
from influxhtm.running import expand_grid, model_id_for, sweep

T0 = datetime(2024, 3, 1, tzinfo=UTC)
POINTS = 120


class Scaled:
    """A tiny engine: the anomaly score is the value times `factor` (so each result can be checked)."""

    def __init__(self, factor: float, offset: float = 0.0):
        self.factor = factor
        self.offset = offset

    def run(self, point):
        return {"anomaly_score": point.value * self.factor + self.offset}


def scaled(factor: float, offset: float = 0.0, fail: bool = False) -> Scaled:
    """The engine factory handed to sweep (importable by name, so it pickles to worker processes)."""
    if fail:
        raise ValueError(f"cannot build a model with factor {factor}")
    return Scaled(factor, offset)


def make_sensors(client, names=("coffee-machine", "fridge")):
    sensors = []
    for k, name in enumerate(names):
        sensor = client.create_sensor("power", name)
        sensor.write([{"time": T0 + timedelta(minutes=i), "value": float((i * (k + 3)) % 11)}
                      for i in range(POINTS)])
        sensors.append(sensor)
    return sensors


def check_results(sensor, model_id, params):
    store = sensor.get_htm_model(model_id)
    assert store.params == params and store.engine == f"{__name__}.scaled"
    values = {p.time: p.value for p in sensor.get_data()}
    results = store.get_results()
    assert len(results) == POINTS
    for result in results:
        assert result.anomaly_score == pytest.approx(values[result.time] * params["factor"]
                                                     + params.get("offset", 0.0))


# -- ids and grids -----------------------------------------------------------------------------
def test_expand_grid():
    assert expand_grid({"a": [1, 2], "b": ("x", "y")}) == [
        {"a": 1, "b": "x"}, {"a": 1, "b": "y"}, {"a": 2, "b": "x"}, {"a": 2, "b": "y"}]
    assert expand_grid([{"a": 1}, {"b": 2}]) == [{"a": 1}, {"b": 2}]
    assert expand_grid({}) == [{}]
    assert expand_grid({"r": [(0, 100)]}) == [{"r": (0, 100)}]
    with pytest.raises(ValidationError, match="list of values"):
        expand_grid({"a": 1})
    with pytest.raises(ValidationError):
        expand_grid([1, 2])


def test_model_ids_are_stable_and_distinct():
    a = model_id_for("brainblocks", {"x": 1, "y": [1, 2]})
    assert a == model_id_for("brainblocks", {"y": [1, 2], "x": 1})  # key order does not matter
    assert a.startswith("brainblocks-") and len(a) == len("brainblocks-") + 10
    assert a != model_id_for("brainblocks", {"x": 2, "y": [1, 2]})
    assert a != model_id_for("replay", {"x": 1, "y": [1, 2]})
    assert model_id_for(scaled, {"factor": 1}).startswith("scaled-")
    with pytest.raises(ValidationError, match="JSON"):
        model_id_for("replay", {"x": object()})


# -- runs ------------------------------------------------------------------------------------
def test_sweep_on_a_dask_cluster_of_two_processes(client):
    distributed = pytest.importorskip("dask.distributed")
    sensors = make_sensors(client)
    grid = {"factor": [0.5, 1.0, 2.0]}
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as dask:
        table = sweep(sensors, grid, scaled, executor=dask)
    assert len(table) == 6
    assert list(table.columns) == ["sensor", "measurement", "component", "model_id", "params", "points",
                                   "results", "elapsed", "error"]
    assert table["error"].isna().all(), table["error"].tolist()
    assert (table["points"] == POINTS).all() and (table["results"] == POINTS).all()
    assert sorted(set(table["sensor"])) == ["power/coffee-machine", "power/fridge"]
    assert len(set(table["model_id"])) == 3
    for sensor in sensors:
        models = sensor.list_htm_models()
        assert len(models) == 3
        for store in models:
            check_results(sensor, store.model_id, store.params)
        assert sorted(m.params["factor"] for m in models) == [0.5, 1.0, 2.0]


def test_sweep_on_the_default_process_pool_with_a_failing_run(client):
    sensors = make_sensors(client, names=("kettle",))
    grid = [{"factor": 3.0}, {"factor": 4.0, "fail": True}, {"factor": 0.25, "offset": 1.0}]
    table = sweep(sensors, grid, scaled)
    assert len(table) == 3
    failed = table[table["error"].notna()]
    assert len(failed) == 1
    assert failed["error"].iloc[0] == "ValueError: cannot build a model with factor 4.0"
    assert failed["params"].iloc[0] == {"factor": 4.0, "fail": True}
    good = table[table["error"].isna()]
    assert (good["points"] == POINTS).all() and (good["results"] == POINTS).all()
    for _, row in good.iterrows():
        check_results(sensors[0], row["model_id"], row["params"])
    # A model that could not be built is not registered: the registry lists runnable experiments.
    with pytest.raises(ModelNotFound):
        sensors[0].get_htm_model(failed["model_id"].iloc[0])


def test_sweep_with_an_engine_name_a_time_slice_and_a_thread_pool(client, tmp_path):
    sensor = make_sensors(client, names=("heater",))[0]
    recorded = tmp_path / "recorded.csv"
    stamps = [(T0 + timedelta(minutes=i)).strftime("%Y-%m-%d %H:%M:%S") for i in range(POINTS)]
    rows = [f"{stamp},{i / 1000},1.0\n" for i, stamp in enumerate(stamps)]
    recorded.write_text("timestamp,anomaly_score,raw_score\n" + "".join(rows))
    until = T0 + timedelta(minutes=59)
    with ThreadPoolExecutor(2) as pool:
        table = sweep([sensor], {"path": [str(recorded)], "missing": ["error", "skip"]}, "replay",
                      until=until, executor=pool)
    assert table["error"].isna().all(), table["error"].tolist()
    assert (table["points"] == 60).all()
    for model_id in table["model_id"]:
        store = sensor.get_htm_model(model_id)
        assert store.engine == "replay" and json.loads(json.dumps(store.params)) == store.params
        assert [r.anomaly_score for r in store.get_results()] == [i / 1000 for i in range(60)]


def test_sweep_refuses_bad_arguments(client):
    with pytest.raises(ValidationError, match="unknown engine"):
        sweep([client.create_sensor("power", "x")], [{}], "no-such-engine")
    with pytest.raises(ValidationError, match="Sensor"):
        sweep(["power/x"], [{}], "replay")
    empty = sweep([], [{}], "replay")
    assert len(empty) == 0 and "error" in empty.columns


def test_brainblocks_sweep_takes_the_value_range_from_the_sensor(influx_settings, influx_database):
    from concurrent.futures import ThreadPoolExecutor
    from datetime import datetime, timedelta

    import influxhtm as ih

    client = ih.InfluxHtmClient.from_settings(influx_database, influx_settings)
    sensor = client.create_sensor("power", "bb")
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    sensor.write([{"time": t0 + timedelta(minutes=i), "value": float(i % 12)} for i in range(200)])
    table = ih.sweep([sensor], {"num_s": [128], "num_as": [4]}, "brainblocks", executor=ThreadPoolExecutor(1))
    assert table["error"].isna().all(), list(table["error"])
    assert int(table["results"].iloc[0]) == 200
    params = sensor.get_htm_model(table["model_id"].iloc[0]).params
    assert (params["min_val"], params["max_val"]) == (0.0, 11.0)
    bad = ih.sweep([sensor], {"num_s": [128], "num_c": [64]}, "brainblocks", executor=ThreadPoolExecutor(1))
    assert "num_c" in bad["error"].iloc[0]
    assert bad["model_id"].iloc[0] not in [s.model_id for s in sensor.list_htm_models()]  # nothing registered
