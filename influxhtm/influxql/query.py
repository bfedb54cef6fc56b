"""The immutable, chainable SELECT builder.

Every chained call returns a new `Query` (`attrs.evolve`), so a query can be
kept, reused and extended without surprises. `render()` is the one place that
writes text: clauses always come out in InfluxQL's order, identifiers through
`quote_ident`, values as bound parameters (`$p0`, ... with `params`).

A query does not run itself: bound to an executor (the repository) with
`bind()`, iteration, `all()`, `first()`, `count()`, `exists()` and
`to_dataframe()` delegate to it.
"""

from __future__ import annotations

import enum
import zoneinfo
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, AsyncIterator, Generic, Iterable, Iterator, Protocol, TypeVar, cast

import attrs

from influxhtm.core.errors import InfluxHtmError, ValidationError
from influxhtm.core.times import (
    duration_ns,
    format_duration,
    is_duration,
    now_ns,
    parse_duration,
    timedelta_to_ns,
    to_ns,
)
from influxhtm.influxql import expressions as ex
from influxhtm.influxql.declared import ClassInfo, describe_class
from influxhtm.influxql.quoting import check_number, count_literal, number_literal, quote_ident

FILL_WORDS = ("none", "null", "previous", "linear")
#: LIMIT/SLIMIT rendered with an offset when no limit was asked for (see `render`).
NO_LIMIT = 2**62  # (not 2**63 - 1: InfluxDB adds the offset to it and overflows)
TimeArg = datetime | int | str | timedelta
#: What iterating a query gives: a declared class for `repo.query()`, `Row` once it selects or groups;
#: `Any` for a query made with `Query()` (type checkers read the default from typing_extensions).
if TYPE_CHECKING:
    from typing_extensions import TypeVar as DefaultTypeVar

    T = DefaultTypeVar("T", default=Any)
else:
    T = TypeVar("T")


class Row(Protocol):
    """The type checkers' view of a computed row (a query with `select`, `group_by` or
    `group_by_time`): `time` is an aware UTC datetime, and every other result column is an
    attribute named after it (its alias, function name or column name; see `Repository`).

    At run time a row is a frozen attrs class made for its columns (or, for a `select` that
    names every column the class requires, an instance of the class, which has the same
    attributes); `getattr(row, name)` reads a column whose name is not a Python identifier."""

    @property
    def time(self) -> datetime: ...

    def __getattr__(self, name: str) -> Any: ...


class QueryExecutor(Protocol):
    """What a repository offers a bound query."""

    def iter_query(self, query: "Query") -> Iterator[Any]: ...
    def all(self, query: "Query") -> list[Any]: ...
    def first(self, query: "Query") -> Any: ...
    def count(self, query: "Query") -> int: ...
    def exists(self, query: "Query") -> bool: ...
    def to_dataframe(self, query: "Query") -> Any: ...
    def iter_rows(
        self, query: "Query", columns: tuple[str, ...], chunk_size: int
    ) -> Iterator[tuple[Any, ...]]: ...


@attrs.frozen
class TimeBound:
    """A time bound: absolute nanoseconds, or nanoseconds before now (`ago`), resolved by the server."""

    ns: int | None = None
    ago: int | None = None

    def resolve(self, now: int | None = None) -> int:
        if self.ns is not None:
            return self.ns
        return (now_ns() if now is None else now) - (self.ago or 0)

    def render(self, binder: ex.Binder) -> str:
        if self.ns is not None:
            return binder.bind(self.ns)
        ago = self.ago or 0
        sign = "-" if ago >= 0 else "+"
        return f"now() {sign} " + binder.bind({"duration": format_duration(abs(ago)) if ago else "0s"})


def time_bound(value: TimeArg, *, what: str) -> TimeBound:
    """A bound from an aware/naive datetime, int ns, ISO text, a timedelta or duration text (before now)."""
    if isinstance(value, timedelta):
        return TimeBound(ago=timedelta_to_ns(value))
    if isinstance(value, str) and is_duration(value):
        return TimeBound(ago=parse_duration(value, name=what))
    return TimeBound(ns=to_ns(value, name=what))


def _signed_duration_text(ns: int) -> str:
    return ("-" if ns < 0 else "") + format_duration(abs(ns))


@attrs.frozen
class Into:
    measurement: str
    database: str | None = None
    retention_policy: str | None = None


def qualified_name(measurement: str, database: str | None, retention_policy: str | None) -> str:
    """`"db"."rp"."m"`, `"db".."m"`, `"rp"."m"` or `"m"`, each part quoted as needed."""
    name = quote_ident(measurement, what="measurement")
    if database:
        rp = quote_ident(retention_policy, what="retention_policy") if retention_policy else ""
        return f"{quote_ident(database, what='database')}.{rp}.{name}"
    if retention_policy:
        return f"{quote_ident(retention_policy, what='retention_policy')}.{name}"
    return name


@attrs.frozen
class Query(Generic[T]):
    """An InfluxQL SELECT statement; build it by chaining, read it with `str(q)` and `q.params`
    (for a bound, time-grouped query, `q.statement()` is what iterating it sends).

    For type checkers a query is `Query[T]`, `T` what iterating it gives: `repo.query()` of a
    `Repository[Climate]` is a `Query[Climate]`; `select`, `group_by`, `group_by_time` and
    `into` make it a `Query[Row]` (computed rows); every other call keeps `T`."""

    select_items: tuple[ex.Selectable, ...] = ()
    measurement: str | None = None
    database: str | None = None
    retention_policy: str | None = None
    model_class: Any = None
    into_target: Into | None = None
    conditions: tuple[ex.Condition, ...] = ()
    lower: TimeBound | None = None
    upper: TimeBound | None = None
    #: Whether `upper` is inclusive (`until`: time <= t) or exclusive (`before`: time < t).
    upper_inclusive: bool = True
    interval: int | None = None
    interval_offset: int | None = None
    group_tags: tuple[str, ...] = ()
    fill_value: str | int | float | None = None
    order: str | None = None
    limit_value: int | None = None
    offset_value: int | None = None
    slimit_value: int | None = None
    soffset_value: int | None = None
    timezone: str | None = None
    executor: Any = attrs.field(default=None, eq=False, repr=False)

    # -- building ------------------------------------------------------------
    def select(self, *items: str | ex.Selectable) -> "Query[Row]":
        """Replace the SELECT list: names, `col(...)`, calls (`mean("v").as_("avg")`), arithmetic, `'*'`."""
        selected = tuple(ex.as_selectable(item) for item in items)
        return _rows(attrs.evolve(self, select_items=self._resolved(selected, "select")))

    def from_(
        self, source: Any, *, database: str | None = None, retention_policy: str | None = None
    ) -> "Query[T]":
        """FROM a measurement name or a declared class, optionally with database and retention policy."""
        model_class = None
        if isinstance(source, str):
            measurement = source
        else:
            info = describe_class(source)
            measurement, model_class = info.measurement, source
            retention_policy = retention_policy or info.retention_policy
        quote_ident(measurement, what="measurement")
        for value, what in ((database, "database"), (retention_policy, "retention_policy")):
            if value is not None:
                quote_ident(value, what=what)
        query = attrs.evolve(
            self,
            measurement=measurement,
            database=database,
            retention_policy=retention_policy,
            model_class=model_class,
        )
        return query._checked() if model_class is not None else query

    # -- names checked against the declared class -----------------------------------
    def _resolver(self, what: str) -> ex.Resolver | None:
        info = self.class_info
        if info is None:
            return None
        return lambda name: info.resolve(name, what=what)

    def _resolved(self, items: tuple[Any, ...], what: str) -> tuple[Any, ...]:
        """`items` (select items or conditions) with their checked column names resolved: on a
        query of a declared class an undeclared name raises, an attribute name becomes its key."""
        resolve = self._resolver(what)
        return items if resolve is None else tuple(item.map_names(resolve) for item in items)

    def _resolved_tags(self, tags: tuple[str, ...]) -> tuple[str, ...]:
        resolve = self._resolver("group_by")
        return tags if resolve is None else tuple(t if t == "*" else resolve(t) for t in tags)

    def _checked(self) -> "Query[T]":
        """Every name given before `from_(Cls)` checked against the class."""
        return attrs.evolve(
            self,
            select_items=self._resolved(self.select_items, "select"),
            conditions=self._resolved(self.conditions, "where"),
            group_tags=self._resolved_tags(self.group_tags),
        )

    def into(
        self, measurement: str, *, database: str | None = None, retention_policy: str | None = None
    ) -> "Query[Row]":
        """INTO a measurement (for continuous queries and downsampling).

        Without `retention_policy`, a query of a declared class (`from_(Cls)`) writes into the
        retention policy the class declares, as its own writes do; else into the default one.
        """
        quote_ident(measurement, what="into")
        return _rows(attrs.evolve(self, into_target=Into(measurement, database, retention_policy)))

    def _declared_policy(self) -> str | None:
        """The retention policy declared by the class the query reads (`from_(Cls)`), if any: where
        `INTO` writes unless `into(..., retention_policy=...)` names another."""
        info = self.class_info
        return info.retention_policy if info is not None else None

    @property
    def class_info(self) -> ClassInfo | None:
        """What the declared class (if `from_(Cls)` was used) says about names, tags and fields."""
        return describe_class(self.model_class) if self.model_class is not None else None

    def where(self, *conditions: ex.Condition, **tags: Any) -> "Query[T]":
        """AND conditions: `col(...)` expressions, and `tag=value` (a list means any of; regex() matches)."""
        added: list[ex.Condition] = []
        for condition in conditions:
            if not isinstance(condition, ex.Condition):
                raise ValidationError(
                    {"where": [f"{condition!r} is not a condition (build one with col(...))"]}
                )
            added.append(condition)
        for name, value in tags.items():
            column = ex.col(name)
            if isinstance(value, (list, tuple, set, frozenset)):
                ex.check_in_size(value, column.name)
                values = sorted(value, key=repr) if isinstance(value, (set, frozenset)) else value
                added.append(column.in_(values))
            elif isinstance(value, ex.Regex):
                added.append(column.matches(value))
            else:
                added.append(column == value)
        return attrs.evolve(self, conditions=self.conditions + self._resolved(tuple(added), "where"))

    def since(self, t: TimeArg | None) -> "Query[T]":
        """Only points at or after `t` (`time >= t`, inclusive); None removes the bound."""
        return attrs.evolve(self, lower=None if t is None else time_bound(t, what="since"))

    def until(self, t: TimeArg | None) -> "Query[T]":
        """Only points at or before `t` (`time <= t`, inclusive, as `since`); None removes the bound."""
        return attrs.evolve(
            self, upper=None if t is None else time_bound(t, what="until"), upper_inclusive=True
        )

    def before(self, t: TimeArg | None) -> "Query[T]":
        """Only points before `t` (`time < t`, exclusive); None removes the bound."""
        return attrs.evolve(
            self, upper=None if t is None else time_bound(t, what="before"), upper_inclusive=False
        )

    def between(self, start: TimeArg, end: TimeArg) -> "Query[T]":
        """`since(start).until(end)`: both ends inclusive (as SQL BETWEEN)."""
        return self.since(start).until(end)

    def within(
        self, since: TimeArg | None = None, until: TimeArg | None = None, before: TimeArg | None = None
    ) -> "Query[T]":
        """`since` and `until` (both inclusive) or `before` (exclusive); None leaves that side as it is."""
        if until is not None and before is not None:
            raise ValidationError({"before": ["give until (inclusive) or before (exclusive), not both"]})
        query = self if since is None else self.since(since)
        if until is not None:
            query = query.until(until)
        return query if before is None else query.before(before)

    def with_time_bounds(self, lo_ns: int | None, hi_ns: int | None) -> "Query[T]":
        """Set absolute bounds in ns: `lo_ns` inclusive, `hi_ns` EXCLUSIVE (`before`); None keeps that side.

        The counterpart of `time_range()`, whose upper end is exclusive too.
        """
        query = self
        if lo_ns is not None:
            query = attrs.evolve(query, lower=TimeBound(ns=to_ns(lo_ns, name="lo_ns")))
        if hi_ns is not None:
            query = query.before(to_ns(hi_ns, name="hi_ns"))
        return query

    def group_by_time(self, interval: str | timedelta, offset: str | timedelta | None = None) -> "Query[Row]":
        """GROUP BY time(interval[, offset]); the offset may be negative (`"-15m"`)."""
        ns = duration_ns(interval, what="interval")
        off = None if offset is None else duration_ns(offset, what="offset", signed=True)
        return _rows(attrs.evolve(self, interval=ns, interval_offset=off))

    def group_by(self, *tags: str) -> "Query[Row]":
        """GROUP BY these tags (replacing earlier ones); `'*'` groups by every tag."""
        for tag in tags:
            if tag != "*":
                quote_ident(tag, what="group_by")
        return _rows(attrs.evolve(self, group_tags=self._resolved_tags(tags)))

    def fill(self, value: str | int | float | None) -> "Query[T]":
        """fill(none|null|previous|linear|<number>), 0 included; None removes the clause."""
        if value is None:
            return attrs.evolve(self, fill_value=None)
        if isinstance(value, str):
            if value.lower() not in FILL_WORDS:
                words = ", ".join(FILL_WORDS)
                raise ValidationError({"fill": [f"{value!r} is not one of {words} or a number"]})
            return attrs.evolve(self, fill_value=value.lower())
        if isinstance(value, enum.Enum):
            return self.fill(value.value)
        return attrs.evolve(self, fill_value=check_number(value, what="fill"))

    def order_by(self, column: str = "time", direction: str = "asc") -> "Query[T]":
        """ORDER BY time ASC|DESC (InfluxDB 1.x orders by time only)."""
        if column != "time":
            raise ValidationError({"order_by": [f"{column!r}: InfluxDB 1.x can only order by 'time'"]})
        if not isinstance(direction, str) or direction.lower() not in ("asc", "desc"):
            raise ValidationError({"direction": [f"{direction!r} is not 'asc' or 'desc'"]})
        return attrs.evolve(self, order=direction.upper())

    def limit(self, n: int | None) -> "Query[T]":
        """At most n points per series (n >= 1; None removes it: LIMIT 0 would mean no limit)."""
        return attrs.evolve(self, limit_value=_count(n, "limit", 1))

    def offset(self, n: int | None) -> "Query[T]":
        """Skip n points per series."""
        return attrs.evolve(self, offset_value=_count(n, "offset", 0))

    def slimit(self, n: int | None) -> "Query[T]":
        """At most n series."""
        return attrs.evolve(self, slimit_value=_count(n, "slimit", 1))

    def soffset(self, n: int | None) -> "Query[T]":
        """Skip n series."""
        return attrs.evolve(self, soffset_value=_count(n, "soffset", 0))

    def tz(self, name: str | None) -> "Query[T]":
        """Return times in this IANA time zone (`tz('Europe/Berlin')`); None removes it."""
        if name is not None:
            try:
                zoneinfo.ZoneInfo(name)
            except (ValueError, TypeError, zoneinfo.ZoneInfoNotFoundError):
                raise ValidationError({"tz": [f"{name!r} is not a known IANA time zone"]}) from None
        return attrs.evolve(self, timezone=name)

    # -- what the repository needs ---------------------------------------------
    @property
    def has_lower_time_bound(self) -> bool:
        return self.lower is not None or self._time_condition((">", ">="))

    @property
    def has_upper_time_bound(self) -> bool:
        return self.upper is not None or self._time_condition(("<", "<="))

    def _time_condition(self, ops: tuple[str, ...]) -> bool:
        for condition in self.conditions:
            items = condition.items if isinstance(condition, ex.And) else (condition,)
            for item in items:
                if isinstance(item, ex.Compare) and item.column == "time" and item.op in ops:
                    return True
        return False

    def time_range(self, now: int | None = None) -> tuple[int | None, int | None]:
        """(lo, hi) in ns, `lo` INCLUSIVE and `hi` EXCLUSIVE, relative bounds resolved at `now`.

        An inclusive `until(t)` gives `hi = t + 1`, a `before(t)` gives `hi = t`, so
        `with_time_bounds(*q.time_range())` selects the same points as `q`.
        """
        now = now_ns() if now is None else now
        hi = None
        if self.upper is not None:
            hi = self.upper.resolve(now) + (1 if self.upper_inclusive else 0)
        return (self.lower.resolve(now) if self.lower else None, hi)

    @property
    def is_aggregate(self) -> bool:
        """True when the SELECT list holds calls or arithmetic (rows are computed, not stored points)."""
        return any(isinstance(item, (ex.Call, ex.BinaryOp)) for item in self.select_items)

    @property
    def output_names(self) -> tuple[str, ...]:
        """The column names of the results, after `time` (aliases, function names, column names)."""
        return tuple(item.output_name for item in self.select_items)

    # -- rendering ----------------------------------------------------------------
    def render(self) -> tuple[str, dict[str, Any]]:
        """(InfluxQL text, bound parameters): the only place a query becomes text."""
        if self.measurement is None:
            raise ValidationError({"from_": ["the query has no measurement: call from_(...)"]})
        binder = ex.Binder()
        items = self.select_items or (ex.Star(),)
        parts = ["SELECT " + ", ".join(item.render_item(binder) for item in items)]
        if self.into_target is not None:
            t = self.into_target
            policy = t.retention_policy or self._declared_policy()
            parts.append("INTO " + qualified_name(t.measurement, t.database, policy))
        parts.append("FROM " + qualified_name(self.measurement, self.database, self.retention_policy))
        where = self.render_where(binder)
        if where:
            parts.append("WHERE " + where)
        groups = []
        if self.interval is not None:
            offset = ""
            if self.interval_offset is not None:
                offset = ", " + _signed_duration_text(self.interval_offset)
            groups.append(f"time({format_duration(self.interval)}{offset})")
        groups.extend("*" if tag == "*" else quote_ident(tag, what="group_by") for tag in self.group_tags)
        if groups:
            parts.append("GROUP BY " + ", ".join(groups))
        if self.fill_value is not None:
            fill = self.fill_value if isinstance(self.fill_value, str) else number_literal(self.fill_value)
            parts.append(f"fill({fill})")
        if self.order is not None:
            parts.append(f"ORDER BY time {self.order}")
        # InfluxDB 1.6 answers OFFSET without LIMIT with one point, and SOFFSET without SLIMIT with
        # nothing: an offset always comes with a limit, the largest one when none was asked for.
        limit, slimit = self.limit_value, self.slimit_value
        if limit is None and self.offset_value:
            limit = NO_LIMIT
        if slimit is None and self.soffset_value:
            slimit = NO_LIMIT
        for word, value in (
            ("LIMIT", limit),
            ("OFFSET", self.offset_value),
            ("SLIMIT", slimit),
            ("SOFFSET", self.soffset_value),
        ):
            if value is not None:
                parts.append(f"{word} {value}")
        if self.timezone is not None:
            parts.append(f"tz({binder.bind(self.timezone)})")
        return " ".join(parts), binder.params

    def render_where(self, binder: ex.Binder, *, with_time: bool = True) -> str:
        """The WHERE condition text (without the keyword), or "" when there is none."""
        terms = [condition.render(binder) for condition in self.conditions]
        if with_time and self.lower is not None:
            terms.append("time >= " + self.lower.render(binder))
        if with_time and self.upper is not None:
            terms.append(("time <= " if self.upper_inclusive else "time < ") + self.upper.render(binder))
        return " AND ".join(terms)

    def __str__(self) -> str:
        return self.render()[0]

    @property
    def text(self) -> str:
        return self.render()[0]

    @property
    def params(self) -> dict[str, Any]:
        return self.render()[1]

    # -- execution, delegated ---------------------------------------------------------
    def statement(self) -> "Query[T]":
        """The query exactly as iterating it sends it: `str(q.statement())` and `.params`.

        For a bound, time-grouped query this asks the server for the data's first and last
        time and sets the OPEN ends to them (see `InfluxHtmClient.bounded`); explicit ends are
        kept. An unbound query, or one without `group_by_time`, is sent as it is.
        """
        return self if self.executor is None else self.executor.statement(self)

    def bind(self, executor: QueryExecutor | None) -> "Query[T]":
        """This query bound to an executor (a repository) that runs it."""
        return attrs.evolve(self, executor=executor)

    def _executor(self) -> QueryExecutor:
        if self.executor is None:
            raise InfluxHtmError("query is not bound to a repository; use repo.query()")
        return self.executor

    def __iter__(self) -> Iterator[T]:
        return iter(self._executor().iter_query(self))

    def __aiter__(self) -> AsyncIterator[T]:
        """`async for row in q`: a query bound to an async repository (`AsyncInfluxHtmClient`)."""
        aiter_query = getattr(self._executor(), "aiter_query", None)
        if aiter_query is None:
            raise InfluxHtmError("query is bound to a sync repository: iterate it with a plain `for`")
        result: AsyncIterator[T] = aiter_query(self)
        return result

    def all(self) -> list[T]:
        return self._executor().all(self)

    def first(self) -> T | None:
        return self._executor().first(self)

    def count(self) -> int:
        return self._executor().count(self)

    def exists(self) -> bool:
        return self._executor().exists(self)

    def to_dataframe(self) -> Any:
        return self._executor().to_dataframe(self)

    def rows(self, *columns: str, chunk_size: int = 10_000) -> Iterator[tuple[Any, ...]]:
        """The answer as plain tuples `(time, *columns)`, streamed in chunks of `chunk_size` rows.

        The time is the exact integer nanoseconds the server holds (a typed row or object
        holds a datetime, which keeps microseconds); a column the answer lacks is None. The
        form for readers that need exact times or no objects: sensors, runners, polls.
        """
        return self._executor().iter_rows(self, columns, chunk_size)


def _rows(query: Query[Any]) -> Query[Row]:
    """The same query, seen by type checkers as giving computed rows."""
    return cast("Query[Row]", query)


def _count(n: Any, what: str, minimum: int) -> int | None:
    if n is None:
        return None
    hint = " (LIMIT 0 means no limit in InfluxDB: pass None)" if minimum == 1 and n == 0 else ""
    try:
        return int(count_literal(n, what=what, minimum=minimum))
    except ValidationError as error:
        if hint:
            raise ValidationError({what: [f"{n!r} must be at least 1{hint}"]}) from None
        raise error


def select(*items: str | ex.Selectable) -> Query[Row]:
    """`Query().select(...)`."""
    return Query().select(*items)


def conditions_columns(conditions: Iterable[ex.Condition]) -> set[str]:
    """Every column compared in these conditions."""
    return {name for condition in conditions for name in condition.columns()}
