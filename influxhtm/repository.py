"""`Repository`: write declared objects and read them back, typed.

Writes are validated, encoded and posted in batches while the next batch is
being encoded (one batch in flight at a time, so memory stays constant for any
generator). Queries from `query()` are bound to the repository: iterating gives
instances of the declared class for plain selects, and typed rows (time, group
tags, aggregate aliases) for aggregated or grouped ones.
"""

from __future__ import annotations

import keyword
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from functools import lru_cache, partial
from typing import TYPE_CHECKING, Any

import attrs

from .declarations import declaration
from .errors import ValidationError, check_positive_int
from .influxql import Query, admin, col
from .influxql import count as count_of
from .line_protocol import Batch, encode_pairs_in_c, encoder_for
from .rows import row_mapper
from .times import from_ns, to_ns
from .writing import (
    C_SLICE,
    UnmadeBatch,
    chunks,
    encode_in_c,
    encode_in_slices,
    join_slices,
    post_pipelined,
)

if TYPE_CHECKING:
    import pandas

    from .client import InfluxHtmClient


class Repository:
    """Objects of one declared measurement class in one database, stored in `measurement`
    (default: the declared one) with the fixed `tags` (as PyPika's `Table(name)`).

    Every point written carries the fixed tags; every query reads that measurement
    with those tag conditions. A fixed tag that is also a declared tag must agree
    with each object's value (a mapping may leave it out).
    """

    def __init__(
        self,
        client: InfluxHtmClient,
        cls: type,
        measurement: str | None = None,
        tags: Mapping[str, str] | None = None,
    ):
        self.client = client
        self.cls = cls
        self.declaration = declaration(cls)
        self.measurement = self.declaration.measurement if measurement is None else measurement
        self.tags = dict(tags or {})
        self._encoder: Callable[[Any], str] | None = None
        #: Fixed tags that are declared tags, by attribute name: a mapping that leaves them out gets them.
        self._fixed_attrs = {c.attr: self.tags[c.key] for c in self.declaration.tags if c.key in self.tags}

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

    def add(self, obj: Any) -> None:
        """Write one object."""
        self.add_all([obj])

    def add_all(
        self, objects: Iterable[Any], batch_size: int = 10_000, *, connections: int | None = None
    ) -> int:
        """Write objects in batches; returns how many were written.

        Each batch is validated whole before it is sent: a bad object stops the
        write before its batch leaves, and the error names its index and field.
        While batches travel over up to `connections` connections (default
        `writing.DEFAULT_CONNECTIONS`; 1 stores them strictly in order), the next is encoded.
        """
        check_positive_int(batch_size, "batch_size")
        if isinstance(objects, (self.cls, Mapping)):
            raise ValidationError({"objects": ["give an iterable of objects (use add() for one)"]})
        return post_pipelined(
            self.client,
            self._batches(objects, batch_size),
            total=len(objects) if isinstance(objects, Sequence) else None,
            retention_policy=self.declaration.retention_policy,
            connections=connections,
        )

    def line(self, obj: Any) -> str:
        """The line protocol of one object (a mapping is loaded and checked first)."""
        return self._encode(obj if type(obj) is self.cls else self._coerce(obj))

    def fast_batches(self, points: list[Any], batch_size: int) -> Iterator[Batch] | None:
        """Batches of a list of plain `{time, <field>}` dicts made by the C encoder, when it is built,
        the declaration's every tag is fixed here and its one field a float (a sensor's points), and
        every point is checked fit first (an int ns or aware datetime time in range, a finite
        number); else None. Exact nanoseconds are kept."""
        encode = self._encode
        if not points or encode_pairs_in_c(encode, points, 0, len(points), check_only=True) is not True:
            return None

        def encode_range(start: int, stop: int) -> str:
            text = encode_pairs_in_c(encode, points, start, stop)
            if text is None:  # the list changed since it was checked: the checked path
                return self._checked_batch(points[start:stop], start).data.decode("utf-8")
            return text  # type: ignore[no-any-return]

        return (
            Batch.joined(join_slices(encode_range, i, min(i + batch_size, len(points)), C_SLICE),
                         min(batch_size, len(points) - i))
            for i in range(0, len(points), batch_size)
        )

    def _batches(self, objects: Iterable[Any], batch_size: int) -> Iterator[Batch]:
        """One `Batch` per chunk of objects, validated and encoded."""
        encode = self._encode
        cls = self.cls
        offset = 0
        for chunk in chunks(objects, batch_size):
            body = encode_in_c(encode, chunk)
            lines: Callable[[], list[str]] = partial(list, map(encode, chunk))  # if a string holds "\n"
            if body is not None:  # all of the class, formatted in C (see line_protocol.encode_slice)
                yield Batch.joined(body, len(chunk), lines)
            elif set(map(type, chunk)) == {cls}:
                # Instances were validated when they were built: formatting cannot fail.
                yield Batch.joined(encode_in_slices(encode, chunk), len(chunk), lines)
            else:
                try:
                    batch = self._checked_batch(chunk, offset)
                except ValidationError as error:
                    raise UnmadeBatch(error, len(chunk)) from None
                yield batch
            offset += len(chunk)

    def _checked_batch(self, chunk: list[Any], offset: int) -> Batch:
        """A batch with mappings or foreign objects: coerce each, report every problem by index."""
        encode: Callable[..., str] = self._encode
        lines: list[str] = []
        errors: dict[int, Any] = {}
        for index, obj in enumerate(chunk, start=offset):
            try:
                if isinstance(obj, Mapping):  # stamped with its exact time, as the C path does
                    lines.append(encode(self._coerce(obj), self._exact_ns(obj)))
                    continue
                if type(obj) is not self.cls:
                    obj = self._coerce(obj)
                lines.append(encode(obj))
            except ValidationError as error:
                errors[index] = error.errors or str(error)
        if errors:
            raise ValidationError(errors)
        return Batch.of_lines(lines)

    def _exact_ns(self, mapping: Mapping[str, Any]) -> int:
        """The nanoseconds of a (loaded, so valid) mapping's time: an instance holds microseconds."""
        column = self.declaration.time
        raw = mapping[column.key] if column.key in mapping else mapping[column.attr]
        return to_ns(raw, name=column.attr, naive=self.declaration.naive_times)

    def _coerce(self, obj: Any) -> Any:
        if isinstance(obj, self.cls):
            return obj
        if isinstance(obj, Mapping):
            if self._fixed_attrs:
                obj = {**self._fixed_attrs, **obj}
            return self.cls.load(obj)  # type: ignore[attr-defined]
        raise ValidationError({"object": [f"{obj!r} is not a {self.cls.__name__} or a mapping"]})

    # -- reading -------------------------------------------------------------
    def query(self) -> Query:
        """A query of this measurement, bound to the repository (iterate it, or `.all()`, ...)."""
        query = Query().from_(self.cls)
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
        base = _filter_only(query).limit(1)
        first = self.client.rows(base)
        if not first:
            return None
        last = self.client.rows(base.order_by("time", "desc"))
        return first[0][0], last[0][0]

    def _partial(self, query: Query) -> bool:
        """True when the query selects too few columns to build instances (then rows are typed rows)."""
        if not query.select_items:
            return False
        needed = {c.key for c in (*self.declaration.tags, *self.declaration.fields) if not c.optional}
        return not needed <= set(query.output_names)

    def iter_query(self, query: Query, chunk_size: int = 10_000) -> Iterator[Any]:
        """Stream the results: instances for plain selects, typed rows for aggregates, groups or a
        selection of some columns."""
        query = self.statement(query)
        if query.is_aggregate or query.group_tags or query.interval is not None or self._partial(query):
            yield from self._typed_rows(query)
            return
        mappers: dict[tuple[Any, ...], Any] = {}
        for series in self.client.stream_series(query, chunk_size):
            tags = series.get("tags") or {}
            key = (tuple(series["columns"]), tuple(sorted(tags.items())))
            mapper = mappers.get(key)
            if mapper is None:
                mapper = mappers[key] = row_mapper(self.cls, series["columns"], tags=tags or None)
            for values in series["values"]:
                yield mapper(values)

    def _typed_rows(self, query: Query) -> Iterator[Any]:
        for series in self.client.result_series(query):
            tags = series.get("tags") or {}
            columns = series["columns"]
            row_class = _row_class(tuple(columns), tuple(sorted(tags)))
            for values in series["values"]:
                data = dict(zip(columns, values))
                data.update(tags)
                data["time"] = from_ns(data["time"])
                yield row_class(**{_attr_name(k): v for k, v in data.items()})

    def all(self, query: Query) -> list[Any]:
        return list(self.iter_query(query))

    def first(self, query: Query) -> Any:
        """The first result, or None."""
        for item in self.iter_query(query.limit(1) if query.limit_value is None else query):
            return item
        return None

    def count(self, query: Query) -> int:
        """How many points match the query's conditions and bounds."""
        base = _filter_only(query).select(count_of("*"))
        rows = self.client.result_series(base)
        if not rows:
            return 0
        series = rows[0]
        return int(max(v for v in series["values"][0][1:] if v is not None))

    def exists(self, query: Query) -> bool:
        return self.first(query) is not None

    def to_dataframe(self, query: Query) -> pandas.DataFrame:
        """The results as a DataFrame with a UTC `time` index."""
        import pandas

        records = []
        for item in self.iter_query(query):
            records.append(attrs.asdict(item, recurse=False))
        frame = pandas.DataFrame.from_records(records)
        if frame.empty:
            return frame
        frame["time"] = pandas.to_datetime(frame["time"], utc=True)
        return frame.set_index("time")

    # -- deleting ------------------------------------------------------------
    def delete(
        self, *conditions: Any, since: Any = None, until: Any = None, before: Any = None, **tags: Any
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
