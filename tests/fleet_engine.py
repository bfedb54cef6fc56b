"""A small deterministic engine with state, for the fleet's tests and benchmark.

Its score depends on every point seen (an exponential moving mean and the anomaly
likelihood of the scores), and its state round-trips exactly (plain floats and
lists), so a model evicted and restored must give the same results, bit for bit,
as one that never left memory.
"""

from __future__ import annotations

from typing import Any

from influxhtm.running.engines.likelihood import AnomalyLikelihood

LIKELIHOOD = {"learning_period": 5, "estimation_samples": 5, "historic_window_size": 40,
              "reestimation_period": 3, "averaging_window": 3}


class EwmaModel:
    """Score = relative distance from the moving mean; likelihood of the scores (deterministic)."""

    def __init__(self, alpha: float = 0.3):
        self.params = {"alpha": alpha}
        self.mean: float | None = None
        self.likelihood = AnomalyLikelihood(**LIKELIHOOD)

    def run(self, point: Any) -> dict[str, Any]:
        value = float(point.value)
        mean = value if self.mean is None else self.mean
        raw = min(1.0, abs(value - mean) / (abs(mean) + 1.0))
        self.mean = mean + self.params["alpha"] * (value - mean)
        return {"anomaly_score": raw, "raw_score": raw,
                "anomaly_likelihood": self.likelihood.update(raw, value)}

    def get_state(self) -> dict[str, Any]:
        return {"mean": self.mean, "likelihood": self.likelihood.get_state()}

    def set_state(self, state: dict[str, Any]) -> None:
        self.mean = state["mean"]
        self.likelihood.set_state(state["likelihood"])


def ewma(alpha: float = 0.3) -> EwmaModel:
    """The engine factory."""
    return EwmaModel(alpha)
