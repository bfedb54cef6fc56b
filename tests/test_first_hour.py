"""Small things users hit in the first hour (issue 14, item 6), against a real server: keys InfluxQL
cannot name, the original README's point access, float32 values, progress bars, the batching
writer."""

import socket
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Optional

import attrs
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import influxhtm as ih
from influxhtm.core.errors import PartialWriteError
from influxhtm.influxql import Query, col
from influxhtm.model.line_protocol import encode_point
from influxhtm.orm.batching import WriterStopped

T0 = datetime(2024, 5, 1, tzinfo=UTC)


@ih.measurement("f32")
class Sample:
    time: datetime = ih.timestamp()
    value: float = ih.field()


@ih.measurement("clash")
class FloatV:
    time: datetime = ih.timestamp()
    v: float = ih.field()


@ih.measurement("clash")
class TextV:
    time: datetime = ih.timestamp()
    v: str = ih.field()
    note: Optional[str] = ih.field(default=None)


@pytest.fixture
def client(influx_settings, influx_database):
    return ih.InfluxHtmClient.from_settings(influx_database, influx_settings)


def wait_for(condition, seconds=10.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


# -- keys InfluxQL cannot name ---------------------------------------------------------------
@pytest.mark.parametrize("char", ["\r", "\x00"])
def test_the_server_stores_keys_with_cr_or_nul_but_influxql_cannot_name_them(client, char):
    key = f"a{char}b"
    client.write_lines([f"m,t{key}=x f{key}=1,ok=2 1000"])
    assert f"f{key}" in client.field_keys("m") and f"t{key}" in client.tag_keys("m")
    with pytest.raises(ih.errors.QueryError, match="error parsing query"):
        client.rows(Query().from_("m").select(col(f"f{key}", checked=False)))
    with pytest.raises(ih.errors.QueryError, match="error parsing query"):
        client.rows(Query().from_("m").select("ok").where(col(f"t{key}", checked=False) == "x"))


@pytest.mark.parametrize("char", ["\r", "\x00"])
def test_tag_and_field_keys_with_cr_or_nul_are_refused(client, char):
    for kind in ("tag", "field"):
        with pytest.raises(ih.ValidationError, match="InfluxQL cannot name"):

            @ih.measurement("m")
            class Bad:
                time: datetime = ih.timestamp()
                x: str = ih.tag(name=f"a{char}b") if kind == "tag" else ih.field(name=f"a{char}b")
                y: float = ih.field()

    sensor = client.create_sensor("power", "a")
    with pytest.raises(ih.ValidationError, match="InfluxQL cannot name"):
        sensor.write({"time": T0, "value": 1.0, f"room{char}": "x"})  # a run-time tag
    with pytest.raises(ih.ValidationError, match="InfluxQL cannot name"):
        client.repository(Sample, tags={f"site{char}": "x"}).add(Sample(time=T0, value=1.0))
    with pytest.raises(ih.ValidationError, match="InfluxQL cannot name"):
        encode_point("m", None, {f"f{char}": 1.0}, 0)
    assert client.measurements() == []


# -- the original README's point access --------------------------------------------------------
def test_readings_answer_the_original_readmes_point_forms(client):
    sensor = client.create_sensor("power", "coffee-machine")
    sensor.write([{"time": T0 + timedelta(minutes=i), "value": float(i)} for i in range(3)])
    points = sensor.getData(limit=1000)
    assert [point["time"] for point in points] == [T0 + timedelta(minutes=i) for i in range(3)]
    assert [point["value"] for point in points] == [0.0, 1.0, 2.0]
    assert points[0]["component"] == "coffee-machine"
    with pytest.raises(KeyError, match="nope"):
        points[0]["nope"]


# -- float32 ---------------------------------------------------------------------------------
float32s = st.floats(width=32, allow_nan=False, allow_infinity=False).map(np.float32)


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(values=st.lists(float32s, min_size=1, max_size=40))
def test_float32_values_are_written_shortest_and_read_back_the_same(client, values):
    repo = client.repository(Sample)
    repo.drop()
    objects = [Sample(time=T0 + timedelta(seconds=i), value=v) for i, v in enumerate(values)]
    for obj, value in zip(objects, values, strict=True):
        text = repo.line(obj).split("value=")[1].split(" ")[0]
        assert np.float32(float(text)) == value  # reads back to the same float32
        assert text == repr(float(str(value)))  # numpy's shortest round-trip text of the float32
        assert len(Decimal(text).normalize().as_tuple().digits) <= 9  # a float32's digits, not 17
    repo.add_all(objects)
    back = [r.value for r in repo.query().all()]
    assert [np.float32(v) for v in back] == values
    sensor = client.create_sensor("f32s", "a")
    sensor.delete_data()
    sensor.write([{"time": o.time, "value": v} for o, v in zip(objects, values, strict=True)])
    assert [np.float32(r.value) for r in sensor.get_data()] == values
    assert [r.value for r in sensor.get_data()] == back  # the same text as the declared class wrote


# -- progress bars ---------------------------------------------------------------------------
def test_progress_bars_for_add_all_imports_and_sweeps(client, capsys, tmp_path):
    repo = client.repository(Sample)
    objects = [Sample(time=T0 + timedelta(seconds=i), value=float(i)) for i in range(2500)]
    assert repo.add_all(objects, batch_size=1000, progress=True) == 2500
    err = capsys.readouterr().err
    assert "writing f32" in err and "2500/2500" in err
    repo.add_all(objects, progress=False)
    repo.add_all(objects)  # None: stderr is not a terminal here
    assert capsys.readouterr().err == ""
    path = tmp_path / "s.csv"
    path.write_text("time,value\n" + "".join(f"2024-05-01T00:00:{i:02d}Z,{i}\n" for i in range(30)))
    repo.import_csv(path, progress=True)
    assert "importing s.csv" in capsys.readouterr().err
    sensor = client.create_sensor("grid", "a")
    sensor.write([{"time": T0 + timedelta(minutes=i), "value": float(i % 5)} for i in range(50)])
    frame = ih.sweep(sensor, {"num_s": [128], "num_as": [4]}, "brainblocks", progress=True)
    assert frame["error"].isna().all(), list(frame["error"])
    assert "sweep brainblocks" in capsys.readouterr().err


# -- the batching writer ---------------------------------------------------------------------
def count(client, measurement="f32"):
    rows = client.rows(Query().from_(measurement).select(ih.influxql.count("value")))
    return rows[0][1] if rows else 0


def test_the_writer_sends_everything_on_exit(client):
    with client.writer(batch_size=1000, flush_interval=60) as writer:
        writer.write_all(Sample(time=T0 + timedelta(seconds=i), value=float(i)) for i in range(2500))
        writer.write(Sample(time=T0 - timedelta(days=1), value=-1.0))
    assert writer.written == 2501
    assert count(client) == 2501
    with pytest.raises(ih.InfluxHtmError, match="closed"):
        writer.write(Sample(time=T0, value=1.0))


def test_the_writer_sends_on_size_and_on_interval_without_flush(client):
    with client.writer(batch_size=10, flush_interval=None) as writer:
        writer.write_all(Sample(time=T0 + timedelta(seconds=i), value=1.0) for i in range(9))
        time.sleep(0.3)
        assert count(client) == 0  # below the batch size, no timer: waiting
        writer.write(Sample(time=T0 + timedelta(seconds=9), value=1.0))
        assert wait_for(lambda: count(client) == 10)
    with client.writer(batch_size=10**6, flush_interval=0.1) as writer:
        writer.write_all(Sample(time=T0 + timedelta(minutes=1, seconds=i), value=1.0) for i in range(3))
        assert wait_for(lambda: count(client) == 13)  # sent by the background thread


def test_the_writer_refuses_what_is_not_declared_at_once(client):
    with client.writer() as writer:
        with pytest.raises(ih.ValidationError, match="not an object of a declared class"):
            writer.write({"time": T0, "value": 1.0})
    assert writer.written == 0


def test_refused_points_are_raised_on_flush_and_exit_not_lost(client):
    client.repository(FloatV).add(FloatV(time=T0, v=1.0))
    writer = client.writer(batch_size=100, flush_interval=0.05)
    writer.write(TextV(time=T0 + timedelta(seconds=1), v="text"))  # a field type conflict: refused
    writer.write(FloatV(time=T0 + timedelta(seconds=2), v=2.0))
    time.sleep(0.3)  # the background thread sends both: the refusal is kept, not lost
    with pytest.raises(PartialWriteError) as info:
        writer.flush()
    assert info.value.written == 1 and info.value.dropped == 1
    with pytest.raises(PartialWriteError):
        with writer:
            writer.write(FloatV(time=T0 + timedelta(seconds=3), v=3.0))
    assert [r.v for r in client.repository(FloatV).query().all()] == [1.0, 2.0, 3.0]


def test_an_unreachable_server_stops_the_writer_with_the_count_not_sent(influx_settings):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings_ = attrs.evolve(influx_settings, host="127.0.0.1", port=port, retries=0)
    client = ih.InfluxHtmClient.from_settings("nowhere", settings_)
    writer = client.writer(batch_size=5, flush_interval=None)
    writer.write_all(Sample(time=T0 + timedelta(seconds=i), value=1.0) for i in range(12))
    with pytest.raises(WriterStopped) as info:
        writer.close()
    assert info.value.not_sent == 12 and info.value.__cause__ is not None
    with pytest.raises(WriterStopped):
        writer.write(Sample(time=T0, value=1.0))
