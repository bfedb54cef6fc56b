"""`Sensor`: one series of a measurement and a component, with its data and its models."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from influxhtm.core.errors import ValidationError, check_name, check_positive_int
from influxhtm.core.times import TimeLike, from_ns, inclusive_range
from influxhtm.htm.combined import CombinedData, aggregate, combine, iter_sensor_values
from influxhtm.htm.model_store import HtmModelStore, create_model, get_model, list_models
from influxhtm.influxql import Query
from influxhtm.model.data_layout import RESULT_SUFFIX, SensorReading
from influxhtm.model.frames import is_dataframe
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
            fixed = {"component": self.component}
            repository = self.client.repository(
                SensorReading, measurement=self.measurement, tags=fixed, extra_tags=True
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
        previous one travels. The sensor's repository does all of it (`Repository.add_all`
        with `validate_first`, its `extra_tags` taking the other keys).
        """
        return self.repository.add_all(sensor_points(points), batch_size, validate_first=True)

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


def sensor_points(points: Any) -> Iterable[Any]:
    """What a sensor writes, as an iterable of points: one point in a list, a DataFrame's rows
    as mappings (its index, or a `time` column, is the time; its other columns tags)."""
    if isinstance(points, (SensorReading, Mapping)):
        return [points]
    if is_dataframe(points):
        return _frame_points(points)
    if isinstance(points, Iterable) and not isinstance(points, (str, bytes)):
        return points
    raise ValidationError({"points": [f"{points!r} is not a point, an iterable of points or a DataFrame"]})


def _frame_points(frame: Any) -> list[dict[str, Any]]:
    """Points of a DataFrame: the index (or a `time` column) is the time, `value` the value."""
    if "value" not in frame.columns:
        raise ValidationError({"value": ["the DataFrame has no 'value' column"]})
    frame = frame.reset_index() if "time" not in frame.columns else frame
    if "time" not in frame.columns:
        frame = frame.rename(columns={frame.columns[0]: "time"})
    return frame.to_dict("records")
