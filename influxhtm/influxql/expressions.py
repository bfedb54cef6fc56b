"""Expressions of the query builder: columns, conditions (`&`, `|`, `~`), aggregates and bound values.

Every value a user gives goes to a `Binder` and appears in the text as `$pN`;
identifiers go through `quote_ident`. InfluxQL has no NOT operator, so `~`
is pushed down to the comparisons (De Morgan; `=` <-> `!=`, `<` <-> `>=`, `=~` <-> `!~`).
"""

from __future__ import annotations

import enum
import re
from datetime import datetime, timedelta
from itertools import islice
from typing import Any, Callable, Iterable, Iterator, Mapping, Protocol, Union

import attrs

from influxhtm.core.errors import ValidationError
from influxhtm.core.times import duration_ns, format_duration, to_ns
from influxhtm.influxql.quoting import check_int64, check_number, check_unicode, number_literal, quote_ident

#: Casts InfluxQL accepts after `::`.
CASTS = frozenset({"field", "tag", "float", "integer", "string", "boolean"})

#: Maps a column name to the InfluxDB key it stands for, or raises ValidationError (see `Query`).
Resolver = Callable[[str], str]

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


_PARAMETER_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def bound_parameters(params: Mapping[str, Any] | None) -> dict[str, Any]:
    """The parameters of a hand-written statement (`$name` in its text), each checked as the
    builder's own values are: a str, int, float, bool, enum, `regex()`, a datetime (bound as
    nanoseconds) or a timedelta (a duration). Lists, dicts and None are refused: a value is
    never formatted into the text."""
    if params is None:
        return {}
    if not isinstance(params, Mapping):
        raise ValidationError({"params": [f"{params!r} is not a mapping of parameter names to values"]})
    out: dict[str, Any] = {}
    for name, value in params.items():
        if not isinstance(name, str) or not _PARAMETER_NAME.fullmatch(name):
            raise ValidationError({"params": [f"{name!r} is not a parameter name (letters, digits, _)"]})
        if isinstance(value, timedelta):
            out[name] = {"duration": format_duration(duration_ns(value, what=name))}
            continue
        binder = Binder()
        bind_value(binder, value, what=name, time=isinstance(value, datetime))
        if not binder.params:
            raise ValidationError(
                {name: [f"{value!r} cannot be bound exactly (JSON would write it with an exponent)"]}
            )
        out[name] = binder.params["p0"]
    return out


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

    def map_names(self, resolve: Resolver) -> "Condition":
        """This condition with each checked column name resolved (see `Query` name checking)."""
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
    checked: bool = True

    def map_names(self, resolve: Resolver) -> Condition:
        return attrs.evolve(self, column=resolve(self.column)) if self.checked else self

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

    def map_names(self, resolve: Resolver) -> Condition:
        return And(tuple(item.map_names(resolve) for item in self.items))

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

    def map_names(self, resolve: Resolver) -> Condition:
        return Or(tuple(item.map_names(resolve) for item in self.items))

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


def _check_column_name(name: Any) -> str:
    return _check_name(name, "column")


def _check_cast(cast: Any) -> str | None:
    if cast is not None and cast not in CASTS:
        raise ValidationError({"cast": [f"{cast!r} is not one of {sorted(CASTS)}"]})
    return cast


class Arithmetic:
    """`+ - * / %` build `BinaryOp` expressions (`col("t") * 1.8 + 32`)."""

    def __add__(self, other: Any) -> "BinaryOp":
        return arithmetic(self, "+", other)

    def __radd__(self, other: Any) -> "BinaryOp":
        return arithmetic(other, "+", self)

    def __sub__(self, other: Any) -> "BinaryOp":
        return arithmetic(self, "-", other)

    def __rsub__(self, other: Any) -> "BinaryOp":
        return arithmetic(other, "-", self)

    def __mul__(self, other: Any) -> "BinaryOp":
        return arithmetic(self, "*", other)

    def __rmul__(self, other: Any) -> "BinaryOp":
        return arithmetic(other, "*", self)

    def __truediv__(self, other: Any) -> "BinaryOp":
        return arithmetic(self, "/", other)

    def __rtruediv__(self, other: Any) -> "BinaryOp":
        return arithmetic(other, "/", self)

    def __mod__(self, other: Any) -> "BinaryOp":
        return arithmetic(self, "%", other)

    def __rmod__(self, other: Any) -> "BinaryOp":
        return arithmetic(other, "%", self)


class Selectable(Arithmetic):
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

    def map_names(self, resolve: Resolver) -> "Selectable":
        """This item with each checked column name resolved (see `Query` name checking)."""
        return self


@attrs.frozen
class Column(Selectable):
    """A column in a SELECT list or as an aggregate's argument."""

    name: str
    cast: str | None = None
    alias: str | None = None
    checked: bool = True

    def render_expr(self, binder: Binder) -> str:
        return column_text(self.name, self.cast)

    def map_names(self, resolve: Resolver) -> Selectable:
        return attrs.evolve(self, name=resolve(self.name)) if self.checked else self

    @property
    def output_name(self) -> str:
        return self.alias or self.name


@attrs.frozen(eq=False)
class Col(Arithmetic):
    """A column (tag or field, or `time`): comparison operators build conditions.

    `==` builds a condition, so a `Col` is never compared for equality; in a
    SELECT list it becomes a `Column` (`as_column()`, `as_(alias)`).
    """

    name: str = attrs.field(converter=_check_column_name)
    cast: str | None = attrs.field(default=None, converter=_check_cast)
    checked: bool = True

    def as_column(self) -> "Column":
        return Column(self.name, self.cast, checked=self.checked)

    def as_(self, alias: str) -> "Column":
        """This column named `alias` in the results."""
        return Column(self.name, self.cast, _check_name(alias, "alias"), self.checked)

    def _compare(self, op: str, value: Any) -> Compare:
        return Compare(self.name, op, value, self.cast, self.checked)

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
        return hash((Col, self.name, self.cast, self.checked))

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


def col(name: str, cast: str | None = None, *, checked: bool = True) -> Col:
    """A column by name, optionally cast (`col("value", "field")` renders `value::field`).

    On a query of a declared class the name must be one of its columns (or `time`);
    `checked=False` is the escape for a column the class does not declare.
    """
    return Col(name, cast, checked)


Argument = Union[str, Col, "Selectable", int, float]
DurationArg = Union[str, timedelta, int]


@attrs.frozen
class Literal(Selectable):
    """A validated constant inside an expression (a number, a duration, a fixed word); never user text."""

    text: str
    alias: None = None

    def render_expr(self, binder: Binder) -> str:
        return self.text

    @property
    def output_name(self) -> str:
        return ""


def number_operand(value: int | float, *, what: str) -> Literal:
    """A number in an expression; a negative one in parentheses (`t * (-1.5)`)."""
    text = number_literal(value, what=what)
    return Literal(f"({text})" if text.startswith("-") else text)


#: Binding strength of the arithmetic operators (higher binds tighter), as in InfluxQL.
_PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2, "%": 2}


@attrs.frozen
class BinaryOp(Selectable):
    """`left op right` in a SELECT list or as a function's argument (`col("t") * 1.8 + 32`)."""

    left: Selectable
    op: str
    right: Selectable
    alias: str | None = None

    def render_expr(self, binder: Binder) -> str:
        return f"{self._side(self.left, binder, False)} {self.op} {self._side(self.right, binder, True)}"

    def _side(self, side: Selectable, binder: Binder, right: bool) -> str:
        text = side.render_expr(binder)
        if isinstance(side, BinaryOp):
            inner, outer = _PRECEDENCE[side.op], _PRECEDENCE[self.op]
            if inner < outer or (right and inner == outer):
                return f"({text})"
        return text

    @property
    def output_name(self) -> str:
        """InfluxDB names an unaliased expression after its columns and calls, joined by `_`."""
        if self.alias:
            return self.alias
        return "_".join(name for name in (self.left.output_name, self.right.output_name) if name)

    def map_names(self, resolve: Resolver) -> Selectable:
        return attrs.evolve(self, left=self.left.map_names(resolve), right=self.right.map_names(resolve))


def arithmetic(left: Any, op: str, right: Any) -> BinaryOp:
    """`left op right`; each side a column, a call, an expression or a number."""
    return BinaryOp(_operand(left, op), op, _operand(right, op))


def _operand(value: Any, op: str) -> Selectable:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return number_operand(value, what=op)
    if isinstance(value, Col):
        return value.as_column()
    if isinstance(value, Selectable) and not isinstance(value, Star):
        return attrs.evolve(value, alias=None) if value.alias else value  # type: ignore[misc]
    raise ValidationError(
        {op: [f"{value!r} cannot stand in arithmetic: give col(...), a function call or a number"]}
    )


@attrs.frozen
class Call(Selectable):
    """A call of an InfluxQL function: `mean(value)`, `percentile(value, 95)`, `derivative(mean(v), 1m)`."""

    function: str
    arguments: tuple[Selectable, ...]
    alias: str | None = None

    def render_expr(self, binder: Binder) -> str:
        return f"{self.function}({', '.join(a.render_expr(binder) for a in self.arguments)})"

    @property
    def output_name(self) -> str:
        return self.alias or self.function

    def map_names(self, resolve: Resolver) -> Selectable:
        return attrs.evolve(self, arguments=tuple(a.map_names(resolve) for a in self.arguments))


def _argument(function: str, argument: Any, *, star: bool) -> Selectable:
    """A function's expression argument: a column name, `col(...)`, a call, arithmetic, `'*'`."""
    if isinstance(argument, str) and argument == "*" and star:
        return Star()
    if isinstance(argument, str) and argument:
        return Column(argument)
    if isinstance(argument, Col):
        return argument.as_column()
    if isinstance(argument, Column) and argument.alias:
        raise ValidationError(
            {"argument": [f"{function}() takes a column without an alias, not {argument!r}"]}
        )
    if isinstance(argument, Selectable) and not isinstance(argument, Star):
        return attrs.evolve(argument, alias=None) if argument.alias else argument  # type: ignore[misc]
    raise ValidationError(
        {
            "argument": [
                f"{argument!r} is not an argument of {function}(): give a column, col(...), a call or '*'"
            ]
        }
    )


# -- the function table ---------------------------------------------------------------------------
def _unit(function: str, name: str, value: Any) -> str:
    return format_duration(duration_ns(value, what=f"{function}.{name}"))


def _int_at_least(minimum: int) -> Callable[[str, str, Any], str]:
    def check(function: str, name: str, value: Any) -> str:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValidationError({f"{function}.{name}": [f"{value!r} is not a whole number"]})
        if value < minimum:
            raise ValidationError({f"{function}.{name}": [f"{value!r} must be at least {minimum}"]})
        return str(check_int64(value, what=f"{function}.{name}"))

    return check


def _number(function: str, name: str, value: Any) -> str:
    return number_operand(value, what=f"{function}.{name}").text


def _percent(function: str, name: str, value: Any) -> str:
    number = check_number(value, what=f"{function}.{name}")
    if not 0 < number <= 100:
        raise ValidationError({function: [f"{value!r} must be greater than 0 and at most 100"]})
    return number_literal(number)


def _word(*words: str) -> Callable[[str, str, Any], str]:
    def check(function: str, name: str, value: Any) -> str:
        if value not in words:
            raise ValidationError({f"{function}.{name}": [f"{value!r} is not one of {', '.join(words)}"]})
        return f"'{value}'"

    return check


@attrs.frozen
class Param:
    """A constant parameter after a function's expression arguments; `default` stands in for a
    left-out optional one that a later one follows."""

    name: str
    check: Callable[[str, str, Any], str]
    required: bool = True
    default: str | None = None


@attrs.frozen
class Signature:
    kind: str
    columns: int = 1
    params: tuple[Param, ...] = ()
    tags: bool = False  # top/bottom: tag keys between the field and N


_UNIT = (Param("unit", _unit, required=False),)
_N1 = (Param("n", _int_at_least(1)),)
_HOLD = Param("hold_period", _int_at_least(0), required=False, default="-1")
_EMA = (Param("period", _int_at_least(1)), _HOLD, Param("warmup_type", _word("exponential", "simple"), False))
_AGG, _SEL, _TRANS, _PRED, _TA = (
    "aggregation",
    "selector",
    "transformation",
    "prediction",
    "technical analysis",
)

#: Every function InfluxDB 1.6 accepts, with the constant parameters each takes (checked here;
#: which argument may be an aggregate and which needs GROUP BY time is left to the server).
FUNCTIONS: dict[str, Signature] = {
    **{
        name: Signature(_AGG)
        for name in ("count", "distinct", "mean", "median", "mode", "spread", "stddev", "sum")
    },
    "integral": Signature(_AGG, params=_UNIT),
    **{name: Signature(_SEL) for name in ("first", "last", "max", "min")},
    "bottom": Signature(_SEL, params=_N1, tags=True),
    "top": Signature(_SEL, params=_N1, tags=True),
    "percentile": Signature(_SEL, params=(Param("n", _percent),)),
    "sample": Signature(_SEL, params=_N1),
    **{
        name: Signature(_TRANS)
        for name in (
            "abs",
            "acos",
            "asin",
            "atan",
            "ceil",
            "cos",
            "cumulative_sum",
            "difference",
            "exp",
            "floor",
            "ln",
            "log2",
            "log10",
            "non_negative_difference",
            "round",
            "sin",
            "sqrt",
            "tan",
        )
    },
    "atan2": Signature(_TRANS, columns=2),
    "log": Signature(_TRANS, params=(Param("base", _number),)),
    "pow": Signature(_TRANS, params=(Param("exponent", _number),)),
    "derivative": Signature(_TRANS, params=_UNIT),
    "non_negative_derivative": Signature(_TRANS, params=_UNIT),
    "elapsed": Signature(_TRANS, params=_UNIT),
    "moving_average": Signature(_TRANS, params=(Param("n", _int_at_least(2)),)),
    "holt_winters": Signature(
        _PRED, params=(Param("n", _int_at_least(1)), Param("seasonal", _int_at_least(0)))
    ),
    "holt_winters_with_fit": Signature(
        _PRED, params=(Param("n", _int_at_least(1)), Param("seasonal", _int_at_least(0)))
    ),
    **{
        name: Signature(_TA, params=_EMA)
        for name in (
            "exponential_moving_average",
            "double_exponential_moving_average",
            "triple_exponential_moving_average",
            "triple_exponential_derivative",
            "relative_strength_index",
        )
    },
    "kaufmans_efficiency_ratio": Signature(_TA, params=(Param("period", _int_at_least(1)), _HOLD)),
    "kaufmans_adaptive_moving_average": Signature(_TA, params=(Param("period", _int_at_least(1)), _HOLD)),
    "chande_momentum_oscillator": Signature(
        _TA,
        params=(
            Param("period", _int_at_least(1)),
            _HOLD,
            Param("warmup_type", _word("none", "exponential", "simple"), False),
        ),
    ),
}


def call(function: str, *args: Any, **named: Any) -> Call:
    """A call of the InfluxQL function `function` (see `FUNCTIONS`), its arguments checked.

    Expression arguments first (a column name, `col(...)`, a call, arithmetic), then the
    constant parameters, by position or by name; top/bottom take `(field, n, *tags)`.
    """
    signature = FUNCTIONS.get(function)
    if signature is None:
        raise ValidationError({"function": [f"{function!r} is not an InfluxQL function of InfluxDB 1.6"]})
    if len(args) < signature.columns:
        raise ValidationError({function: [f"{function}() needs {signature.columns} expression argument(s)"]})
    star = signature.columns == 1
    arguments = [_argument(function, a, star=star) for a in args[: signature.columns]]
    rest = list(args[signature.columns :])
    tags: list[Selectable] = []
    if signature.tags and len(rest) > 1:
        tags = [_tag_argument(function, t) for t in rest[1:]]
        rest = rest[:1]
    return Call(function, tuple(arguments + tags + _params(function, signature.params, rest, named)))


def _tag_argument(function: str, tag: Any) -> Selectable:
    if isinstance(tag, Col):
        return tag.as_column()
    if isinstance(tag, str) and tag:
        return Column(tag)
    raise ValidationError({function: [f"{tag!r} is not a tag key"]})


def _params(
    function: str, params: tuple[Param, ...], given: list[Any], named: dict[str, Any]
) -> list[Selectable]:
    if len(given) > len(params):
        raise ValidationError(
            {function: [f"{function}() takes at most {len(params)} parameter(s) after its argument"]}
        )
    unknown = set(named) - {p.name for p in params[len(given) :]}
    if unknown:
        raise ValidationError(
            {function: [f"{function}() has no parameter {sorted(unknown)[0]!r} (or it was given twice)"]}
        )
    values = given + [named.get(p.name) for p in params[len(given) :]]
    last = max((i for i, v in enumerate(values) if v is not None), default=-1)
    out: list[Selectable] = []
    for index, (param, value) in enumerate(zip(params, values)):
        if value is None and param.required:
            raise ValidationError({function: [f"{function}() needs its parameter {param.name!r}"]})
        if value is None and index < last:
            out.append(Literal(param.default or "-1"))
        elif value is not None:
            out.append(Literal(param.check(function, param.name, value)))
    return out


class Unary(Protocol):
    def __call__(self, argument: Argument, /) -> Call: ...


class WithUnit(Protocol):
    def __call__(self, argument: Argument, /, unit: DurationArg | None = None) -> Call: ...


class WithN(Protocol):
    def __call__(self, argument: Argument, /, n: int | float) -> Call: ...


class Selection(Protocol):
    def __call__(self, argument: Argument, /, n: int, *tags: str | Col) -> Call: ...


class Binary(Protocol):
    def __call__(self, y: Argument, x: Argument, /) -> Call: ...


class WithBase(Protocol):
    def __call__(self, argument: Argument, /, base: int | float) -> Call: ...


class WithExponent(Protocol):
    def __call__(self, argument: Argument, /, exponent: int | float) -> Call: ...


class Prediction(Protocol):
    def __call__(self, argument: Argument, /, n: int, seasonal: int) -> Call: ...


class Averaging(Protocol):
    def __call__(
        self,
        argument: Argument,
        /,
        period: int,
        hold_period: int | None = None,
        warmup_type: str | None = None,
    ) -> Call: ...


class Kaufman(Protocol):
    def __call__(self, argument: Argument, /, period: int, hold_period: int | None = None) -> Call: ...


def _helper(function: str) -> Any:
    def make(*args: Any, **named: Any) -> Call:
        return call(function, *args, **named)

    signature = FUNCTIONS[function]
    params = "".join(f", {p.name}" if p.required else f"[, {p.name}]" for p in signature.params)
    make.__name__ = function
    make.__qualname__ = function
    make.__doc__ = f"`{function}(argument{params})`, an InfluxQL {signature.kind} (see `FUNCTIONS`)."
    return make


count: Unary = _helper("count")
distinct: Unary = _helper("distinct")
integral: WithUnit = _helper("integral")
mean: Unary = _helper("mean")
median: Unary = _helper("median")
mode: Unary = _helper("mode")
spread: Unary = _helper("spread")
stddev: Unary = _helper("stddev")
sum_: Unary = _helper("sum")
bottom: Selection = _helper("bottom")
first: Unary = _helper("first")
last: Unary = _helper("last")
max_: Unary = _helper("max")
min_: Unary = _helper("min")
percentile: WithN = _helper("percentile")
sample: WithN = _helper("sample")
top: Selection = _helper("top")
abs_: Unary = _helper("abs")
acos: Unary = _helper("acos")
asin: Unary = _helper("asin")
atan: Unary = _helper("atan")
atan2: Binary = _helper("atan2")
ceil: Unary = _helper("ceil")
cos: Unary = _helper("cos")
cumulative_sum: Unary = _helper("cumulative_sum")
derivative: WithUnit = _helper("derivative")
difference: Unary = _helper("difference")
elapsed: WithUnit = _helper("elapsed")
exp: Unary = _helper("exp")
floor: Unary = _helper("floor")
ln: Unary = _helper("ln")
log: WithBase = _helper("log")
log2: Unary = _helper("log2")
log10: Unary = _helper("log10")
moving_average: WithN = _helper("moving_average")
non_negative_derivative: WithUnit = _helper("non_negative_derivative")
non_negative_difference: Unary = _helper("non_negative_difference")
pow_: WithExponent = _helper("pow")
round_: Unary = _helper("round")
sin: Unary = _helper("sin")
sqrt: Unary = _helper("sqrt")
tan: Unary = _helper("tan")
holt_winters: Prediction = _helper("holt_winters")
holt_winters_with_fit: Prediction = _helper("holt_winters_with_fit")
exponential_moving_average: Averaging = _helper("exponential_moving_average")
double_exponential_moving_average: Averaging = _helper("double_exponential_moving_average")
triple_exponential_moving_average: Averaging = _helper("triple_exponential_moving_average")
triple_exponential_derivative: Averaging = _helper("triple_exponential_derivative")
relative_strength_index: Averaging = _helper("relative_strength_index")
kaufmans_efficiency_ratio: Kaufman = _helper("kaufmans_efficiency_ratio")
kaufmans_adaptive_moving_average: Kaufman = _helper("kaufmans_adaptive_moving_average")
chande_momentum_oscillator: Averaging = _helper("chande_momentum_oscillator")

#: The Python name of each function's helper (a trailing `_` where the name is a Python builtin).
HELPERS = {
    name: name + "_" if name in ("abs", "max", "min", "pow", "round", "sum") else name for name in FUNCTIONS
}


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
