"""Anomaly likelihood: how unusual the recent raw anomaly scores are, as Numenta computes it.

A raw HTM anomaly score is noisy: a predictable stream still has occasional
unpredicted steps. Numenta's anomaly likelihood (NuPIC's
``anomaly_likelihood.py``, htm.core's ``AnomalyLikelihood``) turns it into a
probability:

1. During a probationary period (``learning_period + estimation_samples``
   points) the likelihood is a flat 0.5.
2. Then, every ``reestimation_period`` points, a normal distribution is fitted
   to the moving averages (window ``averaging_window``) of the raw scores kept
   in a sliding history of ``historic_window_size`` points, skipping the
   learning period while it is still in the history. The mean is at least 0.03
   and the variance at least 0.0003, so that a long run of perfect predictions
   does not make the slightest blip look alarming; a flat input metric gets a
   very broad ("null") distribution instead.
3. Each point's likelihood is ``1 - Q`` where ``Q`` is the upper tail
   probability of the current short-term moving average under that
   distribution. A red-zone value (``Q <= 1e-5``) right after another red-zone
   value is softened to ``1 - 1e-3``, so that a long anomaly is flagged at its
   start.

The tail is one-sided, as in NuPIC 0.5.6 which produced NAB's published
Numenta results (later NuPIC versions mirror scores below the mean, which
makes unusually *good* predictions look anomalous). With ``nab_params(rows)``
and the raw scores of NAB's ``results/numenta`` files, ``log_likelihood`` of
this likelihood reproduces their ``anomaly_score`` column to about 1e-12,
except on the rows NAB's detector forced to 1.0 ("spatial anomalies").

``log_likelihood`` rescales a likelihood as NuPIC's ``computeLogLikelihood``
does (and as NAB's ``anomaly_score`` is): 0.5 -> ~0.03, 0.9999999999 -> 1.

This is an independent, compact implementation of that description; it is
deterministic and its state is plain Python data (picklable, JSON-able).
"""

from __future__ import annotations

import itertools
import math
from collections import deque
from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:
    import numpy as np

from influxhtm.core.errors import ValidationError

#: Lower bounds that keep the fitted distribution from being absurdly narrow (NuPIC's values).
MIN_MEAN = 0.03
MIN_VARIANCE = 0.0003
#: Below this variance of the input metric itself the metric counts as flat.
FLAT_METRIC_VARIANCE = 1.5e-5
#: Tail probabilities at or below this are "red"; a red after a red is softened to YELLOW_TAIL.
RED_TAIL = 1.0 - 0.99999
YELLOW_TAIL = 1.0 - 0.999
#: (mean, stdev) so broad that every score is likely: used when nothing can be estimated.
NULL_DISTRIBUTION = (0.5, 1e3)

_LOG_DENOMINATOR = math.log(1.0 - 0.9999999999)
#: sqrt(2) to the 4 decimals NuPIC uses, so that NAB's published scores are reproduced exactly.
SQRT2 = 1.4142


def log_likelihood(likelihood: float) -> float:
    """Log-scaled likelihood in [0, 1]: log(1.0000000001 - p) / log(1 - 0.9999999999)."""
    return math.log(1.0000000001 - likelihood) / _LOG_DENOMINATOR


def tail_probability(x: float, mean: float, stdev: float) -> float:
    """Probability of a normal sample greater than `x` (the Q-function of its z-score)."""
    if stdev <= 0:
        return 0.0 if x > mean else 1.0
    z = (x - mean) / stdev
    return 0.5 * math.erfc(z / SQRT2)


DEFAULTS: dict[str, int] = {
    "learning_period": 288,
    "estimation_samples": 100,
    "historic_window_size": 8640,
    "reestimation_period": 100,
    "averaging_window": 10,
}


def validate_likelihood_params(params: Mapping[str, Any] | None, prefix: str = "") -> dict[str, int]:
    """Complete `params` with DEFAULTS and check them; errors name `prefix + key`."""
    params = dict(params or {})
    errors: dict[str, list[str]] = {}
    for key in sorted(set(params) - set(DEFAULTS)):
        errors[f"{prefix}{key}"] = [f"unknown parameter {key!r} (known: {', '.join(DEFAULTS)})"]
    resolved = dict(DEFAULTS)
    for key in DEFAULTS:
        if key not in params:
            continue
        value = params[key]
        minimum = 0 if key == "learning_period" else 1
        if isinstance(value, bool) or not isinstance(value, int):
            errors[f"{prefix}{key}"] = [f"must be an integer, got {value!r}"]
        elif value < minimum:
            errors[f"{prefix}{key}"] = [f"must be >= {minimum}, got {value!r}"]
        else:
            resolved[key] = int(value)
    if not errors and resolved["historic_window_size"] < resolved["estimation_samples"]:
        errors[f"{prefix}estimation_samples"] = [
            f"{resolved['estimation_samples']!r} exceeds historic_window_size "
            f"{resolved['historic_window_size']!r}"
        ]
    if errors:
        raise ValidationError(errors)
    return resolved


def nab_params(rows: int) -> dict[str, int]:
    """The likelihood parameters NAB's Numenta detector uses for a file of `rows` rows.

    Its probationary period is min(floor(0.15 * rows), 750) rows, half of it the
    learning period, and the distribution is re-estimated every 100 rows.
    """
    probation = min(math.floor(0.15 * rows), 750)
    learning = probation // 2
    return {
        "learning_period": learning,
        "estimation_samples": max(1, probation - learning),
        "historic_window_size": DEFAULTS["historic_window_size"],
        "reestimation_period": 100,
        "averaging_window": DEFAULTS["averaging_window"],
    }


class AnomalyLikelihood:
    """Online anomaly likelihood from successive raw anomaly scores.

    >>> al = AnomalyLikelihood(learning_period=10, estimation_samples=10)
    >>> al.update(0.0)
    0.5
    """

    def __init__(
        self,
        learning_period: int = DEFAULTS["learning_period"],
        estimation_samples: int = DEFAULTS["estimation_samples"],
        historic_window_size: int = DEFAULTS["historic_window_size"],
        reestimation_period: int = DEFAULTS["reestimation_period"],
        averaging_window: int = DEFAULTS["averaging_window"],
    ):
        self.params = validate_likelihood_params(
            {
                "learning_period": learning_period,
                "estimation_samples": estimation_samples,
                "historic_window_size": historic_window_size,
                "reestimation_period": reestimation_period,
                "averaging_window": averaging_window,
            }
        )
        self.reset()

    def reset(self) -> None:
        """Forget everything: back to the start of the probationary period."""
        p = self.params
        self._iteration = 0
        # (raw score, metric value or None) of the last historic_window_size points
        self._history: deque[tuple[float, float | None]] = deque(maxlen=p["historic_window_size"])
        self._recent: deque[float] = deque(maxlen=p["averaging_window"])
        self._distribution: tuple[float, float] | None = None  # (mean, stdev)
        self._last_tail = 1.0

    @property
    def probationary_period(self) -> int:
        """Points that get a flat 0.5 before the first estimate."""
        return self.params["learning_period"] + self.params["estimation_samples"]

    @property
    def distribution(self) -> tuple[float, float] | None:
        """(mean, stdev) of the current estimate, None before the first one."""
        return self._distribution

    def update(self, raw_score: float, value: float | None = None) -> float:
        """Feed one raw score (and optionally the metric value); return its likelihood in [0, 1].

        `value` is used only to recognise a flat metric, as NuPIC does.
        """
        raw_score = float(raw_score)
        if not math.isfinite(raw_score):
            raise ValidationError({"raw_score": [f"must be a finite number, got {raw_score!r}"]})
        p = self.params
        if self._iteration < self.probationary_period:
            self._recent.append(raw_score)
            likelihood = 0.5
        else:
            if self._distribution is None or self._iteration % p["reestimation_period"] == 0:
                self._estimate()
            self._recent.append(raw_score)
            average = sum(self._recent) / len(self._recent)
            assert self._distribution is not None
            tail = tail_probability(average, *self._distribution)
            filtered = YELLOW_TAIL if tail <= RED_TAIL and self._last_tail <= RED_TAIL else tail
            self._last_tail = tail
            likelihood = 1.0 - filtered
        self._history.append((raw_score, None if value is None else float(value)))
        self._iteration += 1
        return likelihood

    def _estimate(self) -> None:
        """Fit the normal distribution to the moving averages of the history."""
        p = self.params
        shifted_out = max(0, self._iteration - p["historic_window_size"])
        skip = min(self._iteration, max(0, p["learning_period"] - shifted_out))
        if len(self._history) <= skip:
            self._distribution = NULL_DISTRIBUTION
            return
        import numpy as np  # here: importing influxhtm does not load numpy

        scores = np.fromiter((s for s, _ in self._history), dtype=float, count=len(self._history))
        averages = _moving_average(scores, p["averaging_window"])[skip:]
        mean = max(float(averages.mean()), MIN_MEAN)
        variance = max(float(averages.var()), MIN_VARIANCE)
        values = [v for _, v in itertools.islice(self._history, skip, None) if v is not None]
        if len(values) == len(averages) and float(np.var(values)) < FLAT_METRIC_VARIANCE:
            self._distribution = NULL_DISTRIBUTION
            return
        self._distribution = (mean, math.sqrt(variance))

    # -- state -------------------------------------------------------------------------------------

    def get_state(self) -> dict[str, Any]:
        """Everything needed to continue exactly where this one is (plain data)."""
        return {
            "params": dict(self.params),
            "iteration": self._iteration,
            "history": [list(item) for item in self._history],
            "recent": list(self._recent),
            "distribution": None if self._distribution is None else list(self._distribution),
            "last_tail": self._last_tail,
        }

    def set_state(self, state: Mapping[str, Any]) -> None:
        """Continue from a state returned by `get_state` (parameters included)."""
        try:
            self.params = validate_likelihood_params(state["params"], prefix="state.params.")
            p = self.params
            self._iteration = int(state["iteration"])
            self._history = deque(
                ((float(s), None if v is None else float(v)) for s, v in state["history"]),
                maxlen=p["historic_window_size"],
            )
            self._recent = deque((float(s) for s in state["recent"]), maxlen=p["averaging_window"])
            dist = state["distribution"]
            self._distribution = None if dist is None else (float(dist[0]), float(dist[1]))
            self._last_tail = float(state["last_tail"])
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            if isinstance(exc, ValidationError):
                raise
            raise ValidationError({"state": [f"not an AnomalyLikelihood state: {exc!r}"]}) from None

    def __getstate__(self) -> dict[str, Any]:
        return self.get_state()

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.set_state(state)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AnomalyLikelihood) and self.get_state() == other.get_state()

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"AnomalyLikelihood({args})"


def _moving_average(scores: np.ndarray, window: int) -> np.ndarray:
    """Trailing mean over up to `window` scores (fewer at the start), one per score."""
    import numpy as np

    sums = np.cumsum(scores)
    out = np.empty_like(sums)
    head = min(window, len(scores))
    out[:head] = sums[:head] / np.arange(1, head + 1)
    if len(scores) > window:
        out[window:] = (sums[window:] - sums[:-window]) / window
    return out


class LogLikelihoodScores:
    """Wraps a model: its anomaly score becomes the log-scaled anomaly likelihood.

    That is the score NAB's Numenta detector reports (and that NAB's default
    thresholds are tuned for); the raw score stays in `raw_score` and the
    likelihood in `anomaly_likelihood`.
    """

    def __init__(self, model: Any):
        self.model = model
        self.engine = getattr(model, "engine", None)
        self.params = getattr(model, "params", None)

    def run(self, point: Any) -> Any:
        result = self.model.run(point)
        if isinstance(result, Mapping) and result.get("anomaly_likelihood") is not None:
            result = {**result, "anomaly_score": log_likelihood(result["anomaly_likelihood"])}
        return result

    __call__ = run

    def reset(self) -> None:
        getattr(self.model, "reset", lambda: None)()

    def get_state(self) -> Any:
        return self.model.get_state()

    def set_state(self, state: Any) -> None:
        self.model.set_state(state)
