"""Live runs in constant memory, and lag in units a person reads (issue 16, item 5).

A live run keeps count, mean, max and P² estimates of the median and p95 of its
latency and lag, never the samples: however many points it processes, the
statistics take the same memory, and the quantiles stay close to exact ones.
"""

from __future__ import annotations

import random
import statistics
import sys
import threading
import tracemalloc

import pytest

from influxhtm.core.times import now_ns
from influxhtm.running import Runner
from influxhtm.running.report import LatencyStats, StreamingStats, format_seconds


def exact(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(p * (len(ordered) - 1))))]


def deep_size(stats: StreamingStats) -> int:
    """Bytes of the stats object and everything it holds."""
    seen: set[int] = set()

    def size(obj: object) -> int:
        if id(obj) in seen:
            return 0
        seen.add(id(obj))
        total = sys.getsizeof(obj)
        if isinstance(obj, (list, tuple)):
            total += sum(size(item) for item in obj)
        for name in getattr(type(obj), "__slots__", ()):
            total += size(getattr(obj, name))
        return total

    return size(stats)


def test_streaming_stats_take_constant_memory():
    rng = random.Random(16)
    stats = StreamingStats()
    for _ in range(1_000):
        stats.add(rng.expovariate(10))
    small = deep_size(stats)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(100_000):
            stats.add(rng.expovariate(10))
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert deep_size(stats) == small
    assert grown < 4_096  # 100,000 floats in a list would be 800 kB and more
    assert stats.count == 101_000


@pytest.mark.parametrize("draw", [
    lambda rng: rng.expovariate(5),
    lambda rng: rng.uniform(-2, 30),
    lambda rng: rng.lognormvariate(0, 1.5),
    lambda rng: rng.gauss(3600, 60),
])
def test_streaming_quantiles_are_close_to_exact_ones(draw):
    rng = random.Random(7)
    samples = [draw(rng) for _ in range(20_000)]
    summary = LatencyStats.of(samples)
    spread = exact(samples, 0.99) - exact(samples, 0.01)
    assert summary.count == len(samples)
    assert summary.mean == pytest.approx(statistics.fmean(samples))
    assert summary.max == max(samples)
    assert abs(summary.median - exact(samples, 0.5)) < 0.02 * spread
    assert abs(summary.p95 - exact(samples, 0.95)) < 0.02 * spread


def test_few_samples_are_exact():
    for n in range(1, 6):
        samples = [float(i * i) for i in range(n)]
        summary = LatencyStats.of(samples)
        assert (summary.median, summary.p95, summary.max) == (
            exact(samples, 0.5), exact(samples, 0.95), max(samples))
    assert LatencyStats.of([]) is None


@pytest.mark.parametrize(("seconds", "text"), [
    (0.00004, "40 µs"), (0.18, "180 ms"), (0.0123, "12.3 ms"), (2.3, "2.3 s"), (59.0, "59 s"),
    (270.0, "4.5 min"), (90_000.0, "25 h"), (-0.5, "-500 ms"), (3 * 86_400, "3 d"),
])
def test_durations_read_in_units(seconds, text):
    assert format_seconds(seconds) == text


def test_a_long_live_run_reports_readable_lag_in_constant_memory(client, reliability_report):
    sensor = client.create_sensor("power", "old")
    store = sensor.create_htm_model("live")
    start = now_ns() - 25 * 3600 * 10**9  # stamped 25 hours ago: a lag of 25 h
    count = 3_000
    sensor.write([{"time": start + i * 10**6, "value": float(i)} for i in range(count)])
    runner = Runner(sensor, store, lambda point: {"anomaly_score": 0.5})
    from influxhtm.running.live import LiveRun

    live = LiveRun(runner, poll_interval=0.1, stop=threading.Event(), max_points=count, mode="poll",
                   since=None, chunk_size=500)
    sizes = []
    original = live._store

    def store_and_measure(lines, items):
        original(lines, items)
        sizes.append(deep_size(live.lag) + deep_size(live.latency))

    live._store = store_and_measure
    report = live.run()
    reliability_report(
        scenario="live run statistics in constant memory",
        faults=f"{count} points 25 h old through a live run (6 chunks)",
        written=count, read_back=store.count(), lost=count - report.points, duplicated=0,
    )
    assert report.points == count == store.count()
    assert max(sizes) - min(sizes) <= 64  # the same after every chunk (give or take an int growing)
    assert report.lag.count == count
    assert str(report).count(" h") >= 3  # lag mean, median, p95 (and max) in hours
    assert "lag mean 25 h" in str(report)
