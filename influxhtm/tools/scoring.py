"""NAB scores of stored models, as the CLI and the demo give them.

`influxhtm.tools.nab` scores a model's `anomalyScore`. Engines differ in what they
put there: Numenta's NAB detector stores the log-scaled anomaly likelihood,
BrainBlocks the raw anomaly score. `score_store` therefore lets the caller pick
the field that is thresholded (`SCORE_FIELDS`), so models are compared on the
same kind of score, and says which threshold was used (NAB's default for the
profile, a given one, or the optimum found by NAB's optimiser).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs

from influxhtm.core.errors import NotFound, ValidationError
from influxhtm.core.times import TimeLike
from influxhtm.tools import nab

#: Fields a NAB score can threshold: stored field name -> value of an `HtmResult`.
SCORE_FIELDS: dict[str, Callable[[Any], float | None]] = {
    "anomalyScore": lambda r: r.anomaly_score,
    "logLikelihood": lambda r: (
        None if r.anomaly_likelihood is None else _log_likelihood(r.anomaly_likelihood)
    ),
    "anomalyLikelihood": lambda r: r.anomaly_likelihood,
    "rawScore": lambda r: r.raw_score,
}


def _log_likelihood(likelihood: float) -> float:
    from influxhtm.running.engines.likelihood import log_likelihood

    return log_likelihood(likelihood)


@attrs.frozen
class StoreScore:
    """The NAB score of one stored model: which field, which threshold rule, and `nab.NabScore`."""

    model: str
    field: str
    threshold_rule: str  # "NAB default", "given" or "optimised"
    score: nab.NabScore

    def to_dict(self) -> dict[str, Any]:
        """JSON-able: every NabScore field, plus model, field and threshold rule."""
        return {
            "model": self.model,
            "field": self.field,
            "threshold_rule": self.threshold_rule,
            **attrs.asdict(self.score),
        }


def score_series_of(
    store: Any, field: str = "anomalyScore", since: TimeLike | None = None, until: TimeLike | None = None
) -> tuple[list[Any], list[float | None]]:
    """Times and the chosen score of a model's stored results, in time order."""
    try:
        pick = SCORE_FIELDS[field]
    except KeyError:
        raise ValidationError(
            {"field": [f"{field!r} is not a score field; use one of {', '.join(SCORE_FIELDS)}"]}
        ) from None
    results = store.get_results(since=since, until=until)
    if not results:
        raise NotFound(f"model {store.model_id!r} of sensor {store.sensor} has no results to score")
    return [r.time for r in results], [pick(r) for r in results]


def score_store(
    store: Any,
    windows: Sequence[Any],
    *,
    profile: str = "standard",
    threshold: float | None = None,
    optimize: bool = False,
    field: str = "anomalyScore",
    since: TimeLike | None = None,
    until: TimeLike | None = None,
    series: tuple[list[Any], list[float | None]] | None = None,
    tolerance: Any = None,
) -> StoreScore:
    """NAB score of a model's `field` under `profile`.

    The threshold is `threshold` when given, the optimum of NAB's optimiser with
    `optimize=True`, and NAB's default for the profile otherwise. `series`
    (times, scores) skips reading the results again. Window bounds must be
    timestamps of results, or within `tolerance` of one (see `influxhtm.tools.nab`).
    """
    if optimize and threshold is not None:
        raise ValidationError({"threshold": ["give a threshold or ask to optimise it, not both"]})
    times, scores = series if series is not None else score_series_of(store, field, since, until)
    if optimize:
        _, result = nab.optimize_threshold(times, scores, windows, profile=profile, tolerance=tolerance)
        rule = "optimised"
    else:
        result = nab.score_series(
            times, scores, windows, profile=profile, threshold=threshold, tolerance=tolerance
        )
        rule = "given" if threshold is not None else "NAB default"
    return StoreScore(store.model_id, field, rule, result)


def label_key(path: str | Path, key: str | None, names: Sequence[str]) -> str:
    """The key of a NAB label file to use: `key` if given, else the one whose file name is one of `names`.

    `names` are tried in order (e.g. the component, then the measurement);
    a key matches a name when its file name without `.csv` equals it.
    """
    if key is not None:
        return key
    labels = nab.read_labels(path)
    for name in names:
        found = [k for k in labels if Path(str(k)).stem == name]
        if len(found) == 1:
            return found[0]
    raise ValidationError(
        {
            "label_key": [
                f"no key of {str(path)!r} matches {' or '.join(map(repr, names))}; "
                f"give --label-key (keys: {', '.join(map(str, labels))})"
            ]
        }
    )
