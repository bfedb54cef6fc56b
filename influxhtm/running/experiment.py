"""The one experiment runner: build the engine's model, register its parameters, hand back the run.

Used by `influxhtm run` (the CLI), the demo and `sweep`: each asks `experiment(...)` for a `Runner`
and calls `run_batch` (or `run_live`) on it, so a model is built and registered the same way
whoever starts it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from influxhtm.core.errors import ModelExists, ValidationError
from influxhtm.htm.sensor import Sensor
from influxhtm.running.engines import Model, create_model_for
from influxhtm.running.engines.likelihood import LogLikelihoodScores
from influxhtm.running.runner import Runner

#: What a model's stored anomaly score is: the engine's own, or its log-scaled likelihood (NAB's HTM score).
ANOMALY_SCORES = ("engine", "log-likelihood")


def build_model(
    sensor: Sensor, engine: str | Callable[..., Any], params: Mapping[str, Any], anomaly_score: str = "engine"
) -> tuple[Any, dict[str, Any]]:
    """A model of `engine` with `params`, and the parameters to register for it (the resolved ones
    when the model tells them, so the run is reproducible).

    An engine whose factory takes `value_range` gets the sensor's min and max unless the parameters
    give a range. With `anomaly_score="log-likelihood"` the model's anomaly score becomes its
    log-scaled likelihood.
    """
    kwargs = dict(params)
    if anomaly_score == "log-likelihood" and engine == "brainblocks":
        kwargs["anomaly_score"] = "log_likelihood"  # the engine's own parameter: registered, reproducible
        anomaly_score = "raw"
    model: Model = create_model_for(sensor, engine, **kwargs)  # invalid parameters register nothing
    resolved = getattr(model, "params", None)
    registry = dict(resolved) if isinstance(resolved, dict) else dict(params)
    if anomaly_score == "log-likelihood":
        model = LogLikelihoodScores(model)
        registry["anomaly_score"] = "log_likelihood"
    return model, registry


def experiment(
    sensor: Sensor,
    model_id: str,
    engine: str | Callable[..., Any],
    params: Mapping[str, Any] | None = None,
    *,
    engine_name: str | None = None,
    aggregation: str | None = None,
    anomaly_score: str = "engine",
    exist_ok: bool = True,
    same_params: bool = False,
) -> Runner:
    """The `Runner` of model `model_id` of `engine(**params)` over `sensor`, its parameters registered.

    `engine_name` is what the registry stores (default: `engine`, which must then be a name).
    `exist_ok`: a registered model of that id is reused (else `ModelExists`); `same_params`: only
    when it was registered with the same parameters (else `ModelExists`, naming how to go on).
    """
    model, registry = build_model(sensor, engine, params or {}, anomaly_score)
    name = engine_name if engine_name is not None else engine
    if not isinstance(name, str):
        raise ValidationError({"engine_name": ["give the name to register when engine is a factory"]})
    store = sensor.create_htm_model(
        model_id, params=registry, engine=name, aggregation=aggregation, exist_ok=exist_ok
    )
    known = store.params if store.registered else None
    if same_params and known is not None and known != json.loads(json.dumps(registry)):
        raise ModelExists(
            f"model {model_id!r} of {sensor} exists with other parameters; choose another --id, "
            f"or delete it first (influxhtm delete-model {sensor.measurement} {sensor.component} {model_id})"
        )
    return Runner(sensor, store, model)
