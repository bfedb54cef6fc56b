"""Introspection and administration statements: SHOW, CREATE/ALTER/DROP, DELETE, subscriptions.

Each function returns a `Statement` (text + bound parameters + the HTTP method
InfluxDB's API names for it: GET for a read, POST for a change; influxhtm sends
every statement by POST anyway, in the request body, never in a URL). Names go
through `quote_ident`, values are bound, durations are validated and rendered from nanoseconds.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Iterable, Sequence

import attrs

from influxhtm.core.errors import ValidationError
from influxhtm.core.times import duration_ns, format_duration
from influxhtm.influxql import expressions as ex
from influxhtm.influxql.declared import describe_class
from influxhtm.influxql.query import Query, TimeArg, qualified_name, time_bound
from influxhtm.influxql.quoting import count_literal, quote_ident


@attrs.frozen
class Statement:
    """One InfluxQL statement: `text`, `params`, and `method` (GET: a read, POST: a change).

    `method` says what the statement does; it is always sent by POST (see `Connection.query`).
    """

    text: str
    params: dict[str, Any] = attrs.field(factory=dict)
    method: str = "GET"

    def render(self) -> tuple[str, dict[str, Any]]:
        return self.text, dict(self.params)

    def __str__(self) -> str:
        return self.text


def _on(database: str | None) -> str:
    return f" ON {quote_ident(database, what='database')}" if database else ""


def _conditions(conditions: Iterable[ex.Condition], tags: dict[str, Any]) -> list[ex.Condition]:
    return list(Query().where(*conditions, **tags).conditions)


def _where(binder: ex.Binder, conditions: Sequence[ex.Condition]) -> str:
    if not conditions:
        return ""
    return " WHERE " + " AND ".join(c.render(binder) for c in conditions)


def _from(measurement: str | None) -> str:
    return f" FROM {quote_ident(measurement, what='measurement')}" if measurement else ""


def _limits(limit: int | None, offset: int | None) -> str:
    text = ""
    if limit is not None:
        text += " LIMIT " + count_literal(limit, what="limit", minimum=1)
    if offset is not None:
        text += " OFFSET " + count_literal(offset, what="offset")
    return text


# -- introspection ---------------------------------------------------------------------
def show_databases() -> Statement:
    return Statement("SHOW DATABASES")


def show_measurements(
    *conditions: ex.Condition,
    database: str | None = None,
    limit: int | None = None,
    offset: int | None = None,
    **tags: Any,
) -> Statement:
    """SHOW MEASUREMENTS [ON db] [WHERE tag conditions]."""
    binder = ex.Binder()
    where = _where(binder, _conditions(conditions, tags))
    return Statement(f"SHOW MEASUREMENTS{_on(database)}{where}{_limits(limit, offset)}", binder.params)


def show_tag_keys(
    measurement: str | None = None, *conditions: ex.Condition, database: str | None = None, **tags: Any
) -> Statement:
    """SHOW TAG KEYS [ON db] [FROM m] [WHERE ...]."""
    binder = ex.Binder()
    where = _where(binder, _conditions(conditions, tags))
    return Statement(f"SHOW TAG KEYS{_on(database)}{_from(measurement)}{where}", binder.params)


def show_tag_values(
    key: str | Sequence[str] | ex.Regex,
    measurement: str | None = None,
    *conditions: ex.Condition,
    database: str | None = None,
    **tags: Any,
) -> Statement:
    """SHOW TAG VALUES [ON db] [FROM m] WITH KEY = k | IN (k1, k2) | =~ /re/ [WHERE ...]."""
    binder = ex.Binder()
    if isinstance(key, ex.Regex):
        with_key = "=~ " + binder.bind({"regex": key.pattern})
    elif isinstance(key, str):
        with_key = "= " + quote_ident(key, what="key")
    else:
        keys = list(key)
        if not keys:
            raise ValidationError({"key": ["give at least one tag key"]})
        with_key = "IN (" + ", ".join(quote_ident(k, what="key") for k in keys) + ")"
    where = _where(binder, _conditions(conditions, tags))
    return Statement(
        f"SHOW TAG VALUES{_on(database)}{_from(measurement)} WITH KEY {with_key}{where}", binder.params
    )


def show_field_keys(measurement: str | None = None, *, database: str | None = None) -> Statement:
    """SHOW FIELD KEYS [ON db] [FROM m]: field names with their types."""
    return Statement(f"SHOW FIELD KEYS{_on(database)}{_from(measurement)}")


def show_series(
    measurement: str | None = None, *conditions: ex.Condition, database: str | None = None, **tags: Any
) -> Statement:
    """SHOW SERIES [ON db] [FROM m] [WHERE ...]."""
    binder = ex.Binder()
    where = _where(binder, _conditions(conditions, tags))
    return Statement(f"SHOW SERIES{_on(database)}{_from(measurement)}{where}", binder.params)


# -- databases and retention policies ------------------------------------------------
def _rp_duration(value: str | timedelta | None, what: str) -> str:
    if value is None or (isinstance(value, str) and value.strip().upper() == "INF"):
        return "INF"
    return format_duration(duration_ns(value, what=what))


def _replication(value: int) -> str:
    return count_literal(value, what="replication", minimum=1)


def create_database(
    name: str,
    *,
    duration: str | timedelta | None = None,
    replication: int | None = None,
    shard_duration: str | timedelta | None = None,
    policy_name: str | None = None,
) -> Statement:
    """CREATE DATABASE name [WITH DURATION .. REPLICATION .. SHARD DURATION .. NAME ..]."""
    text = f"CREATE DATABASE {quote_ident(name, what='database')}"
    options = []
    if duration is not None:
        options.append("DURATION " + _rp_duration(duration, "duration"))
    if replication is not None:
        options.append("REPLICATION " + _replication(replication))
    if shard_duration is not None:
        shard = format_duration(duration_ns(shard_duration, what="shard_duration"))
        options.append("SHARD DURATION " + shard)
    if policy_name is not None:
        options.append("NAME " + quote_ident(policy_name, what="policy_name"))
    if options:
        text += " WITH " + " ".join(options)
    return Statement(text, method="POST")


def drop_database(name: str) -> Statement:
    return Statement(f"DROP DATABASE {quote_ident(name, what='database')}", method="POST")


def show_retention_policies(database: str) -> Statement:
    return Statement(f"SHOW RETENTION POLICIES ON {quote_ident(database, what='database')}")


def create_retention_policy(
    name: str,
    *,
    database: str,
    duration: str | timedelta | None,
    replication: int = 1,
    shard_duration: str | timedelta | None = None,
    default: bool = False,
) -> Statement:
    """CREATE RETENTION POLICY name ON db DURATION d REPLICATION n [SHARD DURATION s] [DEFAULT].

    A `duration` of None (or "INF") keeps data forever.
    """
    text = (
        f"CREATE RETENTION POLICY {quote_ident(name, what='retention_policy')} "
        f"ON {quote_ident(database, what='database')} DURATION {_rp_duration(duration, 'duration')} "
        f"REPLICATION {_replication(replication)}"
    )
    if shard_duration is not None:
        text += " SHARD DURATION " + format_duration(duration_ns(shard_duration, what="shard_duration"))
    if default:
        text += " DEFAULT"
    return Statement(text, method="POST")


def alter_retention_policy(
    name: str,
    *,
    database: str,
    duration: str | timedelta | None = None,
    replication: int | None = None,
    shard_duration: str | timedelta | None = None,
    default: bool = False,
) -> Statement:
    """ALTER RETENTION POLICY: only the given settings change (duration "INF" for infinite)."""
    options = []
    if duration is not None:
        options.append("DURATION " + _rp_duration(duration, "duration"))
    if replication is not None:
        options.append("REPLICATION " + _replication(replication))
    if shard_duration is not None:
        shard = format_duration(duration_ns(shard_duration, what="shard_duration"))
        options.append("SHARD DURATION " + shard)
    if default:
        options.append("DEFAULT")
    if not options:
        raise ValidationError(
            {"alter_retention_policy": ["give duration, replication, shard_duration or default"]}
        )
    return Statement(
        f"ALTER RETENTION POLICY {quote_ident(name, what='retention_policy')} "
        f"ON {quote_ident(database, what='database')} " + " ".join(options),
        method="POST",
    )


def drop_retention_policy(name: str, *, database: str) -> Statement:
    return Statement(
        f"DROP RETENTION POLICY {quote_ident(name, what='retention_policy')} "
        f"ON {quote_ident(database, what='database')}",
        method="POST",
    )


# -- continuous queries ------------------------------------------------------------------
def create_continuous_query(
    name: str,
    *,
    database: str,
    query: Query,
    resample_every: str | timedelta | None = None,
    resample_for: str | timedelta | None = None,
) -> Statement:
    """CREATE CONTINUOUS QUERY name ON db [RESAMPLE ...] BEGIN <query with INTO and GROUP BY time> END."""
    if not isinstance(query, Query):
        raise ValidationError({"query": [f"{query!r} is not a Query: build it with Query().select(...)"]})
    if query.into_target is None:
        raise ValidationError({"query": ["a continuous query needs INTO: call query.into(...)"]})
    if query.interval is None:
        raise ValidationError({"query": ["a continuous query needs group_by_time(...)"]})
    if query.lower is not None or query.upper is not None:
        raise ValidationError({"query": ["a continuous query cannot have time bounds (since/until)"]})
    body, params = query.render()
    resample = ""
    if resample_every is not None:
        resample += " EVERY " + format_duration(duration_ns(resample_every, what="resample_every"))
    if resample_for is not None:
        resample += " FOR " + format_duration(duration_ns(resample_for, what="resample_for"))
    text = (
        f"CREATE CONTINUOUS QUERY {quote_ident(name, what='name')} "
        f"ON {quote_ident(database, what='database')}"
        + (f" RESAMPLE{resample}" if resample else "")
        + f" BEGIN {body} END"
    )
    return Statement(text, params, method="POST")


def drop_continuous_query(name: str, *, database: str) -> Statement:
    return Statement(
        f"DROP CONTINUOUS QUERY {quote_ident(name, what='name')} ON {quote_ident(database, what='database')}",
        method="POST",
    )


def show_continuous_queries() -> Statement:
    return Statement("SHOW CONTINUOUS QUERIES")


# -- deleting -----------------------------------------------------------------------------
def delete(
    measurement: Any = None,
    *conditions: ex.Condition,
    since: TimeArg | None = None,
    until: TimeArg | None = None,
    before: TimeArg | None = None,
    fields: Iterable[str] | None = None,
    **tags: Any,
) -> Statement:
    """DELETE [FROM m] WHERE tag conditions and time bounds.

    `since` and `until` are inclusive (`time >= since AND time <= until`), as
    everywhere in influxhtm; `before` is an exclusive end (`time < before`).

    InfluxDB 1.x cannot delete by field value: a condition on a name in `fields`
    (or a field of the declared class given as `measurement`) is refused.
    """
    query: Query[Any] = Query()
    field_names = set(fields or ())
    if measurement is not None:
        query = query.from_(measurement)
        if query.model_class is not None:
            field_names |= set(describe_class(measurement).fields)
    query = query.where(*conditions, **tags).within(since, until, before)
    bad = sorted(ex_name for ex_name in _columns(query.conditions) if ex_name in field_names)
    if bad:
        raise ValidationError(
            {"where": [f"{bad!r} are fields: InfluxDB 1.x DELETE supports only tag and time conditions"]}
        )
    binder = ex.Binder()
    where = query.render_where(binder)
    if query.measurement is None and not where:
        raise ValidationError(
            {"delete": ["give a measurement or a condition (refusing to delete everything)"]}
        )
    text = "DELETE" + _from(query.measurement) + (f" WHERE {where}" if where else "")
    return Statement(text, binder.params, method="POST")


def _columns(conditions: Iterable[ex.Condition]) -> set[str]:
    return {name for condition in conditions for name in condition.columns()}


def drop_measurement(name: str) -> Statement:
    return Statement(f"DROP MEASUREMENT {quote_ident(name, what='measurement')}", method="POST")


def drop_series(measurement: str | None = None, *conditions: ex.Condition, **tags: Any) -> Statement:
    """DROP SERIES [FROM m] [WHERE tag conditions]; time conditions are refused (InfluxDB has none here)."""
    found = _conditions(conditions, tags)
    if "time" in _columns(found):
        raise ValidationError(
            {"where": ["DROP SERIES does not support time conditions; use delete(since=, until=)"]}
        )
    if measurement is None and not found:
        raise ValidationError(
            {"drop_series": ["give a measurement or a condition (refusing to drop every series)"]}
        )
    binder = ex.Binder()
    return Statement("DROP SERIES" + _from(measurement) + _where(binder, found), binder.params, method="POST")


# -- subscriptions ----------------------------------------------------------------------------
def create_subscription(
    name: str, *, database: str, retention_policy: str, destinations: Sequence[str], mode: str = "ANY"
) -> Statement:
    """CREATE SUBSCRIPTION name ON db.rp DESTINATIONS ANY|ALL 'url', ... (urls bound as parameters)."""
    if not isinstance(mode, str) or mode.upper() not in ("ANY", "ALL"):
        raise ValidationError({"mode": [f"{mode!r} is not 'ANY' or 'ALL'"]})
    if isinstance(destinations, str):
        destinations = [destinations]
    if not destinations or not all(isinstance(d, str) and d for d in destinations):
        raise ValidationError({"destinations": [f"{destinations!r}: give one or more destination URLs"]})
    binder = ex.Binder()
    urls = ", ".join(binder.bind(d) for d in destinations)
    text = (
        f"CREATE SUBSCRIPTION {quote_ident(name, what='name')} ON "
        f"{quote_ident(database, what='database')}.{quote_ident(retention_policy, what='retention_policy')} "
        f"DESTINATIONS {mode.upper()} {urls}"
    )
    return Statement(text, binder.params, method="POST")


def drop_subscription(name: str, *, database: str, retention_policy: str) -> Statement:
    return Statement(
        f"DROP SUBSCRIPTION {quote_ident(name, what='name')} ON "
        f"{quote_ident(database, what='database')}.{quote_ident(retention_policy, what='retention_policy')}",
        method="POST",
    )


def show_subscriptions() -> Statement:
    return Statement("SHOW SUBSCRIPTIONS")


__all__ = [
    "Statement",
    "alter_retention_policy",
    "create_continuous_query",
    "create_database",
    "create_retention_policy",
    "create_subscription",
    "delete",
    "drop_continuous_query",
    "drop_database",
    "drop_measurement",
    "drop_retention_policy",
    "drop_series",
    "drop_subscription",
    "qualified_name",
    "show_continuous_queries",
    "show_databases",
    "show_field_keys",
    "show_measurements",
    "show_retention_policies",
    "show_series",
    "show_subscriptions",
    "show_tag_keys",
    "show_tag_values",
    "time_bound",
]
