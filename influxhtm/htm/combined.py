"""Raw data merged with model results, for plotting and scoring.

Rows are the sensor's timestamps (or its time buckets when aggregated); each
model's results are aligned to them by time. The columns are `time`, `value`
and, for each model `M`, `M.anomalyScore`, `M.anomalyLikelihood` (and
`M.rawScore`, `M.prediction`, ... when a model has them): always prefixed with
the model id, whatever the number of models, so that code reading a column
keeps working when a second model is added. A missing result is null, never a
carried-forward value. Aggregated, the anomaly columns take the bucket's `max`
so that an anomaly inside a bucket is not averaged away.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from influxhtm.core.errors import ModelNotFound, ValidationError, check_name, check_positive_int
from influxhtm.core.times import TimeLike, format_rfc3339, from_ns, parse_duration, to_ns
from influxhtm.htm.protocols import SensorSeries
from influxhtm.model.data_layout import RESULT_KEYS

if TYPE_CHECKING:
    import pandas

    from influxhtm.influxql import Query

#: The aggregates a sensor's values may be read with (`agg`).
AGGREGATES = ("mean", "median", "mode", "count", "sum", "min", "max", "first", "last", "spread", "stddev")
#: How each result field is aggregated over a bucket.
RESULT_AGGREGATES = {
    "anomalyScore": "max",
    "anomalyLikelihood": "max",
    "rawScore": "max",
    "prediction": "mean",
    "predictionConfidence": "mean",
}
#: Columns always present for a model; the others appear when a model has them.
ALWAYS = ("anomalyScore", "anomalyLikelihood")


@attrs.frozen
class CombinedData:
    """A table of `columns` and `values` (rows); the first column is `time` (UTC datetime), then
    `value`, then `<model>.<field>` for each model (see the module docstring).

    `sensor` names the sensor ("measurement/component"), as the plots' titles do."""

    name: str
    columns: tuple[str, ...]
    values: tuple[tuple[Any, ...], ...]
    models: tuple[str, ...] = ()
    aggregation: str | None = None
    sensor: str = ""

    @property
    def title(self) -> str:
        """What the data is: the sensor, its models and the aggregation (the plots' default title)."""
        models = f"models {', '.join(self.models)}" if self.models else "no models"
        buckets = f", {self.aggregation} buckets" if self.aggregation else ""
        return f"{self.sensor or self.name}: {models}{buckets}"

    def __len__(self) -> int:
        return len(self.values)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        """Each row as a dict of column to value."""
        for row in self.values:
            yield dict(zip(self.columns, row))

    @property
    def empty(self) -> bool:
        return not self.values

    def column(self, name: str) -> list[Any]:
        """One column's values, in row order."""
        index = self.columns.index(name)
        return [row[index] for row in self.values]

    def to_dict(self) -> dict[str, Any]:
        """The original's shape: `{"series": [{"name", "columns", "values"}]}`, times as RFC 3339."""
        values = [[_rfc3339(row[0]), *row[1:]] for row in self.values]
        return {"series": [{"name": self.name, "columns": list(self.columns), "values": values}]}

    def to_dataframe(self) -> pandas.DataFrame:
        """A DataFrame with a UTC `time` index; nulls become NaN."""
        import pandas

        frame = pandas.DataFrame(list(self.values), columns=list(self.columns))
        frame["time"] = pandas.to_datetime(frame["time"], utc=True)
        frame = frame.set_index("time")
        return frame.astype("float64")

    def plot(self, path: str | Path, **options: Any) -> Path:
        """Draw the data and the anomaly panels to a `.png` or self-contained `.html` file; the title
        (unless `title=` is given) names the sensor and the models (`CombinedData.title`)."""
        from influxhtm.htm.plotting import plot

        if options.get("title") is None:
            options["title"] = self.title
        return plot(self.to_dataframe(), path, **options)


def _rfc3339(value: datetime) -> str:
    from influxhtm.core.times import datetime_to_ns

    return format_rfc3339(datetime_to_ns(value))


def combine(
    sensor: SensorSeries,
    since: TimeLike | None,
    until: TimeLike | None,
    aggregation: str | None,
    agg: str,
    models: Iterable[str] | None,
    limit: int | None,
) -> CombinedData:
    """Build the CombinedData of a sensor (see `Sensor.get_combined_sensor_data`)."""
    model_ids = _model_ids(sensor, models)
    rows = sensor_values(sensor, since, until, limit, aggregation, agg)
    span = _span(rows, since, until, aggregation)
    results = _results(sensor, model_ids, span, aggregation) if rows and model_ids else {}
    return assemble(sensor, rows, results, model_ids, aggregation)


def assemble(
    sensor: Any,
    rows: list[tuple[int, Any]],
    results: dict[str, dict[int, dict[str, Any]]],
    model_ids: list[str],
    aggregation: str | None,
) -> CombinedData:
    """The CombinedData of the sensor's (time ns, value) rows and its models' results by time."""
    present = {field for per_model in results.values() for by_time in per_model.values() for field in by_time}
    fields = [f for f in RESULT_KEYS.values() if f in ALWAYS or f in present]
    columns = ["time", "value"]
    for model_id in model_ids:
        columns.extend(f"{model_id}.{f}" for f in fields)
    values = []
    for ns, value in rows:
        row: list[Any] = [from_ns(ns), value]
        for model_id in model_ids:
            at = results.get(model_id, {}).get(ns, {})
            row.extend(at.get(f) for f in fields)
        values.append(tuple(row))
    return CombinedData(
        sensor.measurement, tuple(columns), tuple(values), tuple(model_ids), aggregation, str(sensor)
    )


def _model_ids(sensor: SensorSeries, models: Iterable[str] | str | None) -> list[str]:
    """The ids to combine: every model of the sensor, or the given ones (each must exist)."""
    return choose_models(sensor, [store.model_id for store in sensor.list_htm_models()], models)


def choose_models(sensor: Any, known: list[str], models: Iterable[str] | str | None) -> list[str]:
    """The ids to combine among the sensor's `known` models: all, or the given ones (each must exist)."""
    if models is None:
        return known
    if isinstance(models, str):
        models = [models]
    if not isinstance(models, Iterable):
        raise ValidationError({"models": [f"{models!r} is not a model id or a list of model ids"]})
    chosen = [check_name(model_id, "models") for model_id in models]
    missing = [model_id for model_id in chosen if model_id not in known]
    if missing:
        raise ModelNotFound(f"no model {', '.join(map(repr, missing))} for sensor {sensor}; it has {known}")
    return chosen


def _span(
    rows: list[tuple[int, Any]],
    since: TimeLike | None,
    until: TimeLike | None,
    aggregation: str | None,
) -> tuple[int, int]:
    """[first, end) of the results that belong to `rows`: their times, or their buckets, within the bounds."""
    if not rows:
        return 0, 0
    first, end = rows[0][0], rows[-1][0] + 1
    if aggregation is not None:
        end = rows[-1][0] + parse_duration(aggregation, name="aggregation")
    if since is not None:
        first = max(first, to_ns(since, name="since"))
    if until is not None:
        end = min(end, to_ns(until, name="until") + 1)
    return first, end


def _results(
    sensor: SensorSeries, model_ids: list[str], span: tuple[int, int], aggregation: str | None
) -> dict[str, dict[int, dict[str, Any]]]:
    """model id -> time ns -> field -> value, over `span`, in one query."""
    return results_by_model(sensor.client.result_series(results_query(sensor, model_ids, span, aggregation)))


def results_query(sensor: Any, model_ids: list[str], span: tuple[int, int], aggregation: str | None) -> Any:
    """The one query of the models' results over `span` (grouped by model id)."""
    from influxhtm import influxql

    query: influxql.Query[Any] = influxql.Query().from_(sensor.result_measurement)
    query = query.where(component=sensor.component)
    query = query.where(influxql.col("id").in_(model_ids)).group_by("id")
    fields = list(RESULT_KEYS.values())
    query = query.with_time_bounds(*span)
    if aggregation is None:
        query = query.select(*fields)
    else:
        functions = {"max": influxql.max_, "mean": influxql.mean}
        query = query.select(*(functions[RESULT_AGGREGATES[f]](f).as_(f) for f in fields))
        query = query.group_by_time(aggregation).fill("none")
    return query


def results_by_model(series_list: Iterable[Mapping[str, Any]]) -> dict[str, dict[int, dict[str, Any]]]:
    """model id -> time ns -> field -> value, from the answer of `results_query`."""
    found: dict[str, dict[int, dict[str, Any]]] = {}
    for series in series_list:
        model_id = series.get("tags", {}).get("id", "")
        by_time = found.setdefault(model_id, {})
        columns = series["columns"]
        for row in series["values"]:
            by_time[row[0]] = {c: v for c, v in zip(columns[1:], row[1:]) if v is not None}
    return found


def sensor_values(
    sensor: SensorSeries,
    since: TimeLike | None,
    until: TimeLike | None,
    limit: int | None,
    aggregation: str | None,
    agg: str,
) -> list[tuple[int, Any]]:
    """(time ns, value) pairs of the sensor, ascending: the one query behind `Sensor.get_data` and
    the combined data. `limit` keeps the latest N; with `aggregation`, one pair per non-empty bucket."""
    return list(iter_sensor_values(sensor, since, until, limit, aggregation, agg))


def iter_sensor_values(
    sensor: SensorSeries, since: Any, until: Any, limit: int | None, aggregation: str | None, agg: str
) -> Iterator[tuple[int, Any]]:
    """`sensor_values`, streamed (with `limit`, the latest N are collected, then handed out ascending)."""
    bound = partial(sensor.client.bounded, bounds=sensor.time_bounds_ns)
    query = values_query(sensor.query(since, until), limit, aggregation, agg, bound)
    rows = query.rows("value")
    if limit is None:
        yield from ((ns, value) for ns, value in rows if value is not None)
    else:
        yield from values_from(rows, limit)


def values_query(
    query: Query[Any],
    limit: int | None,
    aggregation: str | None,
    agg: str,
    bound: Callable[[Query[Any]], Query[Any]],
) -> Query[Any]:
    """The statement of `sensor_values` from the sensor's query (`bound(q)`: a time-grouped query with
    its open ends set to the data, `InfluxHtmClient.bounded`)."""
    if aggregation is not None:
        parse_duration(aggregation, name="aggregation")  # text such as "10m", as everywhere else
        grouped = query.select(aggregate(agg, "value")).group_by_time(aggregation)
        query = bound(grouped).fill("none")
    else:
        query = query.select("value")
    if limit is not None:
        query = query.order_by("time", "desc").limit(check_positive_int(limit, "limit"))
    return query


def values_from(rows: Iterable[Sequence[Any]], limit: int | None) -> list[tuple[int, Any]]:
    """The (time ns, value) pairs of `values_query`'s rows, ascending."""
    pairs = [(row[0], row[1]) for row in rows if row[1] is not None]
    if limit is not None:
        pairs.reverse()
    return pairs


def aggregate(name: str, column: str) -> Any:
    """The builder's aggregate `name(column)` aliased to `column`."""
    from influxhtm import influxql

    if name not in AGGREGATES:
        raise ValidationError({"agg": [f"{name!r} is not an aggregate; use one of {', '.join(AGGREGATES)}"]})
    function = getattr(influxql, name + "_" if name in ("sum", "min", "max") else name)
    return function(column).as_(column)
