"""The stateful model the runner and checkpoint tests share (importable by name, so other processes can
load it too): its score is how many points it has seen, so a lost or doubled state shows in the results."""

from __future__ import annotations

import time
from typing import Any


class Counter:
    """Scores each point with the number of points seen so far.

    `params`, when given, becomes the model's `params` (what a checkpoint records);
    `pause` slows each point down (seconds); `fail_after` raises after that many points.
    """

    def __init__(
        self, params: dict[str, Any] | None = None, pause: float = 0.0, fail_after: int | None = None
    ):
        self.seen = 0
        self.pause = pause
        self.fail_after = fail_after
        if params is not None:
            self.params = params

    def run(self, point: Any) -> dict[str, float]:
        if self.fail_after is not None and self.seen >= self.fail_after:
            raise RuntimeError(f"model failed after {self.seen} points")
        self.seen += 1
        if self.pause:
            time.sleep(self.pause)
        return {"anomaly_score": float(self.seen)}

    def get_state(self) -> dict[str, int]:
        return {"seen": self.seen}

    def set_state(self, state: dict[str, int]) -> None:
        self.seen = state["seen"]
