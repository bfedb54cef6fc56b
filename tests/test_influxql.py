"""The query builder without a server: rendering, clause order, immutability, quoting, bound parameters."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from influxhtm.core.errors import InfluxHtmError, ValidationError
from influxhtm.core.times import to_ns
from influxhtm.influxql import (
    FUNCTIONS,
    HELPERS,
    KEYWORDS,
    Binder,
    Query,
    abs_,
    admin,
    atan2,
    call,
    chande_momentum_oscillator,
    col,
    count,
    derivative,
    distinct,
    elapsed,
    exponential_moving_average,
    first,
    holt_winters,
    holt_winters_with_fit,
    integral,
    kaufmans_efficiency_ratio,
    last,
    log,
    max_,
    mean,
    median,
    min_,
    mode,
    moving_average,
    non_negative_derivative,
    percentile,
    pow_,
    quote_ident,
    regex,
    sample,
    select,
    spread,
    stddev,
    sum_,
    top,
)
from influxhtm.model.declarations import field, measurement, tag, timestamp

UTC = UTC
T0 = datetime(2024, 1, 1, tzinfo=UTC)
T0_NS = 1704067200 * 10**9  # 2024-01-01T00:00:00Z


# -- quoting ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["value", "_x", "Power2", "anomalyScore", "a_b_c"])
def test_plain_names_stay_bare(name):
    assert quote_ident(name) == name


@pytest.mark.parametrize(
    "name, quoted",
    [
        ("select", '"select"'),
        ("FROM", '"FROM"'),
        ("Limit", '"Limit"'),
        ("time", '"time"'),
        ("true", '"true"'),
        ("2x", '"2x"'),
        ("a b", '"a b"'),
        ("a-b", '"a-b"'),
        ('say "hi"', '"say \\"hi\\""'),
        ("back\\slash", '"back\\\\slash"'),
        ("two\nlines", '"two\\nlines"'),
        ("ünï", '"ünï"'),
        ("x' OR component='y", "\"x' OR component='y\""),
    ],
)
def test_other_names_are_quoted_and_escaped(name, quoted):
    assert quote_ident(name) == quoted


def test_every_spec_keyword_is_quoted_in_any_case():
    spec = (
        "ALL ALTER ANY AS ASC BEGIN BY CREATE CONTINUOUS DATABASE DATABASES DEFAULT DELETE DESC "
        "DESTINATIONS DIAGNOSTICS DISTINCT DROP DURATION END EVERY EXPLAIN FIELD FOR FROM GRANT GRANTS "
        "GROUP GROUPS IN INF INSERT INTO KEY KEYS KILL LIMIT SHOW MEASUREMENT MEASUREMENTS NAME OFFSET ON "
        "ORDER PASSWORD POLICY POLICIES PRIVILEGES QUERIES QUERY READ REPLICATION RESAMPLE RETENTION "
        "REVOKE SELECT SERIES SET SHARD SHARDS SLIMIT SOFFSET STATS SUBSCRIPTION SUBSCRIPTIONS TAG TO USER "
        "USERS VALUES WHERE WITH WRITE"
    ).split()
    assert set(spec) <= KEYWORDS
    for word in spec:
        for variant in (word, word.lower(), word.capitalize()):
            assert quote_ident(variant) == f'"{variant}"'


def _unquote(text: str) -> str:
    """A reference reader of a quoted identifier (the InfluxQL scanner's escapes)."""
    if not text.startswith('"'):
        return text
    body, out, i = text[1:-1], [], 0
    while i < len(body):
        if body[i] == "\\":
            out.append({"n": "\n", "\\": "\\", '"': '"'}[body[i + 1]])
            i += 2
        else:
            assert body[i] not in '"\n'
            out.append(body[i])
            i += 1
    return "".join(out)


@given(st.text(min_size=1))
@settings(max_examples=300, deadline=None)
def test_quoting_round_trips(name):
    text = quote_ident(name)
    assert _unquote(text) == name
    if not text.startswith('"'):
        assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", text) and text.upper() not in KEYWORDS


@pytest.mark.parametrize("bad", ["", None, 3])
def test_empty_or_non_text_names_are_refused(bad):
    with pytest.raises(ValidationError):
        quote_ident(bad)


# -- rendering -------------------------------------------------------------------------------------
def test_simple_select():
    q = Query().select("value").from_("power").where(component="coffee-machine")
    assert str(q) == "SELECT value FROM power WHERE component = $p0"
    assert q.params == {"p0": "coffee-machine"}


def test_default_select_is_star():
    assert str(Query().from_("power")) == "SELECT * FROM power"


def test_clauses_come_out_in_influxql_order_whatever_the_call_order():
    q = (
        Query()
        .tz("Europe/Berlin")
        .soffset(1)
        .slimit(2)
        .offset(5)
        .limit(10)
        .order_by("time", "desc")
        .fill(0)
        .group_by("component")
        .group_by_time("10m")
        .until(T0 + timedelta(days=1))
        .since(T0)
        .where(component="coffee-machine")
        .from_("power")
        .select(mean("value").as_("avg"))
    )
    assert str(q) == (
        "SELECT mean(value) AS avg FROM power WHERE component = $p0 AND time >= $p1 AND time <= $p2 "
        "GROUP BY time(10m), component fill(0) ORDER BY time DESC LIMIT 10 OFFSET 5 SLIMIT 2 SOFFSET 1 "
        "tz($p3)"
    )
    assert q.params == {
        "p0": "coffee-machine",
        "p1": T0_NS,
        "p2": T0_NS + 86400 * 10**9,
        "p3": "Europe/Berlin",
    }


def test_fill_zero_is_kept_and_other_fills_render():
    base = select(mean("value")).from_("m").group_by_time("1h").between(0, 10)
    assert str(base.fill(0)).endswith("GROUP BY time(1h) fill(0)")
    assert str(base.fill(0.0)).endswith("fill(0.0)")
    assert str(base.fill(-2.5)).endswith("fill(-2.5)")
    assert str(base.fill(1e-05)).endswith("fill(0.00001)")
    for word in ("none", "null", "previous", "linear", "PREVIOUS"):
        assert str(base.fill(word)).endswith(f"fill({word.lower()})")
    assert "fill" not in str(base.fill(0).fill(None))


def test_expressions_and_negation():
    q = (
        Query()
        .from_("m")
        .where(
            (col("value") > 3) & ~(col("component") == "x")
            | col("component").in_(["a", "b"])
            | col("component").matches("^a.*/b$")
        )
    )
    assert str(q) == (
        "SELECT * FROM m WHERE ((value > $p0 AND component != $p1) OR component = $p2 OR component = $p3 "
        "OR component =~ $p4)"
    )
    assert q.params == {"p0": 3, "p1": "x", "p2": "a", "p3": "b", "p4": {"regex": "^a.*/b$"}}


def test_negation_is_pushed_down_by_de_morgan():
    cond = ~((col("a") == "x") & ((col("v") < 1) | col("t").matches("r")))
    text, params = Query().from_("m").where(cond).render()
    assert text == "SELECT * FROM m WHERE (a != $p0 OR (v >= $p1 AND t !~ $p2))"
    assert params == {"p0": "x", "p1": 1, "p2": {"regex": "r"}}
    for op, neg in (("<", ">="), ("<=", ">"), (">", "<="), (">=", "<"), ("=", "!="), ("!=", "=")):
        c = {
            "<": col("v") < 1,
            "<=": col("v") <= 1,
            ">": col("v") > 1,
            ">=": col("v") >= 1,
            "=": col("v") == 1,
            "!=": col("v") != 1,
        }[op]
        assert (~c).op == neg and (~~c).op == op


def test_in_renders_as_or_of_equalities_and_not_in_as_and():
    q = Query().from_("m").where(col("host").in_(["a", "b"]))
    assert str(q) == "SELECT * FROM m WHERE (host = $p0 OR host = $p1)"
    q = Query().from_("m").where(col("host").not_in(["a", "b"]))
    assert str(q) == "SELECT * FROM m WHERE (host != $p0 AND host != $p1)"
    assert str(Query().from_("m").where(host=["only"])) == "SELECT * FROM m WHERE host = $p0"
    with pytest.raises(ValidationError, match="host"):
        col("host").in_([])


def test_kwargs_lists_and_regexes():
    q = Query().from_("m").where(a=["x", "y"], b=regex("^z/"))
    assert str(q) == "SELECT * FROM m WHERE (a = $p0 OR a = $p1) AND b =~ $p2"
    assert q.params["p2"] == {"regex": "^z/"}
    assert Query().from_("m").where(b=regex(re.compile("q"))).params == {"p0": {"regex": "q"}}


def test_all_aggregates_render():
    funcs = {
        "mean": mean,
        "median": median,
        "mode": mode,
        "count": count,
        "sum": sum_,
        "min": min_,
        "max": max_,
        "first": first,
        "last": last,
        "spread": spread,
        "stddev": stddev,
    }
    for name, func in funcs.items():
        assert str(select(func("value")).from_("m")) == f"SELECT {name}(value) FROM m"
        assert func("value").output_name == name
        assert func("value").as_("x").output_name == "x"
    assert str(select(percentile("value", 95)).from_("m")) == "SELECT percentile(value, 95) FROM m"
    assert str(select(count("*")).from_("m")) == "SELECT count(*) FROM m"
    assert (
        str(select(mean("my value").as_("the avg")).from_("m"))
        == 'SELECT mean("my value") AS "the avg" FROM m'
    )
    assert str(select(col("value", "field"), col("component", "tag")).from_("m")) == (
        "SELECT value::field, component::tag FROM m"
    )


def test_qualified_sources():
    assert str(Query().from_("power", database="db", retention_policy="rp")) == "SELECT * FROM db.rp.power"
    assert str(Query().from_("power", database="my db")) == 'SELECT * FROM "my db"..power'
    assert str(Query().from_("power", retention_policy="one week")) == 'SELECT * FROM "one week".power'
    assert str(Query().from_("select")) == 'SELECT * FROM "select"'


def test_group_by_time_with_offset_and_star():
    q = select(mean("v")).from_("m").group_by_time("1h", offset="15m").group_by("*")
    assert str(q) == "SELECT mean(v) FROM m GROUP BY time(1h, 15m), *"
    q = select(mean("v")).from_("m").group_by_time(timedelta(minutes=90), offset="-30m")
    assert str(q) == "SELECT mean(v) FROM m GROUP BY time(90m, -30m)"


def test_time_bounds_in_every_accepted_form():
    assert Query().from_("m").since(1500).params == {"p0": 1500}
    assert str(Query().from_("m").since(1500)) == "SELECT * FROM m WHERE time >= $p0"
    assert str(Query().from_("m").until(1500)) == "SELECT * FROM m WHERE time <= $p0"  # inclusive
    assert str(Query().from_("m").before(1500)) == "SELECT * FROM m WHERE time < $p0"  # exclusive
    assert str(Query().from_("m").until(1500).before(None)) == "SELECT * FROM m"
    assert str(Query().from_("m").before(1500).until(1400)) == "SELECT * FROM m WHERE time <= $p0"
    assert Query().from_("m").since(T0).params == {"p0": T0_NS}
    assert Query().from_("m").since("2024-01-01T01:00:00+01:00").params == {"p0": T0_NS}
    naive = datetime(2024, 6, 1, 12, 0)
    assert Query().from_("m").since(naive).params == {"p0": to_ns(naive.replace(tzinfo=UTC))}  # naive is UTC
    q = Query().from_("m").since("7d")
    assert str(q) == "SELECT * FROM m WHERE time >= now() - $p0" and q.params == {"p0": {"duration": "1w"}}
    q = Query().from_("m").since(timedelta(hours=2)).until(timedelta(minutes=5))
    assert q.params == {"p0": {"duration": "2h"}, "p1": {"duration": "5m"}}
    lo, hi = q.time_range(now=10**18)  # hi is exclusive: one past an inclusive until
    assert (lo, hi) == (10**18 - 2 * 3600 * 10**9, 10**18 - 300 * 10**9 + 1)
    assert q.before(timedelta(minutes=5)).time_range(now=10**18)[1] == 10**18 - 300 * 10**9
    q = Query().from_("m").between(10, 20)
    assert str(q) == "SELECT * FROM m WHERE time >= $p0 AND time <= $p1" and q.params == {"p0": 10, "p1": 20}
    assert q.time_range() == (10, 21)
    assert str(Query().from_("m").within(10, before=20)) == "SELECT * FROM m WHERE time >= $p0 AND time < $p1"
    with pytest.raises(ValidationError, match="not both"):
        Query().within(until=1, before=2)
    assert not Query().from_("m").since(10).since(None).has_lower_time_bound


def test_time_bound_flags_and_with_time_bounds():
    q = select(mean("v")).from_("m").group_by_time("10m").since(100)
    assert q.has_lower_time_bound and not q.has_upper_time_bound
    bounded = q.with_time_bounds(None, 5000)  # hi exclusive, as time_range() gives it
    assert bounded.has_upper_time_bound and bounded.time_range() == (100, 5000)
    assert str(bounded).endswith("time >= $p0 AND time < $p1 GROUP BY time(10m)")
    assert q.until(4999).with_time_bounds(*q.until(4999).time_range()).time_range() == (100, 5000)
    assert q.with_time_bounds(1, 2).time_range() == (1, 2)
    assert Query().from_("m").where(col("time") < T0).has_upper_time_bound
    assert Query().from_("m").where(col("time") >= T0).params == {"p0": T0_NS}


def test_floats_that_json_would_write_with_an_exponent_are_spelled_out():
    q = Query().from_("m").where(col("v") > 1e20, col("w") < 1e-05, col("x") == 2.5, col("y") == 3)
    assert (
        str(q) == "SELECT * FROM m WHERE v > 100000000000000000000.0 AND w < 0.00001 AND x = $p0 AND y = $p1"
    )
    assert q.params == {"p0": 2.5, "p1": 3}


def test_bool_and_empty_string_values_are_bound():
    q = Query().from_("m").where(col("ok") == True, host="")  # noqa: E712
    assert q.params == {"p0": True, "p1": ""}


def test_hostile_values_never_reach_the_text():
    for value in ["x' OR component='y", '"; DROP DATABASE db; --', "\\", "/", "a\nb", "$p1", "time > 0"]:
        q = Query().from_("m").where(component=value)
        assert str(q) == "SELECT * FROM m WHERE component = $p0"
        assert q.params == {"p0": value}
        q = Query().from_("m").where(col("component").matches(value))
        assert str(q) == "SELECT * FROM m WHERE component =~ $p0"


# -- immutability ----------------------------------------------------------------------------------
def test_a_query_reused_after_chaining_renders_as_before():
    base = Query().select("value").from_("power").where(component="a")
    before = base.render()
    extended = base.where(col("value") > 1).since(T0).group_by("x").limit(3).order_by("time", "desc")
    other = base.where(component="b").fill(0).tz("UTC")
    assert base.render() == before
    assert extended.render() != before and other.render() != before
    assert extended.render()[0].startswith(before[0])
    with pytest.raises(AttributeError):
        base.limit_value = 3  # type: ignore[misc]
    assert base == Query().select("value").from_("power").where(component="a")
    assert base != extended


@given(
    st.lists(
        st.sampled_from(["where", "since", "until", "limit", "offset", "fill", "order", "group"]), max_size=8
    )
)
@settings(max_examples=100, deadline=None)
def test_chaining_never_changes_earlier_queries(steps):
    q = Query().from_("m").select(mean("v")).group_by_time("1m")
    history = [(q, q.render())]
    steps_by_name = {
        "where": lambda q, i: q.where(host=f"v{i}"),
        "since": lambda q, i: q.since(i),
        "until": lambda q, i: q.until(10**9 + i),
        "limit": lambda q, i: q.limit(i + 1),
        "offset": lambda q, i: q.offset(i),
        "fill": lambda q, i: q.fill(i),
        "order": lambda q, i: q.order_by("time", "desc" if i % 2 else "asc"),
        "group": lambda q, i: q.group_by(f"g{i}"),
    }
    for i, step in enumerate(steps):
        q = steps_by_name[step](q, i)
        history.append((q, q.render()))
    for query, rendered in history:
        assert query.render() == rendered


# -- validation ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "build, argument, shown",
    [
        (lambda q: q.fill("zero"), "fill", "'zero'"),
        (lambda q: q.fill(float("nan")), "fill", "nan"),
        (lambda q: q.fill(True), "fill", "True"),
        (lambda q: q.limit(-1), "limit", "-1"),
        (lambda q: q.limit(0), "limit", "0"),
        (lambda q: q.offset(-3), "offset", "-3"),
        (lambda q: q.slimit("2"), "slimit", "'2'"),
        (lambda q: q.order_by("time", "sideways"), "direction", "'sideways'"),
        (lambda q: q.order_by("value"), "order_by", "'value'"),
        (lambda q: q.group_by_time("10 minutes"), "interval", "'10 minutes'"),
        (lambda q: q.group_by_time("0m"), "interval", "'0m'"),
        (lambda q: q.group_by_time("1h", offset="soon"), "offset", "'soon'"),
        (lambda q: q.since("yesterday"), "since", "'yesterday'"),
        (lambda q: q.tz("Mars/Olympus"), "tz", "'Mars/Olympus'"),
        (lambda q: q.select(mean(3)), "argument", "3"),
        (lambda q: q.select(mean("")), "argument", "''"),
        (lambda q: q.select(percentile("v", 101)), "percentile", "101"),
        (lambda q: q.where(col("v") > float("inf")), "v", "inf"),
        (lambda q: q.where(col("v") > 2**63), "v", str(2**63)),
        (lambda q: q.where(col("v") == print), "v", "print"),
        (lambda q: q.where("v > 3"), "where", "'v > 3'"),
    ],
)
def test_bad_arguments_raise_validation_errors_naming_argument_and_value(build, argument, shown):
    with pytest.raises(ValidationError) as caught:
        build(Query().from_("m")).render()
    assert argument in caught.value.errors
    assert shown in str(caught.value)


def test_python_boolean_operators_on_conditions_are_refused():
    with pytest.raises(TypeError):
        (col("a") == 1) and (col("b") == 2)  # noqa: B015


def test_render_without_measurement_is_refused():
    with pytest.raises(ValidationError, match="from_"):
        str(select("v"))


# -- execution hook --------------------------------------------------------------------------------
class RecordingExecutor:
    def __init__(self):
        self.calls = []

    def iter_query(self, q):
        self.calls.append(("iter", q))
        return iter([1, 2])

    def all(self, q):
        self.calls.append(("all", q))
        return [1, 2]

    def first(self, q):
        self.calls.append(("first", q))
        return 1

    def count(self, q):
        self.calls.append(("count", q))
        return 2

    def exists(self, q):
        self.calls.append(("exists", q))
        return True

    def to_dataframe(self, q):
        self.calls.append(("to_dataframe", q))
        return "frame"


def test_unbound_queries_say_how_to_run_them():
    q = Query().from_("m")
    for run in (
        list,
        lambda q: q.all(),
        lambda q: q.first(),
        lambda q: q.count(),
        lambda q: q.exists(),
        lambda q: q.to_dataframe(),
    ):
        with pytest.raises(InfluxHtmError, match=r"not bound to a repository; use repo.query\(\)"):
            run(q)


def test_bound_queries_delegate_and_stay_bound_through_chaining():
    executor = RecordingExecutor()
    q = Query().from_("m").bind(executor).where(a="x").limit(5)
    assert q.executor is executor
    assert list(q) == [1, 2] and q.all() == [1, 2] and q.first() == 1 and q.count() == 2
    assert q.exists() is True and q.to_dataframe() == "frame"
    assert [name for name, _ in executor.calls] == ["iter", "all", "first", "count", "exists", "to_dataframe"]
    assert all(call_q is q for _, call_q in executor.calls)
    assert q == Query().from_("m").where(a="x").limit(5)  # the executor is not part of equality
    assert "RecordingExecutor" not in repr(q)


@measurement("power readings", retention_policy="week")
class Declared:
    time: datetime = timestamp()
    component: str = tag()
    model_id: str = tag(name="id")
    anomaly_score: float = field(name="anomalyScore")
    value: float = field()


def test_from_a_declared_class_keeps_the_class_and_maps_python_names():
    q = Query().from_(Declared).where(model_id="m1").group_by("model_id")
    assert q.model_class is Declared
    assert str(q) == 'SELECT * FROM week."power readings" WHERE id = $p0 GROUP BY id'
    assert q.class_info.fields == {"anomalyScore", "value"}
    with pytest.raises(ValidationError, match="measurement"):
        Query().from_(object)


# -- admin statements ------------------------------------------------------------------------------
def test_admin_statements_render():
    assert str(admin.show_databases()) == "SHOW DATABASES"
    assert str(admin.show_measurements(database="d b")) == 'SHOW MEASUREMENTS ON "d b"'
    s = admin.show_tag_values("component", "power", database="db", component=regex("^a"))
    assert s.text == "SHOW TAG VALUES ON db FROM power WITH KEY = component WHERE component =~ $p0"
    assert s.params == {"p0": {"regex": "^a"}}
    assert str(admin.show_tag_values(["a", "key"], "m")) == 'SHOW TAG VALUES FROM m WITH KEY IN (a, "key")'
    assert str(admin.show_field_keys("m")) == "SHOW FIELD KEYS FROM m"
    assert str(admin.show_series("m", host="x")) == "SHOW SERIES FROM m WHERE host = $p0"
    assert str(admin.create_database("db")) == "CREATE DATABASE db"
    assert str(
        admin.create_database("db", duration="30d", replication=1, shard_duration="1d", policy_name="p")
    ) == ("CREATE DATABASE db WITH DURATION 30d REPLICATION 1 SHARD DURATION 1d NAME p")
    assert str(admin.create_retention_policy("one week", database="db", duration="7d", default=True)) == (
        'CREATE RETENTION POLICY "one week" ON db DURATION 1w REPLICATION 1 DEFAULT'
    )
    assert str(admin.alter_retention_policy("rp", database="db", duration=None, replication=2)) == (
        "ALTER RETENTION POLICY rp ON db REPLICATION 2"
    )
    assert str(admin.alter_retention_policy("rp", database="db", duration="INF")) == (
        "ALTER RETENTION POLICY rp ON db DURATION INF"
    )
    assert str(admin.drop_retention_policy("rp", database="db")) == "DROP RETENTION POLICY rp ON db"
    assert str(admin.drop_measurement("select")) == 'DROP MEASUREMENT "select"'
    s = admin.delete("m", since=10, until=20, component="x")
    assert s.text == "DELETE FROM m WHERE component = $p0 AND time >= $p1 AND time <= $p2"
    assert s.params == {"p0": "x", "p1": 10, "p2": 20} and s.method == "POST"
    s = admin.delete("m", since=10, before=20, component="x")
    assert s.text == "DELETE FROM m WHERE component = $p0 AND time >= $p1 AND time < $p2"
    s = admin.create_subscription("s", database="db", retention_policy="autogen", destinations=["udp://h:1"])
    assert s.text == "CREATE SUBSCRIPTION s ON db.autogen DESTINATIONS ANY $p0"
    assert s.params == {"p0": "udp://h:1"}


def test_continuous_query_wraps_a_query():
    body = select(mean("value")).into("power_1h").from_("power").where(component="a").group_by_time("1h")
    s = admin.create_continuous_query("cq", database="db", query=body, resample_every="30m")
    assert s.text == (
        "CREATE CONTINUOUS QUERY cq ON db RESAMPLE EVERY 30m BEGIN SELECT mean(value) INTO power_1h "
        "FROM power "
        "WHERE component = $p0 GROUP BY time(1h) END"
    )
    assert s.params == {"p0": "a"}
    with pytest.raises(ValidationError, match="INTO"):
        admin.create_continuous_query(
            "cq", database="db", query=select(mean("v")).from_("p").group_by_time("1h")
        )
    with pytest.raises(ValidationError, match="group_by_time"):
        admin.create_continuous_query("cq", database="db", query=select(mean("v")).into("x").from_("p"))


@pytest.mark.parametrize(
    "build, key",
    [
        (lambda: admin.delete("m", col("value") > 3, fields={"value"}), "where"),
        (lambda: admin.delete(Declared, col("anomalyScore") > 0.5), "where"),
        (lambda: admin.delete(), "delete"),
        (lambda: admin.drop_series("m", col("time") > 0), "where"),
        (
            lambda: admin.create_subscription(
                "s", database="d", retention_policy="r", destinations=[], mode="ANY"
            ),
            "destinations",
        ),
        (
            lambda: admin.create_subscription(
                "s", database="d", retention_policy="r", destinations=["u"], mode="X"
            ),
            "mode",
        ),
        (lambda: admin.create_retention_policy("r", database="d", duration="1 week"), "duration"),
        (
            lambda: admin.create_retention_policy("r", database="d", duration="1w", replication=0),
            "replication",
        ),
        (lambda: admin.alter_retention_policy("r", database="d"), "alter_retention_policy"),
    ],
)
def test_admin_refusals(build, key):
    with pytest.raises(ValidationError) as caught:
        build()
    assert key in caught.value.errors


def test_text_that_cannot_travel_as_utf8_is_refused_before_sending():
    from influxhtm.core.errors import ValidationError

    with pytest.raises(ValidationError, match="unicode"):
        str(Query().from_("m").where(component="a\ud800b"))
    with pytest.raises(ValidationError, match="unicode"):
        str(Query().from_("m\udfff"))


# -- issue 14: names checked against the declaration ---------------------------------------------
@pytest.mark.parametrize(
    "build, unknown, closest",
    [
        (lambda q: q.where(componnt="a"), "componnt", "component"),
        (lambda q: q.where(col("valu") > 1), "valu", "value"),
        (lambda q: q.where(col("component") == "a", col("anomalyScor") > 1), "anomalyScor", "anomalyScore"),
        (lambda q: q.select("valeu"), "valeu", "value"),
        (lambda q: q.select(col("valeu").as_("v")), "valeu", "value"),
        (lambda q: q.select(mean("anomaly_scor")), "anomaly_scor", "anomalyScore"),
        (lambda q: q.select(col("vaule") * 2), "vaule", "value"),
        (lambda q: q.group_by("x"), "x", None),
        (lambda q: q.group_by("componet"), "componet", "component"),
        (lambda q: q.select(top("value", 2, "hots")), "hots", None),
    ],
)
def test_undeclared_names_on_a_declared_query_are_refused_with_the_known_columns(build, unknown, closest):
    with pytest.raises(ValidationError) as caught:
        build(Query().from_(Declared))
    message = str(caught.value)
    assert repr(unknown) in message
    assert "anomalyScore, component, id, value" in message  # the known columns
    if closest:
        assert f"did you mean {closest!r}" in message
    else:
        assert "did you mean" not in message


def test_names_given_before_from_a_class_are_checked_too():
    with pytest.raises(ValidationError, match="'valeu'"):
        Query().select("valeu").from_(Declared)
    with pytest.raises(ValidationError, match="'nope'"):
        Query().where(col("nope") == 1).from_(Declared)


def test_declared_names_keys_attributes_and_time_are_accepted_and_mapped():
    q = (
        Query()
        .from_(Declared)
        .select("anomaly_score", mean("anomalyScore").as_("m"), col("value") * 2)
        .where(col("model_id") == "m1", col("time") > 0, anomaly_score=1.5)
        .group_by("model_id", "component")
        .order_by("time")
    )
    assert str(q) == (
        'SELECT anomalyScore, mean(anomalyScore) AS m, value * 2 FROM week."power readings" '
        'WHERE id = $p0 AND time > $p1 AND anomalyScore = $p2 GROUP BY id, component ORDER BY time ASC'
    )


def test_escapes_unchecked_columns_and_queries_not_bound_to_a_class():
    q = Query().from_(Declared).select(col("extra", checked=False)).where(col("other", checked=False) == 1)
    assert str(q) == 'SELECT extra FROM week."power readings" WHERE other = $p0'
    assert str(Query().from_("power readings").select("anything").group_by("x")) == (
        'SELECT anything FROM "power readings" GROUP BY x'
    )


# -- issue 14: every InfluxQL function, nesting, arithmetic, aliases -------------------------------
def test_every_function_of_the_table_has_a_helper_that_renders_it():
    import influxhtm.influxql as iql

    minimal = {"percentile": (50,), "sample": (2,), "top": (2,), "bottom": (2,), "log": (2,), "pow": (2,)}
    minimal |= {"moving_average": (2,), "holt_winters": (3, 0), "holt_winters_with_fit": (3, 0)}
    for name, signature in FUNCTIONS.items():
        helper = getattr(iql, HELPERS[name])
        args = ("a", "b")[: signature.columns]
        params = minimal.get(name, (2,) if signature.kind == "technical analysis" else ())
        expected = f"{name}({', '.join(args + tuple(str(p) for p in params))})"
        assert helper(*args, *params).render_expr(Binder()) == expected
        assert helper(*args, *params).output_name == name


@pytest.mark.parametrize(
    "expression, text, name",
    [
        (col("t") * 1.8 + 32, "t * 1.8 + 32", "t"),
        ((col("t") + 1) * 2, "(t + 1) * 2", "t"),
        (col("a") - (col("b") - col("c")), "a - (b - c)", "a_b_c"),
        (col("a") - col("b") - col("c"), "a - b - c", "a_b_c"),
        (col("a") / (col("b") * 2), "a / (b * 2)", "a_b"),
        (2 - col("t") % 3, "2 - t % 3", "t"),
        (col("t") * -1.5, "t * (-1.5)", "t"),
        (mean("a") + mean("b"), "mean(a) + mean(b)", "mean_mean"),
        (derivative(mean("watts"), "1m"), "derivative(mean(watts), 1m)", "derivative"),
        (
            non_negative_derivative(max_("n"), timedelta(seconds=90)),
            "non_negative_derivative(max(n), 90s)",
            "non_negative_derivative",
        ),
        (abs_(col("t") * 2), "abs(t * 2)", "abs"),
        (atan2(col("y"), mean("x")), "atan2(y, mean(x))", "atan2"),
        (top("v", 3, "host", col("dc")), "top(v, host, dc, 3)", "top"),
        (integral("v"), "integral(v)", "integral"),
        (elapsed("v", "1ms"), "elapsed(v, 1ms)", "elapsed"),
        (
            exponential_moving_average("v", 5, warmup_type="simple"),
            "exponential_moving_average(v, 5, -1, 'simple')",
            "exponential_moving_average",
        ),
        (
            chande_momentum_oscillator("v", 5, 2, "none"),
            "chande_momentum_oscillator(v, 5, 2, 'none')",
            "chande_momentum_oscillator",
        ),
        (
            kaufmans_efficiency_ratio("v", period=4),
            "kaufmans_efficiency_ratio(v, 4)",
            "kaufmans_efficiency_ratio",
        ),
        (
            holt_winters_with_fit(first("v"), 10, 4),
            "holt_winters_with_fit(first(v), 10, 4)",
            "holt_winters_with_fit",
        ),
        (log("v", 0.5), "log(v, 0.5)", "log"),
        (pow_(col("v", "field"), 2), "pow(v::field, 2)", "pow"),
        (count(distinct("v")), "count(distinct(v))", "count"),
        (count("*"), "count(*)", "count"),
    ],
)
def test_expressions_render_with_correct_parentheses_and_output_names(expression, text, name):
    assert expression.render_expr(Binder()) == text
    assert expression.output_name == name
    assert expression.as_("f").render_item(Binder()) == text + " AS f"
    assert expression.as_("f").output_name == "f"


def test_aliases_inside_expressions_are_dropped_and_calls_make_a_query_computed():
    q = Query().from_("m").select(mean(col("t").as_("x") * 2).as_("m"), col("t") * 2)
    assert str(q) == "SELECT mean(t * 2) AS m, t * 2 FROM m"
    assert q.is_aggregate


@pytest.mark.parametrize(
    "build, key",
    [
        (lambda: moving_average("v", 1), "moving_average.n"),
        (lambda: moving_average("v", 2.5), "moving_average.n"),
        (lambda: sample("v", 0), "sample.n"),
        (lambda: top("v", 0), "top.n"),
        (lambda: top("v", 2, 3), "top"),
        (lambda: percentile("v", 0), "percentile"),
        (lambda: percentile("v", 100.5), "percentile"),
        (lambda: derivative("v", "soon"), "derivative.unit"),
        (lambda: derivative("v", "0s"), "derivative.unit"),
        (lambda: holt_winters(mean("v"), 0, 0), "holt_winters.n"),
        (lambda: holt_winters(mean("v"), 2, -1), "holt_winters.seasonal"),
        (lambda: holt_winters(mean("v"), 2), "holt_winters"),
        (lambda: exponential_moving_average("v", 0), "exponential_moving_average.period"),
        (lambda: exponential_moving_average("v", 2, -2), "exponential_moving_average.hold_period"),
        (
            lambda: exponential_moving_average("v", 2, warmup_type="none"),
            "exponential_moving_average.warmup_type",
        ),
        (lambda: exponential_moving_average("v", 2, window=3), "exponential_moving_average"),
        (lambda: log("v", float("nan")), "log.base"),
        (lambda: log("v", "2"), "log.base"),
        (lambda: atan2("y"), "atan2"),
        (lambda: mean("v", 3), "mean"),
        (lambda: call("median_absolute_deviation", "v"), "function"),
        (lambda: col("t") + "u", "+"),
        (lambda: col("t") * True, "*"),
        (lambda: col("t") - None, "-"),
    ],
)
def test_bad_function_arguments_are_refused_with_the_parameter_named(build, key):
    with pytest.raises(ValidationError) as caught:
        build()
    assert key in caught.value.errors, caught.value.errors
