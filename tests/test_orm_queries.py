"""Issue 14 against the server: names checked against the declared class, `client.query(text,
params, as_=...)` (hand-written InfluxQL with bound parameters only), typed rows whose column
names collide, and `with InfluxHtmClient(...) as client:` closing the connection."""

from __future__ import annotations

import enum
import math
import re
from datetime import UTC, datetime, timedelta

import pandas
import pytest

import influxhtm as ih
from influxhtm import InfluxHtmClient, ValidationError, regex

T0 = datetime(2024, 5, 1, tzinfo=UTC)


@ih.measurement("climate")
class Climate:
    time: datetime = ih.timestamp()
    site: str = ih.tag()
    temperature: float = ih.field(name="temp")
    note: str | None = ih.field(default=None)


def _climate(i: int, site: str) -> Climate:
    return Climate(time=T0 + timedelta(minutes=i), site=site, temperature=10.0 + i, note=f"n{i}")


class Site(enum.Enum):
    NORTH = "north"


@pytest.fixture
def client(client):
    """The shared client (tests/conftest.py), its database holding 12 points of three sites."""
    sites = ["north", "south", 'it\'s "odd" ; DROP DATABASE x']
    client.repository(Climate).add_all(_climate(i, sites[i % 3]) for i in range(12))
    return client


def test_plain_rows_are_dicts_with_aware_utc_times_and_tags(client):
    rows = client.query(
        "SELECT temp, note FROM climate WHERE site = $site AND temp > $t GROUP BY site",
        {"site": "north", "t": 12},
    )
    assert rows == [
        {"site": "north", "time": T0 + timedelta(minutes=i), "temp": 10.0 + i, "note": f"n{i}"}
        for i in (3, 6, 9)
    ]
    assert all(row["time"].tzinfo is not None and row["time"].utcoffset() == timedelta(0) for row in rows)


def test_every_scalar_kind_is_bound_and_matches_only_itself(client):
    hostile = 'it\'s "odd" ; DROP DATABASE x'
    rows = client.query("SELECT temp, site FROM climate WHERE site = $s", {"s": hostile})
    assert [r["temp"] for r in rows] == [12.0, 15.0, 18.0, 21.0]
    text = "SELECT temp FROM climate WHERE site =~ $re AND time >= $since AND time <= $until AND temp != $x"
    params = {
        "re": regex("^no"),
        "since": T0 + timedelta(minutes=3),
        "until": T0 + timedelta(minutes=9),
        "x": 6.0,
    }
    assert [r["temp"] for r in client.query(text, params)] == [13.0, 16.0, 19.0]
    assert (
        client.query("SELECT temp FROM climate WHERE site = $s AND time < $t", {"s": Site.NORTH, "t": 1})
        == []
    )
    rows = client.query(
        "SELECT temp FROM climate WHERE time > now() - $ago", {"ago": timedelta(days=365 * 100)}
    )
    assert len(rows) == 12


@pytest.mark.parametrize(
    "params, key",
    [
        ({"s": ["north", "south"]}, "s"),
        ({"s": {"a": 1}}, "s"),
        ({"s": None}, "s"),
        ({"s": object()}, "s"),
        ({"s": math.nan}, "s"),
        ({"s": 2**64}, "s"),
        ({"s": 1e20}, "s"),
        ({"bad name": 1}, "params"),
        ({1: 1}, "params"),
        ([("s", 1)], "params"),
    ],
)
def test_values_that_are_not_scalars_are_refused_before_sending(client, params, key):
    with pytest.raises(ValidationError) as caught:
        client.query("SELECT temp FROM climate WHERE site = $s", params)
    assert key in caught.value.errors


def test_typed_rows_of_a_declared_class(client):
    got = client.query("SELECT * FROM climate WHERE site = $s", {"s": "south"}, as_=Climate)
    assert got == [_climate(i, "south") for i in (1, 4, 7, 10)]
    with pytest.raises(ValidationError, match="as_"):
        client.query("SELECT * FROM climate", as_=dict)


def test_a_dataframe_with_a_utc_time_index(client):
    frame = client.query("SELECT mean(temp) FROM climate GROUP BY site", as_="dataframe")
    assert isinstance(frame, pandas.DataFrame)
    assert str(frame.index.tz) == "UTC"
    assert dict(zip(frame["site"], frame["mean"])) == {
        "north": pytest.approx(14.5),
        "south": pytest.approx(15.5),
        'it\'s "odd" ; DROP DATABASE x': pytest.approx(16.5),
    }


def test_server_errors_and_empty_text_are_reported(client):
    with pytest.raises(ih.errors.QueryError, match=re.escape("missing parameter")):
        client.query("SELECT temp FROM climate WHERE site = $s")
    with pytest.raises(ValidationError, match="text"):
        client.query("  ")


def test_a_client_used_as_a_context_manager_closes_its_connection(influx_settings, influx_database):
    with InfluxHtmClient.from_settings(influx_database, influx_settings) as client:
        assert client.query("SHOW MEASUREMENTS") == []
        session = client.connection.session
        closed = []
        original = session.close
        session.close = lambda: (closed.append(True), original())  # type: ignore[method-assign]
    assert closed == [True]


def test_a_repository_query_checks_names_and_maps_attribute_names(client):
    repo = client.repository(Climate)
    with pytest.raises(ValidationError, match="did you mean 'temp'") as caught:
        repo.query().where(ih.col("temprature") > 12)
    assert "known columns: note, site, temp" in str(caught.value)
    for build in (
        lambda q: q.where(sitee="north"),
        lambda q: q.select("temprature"),
        lambda q: q.group_by("x"),
        lambda q: q.select(ih.mean("temprature")),
    ):
        with pytest.raises(ValidationError):
            build(repo.query())
    by_attribute = repo.query().where(ih.col("temperature") > 18, site="north").all()
    assert by_attribute == [_climate(9, "north")]
    rows = repo.query().select(ih.mean("temperature").as_("m")).group_by("site").all()
    assert sorted((r.site, r.m) for r in rows)[0] == ('it\'s "odd" ; DROP DATABASE x', pytest.approx(16.5))
    unchecked = repo.query().select("temp", ih.col("absent", checked=False)).where(site="north").all()
    assert [(r.temp, r.absent) for r in unchecked] == [(10.0 + i, None) for i in (0, 3, 6, 9)]


def test_typed_rows_whose_names_collide_after_mapping_raise(client):
    client.write_lines([f"clash,k=x a\\ b=1,a_b=2 {T0.timestamp():.0f}000000000"])

    @ih.measurement("clash")
    class Clash:
        time: datetime = ih.timestamp()
        k: str = ih.tag()
        a_b: float = ih.field()

    repo = client.repository(Clash)
    q = repo.query().select(ih.col("a b", checked=False), "a_b").group_by("k")
    with pytest.raises(ValidationError, match="'a b', 'a_b'"):
        q.all()
    renamed = repo.query().select(ih.col("a b", checked=False).as_("spaced"), "a_b").group_by("k").all()
    assert [(r.spaced, r.a_b) for r in renamed] == [(1.0, 2.0)]
