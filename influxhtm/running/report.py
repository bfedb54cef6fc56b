"""What a run did: `RunReport` (points, results, time span, speed) and `LatencyStats` for live runs."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from datetime import datetime

import attrs


@attrs.frozen
class LatencyStats:
    """Seconds from a moment (a point seen, or its own timestamp) until its result was stored."""

    count: int
    mean: float
    median: float
    p95: float
    max: float

    @classmethod
    def of(cls, samples: Sequence[float]) -> LatencyStats | None:
        """Stats of the samples, or None when there are none."""
        if not samples:
            return None
        ordered = sorted(samples)
        p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
        return cls(len(ordered), statistics.fmean(ordered), statistics.median(ordered), p95, ordered[-1])

    def __str__(self) -> str:
        return (f"mean {self.mean * 1000:.1f} ms, median {self.median * 1000:.1f} ms, "
                f"p95 {self.p95 * 1000:.1f} ms, max {self.max * 1000:.1f} ms (n={self.count})")


@attrs.frozen
class RunReport:
    """Points read, results written, first and last point time, elapsed seconds and speed.

    Live runs also give `latency` (from the moment the runner received a point
    to its stored result) and `lag` (from the point's own timestamp to its stored
    result: the write-to-result delay when points are stamped as they are written).
    """

    points: int
    results: int
    first: datetime | None
    last: datetime | None
    elapsed: float
    mode: str = "batch"
    latency: LatencyStats | None = None
    lag: LatencyStats | None = None
    errors: int = 0

    @property
    def points_per_second(self) -> float:
        return self.points / self.elapsed if self.elapsed > 0 else 0.0

    def __str__(self) -> str:
        span = ""
        if self.first is not None and self.last is not None:
            span = f", {self.first.isoformat()} .. {self.last.isoformat()}"
        text = (f"{self.mode} run: {self.points:,} points -> {self.results:,} results{span}, "
                f"{self.elapsed:.2f} s ({self.points_per_second:,.0f} points/s)")
        if self.latency is not None:
            text += f"; latency {self.latency}"
        if self.lag is not None:
            text += f"; lag {self.lag}"
        if self.errors:
            text += f"; {self.errors} connection error(s) ridden out"
        return text
