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
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from functools import lru_cache, partial
from itertools import islice
from typing import TYPE_CHECKING, Any, NoReturn

import attrs

from .connection import merge_refusals
from .declarations import declaration
from .errors import PartialWriteError, ValidationError, check_positive_int
from .influxql import Query, admin
from .influxql import count as count_of
from .line_protocol import Batch, encode_slice, encode_slice_in_c, encoder_for
from .rows import row_mapper
from .times import from_ns

if TYPE_CHECKING:
    import pandas

    from .client import InfluxHtmClient


class Repository:
    """Objects of one declared measurement class in one database."""

    def __init__(self, client: InfluxHtmClient, cls: type):
        self.client = client
        self.cls = cls
        self.declaration = declaration(cls)
        self._encode = encoder_for(cls)

    def __repr__(self) -> str:
        return f"Repository({self.cls.__name__}, database={self.client.database!r})"

    # -- writing -------------------------------------------------------------
    def add(self, obj: Any) -> None:
        """Write one object."""
        self.add_all([obj])

    def add_all(self, objects: Iterable[Any], batch_size: int = 10_000) -> int:
        """Write objects in batches; returns how many were written.

        Each batch is validated whole before it is sent: a bad object stops the
        write before its batch leaves, and the error names its index and field.
        While one batch travels, the next is encoded.
        """
        check_positive_int(batch_size, "batch_size")
        if isinstance(objects, (self.cls, Mapping)):
            raise ValidationError({"objects": ["give an iterable of objects (use add() for one)"]})
        return post_pipelined(
            self.client,
            self._batches(objects, batch_size),
            total=len(objects) if isinstance(objects, Sequence) else None,
            retention_policy=self.declaration.retention_policy,
        )

    def _batches(self, objects: Iterable[Any], batch_size: int) -> Iterator[Batch]:
        """One `Batch` per chunk of objects, validated and encoded."""
        encode = self._encode
        cls = self.cls
        offset = 0
        for chunk in _chunks(objects, batch_size):
            body = _encode_in_c(encode, chunk)
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
        encode = self._encode
        lines: list[str] = []
        errors: dict[int, Any] = {}
        for index, obj in enumerate(chunk, start=offset):
            try:
                if type(obj) is not self.cls:
                    obj = self._coerce(obj)
                lines.append(encode(obj))
            except ValidationError as error:
                errors[index] = error.errors or str(error)
        if errors:
            raise ValidationError(errors)
        return Batch.of_lines(lines)

    def _coerce(self, obj: Any) -> Any:
        if isinstance(obj, self.cls):
            return obj
        if isinstance(obj, Mapping):
            return self.cls.load(obj)  # type: ignore[attr-defined]
        raise ValidationError({"object": [f"{obj!r} is not a {self.cls.__name__} or a mapping"]})

    # -- reading -------------------------------------------------------------
    def query(self) -> Query:
        """A query of this measurement, bound to the repository (iterate it, or `.all()`, ...)."""
        return Query().from_(self.cls).bind(self)

    def _prepare(self, query: Query) -> Query:
        """Bound a time-grouped query to the data when it lacks bounds (no filling from 1970)."""
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
        query = self._prepare(query)
        if query.is_aggregate or query.group_tags or query.interval is not None or self._partial(query):
            yield from self._typed_rows(query)
            return
        text, params = query.render()
        mappers: dict[tuple[Any, ...], Any] = {}
        for result in self.client.connection.query_chunks(
            text, params=params, database=self.client.database, chunk_size=chunk_size
        ):
            for series in result.get("series", []):
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
        statement = admin.delete(self.cls, *conditions, since=since, until=until, before=before, **tags)
        self.client.execute(statement)

    def drop(self) -> None:
        """Drop the whole measurement."""
        self.client.execute(admin.drop_measurement(self.declaration.measurement))


def post_pipelined(
    client: InfluxHtmClient,
    batches: Iterable[Batch],
    *,
    total: int | None = None,
    retention_policy: str | None = None,
) -> int:
    """POST each batch in a background thread while the next batch is made.

    One POST at a time, in order, so a later point overwrites an earlier one as
    in a sequential write; the next batch is encoded meanwhile (encoding holds the
    GIL, the POST mostly waits on the socket). Points the server refuses do not
    stop the write: every batch is sent, and one `PartialWriteError` at the end
    carries the exact counts (`written`, `dropped`, `not_sent`) and the refused
    lines. An error making a batch (a ValidationError) or sending one (the server
    unreachable) stops the write: nothing after it is sent, and the error is
    raised as it is, or, when points were refused before it, as the cause of the
    `PartialWriteError` whose `not_sent` counts the points left out (of the `total`
    given, or of the batches taken). Returns the number of points written.
    """
    write = Writes(client, retention_policy)
    taken = 0
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="influxhtm-write") as poster:
        try:
            for batch in batches:
                write.settle()
                write.submit(poster, batch)
                taken += len(batch)
            write.settle()
        except BaseException as error:  # noqa: BLE001 - re-raised below, with the counts if any refusal
            write.abort(error, unmade=(total - taken) if total is not None else _unmade(error))
    if write.refusals:
        raise write.refused()
    return write.written


class Writes:
    """The state of one pipelined write: the batch in flight, the counts, the refusals."""

    def __init__(self, client: InfluxHtmClient, retention_policy: str | None):
        self.client = client
        self.retention_policy = retention_policy
        self.written = 0
        self.failed = 0  # points of a batch whose POST failed (not a refusal): not sent
        self.refusals: list[PartialWriteError] = []
        self.pending: Future[None] | None = None
        self.pending_count = 0

    def submit(self, poster: ThreadPoolExecutor, batch: Batch) -> None:
        self.pending = poster.submit(self.client.write_lines, batch, retention_policy=self.retention_policy)
        self.pending_count = len(batch)

    def settle(self) -> None:
        """Wait for the batch in flight; count it as written, or keep its refusal."""
        pending, self.pending = self.pending, None
        if pending is None:
            return
        try:
            pending.result()
        except PartialWriteError as refusal:
            self.refusals.append(refusal)
            self.written += refusal.written
        except BaseException:
            self.failed += self.pending_count
            raise
        else:
            self.written += self.pending_count

    def abort(self, error: BaseException, unmade: int) -> NoReturn:
        """The write stopped at `error`: settle the batch in flight, then raise with the counts."""
        try:
            self.settle()
        except BaseException:  # noqa: BLE001, S110 - counted in `failed`; `error` is what is raised
            pass
        cause = error.error if isinstance(error, UnmadeBatch) else error
        if not self.refusals:
            if cause is error:
                raise error
            raise cause from None
        raise self.refused(not_sent=unmade + self.failed, stopped_by=cause) from cause

    def refused(self, not_sent: int = 0, stopped_by: BaseException | None = None) -> PartialWriteError:
        """The one error of the write: every refusal, with the exact counts."""
        return merge_refusals(
            self.refusals,
            written=self.written,
            not_sent=not_sent,
            database=self.client.database,
            url=self.client.settings.url,
            stopped_by=stopped_by,
        )


class UnmadeBatch(Exception):
    """Making a batch of `count` points failed with `error` (raised by batch generators, so that
    a write that stops there can count the points it did not send)."""

    def __init__(self, error: BaseException, count: int):
        super().__init__(str(error))
        self.error = error
        self.count = count


def _unmade(error: BaseException) -> int:
    return error.count if isinstance(error, UnmadeBatch) else 0


#: Lines formatted between two releases of the GIL by `encode_in_slices`.
SLICE = 1000
#: The same for the C encoder, ten times faster: a slice takes about 1-2 ms (below the 5 ms switch
#: interval), and each `time.sleep(0)` costs about 30 µs of CPU and 80 µs of waiting.
C_SLICE = 10_000


def encode_in_slices(encode: Callable[..., str], *columns: Sequence[Any]) -> str:
    """`"\n".join(map(encode, *columns))`, handing the GIL over every `SLICE` lines.

    `join(map(...))` loops in C and holds the GIL throughout, so a POST whose
    answer has arrived would wait for the whole batch to be formatted before it
    could finish; `time.sleep(0)` between slices lets it finish at once, and the
    next POST starts sooner. (Measured: about 10-20% more points/s on 2 cores.)
    """
    if len(columns) == 1:  # declared objects: the C encoder when it is built (see `encode_slice`)
        objs = columns[0]
        return join_slices(lambda start, stop: encode_slice(encode, objs, start, stop), 0, len(objs))
    return join_slices(
        lambda start, stop: "\n".join(map(encode, *(column[start:stop] for column in columns))),
        0,
        len(columns[0]),
    )


def _encode_in_c(encode: Callable[[Any], str], objs: list[Any]) -> str | None:
    """`encode_in_slices(encode, objs)` made by the C encoder, or None if it cannot make all of it."""
    parts = []
    for start in range(0, len(objs), C_SLICE):
        text = encode_slice_in_c(encode, objs, start, start + C_SLICE)
        if text is None:
            return None
        parts.append(text)
        time.sleep(0)
    return parts[0] if len(parts) == 1 else "\n".join(parts)


def join_slices(encode_range: Callable[[int, int], str], start: int, stop: int, size: int = SLICE) -> str:
    """`encode_range(a, b)` of every slice of `size` of `range(start, stop)`, joined by newlines,
    handing the GIL over after each slice (see `encode_in_slices`)."""
    parts = []
    for a in range(start, stop, size):
        parts.append(encode_range(a, min(a + size, stop)))
        time.sleep(0)
    return parts[0] if len(parts) == 1 else "\n".join(parts)


def _chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """Lists of up to `size` items: slices of a list, else taken from the iterator as it goes."""
    if isinstance(items, list):
        for start in range(0, len(items), size):
            yield items[start : start + size]
        return
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


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
    """A frozen attrs class for rows of these columns and group tags."""
    names = [_attr_name(c) for c in (*columns, *tags)]
    return attrs.make_class("Row", list(dict.fromkeys(names)), frozen=True, slots=True)
