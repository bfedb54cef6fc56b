"""Expressions of the query builder: columns, conditions (`&`, `|`, `~`), aggregates and bound values.

Every value a user gives goes to a `Binder` and appears in the text as `$pN`;
identifiers go through `quote_ident`. InfluxQL has no NOT operator, so `~`
is pushed down to the comparisons (De Morgan; `=` <-> `!=`, `<` <-> `>=`, `=~` <-> `!~`).
"""

from __future__ import annotations

import enum
import re
from datetime import datetime
from itertools import islice
from typing import Any, Iterable, Iterator, Union

import attrs

from ..errors import ValidationError
from ..times import to_ns
from .quoting import check_int64, check_number, check_unicode, number_literal, quote_ident

#: Casts InfluxQL accepts after `::`.
CASTS = frozenset({"field", "tag", "float", "integer", "string", "boolean"})

_NEGATED = {"=": "!=", "!=": "=", "<": ">=", ">=": "<", ">": "<=", "<=": ">", "=~": "!~", "!~": "=~"}


class Binder:
    """Collects bound parameters while one statement renders; names them p0, p1, ... in order."""

    def __init__(self) -> None:
        self.params: dict[str, Any] = {}

    def bind(self, value: Any) -> str:
        text = value.get("regex") if isinstance(value, dict) else value
        if isinstance(text, str):
            check_unicode(text, what="value")
        name = f"p{len(self.params)}"
        self.params[name] = value
        return "$" + name


@attrs.frozen
class Regex:
    """A regular expression value (Go RE2 syntax), bound as `{"regex": pattern}`."""

    pattern: str

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.pattern, str):
            raise ValidationError({"regex": [f"{self.pattern!r} is not a regular expression text"]})


def regex(pattern: str | re.Pattern[str]) -> Regex:
    """A regular expression for `where(tag=regex(...))` or `col(...).matches(...)`."""
    if isinstance(pattern, re.Pattern):
        pattern = pattern.pattern
    return Regex(pattern)


def column_text(name: str, cast: str | None = None) -> str:
    """A column reference: `time` stays the bare keyword, any other name goes through `quote_ident`."""
    text = "time" if name == "time" else quote_ident(name, what="column")
    return f"{text}::{cast}" if cast else text


def bind_value(binder: Binder, value: Any, *, what: str, time: bool = False) -> str:
    """The text for one literal value: a bound parameter (or a positional float InfluxQL can parse)."""
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, Regex):
        return binder.bind({"regex": value.pattern})
    if time:
        if isinstance(value, (datetime, str)) or (isinstance(value, int) and not isinstance(value, bool)):
            return binder.bind(to_ns(value, name=what))
        raise ValidationError({what: [f"{value!r} is not a time"]})
    if isinstance(value, bool) or isinstance(value, str):
        return binder.bind(value)
    if isinstance(value, int):
        return binder.bind(check_int64(value, what=what))
    if isinstance(value, float):
        number = check_number(value, what=what)
        # InfluxDB reads a JSON number without "." as an integer, so 1e+20 cannot be bound: spell it out.
        return binder.bind(number) if "." in repr(number) else number_literal(number, what=what)
    raise ValidationError(
        {what: [f"{value!r} is not a value InfluxQL can compare: give a str, int, float, bool or regex()"]}
    )


class Condition:
    """A boolean expression for WHERE; combine with `&`, `|` and `~` (never `and`/`or`/`not`)."""

    def __and__(self, other: "Condition") -> "Condition":
        return And(tuple(_flatten(And, (self, _check_condition(other)))))

    def __or__(self, other: "Condition") -> "Condition":
        return Or(tuple(_flatten(Or, (self, _check_condition(other)))))

    def __invert__(self) -> "Condition":
        return self.negate()

    def __bool__(self) -> bool:
        raise TypeError("use & | ~ to combine query conditions, not `and`, `or`, `not`")

    def negate(self) -> "Condition":
        raise NotImplementedError

    def render(self, binder: Binder) -> str:
        raise NotImplementedError

    def columns(self) -> Iterator[str]:
        """The names of the columns this condition compares."""
        raise NotImplementedError


def _check_condition(value: Any) -> Condition:
    if not isinstance(value, Condition):
        raise ValidationError({"where": [f"{value!r} is not a condition (build one with col(...))"]})
    return value


def _flatten(kind: type, items: Iterable[Condition]) -> Iterator[Condition]:
    for item in items:
        if isinstance(item, kind):
            yield from item.items  # type: ignore[attr-defined]
        else:
            yield item


@attrs.frozen
class Compare(Condition):
    """`column op value`."""

    column: str
    op: str
    value: Any
    cast: str | None = None

    def negate(self) -> Condition:
        return attrs.evolve(self, op=_NEGATED[self.op])

    def render(self, binder: Binder) -> str:
        value = bind_value(binder, self.value, what=self.column, time=self.column == "time")
        return f"{column_text(self.column, self.cast)} {self.op} {value}"

    def columns(self) -> Iterator[str]:
        yield self.column


@attrs.frozen
class And(Condition):
    items: tuple[Condition, ...]

    def negate(self) -> Condition:
        return Or(tuple(item.negate() for item in self.items))

    def render(self, binder: Binder) -> str:
        return "(" + " AND ".join(item.render(binder) for item in self.items) + ")"

    def columns(self) -> Iterator[str]:
        for item in self.items:
            yield from item.columns()


@attrs.frozen
class Or(Condition):
    items: tuple[Condition, ...]

    def negate(self) -> Condition:
        return And(tuple(item.negate() for item in self.items))

    def render(self, binder: Binder) -> str:
        return "(" + " OR ".join(item.render(binder) for item in self.items) + ")"

    def columns(self) -> Iterator[str]:
        for item in self.items:
            yield from item.columns()


def _check_name(name: Any, what: str) -> str:
    if not isinstance(name, str) or not name:
        raise ValidationError({what: [f"{name!r} is not a column name: give a non-empty text"]})
    return name


def _check_cast(cast: Any) -> str | None:
    if cast is not None and cast not in CASTS:
        raise ValidationError({"cast": [f"{cast!r} is not one of {sorted(CASTS)}"]})
    return cast


class Selectable:
    """Something that can stand in a SELECT list."""

    alias: str | None

    def as_(self, alias: str) -> Any:
        """The same item named `alias` in the results (`AS alias`)."""
        return attrs.evolve(self, alias=_check_name(alias, "alias"))  # type: ignore[misc]

    def render_item(self, binder: Binder) -> str:
        text = self.render_expr(binder)
        return f"{text} AS {quote_ident(self.alias, what='alias')}" if self.alias else text

    def render_expr(self, binder: Binder) -> str:
        raise NotImplementedError

    @property
    def output_name(self) -> str:
        """The name of this item's column in the results (an unaliased call is named after its function)."""
        raise NotImplementedError


@attrs.frozen
class Column(Selectable):
    """A column in a SELECT list or as an aggregate's argument."""

    name: str
    cast: str | None = None
    alias: str | None = None

    def render_expr(self, binder: Binder) -> str:
        return column_text(self.name, self.cast)

    @property
    def output_name(self) -> str:
        return self.alias or self.name


@attrs.frozen(eq=False)
class Col:
    """A column (tag or field, or `time`): comparison operators build conditions.

    `==` builds a condition, so a `Col` is never compared for equality; in a
    SELECT list it becomes a `Column` (`as_column()`, `as_(alias)`).
    """

    name: str = attrs.field(converter=lambda n: _check_name(n, "column"))
    cast: str | None = attrs.field(default=None, converter=_check_cast)

    def as_column(self) -> "Column":
        return Column(self.name, self.cast)

    def as_(self, alias: str) -> "Column":
        """This column named `alias` in the results."""
        return Column(self.name, self.cast, _check_name(alias, "alias"))

    def _compare(self, op: str, value: Any) -> Compare:
        return Compare(self.name, op, value, self.cast)

    def __eq__(self, value: Any) -> Compare:  # type: ignore[override]
        return self._compare("=", value)

    def __ne__(self, value: Any) -> Compare:  # type: ignore[override]
        return self._compare("!=", value)

    def __lt__(self, value: Any) -> Compare:
        return self._compare("<", value)

    def __le__(self, value: Any) -> Compare:
        return self._compare("<=", value)

    def __gt__(self, value: Any) -> Compare:
        return self._compare(">", value)

    def __ge__(self, value: Any) -> Compare:
        return self._compare(">=", value)

    def __hash__(self) -> int:
        return hash((Col, self.name, self.cast))

    def in_(self, values: Iterable[Any]) -> Condition:
        """`(c = v1 OR c = v2 ...)`; an empty list is refused (it would match nothing)."""
        items = _values_list(values, self.name)
        if len(items) == 1:
            return self._compare("=", items[0])
        return Or(tuple(self._compare("=", v) for v in items))

    def not_in(self, values: Iterable[Any]) -> Condition:
        """`(c != v1 AND c != v2 ...)`."""
        return self.in_(values).negate()

    def matches(self, pattern: str | re.Pattern[str] | Regex) -> Compare:
        """`c =~ /pattern/` (Go RE2 syntax; unanchored, like InfluxDB)."""
        return self._compare("=~", pattern if isinstance(pattern, Regex) else regex(pattern))

    def not_matches(self, pattern: str | re.Pattern[str] | Regex) -> Compare:
        """`c !~ /pattern/`."""
        return self._compare("!~", pattern if isinstance(pattern, Regex) else regex(pattern))

    def __repr__(self) -> str:
        return f"col({self.name!r})"


#: The most values one `in_` (or `where(x=[...])`) takes. A longer list would make a query
#: InfluxDB refuses (HTTP 431 past its header limit in a GET, or slow to parse) and take
#: long to render; split it and merge the answers of one query per part instead.
MAX_IN_VALUES = 1000


def check_in_size(values: Any, name: str, *, counted: str | None = None) -> None:
    """Refuse, before anything is rendered, a list of more than MAX_IN_VALUES values for `name`."""
    size = len(values) if hasattr(values, "__len__") else None
    if size is not None and size > MAX_IN_VALUES:
        raise ValidationError({name: [
            f"{counted or format(size, ',')} values in one condition; at most {MAX_IN_VALUES:,} are allowed: "
            f"split the list and run one query per part (or match a regex, or tag the series you want)"
        ]})


def _values_list(values: Iterable[Any], name: str) -> list[Any]:
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise ValidationError({name: [f"in_ needs a list of values, not {values!r}"]})
    check_in_size(values, name)
    items = list(islice(values, MAX_IN_VALUES + 1))
    check_in_size(items, name, counted=f"more than {MAX_IN_VALUES:,}")  # an iterator: enough to know
    if not items:
        raise ValidationError({name: ["in_ needs at least one value (an empty list would match nothing)"]})
    return items


def col(name: str, cast: str | None = None) -> Col:
    """A column by name, optionally cast (`col("value", "field")` renders `value::field`)."""
    return Col(name, cast)


Argument = Union[str, Col, "Call"]


@attrs.frozen
class Call(Selectable):
    """An aggregate or selector call such as `mean(value)` or `percentile(value, 95)`."""

    function: str
    argument: Column | Call | None  # None means `*`
    extra: tuple[int | float, ...] = ()
    alias: str | None = None

    def render_expr(self, binder: Binder) -> str:
        inner = "*" if self.argument is None else self.argument.render_expr(binder)
        extra = "".join(", " + number_literal(x, what=self.function) for x in self.extra)
        return f"{self.function}({inner}{extra})"

    @property
    def output_name(self) -> str:
        return self.alias or self.function


def _argument(function: str, argument: Any) -> Column | Call | None:
    if isinstance(argument, str) and argument == "*":
        return None
    if isinstance(argument, str) and argument:
        return Column(argument)
    if isinstance(argument, Col):
        return argument.as_column()
    if isinstance(argument, Column):
        if argument.alias:
            raise ValidationError(
                {"argument": [f"{function}() takes a column without an alias, not {argument!r}"]}
            )
        return argument
    if isinstance(argument, Call):
        return attrs.evolve(argument, alias=None)
    raise ValidationError(
        {"argument": [f"{argument!r} is not an argument of {function}(): give a column name, col() or '*'"]}
    )


def _aggregate(function: str) -> Any:
    def make(argument: Argument) -> Call:
        return Call(function, _argument(function, argument))

    make.__name__ = function
    make.__doc__ = f"`{function}(argument)`; the argument is a column name, `col(...)`, or `'*'`."
    return make


mean = _aggregate("mean")
median = _aggregate("median")
mode = _aggregate("mode")
count = _aggregate("count")
sum_ = _aggregate("sum")
min_ = _aggregate("min")
max_ = _aggregate("max")
first = _aggregate("first")
last = _aggregate("last")
spread = _aggregate("spread")
stddev = _aggregate("stddev")
distinct = _aggregate("distinct")
integral = _aggregate("integral")


def percentile(argument: Argument, n: int | float) -> Call:
    """`percentile(argument, n)` with 0 < n <= 100."""
    number = check_number(n, what="percentile")
    if not 0 < number <= 100:
        raise ValidationError({"percentile": [f"{n!r} must be greater than 0 and at most 100"]})
    return Call("percentile", _argument("percentile", argument), (number,))


def as_selectable(item: Any) -> Selectable:
    """A SELECT list item from a column name, `'*'`, `col(...)` or a call."""
    if isinstance(item, Selectable):
        return item
    if isinstance(item, Col):
        return item.as_column()
    if isinstance(item, str) and item:
        return Star() if item == "*" else Column(_check_name(item, "select"))
    raise ValidationError({"select": [f"{item!r} is not a column name, col(...) or an aggregate"]})


@attrs.frozen
class Star(Selectable):
    """`*`: every field and tag."""

    alias: None = None

    def as_(self, alias: str) -> Any:
        raise ValidationError({"alias": [f"'*' cannot be named {alias!r}"]})

    def render_expr(self, binder: Binder) -> str:
        return "*"

    @property
    def output_name(self) -> str:
        return "*"
