"""The repository and the client's introspection, against a real server."""

import time
from datetime import UTC, datetime, timedelta
from typing import Optional

import pytest

import influxhtm as ih
from influxhtm.core.times import to_ns

T0 = datetime(2024, 5, 1, tzinfo=UTC)


@ih.measurement("power")
class PowerReading:
    time: datetime = ih.timestamp()
    component: str = ih.tag()
    value: float = ih.field()
    note: Optional[str] = ih.field(default=None)


@pytest.fixture
def repo(client):
    return client.repository(PowerReading)


def readings(n, component="coffee-machine", step=timedelta(minutes=1)):
    return [PowerReading(time=T0 + i * step, component=component, value=float(i % 37)) for i in range(n)]


def test_add_and_add_all_give_equal_objects_back(repo):
    written = readings(12_345)
    repo.add(PowerReading(time=T0 - timedelta(days=1), component="kettle", value=1.5, note='say "hi", 1=1'))
    assert repo.add_all(written, batch_size=1000) == 12_345
    back = repo.query().where(component="coffee-machine").all()
    assert back == written
    kettle = repo.query().where(component="kettle").first()
    assert kettle.note == 'say "hi", 1=1' and kettle.time.tzinfo is not None


def test_add_all_streams_a_generator_and_accepts_mappings(repo):
    gen = ({"time": T0 + timedelta(seconds=i), "component": "g", "value": i} for i in range(20_000))
    assert repo.add_all(gen, batch_size=5000) == 20_000
    assert repo.query().where(component="g").count() == 20_000


def test_a_bad_batch_is_refused_before_anything_is_sent(repo):
    items = [*readings(10), {"time": T0, "component": "", "value": 1.0}, {"time": T0, "component": "x"}]
    with pytest.raises(ih.ValidationError) as info:
        repo.add_all(items)
    assert set(info.value.errors) == {10, 11}
    assert repo.query().count() == 0


def test_the_issue_example_returns_typed_rows(repo):
    repo.add_all(readings(7 * 24 * 6, step=timedelta(minutes=10)))
    repo.add_all(readings(60, component="other"))
    week_ago = T0  # the data starts here
    q = (
        repo.query()
        .where(component="coffee-machine")
        .since(week_ago)
        .group_by_time("10m")
        .select(ih.mean("value"))
        .fill("previous")
    )
    text = str(q)
    assert text.startswith("SELECT mean(value) FROM power WHERE component = $")
    assert text.endswith("GROUP BY time(10m) fill(previous)")
    rows = list(q)
    assert len(rows) == 7 * 24 * 6
    assert rows[0].time == T0 and rows[0].mean == 0.0 and rows[5].mean == 5.0


def test_grouped_by_tag_rows_carry_the_tag(repo):
    repo.add_all(readings(10, "a") + readings(20, "b"))
    rows = list(repo.query().select(ih.fn.count("value").as_("n"), ih.fn.max_("value")).group_by("component"))
    assert sorted((r.component, r.n, r.max) for r in rows) == [("a", 10, 9.0), ("b", 20, 19.0)]


def test_group_by_time_with_open_ends_is_bounded_to_the_data(repo):
    repo.add_all(readings(200_000 // 100, step=timedelta(minutes=1)))
    q = repo.query().select(ih.mean("value")).group_by_time("10m")
    start = time.perf_counter()
    rows = list(q)
    elapsed = time.perf_counter() - start
    assert len(rows) == 200  # no buckets before the first point or after the last
    sent = q.statement()
    assert sent.time_range() == (to_ns(T0), to_ns(T0 + timedelta(minutes=1999)) + 1)
    assert elapsed < 5, "the server filled buckets from 1970"


def test_explicit_bounds_of_a_grouped_query_are_never_narrowed(repo):
    repo.add_all(readings(60, step=timedelta(minutes=1)))  # one hour of data in the middle of a day
    start, end = T0 - timedelta(hours=12), T0 + timedelta(hours=12)
    q = repo.query().select(ih.fn.count("value").as_("n")).since(start).before(end)
    q = q.group_by_time("1h").fill(0)
    assert str(q.statement()) == str(q) and q.statement().params == q.params
    rows = list(q)
    assert [r.time for r in rows] == [start + timedelta(hours=h) for h in range(24)]  # every bucket, 0 too
    assert sum(r.n for r in rows) == 60 and [r.n for r in rows if r.n] == [60]
    # one open end: only that end is set to the data, the explicit one stays
    lower_only = repo.query().select(ih.fn.count("value").as_("n")).since(start).group_by_time("1h").fill(0)
    sent = lower_only.statement()
    assert sent.time_range() == (to_ns(start), to_ns(T0 + timedelta(minutes=59)) + 1)
    assert [r.time for r in lower_only] == [start + timedelta(hours=h) for h in range(13)]


def test_first_count_exists_and_dataframe(repo):
    assert repo.query().first() is None and not repo.query().exists() and repo.query().count() == 0
    repo.add_all(readings(100))
    q = repo.query().where(ih.col("value") >= 30)
    assert q.count() == sum(1 for i in range(100) if i % 37 >= 30)
    assert q.exists()
    first = repo.query().order_by("time", "desc").first()
    assert first.time == T0 + timedelta(minutes=99)
    frame = repo.query().limit(5).to_dataframe()
    assert list(frame["value"]) == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert str(frame.index.tz) == "UTC"


def test_queries_are_immutable(repo):
    base = repo.query().where(component="a")
    text = str(base)
    base.limit(3).since(T0).group_by_time("1h")
    assert str(base) == text


def test_delete_by_tag_and_time_and_field_refused(repo):
    repo.add_all(readings(10, "a") + readings(10, "b"))
    repo.delete(component="a", since=T0, until=T0 + timedelta(minutes=5))  # both ends inclusive
    assert repo.query().where(component="a").count() == 4
    repo.delete(component="b", since=T0, before=T0 + timedelta(minutes=5))  # an exclusive end
    assert repo.query().where(component="b").count() == 5
    with pytest.raises(ih.ValidationError, match="field"):
        repo.delete(ih.col("value") > 3)
    assert repo.query().count() == 9
    repo.drop()
    assert repo.query().count() == 0


def test_introspection_and_administration(client, repo):
    repo.add_all(readings(3, "a") + [PowerReading(time=T0, component="b", value=1.0, note="n")])
    assert client.database in client.databases()
    assert client.measurements() == ["power"]
    assert client.tag_keys("power") == ["component"]
    assert client.tag_values("power", "component") == ["a", "b"]
    assert client.field_keys("power") == {"note": "string", "value": "float"}
    assert client.series("power") == ["power,component=a", "power,component=b"]
    client.create_retention_policy("two weeks", duration="14d")
    client.alter_retention_policy("two weeks", duration="21d")
    policy = next(p for p in client.retention_policies() if p["name"] == "two weeks")
    assert policy["duration"] == "504h0m0s"
    client.drop_retention_policy("two weeks")
    assert "two weeks" not in [p["name"] for p in client.retention_policies()]
    cq = ih.Query().select(ih.mean("value")).into("power 10m").from_("power").group_by_time("10m")
    client.create_continuous_query("select", cq)  # a keyword as a name
    assert [q["name"] for q in client.continuous_queries()] == ["select"]
    client.drop_continuous_query("select")
    assert client.continuous_queries() == []


@ih.measurement("ab")
class AB:
    time: datetime = ih.timestamp()
    a: Optional[float] = ih.field(default=None)
    b: Optional[float] = ih.field(default=None)


def test_grouped_queries_are_bounded_by_every_field_not_the_first(client):
    repo = client.repository(AB)
    repo.add_all(
        AB(time=T0 + timedelta(hours=h), a=1.0 if 3 <= h <= 5 else None, b=float(h)) for h in range(10)
    )
    rows = list(repo.query().group_by_time("1h").select(ih.fn.count("b")))
    assert [r.count for r in rows] == [1] * 10


def test_selecting_some_columns_gives_typed_rows(repo):
    repo.add_all(readings(3))
    rows = repo.query().select("value").all()
    assert [(r.time, r.value) for r in rows] == [(o.time, o.value) for o in readings(3)]
