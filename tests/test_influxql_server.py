"""The query builder against a real InfluxDB 1.6: every query it builds is accepted and means what it says.

The differential test writes a small generated data set, runs a generated query
on the server and on a plain-Python reference of InfluxQL's semantics, and
compares the answers.
"""

from __future__ import annotations

import itertools
import math
import re
import statistics
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st

import influxhtm.influxql as iql
from influxhtm.influxql import (
    KEYWORDS,
    Query,
    admin,
    col,
    count,
    first,
    last,
    max_,
    mean,
    median,
    min_,
    percentile,
    regex,
    select,
    spread,
    stddev,
    sum_,
)
from influxhtm.io.connection import Connection
from influxhtm.pytest_plugin import server_settings

SEC = 10**9
_counter = itertools.count()


# -- plumbing --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def conn(influxd):
    connection = Connection(server_settings(influxd))
    yield connection
    connection.close()


@pytest.fixture(scope="module")
def db(conn):
    """One database for the module's generated data (each example writes its own measurement)."""
    name = f"test_iql_{uuid.uuid4().hex[:10]}"
    conn.query(str(admin.create_database(name)), method="POST")
    yield name
    conn.query(str(admin.drop_database(name)), method="POST")


def run(conn, db, statement) -> list[dict[str, Any]]:
    """Run a Query or Statement; the series of its (single) result."""
    text, params = statement.render()
    method = getattr(statement, "method", "GET")
    results = conn.query(text, params=params, database=db, method=method)
    assert len(results) == 1
    return results[0].get("series", [])


def lp_measurement(name: str) -> str:
    return name.replace(",", "\\,").replace(" ", "\\ ")


def lp_key(name: str) -> str:
    return name.replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")


def lp_line(measurement: str, tags: dict[str, str], fields: dict[str, float], ns: int) -> str:
    tag_text = "".join(f",{lp_key(k)}={lp_key(v)}" for k, v in sorted(tags.items()))
    field_text = ",".join(f"{lp_key(k)}={v!r}" for k, v in fields.items())
    return f"{lp_measurement(measurement)}{tag_text} {field_text} {ns}"


HOSTILE = [
    "select",
    "FROM",
    "limit",
    "key",
    "true",
    "a b",
    " lead",
    'q"uote',
    "it's",
    "back\\slash",
    "ünïcødé",
    "😀",
    "comma,x",
    "eq=x",
    "/sl/ash/",
    "$p0",
    "--",
    ";",
    "x' OR component='y",
    '"; DROP DATABASE db; --',
    "_under",
    "(paren)",
    "a.b",
]


def writable(name: str) -> bool:
    """Names line protocol can carry unambiguously (what the declarations layer also refuses otherwise)."""
    if not name or "\n" in name or name.endswith("\\") or name.startswith("#") or name.lower() == "time":
        return False
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        return False
    return all(name[i + 1].isalnum() for i, c in enumerate(name[:-1]) if c == "\\")


names = st.one_of(
    st.sampled_from(HOSTILE + sorted(KEYWORDS)),
    st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=6),
).filter(writable)


# -- identifiers and values ------------------------------------------------------------------------
@given(measurement=names, tag_key=names, tag_value=names, field_key=names, value=st.floats(-1e300, 1e300))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_generated_identifiers_and_values_are_accepted_and_mean_themselves(
    conn, db, measurement, tag_key, tag_value, field_key, value
):
    assume(tag_key != field_key)
    measurement = f"{next(_counter)}:{measurement}"
    conn.write(
        lp_line(measurement, {tag_key: tag_value}, {field_key: value}, 5 * SEC)
        + "\n"
        + lp_line(measurement, {tag_key: tag_value + "x"}, {field_key: 1.0}, 6 * SEC),
        database=db,
    )
    q = select(col(field_key), col(tag_key, "tag")).from_(measurement).where(col(tag_key) == tag_value)
    assert run(conn, db, q) == [
        {
            "name": measurement,
            "columns": ["time", field_key, tag_key],
            "values": [[5 * SEC, value, tag_value]],
        }
    ]
    grouped = (
        select(max_(col(field_key))).from_(measurement).where(**{tag_key: [tag_value]}).group_by(tag_key)
    )
    series = run(conn, db, grouped.where(col(field_key) >= value))
    assert [(s["tags"], s["values"][0][1]) for s in series] == [({tag_key: tag_value}, value)]
    tag_values = run(conn, db, admin.show_tag_values(tag_key, measurement))
    assert sorted(v[1] for v in tag_values[0]["values"]) == sorted([tag_value, tag_value + "x"])
    fields = run(conn, db, admin.show_field_keys(measurement))
    assert fields[0]["values"] == [[field_key, "float"]]


def test_every_keyword_works_as_measurement_tag_and_field_name(conn, db):
    words = sorted(KEYWORDS - {"TIME"})  # InfluxDB refuses `time` as a tag or field key; as a measurement:
    lines = [lp_line(w, {w: w.lower()}, {w.lower(): float(i)}, SEC) for i, w in enumerate(words)]
    lines.append(lp_line("time", {"select": "x"}, {"from": 1.5}, SEC))
    conn.write("\n".join(lines), database=db)
    for i, word in enumerate(words):
        q = select(word.lower()).from_(word).where(**{word: word.lower()}).since(0).group_by(word)
        assert run(conn, db, q) == [
            {
                "name": word,
                "tags": {word: word.lower()},
                "columns": ["time", word.lower()],
                "values": [[SEC, float(i)]],
            }
        ], word
    assert run(conn, db, select("from").from_("time").where(select="x"))[0]["values"] == [[SEC, 1.5]]


# -- injection -------------------------------------------------------------------------------------
INJECTIONS = [
    "x' OR component='y",
    "y' OR '1'='1",
    '"; DROP DATABASE db; --',
    "'; DROP MEASUREMENT power; --",
    "\\",
    "\\'",
    "/",
    "a/b",
    "a\nb",
    "$p0",
    "' OR time > 0 --",
]


def test_hostile_values_match_only_themselves_and_drop_nothing(conn, db):
    measurement = f"power{next(_counter)}"
    stored = ["x", "y", "a/b", "y' OR '1'='1", '"; DROP DATABASE db; --', "x' OR component='y", "\\x"]
    conn.write(
        "\n".join(
            lp_line(measurement, {"component": c}, {"value": float(i)}, i * SEC) for i, c in enumerate(stored)
        ),
        database=db,
    )
    for value in INJECTIONS + stored:
        for q in (
            select("value").from_(measurement).where(component=value),
            select("value").from_(measurement).where(col("component") == value),
            select("value").from_(measurement).where(col("component").in_([value, "nothing-at-all"])),
        ):
            expected = [[i * SEC, float(i)] for i, c in enumerate(stored) if c == value]
            series = run(conn, db, q)
            assert (series[0]["values"] if series else []) == expected, (value, str(q))
        not_equal = run(conn, db, select("value").from_(measurement).where(col("component") != value))
        assert len(not_equal[0]["values"]) == len([c for c in stored if c != value])
        # a hostile value as a column name or regex matches nothing it should not, and errors nowhere
        assert run(conn, db, select("value").from_(measurement).where(col(value) == "x")) == []
        literal = re.escape(value) if "\n" not in value else "nomatch"
        by_regex = run(
            conn, db, select("value").from_(measurement).where(component=regex(f"^{_go_quote(value)}$"))
        )
        assert len(by_regex[0]["values"] if by_regex else []) == stored.count(value), literal
    databases = [v[0] for v in run(conn, db, admin.show_databases())[0]["values"]]
    assert db in databases
    assert len(run(conn, db, select("value").from_(measurement))[0]["values"]) == len(stored)


def _go_quote(text: str) -> str:
    """Escape RE2 metacharacters (Go's regexp.QuoteMeta)."""
    return "".join("\\" + c if c in "\\.+*?()|[]{}^$" else c for c in text)


# -- every clause is accepted ----------------------------------------------------------------------
def test_the_full_example_runs_and_every_clause_means_what_it_says(conn, db):
    m = f"power{next(_counter)}"
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    base_ns = 1704067200 * SEC
    lines = []
    for i in range(12):
        for comp in ("coffee-machine", "a", "b", "a.x/b"):
            lines.append(lp_line(m, {"component": comp}, {"value": float(i)}, base_ns + i * 300 * SEC))
    conn.write("\n".join(lines), database=db)
    q = (
        Query()
        .select("value", mean("value").as_("avg"))
        .from_(m)
        .where(component="coffee-machine")
        .where((col("value") > 3) & ~(col("component") == "x") | col("component").in_(["a", "b"]))
        .since(t0)
        .before(t0 + timedelta(hours=1))
    )
    # raw+aggregate mixing is refused by the server; the aggregate version runs:
    agg = (
        q.select(mean("value").as_("avg"))
        .group_by_time("10m")
        .group_by("component")
        .fill(0)
        .order_by("time", "desc")
        .limit(10)
        .offset(1)
        .slimit(2)
        .soffset(0)
        .tz("Europe/Berlin")
    )
    series = run(conn, db, agg)
    assert [s["tags"] for s in series] == [{"component": "coffee-machine"}]
    # buckets 00:00..00:50 (6), desc, offset 1 -> 00:40 .. 00:00; values 4..11 >3 -> 10m buckets of (2i, 2i+1)
    times = [row[0] for row in series[0]["values"]]
    assert times == [base_ns + k * 600 * SEC for k in (4, 3, 2, 1, 0)]
    assert [row[1] for row in series[0]["values"]] == [8.5, 6.5, 4.5, 0, 0]
    assert run(conn, db, q.select("value").limit(2))[0]["values"] == [
        [base_ns + 4 * 300 * SEC, 4.0],
        [base_ns + 5 * 300 * SEC, 5.0],
    ]
    # regex with a slash, bound as a parameter
    rx = run(conn, db, select(count("value")).from_(m).where(col("component").matches(r"^a\.x/b$")))
    assert rx[0]["values"][0][1] == 12
    # relative bounds, percentile, count(*), a qualified source
    assert run(conn, db, select("value").from_(m).since("1d")) == []
    assert (
        run(
            conn,
            db,
            select(percentile("value", 50))
            .from_(m, database=db, retention_policy="autogen")
            .where(component="a"),
        )[0]["values"][0][1]
        == 5.0
    )
    assert run(conn, db, select(count("*")).from_(m, database=db))[0]["columns"] == ["time", "count_value"]
    # tz changes only how times are shown, accepted by the server
    assert run(conn, db, select("value").from_(m).where(component="a").limit(1).tz("Europe/Berlin"))
    # fill(0), fill(number), fill(...) words; buckets before the first point are filled, after it data
    for fill in (0, -1.5, 1e-05, "null", "previous", "linear", "none"):
        r = run(
            conn,
            db,
            select(mean("value"))
            .from_(m)
            .where(component="a")
            .between(base_ns - 900 * SEC, base_ns + 300 * SEC)
            .group_by_time("5m")
            .fill(fill),
        )
        rows = r[0]["values"]
        empty = fill if isinstance(fill, (int, float)) else None
        if fill == "none":
            assert rows == [[base_ns, 0.0], [base_ns + 300 * SEC, 1.0]]
        else:
            assert rows == [[base_ns + k * 300 * SEC, empty] for k in (-3, -2, -1)] + [
                [base_ns, 0.0],
                [base_ns + 300 * SEC, 1.0],
            ]
    # an interval offset moves the bucket starts
    r = run(
        conn,
        db,
        select(count("value"))
        .from_(m)
        .where(component="a")
        .since(base_ns)
        .before(base_ns + 600 * SEC)
        .group_by_time("10m", offset="5m"),
    )
    assert r[0]["values"] == [[base_ns - 300 * SEC, 1], [base_ns + 300 * SEC, 1]]
    # a float bound that JSON would write with an exponent
    assert (
        len(
            run(conn, db, select("value").from_(m).where(col("value") > -1e20, col("value") < 1e-05))[0][
                "values"
            ]
        )
        == 4
    )


# -- administration --------------------------------------------------------------------------------
def test_admin_statements_against_the_server(conn, db):
    m = f"select {next(_counter)}"
    conn.write(
        "\n".join(
            [
                lp_line(m, {"comp onent": "a b", "id": "1"}, {"val ue": 1.0}, SEC),
                lp_line(m, {"comp onent": "c", "id": "2"}, {"val ue": 2.0}, 2 * SEC),
            ]
        ),
        database=db,
    )
    assert m in [v[0] for v in run(conn, db, admin.show_measurements(database=db))[0]["values"]]
    assert [v[0] for v in run(conn, db, admin.show_measurements(**{"comp onent": "c"}))[0]["values"]] == [m]
    assert run(conn, db, admin.show_tag_keys(m))[0]["values"] == [["comp onent"], ["id"]]
    assert run(conn, db, admin.show_tag_values(["comp onent", "id"], m, database=db))[0]["values"] == [
        ["comp onent", "a b"],
        ["comp onent", "c"],
        ["id", "1"],
        ["id", "2"],
    ]
    assert run(conn, db, admin.show_tag_values(regex("^comp"), m))[0]["values"] == [
        ["comp onent", "a b"],
        ["comp onent", "c"],
    ]
    assert run(conn, db, admin.show_field_keys(m, database=db))[0]["values"] == [["val ue", "float"]]
    assert run(conn, db, admin.show_series(m, id="2"))[0]["values"] == [
        [f"{lp_measurement(m)},comp\\ onent=c,id=2"]
    ]

    # retention policies
    rp = "one week"
    run(conn, db, admin.create_retention_policy(rp, database=db, duration="7d", shard_duration="1d"))
    run(conn, db, admin.alter_retention_policy(rp, database=db, duration="14d", replication=1))
    policies = {v[0]: v for v in run(conn, db, admin.show_retention_policies(db))[0]["values"]}
    assert policies[rp][1:3] == ["336h0m0s", "24h0m0s"] and policies[rp][4] is False
    run(conn, db, admin.alter_retention_policy(rp, database=db, duration=None, default=True))
    policies = {v[0]: v for v in run(conn, db, admin.show_retention_policies(db))[0]["values"]}
    assert policies[rp][4] is True
    run(conn, db, admin.alter_retention_policy("autogen", database=db, default=True))
    run(conn, db, admin.drop_retention_policy(rp, database=db))
    assert rp not in [v[0] for v in run(conn, db, admin.show_retention_policies(db))[0]["values"]]

    # continuous queries, with a bound value and a hostile name inside
    body = (
        select(mean("val ue").as_("mean value"))
        .into(f"{m} 1h")
        .from_(m)
        .where(**{"comp onent": 'it\'s \\ "q"'})
        .group_by_time("1h")
        .fill(0)
    )
    run(conn, db, admin.create_continuous_query("cq select", database=db, query=body, resample_every="2h"))
    cqs = {s["name"]: s["values"] for s in run(conn, db, admin.show_continuous_queries())}
    assert [v[0] for v in cqs[db]] == ["cq select"]
    assert "it\\'s" in cqs[db][0][1] and "fill(0)" in cqs[db][0][1]
    run(conn, db, admin.drop_continuous_query("cq select", database=db))
    assert not any(s.get("values") for s in run(conn, db, admin.show_continuous_queries()) if s["name"] == db)

    # subscriptions
    run(
        conn,
        db,
        admin.create_subscription(
            "sub one",
            database=db,
            retention_policy="autogen",
            destinations=["udp://127.0.0.1:9", "udp://127.0.0.1:10"],
            mode="ALL",
        ),
    )
    subs = [s for s in run(conn, db, admin.show_subscriptions()) if s["name"] == db]
    assert subs[0]["values"] == [["autogen", "sub one", "ALL", ["udp://127.0.0.1:9", "udp://127.0.0.1:10"]]]
    run(conn, db, admin.drop_subscription("sub one", database=db, retention_policy="autogen"))
    assert not [s for s in run(conn, db, admin.show_subscriptions()) if s["name"] == db]

    # delete by tag and time, drop series, drop measurement
    run(conn, db, admin.delete(m, since=2 * SEC, until=3 * SEC, **{"comp onent": "a b"}))
    assert len(run(conn, db, select("val ue").from_(m))[0]["values"]) == 2  # nothing matched both
    run(conn, db, admin.delete(m, since=0, until=2 * SEC, **{"comp onent": "a b"}))
    assert run(conn, db, select("val ue").from_(m))[0]["values"] == [[2 * SEC, 2.0]]
    run(conn, db, admin.drop_series(m, id="2"))
    assert run(conn, db, select("val ue").from_(m)) == []
    conn.write(lp_line(m, {"id": "3"}, {"val ue": 3.0}, SEC), database=db)
    run(conn, db, admin.drop_measurement(m))
    assert m not in [v[0] for s in run(conn, db, admin.show_measurements()) for v in s["values"]]

    # databases with options
    other = f"db {uuid.uuid4().hex[:6]}"
    run(
        conn,
        None,
        admin.create_database(
            other, duration="30d", replication=1, shard_duration="1d", policy_name="thirty days"
        ),
    )
    try:
        assert other in [v[0] for v in run(conn, None, admin.show_databases())[0]["values"]]
        assert [v[0] for v in run(conn, None, admin.show_retention_policies(other))[0]["values"]] == [
            "thirty days"
        ]
    finally:
        run(conn, None, admin.drop_database(other))
    assert other not in [v[0] for v in run(conn, None, admin.show_databases())[0]["values"]]


# -- the differential test -------------------------------------------------------------------------
AGGREGATES = {
    "mean": (mean, lambda v: math.fsum(v) / len(v)),
    "count": (count, len),
    "sum": (sum_, math.fsum),
    "min": (min_, min),
    "max": (max_, max),
    "first": (first, lambda v: v[0]),
    "last": (last, lambda v: v[-1]),
    "spread": (spread, lambda v: max(v) - min(v)),
    "median": (median, statistics.median),
    "stddev": (stddev, lambda v: statistics.stdev(v) if len(v) > 1 else None),
}


@st.composite
def datasets(draw):
    measurement = draw(names)
    tag_key = draw(names)
    field_key = draw(names.filter(lambda n: n != tag_key))
    tag_values = draw(st.lists(names, min_size=1, max_size=3, unique=True))
    times = draw(st.lists(st.integers(0, 100), min_size=1, max_size=12, unique=True))
    values = st.floats(-1000, 1000, allow_nan=False).map(lambda x: round(x, 3))
    points = [(t * SEC, draw(st.sampled_from(tag_values)), draw(values)) for t in times]
    return measurement, tag_key, field_key, tag_values, points


def conditions(draw, tag_key, field_key, tag_values, depth=0):
    """A random condition and its Python meaning, point -> bool (point = (time, tag, value))."""
    kind = draw(st.sampled_from(["tag", "field"] + (["and", "or", "not"] if depth < 2 else [])))
    if kind == "tag":
        value = draw(st.one_of(st.sampled_from(tag_values), names))
        op = draw(st.sampled_from(["==", "!=", "in", "matches", "not_matches"]))
        c = col(tag_key)
        if op == "==":
            return c == value, lambda p: p[1] == value
        if op == "!=":
            return c != value, lambda p: p[1] != value
        if op == "in":
            options = [value, draw(st.sampled_from(tag_values))]
            return c.in_(options), lambda p: p[1] in options
        prefix = value[: draw(st.integers(1, len(value)))]
        pattern = "^" + _go_quote(prefix)
        if op == "matches":
            return c.matches(pattern), lambda p: p[1].startswith(prefix)
        return c.not_matches(pattern), lambda p: not p[1].startswith(prefix)
    if kind == "field":
        threshold = draw(st.floats(-1000, 1000, allow_nan=False).map(lambda x: round(x, 1)))
        op = draw(st.sampled_from(["<", "<=", ">", ">=", "==", "!="]))
        c = col(field_key)
        built = {
            "<": c < threshold,
            "<=": c <= threshold,
            ">": c > threshold,
            ">=": c >= threshold,
            "==": c == threshold,
            "!=": c != threshold,
        }[op]
        test = {
            "<": float.__lt__,
            "<=": float.__le__,
            ">": float.__gt__,
            ">=": float.__ge__,
            "==": float.__eq__,
            "!=": float.__ne__,
        }[op]
        return built, lambda p: test(p[2], float(threshold))
    if kind == "not":
        inner, f = conditions(draw, tag_key, field_key, tag_values, depth + 1)
        return ~inner, lambda p: not f(p)
    (a, fa), (b, fb) = (conditions(draw, tag_key, field_key, tag_values, depth + 1) for _ in range(2))
    if kind == "and":
        return a & b, lambda p: fa(p) and fb(p)
    return a | b, lambda p: fa(p) or fb(p)


def _page(rows, order, offset, limit):
    rows = rows[::-1] if order == "DESC" else rows
    rows = rows[offset or 0 :]
    return rows[:limit] if limit else rows


def reference(data, spec) -> list[dict[str, Any]]:
    """InfluxQL's answer, computed in plain Python."""
    measurement, tag_key, field_key, _, points = data
    lo, hi = spec["lo"], spec["hi"]
    if hi is not None and spec["until"]:
        hi += 1  # until is inclusive: the same as before(hi + 1ns)
    kept = sorted(
        p for p in points if spec["where"](p) and (lo is None or p[0] >= lo) and (hi is None or p[0] < hi)
    )
    groups: dict[str | None, list] = {}
    for p in kept:
        groups.setdefault(p[1] if spec["group"] else None, []).append(p)
    out = []
    for key in sorted(groups, key=lambda k: "" if k is None else k):
        pts = groups[key]
        if spec["agg"] is None:
            rows = [[t, v, tag] if spec["with_tag"] else [t, v] for t, tag, v in pts]
            columns = ["time", field_key] + ([tag_key] if spec["with_tag"] else [])
        else:
            interval, fn = spec["interval"], AGGREGATES[spec["agg"]][1]
            columns = ["time", spec["agg"]]
            rows = []
            start, end = lo // interval * interval, (hi - 1) // interval * interval
            for b in range(start, end + 1, interval):
                vals = [v for t, _, v in pts if b <= t < b + interval]
                rows.append([b, fn(vals) if vals else None, bool(vals)])  # stddev of one point is null
            if spec["order"] == "DESC":
                rows = rows[::-1]  # fill(previous) looks back in output order
            rows = _fill(rows, spec["fill"], spec["agg"])
        order = spec["order"] if spec["agg"] is None else None
        rows = _page(rows, order, spec["offset"], spec["limit"])
        if rows:
            series = {"name": measurement, "columns": columns, "values": rows}
            if spec["group"]:
                series = {"name": measurement, "tags": {tag_key: key}, "columns": columns, "values": rows}
            out.append(series)
    if spec["order"] == "DESC":
        out = out[::-1]  # series come in descending order too
    if spec["group"]:
        # SLIMIT/SOFFSET pick among all series of the measurement, before time bounds apply
        keys = sorted({p[1] for p in points})  # in ascending order, even with ORDER BY time DESC
        keys = keys[spec["soffset"] or 0 :]
        keys = keys[: spec["slimit"]] if spec["slimit"] else keys
        out = [s for s in out if s["tags"][tag_key] in keys]
    return out


def _fill(rows, fill, agg):
    if fill == "none":
        return [[b, v] for b, v, has in rows if has]
    if fill in (None, "null"):
        return [[b, v if has else (0 if agg == "count" else None)] for b, v, has in rows]
    if isinstance(fill, (int, float)):
        fill = int(fill) if agg == "count" else fill  # an integer column truncates the fill value
        return [[b, v if has else fill] for b, v, has in rows]
    out, previous = [], None
    for i, (b, v, has) in enumerate(rows):
        if has:
            out.append([b, v])
            previous = v
        elif fill == "previous":
            out.append([b, previous])
        else:  # linear: between the nearest buckets with data on both sides
            before = next(((j, rows[j][1]) for j in range(i - 1, -1, -1) if rows[j][2]), None)
            after = next(((j, rows[j][1]) for j in range(i + 1, len(rows)) if rows[j][2]), None)
            if before and after:
                (j0, v0), (j1, v1) = before, after
                value = v0 + (v1 - v0) * (i - j0) / (j1 - j0)
                out.append([b, int(value) if agg == "count" else value])  # integers are truncated
            else:
                out.append([b, None])
    return out


@st.composite
def queries(draw, data):
    measurement, tag_key, field_key, tag_values, _ = data
    spec: dict[str, Any] = {"agg": draw(st.sampled_from([None, *AGGREGATES]))}
    q = Query().from_(measurement)
    if draw(st.booleans()):
        cond, spec["where"] = conditions(draw, tag_key, field_key, tag_values)
        q = q.where(cond)
    else:
        spec["where"] = lambda p: True
    if spec["agg"] is None:
        spec["lo"] = draw(st.one_of(st.none(), st.integers(-5, 105).map(lambda s: s * SEC)))
        spec["hi"] = draw(st.one_of(st.none(), st.integers(-5, 105).map(lambda s: s * SEC)))
    else:
        spec["lo"] = draw(st.integers(-5, 100)) * SEC + draw(st.sampled_from([0, 1]))
        spec["hi"] = spec["lo"] + draw(st.integers(1, 60)) * SEC
    if spec["lo"] is not None:
        q = q.since(spec["lo"])
    spec["until"] = draw(st.booleans())  # until (inclusive) or before (exclusive)
    if spec["hi"] is not None:
        q = q.until(spec["hi"]) if spec["until"] else q.before(spec["hi"])
    spec["group"] = draw(st.booleans())
    spec["with_tag"] = spec["agg"] is None and not spec["group"] and draw(st.booleans())
    if spec["agg"] is None:
        q = q.select(field_key, *([col(tag_key, "tag")] if spec["with_tag"] else []))
    else:
        spec["interval"] = draw(st.sampled_from([5, 10, 30])) * SEC
        fills = [None, "none", "null", 0, 2.5, -1] + (
            ["previous", "linear"] if spec["agg"] != "stddev" else []
        )
        spec["fill"] = draw(st.sampled_from(fills))  # (previous/linear over a null stddev: left out)
        q = q.select(AGGREGATES[spec["agg"]][0](field_key)).group_by_time(
            timedelta(seconds=spec["interval"] // SEC)
        )
        if spec["fill"] is not None:
            q = q.fill(spec["fill"])
    if spec["group"]:
        q = q.group_by(tag_key)
    spec["order"] = draw(st.sampled_from([None, "ASC", "DESC"]))
    if spec["order"]:
        q = q.order_by("time", spec["order"].lower())
    spec["limit"] = draw(st.one_of(st.none(), st.integers(1, 5)))
    spec["offset"] = draw(st.one_of(st.none(), st.integers(0, 4)))
    series_paging = spec["group"] and not q.conditions  # SLIMIT counts series before any WHERE
    spec["slimit"] = draw(st.one_of(st.none(), st.integers(1, 2))) if series_paging else None
    spec["soffset"] = draw(st.one_of(st.none(), st.integers(0, 2))) if series_paging else None
    q = q.limit(spec["limit"]).offset(spec["offset"]).slimit(spec["slimit"]).soffset(spec["soffset"])
    return q, spec


def _approx_rows(rows):
    return [
        [r[0], pytest.approx(r[1], rel=1e-9, abs=1e-9) if isinstance(r[1], float) else r[1], *r[2:]]
        for r in rows
    ]


@given(st.data())
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_differential_against_a_python_reference(conn, db, data):
    dataset = data.draw(datasets(), label="dataset")
    measurement, tag_key, field_key, tag_values, points = dataset
    measurement = f"{next(_counter)}:{measurement}"
    dataset = (measurement, tag_key, field_key, tag_values, points)
    conn.write(
        "\n".join(lp_line(measurement, {tag_key: tag}, {field_key: v}, t) for t, tag, v in points),
        database=db,
    )
    q, spec = data.draw(queries(dataset), label="query")
    got = run(conn, db, q)
    expected = reference(dataset, spec)
    assert [(s.get("tags"), s["columns"]) for s in got] == [
        (s.get("tags"), s["columns"]) for s in expected
    ], str(q)
    for g, e in zip(got, expected):
        assert g["values"] == _approx_rows(e["values"]), str(q)


# -- issue 14: every function helper against the server, and a differential test of them ---------
FN_VALUES = [1.5, 2.0, 0.5, 3.25, 4.0, 2.5, 1.0, 0.75, 5.0, 6.0]


def _function_example(name: str, helper, signature):
    """A query the server accepts for function `name`: (select item, whether it needs GROUP BY time)."""
    if signature.kind == "prediction":
        return helper(iql.mean("t"), 3, 0), True
    if signature.columns == 2:
        return helper("t", "u"), False
    first_param = {"percentile": 50, "log": 2, "pow": 2, "moving_average": 2}.get(name, 2)
    needs = [first_param] if signature.params and signature.params[0].required else []
    if signature.tags:
        needs.append("host")
    return helper("t", *needs), False


@pytest.mark.parametrize("name", sorted(iql.FUNCTIONS))
def test_every_function_helper_runs_on_the_server(conn, db, name):
    signature = iql.FUNCTIONS[name]
    measurement = f"fn_{name}"
    conn.write(
        "\n".join(
            lp_line(measurement, {"host": "ab"[i % 2]}, {"t": v, "u": v * 2}, i * SEC)
            for i, v in enumerate(FN_VALUES)
        ),
        database=db,
    )
    item, grouped = _function_example(name, getattr(iql, iql.HELPERS[name]), signature)
    q = Query().from_(measurement).select(item)
    if grouped:
        q = q.since(0).before(10 * SEC).group_by_time("2s")
    (series,) = run(conn, db, q)
    assert series["columns"][:2] == ["time", item.output_name], str(q)
    assert any(row[1] is not None for row in series["values"]), str(q)
    aliased = run(conn, db, attrs.evolve(q, select_items=(item.as_("out"),)))
    assert aliased[0]["columns"][:2] == ["time", "out"]
    if name != "sample":  # (sample picks points at random)
        assert [row[1] for row in aliased[0]["values"]] == [row[1] for row in series["values"]]


def test_nested_calls_arithmetic_and_aliases_on_the_server(conn, db):
    measurement = "fn_nested"
    conn.write(
        "\n".join(lp_line(measurement, {"host": "a"}, {"t": v}, i * SEC) for i, v in enumerate(FN_VALUES)),
        database=db,
    )
    base = Query().from_(measurement).since(0).before(10 * SEC).group_by_time("2s")
    (series,) = run(conn, db, base.select(iql.derivative(iql.mean("t"), "1s").as_("d")))
    means = [math.fsum(FN_VALUES[i : i + 2]) / 2 for i in range(0, 10, 2)]
    expected = [[b * 2 * SEC, (means[b] - means[b - 1]) / 2] for b in range(1, 5)]
    assert series["columns"] == ["time", "d"]
    assert series["values"] == [[t, pytest.approx(v)] for t, v in expected]
    (series,) = run(
        conn, db, Query().from_(measurement).select((col("t") * 1.8 + 32).as_("f"), (col("t") + 1) * -2)
    )
    assert series["columns"] == ["time", "f", "t"]
    assert series["values"] == [
        [i * SEC, pytest.approx(v * 1.8 + 32), pytest.approx((v + 1) * -2)] for i, v in enumerate(FN_VALUES)
    ]
    (series,) = run(conn, db, Query().from_(measurement).select(iql.mean("t") * 2 - iql.max_("t") / 4))
    assert series["columns"] == ["time", "mean_max"]
    assert series["values"][0][1] == pytest.approx(statistics.fmean(FN_VALUES) * 2 - max(FN_VALUES) / 4)


def _go_round(x: float) -> float:
    return math.copysign(math.floor(abs(x) + 0.5), x)


def _nan_none(x: float) -> float | None:
    return None if math.isnan(x) else x


def _safe(f):
    def apply(x):
        try:
            return _nan_none(f(x))
        except ValueError:
            return None

    return apply


#: Per-point functions: helper and Python meaning (a NaN result is null in InfluxDB).
POINTWISE = {
    "abs": (iql.abs_, abs),
    "ceil": (iql.ceil, lambda x: float(math.ceil(x))),
    "floor": (iql.floor, lambda x: float(math.floor(x))),
    "round": (iql.round_, _go_round),
    "sin": (iql.sin, math.sin),
    "cos": (iql.cos, math.cos),
    "atan": (iql.atan, math.atan),
    "sqrt": (iql.sqrt, _safe(math.sqrt)),
    "asin": (iql.asin, _safe(math.asin)),
    "pow2": (lambda c: iql.pow_(c, 2), lambda x: x * x),
}


def _series_reference(kind: str, n: int, points: list[tuple[int, float]]) -> list[list[Any]]:
    """The rows of a series transformation of (time, value) points, in plain Python."""
    pairs = list(zip(points, points[1:]))
    if kind == "cumulative_sum":
        return [[t, math.fsum(v for _, v in points[: i + 1])] for i, (t, _) in enumerate(points)]
    if kind == "difference":
        return [[t1, v1 - v0] for (_, v0), (t1, v1) in pairs]
    if kind == "non_negative_difference":
        return [[t1, v1 - v0] for (_, v0), (t1, v1) in pairs if v1 - v0 >= 0]
    if kind == "derivative":
        return [[t1, (v1 - v0) / ((t1 - t0) / (n * SEC))] for (t0, v0), (t1, v1) in pairs]
    if kind == "elapsed":
        return [[t1, (t1 - t0) // (n * SEC)] for (t0, _), (t1, _) in pairs]
    if kind == "moving_average":  # over a window of n + 1 points (see SERIES_FUNCTIONS: InfluxDB needs 2+)
        w = n + 1
        return [
            [points[i][0], math.fsum(v for _, v in points[i - w + 1 : i + 1]) / w]
            for i in range(w - 1, len(points))
        ]
    raise AssertionError(kind)


SERIES_FUNCTIONS = {
    "cumulative_sum": lambda c, n: iql.cumulative_sum(c),
    "difference": lambda c, n: iql.difference(c),
    "non_negative_difference": lambda c, n: iql.non_negative_difference(c),
    "derivative": lambda c, n: iql.derivative(c, f"{n}s"),
    "elapsed": lambda c, n: iql.elapsed(c, timedelta(seconds=n)),
    "moving_average": lambda c, n: iql.moving_average(c, n + 1),
}


@st.composite
def function_queries(draw, field_key):
    """(select item, reference over sorted (time, value) points -> rows)."""
    kind = draw(st.sampled_from(["pointwise", "arithmetic", "series", "aggregate_arithmetic"]))
    c = col(field_key)
    a = draw(st.floats(-10, 10, allow_nan=False).map(lambda x: round(x, 2)))
    b = draw(st.integers(-5, 5))
    if kind == "pointwise":
        name = draw(st.sampled_from(sorted(POINTWISE)))
        helper, f = POINTWISE[name]
        return helper(c), lambda pts: [[t, f(v)] for t, v in pts]
    if kind == "arithmetic":
        shape = draw(st.sampled_from(["a*c+b", "(c+b)*a", "b-(c-a)", "c*c-b"]))
        item, f = {
            "a*c+b": (a * c + b, lambda v: a * v + b),
            "(c+b)*a": ((c + b) * a, lambda v: (v + b) * a),
            "b-(c-a)": (b - (c - a), lambda v: b - (v - a)),
            "c*c-b": (c * c - b, lambda v: v * v - b),
        }[shape]
        return item, lambda pts: [[t, f(v)] for t, v in pts]
    if kind == "series":
        name = draw(st.sampled_from(sorted(SERIES_FUNCTIONS)))
        n = draw(st.integers(1, 3))
        return SERIES_FUNCTIONS[name](c, n), lambda pts: _series_reference(name, n, pts)
    item = iql.mean(c) * a - iql.spread(c) + b
    return item, lambda pts: [
        [0, statistics.fmean(v for _, v in pts) * a - (max(v for _, v in pts) - min(v for _, v in pts)) + b]
    ]


@pytest.mark.timeout(600)
@given(st.data())
@settings(
    max_examples=40,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],  # no slow tracing
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
def test_functions_and_arithmetic_differential_against_a_python_reference(conn, db, data):
    _, _, field_key, _, points = data.draw(datasets(), label="dataset")
    measurement = f"{next(_counter)}:functions"
    conn.write(
        "\n".join(lp_line(measurement, {"k": "x"}, {field_key: v}, t) for t, _, v in points), database=db
    )
    item, reference_of = data.draw(function_queries(field_key), label="item")
    alias = data.draw(st.one_of(st.none(), names), label="alias")
    item = item.as_(alias) if alias else item
    q = Query().from_(measurement).select(item)
    got = run(conn, db, q)
    expected = reference_of(sorted((t, v) for t, _, v in points))
    if not expected:
        assert got == [], str(q)
        return
    (series,) = got
    assert series["columns"] == ["time", item.output_name], str(q)
    assert series["values"] == _approx_rows(expected), str(q)
