"""Every form a model's result may take, turned into an `HtmResult`.

Accepted: an `HtmResult`; a mapping with `time` (or `timestamp`) and the result
keys in snake_case or camelCase; a NuPIC OPF `ModelResult` (an object with
`rawInput` holding the timestamp and `inferences` holding `anomalyScore`); the
original influxhtm's `{"inferences": {"anomalyScore": ...}, "anomalyLikelihood": ...}`
given with a separate time.
"""

from __future__ import annotations

from typing import Any, Mapping

from influxhtm.core.errors import ValidationError
from influxhtm.model.data_layout import RESULT_KEYS, HtmResult

#: camelCase and snake_case spellings of each HtmResult attribute.
_ALIASES: dict[str, str] = {**{k: k for k in RESULT_KEYS}, **{v: k for k, v in RESULT_KEYS.items()}}
_TIME_KEYS = ("time", "timestamp")
#: Keys a model may hand back that are not results; they are ignored.
_IGNORED = {"value", "component", "id", "inferences", "rawInput", "predictionNumber"}


def to_htm_result(result: Any, time: Any = None) -> HtmResult:
    """The `HtmResult` of any accepted result form; `time` supplies or overrides the time."""
    if isinstance(result, HtmResult):
        if time is None:
            return result
        return HtmResult(
            time,
            result.anomaly_score,
            result.anomaly_likelihood,
            result.raw_score,
            result.prediction,
            result.prediction_confidence,
        )
    if isinstance(result, Mapping):
        values, found_time = _from_mapping(result)
    elif hasattr(result, "inferences"):
        values, found_time = _from_nupic(result)
    else:
        raise ValidationError(
            {
                "result": [
                    f"{result!r} is not a result: give an HtmResult, a mapping with anomaly_score, "
                    "or a NuPIC ModelResult"
                ]
            }
        )
    if time is None:
        time = found_time
    if time is None:
        raise ValidationError(
            {
                "time": [
                    "the result has no time: include 'time' (or 'timestamp') in it, "
                    "or call write_result(time, result)"
                ]
            }
        )
    return HtmResult(time=time, **values)


def _from_mapping(result: Mapping[str, Any]) -> tuple[dict[str, Any], Any]:
    values: dict[str, Any] = {}
    unknown = []
    for key, value in result.items():
        if key in _ALIASES:
            values[_ALIASES[key]] = value
        elif key not in _TIME_KEYS and key not in _IGNORED:
            unknown.append(key)
    if unknown:
        known = ", ".join(sorted(_ALIASES))
        raise ValidationError({str(k): [f"unknown result key {k!r}; known keys: {known}"] for k in unknown})
    inferences = result.get("inferences")
    if isinstance(inferences, Mapping):
        _merge_inferences(values, inferences)
    values.setdefault("anomaly_score", None)
    time = next((result[k] for k in _TIME_KEYS if result.get(k) is not None), None)
    if time is None and isinstance(result.get("rawInput"), Mapping):
        time = result["rawInput"].get("timestamp")
    return values, time


def _from_nupic(result: Any) -> tuple[dict[str, Any], Any]:
    values: dict[str, Any] = {}
    _merge_inferences(values, result.inferences or {})
    values.setdefault("anomaly_score", None)
    likelihood = getattr(result, "anomalyLikelihood", None)
    if likelihood is not None:
        values["anomaly_likelihood"] = likelihood
    raw_input = getattr(result, "rawInput", None) or {}
    time = raw_input.get("timestamp") if isinstance(raw_input, Mapping) else None
    return values, time


def _merge_inferences(values: dict[str, Any], inferences: Mapping[Any, Any]) -> None:
    """Take anomalyScore and the one-step best prediction (with its probability) from NuPIC inferences."""
    if inferences.get("anomalyScore") is not None:
        values.setdefault("anomaly_score", inferences["anomalyScore"])
    best = inferences.get("multiStepBestPredictions") or {}
    if isinstance(best, Mapping) and best:
        step = min(best)
        prediction = best[step]
        if prediction is not None:
            values.setdefault("prediction", prediction)
            options = (inferences.get("multiStepPredictions") or {}).get(step) or {}
            if isinstance(options, Mapping) and prediction in options:
                values.setdefault("prediction_confidence", options[prediction])
