"""A query-heavy application, typed: an IoT climate service with declared classes, a repository,
queries with conditions, grouping, functions and arithmetic, typed rows, a sensor and a model
store. `mypy --strict` checks it and tests/test_typing.py runs it against a real server."""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Optional, assert_type

import influxhtm as ih
from influxhtm import col

START = datetime(2024, 5, 1, tzinfo=UTC)


class Room(enum.Enum):
    KITCHEN = "kitchen"
    CELLAR = "cellar"


@ih.measurement("climate")
class Climate(ih.Declared):
    time: datetime = ih.timestamp()
    site: str = ih.tag()
    room: Room = ih.tag()
    temperature: float = ih.field(name="temp")
    humidity: Optional[float] = ih.field(default=None)
    door_open: bool = ih.field(default=False)


@dataclass(frozen=True)
class SiteSummary:
    """The application's own typed view of an aggregate row."""

    site: str
    mean_celsius: float
    max_fahrenheit: float
    readings: int


def readings(site: str, hours: int) -> Iterator[Climate]:
    """One reading a minute: a warming kitchen and a steady cellar."""
    for minute in range(hours * 60):
        yield Climate(
            time=START + timedelta(minutes=minute),
            site=site,
            room=Room.KITCHEN if minute % 2 else Room.CELLAR,
            temperature=20.0 + minute / 60 if minute % 2 else 12.0,
            humidity=None if minute % 10 == 0 else 50.0,
            door_open=minute % 30 == 0,
        )


def ingest(repo: ih.Repository[Climate], sites: Sequence[str]) -> int:
    """Instances, a mapping and a loaded record: every form the repository takes."""
    written = 0
    for site in sites:
        written += repo.add_all(readings(site, hours=3))
    late: Mapping[str, Any] = {
        "time": START + timedelta(hours=3),
        "site": sites[0],
        "room": "kitchen",
        "temp": 23.5,
    }
    loaded = Climate.load(late)
    assert_type(loaded, Climate)
    repo.add(loaded)
    return written + 1


def latest(repo: ih.Repository[Climate], site: str) -> Climate | None:
    return repo.query().where(site=site).order_by("time", "desc").first()


def hot_kitchens(repo: ih.Repository[Climate], threshold: float) -> list[Climate]:
    query = repo.query().where(col("temperature") > threshold, room=Room.KITCHEN.value)
    assert_type(query, ih.Query[Climate])
    return query.all()


def summaries(repo: ih.Repository[Climate]) -> list[SiteSummary]:
    """Per-site aggregates, read from typed rows into the application's own class."""
    query = (
        repo.query()
        .select(
            ih.mean("temperature").as_("mean_celsius"),
            (ih.fn.max_("temperature") * 1.8 + 32).as_("max_fahrenheit"),
            ih.fn.count("temperature").as_("readings"),
        )
        .where(site=ih.regex("^(north|south)$"))
        .group_by("site")
    )
    rows: list[ih.Row] = query.all()
    return [
        SiteSummary(
            site=str(row.site),
            mean_celsius=float(row.mean_celsius),
            max_fahrenheit=float(row.max_fahrenheit),
            readings=int(row.readings),
        )
        for row in rows
    ]


def warming_per_hour(repo: ih.Repository[Climate], site: str) -> list[tuple[datetime, float]]:
    """A transformation of an aggregate (derivative of 10-minute means), per hour."""
    query = (
        repo.query()
        .select(ih.derivative(ih.mean("temperature"), "1h").as_("per_hour"))
        .where(site=site, room=Room.KITCHEN.value)
        .between(START, START + timedelta(hours=3))
        .group_by_time("10m")
        .fill("none")
    )
    out: list[tuple[datetime, float]] = []
    for row in query:
        moment: datetime = row.time
        out.append((moment, float(row.per_hour)))
    return out


def smoothed_fahrenheit(repo: ih.Repository[Climate], site: str, window: int) -> list[float]:
    """Arithmetic on a moving average of the raw values."""
    query = (
        repo.query()
        .select((ih.fn.moving_average(col("temperature"), window) * 1.8 + 32).as_("f"))
        .where(site=site, room=[Room.KITCHEN.value])
        .since(START)
        .before(START + timedelta(hours=1))
    )
    return [float(row.f) for row in query]


def hourly_percentiles(repo: ih.Repository[Climate], site: str) -> dict[datetime, float]:
    query = (
        repo.query()
        .where(site=site)
        .between(START, START + timedelta(hours=3) - timedelta(microseconds=1))
        .group_by_time("1h")
        .select(ih.fn.percentile("temperature", 90).as_("p90"))
    )
    return {row.time: float(row.p90) for row in query if row.p90 is not None}


def statement(site: str) -> tuple[str, dict[str, Any]]:
    """A query not bound to a repository (a `Query[Any]`): its InfluxQL text and bound parameters."""
    return ih.Query().from_(Climate).where(site=site).since(START).render()


def door_openings(repo: ih.Repository[Climate], site: str) -> int:
    return repo.query().where(col("door_open") == True, site=site).count()  # noqa: E712


def round_trip(repo: ih.Repository[Climate], site: str) -> list[dict[str, Any]]:
    """Declared objects to JSON-ready dicts and back, typed."""
    found = repo.query().where(site=site).limit(3).all()
    dumped = [reading.dump() for reading in found]
    again = Climate.load_many(dumped)
    assert_type(again, list[Climate])
    assert again == found
    return dumped


def sensor_and_model(client: ih.InfluxHtmClient) -> tuple[int, list[ih.HtmResult]]:
    """A sensor of the same service, a plain-function model, its store and its typed results."""
    sensor = client.create_sensor("boiler", "pressure")
    sensor.write([{"time": START + timedelta(minutes=m), "value": 1.0 + (m % 5) / 10} for m in range(60)])
    values: list[float] = [reading.value for reading in sensor.query()]
    assert len(values) == 60
    high = sensor.query().where(col("value") > 1.3).all()
    assert_type(high, list[ih.SensorReading])

    def scorer(point: ih.SensorReading) -> dict[str, Any]:
        return {"time": point.time, "anomaly_score": min(1.0, abs(point.value - 1.2))}

    model = ih.create_model(lambda **_: scorer, threshold=0.3)
    assert dict(model.params) == {"threshold": 0.3}
    store = sensor.create_htm_model("abs-dev", params=model.params)
    ih.Runner(sensor, store, model).run_batch()
    results = store.get_results(since=START, limit=10)
    assert_type(results, list[ih.HtmResult])
    scores: list[float | None] = [result.anomaly_score for result in results]
    assert all(score is not None for score in scores)
    return store.count(), results


def run(client: ih.InfluxHtmClient) -> dict[str, Any]:
    """Everything above, returning what the test checks."""
    repo = client.repository(Climate)
    assert_type(repo, ih.Repository[Climate])
    written = ingest(repo, ["north", "south"])
    newest = latest(repo, "north")
    assert newest is not None
    return {
        "written": written,
        "latest": newest,
        "hot": hot_kitchens(repo, 22.5),
        "summaries": summaries(repo),
        "warming": warming_per_hour(repo, "north"),
        "smoothed": smoothed_fahrenheit(repo, "south", 5),
        "p90": hourly_percentiles(repo, "north"),
        "doors": door_openings(repo, "north"),
        "statement": statement("north"),
        "dumped": round_trip(repo, "south"),
        "model": sensor_and_model(client),
    }
