"""What a model is, for influxhtm: the protocol every engine adapter follows.

A model is any object with ``run(point) -> result``, or a plain callable
``f(point) -> result``. ``point`` has ``.time`` (UTC-aware datetime) and
``.value`` (float). ``result`` is a dict::

    {"time": point.time, "anomaly_score": float, "anomaly_likelihood": float | None,
     "raw_score": float | None, "prediction": float | None, "prediction_confidence": float | None}

(keys whose value is None may be left out), or None for "no result for this
point". Optional methods: ``reset()`` (start a new sequence),
``get_state() -> picklable`` and ``set_state(state)``.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Protocol, runtime_checkable

from influxhtm.core.errors import ConfigurationError, ValidationError
from influxhtm.model import data_layout as records

#: The keys a result dict may carry besides "time".
RESULT_KEYS = tuple(records.RESULT_KEYS)  # the HtmResult attributes, from its declaration


class EngineNotInstalled(ConfigurationError, ImportError):
    """The package an engine adapter needs is not installed."""


@runtime_checkable
class Model(Protocol):
    """The one method a model must have."""

    def run(self, point: Any) -> dict[str, Any] | None: ...


class ParamsModel(Model, Protocol):
    """What `create_model` returns: a model, and the parameters it was made with (`params`, to
    register with `sensor.create_htm_model(..., params=model.params)`)."""

    @property
    def params(self) -> Mapping[str, Any]: ...


def with_params(model: Model, params: Mapping[str, Any]) -> ParamsModel:
    """`model`, given `params` as its `params` when it has none of its own (an engine's model keeps
    the resolved parameters it reports; a plain function model gets the ones it was made with)."""
    if getattr(model, "params", None) is None:
        try:
            model.params = dict(params)  # type: ignore[attr-defined]
        except AttributeError:  # a slotted object: seen through a wrapper that adds them
            return _WithParams(model, dict(params))
    return model  # type: ignore[return-value]


class _WithParams:
    """A model without room for a `params` attribute, with one (every other attribute is the model's)."""

    def __init__(self, model: Model, params: dict[str, Any]):
        self.model = model
        self.params = params

    def run(self, point: Any) -> dict[str, Any] | None:
        return self.model.run(point)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.model, name)


class FunctionModel:
    """A plain callable ``f(point) -> result`` seen as a model (no state, reset does nothing)."""

    def __init__(self, function: Callable[[Any], dict[str, Any] | None]):
        self.function = function

    def run(self, point: Any) -> dict[str, Any] | None:
        return self.function(point)

    __call__ = run

    def reset(self) -> None:
        """A plain function keeps no sequence state."""

    def __repr__(self) -> str:
        return f"FunctionModel({self.function!r})"


def as_model(obj: Any) -> Model:
    """`obj` itself if it has a ``run`` method, a FunctionModel if it is a plain callable."""
    if callable(getattr(obj, "run", None)):
        return obj
    if callable(obj):
        return FunctionModel(obj)
    raise ValidationError({"model": [f"{obj!r} has no run(point) method and is not callable"]})
