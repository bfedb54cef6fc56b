"""Timing: the median of repeated runs, baseline and influxhtm interleaved so that drift hits both."""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from typing import Any

import attrs


@attrs.frozen
class Timings:
    """Seconds of every run of one side of a case."""

    seconds: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


def timed(function: Callable[[], Any], setup: Callable[[], Any] | None = None) -> float:
    """Seconds one call of `function` takes (after `setup`, which is not timed)."""
    if setup is not None:
        setup()
    gc.collect()
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def compare(
    sides: dict[str, tuple[Callable[[], Any], Callable[[], Any] | None]], repeats: int
) -> dict[str, Timings]:
    """Run each side `repeats` times, round-robin; name -> Timings."""
    runs: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(repeats):
        for name, (function, setup) in sides.items():
            runs[name].append(timed(function, setup))
    return {name: Timings(tuple(seconds)) for name, seconds in runs.items()}
