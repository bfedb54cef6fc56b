"""DataFrames in: the rows of a pandas DataFrame as mappings for a declared class.

`Repository.add_all(frame)` writes a DataFrame through the same pipeline as any
other objects. The time is a column named as the declared time (`time`, or its
attribute name) or, without one, the index (a `DatetimeIndex`, or an index
named so). Naive times follow the class's rule (`influxhtm.core.times`: UTC unless
set otherwise). Every other column must be a declared tag or field (by
attribute name or InfluxDB key), so that a misspelt column is an error, not a
silently dropped value.

A missing cell (NaN, None, NaT, `pandas.NA`) in an optional column means
"absent" (the point is written without it); in a required column (or the time)
it is an error naming the row (its position, and its index label) and the
column, like any other invalid value, and nothing of that batch is written.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import attrs

from influxhtm.core.errors import ValidationError
from influxhtm.core.times import get_naive_times
from influxhtm.model.declarations import Declaration

#: Rows converted at a time (the batch size of the write is separate).
CHUNK = 10_000


def is_dataframe(value: object) -> bool:
    """Whether `value` is a pandas DataFrame (without importing pandas)."""
    return type(value).__name__ == "DataFrame" and hasattr(value, "itertuples") and hasattr(value, "iloc")


@attrs.frozen
class BadRow:
    """A row that cannot be a point (a missing required cell): raised when its batch is made."""

    error: ValidationError


def frame_rows(decl: Declaration, frame: Any, fixed: dict[str, Any] | None = None) -> Iterator[Any]:
    """One instance of the declared class per row of `frame` (missing optional cells left out,
    `fixed` attributes added), or a `BadRow` carrying why the row cannot be one."""
    import pandas

    times, frame = _times(decl, frame)
    columns = _columns(decl, frame)
    required = {attr for attr in columns if not decl.column(attr).optional}
    labels = frame.index
    for start in range(0, len(frame), CHUNK):
        part = frame.iloc[start : start + CHUNK]
        missing = part.isna().to_numpy().tolist()
        values = part.to_numpy(dtype=object).tolist()
        for offset, (cells, gaps) in enumerate(zip(values, missing, strict=True)):
            row = start + offset
            time = times[row]
            record: dict[str, Any] = {**(fixed or {}), decl.time.attr: time}
            problems: dict[str, list[str]] = {}
            if time is None or time is pandas.NaT or (isinstance(time, float) and time != time):
                problems[decl.time.attr] = [f"is missing (NaT) in row {row} (index {labels[row]})"]
            for attr, cell, gap in zip(columns, cells, gaps, strict=True):
                if not gap:
                    record[attr] = cell
                elif attr in required:
                    problems[attr] = [
                        f"is missing ({_missing(cell)}) in row {row} (index {labels[row]}), "
                        "and the column is required"
                    ]
            if problems:
                yield BadRow(ValidationError(problems))
                continue
            try:
                yield decl.cls(**record)  # the class's own conversion and checks, no schema on the way
            except ValidationError as error:
                yield BadRow(error)


def _missing(cell: Any) -> str:
    """How a missing cell looks: NaN, None, NaT or <NA>."""
    if cell is None:
        return "None"
    return "NaN" if isinstance(cell, float) else str(cell)


def _times(decl: Declaration, frame: Any) -> tuple[list[Any], Any]:
    """The times of the rows (pandas Timestamps) and the frame without its time column."""
    import pandas

    names = {decl.time.attr, decl.time.key}
    in_columns = [c for c in frame.columns if c in names]
    if len(in_columns) > 1:
        raise ValidationError({"time": [f"the DataFrame has two time columns: {in_columns}"]})
    if in_columns:
        column = in_columns[0]
        return list(_as_times(frame[column], decl.naive_times)), frame.drop(columns=[column])
    index = frame.index
    if isinstance(index, pandas.DatetimeIndex) or index.name in names:
        return list(_as_times(index.to_series(), decl.naive_times)), frame
    raise ValidationError(
        {
            "time": [
                f"the DataFrame has no time: give it a DatetimeIndex or a {decl.time.attr!r} column "
                f"(its columns are {[str(c) for c in frame.columns]})"
            ]
        }
    )


def _as_times(series: Any, naive: str | None) -> Any:
    """The times of a time column or index, for the class's converter: a datetime64 column as UTC
    datetimes at once (naive ones by the class's rule: UTC unless it or `set_naive_times` says
    otherwise, then value by value); integers (nanoseconds) and text (ISO 8601) as they are."""
    import pandas

    if not pandas.api.types.is_datetime64_any_dtype(series.dtype):
        return series.to_numpy(dtype=object)
    values = pandas.DatetimeIndex(series)
    if values.tz is None:
        if (naive if naive is not None else get_naive_times()) != "utc":
            return list(series)  # each one read (or refused) by the class's rule
        values = values.tz_localize("UTC")
    else:
        values = values.tz_convert("UTC")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Discarding nonzero nanoseconds": the class keeps microseconds
        return values.to_pydatetime()


def _columns(decl: Declaration, frame: Any) -> list[str]:
    """The attribute name of each column of `frame` (every one must be a declared tag or field)."""
    attrs_ = []
    for name in frame.columns:
        if not isinstance(name, str):
            raise ValidationError({str(name): [f"column {name!r} is not a text name of a tag or field"]})
        attrs_.append(decl.column(name).attr)  # an unknown name: an error naming the known columns
    doubled = {a for a in attrs_ if attrs_.count(a) > 1}
    if doubled:
        twice = "given twice (as its attribute name and its InfluxDB key)"
        raise ValidationError({a: [twice] for a in doubled})
    return attrs_
