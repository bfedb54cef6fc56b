"""Issue 13: repositories with a measurement and fixed tags given at run time, generated code owned by
its declaration, and the sensor and model layers built on them (against a real server)."""

import gc
import linecache
import traceback
import weakref
from datetime import UTC, datetime, timedelta
from typing import Optional

import marshmallow.class_registry
import pytest

import influxhtm as ih
from influxhtm.model.data_layout import SensorReading
from influxhtm.model.line_protocol import encoder_for

T0 = datetime(2024, 5, 1, tzinfo=UTC)


@ih.measurement("placeholder")
class Reading:
    time: datetime = ih.timestamp()
    value: float = ih.field()
    note: Optional[str] = ih.field(default=None)


def test_repository_with_measurement_and_fixed_tags_writes_and_reads_only_there(client):
    pump = client.repository(Reading, measurement="power", tags={"component": "pump"})
    fan = client.repository(Reading, measurement="power", tags={"component": "fan"})
    assert pump.add_all([Reading(time=T0 + timedelta(minutes=i), value=float(i)) for i in range(5)]) == 5
    assert fan.add_all([{"time": T0, "value": 9.5}, {"time": T0 + timedelta(minutes=1), "value": 8.5}]) == 2
    assert client.measurements() == ["power"]  # not the declared "placeholder"
    assert sorted(client.tag_values("power", "component")) == ["fan", "pump"]
    assert [r.value for r in pump.query()] == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert [r.value for r in fan.query().all()] == [9.5, 8.5]
    assert pump.query().count() == 5
    pump.delete(before=T0 + timedelta(minutes=2))
    assert pump.query().count() == 3 and fan.query().count() == 2


def test_fixed_tag_that_is_declared_must_agree(client):
    repo = client.repository(SensorReading, measurement="power", tags={"component": "pump"})
    pump = SensorReading(time=T0, value=2.0, component="pump")
    assert repo.add_all([{"time": T0, "value": 1.0}, pump]) == 2
    with pytest.raises(ih.ValidationError, match="'fan' is not this repository's component 'pump'"):
        repo.add_all([SensorReading(time=T0, value=3.0, component="fan")])
    with pytest.raises(ih.ValidationError, match="fan"):
        repo.add_all([{"time": T0, "value": 3.0, "component": "fan"}])
    assert [(r.component, r.value) for r in repo.query()] == [("pump", 2.0)]


def test_bad_measurement_or_tags_are_refused_before_anything(client):
    one = [Reading(time=T0, value=1.0)]
    with pytest.raises(ih.ValidationError, match="measurement"):
        client.repository(Reading, measurement="#comment").add_all(one)
    with pytest.raises(ih.ValidationError, match="empty"):
        client.repository(Reading, measurement="power", tags={"component": ""}).add_all(one)
    with pytest.raises(ih.ValidationError, match="reserved"):
        client.repository(Reading, measurement="power", tags={"time": "x"}).add_all(one)
    assert client.measurements() == []


def test_encoders_live_on_the_declaration_and_die_with_the_class():
    @ih.measurement("temporary")
    class Temporary:
        time: datetime = ih.timestamp()
        value: float = ih.field()

    first = encoder_for(Temporary, "power", {"component": "a"})
    assert encoder_for(Temporary, "power", {"component": "a"}) is first
    assert encoder_for(Temporary, "power", {"component": "b"}) is not first
    ns = int(T0.timestamp()) * 10**9
    assert first(Temporary(time=T0, value=1.5)) == f"power,component=a value=1.5 {ns}"
    Temporary.load({"time": T0, "value": 1.0})  # the schema is generated too
    assert not any("Temporary" in name for name in marshmallow.class_registry._registry)
    alive = weakref.ref(Temporary)
    del Temporary, first
    gc.collect()
    assert alive() is None  # no module-level cache keeps the class (or its generated code) alive


def test_generated_source_shows_in_tracebacks():
    class NotReading:
        value = 1.0

    encode = encoder_for(Reading, "power", {"component": "a"})
    with pytest.raises(ih.ValidationError) as info:
        encode(NotReading())
    frames = traceback.extract_tb(info.value.__traceback__)
    generated = [f for f in frames if f.filename.startswith("<influxhtm encoder")]
    assert generated and generated[0].line == "return _other(obj)"
    assert linecache.getline(generated[0].filename, 1).startswith("def encode(obj")


def test_csv_import_goes_through_the_write_pipeline_and_counts_refusals(client, tmp_path):
    """A batch the server refuses (a field type conflict in its shard) does not stop the import: later
    batches are written, and one PartialWriteError counts exactly what was written and dropped."""
    from influxhtm.orm.csv_import import import_csv

    week = timedelta(days=7)
    client.write_lines([f"power,component=pump value=1i {int(T0.timestamp()) * 10**9}"])  # an integer field
    path = tmp_path / "data.csv"
    rows = [(T0 + timedelta(minutes=i), float(i)) for i in range(4)]
    rows += [(T0 + 3 * week + timedelta(minutes=i), float(i)) for i in range(6)]  # another shard
    path.write_text("timestamp,value\n" + "".join(f"{t.isoformat()},{v}\n" for t, v in rows))
    sensor = client.create_sensor("power", "pump")
    with pytest.raises(ih.errors.PartialWriteError) as info:
        import_csv(sensor, path, batch_size=4)
    assert (info.value.written, info.value.dropped, info.value.not_sent) == (6, 4, 0)
    assert len(sensor.get_data(since=T0 + week)) == 6


def test_sensor_query_is_the_public_read_path_and_stores_use_repositories(client):
    sensor = client.create_sensor("power", "pump")
    other = client.create_sensor("power", "fan")
    sensor.write([{"time": T0 + timedelta(minutes=i), "value": float(i)} for i in range(6)])
    other.write([{"time": T0, "value": 99.0}])
    readings = list(sensor.query(since=T0 + timedelta(minutes=1), until=T0 + timedelta(minutes=3)))
    assert [(r.component, r.value) for r in readings] == [("pump", 1.0), ("pump", 2.0), ("pump", 3.0)]
    assert sensor.query(before=T0 + timedelta(minutes=3)).count() == 3
    assert list(sensor.query().to_dataframe()["value"]) == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    store = sensor.create_htm_model("m1")
    with pytest.raises(ih.ValidationError, match="2.fields"):  # nothing sent: the list is checked whole
        store.write_results([{"time": T0, "anomaly_score": 0.1}, None, {"time": T0 + timedelta(minutes=1)}])
    assert store.write_results([{"time": T0, "anomaly_score": 0.5}, None]) == 1
    assert store.results.measurement == "power_model"
    assert store.results.tags == {"component": "pump", "id": "m1"}
    assert [r.anomaly_score for r in store.results.query()] == [0.5]
