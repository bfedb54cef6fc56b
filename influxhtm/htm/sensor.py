"""`Sensor`: one series of a measurement and a component, with its data and its models."""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from itertools import islice
from operator import itemgetter
from typing import TYPE_CHECKING, Any

from influxhtm.core.errors import ValidationError, check_name, check_positive_int, show_value
from influxhtm.core.times import MAX_NS, MIN_NS, TimeLike, from_ns, inclusive_range, to_ns
from influxhtm.htm.combined import CombinedData, aggregate, combine, iter_sensor_values
from influxhtm.htm.model_store import HtmModelStore, create_model, get_model, list_models
from influxhtm.influxql import Query
from influxhtm.model.data_layout import RESULT_SUFFIX, SensorReading
from influxhtm.model.line_protocol import (
    Batch,
    encode_point,
    escape_measurement,
    escape_tag_value,
    float_value,
    measurement_problem,
    tag_value_problem,
)
from influxhtm.orm.client import DatabaseClient
from influxhtm.orm.repository import Repository

if TYPE_CHECKING:
    import pandas


class Sensor:
    """The series of `measurement` tagged `component=<component>`; field `value`, always a float."""

    def __init__(self, client: DatabaseClient, measurement: str, component: str):
        self.client = client
        self.measurement = check_name(measurement, "measurement")
        self.component = check_name(component, "component")

    def __repr__(self) -> str:
        return f"Sensor(measurement={self.measurement!r}, component={self.component!r})"

    def __str__(self) -> str:
        return f"{self.measurement}/{self.component}"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Sensor)
            and other.client.database == self.client.database
            and (other.measurement, other.component) == (self.measurement, self.component)
        )

    def __hash__(self) -> int:
        return hash((self.client.database, self.measurement, self.component))

    @property
    def repository(self) -> Repository[SensorReading]:
        """The repository of this sensor's points: `SensorReading` objects in its measurement, with its
        component as a fixed tag."""
        repository = self.__dict__.get("_repository")
        if repository is None:
            repository = Repository(
                self.client, SensorReading, measurement=self.measurement, tags={"component": self.component}
            )
            self.__dict__["_repository"] = repository
        return repository

    def query(
        self,
        since: TimeLike | None = None,
        until: TimeLike | None = None,
        *,
        before: TimeLike | None = None,
    ) -> Query[SensorReading]:
        """The sensor's points as a query bound to its repository, `since` and `until` inclusive
        (`before`: an exclusive end): iterate it for `SensorReading` objects, or select, aggregate,
        `.count()`, `.to_dataframe()` (see `Repository.query`)."""
        return self.repository.query().within(*inclusive_range(since, until, before))

    @property
    def result_measurement(self) -> str:
        """Where this sensor's model results are stored: `<measurement>_model`."""
        return self.measurement + RESULT_SUFFIX

    # -- writing -------------------------------------------------------------
    def write(self, points: Any, *, batch_size: int = 10_000) -> int:
        """Store one point, many, or a DataFrame; returns how many points were written.

        A point is a `SensorReading` or a mapping with `time` and `value`; other keys
        become tags. A list or DataFrame is validated whole before anything is sent; a
        generator is validated and sent batch by batch. Batches are encoded while the
        previous one travels.
        """
        from influxhtm.io.writing import post_pipelined

        check_positive_int(batch_size, "batch_size")
        if isinstance(points, (SensorReading, Mapping)):
            points = [points]
        elif _is_dataframe(points):
            points = _frame_points(points)
        if isinstance(points, Sequence):
            batches = self._validated_batches(points, batch_size, offset=0)
            return post_pipelined(self.client, batches, total=len(points))
        if not isinstance(points, Iterable):
            raise ValidationError(
                {"points": [f"{points!r} is not a point, an iterable of points or a DataFrame"]}
            )
        return post_pipelined(self.client, self._generator_batches(points, batch_size))

    def _generator_batches(self, points: Iterable[Any], batch_size: int) -> Iterator[Batch]:
        """Bodies of a generator's points, each batch validated before it is handed on."""
        from influxhtm.io.writing import UnmadeBatch

        offset = 0
        iterator = iter(points)
        while batch := list(islice(iterator, batch_size)):
            try:
                batches = self._validated_batches(batch, batch_size, offset)
            except ValidationError as error:
                raise UnmadeBatch(error, len(batch)) from None
            yield from batches
            offset += len(batch)

    def _validated_batches(self, points: Sequence[Any], batch_size: int, offset: int) -> Iterator[Batch]:
        """Validate every point now (raising with all problems); the bodies are made lazily.

        The common case, plain dicts of just `time` and a numeric `value`, is
        checked and formatted by the repository's encoder in C when it is built
        (`Repository.fast_batches`), else checked a column at a time and formatted by
        `str.format`; anything else goes through `_lines`, point by point.
        """
        from influxhtm.io.writing import encode_in_slices

        fits = not measurement_problem(self.measurement) and not tag_value_problem(self.component)
        fast = self.repository.fast_batches(points, batch_size) if fits and type(points) is list else None
        if fast is not None:
            return fast
        columns = self._plain_columns(points)
        if columns is None:
            lines = self._lines(points, offset=offset)
            return (Batch.of_lines(lines[i : i + batch_size]) for i in range(0, len(lines), batch_size))
        times, values = columns
        line = self._line_template().format
        return (
            Batch.joined(
                encode_in_slices(line, values[i : i + batch_size], times[i : i + batch_size]),
                min(batch_size, len(times) - i),
            )
            for i in range(0, len(times), batch_size)
        )

    def _line_template(self) -> str:
        """`<measurement>,component=<component> value={!r} {}`, escaped once."""
        prefix = f"{escape_measurement(self.measurement)},component={escape_tag_value(self.component)}"
        return prefix.replace("{", "{{").replace("}", "}}") + " value={!r} {}"

    def _plain_columns(self, points: Sequence[Any]) -> tuple[list[int], list[float]] | None:
        """(times in ns, values) when every point is a dict of exactly a valid `time` and a finite
        float/int `value`, and the names are fit for line protocol; else None (the checked path)."""
        if not points or set(map(type, points)) != {dict} or set(map(len, points)) != {2}:
            return None
        if measurement_problem(self.measurement) or tag_value_problem(self.component):
            return None
        try:
            times = list(map(itemgetter("time"), points))
            values = list(map(itemgetter("value"), points))
        except KeyError:
            return None
        if set(map(type, times)) != {int}:
            try:  # datetimes, ISO texts: the same conversion `_line` applies
                times = list(map(to_ns, times))
            except ValidationError:
                return None
        if not (MIN_NS <= min(times) and max(times) <= MAX_NS):
            return None
        kinds = set(map(type, values))
        if not kinds <= {float, int}:  # bools and everything else take the checked path
            return None
        if int in kinds:
            try:
                values = list(map(float, values))
            except OverflowError:
                return None
        if not math.isfinite(sum(values)):  # finite sum: every value finite (else a NaN or inf shows)
            return None
        return times, values

    def _lines(self, points: Sequence[Any], offset: int) -> list[str]:
        """Validate every point and encode them; all problems are reported at once, keyed by index."""
        lines: list[str] = []
        errors: dict[int, Any] = {}
        base_tags = {"component": self.component}
        for index, point in enumerate(points, start=offset):
            try:
                lines.append(self._line(point, base_tags))
            except ValidationError as error:
                errors[index] = error.errors or str(error)
        if errors:
            raise ValidationError(errors)
        return lines

    def _line(self, point: Any, base_tags: dict[str, str]) -> str:
        if isinstance(point, SensorReading):
            return encode_point(self.measurement, base_tags, {"value": point.value}, to_ns(point.time))
        if not isinstance(point, Mapping):
            raise ValidationError({"point": [f"{point!r} is not a mapping with time and value"]})
        problems: dict[str, list[str]] = {}
        if "time" not in point:
            problems["time"] = ["missing"]
        if "value" not in point:
            problems["value"] = ["missing"]
        if problems:
            raise ValidationError(problems)
        value = point["value"]
        if isinstance(value, bool) or type(value).__name__ == "bool_" or not isinstance(value, numbers.Real):
            raise ValidationError({"value": [f"{value!r} is not a number"]})
        try:
            value = float_value(value)  # a numpy float32 by its shortest text
        except OverflowError:  # an int beyond the float range
            raise ValidationError({"value": [f"{show_value(value)} is too large for a float"]}) from None
        if not math.isfinite(value):
            raise ValidationError({"value": [f"{value!r} cannot be stored: InfluxDB has no NaN or infinity"]})
        tags = dict(base_tags)
        for key, tag_value in point.items():
            if key in ("time", "value"):
                continue
            if key == "component" and tag_value != self.component:
                raise ValidationError(
                    {"component": [f"{tag_value!r} is not this sensor's {self.component!r}"]}
                )
            if not isinstance(tag_value, str):
                raise ValidationError({str(key): [f"{tag_value!r} is not a text tag value"]})
            tags[str(key)] = tag_value
        return encode_point(self.measurement, tags, {"value": value}, to_ns(point["time"]))

    # -- reading -------------------------------------------------------------
    def get_data(
        self,
        since: TimeLike | None = None,
        until: TimeLike | None = None,
        limit: int | None = None,
        aggregation: str | None = None,
        agg: str = "mean",
        *,
        before: TimeLike | None = None,
    ) -> list[SensorReading]:
        """Readings in ascending time, `since` and `until` inclusive (`before`: an exclusive end).

        `limit` keeps the latest N.

        With `aggregation` (e.g. "10m"), one reading per bucket holding the `agg`
        aggregate of the bucket (empty buckets are left out).
        """
        lo, hi = inclusive_range(since, until, before)
        if limit is None and aggregation is None:
            # The repository's objects, built as the answer streams in (the C decoder when built):
            # the list of readings is all that stays, not the whole answer.
            return [r for r in self._readings(lo, hi).all() if r.value is not None]
        component = self.component
        return [
            SensorReading(time=from_ns(ns), value=float(value), component=component)
            for ns, value in iter_sensor_values(self, lo, hi, limit, aggregation, agg)
        ]

    def _readings(self, since: Any, until: Any) -> Query:
        """The bound query whose objects are the sensor's readings (a row without a value is empty)."""
        return self.query(since, until).select("value")  # the component is the repository's fixed tag

    def iter_data(
        self,
        since: TimeLike | None = None,
        until: TimeLike | None = None,
        chunk_size: int = 10_000,
        *,
        before: TimeLike | None = None,
    ) -> Iterator[SensorReading]:
        """Stream readings in ascending time, in constant memory (bounds as `get_data`)."""
        check_positive_int(chunk_size, "chunk_size")
        query = self._readings(*inclusive_range(since, until, before))
        for reading in self.repository.iter_query(query, chunk_size):
            if reading.value is not None:
                yield reading

    def time_bounds_ns(self) -> tuple[int, int] | None:
        """First and last time in nanoseconds, or None for an empty sensor."""
        first = list(self.query().select(aggregate("first", "value")).rows())
        if not first:
            return None
        last = list(self.query().select(aggregate("last", "value")).rows())
        return first[0][0], last[0][0]

    def time_bounds(self) -> tuple[datetime, datetime] | None:
        """First and last time of the sensor's data, or None when it has none."""
        bounds = self.time_bounds_ns()
        return None if bounds is None else (from_ns(bounds[0]), from_ns(bounds[1]))

    def value_range(self) -> tuple[float, float] | None:
        """Smallest and largest value, or None for an empty sensor (engines use it for encoders)."""
        from influxhtm.influxql import max_, min_

        row = self.query().select(min_("value").as_("lo"), max_("value").as_("hi")).first()
        if row is None or row.lo is None:
            return None
        return float(row.lo), float(row.hi)

    def count(self) -> int:
        """How many points the sensor holds."""
        from influxhtm.influxql import count

        row = self.query().select(count("value")).first()
        return 0 if row is None else int(row.count)

    def delete_data(
        self,
        since: TimeLike | None = None,
        until: TimeLike | None = None,
        *,
        before: TimeLike | None = None,
    ) -> None:
        """Delete the sensor's points from `since` to `until` (inclusive) or `before` (exclusive).

        All of them without bounds.
        """
        self.client.delete(
            self.measurement, since=since, until=until, before=before, component=self.component
        )

    def to_dataframe(
        self,
        since: TimeLike | None = None,
        until: TimeLike | None = None,
        aggregation: str | None = None,
        *,
        before: TimeLike | None = None,
    ) -> pandas.DataFrame:
        """The sensor's values as a DataFrame with a UTC time index (bounds as `get_data`)."""
        data = self.get_combined_sensor_data(since, until, aggregation=aggregation, models=[], before=before)
        return data.to_dataframe()

    # -- models --------------------------------------------------------------
    def create_htm_model(
        self,
        model_id: str,
        params: Mapping[str, Any] | None = None,
        engine: str | None = None,
        aggregation: str | None = None,
        exist_ok: bool = False,
    ) -> HtmModelStore:
        """Register a model for this sensor and return its store (ModelExists if the id is taken)."""
        return create_model(self, model_id, params, engine, aggregation, exist_ok)

    def get_htm_model(self, model_id: str) -> HtmModelStore:
        """The store of a model of this sensor, or ModelNotFound."""
        return get_model(self, model_id)

    def list_htm_models(self) -> list[HtmModelStore]:
        """Every model of this sensor: registered ones, and any with results but no registry entry."""
        return list_models(self)

    def delete_htm_model(self, model_id: str) -> None:
        """Delete one model's results and registry entry, and nothing else."""
        self.get_htm_model(model_id).delete()

    def delete_htm_models(self) -> None:
        """Delete every model of this sensor (other sensors' models are untouched)."""
        for store in self.list_htm_models():
            store.delete()

    # -- combined data -------------------------------------------------------
    def get_combined_sensor_data(
        self,
        since: TimeLike | None = None,
        until: TimeLike | None = None,
        aggregation: str | None = None,
        agg: str = "mean",
        models: Iterable[str] | None = None,
        limit: int | None = None,
        *,
        before: TimeLike | None = None,
    ) -> CombinedData:
        """The sensor's data with its models' results aligned by time (see `CombinedData`).

        `since` and `until` are inclusive; `before` is an exclusive end.
        """
        lo, hi = inclusive_range(since, until, before)
        return combine(self, lo, hi, aggregation, agg, models, limit)


def _is_dataframe(value: object) -> bool:
    return type(value).__name__ == "DataFrame" and hasattr(value, "itertuples")


def _frame_points(frame: Any) -> list[dict[str, Any]]:
    """Points of a DataFrame: the index (or a `time` column) is the time, `value` the value."""
    if "value" not in frame.columns:
        raise ValidationError({"value": ["the DataFrame has no 'value' column"]})
    frame = frame.reset_index() if "time" not in frame.columns else frame
    if "time" not in frame.columns:
        frame = frame.rename(columns={frame.columns[0]: "time"})
    return frame.to_dict("records")
