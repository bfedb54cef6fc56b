"""Running models over sensors: `Runner` (batch and live), `sweep` over any executor, `RunReport`.

>>> runner = Runner(sensor, sensor.create_htm_model("bb-1"), create_model("brainblocks"))  # doctest: +SKIP
>>> print(runner.run_batch(since="2024-01-01T00:00:00Z", progress=True))                     # doctest: +SKIP
"""

from influxhtm.running.live import run_live
from influxhtm.running.report import LatencyStats, RunReport
from influxhtm.running.runner import BackgroundWriter, Runner
from influxhtm.running.subscription import (
    ParsedPoint,
    Subscription,
    SubscriptionReceiver,
    parse_line,
    parse_lines,
)
from influxhtm.running.sweep import expand_grid, model_id_for, sweep

__all__ = [
    "BackgroundWriter",
    "LatencyStats",
    "ParsedPoint",
    "RunReport",
    "Runner",
    "Subscription",
    "SubscriptionReceiver",
    "expand_grid",
    "model_id_for",
    "parse_line",
    "parse_lines",
    "run_live",
    "sweep",
]
