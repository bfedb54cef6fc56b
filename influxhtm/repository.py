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
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import attrs

from .declarations import declaration
from .errors import ValidationError
from .influxql import Query, admin
from .influxql import count as count_of
from .influxql import first as first_of
from .influxql import last as last_of
from .line_protocol import encoder_for
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

    def add_all(self, objects: Iterable[Any], batch_size: int = 5000) -> int:
        """Write objects in batches; returns how many were written.

        Each batch is validated whole before it is sent: a bad object stops the
        write before its batch leaves, and the error names its index and field.
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValidationError({"batch_size": [f"{batch_size!r} is not a positive integer"]})
        if isinstance(objects, (self.cls, Mapping)):
            raise ValidationError({"objects": ["give an iterable of objects (use add() for one)"]})
        written = 0
        pending: Future[None] | None = None
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="influxhtm-write") as poster:
            try:
                for body, size in self._batches(objects, batch_size):
                    if pending is not None:
                        pending.result()
                    written_before = written
                    pending = poster.submit(self._post, body)
                    written = written_before + size
                if pending is not None:
                    pending.result()
            except BaseException:
                if pending is not None:
                    pending.cancel()
                raise
        return written

    def _post(self, body: str) -> None:
        self.client.write_lines([body])

    def _batches(self, objects: Iterable[Any], batch_size: int) -> Iterator[tuple[str, int]]:
        """(line protocol body, count) per batch, validated and encoded."""
        encode = self._encode
        cls = self.cls
        lines: list[str] = []
        errors: dict[int, Any] = {}
        for index, obj in enumerate(objects):
            try:
                if type(obj) is not cls:
                    obj = self._coerce(obj)
                lines.append(encode(obj))
            except ValidationError as error:
                errors[index] = error.errors or str(error)
            if len(lines) + len(errors) >= batch_size:
                if errors:
                    raise ValidationError(errors)
                yield "\n".join(lines), len(lines)
                lines = []
        if errors:
            raise ValidationError(errors)
        if lines:
            yield "\n".join(lines), len(lines)

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
        field = self.declaration.fields[0].key
        base = attrs.evolve(
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
        lo = self.client.rows(base.select(first_of(field)))
        if not lo:
            return None
        hi = self.client.rows(base.select(last_of(field)))
        return min(r[0] for r in lo), max(r[0] for r in hi)

    def iter_query(self, query: Query, chunk_size: int = 10_000) -> Iterator[Any]:
        """Stream the results: instances for plain selects, typed rows for aggregates or groups."""
        query = self._prepare(query)
        if query.is_aggregate or query.group_tags or query.interval is not None:
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
        base = attrs.evolve(
            query,
            select_items=(count_of("*"),),
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
    def delete(self, *conditions: Any, since: Any = None, until: Any = None, **tags: Any) -> None:
        """Delete points by tag conditions and time bounds (a field condition is refused)."""
        self.client.execute(admin.delete(self.cls, *conditions, since=since, until=until, **tags))

    def drop(self) -> None:
        """Drop the whole measurement."""
        self.client.execute(admin.drop_measurement(self.declaration.measurement))


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
