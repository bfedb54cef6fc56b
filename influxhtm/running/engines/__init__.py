"""Engine adapters: influxhtm runs no HTM itself, it adapts engines through one small protocol.

An *engine* is a factory ``factory(**params) -> model``; a *model* has
``run(point) -> result dict`` (see :mod:`influxhtm.running.engines.base`). Engines are
looked up by name in ``ENGINES``; ``register_engine`` adds one. Importing this
package imports no engine library: each factory imports its own when called.

>>> model = create_model("brainblocks", value_range=(0.0, 100.0))   # doctest: +SKIP
>>> model.run(point)["raw_score"]                                   # doctest: +SKIP
"""

from __future__ import annotations

import inspect
from typing import Any, Callable

from influxhtm.core.errors import ValidationError
from influxhtm.running.engines import brainblocks, htmcore, replay
from influxhtm.running.engines.base import (
    RESULT_KEYS,
    EngineNotInstalled,
    FunctionModel,
    Model,
    ParamsModel,
    as_model,
    with_params,
)
from influxhtm.running.engines.likelihood import AnomalyLikelihood, log_likelihood, nab_params

Factory = Callable[..., Any]

#: Engine name -> factory(**params) -> model.
ENGINES: dict[str, Factory] = {
    "brainblocks": brainblocks.create,
    "htmcore": htmcore.create,
    "replay": replay.create,
}


def register_engine(name: str, factory: Factory, *, replace: bool = False) -> None:
    """Make `factory` available as engine `name` (refused if taken, unless `replace`)."""
    if not isinstance(name, str) or not name.strip():
        raise ValidationError({"name": [f"an engine name must be a non-empty text, got {name!r}"]})
    if not callable(factory):
        raise ValidationError({"factory": [f"must be callable, got {factory!r}"]})
    if name in ENGINES and not replace and ENGINES[name] is not factory:
        raise ValidationError({"name": [f"engine {name!r} is registered already (pass replace=True)"]})
    ENGINES[name] = factory


def get_engine(name: str) -> Factory:
    """The factory registered as `name`; ValidationError listing the known names otherwise."""
    try:
        return ENGINES[name]
    except (KeyError, TypeError):
        known = ", ".join(sorted(ENGINES))
        raise ValidationError({"engine": [f"unknown engine {name!r} (known: {known})"]}) from None


def create_model(engine: str | Factory, **params: Any) -> ParamsModel:
    """A new model from an engine name or a factory callable, with `params`.

    The result always has a ``run`` method: a factory that returns a plain
    callable ``f(point)`` gets it wrapped in a FunctionModel. It always has
    ``params`` too: an engine's model reports its resolved parameters, any
    other model gets the `params` given here.
    """
    factory = get_engine(engine) if isinstance(engine, str) else engine
    if not callable(factory):
        raise ValidationError({"engine": [f"must be an engine name or a factory callable, got {engine!r}"]})
    return with_params(as_model(factory(**params)), params)


def create_model_for(sensor: Any, engine: str | Factory, **params: Any) -> ParamsModel:
    """`create_model` for one sensor: an engine that takes `value_range` gets the sensor's min and max
    unless `params` give a range (`value_range`, or `min_val` and `max_val`)."""
    factory = get_engine(engine) if isinstance(engine, str) else engine
    try:
        accepts_range = "value_range" in inspect.signature(factory).parameters
    except (TypeError, ValueError):
        accepts_range = False
    if accepts_range and "value_range" not in params and not {"min_val", "max_val"} <= set(params):
        value_range = sensor.value_range()
        if value_range is not None:
            params["value_range"] = value_range
    return create_model(factory, **params)


__all__ = [
    "ENGINES",
    "RESULT_KEYS",
    "AnomalyLikelihood",
    "EngineNotInstalled",
    "Factory",
    "FunctionModel",
    "Model",
    "ParamsModel",
    "as_model",
    "create_model",
    "create_model_for",
    "get_engine",
    "log_likelihood",
    "nab_params",
    "register_engine",
]
