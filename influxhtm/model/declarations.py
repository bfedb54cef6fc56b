"""Declared measurements: a class decorator that turns annotated attributes into a frozen attrs class.

For example::

    @measurement("power")
    class PowerReading:
        time: datetime = timestamp()
        component: str = tag()
        value: float = field()
        note: Optional[str] = field(default=None)

Each attribute is a tag, a field or the (single) timestamp. The class becomes a
frozen, slotted attrs class whose `__init__` converts and validates every value
(keyword arguments only), with errors naming the field and the value:

- time: an aware `datetime`, ISO 8601 text or integer nanoseconds, stored as a
  UTC-aware `datetime`. A naive `datetime` means UTC (or what
  `influxhtm.core.times.set_naive_times` chose process-wide);
  `measurement(..., naive_times="error")` refuses naive times for one class and
  `naive_times="local"` reads them as local time (the option is per class, so an
  application can be strict without changing anyone else's classes).
- float fields accept ints and store floats; NaN and infinities are refused.
- int fields take integers within int64; bool fields only booleans; str fields
  only text. Tags are text (or an `enum.Enum` whose values are text).
- anything line protocol cannot carry (see `influxhtm.model.line_protocol`) is refused.

`declaration(cls)` describes a class: its measurement, time, tags and fields,
with the InfluxDB name (`key`) of each, which may differ from the Python name.
Each class also gets `Cls.load(mapping)`, `Cls.load_many(items)` and
`obj.dump()` (see `influxhtm.model.schema`).
"""

from __future__ import annotations

import enum
import math
import operator
import sys
import types
import typing
from datetime import UTC, datetime
from typing import Any, Callable, ClassVar, Optional, TypeVar, Union

import attrs

from influxhtm.core.errors import ValidationError, show_value
from influxhtm.core.times import (
    NAIVE_TIME_POLICIES,
    check_naive_policy,
)
from influxhtm.model import codegen
from influxhtm.model import line_protocol as lp
from influxhtm.model.columns import (
    FIELD,
    FIELD_TYPES,
    MAX_TIME,
    MIN_TIME,
    TAG,
    TIME,
    Column,
    Declaration,
    _fail,
    convert_time,
    declaration,
    is_declared,
)

__all__ = [
    "FIELD",
    "MAX_TIME",
    "MIN_TIME",
    "TAG",
    "TIME",
    "Column",
    "convert_time",
    "Declaration",
    "declaration",
    "field",
    "is_declared",
    "measurement",
    "schema_for",
    "tag",
    "timestamp",
    "NAIVE_TIME_POLICIES",
]

_RESERVED = {"load", "load_many", "dump"}
#: A declared class: the decorator gives back the class it was given (for type checkers).
C = TypeVar("C", bound=type)


# -- specifiers ----------------------------------------------------------------
@attrs.frozen
class _Spec:
    """What a `tag()`, `field()` or `timestamp()` call leaves in the class body."""

    kind: str
    name: Optional[str]
    default: Any
    validator: Any
    metadata: Any


def tag(
    *,
    name: Optional[str] = None,
    default: Any = attrs.NOTHING,
    factory: Optional[Callable[[], Any]] = None,
    validator: Any = None,
    metadata: Optional[dict[str, Any]] = None,
) -> Any:
    """Declare a tag. `name` is its InfluxDB key when it differs from the attribute name."""
    return _Spec(TAG, name, _default(default, factory), validator, metadata)


def field(
    *,
    name: Optional[str] = None,
    default: Any = attrs.NOTHING,
    factory: Optional[Callable[[], Any]] = None,
    validator: Any = None,
    metadata: Optional[dict[str, Any]] = None,
) -> Any:
    """Declare a field (float, int, bool or str, or Optional of one; None is left out of the line)."""
    return _Spec(FIELD, name, _default(default, factory), validator, metadata)


def timestamp(
    *,
    default: Any = attrs.NOTHING,
    factory: Optional[Callable[[], Any]] = None,
    validator: Any = None,
    metadata: Optional[dict[str, Any]] = None,
) -> Any:
    """Declare the point's time (exactly one per class); stored as InfluxDB's `time`."""
    return _Spec(TIME, TIME, _default(default, factory), validator, metadata)


def _default(default: Any, factory: Optional[Callable[[], Any]]) -> Any:
    if factory is not None:
        if default is not attrs.NOTHING:
            raise ValidationError({"default": ["give either default or factory, not both"]})
        return attrs.Factory(factory)
    return default


def schema_for(cls_or_obj: Any) -> Any:
    """The marshmallow schema (an instance) generated for a declared class."""
    from influxhtm.model import schema  # marshmallow is imported when a schema is first needed

    return schema.schema_for(declaration(cls_or_obj).cls)


# -- the decorator ---------------------------------------------------------------
@typing.dataclass_transform(
    frozen_default=True, kw_only_default=True, field_specifiers=(tag, field, timestamp)
)
def measurement(
    name: str,
    *,
    retention_policy: Optional[str] = None,
    naive_times: Optional[str] = None,
    kw_only: bool = True,
) -> Callable[[C], C]:
    """Declare a class as an InfluxDB measurement named `name`.

    `retention_policy` is where its points are written (None: the database's
    default). `naive_times` is this class's rule for naive datetimes: "utc",
    "local" or "error" (refused); None follows the process-wide rule (UTC by
    default). `kw_only=False` lets the attributes be given positionally, in
    declaration order (defaults must then come last).

    Type checkers see the class through `typing.dataclass_transform` (its `__init__`, frozen);
    derive it from `influxhtm.Declared` to have `load`, `load_many` and `dump` typed too.
    """
    problem = lp.measurement_problem(name)
    if problem:
        raise ValidationError({"measurement": [f"measurement name {name!r} {problem}"]})
    if retention_policy is not None and (not isinstance(retention_policy, str) or not retention_policy):
        raise ValidationError({"retention_policy": [f"{retention_policy!r} is not a retention policy name"]})
    if naive_times is not None:
        check_naive_policy(naive_times)

    def decorate(cls: C) -> C:
        caller = sys._getframe(1)
        declared = _declare(cls, name, retention_policy, naive_times, dict(caller.f_locals), kw_only)
        return declared  # type: ignore[return-value]  # the class as attrs remade it (slots)

    return decorate


def _declare(
    cls: type,
    name: str,
    retention_policy: Optional[str],
    naive_times: Optional[str],
    localns: dict[str, Any],
    kw_only: bool = True,
) -> type:
    where = cls.__qualname__
    own = cls.__dict__.get("__annotations__", {})
    hints = _resolve_hints(cls, own, localns)
    specs = {attr: value for attr, value in cls.__dict__.items() if isinstance(value, _Spec)}
    for attr in specs:
        if attr not in own:
            raise ValidationError({attr: [f"{where}.{attr} has a specifier but no type annotation"]})

    columns: list[Column] = []
    these: dict[str, Any] = {}
    for attr, hint in hints.items():
        if _is_classvar(hint):
            continue
        spec = specs.get(attr)
        if spec is None:
            raise ValidationError(
                {attr: [f"{where}.{attr} needs a specifier: = tag(), = field() or = timestamp()"]}
            )
        if attr in _RESERVED:
            raise ValidationError(
                {attr: [f"{where}.{attr}: the name {attr!r} is taken by the {attr}() method"]}
            )
        column = _column(where, attr, spec, hint)
        columns.append(column)
        these[attr] = attrs.field(
            default=spec.default,
            converter=_converter(column, naive_times),
            validator=_wrap_validator(attr, spec.validator),
            kw_only=kw_only,
            metadata={**(spec.metadata or {}), "influxhtm": column},
        )

    times = [c for c in columns if c.kind == TIME]
    if len(times) != 1:
        found = ", ".join(c.attr for c in times) or "none"
        raise ValidationError({"time": [f"{where} needs exactly one timestamp() attribute (found: {found})"]})
    fields = tuple(c for c in columns if c.kind == FIELD)
    if not fields:
        raise ValidationError(
            {"fields": [f"{where} needs at least one field(): InfluxDB stores no point without"]}
        )
    tags = tuple(c for c in columns if c.kind == TAG)
    lookup: dict[str, Column] = {}
    for column in columns:
        for label in {column.attr, column.key}:
            other = lookup.get(label)
            if other is not None and other is not column:
                raise ValidationError(
                    {
                        column.attr: [
                            f"{where}.{column.attr}: the name {label!r} is used twice (also by {other.attr})"
                        ]
                    }
                )
            lookup[label] = column

    if all(c.optional for c in fields):
        _add_post_init(cls, fields)
    _add_methods(cls)
    new_cls = attrs.define(
        cls, these=these, frozen=True, slots=True, kw_only=kw_only, eq=True, order=False, auto_attribs=False
    )
    decl = Declaration(
        cls=new_cls,
        measurement=name,
        retention_policy=retention_policy,
        naive_times=naive_times,
        time=times[0],
        tags=tags,
        fields=fields,
        lookup=lookup,
    )
    type.__setattr__(new_cls, "__influxhtm__", decl)
    _install_init(new_cls, decl)
    return new_cls


# -- the generated __init__: the converters' common cases inline -------------------
def _install_init(cls: type, decl: Declaration) -> None:
    """Replace attrs's `__init__` by one generated for this declaration (kept on the class, as
    attrs keeps its own; its source is registered with `linecache` by `codegen`).

    attrs's `__init__` calls one converter per attribute. This one first checks each value's
    common case inline (a UTC datetime in range, ASCII text fit for line protocol, a finite float,
    an int64, a bool, an enum member) and calls the attribute's converter, unchanged and exactly
    as strict, only for anything else; then it sets the slots, runs the validators and the
    post-init hook as attrs does. A class with `__attrs_pre_init__` keeps attrs's `__init__`.
    """
    if "__attrs_pre_init__" in dir(cls):
        return
    namespace: dict[str, Any] = {
        "_set": object.__setattr__,
        "_NOTHING": attrs.NOTHING,
        "_datetime": datetime,
        "_UTC": UTC,
        "_GOOD_LIMIT": 10_000,
        "_I64_MIN": lp.INT64_MIN,
        "_I64_MAX": lp.INT64_MAX,
        "_validators_off": attrs.validators.get_disabled,
    }
    args: list[str] = []
    body: list[str] = []
    sets: list[str] = []
    checks: list[str] = []
    fields = attrs.fields(cls)
    kw_only = any(a.kw_only for a in fields)
    for i, a in enumerate(fields):
        if not a.init or a.alias is None:
            return  # not made by `_declare`: keep attrs's own
        column: Column = a.metadata["influxhtm"]
        var = a.alias
        namespace[f"_conv{i}"] = a.converter
        if a.default is attrs.NOTHING:
            args.append(var)
        elif isinstance(a.default, attrs.Factory):  # type: ignore[arg-type]
            if a.default.takes_self:
                return
            namespace[f"_factory{i}"] = a.default.factory
            args.append(f"{var}=_NOTHING")
            body.append(f"    if {var} is _NOTHING:")
            body.append(f"        {var} = _factory{i}()")
        else:
            namespace[f"_default{i}"] = a.default
            args.append(f"{var}=_default{i}")
        fast = _fast_check(column, var, i, namespace)
        if column.optional:
            fast = f"{var} is None or ({fast})"
        body.append(f"    if not ({fast}):")
        body.append(f"        {var} = _conv{i}({var})")
        if column.kind == TAG and column.type is str:  # tag values repeat: remember the good ones
            body.append(f"        if {var} is not None and len(_good{i}) < _GOOD_LIMIT:")
            body.append(f"            _good{i}.add({var})")
        slot = cls.__dict__.get(a.name)
        if slot is not None and hasattr(slot, "__set__"):  # the slot's own setter: no lookup
            namespace[f"_slot{i}"] = slot.__set__
            sets.append(f"    _slot{i}(self, {var})")
        else:
            sets.append(f"    _set(self, {a.name!r}, {var})")
        if a.validator is not None:
            namespace[f"_validator{i}"] = a.validator
            namespace[f"_attribute{i}"] = a
            checks.append(f"        _validator{i}(self, _attribute{i}, {var})")
    offsets = _slot_offsets(cls, [a.name for a in fields])
    if offsets is not None:  # one C call stores every slot (see `_slot_offsets`)
        set_slots = codegen.extension("_speedups", always=True).set_slots
        namespace.update(_set_slots=set_slots, _cls=cls, _offsets=offsets)
        sets = [f"    _set_slots(self, _cls, _offsets, {', '.join(a.alias for a in fields)})"]
    signature = ", ".join(["self", *(["*"] if kw_only and args else []), *args])
    lines = [f"def __init__({signature}):", *body, *sets]
    if checks:
        lines += ["    if not _validators_off():", *checks]
    if hasattr(cls, "__attrs_post_init__"):
        lines.append("    self.__attrs_post_init__()")
    source = "\n".join(lines) + "\n"
    init = codegen.compile_function(source, f"__init__ of {cls.__qualname__}", namespace, "__init__")
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__module__ = cls.__module__
    init.__doc__ = cls.__dict__["__init__"].__doc__
    type.__setattr__(cls, "__init__", init)
    decl.generated["__init__"] = init


def _slot_offsets(cls: type, names: list[str]) -> tuple[int, ...] | None:
    """Where instances of `cls` keep these attributes, for the C module's `set_slots`; None when
    it is not built or one is not a plain slot. (Declaring a class reads no environment:
    `INFLUXHTM_NO_SPEEDUPS` turns off the C encoders, read at each use, not this.)"""
    module = codegen.extension("_speedups", always=True)
    if module is None or not names or not hasattr(module, "set_slots"):
        return None
    offsets: tuple[int, ...] | None = module.slot_offsets(cls, tuple(names))
    return offsets


def _fast_check(column: Column, var: str, i: int, namespace: dict[str, Any]) -> str:
    """An expression true when `var` is already what the column's converter would return."""
    if column.kind == TIME:
        # Years strictly inside InfluxDB's range (1677-09-21 to 2262-04-11): an int compare, where
        # comparing aware datetimes asks for their offsets; the edge years take the converter.
        years = f"{MIN_TIME.year + 1} <= {var}.year <= {MAX_TIME.year - 1}"
        return f"{var}.__class__ is _datetime and {var}.tzinfo is _UTC and {years}"
    if column.is_enum:
        namespace[f"_enum{i}"] = column.type
        return f"{var}.__class__ is _enum{i}"
    if column.type is str and column.kind == TAG:
        # A tag value the converter has accepted before (a set of plain `str`s, per class and tag).
        namespace[f"_good{i}"] = set()
        return f"{var}.__class__ is str and {var} in _good{i}"
    if column.type is str:  # string_field_problem: only text that is not valid Unicode
        return f"{var}.__class__ is str and {var}.isascii()"
    if column.type is float:
        return f"{var}.__class__ is float and {var} - {var} == 0.0"
    if column.type is int:
        return f"{var}.__class__ is int and _I64_MIN <= {var} <= _I64_MAX"
    return f"{var} is True or {var} is False"


def _resolve_hints(cls: type, own: dict[str, Any], localns: dict[str, Any]) -> dict[str, Any]:
    """The class's own annotations, evaluated (also under `from __future__ import annotations`)."""
    module = sys.modules.get(cls.__module__)
    globalns = dict(vars(module)) if module else {}
    fallback = {"Optional": Optional, "Union": Union, "datetime": datetime, "ClassVar": ClassVar}
    namespace = {**fallback, **globalns, **localns}
    hints = {}
    for attr, hint in own.items():
        for _ in range(3):  # a quoted annotation under `from __future__ import annotations` is quoted twice
            if not isinstance(hint, str):
                break
            try:
                hint = eval(hint, namespace, {})  # noqa: S307 - a class annotation, as typing does
            except Exception as error:
                raise ValidationError(
                    {attr: [f"{cls.__qualname__}.{attr}: cannot resolve the annotation {hint!r} ({error})"]}
                ) from None
        hints[attr] = hint
    return hints


def _is_classvar(hint: Any) -> bool:
    return hint is ClassVar or typing.get_origin(hint) is ClassVar


def _unwrap_optional(hint: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(hint)
    if origin is Union or origin is types.UnionType:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(hint)) == 2:
            return args[0], True
    return hint, False


def _column(where: str, attr: str, spec: _Spec, hint: Any) -> Column:
    kind = spec.kind
    value_type, optional = _unwrap_optional(hint)
    key = spec.name if spec.name is not None else attr
    label = f"{where}.{attr}"
    if kind == TIME:
        if value_type is not datetime or optional:
            raise ValidationError({attr: [f"{label}: a timestamp() is annotated `datetime`, not {hint!r}"]})
        return Column(attr, TIME, TIME, datetime, False)
    problem = lp.key_problem(key, kind=kind)
    if problem:
        raise ValidationError({attr: [f"{label}: {kind} key {key!r} {problem}"]})
    is_enum = isinstance(value_type, type) and issubclass(value_type, enum.Enum)
    if is_enum:
        bad = [m for m in value_type if not isinstance(m.value, str) or lp.tag_value_problem(m.value)]
        if kind == FIELD:
            bad = [m for m in value_type if not isinstance(m.value, str)]
        if bad:
            raise ValidationError(
                {
                    attr: [
                        f"{label}: the values of enum {value_type.__name__} must be text fit for a {kind}"
                        f" (not {bad[0].value!r})"
                    ]
                }
            )
    elif kind == TAG and value_type is not str:
        raise ValidationError({attr: [f"{label}: a tag is annotated `str` or a str Enum, not {hint!r}"]})
    elif kind == FIELD and value_type not in FIELD_TYPES:
        raise ValidationError(
            {
                attr: [
                    f"{label}: a field is annotated float, int, bool, str (or Optional of one), not {hint!r}"
                ]
            }
        )
    return Column(attr, key, kind, value_type, optional)


def _add_post_init(cls: type, fields: tuple[Column, ...]) -> None:
    """Refuse a point whose (all optional) fields are all None."""
    names = tuple(c.attr for c in fields)
    user_hook = cls.__dict__.get("__attrs_post_init__")

    def __attrs_post_init__(self: Any) -> None:
        for attr in names:
            if getattr(self, attr) is not None:
                break
        else:
            raise ValidationError(
                {
                    "fields": [
                        f"all fields of {type(self).__name__} are None ({', '.join(names)}):"
                        " a point needs at least one field"
                    ]
                }
            )
        if user_hook is not None:
            user_hook(self)

    cls.__attrs_post_init__ = __attrs_post_init__  # type: ignore[attr-defined]


def _add_methods(cls: type) -> None:
    """`Cls.load`, `Cls.load_many`, `obj.dump`: the marshmallow schema, one call away."""

    def load(klass: type, data: Any, *, unknown: str = "raise", coerce: bool = False) -> Any:
        """An instance from a mapping (keys: attribute names or InfluxDB keys), validated;
        `coerce=True` reads text values (CSV cells) as their column's type (see `influxhtm.model.schema`)."""
        from influxhtm.model import schema

        return schema.load(klass, data, unknown=unknown, coerce=coerce)

    def load_many(klass: type, items: Any, *, unknown: str = "raise", coerce: bool = False) -> list[Any]:
        """Instances from many mappings; every problem is reported at once, keyed by index."""
        from influxhtm.model import schema

        return schema.load_many(klass, items, unknown=unknown, coerce=coerce)

    def dump(self: Any) -> dict[str, Any]:
        """A JSON-ready dict keyed by attribute name (time as ISO 8601 UTC text)."""
        from influxhtm.model import schema

        return schema.dump(self)

    if "load" not in cls.__dict__:
        cls.load = classmethod(load)  # type: ignore[attr-defined]
    if "load_many" not in cls.__dict__:
        cls.load_many = classmethod(load_many)  # type: ignore[attr-defined]
    if "dump" not in cls.__dict__:
        cls.dump = dump  # type: ignore[attr-defined]


def _wrap_validator(attr: str, validator: Any) -> Any:
    """Run a user's attrs validator(s); their ValueError/TypeError becomes a ValidationError."""
    if validator is None:
        return None
    if isinstance(validator, (list, tuple)):
        validator = attrs.validators.and_(*validator)

    def run(instance: Any, attribute: Any, value: Any) -> None:
        try:
            validator(instance, attribute, value)
        except ValidationError:
            raise
        except (ValueError, TypeError) as error:
            raise ValidationError({attr: [f"{show_value(value)} is refused: {error}"]}) from None

    return run


# -- converters: one per attribute, fast on the common path ---------------------
def _converter(column: Column, naive: Optional[str]) -> Callable[[Any], Any]:
    name = column.attr
    if column.kind == TIME:

        def time_converter(value: Any) -> datetime:
            return convert_time(value, name, naive)

        return time_converter
    convert = _value_converter(column)
    if not column.optional:
        return convert

    def optional(value: Any) -> Any:
        return None if value is None else convert(value)

    return optional


def _value_converter(column: Column) -> Callable[[Any], Any]:
    name = column.attr
    kind = column.kind
    if column.is_enum:
        enum_cls = column.type

        def to_enum(value: Any) -> Any:
            if value.__class__ is enum_cls:
                return value
            try:
                return enum_cls(value)
            except (ValueError, TypeError):
                choices = ", ".join(repr(m.value) for m in enum_cls)
                raise _fail(name, value, f"is not a {enum_cls.__name__} (one of {choices})") from None

        return to_enum
    if column.type is str:
        check = lp.tag_value_problem if kind == TAG else lp.string_field_problem

        def to_str(value: Any) -> str:
            if value.__class__ is not str:
                if not isinstance(value, str):
                    raise _fail(name, value, "is not a str")
                value = str.__str__(value)
            problem = check(value)
            if problem:
                raise _fail(name, value, problem)
            return value

        return to_str
    if column.type is float:

        def to_float(value: Any) -> float:
            if value.__class__ is float and value - value == 0.0:  # finite
                return value
            return _slow_float(name, value)

        return to_float
    if column.type is int:

        def to_int(value: Any) -> int:
            if value.__class__ is int and lp.INT64_MIN <= value <= lp.INT64_MAX:
                return value
            return _slow_int(name, value)

        return to_int

    def to_bool(value: Any) -> bool:
        if value is True or value is False:
            return value
        if type(value).__name__ == "bool_":  # numpy.bool_
            return bool(value)
        raise _fail(name, value, "is not a bool")

    return to_bool


def _slow_float(name: str, value: Any) -> float:
    if value is None or isinstance(value, (bool, str, bytes)) or type(value).__name__ == "bool_":
        raise _fail(name, value, "is not a float")
    try:
        result = float(operator.index(value)) if hasattr(value, "__index__") else lp.float_value(value)
    except OverflowError:
        raise _fail(name, value, "is too large for a float") from None
    except (TypeError, ValueError):
        raise _fail(name, value, "is not a float") from None
    if not math.isfinite(result):
        raise _fail(name, value, "is not a finite number: line protocol cannot carry NaN or infinity")
    return result


def _slow_int(name: str, value: Any) -> int:
    if value is None or isinstance(value, bool) or type(value).__name__ == "bool_":
        raise _fail(name, value, "is not an int")
    try:
        result = operator.index(value)
    except TypeError:
        raise _fail(name, value, "is not an int") from None
    if not lp.INT64_MIN <= result <= lp.INT64_MAX:
        raise _fail(name, value, "is outside the 64-bit integer range InfluxDB stores")
    return result
