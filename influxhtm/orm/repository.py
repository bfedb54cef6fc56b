"""`Repository`: write declared objects and read them back, typed.

Writes are validated, encoded and posted in batches while the next batch is
being encoded (one batch in flight at a time, so memory stays constant for any
generator). Queries from `query()` are bound to the repository: iterating gives
instances of the declared class for plain selects, and typed rows (time, group
tags, aggregate aliases) for aggregated or grouped ones.
"""

from __future__ import annotations

import keyword
import math
import numbers
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import tzinfo
from functools import lru_cache, partial
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import attrs

from influxhtm.core.errors import ValidationError, check_positive_int, show_value
from influxhtm.core.progress import progress_bar
from influxhtm.core.times import MAX_NS, MIN_NS, TimeLike, from_ns, to_ns
from influxhtm.influxql import Query, admin, col
from influxhtm.influxql import count as count_of
from influxhtm.io.connection import QUERY_CHUNK_SIZE
from influxhtm.io.protocols import ClientSession
from influxhtm.io.writing import (
    C_SLICE,
    UnmadeBatch,
    chunks,
    encode_in_c,
    encode_in_slices,
    join_slices,
    post_pipelined,
)
from influxhtm.model.declarations import declaration
from influxhtm.model.frames import BadRow, frame_rows, is_dataframe
from influxhtm.model.line_protocol import (
    Batch,
    encode_pairs_in_c,
    encoder_for,
    escape_key,
    escape_measurement,
    escape_tag_value,
    float_value,
    key_problem,
    tag_value_problem,
    tally,
)
from influxhtm.model.row_mappers import objects_of

if TYPE_CHECKING:
    import pandas

    from influxhtm.orm.csv_import import ImportReport

#: The declared class a repository stores.
T = TypeVar("T")
#: What a query gives (the class, or `Row`).
U = TypeVar("U")


class Repository(Generic[T]):
    """Objects of one declared measurement class in one database, stored in `measurement`
    (default: the declared one) with the fixed `tags` (as PyPika's `Table(name)`).

    Every point written carries the fixed tags; every query reads that measurement
    with those tag conditions. A fixed tag that is also a declared tag must agree
    with each object's value (a mapping may leave it out). With `extra_tags`, a
    mapping's keys that are not declared become tags of its point (text values, as a
    sensor's points carry `site` or `room`); without, they are refused.

    For type checkers, `client.repository(Climate)` is a `Repository[Climate]`: its
    `query()` is a `Query[Climate]` (`all()` a `list[Climate]`, `first()` a
    `Climate | None`), and a query that selects or groups is a `Query[Row]`.
    """

    def __init__(
        self,
        client: ClientSession,
        cls: type[T],
        measurement: str | None = None,
        tags: Mapping[str, str] | None = None,
        *,
        extra_tags: bool = False,
    ):
        self.client = client
        #: A mapping's keys that are not declared become tags of its point (see `_extra_tags`).
        self.extra_tags = extra_tags
        self.cls = cls
        self.declaration = declaration(cls)
        self.measurement = self.declaration.measurement if measurement is None else measurement
        self.tags = dict(tags or {})
        self._encoder: Callable[[Any], str] | None = None
        #: Fixed tags that are declared tags, by attribute name: a mapping that leaves them out gets them.
        self._fixed_attrs = {c.attr: self.tags[c.key] for c in self.declaration.tags if c.key in self.tags}
        #: Fixed tags that are declared tags, by key: read objects take them from here (one shared
        #: string each, and a query need not select them).
        self._fixed_keys = {c.key: self.tags[c.key] for c in self.declaration.tags if c.key in self.tags}
        columns = (self.declaration.time, *self.declaration.tags, *self.declaration.fields)
        #: Every name a mapping may use for a declared column (attribute or key).
        self._declared = frozenset(name for c in columns for name in (c.attr, c.key))

    def __repr__(self) -> str:
        own = self.measurement == self.declaration.measurement
        where = "" if own else f", measurement={self.measurement!r}"
        fixed = f", tags={self.tags!r}" if self.tags else ""
        return f"Repository({self.cls.__name__}{where}{fixed}, database={self.client.database!r})"

    # -- writing -------------------------------------------------------------
    @property
    def _encode(self) -> Callable[[Any], str]:
        """The encoder, made at the first write: the measurement and fixed tags are checked then
        (a name line protocol cannot carry can still be read, e.g. to find it holds nothing)."""
        if self._encoder is None:
            self._encoder = encoder_for(self.cls, self.measurement, self.tags)
        return self._encoder

    @property
    def encoder(self) -> Callable[..., str]:
        """The generated line encoder of this class, measurement and fixed tags: `encoder(obj)`,
        or `encoder(obj, ns)` to stamp the point with `ns` nanoseconds (see `encoder_for`)."""
        return self._encode

    def add(self, obj: T | Mapping[str, Any]) -> None:
        """Write one object."""
        self.add_all([obj])

    def add_all(
        self,
        objects: Iterable[T | Mapping[str, Any]] | pandas.DataFrame,
        batch_size: int = 10_000,
        *,
        progress: bool | None = None,
        connections: int | None = None,
        validate_first: bool = False,
    ) -> int:
        """Write objects (instances, mappings, or the rows of a DataFrame) in batches; returns how
        many were written.

        Each batch is validated whole before it is sent: a bad object stops the
        write before its batch leaves, and the error names its index and field.
        `validate_first`: a list, tuple or DataFrame is validated whole before anything is
        sent (the error names every bad object; nothing is written), as `Sensor.write` does.
        While batches travel over `connections` connections (default four; only batches whose
        time spans are apart travel together, so a repeated series and time keeps the value
        given last, as over one), the next is encoded.
        A DataFrame's time is its `time` column or its DatetimeIndex; a missing cell (NaN, None, NaT) in an
        optional column is absent, in a required one an error (see `influxhtm.model.frames`).
        `progress`: a progress bar on stderr (None: when it is a terminal and the write
        takes more than a moment; see `influxhtm.core.progress`).
        """
        check_positive_int(batch_size, "batch_size")
        if isinstance(objects, (self.cls, Mapping)):
            raise ValidationError({"objects": ["give an iterable of objects (use add() for one)"]})
        total = len(objects) if isinstance(objects, Sequence) else None
        if is_dataframe(objects):
            total = len(objects)  # type: ignore[arg-type]
            objects = frame_rows(self.declaration, objects, self._fixed_attrs)
            objects = list(objects) if validate_first else objects
        with progress_bar(progress, total=total, unit="pt", desc=f"writing {self.measurement}") as bar:
            return post_pipelined(
                self.client,
                _counted(self.make_batches(objects, batch_size, validate_first=validate_first), bar.update),
                total=total,
                retention_policy=self.declaration.retention_policy,
                connections=connections,
            )

    def import_csv(
        self,
        path: str | os.PathLike[str],
        *,
        time_column: str | None = None,
        tz: str | tzinfo = "UTC",
        ambiguous: str | None = None,
        batch_size: int = 5000,
        progress: bool | None = None,
    ) -> ImportReport:
        """Write the rows of a CSV file as objects of the declared class; returns an `ImportReport`.

        The header names the columns: the time (`time_column`, default: the declared time's
        name or `time`) and declared tags and fields (attribute names or InfluxDB keys); cells
        are read as text (`Cls.load(row, coerce=True)`: `"5"` for an int, `"yes"` for a bool,
        an empty cell is absent). Naive times are read in `tz`. A row that cannot be read is
        reported by its line number and every other row is written, as the sensor import
        does (see `influxhtm.orm.csv_import`); a header naming an unknown column refuses the file.
        """
        from influxhtm.orm.csv_import import import_declared

        return import_declared(
            self,
            path,
            time_column=time_column,
            tz=tz,
            ambiguous=ambiguous,
            batch_size=batch_size,
            progress=progress,
        )

    def line(self, obj: Any) -> str:
        """The line protocol of one object (a mapping is loaded and checked first)."""
        return self._encode(obj if type(obj) is self.cls else self._coerce(obj))

    def make_batches(
        self, objects: Iterable[Any], batch_size: int, *, offset: int = 0, validate_first: bool = False
    ) -> Iterator[Batch]:
        """The batches `add_all` sends: validated and encoded a batch at a time as they are taken
        (a bad object raises `UnmadeBatch`), or, with `validate_first` and a list or tuple, every
        object checked now (a `ValidationError` naming each bad one by index) and the bodies made
        as they are taken. Error indexes start at `offset`."""
        if type(objects) is list and (fast := self.fast_batches(objects, batch_size)) is not None:
            return fast
        if not (validate_first and isinstance(objects, Sequence)):
            return self._batches(objects, batch_size, offset)
        made: list[Batch] = []
        errors: dict[Any, Any] = {}
        for chunk in chunks(objects, batch_size):
            try:
                made.append(self._batch(chunk, offset))
            except ValidationError as error:
                errors.update(error.errors if isinstance(error.errors, dict) else {offset: error.errors})
            offset += len(chunk)
        if errors:
            raise ValidationError(errors)
        return iter(made)

    def fast_batches(self, points: list[Any], batch_size: int) -> Iterator[Batch] | None:
        """Batches of a list of plain `{time, <field>}` dicts, when the declaration's every tag is
        fixed here and its one field a float (a sensor's points) and every point is checked fit
        first (a valid time, a finite number); else None. Made by the C encoder when it is built
        (times: int ns or aware datetimes), else column by column in Python (`pair_columns`).
        Exact nanoseconds are kept."""
        encode = self._encode
        if not points:
            return None
        if encode_pairs_in_c(encode, points, 0, len(points), check_only=True) is not True:
            return self._python_pairs(points, batch_size)

        def batch(start: int, stop: int) -> Batch:
            told, checked = tally(), []

            def encode_range(a: int, b: int) -> str:
                text = encode_pairs_in_c(encode, points, a, b, told=told)
                if text is None:  # the list changed since it was checked: the checked path
                    checked.append(a)  # (whose span is worked out from the body)
                    return self._checked_batch(points[a:b], a).data.decode("utf-8")
                result: str = text
                return result

            body = join_slices(encode_range, start, stop, C_SLICE)
            return Batch.joined(body, stop - start, told=None if checked else told)

        return (batch(i, min(i + batch_size, len(points))) for i in range(0, len(points), batch_size))

    def _python_pairs(self, points: list[Any], batch_size: int) -> Iterator[Batch] | None:
        """The pairs path without C: the columns checked whole (`pair_columns`), lines by `str.format`."""
        plan: tuple[str, str, str] | None = getattr(self._encode, "__pairs_plan__", None)
        columns = None if plan is None else pair_columns(points, plan[1], plan[2])
        if plan is None or columns is None:
            return None
        times, values = columns
        line = plan[0].replace("{", "{{").replace("}", "}}") + "{!r} {}"
        return (
            Batch.joined(
                encode_in_slices(line.format, values[i : i + batch_size], times[i : i + batch_size]),
                min(batch_size, len(times) - i),
            )
            for i in range(0, len(times), batch_size)
        )

    def _batches(self, objects: Iterable[Any], batch_size: int, offset: int = 0) -> Iterator[Batch]:
        """One `Batch` per chunk of objects, validated and encoded (error indexes start at `offset`)."""
        for chunk in chunks(objects, batch_size):
            try:
                batch = self._batch(chunk, offset)
            except ValidationError as error:
                raise UnmadeBatch(error, len(chunk)) from None
            yield batch
            offset += len(chunk)

    def _batch(self, chunk: list[Any], offset: int) -> Batch:
        """One chunk validated and encoded: instances in C or by the generated encoder, plain pairs
        by the pairs path, anything else checked one by one (`_checked_batch`)."""
        encode = self._encode
        told = tally()
        body = encode_in_c(encode, chunk, told)
        lines: Callable[[], list[str]] = partial(list, map(encode, chunk))  # if a string holds "\n"
        if body is not None:  # all of the class, formatted in C (see line_protocol.encode_slice)
            return Batch.joined(body, len(chunk), lines, told)
        if set(map(type, chunk)) == {self.cls}:
            # Instances were validated when they were built: formatting cannot fail.
            return Batch.joined(encode_in_slices(encode, chunk), len(chunk), lines)
        pairs = self.fast_batches(chunk, len(chunk)) if type(chunk) is list else None
        if pairs is not None:
            return next(pairs)
        return self._checked_batch(chunk, offset)

    def _checked_batch(self, chunk: list[Any], offset: int) -> Batch:
        """A batch with mappings or foreign objects: coerce each, report every problem by index."""
        encode: Callable[..., str] = self._encode
        lines: list[str] = []
        errors: dict[int, Any] = {}
        for index, obj in enumerate(chunk, start=offset):
            try:
                if isinstance(obj, Mapping):  # stamped with its exact time, as the C path does
                    lines.append(self._mapping_line(obj))
                    continue
                if type(obj) is not self.cls:
                    obj = self._coerce(obj)
                lines.append(encode(obj))
            except ValidationError as error:
                errors[index] = error.errors or str(error)
        if errors:
            raise ValidationError(errors)
        return Batch.of_lines(lines)

    def _mapping_line(self, mapping: Mapping[str, Any]) -> str:
        """The line of one mapping, loaded and checked; with `extra_tags`, its undeclared keys are tags."""
        extras = ""
        if self.extra_tags and not self._declared.issuperset(mapping):
            problems: dict[str, list[str]] = {}
            extras = self._extra_tags(mapping, problems)
            declared = {k: v for k, v in mapping.items() if k in self._declared}
            if problems:
                try:
                    self._coerce(declared)
                except ValidationError as error:
                    problems = {**_as_dict(error), **problems}
                raise ValidationError(problems)
            mapping = declared
        line = self._pair_line(mapping)
        if line is None:
            encode: Callable[..., str] = self._encode
            line = encode(self._coerce(mapping), self._exact_ns(mapping))
        if not extras:
            return line
        start = len(escape_measurement(self.measurement))  # the extra tags follow the measurement
        return line[:start] + extras + line[start:]

    def _pair_line(self, mapping: Mapping[str, Any]) -> str | None:
        """The line of one plain `{time, <field>}` mapping by the pairs plan (as `pair_columns`, one
        point: a sensor's point with extra tags keeps the column path's speed), or None: loaded."""
        plan: tuple[str, str, str] | None = getattr(self._encode, "__pairs_plan__", None)
        if plan is None:
            return None
        if len(mapping) != 2 and self._fixed_keys:  # a fixed tag given with its own value
            mapping = {k: v for k, v in mapping.items() if self._fixed_keys.get(k, self) != v}
        if len(mapping) != 2:
            return None
        columns = pair_columns([mapping], plan[1], plan[2])
        return None if columns is None else f"{plan[0]}{columns[1][0]!r} {columns[0][0]}"

    def _extra_tags(self, mapping: Mapping[str, Any], problems: dict[str, list[str]]) -> str:
        """`,key=value` of a mapping's undeclared keys (sorted), each a text tag; a fixed tag's key must
        carry its fixed value. What cannot be a tag goes into `problems` by key."""
        pieces = []
        for key in sorted((k for k in mapping if k not in self._declared), key=str):
            value = mapping[key]
            if key in self.tags:
                if value != self.tags[key]:
                    problems[str(key)] = [f"{value!r} is not this repository's {key} {self.tags[key]!r}"]
                continue
            problem = key_problem(key) or (
                tag_value_problem(value) if isinstance(value, str) else "is not a text tag value"
            )
            if problem is not None:
                problems[str(key)] = [f"{show_value(value)} {problem}" if key_problem(key) is None
                                      else f"the key {key!r} {problem}"]
                continue
            pieces.append(f",{escape_key(key)}={escape_tag_value(value)}")
        return "".join(pieces)

    def _exact_ns(self, mapping: Mapping[str, Any]) -> int:
        """The nanoseconds of a (loaded, so valid) mapping's time: an instance holds microseconds."""
        column = self.declaration.time
        raw = mapping[column.key] if column.key in mapping else mapping[column.attr]
        return to_ns(raw, name=column.attr, naive=self.declaration.naive_times)

    def _coerce(self, obj: Any, *, text: bool = False) -> Any:
        """An instance of the class from an instance or a mapping (`text`: of text cells, coerced)."""
        if isinstance(obj, self.cls):
            return obj
        if isinstance(obj, Mapping):
            if self._fixed_attrs:
                obj = {**self._fixed_attrs, **obj}
            return self.cls.load(obj, coerce=text)  # type: ignore[attr-defined]
        if isinstance(obj, BadRow):
            raise obj.error
        raise ValidationError({"object": [f"{obj!r} is not a {self.cls.__name__} or a mapping"]})

    # -- reading -------------------------------------------------------------
    def query(self) -> Query[T]:
        """A query of this measurement, bound to the repository (iterate it, or `.all()`, ...)."""
        query: Query[T] = Query().from_(self.cls)
        if self.measurement != query.measurement:
            query = attrs.evolve(query, measurement=Query().from_(self.measurement).measurement)
        if self.tags:
            query = query.where(*(col(key, checked=False) == value for key, value in self.tags.items()))
        return query.bind(self)

    def statement(self, query: Query) -> Query:
        """The query as it is sent: a time-grouped one gets its open time ends set to the data
        (`InfluxHtmClient.bounded`: no empty buckets filled from 1970); an explicit end is kept."""
        if query.interval is None:
            return query
        return self.client.bounded(query, lambda: self._data_bounds(query))

    def _data_bounds(self, query: Query) -> tuple[int, int] | None:
        """First and last time of the points the query's conditions match (over every field)."""
        base = data_bounds_query(query)
        first = list(self.iter_rows(base))
        if not first:
            return None
        last = list(self.iter_rows(base.order_by("time", "desc")))
        return first[0][0], last[0][0]

    def _partial(self, query: Query) -> bool:
        """True when the query selects too few columns to build instances (then rows are typed rows)."""
        if not query.select_items:
            return False
        needed = {c.key for c in (*self.declaration.tags, *self.declaration.fields) if not c.optional}
        return not needed <= {*query.output_names, *self._fixed_keys}

    def iter_query(self, query: Query, chunk_size: int = 10_000) -> Iterator[Any]:
        """Stream the results: instances for plain selects, typed rows for aggregates, groups or a
        selection of some columns."""
        query = self.statement(query)
        if self.gives_typed_rows(query):
            yield from typed_rows(self.client.result_series(query))
            return
        for objects in self._object_chunks(query, chunk_size):
            yield from objects

    def iter_rows(
        self, query: Query, columns: tuple[str, ...] = (), chunk_size: int = 10_000
    ) -> Iterator[tuple[Any, ...]]:
        """Tuples `(time ns, *columns)` of the answer, streamed (see `Query.rows`); a column that
        is a series tag of a grouped answer takes the tag's value."""
        wanted = ("time", *columns)
        for series in self.client.stream_series(self.statement(query), chunk_size):
            names = series["columns"]
            if tuple(names) == wanted:
                yield from map(tuple, series["values"])
                continue
            tags = series.get("tags") or {}
            position = {name: i for i, name in enumerate(names)}
            picks = [position.get(name) for name in wanted]
            constants = [tags.get(name) for name in wanted]
            for values in series["values"]:
                yield tuple(values[i] if i is not None else c for i, c in zip(picks, constants))

    def _object_chunks(self, query: Query, chunk_size: int) -> Iterator[list[Any]]:
        """Instances of a plain select, one list per chunk of the answer as it arrives."""
        mapper = self.instance_mapper()
        for series in self.client.stream_series(query, chunk_size):
            yield mapper.objects(series)

    def instance_mapper(self) -> InstanceMapper:
        """Instances of this repository's class from the series of an answer (fixed tags filled in)."""
        return InstanceMapper(self.cls, self._fixed_keys)

    def gives_typed_rows(self, query: Query) -> bool:
        """True when the query's rows are typed rows (aggregates, groups, some columns), not instances."""
        grouped = query.is_aggregate or query.group_tags or query.interval is not None
        return bool(grouped or self._partial(query))

    def all(self, query: Query[U]) -> list[U]:
        """Every result in a list, filled chunk by chunk as the answer streams in."""
        if self.gives_typed_rows(query):  # (time-grouped is typed, so `statement` leaves the rest alone)
            return list(self.iter_query(query))
        out: list[Any] = []
        for objects in self._object_chunks(self.statement(query), QUERY_CHUNK_SIZE):
            out += objects
        return out

    def first(self, query: Query[U]) -> U | None:
        """The first result, or None."""
        for item in self.iter_query(query.limit(1) if query.limit_value is None else query):
            return item
        return None

    def count(self, query: Query) -> int:
        """How many points match the query's conditions and bounds."""
        return count_from(self.client.result_series(count_query(query)))

    def exists(self, query: Query) -> bool:
        return self.first(query) is not None

    def to_dataframe(self, query: Query) -> pandas.DataFrame:
        """The results as a DataFrame with a UTC `time` index."""
        return frame_of(self.iter_query(query))

    # -- deleting ------------------------------------------------------------
    def delete(
        self,
        *conditions: Any,
        since: TimeLike | None = None,
        until: TimeLike | None = None,
        before: TimeLike | None = None,
        **tags: Any,
    ) -> None:
        """Delete points by tag conditions and time bounds (a field condition is refused).

        `since` and `until` are inclusive; `before` is an exclusive end.
        """
        decl = self.declaration
        fixed = [col(key) == value for key, value in self.tags.items()]
        keys = {c.attr: c.key for c in decl.tags}
        keyed = {keys.get(name, name): value for name, value in tags.items()}
        fields = [c.key for c in decl.fields]
        bounds = {"since": since, "until": until, "before": before}
        statement = admin.delete(self.measurement, *fixed, *conditions, fields=fields, **bounds, **keyed)
        self.client.execute(statement)

    def drop(self) -> None:
        """Drop the whole measurement (with every tag, not only the fixed ones)."""
        self.client.execute(admin.drop_measurement(self.measurement))


class InstanceMapper:
    """Instances of a declared class from the series of an answer (`rows.objects_of`: the C
    decoder when built), with a repository's fixed tags filled in."""

    def __init__(self, cls: type, fixed: Mapping[str, str] | None = None):
        self.cls = cls
        self.fixed = dict(fixed or {})

    def objects(self, series: Mapping[str, Any]) -> list[Any]:
        tags = {**self.fixed, **series["tags"]} if series.get("tags") else self.fixed
        return objects_of(self.cls, series["columns"], tags or None, series["values"])

    def rows(self, series: Mapping[str, Any]) -> Iterator[Any]:
        return iter(self.objects(series))


def typed_rows(series_list: Iterable[Mapping[str, Any]]) -> Iterator[Any]:
    """Typed rows (time, group tags, columns as attributes) of every series of an answer."""
    for series in series_list:
        tags = series.get("tags") or {}
        columns = series["columns"]
        row_class = _row_class(tuple(columns), tuple(sorted(tags)))
        for values in series["values"]:
            data = dict(zip(columns, values))
            data.update(tags)
            data["time"] = from_ns(data["time"])
            yield row_class(**{_attr_name(k): v for k, v in data.items()})


def count_query(query: Query) -> Query:
    """The statement that counts the points a query's conditions and bounds match."""
    return _filter_only(query).select(count_of("*"))


def count_from(series_list: Sequence[Mapping[str, Any]]) -> int:
    """The count in the answer of `count_query`."""
    if not series_list:
        return 0
    return int(max(v for v in series_list[0]["values"][0][1:] if v is not None))


def data_bounds_query(query: Query) -> Query:
    """The first point the query's conditions match (over every field); `.order_by("time", "desc")`
    for the last."""
    return _filter_only(query).limit(1)


def frame_of(items: Iterable[Any]) -> pandas.DataFrame:
    """Instances or typed rows as a DataFrame with a UTC `time` index."""
    import pandas

    frame = pandas.DataFrame.from_records([attrs.asdict(item, recurse=False) for item in items])
    if frame.empty:
        return frame
    frame["time"] = pandas.to_datetime(frame["time"], utc=True)
    return frame.set_index("time")


def _as_dict(error: ValidationError) -> dict[str, Any]:
    """A validation error's problems by name (a bare message under `_schema`)."""
    return dict(error.errors) if isinstance(error.errors, dict) else {"_schema": [str(error)]}


def pair_columns(points: list[Any], time_key: str, value_key: str) -> tuple[list[int], list[float]] | None:
    """(times in ns, values) when every point is a dict of exactly a valid `time_key` and a finite
    float/int `value_key`; else None (the checked path names what is wrong)."""
    if set(map(type, points)) != {dict} or set(map(len, points)) != {2}:
        return None
    try:
        times = list(map(itemgetter(time_key), points))
        values = list(map(itemgetter(value_key), points))
    except KeyError:
        return None
    if set(map(type, times)) != {int}:
        try:  # datetimes, ISO texts: the same conversion the checked path applies
            times = [to_ns(t) for t in times]
        except ValidationError:
            return None
    if not (MIN_NS <= min(times) and max(times) <= MAX_NS):
        return None
    kinds = set(map(type, values))
    if not kinds <= {float, int}:  # numpy numbers as a float (a float32 by its shortest text)
        if any(k is bool or k.__name__ == "bool_" or not issubclass(k, numbers.Real) for k in kinds):
            return None  # bools and everything else take the checked path
        try:
            values = list(map(float_value, values))
        except (OverflowError, ValueError):
            return None
    elif int in kinds:
        try:
            values = list(map(float, values))
        except OverflowError:
            return None
    if not math.isfinite(sum(values)):  # finite sum: every value finite (else a NaN or inf shows)
        return None
    return times, values


def _counted(batches: Iterable[Batch], update: Callable[[int], object]) -> Iterator[Batch]:
    """The batches, reporting each one's points to `update` (a progress bar) as it is handed on."""
    for batch in batches:
        yield batch
        update(len(batch))


def _filter_only(query: Query) -> Query:
    """The query's measurement, conditions and time bounds, without selection, grouping or paging."""
    return attrs.evolve(
        query,
        select_items=(),
        interval=None,
        interval_offset=None,
        group_tags=(),
        fill_value=None,
        order=None,
        limit_value=None,
        offset_value=None,
        slimit_value=None,
        soffset_value=None,
        executor=None,
    )


_NOT_IDENT = re.compile(r"\W")


def _attr_name(column: str) -> str:
    name = _NOT_IDENT.sub("_", column)
    if not name or name[0].isdigit() or keyword.iskeyword(name):
        name = "_" + name
    return name


@lru_cache(maxsize=256)
def _row_class(columns: tuple[str, ...], tags: tuple[str, ...]) -> type:
    """A frozen attrs class for rows of these columns and group tags.

    Two different columns whose names map to the same attribute (`"a b"` and `"a_b"`) raise
    ValidationError: one of them would be dropped. Name them apart with `.as_(...)`."""
    by_attr: dict[str, list[str]] = {}
    for column in dict.fromkeys((*columns, *tags)):
        by_attr.setdefault(_attr_name(column), []).append(column)
    clashes = {attr: keys for attr, keys in by_attr.items() if len(keys) > 1}
    if clashes:
        attr, keys = next(iter(clashes.items()))
        raise ValidationError(
            {
                "columns": [
                    f"columns {', '.join(map(repr, keys))} would all be the row attribute {attr!r}: "
                    "name them apart with .as_(...) in the select"
                ]
            }
        )
    return attrs.make_class("Row", list(by_attr), frozen=True, slots=True)
