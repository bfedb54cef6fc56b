"""A model that replays recorded results: NAB result files, or results kept from an earlier run.

Useful to store and score results that some other program computed (NAB's
``results/<detector>/...`` files) with exactly the same machinery as a live
engine, and to test that machinery against known numbers.

Results are looked up by the point's time, to the nanosecond. NAB's
``anomaly_score`` *is* the log-scaled anomaly likelihood, so it becomes the
result's ``anomaly_score`` and ``anomaly_likelihood`` stays None.
"""

from __future__ import annotations

import csv
import math
import os
from datetime import datetime, tzinfo
from typing import Any, Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from influxhtm.core.errors import ConfigurationError, NotFound, ValidationError
from influxhtm.core.times import TimeLike, format_rfc3339, to_ns
from influxhtm.model import data_layout as records

MISSING_MODES = ("error", "skip")
#: CSV column -> result key (other columns, such as NAB's label and S(t) ones, are ignored).
CSV_COLUMNS = {key: key for key in records.RESULT_KEYS}  # the HtmResult attributes
RESULT_KEYS = tuple(CSV_COLUMNS.values())


def _zone(tz: str | tzinfo) -> tzinfo:
    if isinstance(tz, tzinfo):
        return tz
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise ValidationError({"tz": [f"unknown time zone {tz!r}"]}) from None


def parse_csv_time(text: str, zone: tzinfo, *, name: str = "timestamp") -> int:
    """Nanoseconds of a CSV timestamp; a naive one is read in `zone`."""
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValidationError({name: [f"{text!r} is not a timestamp (YYYY-MM-DD HH:MM:SS)"]}) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=zone)
    return to_ns(parsed, name=name)


def _number(text: str | None, where: str) -> float | None:
    if text is None or text.strip() == "":
        return None
    try:
        value = float(text)
    except ValueError:
        raise ValidationError({where: [f"{text!r} is not a number"]}) from None
    if not math.isfinite(value):
        raise ValidationError({where: [f"{text!r} is not a finite number"]})
    return value


class ReplayModel:
    """Returns, for each point, the result recorded for its time.

    `results` maps a time (aware datetime, ISO text or int ns) to a result dict
    (keys among RESULT_KEYS) or to a bare number (taken as the anomaly_score).
    `missing`: "error" raises NotFound for a point without a recorded result,
    "skip" returns None for it (the runner stores nothing then).
    """

    engine = "replay"

    def __init__(self, results: Mapping[Any, Any], *, missing: str = "error"):
        if missing not in MISSING_MODES:
            raise ValidationError(
                {"missing": [f"must be one of {', '.join(MISSING_MODES)}, got {missing!r}"]}
            )
        self.missing = missing
        self.duplicates = 0  # rows that replaced an earlier row with the same time (from_csv)
        self._results: dict[int, dict[str, float | None]] = {}
        for key, result in results.items():
            ns = to_ns(key, name="results time")
            if isinstance(result, (int, float)) and not isinstance(result, bool):
                result = {"anomaly_score": result}
            if not isinstance(result, Mapping):
                raise ValidationError({format_rfc3339(ns): [f"result must be a mapping, got {result!r}"]})
            unknown = set(result) - set(RESULT_KEYS) - {"time"}
            if unknown:
                raise ValidationError({format_rfc3339(ns): [f"unknown result keys {sorted(unknown)!r}"]})
            self._results[ns] = {k: result.get(k) for k in RESULT_KEYS}

    @classmethod
    def from_csv(
        cls, path: str | os.PathLike[str], *, tz: str | tzinfo = "UTC", missing: str = "error"
    ) -> ReplayModel:
        """Read a results CSV (NAB format: timestamp, value, anomaly_score, raw_score, ...).

        Naive timestamps are read in zone `tz`. Of two rows with the same time the
        later wins, as in InfluxDB; ``.duplicates`` says how many rows were replaced.
        """
        zone = _zone(tz)
        results: dict[int, dict[str, float | None]] = {}
        duplicates = 0
        try:
            fh = open(path, newline="", encoding="utf-8")
        except OSError as exc:
            raise ConfigurationError(
                f"cannot read results file {os.fspath(path)!r}: {exc.strerror}"
            ) from None
        with fh:
            reader = csv.DictReader(fh)
            columns = reader.fieldnames or []
            if "timestamp" not in columns or "anomaly_score" not in columns:
                raise ValidationError(
                    {os.fspath(path): [f"needs columns 'timestamp' and 'anomaly_score', has {columns!r}"]}
                )
            for line, row in enumerate(reader, start=2):
                ns = parse_csv_time(row["timestamp"], zone, name=f"line {line} timestamp")
                if ns in results:
                    duplicates += 1
                results[ns] = {
                    key: _number(row.get(column), f"line {line} {column}")
                    for column, key in CSV_COLUMNS.items()
                }
        model = cls({}, missing=missing)
        model._results = results
        model.duplicates = duplicates
        return model

    def __len__(self) -> int:
        return len(self._results)

    def result_at(self, time: TimeLike) -> dict[str, float | None] | None:
        """The recorded result for `time`, None if there is none."""
        return self._results.get(to_ns(time))

    def run(self, point: Any) -> dict[str, Any] | None:
        """The recorded result for ``point.time`` (NotFound or None when there is none)."""
        ns = to_ns(point.time, name="point.time")
        recorded = self._results.get(ns)
        if recorded is None:
            if self.missing == "skip":
                return None
            raise NotFound(f"no recorded result for time {format_rfc3339(ns)} in the replayed results")
        result: dict[str, Any] = {"time": point.time}
        for key, value in recorded.items():
            if value is not None or key in ("anomaly_score", "raw_score", "anomaly_likelihood"):
                result[key] = value
        return result

    __call__ = run

    def reset(self) -> None:
        """Nothing to forget: a replay has no sequence state."""

    def get_state(self) -> dict[str, Any]:
        return {"engine": self.engine, "missing": self.missing, "results": dict(self._results)}

    def set_state(self, state: Mapping[str, Any]) -> None:
        self.missing = state["missing"]
        self._results = dict(state["results"])

    def __repr__(self) -> str:
        return f"ReplayModel({len(self._results)} results, missing={self.missing!r})"


def create(
    path: str | os.PathLike[str] | None = None,
    results: Mapping[Any, Any] | None = None,
    tz: str = "UTC",
    missing: str = "error",
) -> ReplayModel:
    """Engine factory: ``create(path="numenta_x.csv")`` or ``create(results={time: result})``."""
    if (path is None) == (results is None):
        raise ValidationError({"path": ["give exactly one of path= (a results CSV) or results= (a mapping)"]})
    if path is not None:
        if not isinstance(path, (str, os.PathLike)):
            raise ValidationError({"path": [f"{path!r} is not the path of a results CSV"]})
        return ReplayModel.from_csv(path, tz=tz, missing=missing)
    assert results is not None
    return ReplayModel(results, missing=missing)
