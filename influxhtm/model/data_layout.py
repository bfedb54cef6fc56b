"""The data layout of influxhtm in InfluxDB, as declared measurements.

- `SensorReading`: a sensor's point: tag `component`, float field `value`
  (written to the sensor's own measurement, e.g. `power`).
- `HtmResult`: a model's answer for one input point, written to
  `<measurement>_model` with tags `component` and `id`.
- `ModelRecord`: one registry point per model in `influxhtm_models`.

The measurement names declared here are placeholders for the first two: the
sensor decides where they are stored.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Optional

from influxhtm.model.declarations import declaration, field, measurement, tag, timestamp

REGISTRY_MEASUREMENT = "influxhtm_models"
RESULT_SUFFIX = "_model"


@measurement("sensor")
class SensorReading:
    """One point of a sensor: its time, component and value.

    `reading["time"]`, `reading["value"]` (and `["component"]`) work too: the original
    influxhtm gave points as dicts, and its README's scripts read them so."""

    time: datetime = timestamp()
    value: float = field()
    component: str = tag()

    def __getitem__(self, key: str) -> Any:
        if key in _READING_KEYS:
            return getattr(self, key)
        raise KeyError(f"{key!r}: a sensor reading has 'time', 'value' and 'component'")


_READING_KEYS = frozenset({"time", "value", "component"})


@measurement("htm_result", kw_only=False)
class HtmResult:
    """A model's result for the input point at `time`."""

    time: datetime = timestamp()
    anomaly_score: Optional[float] = field(name="anomalyScore")
    anomaly_likelihood: Optional[float] = field(name="anomalyLikelihood", default=None)
    raw_score: Optional[float] = field(name="rawScore", default=None)
    prediction: Optional[float] = field(default=None)
    prediction_confidence: Optional[float] = field(name="predictionConfidence", default=None)


@measurement(REGISTRY_MEASUREMENT)
class ModelRecord:
    """The registry entry that makes a model findable and its experiment reproducible."""

    time: datetime = timestamp()
    sensor_measurement: str = tag(name="measurement")
    component: str = tag()
    model_id: str = tag(name="id")
    params: str = field()
    created: str = field()
    engine: Optional[str] = field(default=None)
    aggregation: Optional[str] = field(default=None)


#: InfluxDB field key of each HtmResult attribute, in declaration order (the order of the combined
#: columns): the one result schema, derived from the `HtmResult` declaration.
RESULT_KEYS: dict[str, str] = {column.attr: column.key for column in declaration(HtmResult).fields}
