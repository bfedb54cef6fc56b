"""`HtmModelStore`: one model of one sensor, its registry entry and its results.

Results live in `<measurement>_model` with tags `component` and `id`; each has
the timestamp of the input point it answers, so writing a result again for the
same point overwrites it. The registry (`influxhtm_models`) holds one point per
model with its parameters, engine, aggregation and creation time.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from itertools import islice
from typing import Any, cast

from influxhtm.core.errors import ModelExists, ModelNotFound, ValidationError, check_name, check_positive_int
from influxhtm.core.times import TimeLike, from_ns, inclusive_range
from influxhtm.htm.protocols import SensorSeries
from influxhtm.htm.result_conversion import to_htm_result
from influxhtm.influxql import Query
from influxhtm.io.writing import UnmadeBatch
from influxhtm.model.data_layout import REGISTRY_MEASUREMENT, RESULT_KEYS, HtmResult, ModelRecord
from influxhtm.orm.repository import Repository

_MISSING = object()


class HtmModelStore:
    """Where one model's results for one sensor are stored and read back."""

    def __init__(
        self,
        sensor: SensorSeries,
        model_id: str,
        params: Mapping[str, Any] | None = None,
        engine: str | None = None,
        aggregation: str | None = None,
        created: datetime | None = None,
        registered: bool = True,
    ):
        self.sensor = sensor
        self.model_id = check_name(model_id, "model_id")
        self.params: dict[str, Any] | None = dict(params) if params is not None else None
        self.engine = engine
        self.aggregation = aggregation
        self.created = created
        self.registered = registered
        #: The results: `HtmResult` objects in `<measurement>_model` with the fixed tags component and id.
        self.results = Repository(
            sensor.client, HtmResult, measurement=sensor.result_measurement,
            tags={"component": sensor.component, "id": self.model_id},
        )

    def __repr__(self) -> str:
        return f"HtmModelStore({self.sensor}, id={self.model_id!r}, engine={self.engine!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, HtmModelStore) and (other.sensor, other.model_id) == (
            self.sensor,
            self.model_id,
        )

    def __hash__(self) -> int:
        return hash((self.sensor, self.model_id))

    @property
    def id(self) -> str:
        return self.model_id

    @property
    def measurement(self) -> str:
        return self.sensor.result_measurement

    # -- writing -------------------------------------------------------------
    def write_result(self, result: Any, second: Any = _MISSING) -> HtmResult:
        """Store one result: `write_result(result)`, or `write_result(time, result)` (the original's form)."""
        if second is not _MISSING:
            htm_result = to_htm_result(second, time=result)
        else:
            htm_result = to_htm_result(result)
        self.results.add(htm_result)
        return htm_result

    def write_results(self, results: Iterable[Any], *, batch_size: int = 5000) -> int:
        """Store many results in batches; returns how many were written (a `None` result is skipped).

        A list (any sequence) is validated whole before anything is sent; a
        generator is validated batch by batch, each batch before it is sent.
        Problems are reported all at once, keyed by index. A result the server
        refuses does not stop the others (see `Repository.add_all`).
        """
        if isinstance(results, (Mapping, HtmResult)) or not isinstance(results, Iterable):
            raise ValidationError({"results": [f"{results!r} is not an iterable of results"]})
        check_positive_int(batch_size, "batch_size")
        if isinstance(results, Sequence):
            return self.results.add_all(_htm_results(results, 0), batch_size=batch_size)
        return self.results.add_all(self._converted(results, batch_size), batch_size=batch_size)

    def _converted(self, results: Iterable[Any], batch_size: int) -> Iterator[HtmResult]:
        """A generator's results as `HtmResult` objects, converted a batch at a time before it is sent."""
        iterator = iter(results)
        offset = 0
        while chunk := list(islice(iterator, batch_size)):
            try:
                converted = _htm_results(chunk, offset)
            except ValidationError as error:
                raise UnmadeBatch(error, len(chunk)) from None
            yield from converted
            offset += len(chunk)

    def result_line(self, result: HtmResult) -> str:
        """The line protocol of one result of this model."""
        return self.results.line(result)

    # -- reading -------------------------------------------------------------
    def _query(self) -> Query[HtmResult]:
        return self.results.query()

    def get_results(
        self,
        since: TimeLike | None = None,
        until: TimeLike | None = None,
        limit: int | None = None,
        *,
        before: TimeLike | None = None,
    ) -> list[HtmResult]:
        """Results in ascending time, `since`/`until` inclusive (`before` exclusive); `limit`: latest N."""
        query = self._query().select(*RESULT_KEYS.values()).within(*inclusive_range(since, until, before))
        if limit is not None:
            query = query.order_by("time", "desc").limit(check_positive_int(limit, "limit"))
        results = cast("list[HtmResult]", query.all())  # every result column selected: instances
        if limit is not None:
            results.reverse()
        return results

    def last_result_time(self) -> datetime | None:
        """The time of the latest stored result, or None when there is none."""
        ns = self.last_result_ns()
        return None if ns is None else from_ns(ns)

    def last_result_ns(self) -> int | None:
        """The exact time (ns) of the latest stored result, or None."""
        rows = list(self._query().select("*").order_by("time", "desc").limit(1).rows())
        return rows[0][0] if rows else None

    def count(self) -> int:
        """How many results are stored."""
        from influxhtm.influxql import count

        row = self._query().select(count("anomalyScore")).first()
        return 0 if row is None else int(row.count)

    def delete_results(
        self,
        since: TimeLike | None = None,
        until: TimeLike | None = None,
        *,
        before: TimeLike | None = None,
    ) -> None:
        """Delete this model's results from `since` to `until` (inclusive) or `before`; all without bounds."""
        self.sensor.client.delete(
            self.measurement,
            since=since,
            until=until,
            before=before,
            component=self.sensor.component,
            id=self.model_id,
        )

    def delete(self) -> None:
        """Delete this model's results and its registry entry (nothing else)."""
        self.delete_results()
        self.sensor.client.delete(
            REGISTRY_MEASUREMENT,
            measurement=self.sensor.measurement,
            component=self.sensor.component,
            id=self.model_id,
        )
        self.registered = False


def _htm_results(results: Sequence[Any], offset: int) -> list[HtmResult]:
    """The results that are not None as `HtmResult` objects; every problem raised at once, keyed by index."""
    converted: list[HtmResult] = []
    errors: dict[int, Any] = {}
    for index, result in enumerate(results, start=offset):
        if result is None:
            continue
        try:
            converted.append(to_htm_result(result))
        except ValidationError as error:
            errors[index] = error.errors or str(error)
    if errors:
        raise ValidationError(errors)
    return converted


def registry(sensor: SensorSeries) -> Repository:
    """The sensor's registry entries: `ModelRecord` points in `influxhtm_models` with the sensor's
    measurement and component as fixed tags."""
    return Repository(
        sensor.client, ModelRecord, tags={"measurement": sensor.measurement, "component": sensor.component}
    )


def _store_from_record(sensor: SensorSeries, record: ModelRecord) -> HtmModelStore:
    return HtmModelStore(
        sensor,
        record.model_id,
        json.loads(record.params) if record.params else None,
        record.engine or None,
        record.aggregation or None,
        datetime.fromisoformat(record.created) if record.created else None,
    )


def registered_models(sensor: SensorSeries) -> list[HtmModelStore]:
    """The registry's models of this sensor, by id."""
    stores = [_store_from_record(sensor, record) for record in registry(sensor).query()]
    return sorted(stores, key=lambda s: s.model_id)


def get_models(client: Any, measurement: str, model_id: str, components: Iterable[str]
               ) -> dict[str, HtmModelStore]:
    """The registered models `model_id` of many sensors of `measurement`, by component, in one query
    (a component without a registry entry is left out; `get_model` tells why)."""
    from influxhtm.influxql.expressions import MAX_IN_VALUES

    check_name(model_id, "model_id")
    wanted = sorted(set(components))
    query = Repository(client, ModelRecord, tags={"measurement": measurement}).query().where(id=model_id)
    if len(wanted) <= MAX_IN_VALUES:
        query = query.where(component=wanted)
    found: dict[str, HtmModelStore] = {}
    for record in query.all():
        if record.component in wanted and record.component not in found:  # the first, as `get_model`
            found[record.component] = _store_from_record(client.create_sensor(measurement, record.component),
                                                         record)
    return found


def get_model(sensor: SensorSeries, model_id: str) -> HtmModelStore:
    check_name(model_id, "model_id")
    record = registry(sensor).query().where(id=model_id).first()
    if record is not None:
        return _store_from_record(sensor, record)
    if model_id in _result_ids(sensor):
        return HtmModelStore(sensor, model_id, registered=False)
    raise ModelNotFound(f"no model {model_id!r} for sensor {sensor}")


def list_models(sensor: SensorSeries) -> list[HtmModelStore]:
    stores = {s.model_id: s for s in registered_models(sensor)}
    for model_id in _result_ids(sensor):
        stores.setdefault(model_id, HtmModelStore(sensor, model_id, registered=False))
    return [stores[k] for k in sorted(stores)]


def _result_ids(sensor: SensorSeries) -> list[str]:
    """Model ids that have results for this sensor (also models written before the registry existed)."""
    return sensor.client.tag_values(sensor.result_measurement, "id", component=sensor.component)


def create_model(
    sensor: SensorSeries,
    model_id: str,
    params: Mapping[str, Any] | None,
    engine: str | None,
    aggregation: str | None,
    exist_ok: bool,
) -> HtmModelStore:
    check_name(model_id, "model_id")
    if params is not None and not isinstance(params, Mapping):
        raise ValidationError({"params": [f"{params!r} is not a mapping of parameter names to values"]})
    try:
        params_text = json.dumps(dict(params or {}), sort_keys=True)
    except (TypeError, ValueError) as error:
        raise ValidationError({"params": [f"cannot be stored as JSON: {error}"]}) from None
    if engine is not None:
        check_name(engine, "engine")
    if aggregation is not None:
        from influxhtm.core.times import parse_duration

        parse_duration(aggregation, name="aggregation")
    try:
        existing = get_model(sensor, model_id)
    except ModelNotFound:
        existing = None
    if existing is not None:
        if not exist_ok:
            raise ModelExists(
                f"model {model_id!r} exists already for sensor {sensor}; use exist_ok=True to reuse it"
            )
        if existing.registered:
            return existing
    created = datetime.now(UTC)
    record = ModelRecord(
        time=from_ns(0),
        sensor_measurement=sensor.measurement,
        component=sensor.component,
        model_id=model_id,
        params=params_text,
        created=created.isoformat(),
        engine=engine,
        aggregation=aggregation,
    )
    registry(sensor).add(record)
    return HtmModelStore(sensor, model_id, dict(params or {}), engine, aggregation, created)
