"""What a bound query sends is what it says it sends, and what it returns is the server's answer to it.

Differential test: for generated data and generated queries (explicit or open time
ends, `group_by_time`, fill values, tag conditions and groups, order, limits), the
rows of `list(q)` equal the server's own answer to `q.statement()`, asked for over
plain HTTP (not through influxhtm's read path). An explicit time end is never moved:
`q.statement()` keeps it as given.
"""

from __future__ import annotations

import itertools
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, Optional

import attrs
import pytest
import requests
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from strategies import tag_text

import influxhtm as ih
from influxhtm.core.times import to_ns
from influxhtm.pytest_plugin import server_settings

T0 = datetime(2024, 5, 1, tzinfo=UTC)
SEC = 10**9
_names = itertools.count()


def declare(measurement: str) -> type:
    """A fresh declared class per example, so each example reads only its own points."""

    @ih.measurement(measurement)
    class Reading:
        time: datetime = ih.timestamp()
        component: str = ih.tag()
        value: float = ih.field()
        extra: Optional[float] = ih.field(default=None)

    return Reading


@pytest.fixture(scope="module")
def server(influxd):
    return server_settings(influxd)


@pytest.fixture(scope="module")
def client(server):
    name = f"test_sent_{uuid.uuid4().hex[:10]}"
    client = ih.InfluxHtmClient.from_settings(name, server)
    client.create_database()
    yield client
    client.drop_database()
    client.close()


def server_answer(settings, database: str, statement: ih.Query) -> list[dict[str, Any]]:
    """The server's rows for a statement, asked for over plain HTTP: each row a dict with the series tags."""
    form = {"db": database, "q": str(statement), "epoch": "ns", "params": json.dumps(statement.params)}
    response = requests.post(f"{settings.url}/query", data=form, timeout=30)
    assert response.status_code == 200, response.text
    (result,) = response.json()["results"]
    assert "error" not in result, (result, str(statement))
    rows = []
    for series in result.get("series", []):
        assert not series.get("partial"), "the test server cut its answer"
        for values in series["values"]:
            rows.append(present({**dict(zip(series["columns"], values)), **(series.get("tags") or {})}))
    return rows


def present(row: dict[str, Any]) -> dict[str, Any]:
    """The non-null values of a row (an absent column and a null one mean the same)."""
    return {key: value for key, value in row.items() if value is not None}


def as_dict(item: Any) -> dict[str, Any]:
    """A returned instance or typed row as a dict of column to value, its time in ns."""
    data = attrs.asdict(item, recurse=False)
    data["time"] = to_ns(data["time"])
    return present(data)


components = st.sampled_from(["a", "b", "c"]) | tag_text
points = st.lists(
    st.tuples(
        st.integers(0, 120),  # seconds after T0: data in the middle of the bounds drawn below
        components,
        st.integers(-50, 50).map(float),
        st.none() | st.integers(0, 9).map(float),
    ),
    min_size=0,
    max_size=40,
    unique_by=lambda p: (p[0], p[1]),
)
seconds = st.integers(-40, 160).map(lambda s: T0 + timedelta(seconds=s))
AGGREGATES = {"count": ih.fn.count, "mean": ih.mean, "max": ih.fn.max_, "sum": ih.fn.sum_, "last": ih.fn.last}
FILLS = [None, "none", "null", 0, 1.5, -2, "previous", "linear"]


@st.composite
def queries(draw: Any, repo: Any, written: list[str]) -> ih.Query:
    q = repo.query()
    if draw(st.booleans()) and written:
        q = q.where(component=draw(st.sampled_from(written)))
    grouped = draw(st.booleans())
    if grouped:
        name = draw(st.sampled_from(sorted(AGGREGATES)))
        q = q.select(AGGREGATES[name]("value").as_("v"))
        q = q.group_by_time(draw(st.sampled_from(["5s", "10s", "30s", "1m"])),
                            draw(st.sampled_from([None, "2s", "-3s"])))
        fill = draw(st.sampled_from(FILLS))
        q = q.fill(fill) if fill is not None else q
    else:
        q = q.select(*draw(st.sampled_from([(), ("value",), ("value", "extra")])))
    lower, upper = draw(st.sampled_from(["open", "since", "condition"])), draw(
        st.sampled_from(["open", "until", "condition"])
    )
    if lower == "since":
        q = q.since(draw(seconds))
    elif lower == "condition":
        q = q.where(ih.col("time") >= to_ns(draw(seconds)))
    if upper == "until":
        q = q.until(draw(seconds))
    elif upper == "condition":
        q = q.where(ih.col("time") < to_ns(draw(seconds)))
    if draw(st.booleans()):
        q = q.group_by("component")
    if draw(st.booleans()):
        q = q.order_by("time", "desc")
    limit = draw(st.none() | st.integers(1, 6))
    offset = draw(st.none() | st.integers(0, 3))
    return q.limit(limit).offset(offset)


@pytest.mark.timeout(600)
@given(data=points, choice=st.data())
@settings(
    max_examples=80,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],  # no slow tracing
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
def test_list_of_a_query_is_the_servers_answer_to_the_statement_it_sends(client, server, data, choice):
    cls = declare(f"sent{next(_names)}")
    repo = client.repository(cls)
    repo.add_all([
        cls(time=T0 + timedelta(seconds=s), component=c, value=v, extra=e) for s, c, v, e in data
    ])
    written = sorted({c for _, c, _, _ in data})
    for _ in range(3):
        q = choice.draw(queries(repo, written), label="query")
        sent = q.statement()
        if q.has_lower_time_bound and q.has_upper_time_bound or q.interval is None:
            assert (str(sent), sent.params) == (str(q), q.params)  # nothing to bound: sent as written
        else:
            # only the open ends are added: the explicit ones are still there, unchanged
            assert sent.lower == (q.lower or sent.lower) and sent.upper == (q.upper or sent.upper)
            assert sent.conditions == q.conditions
        got = [as_dict(item) for item in q]
        assert got == server_answer(server, client.database, sent), str(sent)
