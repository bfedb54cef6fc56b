"""What a run did: `RunReport` (points, results, time span, speed) and `LatencyStats` for live runs."""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime

import attrs

#: The quantiles a live run's latency and lag report.
QUANTILES = (0.5, 0.95)


class P2Quantile:
    """One quantile of a stream in constant memory: the P² algorithm (Jain and Chlamtac, 1985).

    Five markers follow the minimum, the quantile, two points between and the
    maximum; each new value moves them by a parabolic step. Up to five values
    the answer is exact.
    """

    __slots__ = ("p", "heights", "positions", "desired", "increments")

    def __init__(self, p: float):
        self.p = p
        self.heights: list[float] = []
        self.positions = [0.0, 1.0, 2.0, 3.0, 4.0]
        self.desired = [0.0, 2 * p, 4 * p, 2 + 2 * p, 4.0]
        self.increments = [0.0, p / 2, p, (1 + p) / 2, 1.0]

    def add(self, x: float) -> None:
        q = self.heights
        if len(q) < 5:
            q.append(x)
            q.sort()
            return
        if x < q[0]:
            q[0] = x
            k = 0
        elif x >= q[4]:
            q[4] = x
            k = 3
        else:
            k = next(i for i in range(4) if q[i] <= x < q[i + 1])
        n = self.positions
        for i in range(k + 1, 5):
            n[i] += 1
        for i in range(5):
            self.desired[i] += self.increments[i]
        for i in (1, 2, 3):
            self._adjust(i)

    def _adjust(self, i: int) -> None:
        q, n = self.heights, self.positions
        d = self.desired[i] - n[i]
        if not ((d >= 1 and n[i + 1] - n[i] > 1) or (d <= -1 and n[i - 1] - n[i] < -1)):
            return
        s = 1 if d > 0 else -1
        parabolic = q[i] + s / (n[i + 1] - n[i - 1]) * (
            (n[i] - n[i - 1] + s) * (q[i + 1] - q[i]) / (n[i + 1] - n[i])
            + (n[i + 1] - n[i] - s) * (q[i] - q[i - 1]) / (n[i] - n[i - 1])
        )
        if q[i - 1] < parabolic < q[i + 1]:
            q[i] = parabolic
        else:
            q[i] = q[i] + s * (q[i + s] - q[i]) / (n[i + s] - n[i])
        n[i] += s

    def value(self) -> float:
        """The estimate; exact (nearest rank) while there are five values or fewer."""
        q = self.heights
        if len(q) < 5 or self.positions[4] == 4:
            return q[min(len(q) - 1, int(round(self.p * (len(q) - 1))))]
        return q[2]


class StreamingStats:
    """Count, mean, max and the `QUANTILES` of a stream of seconds, in constant memory."""

    __slots__ = ("count", "total", "max", "quantiles")

    def __init__(self) -> None:
        self.count = 0
        self.total = 0.0
        self.max = float("-inf")
        self.quantiles = tuple(P2Quantile(p) for p in QUANTILES)

    def add(self, x: float) -> None:
        self.count += 1
        self.total += x
        if x > self.max:
            self.max = x
        for quantile in self.quantiles:
            quantile.add(x)

    def summary(self) -> LatencyStats | None:
        """The stats so far, or None when nothing was added."""
        if not self.count:
            return None
        median, p95 = (quantile.value() for quantile in self.quantiles)
        return LatencyStats(self.count, self.total / self.count, median, p95, self.max)


class LagHistogram:
    """Seconds counted in log-spaced buckets (each 2% wide, from 0.1 ms): a quantile within 2%.

    Unlike `StreamingStats` it merges: a fleet adds the histograms of all its
    shards (every worker, every generation), so its p50 and p95 are over every
    point, not the worst worker's. The counts travel as [bucket, count] pairs.
    """

    __slots__ = ("counts",)
    FLOOR = 1e-4
    RATIO = 1.02

    def __init__(self, pairs: Iterable[Iterable[int]] = ()) -> None:
        self.counts: dict[int, int] = {}
        self.merge(pairs)

    def add(self, seconds: float) -> None:
        bucket = 0 if seconds <= self.FLOOR else 1 + int(math.log(seconds / self.FLOOR, self.RATIO))
        self.counts[bucket] = self.counts.get(bucket, 0) + 1

    def merge(self, pairs: Iterable[Iterable[int]]) -> LagHistogram:
        """Add the counts of `pairs` (another histogram's `pairs()`); returns self."""
        for bucket, count in pairs:
            self.counts[int(bucket)] = self.counts.get(int(bucket), 0) + int(count)
        return self

    def pairs(self) -> list[list[int]]:
        return [[bucket, count] for bucket, count in sorted(self.counts.items())]

    @property
    def count(self) -> int:
        return sum(self.counts.values())

    def quantile(self, q: float) -> float | None:
        """The upper edge of the bucket holding the `q` quantile (nearest rank); None when empty."""
        total = self.count
        if not total:
            return None
        rank = max(1, math.ceil(q * total))
        seen = 0
        for bucket, count in sorted(self.counts.items()):
            seen += count
            if seen >= rank:
                return self.FLOOR * self.RATIO ** bucket
        raise AssertionError("unreachable: the ranks add up to the count")


def format_seconds(seconds: float) -> str:
    """A duration in the unit a person reads: `180 ms`, `2.3 s`, `4.5 min`, `25 h`, `3.2 d`."""
    size = abs(seconds)
    for limit, unit, scale in ((1e-3, "µs", 1e-6), (1.0, "ms", 1e-3), (60.0, "s", 1.0),
                               (3600.0, "min", 60.0), (172_800.0, "h", 3600.0)):
        if size < limit:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 86_400:.3g} d"


@attrs.frozen
class LatencyStats:
    """Seconds from a moment (a point seen, or its own timestamp) until its result was stored.

    The median and p95 are P² estimates (exact up to five samples): a live run keeps
    no list of samples, so it runs in constant memory however long it lasts.
    """

    count: int
    mean: float
    median: float
    p95: float
    max: float

    @classmethod
    def of(cls, samples: Iterable[float]) -> LatencyStats | None:
        """Stats of the samples, or None when there are none."""
        stats = StreamingStats()
        for sample in samples:
            stats.add(sample)
        return stats.summary()

    def __str__(self) -> str:
        return (f"mean {format_seconds(self.mean)}, median {format_seconds(self.median)}, "
                f"p95 {format_seconds(self.p95)}, max {format_seconds(self.max)} (n={self.count})")


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
