"""Two runs given one checkpoint path: the second is refused at once, the first completes undisturbed.

The first run is a real separate process (a batch run over a real influxd with
a slow model); the second, in the test's process, is given the same checkpoint
while the first one holds it. Before, both ran, wrote the same temporary file
and one of them could crash on the rename.
"""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from counting_model import Counter

from influxhtm.core.errors import CheckpointInUse
from influxhtm.core.times import to_ns
from influxhtm.running import Runner

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2024, 3, 1, tzinfo=UTC)
POINTS = 400



# The first run: the same Counter class (imported under the module name this process knows), slowed down.
FIRST_RUN = """
import importlib, sys
from influxhtm.htm.client import InfluxHtmClient
from influxhtm.running import Runner
from influxhtm.io.settings import Settings

database, host, port, path, root, module = sys.argv[1:7]
sys.path.insert(0, root)
Counter = importlib.import_module(module).Counter
client = InfluxHtmClient.from_settings(database, Settings(host=host, port=int(port)))
store = client.create_sensor("power", "oven").get_htm_model("m")
runner = Runner(store.sensor, store, Counter(pause=0.01), checkpoint=path, checkpoint_every=10)
print(runner.run_batch(resume=True).points)
"""


def start_first_run(client, settings, path: Path, script: Path) -> subprocess.Popen:
    module = Counter.__module__
    root = Path(inspect.getfile(Counter)).resolve().parents[module.count(".")]  # where `module` is found
    script.write_text(FIRST_RUN)
    return subprocess.Popen(
        [sys.executable, str(script), client.database, settings.host, str(settings.port), str(path),
         str(root), module],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def test_a_second_run_on_the_same_checkpoint_is_refused_while_the_first_completes(
    client, tmp_path, influx_settings, reliability_report
):
    sensor = client.create_sensor("power", "oven")
    sensor.write([{"time": T0 + timedelta(minutes=i), "value": float(i % 7)} for i in range(POINTS)])
    store = sensor.create_htm_model("m", params={"size": 10}, engine="counter")
    path = tmp_path / "shared.ckpt"
    first = start_first_run(client, influx_settings, path, tmp_path / "first_run.py")
    try:
        deadline = time.monotonic() + 60
        while not path.exists() and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)  # the first run has saved its first checkpoint: it is going on
        assert path.exists(), first.communicate()
        second = Runner(sensor, store, Counter(), checkpoint=path)  # loads the first run's checkpoint
        with pytest.raises(CheckpointInUse) as info:
            second.run_batch(resume=True)
        assert str(path) in str(info.value) and f"pid {first.pid}" in str(info.value)
        out, err = first.communicate(timeout=120)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert first.returncode == 0, err
    scores = [r.anomaly_score for r in store.get_results()]
    reliability_report(
        scenario="two runs, one checkpoint",
        faults="a second run given the checkpoint of a run going on in another process",
        written=POINTS, read_back=len(scores), lost=POINTS - len(set(scores)),
        duplicated=len(scores) - len(set(scores)),
    )
    assert out.split() == [str(POINTS)]  # the first run was not disturbed
    assert scores == [float(i + 1) for i in range(POINTS)]
    # Once the first run is over, the second may run: it continues from the newest checkpoint.
    report = second.run_batch(resume=True)
    assert report.points == 0 and second.checkpoint_ns == to_ns(T0 + timedelta(minutes=POINTS - 1))
    assert second.model.seen == POINTS
