"""The README's examples as a typed application: `mypy --strict` checks it (tests/test_typing.py),
and the same test runs it against a real server. Every `assert_type` states what a type checker
must infer; at run time it returns its argument unchanged."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import assert_type

import influxhtm as ih


@ih.measurement("power_readings")
class PowerReading(ih.Declared):
    time: datetime = ih.timestamp()
    component: str = ih.tag()
    value: float = ih.field()


def first_look(client: ih.InfluxHtmClient, out: Path) -> ih.HtmModelStore:
    """'A first look': a sensor, a model, a batch run, the combined data plotted."""
    sensor = client.create_sensor(measurement="power", component="coffee-machine")
    now = datetime.now(UTC)
    written = sensor.write([{"time": now - timedelta(minutes=m), "value": 20.0 + m % 7} for m in range(500)])
    assert_type(written, int)

    model = ih.create_model("brainblocks", value_range=sensor.value_range())
    store = sensor.create_htm_model("exp-1", params=model.params, engine="brainblocks")
    assert_type(store, ih.HtmModelStore)
    report = ih.Runner(sensor, store, model).run_batch()
    assert_type(report, ih.RunReport)

    data = sensor.get_combined_sensor_data(since=now - timedelta(days=7), aggregation="10m")
    assert_type(data, ih.CombinedData)
    data.plot(out / "power.png")
    return store


def own_measurements(client: ih.InfluxHtmClient) -> list[ih.Row]:
    """'Your own measurements, declared once': a repository, a write, a time-grouped query."""
    now = datetime.now(UTC)
    repo = client.repository(PowerReading)
    assert_type(repo, ih.Repository[PowerReading])
    repo.add_all(
        PowerReading(time=now - timedelta(minutes=m), component="kettle", value=m) for m in range(100)
    )
    q = (
        repo.query()
        .where(component="kettle")
        .since(timedelta(days=1))
        .group_by_time("10m")
        .select(ih.mean("value"))
    )
    assert_type(q, ih.Query[ih.Row])
    text: str = str(q)
    params: dict[str, object] = q.params
    assert text.startswith("SELECT mean") and params
    rows = list(q)
    means: list[float | None] = [row.mean for row in rows]
    assert sum(m is not None for m in means) >= 10
    latest = repo.query().order_by("time", "desc").first()
    assert_type(latest, PowerReading | None)
    assert latest is not None and latest.component == "kettle"
    return rows
