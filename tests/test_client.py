"""The influxhtm API against a real server: sensors, model stores, combined data,
and each bug of the original influxhtm as a test that would have failed on it."""

from datetime import UTC, datetime, timedelta

import pytest

from influxhtm import HtmResult, InfluxHtmClient, SensorReading, ValidationError
from influxhtm.core.errors import ModelExists, ModelNotFound, SensorNotFound
from influxhtm.influxql import admin

T0 = datetime(2024, 3, 1, tzinfo=UTC)


def minutes(n):
    return T0 + timedelta(minutes=n)


def fill(sensor, count=60, value=lambda i: float(i)):
    sensor.write([{"time": minutes(i), "value": value(i)} for i in range(count)])


# -- client and sensors ----------------------------------------------------------------
def test_constructor_does_no_io_and_database_is_created_on_first_write(influx_settings):
    import uuid

    name = f"lazy_{uuid.uuid4().hex[:8]}"
    client = InfluxHtmClient.from_settings(name, influx_settings)
    assert name not in client.databases()
    client.create_sensor("power", "a").write({"time": T0, "value": 1})
    assert name in client.databases()
    client.drop_database()


@pytest.mark.parametrize(
    "measurement, component", [("", "a"), ("power", ""), (None, "a"), ("power", 3), ("  ", "a")]
)
def test_create_sensor_requires_both_names(client, measurement, component):
    with pytest.raises(ValidationError) as info:
        client.create_sensor(measurement, component)
    assert "measurement" in str(info.value) or "component" in str(info.value)


def test_create_sensor_writes_nothing(client):
    client.create_sensor("power", "a")
    assert client.list_sensors() == []


def test_list_sensors_from_server_not_memory(client, influx_settings, influx_database):
    fill(client.create_sensor("power", "coffee-machine"), 3)
    fill(client.create_sensor("power_usage", "fridge"), 3)
    fill(client.create_sensor("motion_model", "hall"), 3)  # a sensor whose name ends in _model
    other = InfluxHtmClient.from_settings(influx_database, influx_settings)
    names = [str(s) for s in other.list_sensors()]
    assert names == ["motion_model/hall", "power/coffee-machine", "power_usage/fridge"]


def test_list_sensors_excludes_results_and_registry_and_lists_extra_tags_once(client):
    sensor = client.create_sensor("power", "a")
    sensor.write(
        [{"time": minutes(0), "value": 1.0, "site": "x"}, {"time": minutes(1), "value": 2.0, "site": "y"}]
    )
    store = sensor.create_htm_model("m1")
    store.write_result({"time": minutes(0), "anomaly_score": 0.5})
    assert [str(s) for s in client.list_sensors()] == ["power/a"]


def test_get_sensor(client):
    fill(client.create_sensor("power", "a"), 2)
    assert client.get_sensor("power", "a").component == "a"
    with pytest.raises(SensorNotFound, match="'power'/'b'"):
        client.get_sensor("power", "b")


def test_write_forms_and_value_always_float(client):
    import pandas

    sensor = client.create_sensor("power", "a")
    sensor.write({"time": minutes(0), "value": 1})  # an int
    sensor.write(SensorReading(time=minutes(1), value=2.5, component="a"))
    sensor.write(pandas.DataFrame({"value": [3, 4]}, index=pandas.DatetimeIndex([minutes(2), minutes(3)])))
    sensor.write({"time": minutes(i), "value": i} for i in range(4, 6))  # a generator
    data = sensor.get_data()
    assert [r.value for r in data] == [1.0, 2.5, 3.0, 4.0, 4.0, 5.0]
    assert all(isinstance(r.value, float) for r in data)
    fields = client.rows(admin.show_field_keys("power"))
    assert fields == [["value", "float"]]


def test_a_bad_batch_is_refused_whole_with_every_problem(client):
    sensor = client.create_sensor("power", "a")
    points = [
        {"time": minutes(0), "value": 1.0},
        {"time": minutes(1), "value": float("nan")},
        {"value": 2.0},
        {"time": minutes(3), "value": "x"},
    ]
    with pytest.raises(ValidationError) as info:
        sensor.write(points)
    assert set(info.value.errors) == {1, 2, 3}
    assert "nan" in str(info.value) and "time" in str(info.value)
    assert sensor.get_data() == []


def test_get_data_bounds_inclusive_limit_latest_ascending(client):
    sensor = client.create_sensor("power", "a")
    fill(sensor, 10)
    data = sensor.get_data(since=minutes(2), until=minutes(5))
    assert [r.value for r in data] == [2.0, 3.0, 4.0, 5.0]  # both ends included
    assert [r.value for r in sensor.get_data(limit=3)] == [7.0, 8.0, 9.0]  # the latest 3, ascending
    assert all(r.time.tzinfo is not None and r.time.utcoffset() == timedelta(0) for r in data)
    assert sensor.time_bounds() == (minutes(0), minutes(9))


def test_get_data_aggregated(client):
    sensor = client.create_sensor("power", "a")
    fill(sensor, 30)
    data = sensor.get_data(aggregation="10m")
    assert [r.value for r in data] == [4.5, 14.5, 24.5]
    assert [r.time for r in data] == [minutes(0), minutes(10), minutes(20)]
    assert [r.value for r in sensor.get_data(aggregation="10m", agg="max")] == [9.0, 19.0, 29.0]
    with pytest.raises(ValidationError, match="agg"):
        sensor.get_data(aggregation="10m", agg="average")


def test_delete_data(client):
    sensor = client.create_sensor("power", "a")
    other = client.create_sensor("power", "b")
    fill(sensor, 10)
    fill(other, 10)
    sensor.delete_data(since=minutes(2), until=minutes(4))
    assert [r.value for r in sensor.get_data()] == [0.0, 1.0, 5.0, 6.0, 7.0, 8.0, 9.0]
    assert len(other.get_data()) == 10


# -- model stores --------------------------------------------------------------------------
def test_create_get_list_models_with_registry(client):
    sensor = client.create_sensor("power", "a")
    store = sensor.create_htm_model("exp-1", params={"alpha": 0.1}, engine="brainblocks", aggregation="10m")
    assert store.params == {"alpha": 0.1}
    again = InfluxHtmClient.from_settings(client.database, client.settings).create_sensor("power", "a")
    found = again.get_htm_model("exp-1")  # findable before it has results
    assert (found.params, found.engine, found.aggregation) == ({"alpha": 0.1}, "brainblocks", "10m")
    assert found.created is not None and abs(found.created - store.created) < timedelta(seconds=1)
    with pytest.raises(ModelExists, match="exp-1"):
        sensor.create_htm_model("exp-1")
    assert sensor.create_htm_model("exp-1", exist_ok=True).params == {"alpha": 0.1}
    sensor.create_htm_model("exp-2")
    assert [s.model_id for s in sensor.list_htm_models()] == ["exp-1", "exp-2"]
    with pytest.raises(ModelNotFound, match="nope"):
        sensor.get_htm_model("nope")


def test_write_result_forms(client):
    sensor = client.create_sensor("power", "a")
    store = sensor.create_htm_model("m")
    store.write_result(
        HtmResult(minutes(0), 0.1, 0.2, raw_score=0.3, prediction=5.0, prediction_confidence=0.9)
    )
    store.write_result({"time": minutes(1), "anomalyScore": 0.4, "anomalyLikelihood": 0.5})
    store.write_result({"timestamp": minutes(2), "anomaly_score": 0.6})

    class ModelResult:  # NuPIC OPF style
        rawInput = {"timestamp": minutes(3), "value": 1.0}
        inferences = {
            "anomalyScore": 0.7,
            "multiStepBestPredictions": {1: 42.0},
            "multiStepPredictions": {1: {42.0: 0.8, 41.0: 0.2}},
        }

    store.write_result(ModelResult())
    store.write_result(minutes(4), {"inferences": {"anomalyScore": 0.8}, "anomalyLikelihood": 0.9})
    results = store.get_results()
    assert [r.anomaly_score for r in results] == [0.1, 0.4, 0.6, 0.7, 0.8]
    assert results[0] == HtmResult(minutes(0), 0.1, 0.2, 0.3, 5.0, 0.9)
    assert (results[3].prediction, results[3].prediction_confidence) == (42.0, 0.8)
    assert results[4].anomaly_likelihood == 0.9
    with pytest.raises(ValidationError, match="no time"):
        store.write_result({"anomalyScore": 0.5})
    with pytest.raises(ValidationError, match="bogus"):
        store.write_result({"time": minutes(5), "anomalyScore": 0.5, "bogus": 1})


def test_write_results_batches_and_last_result_time(client):
    store = client.create_sensor("power", "a").create_htm_model("m")
    assert store.last_result_time() is None and store.get_results() == []
    store.write_results({"time": minutes(i), "anomaly_score": i / 100} for i in range(12000))
    assert store.count() == 12000
    assert store.last_result_time() == minutes(11999)


# -- the original's bugs ------------------------------------------------------------------------
def test_underscore_measurement_results_go_to_the_right_place(client):
    sensor = client.create_sensor("power_usage", "a")
    fill(sensor, 3)
    store = sensor.create_htm_model("m")
    store.write_result({"time": minutes(1), "anomaly_score": 0.5})
    names = {row[0] for row in client.rows(admin.show_measurements())}
    assert names == {"power_usage", "power_usage_model", "influxhtm_models"}
    assert [
        r.anomaly_score for r in client.get_sensor("power_usage", "a").get_htm_model("m").get_results()
    ] == [0.5]


def test_several_models_per_sensor_each_read_alone(client):
    sensor = client.create_sensor("power", "a")
    one, two = sensor.create_htm_model("one"), sensor.create_htm_model("two")
    one.write_results({"time": minutes(i), "anomaly_score": 0.1} for i in range(5))
    two.write_results({"time": minutes(i), "anomaly_score": 0.9} for i in range(3))
    assert [r.anomaly_score for r in one.get_results()] == [0.1] * 5
    assert [r.anomaly_score for r in two.get_results()] == [0.9] * 3


def test_delete_models_touches_only_this_sensor(client):
    a, b = client.create_sensor("power", "a"), client.create_sensor("power", "b")
    for sensor in (a, b):
        fill(sensor, 3)
        for model_id in ("x", "y"):
            sensor.create_htm_model(model_id).write_result({"time": minutes(1), "anomaly_score": 0.5})
    a.delete_htm_model("x")
    assert [s.model_id for s in a.list_htm_models()] == ["y"]
    a.delete_htm_models()
    assert a.list_htm_models() == []
    assert [s.model_id for s in b.list_htm_models()] == ["x", "y"]
    assert len(b.get_htm_model("x").get_results()) == 1
    assert len(a.get_data()) == 3  # the data stays


def test_times_compared_as_times_not_strings(client):
    store = client.create_sensor("power", "a").create_htm_model("m")
    # "...00Z" sorts after "...00.500000Z" as text, though it is earlier
    store.write_result({"time": T0, "anomaly_score": 0.1})
    store.write_result({"time": T0 + timedelta(milliseconds=500), "anomaly_score": 0.2})
    assert store.last_result_time() == T0 + timedelta(milliseconds=500)


def test_first_and_last_points_results_are_kept(client):
    sensor = client.create_sensor("power", "a")
    fill(sensor, 5)
    store = sensor.create_htm_model("m")
    store.write_results({"time": minutes(i), "anomaly_score": i / 10} for i in range(5))
    assert len(store.get_results(since=minutes(0), until=minutes(4))) == 5
    data = sensor.get_combined_sensor_data(since=minutes(0), until=minutes(4))
    assert [row[2] for row in data.values] == [0.0, 0.1, 0.2, 0.3, 0.4]


def test_missing_results_are_null_not_carried_forward(client):
    sensor = client.create_sensor("power", "a")
    fill(sensor, 4)
    store = sensor.create_htm_model("m")
    store.write_result({"time": minutes(0), "anomaly_score": 0.9})
    store.write_result({"time": minutes(3), "anomaly_score": 0.1})
    data = sensor.get_combined_sensor_data()
    assert data.column("m.anomalyScore") == [0.9, None, None, 0.1]


def test_predictions_are_stored_and_combined(client):
    sensor = client.create_sensor("power", "a")
    fill(sensor, 2)
    store = sensor.create_htm_model("m")
    store.write_result({"time": minutes(1), "anomaly_score": 0.2, "prediction": 7.5})
    data = sensor.get_combined_sensor_data()
    assert "m.prediction" in data.columns
    assert data.column("m.prediction") == [None, 7.5]


def test_empty_sensor_gives_empty_results(client):
    sensor = client.create_sensor("power", "nothing")
    assert sensor.get_data() == [] and sensor.get_data(aggregation="10m") == []
    assert sensor.time_bounds() is None
    data = sensor.get_combined_sensor_data(aggregation="10m")
    assert data.empty and data.values == ()
    assert data.to_dict()["series"][0]["values"] == []
    assert len(data.to_dataframe()) == 0


# -- combined data ----------------------------------------------------------------------------
def test_combined_two_models_raw_matches_what_was_written(client):
    sensor = client.create_sensor("power", "a")
    fill(sensor, 50, value=lambda i: float(i * i % 17))
    written = {}
    for model_id, skip in (("exp-1", 3), ("exp-2", 5)):
        store = sensor.create_htm_model(model_id)
        rows = {i: (((i * 7) % 10) / 10, ((i * 3) % 10) / 10) for i in range(50) if i % skip}
        store.write_results(
            {"time": minutes(i), "anomaly_score": s, "anomaly_likelihood": lk} for i, (s, lk) in rows.items()
        )
        written[model_id] = rows
    data = sensor.get_combined_sensor_data()
    assert data.columns == (
        "time",
        "value",
        "exp-1.anomalyScore",
        "exp-1.anomalyLikelihood",
        "exp-2.anomalyScore",
        "exp-2.anomalyLikelihood",
    )
    assert len(data.values) == 50
    for i, row in enumerate(data.values):
        assert row[0] == minutes(i) and row[1] == float(i * i % 17)
        for offset, model_id in ((2, "exp-1"), (4, "exp-2")):
            expected = written[model_id].get(i, (None, None))
            assert (row[offset], row[offset + 1]) == expected
    one = sensor.get_combined_sensor_data(models=["exp-2"])  # the same names with one model
    assert one.columns == ("time", "value", "exp-2.anomalyScore", "exp-2.anomalyLikelihood")
    assert one.column("exp-2.anomalyScore") == data.column("exp-2.anomalyScore")
    assert one.title == "power/a: models exp-2" and data.title == "power/a: models exp-1, exp-2"


def test_combined_aggregated_matches_values_computed_here(client):
    sensor = client.create_sensor("power", "a")
    values = [float((i * 13) % 29) for i in range(60)]
    sensor.write([{"time": minutes(i), "value": v} for i, v in enumerate(values)])
    scores = {i: ((i * 31) % 100) / 100 for i in range(60) if i % 4}
    store = sensor.create_htm_model("m")
    store.write_results(
        {"time": minutes(i), "anomaly_score": s, "anomaly_likelihood": s / 2} for i, s in scores.items()
    )
    data = sensor.get_combined_sensor_data(aggregation="10m")
    assert len(data.values) == 6
    for bucket, row in enumerate(data.values):
        members = range(bucket * 10, bucket * 10 + 10)
        assert row[0] == minutes(bucket * 10)
        assert row[1] == pytest.approx(sum(values[i] for i in members) / 10)
        assert row[2] == max(
            scores[i] for i in members if i in scores
        )  # max: an anomaly is not averaged away
        assert row[3] == max(scores[i] / 2 for i in members if i in scores)
    frame = data.to_dataframe()
    assert str(frame.index.tz) == "UTC" and list(frame.columns) == [
        "value",
        "m.anomalyScore",
        "m.anomalyLikelihood",
    ]


def test_naive_times_utc_by_default_or_refused_everywhere(client):
    from influxhtm.core.times import set_naive_times

    sensor = client.create_sensor("power", "a")
    naive = datetime(2024, 3, 1, 12, 0)
    sensor.write({"time": naive, "value": 1.0})
    assert sensor.get_data()[0].time == naive.replace(tzinfo=UTC)  # UTC, as influxdb-python and pandas
    previous = set_naive_times("error")
    try:
        for attempt in (
            lambda: sensor.write({"time": naive, "value": 2.0}),
            lambda: sensor.get_data(since=naive),
            lambda: HtmResult(naive, 0.5),
            lambda: SensorReading.load({"time": "2024-03-01T12:00:00", "value": 1.0, "component": "a"}),
        ):
            with pytest.raises(ValidationError, match="naive"):
                attempt()
        assert sensor.get_data(since=naive.astimezone())[0].value == 1.0
    finally:
        set_naive_times(previous)
    with pytest.raises(ValidationError, match="naive_times"):
        set_naive_times("UTC")


def test_reads_of_a_database_not_yet_written_are_empty(influx_settings):
    client = InfluxHtmClient.from_settings("never_written_db", influx_settings)
    sensor = client.create_sensor("power", "a")
    assert sensor.get_data() == [] and list(sensor.iter_data()) == [] and client.list_sensors() == []
    assert sensor.list_htm_models() == [] and sensor.get_combined_sensor_data().empty
    assert "never_written_db" not in client.databases()
    store = sensor.create_htm_model("m")  # registers, creating the database
    assert store.last_result_time() is None
    client.drop_database()



def test_a_repository_query_of_a_database_not_yet_written_is_empty(influx_settings):
    client = InfluxHtmClient.from_settings("never_written_repo_db", influx_settings)
    sensor = client.create_sensor("power", "a")
    assert list(sensor.query()) == [] and sensor.query().first() is None
    assert list(sensor.repository.query().select("value")) == []  # typed rows were empty already
    assert "never_written_repo_db" not in client.databases()

def test_a_sensor_named_like_results_stays_a_sensor_when_another_has_models(client):
    fill(client.create_sensor("power_model", "d"), 2)
    power = client.create_sensor("power", "c")
    fill(power, 2)
    power.create_htm_model("a").write_result({"time": minutes(0), "anomaly_score": 0.5})
    assert [str(s) for s in client.list_sensors()] == ["power/c", "power_model/d"]
    assert client.get_sensor("power_model", "d").count() == 2


def test_results_written_without_registry_are_not_sensors(client):
    fill(client.create_sensor("legacy", "c"), 2)
    # results laid out as the original influxhtm wrote them, with no registry entry
    client.write_lines(['legacy_model,component=c,id=old anomalyScore=0.5 60000000000'])
    assert [str(s) for s in client.list_sensors()] == ["legacy/c"]
    assert [s.model_id for s in client.get_sensor("legacy", "c").list_htm_models()] == ["old"]


def test_administration_of_a_database_not_yet_written(influx_settings):
    client = InfluxHtmClient.from_settings("admin_first_db", influx_settings)
    try:
        client.create_sensor("power", "a").delete_data()  # nothing to delete, no error
        client.create_retention_policy("short", duration="1d")
        assert "short" in [p["name"] for p in client.retention_policies()]
    finally:
        client.drop_database()


def test_combined_aggregated_results_stay_within_the_bounds(client):
    sensor = client.create_sensor("power", "a")
    fill(sensor, 20)
    store = sensor.create_htm_model("m")
    store.write_results({"time": minutes(i), "anomaly_score": 0.8 if i < 5 else 0.1} for i in range(20))
    data = sensor.get_combined_sensor_data(since=minutes(5), until=minutes(14), aggregation="10m")
    assert data.column("value") == [7.0, 12.0]  # the buckets' means of the points within the bounds
    assert data.column("m.anomalyScore") == [0.1, 0.1]  # not the 0.8 of 00:00-00:04, outside `since`


def test_combined_models_argument(client):
    sensor = client.create_sensor("power", "a")
    fill(sensor, 3)
    sensor.create_htm_model("exp-1").write_result({"time": minutes(1), "anomaly_score": 0.5})
    data = sensor.get_combined_sensor_data(models="exp-1")  # one id as text
    assert data.columns == ("time", "value", "exp-1.anomalyScore", "exp-1.anomalyLikelihood")
    with pytest.raises(ModelNotFound, match="zz"):
        sensor.get_combined_sensor_data(models=["zz"])
    with pytest.raises(ValidationError, match="models"):
        sensor.get_combined_sensor_data(models=5)


def test_a_bad_list_of_results_is_refused_whole(client):
    store = client.create_sensor("power", "a").create_htm_model("m")
    results = [{"time": minutes(i), "anomaly_score": 0.5} for i in range(12_000)]
    results[11_000] = {"time": minutes(1), "anomaly_score": float("inf")}
    with pytest.raises(ValidationError) as info:
        store.write_results(results)
    assert list(info.value.errors) == [11_000]
    assert store.count() == 0
    with pytest.raises(ValidationError, match="results"):
        store.write_results(5)


@pytest.fixture
def closed_sessions():
    """Set up before `client`, so torn down after it: by then the client's session was closed once."""
    closed: list[bool] = []
    yield closed
    assert closed == [True], "the shared client fixture did not close its connection"


def test_the_shared_client_fixture_closes_its_connection(closed_sessions, client):
    assert client.get_sensor  # a working client on the test's database
    session = client.connection.session
    original = session.close
    session.close = lambda: (closed_sessions.append(True), original())
