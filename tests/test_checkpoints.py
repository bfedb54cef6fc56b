"""Checkpoints belong to one run: a mismatch is refused, and two runs never share one file.

Against a real influxd: a checkpoint written for one sensor/model is refused by
a runner of another (before, it was loaded and all of the other sensor's points
were skipped); concurrent saves never crash or tear the file. Two runs on one
checkpoint (two processes) are in tests/reliability/test_checkpoint_sharing.py.
"""

from __future__ import annotations

import pickle
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from counting_model import Counter

from influxhtm.core.errors import CheckpointMismatch
from influxhtm.core.times import to_ns
from influxhtm.htm.client import InfluxHtmClient
from influxhtm.running import Runner

T0 = datetime(2024, 3, 1, tzinfo=UTC)


def minutes(n: int) -> datetime:
    return T0 + timedelta(minutes=n)


def write_minutes(sensor, n: int) -> None:
    sensor.write([{"time": minutes(i), "value": float(i % 7)} for i in range(n)])



class OtherModel(Counter):
    """Another model class with the same state."""


def checkpointed(client, tmp_path) -> Path:
    """A finished run of model "m" over sensor power/oven (50 points) with its checkpoint."""
    sensor = client.create_sensor("power", "oven")
    write_minutes(sensor, 50)
    store = sensor.create_htm_model("m", params={"size": 10}, engine="counter")
    path = tmp_path / "oven.ckpt"
    assert Runner(sensor, store, Counter(), checkpoint=path, checkpoint_every=20).run_batch().points == 50
    return path


def runner_of(client, *, database=None, component="oven", model_id="m", params=None, engine="counter",
              model=None, path):
    if database is not None:
        client = InfluxHtmClient.from_settings(database, client.settings)
    sensor = client.create_sensor("power", component)
    params = params or {"size": 10}
    store = sensor.create_htm_model(model_id, params=params, engine=engine, exist_ok=True)
    if (store.params, store.engine) != (params, engine):  # the model was deleted and registered anew
        sensor.delete_htm_model(model_id)
        store = sensor.create_htm_model(model_id, params=params, engine=engine)
    return lambda: Runner(sensor, store, model or Counter(), checkpoint=path)


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"component": "grill"}, "component is 'oven' in the checkpoint, 'grill' in this run"),
        ({"model_id": "m2"}, "model_id is 'm' in the checkpoint, 'm2' in this run"),
        ({"params": {"size": 12}}, "params differ in 'size' (checkpoint [10], this run [12])"),
        ({"engine": "other"}, "engine is 'counter' in the checkpoint, 'other' in this run"),
        ({"model": OtherModel()}, "model_class is 'counting_model.Counter' in the checkpoint"),
        ({"model": Counter(params={"size": 11})}, "params differ in 'size'"),
    ],
)
def test_a_checkpoint_of_another_run_is_refused_naming_what_differs(client, tmp_path, change, named):
    path = checkpointed(client, tmp_path)
    before = path.read_bytes()
    other = runner_of(client, path=path, **change)
    with pytest.raises(CheckpointMismatch) as info:
        other()
    assert named in str(info.value)
    assert str(path) in str(info.value)
    assert path.read_bytes() == before  # the checkpoint is left as it was


def test_a_checkpoint_of_another_database_is_refused(client, tmp_path, influx_settings):
    path = checkpointed(client, tmp_path)
    elsewhere = InfluxHtmClient.from_settings(client.database + "_b", influx_settings)
    elsewhere.create_database()
    try:
        sensor = elsewhere.create_sensor("power", "oven")
        write_minutes(sensor, 50)
        store = sensor.create_htm_model("m", params={"size": 10}, engine="counter")
        with pytest.raises(CheckpointMismatch, match=f"database is {client.database!r} in the checkpoint"):
            Runner(sensor, store, Counter(), checkpoint=path)
        # Without the checkpoint, all of this sensor's points are processed (with it, before: none were).
        assert Runner(sensor, store, Counter()).run_batch(resume=True).points == 50
    finally:
        elsewhere.drop_database()
        elsewhere.close()


def test_the_matching_checkpoint_is_loaded(client, tmp_path):
    path = checkpointed(client, tmp_path)
    model = Counter()
    runner = runner_of(client, path=path, model=model)()
    assert model.seen == 50 and runner.checkpoint_ns == to_ns(minutes(49))
    # The model's own parameters, equal to the registered ones: the same run.
    same = runner_of(client, path=path, model=Counter(params={"size": 10}))()
    assert same.checkpoint_ns == to_ns(minutes(49))


def test_a_checkpoint_without_identity_is_refused(client, tmp_path):
    sensor = client.create_sensor("power", "oven")
    store = sensor.create_htm_model("m")
    path = tmp_path / "old.ckpt"
    old = {"state": {"seen": 3}, "last_ns": 5, "sensor": "power/oven", "model_id": "m"}  # influxhtm 0.1
    path.write_bytes(pickle.dumps(old))
    with pytest.raises(CheckpointMismatch, match="does not record which run it belongs to"):
        Runner(sensor, store, Counter(), checkpoint=path)
    path.write_bytes(b"not a pickle")
    with pytest.raises(Exception, match="is not an influxhtm checkpoint"):
        Runner(sensor, store, Counter(), checkpoint=path)


def test_concurrent_saves_never_crash_or_tear_the_file(client, tmp_path):
    sensor = client.create_sensor("power", "oven")
    store = sensor.create_htm_model("m")
    path = tmp_path / "busy.ckpt"

    class Big(Counter):
        def get_state(self):
            return {"seen": self.seen, "weights": bytes(400_000)}

    runners = [Runner(sensor, store, Big(), checkpoint=path) for _ in range(3)]
    errors: list[BaseException] = []
    done = threading.Event()

    def save(runner, offset):
        try:
            for i in range(60):
                runner.save_checkpoint(offset + i)
        except BaseException as error:  # noqa: BLE001 - reported by the test
            errors.append(error)

    def read():
        while not done.is_set():
            if path.exists():
                try:
                    Runner(sensor, store, Big(), checkpoint=path)
                except BaseException as error:  # noqa: BLE001 - reported by the test
                    errors.append(error)

    threads = [threading.Thread(target=save, args=(r, 1000 * n)) for n, r in enumerate(runners)]
    reader = threading.Thread(target=read)
    reader.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    done.set()
    reader.join()
    assert errors == []
    assert Runner(sensor, store, Big(), checkpoint=path).checkpoint_ns in {59, 1059, 2059}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["busy.ckpt"]  # no temporary file left
