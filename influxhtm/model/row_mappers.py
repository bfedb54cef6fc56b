"""Typed reads: InfluxDB result rows back into instances of a declared class.

Rows come from a query with `epoch=ns` (times are integer nanoseconds), with
the columns in any order. A row mapper is generated once per class, column
list and set of series tags, like the line encoder: it builds the instance
directly (`object.__new__` plus the slots' setters) instead of running the
class's validation again, because the values come from InfluxDB, which only
holds what was valid to write. Floats stored as ints (JSON answers) become
floats again, enum tags become members, missing optional columns become None.
"""

from __future__ import annotations

import contextlib
import gc
from datetime import timedelta
from typing import Any, Callable, Iterator, Mapping, Sequence

from influxhtm.core.errors import ValidationError
from influxhtm.core.times import EPOCH
from influxhtm.model.codegen import compile_function, extension
from influxhtm.model.columns import FIELD, TAG, Column, Declaration, convert_time, declaration

__all__ = ["from_result", "from_results", "objects_of", "row_mapper"]


def row_mapper(
    cls: type, columns: Sequence[str], tags: Mapping[str, str] | None = None
) -> Callable[[Sequence[Any]], Any]:
    """A function turning one result row (values in the order of `columns`) into an instance.

    `tags` are the series tags of a `GROUP BY` answer: tag columns not among
    `columns` take their value from there.
    """
    decl = declaration(cls)
    tags = dict(tags or {})
    key = (tuple(columns), tuple(sorted(tags)))
    factory = decl.generated_once(("row mapper", *key), lambda: _generate(decl, list(columns), sorted(tags)))
    constants = []
    for tag_key in sorted(tags):
        constants.append(tags[tag_key])
    return factory(*constants)


def objects_of(
    cls: type, columns: Sequence[str], tags: Mapping[str, str] | None, values: list[list[Any]]
) -> list[Any]:
    """Instances of every row of one series (`values`, rows in the order of `columns`).

    The optional C decoder (`influxhtm._decode`) builds them when it is built and not turned
    off (`INFLUXHTM_NO_SPEEDUPS`); the generated mapper of `row_mapper` is the reference and
    converts the rows C leaves to it (and raises the errors that name a bad value).
    """
    mapper: Any = row_mapper(cls, columns, tags)
    module = _decoder()
    if module is not None:
        built = module.build_objects(cls, mapper.plan, len(columns), values, EPOCH.tzinfo, mapper)
        if built is not None:
            result: list[Any] = built
            return result
    with _no_gc():
        return list(map(mapper, values))


def _decoder() -> Any:
    """The C module `influxhtm._decode`, or None: not built, or `INFLUXHTM_NO_SPEEDUPS` set (not "0")."""
    return extension("_decode")


def from_result(cls: type, result: Mapping[str, Any]) -> list[Any]:
    """Instances from one statement result `{"series": [{"name", "columns", "values", "tags"?}]}`."""
    decl = declaration(cls)
    objects: list[Any] = []
    for series in result.get("series") or ():
        name = series.get("name")
        if name is not None and name != decl.measurement:
            raise ValidationError(
                {
                    "series": [
                        f"series of measurement {name!r} cannot be read as {decl.cls.__name__}"
                        f" (measurement {decl.measurement!r})"
                    ]
                }
            )
        values = series.get("values") or []
        if values:
            objects.extend(objects_of(decl.cls, series["columns"], series.get("tags"), values))
    return objects


def from_results(cls: type, results: Sequence[Mapping[str, Any]]) -> list[Any]:
    """Instances from every statement result of a query answer."""
    objects: list[Any] = []
    for result in results:
        objects.extend(from_result(cls, result))
    return objects


@contextlib.contextmanager
def _no_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while many new objects are built.

    Each instance is a GC-tracked object; without the pause, CPython runs
    collections over the growing list again and again, doubling the time.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _generate(decl: Declaration, columns: list[str], tag_keys: list[str]) -> Callable[..., Any]:
    """Write and compile a factory: series tag values in, row mapper out."""
    cls = decl.cls
    position = {name: i for i, name in enumerate(columns)}
    namespace: dict[str, Any] = {
        "_cls": cls,
        "_new": object.__new__,
        "_EPOCH": EPOCH,
        "_td": timedelta,
        "_int": int,
        "_float": float,
        "_time_any": _time_any,
    }
    params = [f"_tag{i}" for i in range(len(tag_keys))]
    prelude: list[str] = []
    body = ["    def row_to_object(row):", "        obj = _new(_cls)"]
    plan: list[str] = []  # the same conversions for the C decoder: (attr, code, index or constant, lookup)
    missing = []
    for index, column in enumerate(decl.columns):
        setter = f"_set{index}"
        namespace[setter] = _slot_setter(cls, column.attr)
        attr = repr(column.attr)
        if column.key in position:
            i = position[column.key]
            body.append(f"        v = row[{i}]")
            body.extend(_convert_lines(column, index, namespace))
            body.append(f"        {setter}(obj, v)")
            lookup = f"_enum{index}" if column.is_enum else "None"
            plan.append(f"({attr}, {_plan_code(column)!r}, {i}, {lookup})")
        elif column.kind == TAG and column.key in tag_keys:
            param = params[tag_keys.index(column.key)]
            prelude.append(f"    v = {param}")
            prelude.append("    if v == '': v = None")  # GROUP BY gives '' for a missing tag
            prelude.extend(line[4:] for line in _convert_lines(column, index, namespace))
            prelude.append(f"    _const{index} = v")
            body.append(f"        {setter}(obj, _const{index})")
            plan.append(f"({attr}, 'c', _const{index}, None)")
        elif column.optional:
            body.append(f"        {setter}(obj, None)")
            plan.append(f"({attr}, 'c', None, None)")
        else:
            missing.append(column.key)
    if missing:
        raise ValidationError(
            {
                "columns": [
                    f"the result lacks column(s) {', '.join(map(repr, missing))} of "
                    f"{cls.__name__} (it has {', '.join(map(repr, columns))})"
                ]
            }
        )
    body.append("        return obj")
    plan_line = f"    row_to_object.plan = ({''.join(item + ', ' for item in plan)})"
    lines = [f"def factory({', '.join(params)}):", *prelude, *body, plan_line, "    return row_to_object"]
    source = "\n".join(lines) + "\n"
    return compile_function(source, f"row mapper for {cls.__qualname__}", namespace, "factory")


def _convert_lines(column: Column, index: int, namespace: dict[str, Any]) -> list[str]:
    """Statements turning the raw value `v` into the attribute's value."""
    if column.kind == "time":
        return ["        v = _EPOCH + _td(0, 0, v // 1000) if v.__class__ is _int else _time_any(v)"]
    if column.is_enum:
        lookup = f"_enum{index}"
        namespace[lookup] = {m.value: m for m in column.type}
        namespace[f"_bad{index}"] = _enum_error(column)
        return [f"        if v is not None: v = {lookup}[v] if v in {lookup} else _bad{index}(v)"]
    if column.kind == FIELD and column.type is float:
        return ["        if v.__class__ is not _float and v is not None: v = _float(v)"]
    return []


def _plan_code(column: Column) -> str:
    """The C decoder's conversion of a column read from a row (see `_convert_lines`)."""
    if column.kind == "time":
        return "t"
    if column.is_enum:
        return "e"
    if column.kind == FIELD and column.type is float:
        return "f"
    return "p"


def _slot_setter(cls: type, attr: str) -> Callable[[Any, Any], None]:
    """The setter of a slot, bypassing the frozen class's `__setattr__`."""
    for klass in cls.__mro__:
        descriptor = klass.__dict__.get(attr)
        if descriptor is not None and hasattr(descriptor, "__set__"):
            return descriptor.__set__

    def set_attribute(obj: Any, value: Any) -> None:  # pragma: no cover - non-slotted classes
        object.__setattr__(obj, attr, value)

    return set_attribute


def _time_any(value: Any) -> Any:
    """A time that is not integer nanoseconds (an answer without epoch=ns): RFC 3339 text."""
    if value is None:
        return None
    return convert_time(value, "time", "utc")  # the server's times are UTC


def _enum_error(column: Column) -> Callable[[Any], Any]:
    def bad(value: Any) -> Any:
        choices = ", ".join(repr(m.value) for m in column.type)
        raise ValidationError(
            {
                column.attr: [
                    f"{value!r} read from InfluxDB is not a {column.type.__name__} (one of {choices})"
                ]
            }
        )

    return bad
