"""`DatabaseClient`: statements, queries, writes and repositories of one database.

The orm layer's client; `influxhtm.htm.client.InfluxHtmClient` adds the sensors on top.

The constructor does no I/O: settings are resolved (arguments, then `INFLUX_*`).
No statement that needs admin rights is sent on the way of a write: a write goes
straight to the database, and only when the server answers that the database does
not exist is it created (with `create=True`, the default; an administrator's right)
and the write sent again. A user granted WRITE or ALL on an existing database needs
nothing more.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Self, TypeVar

from influxhtm.core.errors import (
    AuthenticationError,
    DatabaseNotFound,
    NotFound,
    QueryError,
    ValidationError,
    check_name,
)
from influxhtm.core.times import TimeLike, from_ns, inclusive_range
from influxhtm.influxql import Query, admin, col
from influxhtm.influxql.expressions import bound_parameters
from influxhtm.io.connection import Connection
from influxhtm.io.settings import Settings
from influxhtm.model.declarations import is_declared
from influxhtm.model.line_protocol import Batch
from influxhtm.model.row_mappers import from_results
from influxhtm.orm.repository import Repository

if TYPE_CHECKING:
    from influxhtm.orm.batching import BatchingWriter

log = logging.getLogger(__name__)
T = TypeVar("T")


class ClientCore:
    """What the sync and async clients share, without I/O: the database, its settings
    (arguments, then `INFLUX_*`), `create`, a connection of their transport (`_connect`), and
    what to do when the server says that the database does not exist (`_creating_missing`)."""

    #: Keyword arguments of the constructor that go to the transport (`_connect`), not the settings.
    transport_options: tuple[str, ...] = ()

    def __init__(
        self,
        database: str,
        host: str | None = None,
        port: int | str | None = None,
        username: str | None = None,
        password: str | None = None,
        ssl: bool | str | None = None,
        *,
        create: bool = True,
        **options: Any,
    ):
        database = check_database(database)
        transport = {name: options.pop(name) for name in self.transport_options if name in options}
        settings = Settings.resolve(host, port, username, password, ssl, **options)
        self._open(database, settings, create, **transport)

    @classmethod
    def from_settings(cls, database: str, settings: Settings, *, create: bool = True) -> Self:
        """A client with ready-made settings (e.g. a worker process of a sweep)."""
        client = cls.__new__(cls)
        client._open(check_database(database), settings, create)
        return client

    def _open(self, database: str, settings: Settings, create: bool, **transport: Any) -> None:
        self.database = database
        self.settings = settings
        self.create = check_create(create)
        self.connection = self._connect(settings, **transport)

    def _connect(self, settings: Settings, **transport: Any) -> Any:
        """The transport's connection to the server (`Connection`, `AsyncConnection`)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(database={self.database!r}, url={self.settings.url!r})"

    @contextmanager
    def _creating_missing(self) -> Iterator[None]:
        """Around creating the database the server said is missing: raise `DatabaseNotFound`
        instead when `create` is off, or when the server refuses CREATE DATABASE to this user."""
        if not self.create:
            raise missing_database_error(self.database, self.settings, None)
        try:
            yield
        except AuthenticationError as error:
            raise missing_database_error(self.database, self.settings, error) from None
        log.info("database %r did not exist on %s: created it", self.database, self.settings.url)


class DatabaseClient(ClientCore):
    """Statements, queries, writes and repositories over one InfluxDB database.

    `create`: when a write (or a retention policy, or a continuous query) finds that the
    database does not exist, create it and go on (True, the default; CREATE DATABASE needs
    admin rights), or raise `DatabaseNotFound` (False). The database is never created before
    the server has said that it is missing.
    """

    connection: Connection

    def _connect(self, settings: Settings, **transport: Any) -> Connection:
        return Connection(settings)

    def __getstate__(self) -> dict[str, Any]:
        return {"database": self.database, "settings": self.settings, "create": self.create}

    def __setstate__(self, state: dict[str, Any]) -> None:
        fresh = type(self).from_settings(
            state["database"], state["settings"], create=state.get("create", True)
        )
        self.__dict__.update(fresh.__dict__)

    def close(self) -> None:
        self.connection.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        """`with InfluxHtmClient(...) as client:` closes the connection at the end of the block."""
        self.close()

    # -- database ------------------------------------------------------------
    def create_database(self) -> None:
        """Create the database (nothing happens if it exists); needs admin rights."""
        self.execute(admin.create_database(self.database))

    def drop_database(self) -> None:
        """Drop the database and everything in it."""
        self.execute(admin.drop_database(self.database))

    def ping(self) -> str:
        """The server's version (raises InfluxConnectionError when unreachable)."""
        return self.connection.ping()

    # -- low level: the one place queries and writes go through ------------------
    def write_lines(self, lines: Sequence[str] | Batch, *, retention_policy: str | None = None) -> None:
        """POST encoded points (one point per item: a string field may hold newlines), or a `Batch`,
        to `retention_policy` if given, else the default one (a missing database: see `create` in
        the class docstring)."""
        if not len(lines):
            return
        batch = lines if isinstance(lines, Batch) else Batch.of_lines(lines)
        self._on_database(
            lambda: self.connection.write(batch, database=self.database, retention_policy=retention_policy)
        )

    def _on_database(self, action: Callable[[], T]) -> T:
        """Run `action`, which needs the database; if the server answers that the database does not
        exist, create it (with `create`) and run `action` once more, else raise DatabaseNotFound.

        Nothing is created before that answer, so writing to an existing database needs no admin
        rights (CREATE DATABASE does, even for a database that exists)."""
        try:
            return action()
        except (NotFound, QueryError) as error:
            # The answer names the database in the server's own quoting, which differs from
            # ours for names with quotes or backslashes: the statement was for this database.
            if not _database_not_found(error):
                raise
        self._create_missing_database()
        return action()

    def _create_missing_database(self) -> None:
        with self._creating_missing():
            self.create_database()

    def execute(self, statement: Any) -> list[dict[str, Any]]:
        """Run a Query or admin Statement (anything with `render()`); returns the statement results."""
        text, params = statement.render()
        reads = getattr(statement, "method", "GET") == "GET"
        try:
            return self.connection.query(text, params=params, database=self.database)
        except QueryError as error:
            if reads and _database_not_found(error):
                return []  # nothing written yet: a read of an absent database is empty
            raise

    def result_series(self, query: Any) -> list[dict[str, Any]]:
        """The series of a query's answer (`name`, `tags`, `columns`, `values`)."""
        return [s for result in self.execute(query) for s in result.get("series", [])]

    def query(self, text: str, params: Mapping[str, Any] | None = None, *, as_: Any = None) -> Any:
        """Run hand-written InfluxQL: the escape hatch for what the builder does not say.

        Values go only as bound parameters (`$name` in `text`, `params={"name": value}`; a
        str, int, float, bool, `regex()`, datetime or timedelta, never formatted into the
        text). The answer is read as every read is (chunked, never cut by max-row-limit):

        - `as_=None`: a list of dicts, one per row, with the series' tags and `time` as an
          aware UTC datetime;
        - `as_=Cls` (a declared class): instances of it (every series must be its measurement);
        - `as_="dataframe"`: a pandas DataFrame of those rows with a UTC `time` index.
        """
        if not isinstance(text, str) or not text.strip():
            raise ValidationError({"text": [f"{text!r} is not an InfluxQL statement"]})
        statement = admin.Statement(text, bound_parameters(params))
        if as_ is None or as_ == "dataframe":
            rows = [row for series in self.result_series(statement) for row in _row_dicts(series)]
            return rows if as_ is None else _rows_frame(rows)
        if isinstance(as_, type) and is_declared(as_):
            return from_results(as_, self.execute(statement))
        raise ValidationError({"as_": [f"{as_!r} is not None, 'dataframe' or a declared class"]})

    def rows(self, query: Any, columns: Sequence[str] | None = None) -> list[list[Any]]:
        """All rows of all series; with `columns`, each row holds those columns in that order."""
        out: list[list[Any]] = []
        for series in self.result_series(query):
            if columns is None:
                out.extend(series["values"])
            else:
                out.extend(_reorder(series["columns"], series["values"], columns))
        return out

    def stream_series(self, query: Query, chunk_size: int = 10_000) -> Iterator[dict[str, Any]]:
        """The series of a large answer as they arrive in chunks (a series may come in several
        parts); a read of a database not yet written is empty. Bound queries read through it
        (`Query.rows`, iteration, `.all()`)."""
        text, params = query.render()
        chunks = self.connection.query_chunks(
            text, params=params, database=self.database, chunk_size=chunk_size
        )
        try:
            for result in chunks:
                yield from result.get("series", [])
        except QueryError as error:
            if not _database_not_found(error):
                raise

    @staticmethod
    def bounded(query: Query, bounds: Any) -> Query:
        """A time-grouped `query` whose OPEN time ends are set to the data (`bounds()`: first and last ns).

        An open end would make the server fill empty buckets from 1970 (and up to now): an
        open lower end becomes the first point's time, an open upper end the last point's time
        plus 1 ns (`bounds()` is not called when both ends are given). An explicit end, from
        `since`/`until` or a `time` condition, is never moved, so `fill(...)` buckets inside
        it stay. Without data the open ends close the range on the explicit end (or at 0),
        and the answer is empty. The result is the statement that is sent (see `Query.statement`).
        """
        open_lower, open_upper = not query.has_lower_time_bound, not query.has_upper_time_bound
        if not (open_lower or open_upper):
            return query
        lo, hi = query.time_range()
        found = bounds()
        if found is None:
            anchor = lo if lo is not None else hi if hi is not None else 0
            first, end = anchor, anchor
        else:
            first, end = found[0], found[1] + 1
        if open_lower:
            query = query.with_time_bounds(first if hi is None else min(first, hi), None)
        if open_upper:
            query = query.with_time_bounds(None, end if lo is None else max(end, lo))
        return query

    def delete(
        self,
        measurement: str,
        /,
        since: TimeLike | None = None,
        until: TimeLike | None = None,
        before: TimeLike | None = None,
        **tags: str,
    ) -> None:
        """Delete points of a measurement matching tag equality and time bounds.

        `since` and `until` are inclusive, `before` exclusive (as `admin.delete`).
        """
        lo, hi = inclusive_range(since, until, before)
        conditions = [col(key) == value for key, value in tags.items()]
        try:
            self.execute(admin.delete(measurement, *conditions, since=lo, until=hi))
        except QueryError as error:
            if not _database_not_found(error):
                raise  # a database never written to has nothing to delete

    def tag_values(self, measurement: str, key: str, **where: str) -> list[str]:
        """The values of a tag key in a measurement, optionally filtered by tag equality."""
        conditions = [col(k) == v for k, v in where.items()]
        rows = self.rows(admin.show_tag_values(key, measurement, *conditions))
        return sorted({row[1] for row in rows})

    # -- introspection and administration ------------------------------------------
    def databases(self) -> list[str]:
        """Names of the server's databases."""
        return [row[0] for row in self.rows(admin.show_databases())]

    def measurements(self) -> list[str]:
        """Names of this database's measurements."""
        return [row[0] for row in self.rows(admin.show_measurements())]

    def tag_keys(self, measurement: str) -> list[str]:
        """Tag keys of a measurement."""
        return [row[0] for row in self.rows(admin.show_tag_keys(measurement))]

    def field_keys(self, measurement: str) -> dict[str, str]:
        """Field keys of a measurement with their types (float, integer, string, boolean)."""
        return {row[0]: row[1] for row in self.rows(admin.show_field_keys(measurement))}

    def series(self, measurement: str | None = None, **tags: str) -> list[str]:
        """Series keys (`measurement,tag=value,...`), optionally of one measurement and tag values."""
        conditions = [col(k) == v for k, v in tags.items()]
        return [row[0] for row in self.rows(admin.show_series(measurement, *conditions))]

    def retention_policies(self) -> list[dict[str, Any]]:
        """This database's retention policies, each a dict (name, duration, replicaN, default, ...)."""
        return self._records(admin.show_retention_policies(self.database))

    def _records(self, statement: Any, series_name: str | None = None) -> list[dict[str, Any]]:
        """Rows of a SHOW statement as dicts of column to value (of one named series, if given)."""
        return [
            dict(zip(series["columns"], row))
            for series in self.result_series(statement)
            if series_name is None or series.get("name") == series_name
            for row in series["values"]
        ]

    def create_retention_policy(
        self,
        name: str,
        duration: Any = None,
        replication: int = 1,
        shard_duration: Any = None,
        default: bool = False,
    ) -> None:
        """Create a retention policy (duration None keeps data forever)."""
        options = {"replication": replication, "shard_duration": shard_duration, "default": default}
        self._create_on_database(admin.create_retention_policy, name, duration=duration, **options)

    def alter_retention_policy(
        self,
        name: str,
        duration: Any = None,
        replication: int | None = None,
        shard_duration: Any = None,
        default: bool = False,
    ) -> None:
        """Change the given settings of a retention policy."""
        self.execute(
            admin.alter_retention_policy(
                name,
                database=self.database,
                duration=duration,
                replication=replication,
                shard_duration=shard_duration,
                default=default,
            )
        )

    def drop_retention_policy(self, name: str) -> None:
        self.execute(admin.drop_retention_policy(name, database=self.database))

    def continuous_queries(self) -> list[dict[str, Any]]:
        """This database's continuous queries, each a dict (name, query)."""
        return self._records(admin.show_continuous_queries(), series_name=self.database)

    def create_continuous_query(
        self, name: str, query: Query, resample_every: Any = None, resample_for: Any = None
    ) -> None:
        """Create a continuous query from a Query with `into(...)` and `group_by_time(...)`."""
        resample = {"resample_every": resample_every, "resample_for": resample_for}
        self._create_on_database(admin.create_continuous_query, name, query=query, **resample)

    def _create_on_database(self, build: Callable[..., admin.Statement], name: str, **options: Any) -> None:
        """Build the admin statement `build(name, database=<this database>, **options)` (checking its
        arguments before anything is sent) and run it; a missing database: see `_on_database`."""
        statement = build(name, database=self.database, **options)
        self._on_database(lambda: self.execute(statement))

    def drop_continuous_query(self, name: str) -> None:
        self.execute(admin.drop_continuous_query(name, database=self.database))

    # -- repositories ----------------------------------------------------------
    def writer(self, *, batch_size: int = 5000, flush_interval: float | None = 1.0) -> BatchingWriter:
        """A fire-and-forget batching writer of declared objects (a context manager that sends what
        is left on exit): batches of `batch_size`, sent every `flush_interval` seconds too, all
        through the one write pipeline (see `influxhtm.orm.batching`)."""
        from influxhtm.orm.batching import BatchingWriter

        return BatchingWriter(self, batch_size=batch_size, flush_interval=flush_interval)

    def repository(
        self,
        cls: type[T],
        *,
        measurement: str | None = None,
        tags: Mapping[str, str] | None = None,
        extra_tags: bool = False,
    ) -> Repository[T]:
        """A `Repository` of a declared measurement class over this database, stored in
        `measurement` (default: the declared one) with the fixed `tags` (a `Repository[Cls]`
        for type checkers); `extra_tags`: a mapping's undeclared keys are tags of its point."""
        return Repository(self, cls, measurement=measurement, tags=tags, extra_tags=extra_tags)


def check_database(name: object) -> str:
    """A database name InfluxDB 1.6 can write to: it reads the name as a file pattern when it opens a
    shard, so with a '[' in it the database is created but every write fails (HTTP 500)."""
    database = check_name(name, "database")
    if "[" in database:
        raise ValidationError(
            {"database": [f"{database!r} contains '[': InfluxDB 1.6 would create it but fail every write"]}
        )
    return database


def check_create(create: object) -> bool:
    if not isinstance(create, bool):
        raise ValidationError({"create": [f"{create!r} is not True or False"]})
    return create


def missing_database_error(
    database: str, settings: Settings, refused: AuthenticationError | None
) -> DatabaseNotFound:
    """The error of a write to a missing database that is not created: `create` is off (`refused`
    None), or the server `refused` CREATE DATABASE to this user."""
    url, name = settings.url, _quoted(database)
    if refused is None:
        return DatabaseNotFound(
            f"database {database!r} does not exist on InfluxDB at {url}; create it first with "
            "client.create_database() (or create=True, or --create on the command line), which needs "
            "admin rights",
            database=database,
            url=url,
        )
    user = settings.username
    who = f"user {user!r}" if user else "a client without credentials"
    grant = f" and GRANT WRITE (or ALL) ON {name} TO {_quoted(user)}" if user else ""
    return DatabaseNotFound(
        f"database {database!r} does not exist on InfluxDB at {url}, and {who} may not create "
        f"it: CREATE DATABASE needs admin rights (HTTP {refused.status}). Ask an administrator to run "
        f"CREATE DATABASE {name}{grant}",
        database=database,
        url=url,
    )


def _database_not_found(error: Exception) -> bool:
    return "database not found" in str(error)


def _quoted(name: str) -> str:
    """`name` as a double-quoted InfluxQL identifier, for a statement shown to the user."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _reorder(columns: Sequence[str], values: list[list[Any]], wanted: Sequence[str]) -> list[list[Any]]:
    index = {name: i for i, name in enumerate(columns)}
    if list(columns) == list(wanted):
        return values
    picks = [index.get(name) for name in wanted]
    return [[row[i] if i is not None else None for i in picks] for row in values]


def _row_dicts(series: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """One dict per row of a series: its tags, then its columns, `time` as an aware UTC datetime."""
    tags = series.get("tags") or {}
    columns = series["columns"]
    for values in series.get("values") or ():
        row = {**tags, **dict(zip(columns, values))}
        if isinstance(row.get("time"), int):
            row["time"] = from_ns(row["time"])
        yield row


def _rows_frame(rows: list[dict[str, Any]]) -> Any:
    """The rows as a DataFrame with a UTC `time` index (when the rows have a time)."""
    import pandas

    frame = pandas.DataFrame.from_records(rows)
    if frame.empty or "time" not in frame:
        return frame
    frame["time"] = pandas.to_datetime(frame["time"], utc=True)
    return frame.set_index("time")
