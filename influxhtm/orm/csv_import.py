"""Import a CSV file (NAB's format works as it is) into a sensor.

A CSV has a header row naming a time column (`timestamp` by default) and a value
column (`value`). Timestamps are ISO 8601 (`2014-04-01 00:00:00`, with or
without `T`, fraction or offset); naive ones are read in the zone given as `tz`
(UTC by default), because NAB and most exports carry no zone. CRLF and LF line
endings and a UTF-8 byte order mark are accepted.

In a zone with daylight saving, a naive time that the clock change skips (a
gap) or repeats (a fold) has no single meaning: the file is refused before
anything is written, with every such line named, unless `ambiguous` says which
reading to take ("earlier" or "later" instant).

A row that cannot be read (bad timestamp, value that is not a finite number,
missing cell) is reported with its line number, and every other row is written.

`Repository.import_csv` (`import_declared`) imports a CSV into a declared class
with the same contract: its header names the time and declared tags and fields
(a header that does not fit the class refuses the file before anything is
written), each row is loaded from text (`Cls.load(row, coerce=True)`), and a
row that cannot be an object is reported by line. Both go through the one write
pipeline; a row is written whole or reported, never in part.
InfluxDB keeps one point per series and timestamp, so rows that repeat an
earlier row's timestamp are stored as one point (the later value wins); they are
counted as *merged* so that no row is lost without a word.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Callable, Hashable
from datetime import datetime, timezone, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import attrs

from influxhtm.core.errors import AmbiguousTimeError, ConfigurationError, ValidationError, check_positive_int
from influxhtm.core.progress import progress_bar
from influxhtm.core.times import AMBIGUOUS_POLICIES, from_ns, to_ns, wall_time_ns
from influxhtm.io.protocols import LineWriter
from influxhtm.io.writing import WritePipeline
from influxhtm.model.data_layout import SensorReading
from influxhtm.model.line_protocol import Batch
from influxhtm.model.row_mappers import row_mapper

#: How many row problems `ImportReport.summary` lists before it says "and N more".
SHOWN_ERRORS = 10


@attrs.frozen
class RowError:
    """A CSV row that was not imported: its line number in the file (the header is line 1) and why."""

    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


@attrs.frozen
class ImportReport:
    """What an import did.

    `rows` data rows were read; `written` of them were sent to InfluxDB; `merged`
    of those repeated the timestamp of an earlier row of the file and so share
    its point (the later value wins), leaving `stored` distinct points; `errors`
    are the rows that could not be read, by line number.
    """

    path: str
    measurement: str
    component: str
    rows: int
    written: int
    merged: int
    errors: tuple[RowError, ...]
    first: datetime | None
    last: datetime | None

    @property
    def stored(self) -> int:
        """Distinct points the file gave the sensor (written rows minus merged duplicates)."""
        return self.written - self.merged

    @property
    def skipped(self) -> int:
        """Rows that could not be read."""
        return len(self.errors)

    def summary(self, shown: int = SHOWN_ERRORS) -> str:
        """A few lines for people: counts, time span, merged duplicates and the unreadable rows."""
        into = f"{self.measurement}/{self.component}" if self.component else self.measurement
        lines = [
            f"imported {self.path} into {into}: "
            f"{self.rows:,} rows read, {self.stored:,} points stored"
        ]
        if self.first is not None and self.last is not None:
            lines.append(f"  time span: {self.first.isoformat()} .. {self.last.isoformat()}")
        if self.merged:
            lines.append(
                f"  {self.merged:,} row(s) repeated an earlier timestamp and were merged into its point "
                "(InfluxDB keeps one point per series and time; the later value wins)"
            )
        if self.errors:
            lines.append(f"  {len(self.errors):,} row(s) could not be read and were skipped:")
            lines.extend(f"    {error}" for error in self.errors[:shown])
            if len(self.errors) > shown:
                lines.append(f"    ... and {len(self.errors) - shown:,} more")
        return "\n".join(lines)


def zone_of(tz: str | tzinfo) -> tzinfo:
    """The zone named `tz` (an IANA name such as "UTC" or "Europe/Berlin"), or `tz` itself."""
    if isinstance(tz, tzinfo):
        return tz
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise ValidationError({"tz": [f"unknown time zone {tz!r}: use an IANA name such as 'UTC'"]}) from None


def parse_timestamp(text: str, zone: tzinfo, ambiguous: str | None = None) -> int:
    """Nanoseconds since the epoch of an ISO 8601 text; a naive one is read in `zone`.

    A naive time in a daylight-saving gap or fold of `zone` raises
    AmbiguousTimeError unless `ambiguous` is "earlier" or "later".
    """
    text = text.strip()
    if not text:
        raise ValueError("empty timestamp")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO 8601 timestamp (YYYY-MM-DD HH:MM:SS)") from None
    if parsed.tzinfo is None:
        ns = to_ns(wall_time_ns(parsed, zone, ambiguous=ambiguous))
    else:
        ns = to_ns(parsed)
    fraction = text.rpartition(".")[2]
    digits = len(fraction) - len(fraction.lstrip("0123456789"))
    if "." in text and digits > 6:  # datetime keeps microseconds; keep the nanoseconds too
        ns += int(fraction[6:9].ljust(3, "0"))
    return ns


def parse_value(text: str) -> float:
    """A finite float (InfluxDB stores no NaN or infinity)."""
    stripped = text.strip()
    if not stripped:
        raise ValueError("empty value")
    try:
        value = float(stripped)
    except ValueError:
        raise ValueError(f"{stripped!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{stripped!r} cannot be stored: InfluxDB has no NaN or infinity")
    return value


def count_rows(path: str | os.PathLike[str]) -> int:
    """Data rows of a CSV, estimated from its line count (for a progress bar's total)."""
    lines = 0
    last = b"\n"
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            lines += chunk.count(b"\n")
            last = chunk[-1:]
    if last != b"\n":
        lines += 1
    return max(0, lines - 1)


#: What a header gives the import: the time column's index and the function that makes one
#: row's point: `point(row, zone, ambiguous)` -> (line protocol, series-and-time key, time ns),
#: raising ValueError or ValidationError for a row that cannot be read.
PointMaker = Callable[[list[str], tzinfo, "str | None"], tuple[str, Hashable, int]]


@attrs.frozen
class _Outcome:
    rows: int
    written: int
    merged: int
    errors: tuple[RowError, ...]
    first: int | None
    last: int | None


def import_csv(
    sensor: Any,
    path: str | os.PathLike[str],
    *,
    time_column: str = "timestamp",
    value_column: str = "value",
    tz: str | tzinfo = "UTC",
    batch_size: int = 5000,
    progress: Callable[[int], object] | None = None,
    ambiguous: str | None = None,
) -> ImportReport:
    """Write the rows of the CSV at `path` to `sensor` (an `influxhtm.Sensor`: named loosely here,
    below the htm domain's layer); return an `ImportReport`.

    `progress(n)` is called after each batch with the number of rows handled
    since the last call (for a progress bar). Naive timestamps are read in `tz`;
    if any falls in a daylight-saving gap or fold, a ValidationError naming every
    such line is raised before anything is written, unless `ambiguous` is
    "earlier" or "later" (which of the two instants to take).
    """
    # The sensor repository's encoder formats each point, stamped with its exact ns; a reading is
    # made by the declaration's row mapper (its value was checked by parse_value).
    encode = sensor.repository.encoder
    reading = row_mapper(SensorReading, ("time", "value"), tags={"component": sensor.component})

    def plan(columns: list[str]) -> tuple[int, PointMaker]:
        missing = [c for c in (time_column, value_column) if c not in columns]
        if missing:
            raise ValidationError(
                {
                    ("time_column" if time_column in missing else "value_column"): [
                        f"{os.fspath(path)!r} has no column {', '.join(map(repr, missing))}; "
                        f"its columns are {', '.join(map(repr, columns))}"
                    ]
                }
            )
        t_index, v_index = columns.index(time_column), columns.index(value_column)
        width = max(t_index, v_index) + 1

        def point(row: list[str], zone: tzinfo, ambiguous: str | None) -> tuple[str, Hashable, int]:
            if len(row) < width:
                raise ValueError(f"{len(row)} cell(s), expected at least {width}")
            ns = parse_timestamp(row[t_index], zone, ambiguous)
            value = parse_value(row[v_index])
            return encode(reading((ns, value)), ns), ns, ns

        return t_index, point

    outcome = _import_rows(sensor.client, path, plan, tz, ambiguous, batch_size, progress, None)
    return _report(outcome, path, sensor.measurement, sensor.component)


def import_declared(
    repository: Any,
    path: str | os.PathLike[str],
    *,
    time_column: str | None = None,
    tz: str | tzinfo = "UTC",
    ambiguous: str | None = None,
    batch_size: int = 5000,
    progress: bool | None = None,
) -> ImportReport:
    """Write the rows of the CSV at `path` as objects of the repository's declared class (see
    `Repository.import_csv`); return an `ImportReport`.

    The same contract as the sensor import: a header that does not fit the class (an unknown
    column, a required one missing) refuses the file before anything is written; a row
    that cannot be read is reported by line and every other row is written.
    """
    decl = repository.declaration
    encode = repository.encoder
    time_names = [time_column] if time_column is not None else [decl.time.attr, decl.time.key, "timestamp"]

    def plan(columns: list[str]) -> tuple[int, PointMaker]:
        where = os.fspath(path)
        names = list(dict.fromkeys(time_names))
        found = [name for name in names if name in columns]
        if not found:
            raise ValidationError(
                {
                    "time_column": [
                        f"{where!r} has no time column ({' or '.join(map(repr, names))}); "
                        f"its columns are {', '.join(map(repr, columns))}"
                    ]
                }
            )
        t_index = columns.index(found[0])
        cells: list[tuple[int, str]] = []
        for index, name in enumerate(columns):
            if index == t_index:
                continue
            try:
                cells.append((index, decl.column(name).attr))
            except ValidationError as error:
                raise ValidationError(f"{where!r}: header: {error}", error.errors) from None
        given = {attr for _, attr in cells} | set(repository._fixed_attrs)
        attributes = {a.name: a for a in attrs.fields(decl.cls)}
        absent = [
            c.attr
            for c in (*decl.tags, *decl.fields)
            if c.attr not in given and not c.optional and attributes[c.attr].default is attrs.NOTHING
        ]
        if absent:
            raise ValidationError(
                {a: [f"{where!r} has no column {a!r}, which {decl.cls.__name__} requires"] for a in absent}
            )
        width = max(t_index, *(index for index, _ in cells)) + 1
        tag_attrs = [c.attr for c in decl.tags]

        def point(row: list[str], zone: tzinfo, ambiguous: str | None) -> tuple[str, Hashable, int]:
            if len(row) < width:
                raise ValueError(f"{len(row)} cell(s), expected {width}")
            ns = _time_cell(row[t_index], zone, ambiguous)
            data: dict[str, Any] = {attr: row[index] for index, attr in cells}
            data[decl.time.attr] = ns
            obj = repository._coerce(data, text=True)
            return encode(obj, ns), (ns, *(getattr(obj, a) for a in tag_attrs)), ns

        return t_index, point

    with progress_bar(progress, total=count_rows(path) if os.path.isfile(path) else None, unit="row",
                      desc=f"importing {Path(path).name}") as bar:
        outcome = _import_rows(
            repository.client, path, plan, tz, ambiguous, batch_size, bar.update,
            decl.retention_policy,
        )
    return _report(outcome, path, repository.measurement, "")


def _time_cell(text: str, zone: tzinfo, ambiguous: str | None) -> int:
    """A CSV time cell: integer nanoseconds, or ISO 8601 (naive: in `zone`)."""
    stripped = text.strip()
    if stripped.lstrip("+-").isdigit():
        return to_ns(int(stripped))
    return parse_timestamp(stripped, zone, ambiguous)


def _report(
    outcome: _Outcome, path: str | os.PathLike[str], measurement: str, component: str
) -> ImportReport:
    return ImportReport(
        path=os.fspath(path),
        measurement=measurement,
        component=component,
        rows=outcome.rows,
        written=outcome.written,
        merged=outcome.merged,
        errors=outcome.errors,
        first=from_ns(outcome.first) if outcome.first is not None else None,
        last=from_ns(outcome.last) if outcome.last is not None else None,
    )


def _import_rows(
    client: LineWriter,
    path: str | os.PathLike[str],
    plan: Callable[[list[str]], tuple[int, PointMaker]],
    tz: str | tzinfo,
    ambiguous: str | None,
    batch_size: int,
    progress: Callable[[int], object] | None,
    retention_policy: str | None,
) -> _Outcome:
    """The one CSV import: read the header (`plan` checks it), then every row through the one
    write pipeline; unreadable rows are kept by line, repeated series-and-times counted."""
    zone = zone_of(tz)
    if ambiguous is not None and ambiguous not in AMBIGUOUS_POLICIES:
        raise ValidationError({"ambiguous": [f"{ambiguous!r} is not one of {', '.join(AMBIGUOUS_POLICIES)}"]})
    check_positive_int(batch_size, "batch_size")
    try:
        handle = open(path, newline="", encoding="utf-8-sig")
    except OSError as error:
        raise ConfigurationError(f"cannot read CSV file {os.fspath(path)!r}: {error.strerror}") from None
    seen: set[Hashable] = set()
    errors: list[RowError] = []
    rows = merged = 0
    first = last = None
    batch: list[str] = []
    reported = 0
    # the one write pipeline: refusals counted, nothing lost
    pipeline = WritePipeline(client, retention_policy=retention_policy)
    try:
        with handle:
            reader = csv.reader(handle)
            try:
                header = next(reader)
            except StopIteration:
                raise ValidationError(
                    {"path": [f"{os.fspath(path)!r} is empty: expected a header row"]}
                ) from None
            except (csv.Error, UnicodeDecodeError) as error:
                raise ValidationError({"path": [f"{os.fspath(path)!r} line 1: {error}"]}) from None
            t_index, point = plan([name.strip() for name in header])
            if ambiguous is None and not _fixed_offset(zone):
                refuse_wall_time_problems(path, t_index, zone)
            line = 1
            while True:
                try:
                    row = next(reader)
                except StopIteration:
                    break
                except (csv.Error, UnicodeDecodeError) as error:
                    line = reader.line_num
                    rows += 1
                    errors.append(RowError(line, f"unreadable CSV: {error}"))
                    continue
                line = reader.line_num
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue  # blank line
                rows += 1
                try:
                    text, key, ns = point(row, zone, ambiguous)
                except ValidationError as error:
                    errors.append(RowError(line, _problems(error)))
                    continue
                except ValueError as error:
                    errors.append(RowError(line, str(error)))
                    continue
                batch.append(text)
                if key in seen:
                    merged += 1
                else:
                    seen.add(key)
                first = ns if first is None or ns < first else first
                last = ns if last is None or ns > last else last
                if len(batch) >= batch_size:
                    pipeline.put(Batch.of_lines(batch))
                    batch = []
                    if progress is not None:
                        progress(rows - reported)
                        reported = rows
        if batch:
            pipeline.put(Batch.of_lines(batch))
        pipeline.flush()
    except BaseException as error:  # noqa: BLE001 - re-raised by abort, with the counts if any refusal
        pipeline.abort(error, unmade=len(batch))
    written = pipeline.close()
    if progress is not None and rows > reported:
        progress(rows - reported)
    return _Outcome(rows, written, merged, tuple(errors), first, last)


def _problems(error: ValidationError) -> str:
    """A row's ValidationError as one line: `field: message; ...`."""
    if not error.errors:
        return str(error)
    return "; ".join(
        f"{field}: {' '.join(map(str, messages)) if isinstance(messages, list) else messages}"
        for field, messages in error.errors.items()
    )


def _fixed_offset(zone: tzinfo) -> bool:
    """Whether `zone` surely has no daylight saving (UTC or a fixed offset), so no pre-scan is needed."""
    return isinstance(zone, timezone) or getattr(zone, "key", None) in ("UTC", "Etc/UTC")


def refuse_wall_time_problems(path: str | os.PathLike[str], t_index: int, zone: tzinfo) -> None:
    """Raise a ValidationError naming every line whose naive time is in a DST gap or fold of `zone`.

    A pass over the time column before the import writes anything, so a file is
    taken whole or not at all on this account. Other unreadable rows are left
    to the import, which reports them.
    """
    problems: list[RowError] = []
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = True
        while True:
            try:
                row = next(reader)
            except StopIteration:
                break
            except (csv.Error, UnicodeDecodeError):
                continue
            if header or len(row) <= t_index:
                header = False
                continue
            try:
                parse_timestamp(row[t_index], zone)
            except AmbiguousTimeError as error:
                problems.append(RowError(reader.line_num, str(error)))
            except ValueError:
                continue
    if problems:
        shown = "; ".join(map(str, problems[:SHOWN_ERRORS]))
        more = f"; ... and {len(problems) - SHOWN_ERRORS} more" if len(problems) > SHOWN_ERRORS else ""
        raise ValidationError(
            f"{os.fspath(path)!r}: {len(problems)} naive timestamp(s) have no single meaning in {zone} "
            f"(daylight saving), nothing was imported: {shown}{more}. Give the zone's offset in the file, "
            "or choose a reading with ambiguous='earlier' or 'later' (CLI: --ambiguous earlier|later)",
            {f"line {p.line}": [p.message] for p in problems},
        )


def nab_key(path: str | os.PathLike[str]) -> str:
    """NAB's label key of a data file (`realKnownCause/nyc_taxi.csv`): its category folder and name."""
    p = Path(path)
    return f"{p.parent.name}/{p.name}"
