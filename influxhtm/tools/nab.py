"""Numenta Anomaly Benchmark (NAB) scoring of a model's anomaly scores.

Scores exactly as NAB's `nab/sweeper.py` does (the scorer NAB v1.x uses for its
published per-file scores): positions are row indices, the first
min(floor(0.15 N), 750) rows are a probationary period, the earliest detection
in each labelled window earns a sigmoid-weighted credit, a missed window costs
`fn_weight`, and each detection outside the windows costs up to `fp_weight`,
less when it falls just after a window. The raw score of a NAB results file
equals the sum of its `S(t)_<profile>` column.

Windows are matched to rows as NAB's labeler demands: each bound of a window
that lies within the series must be the timestamp of a row, else the score is
refused with an error naming the window and the rows nearest to the bound (a
time-zone slip in a label file would otherwise move windows silently). An
explicit `tolerance` lets a bound match the nearest row within it. Windows
that only touch (one ends where the next starts) are accepted, as NAB accepts
them: the shared row belongs to the later window, as in NAB's sweeper. A window
wholly before the first row or after the last one is not scored.

`score_series` is a pure function on parallel sequences; `score` reads the
results of a model through a store (anything with `get_results(since=, until=)`).
"""

from __future__ import annotations

import bisect
import json
import math
import numbers
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import attrs

from influxhtm.core.errors import NotFound, ValidationError
from influxhtm.core.times import TimeLike, from_ns, parse_duration, timedelta_to_ns, to_ns

#: The shared NAB subset shipped with influxhtm (data, labels, Numenta's results).
NAB_DATA_DIR = Path(__file__).resolve().parents[1] / "data" / "nab"
#: NAB's label file, cut down to the series shipped here.
NAB_WINDOWS_FILE = NAB_DATA_DIR / "labels" / "combined_windows.json"

#: NAB's probationary period: this share of the rows, at most 0.15 * 5000 rows.
PROBATION_PERCENT = 0.15
PROBATION_MAX_ROWS = 750

#: NAB starts its threshold sweep here: above every score, so nothing is detected.
NO_DETECTION_THRESHOLD = 1.1


@attrs.frozen
class Profile:
    """NAB's cost matrix for one application profile (`config/profiles.json`)."""

    name: str
    tp_weight: float
    fn_weight: float
    fp_weight: float
    tn_weight: float = 1.0


#: NAB's three application profiles, weights as in NAB's `config/profiles.json`.
PROFILES: dict[str, Profile] = {
    "standard": Profile("standard", tp_weight=1.0, fn_weight=1.0, fp_weight=0.11, tn_weight=1.0),
    "reward_low_FP_rate": Profile(
        "reward_low_FP_rate", tp_weight=1.0, fn_weight=1.0, fp_weight=0.22, tn_weight=1.0
    ),
    "reward_low_FN_rate": Profile(
        "reward_low_FN_rate", tp_weight=1.0, fn_weight=2.0, fp_weight=0.11, tn_weight=1.0
    ),
}

#: The thresholds NAB's optimiser found for Numenta's HTM detector (NAB's `config/thresholds.json`).
DEFAULT_THRESHOLDS: dict[str, float] = {
    "standard": 0.5422,
    "reward_low_FN_rate": 0.5422,
    "reward_low_FP_rate": 0.5752,
}

Window = tuple[datetime, datetime]


@attrs.frozen
class NabScore:
    """The NAB score of one series at one threshold under one profile.

    `tp`/`fn` count windows detected/missed, `fp` counts detections outside
    every window and `tn` rows outside every window without a detection (all
    after the probationary period). `windows` counts the windows that were
    scored (those with at least one row after the probationary period);
    `windows_unscored` the ones given but not scored (inside the probationary
    period, or wholly before or after the series). `threshold` is the exact
    float used: feeding it back (`repr` keeps every digit) gives the same
    score. `null` and `perfect` are the raw scores of a detector that never
    fires and of one that fires exactly at each window's start; `normalized`
    is NAB's 100 * (raw - null) / (perfect - null), None when there is no
    window to score.
    """

    raw: float
    tp: int
    fp: int
    fn: int
    tn: int
    threshold: float
    profile: str
    points: int
    probation: int
    windows: int
    windows_unscored: int
    null: float
    perfect: float
    normalized: float | None
    detections_in_windows: int
    detections_outside_windows: int


# --------------------------------------------------------------------------- inputs


def resolve_profile(profile: str | Profile) -> Profile:
    """The `Profile` for a profile name (or a `Profile` given as is)."""
    if isinstance(profile, Profile):
        return profile
    if isinstance(profile, str) and profile in PROFILES:
        return PROFILES[profile]
    raise ValidationError(
        {"profile": [f"unknown NAB profile {profile!r}: use one of {', '.join(sorted(PROFILES))}"]}
    )


def _resolve_threshold(threshold: object, profile: Profile) -> float:
    if threshold is None:
        if profile.name not in DEFAULT_THRESHOLDS:
            raise ValidationError(
                {"threshold": [f"profile {profile.name!r} has no default threshold: give one"]}
            )
        return DEFAULT_THRESHOLDS[profile.name]
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real):
        raise ValidationError({"threshold": [f"{threshold!r} is not a number"]})
    value = float(threshold)
    if not math.isfinite(value):
        raise ValidationError({"threshold": [f"{threshold!r} is not a finite number"]})
    return value


def _score_values(scores: Iterable[object]) -> list[float]:
    """Anomaly scores as floats; None (no score) counts as 0.0, i.e. no detection."""
    values: list[float] = []
    for index, score in enumerate(scores):
        if score is None:
            values.append(0.0)
            continue
        if isinstance(score, bool) or not isinstance(score, numbers.Real):
            raise ValidationError({"scores": {index: [f"{score!r} is not a number"]}})
        value = float(score)
        if math.isnan(value):
            raise ValidationError({"scores": {index: ["NaN is not an anomaly score"]}})
        values.append(value)
    return values


def _window_bounds(windows: Iterable[Sequence[TimeLike]]) -> list[tuple[int, int]]:
    """Windows as (start_ns, end_ns), sorted by start; rejects reversed or overlapping ones.

    Windows that only touch (one ends where the next starts) are accepted, as NAB's labeler does.
    """
    bounds: list[tuple[int, int]] = []
    for index, window in enumerate(windows):
        try:
            start, end = window
        except (TypeError, ValueError):
            raise ValidationError({"windows": {index: [f"{window!r} is not a (start, end) pair"]}}) from None
        start_ns = to_ns(start, name=f"windows[{index}].start")
        end_ns = to_ns(end, name=f"windows[{index}].end")
        if end_ns < start_ns:
            raise ValidationError({"windows": {index: [f"window ends ({end}) before it starts ({start})"]}})
        bounds.append((start_ns, end_ns))
    bounds.sort()
    for index in range(1, len(bounds)):
        if bounds[index][0] < bounds[index - 1][1]:
            pair = f"{_window_text(bounds[index - 1])} and {_window_text(bounds[index])}"
            raise ValidationError({"windows": [f"windows overlap: {pair}"]})
    return bounds


def resolve_tolerance(tolerance: object) -> int:
    """A tolerance in ns: None (0: exact), a timedelta, a duration text ("5m") or whole nanoseconds."""
    if tolerance is None:
        return 0
    if isinstance(tolerance, timedelta):
        value = timedelta_to_ns(tolerance)
    elif isinstance(tolerance, str):
        value = parse_duration(tolerance, name="tolerance")
    elif isinstance(tolerance, int) and not isinstance(tolerance, bool):
        value = tolerance
    else:
        raise ValidationError({"tolerance": [f"{tolerance!r} is not a duration (a timedelta, '5m' or ns)"]})
    if value < 0:
        raise ValidationError({"tolerance": [f"{tolerance!r} is negative"]})
    return value


def _window_text(bounds: tuple[int, int]) -> str:
    return f"[{from_ns(bounds[0]).isoformat()}, {from_ns(bounds[1]).isoformat()}]"


class _Rows:
    """Find rows by time: the first row with a time (as NAB's `timestamps.index`), and the nearest ones."""

    def __init__(self, times_ns: Sequence[int]):
        self.first: dict[int, int] = {}
        for row, ns in enumerate(times_ns):
            self.first.setdefault(ns, row)
        self.ordered = sorted(self.first.items())  # (time, first row), ascending (NAB's data has a step back)
        self.keys = [ns for ns, _ in self.ordered]

    def of(self, ns: int, tolerance: int, inward: int) -> int | str:
        """The row at `ns` (or the nearest within `tolerance`), else the text naming the nearest rows.

        `inward` (+1 for a start, -1 for an end) breaks a tie towards the inside of the window.
        """
        if ns in self.first:
            return self.first[ns]
        at = bisect.bisect_left(self.keys, ns)
        near = [self.ordered[i] for i in (at - 1, at) if 0 <= i < len(self.ordered)]
        within = [(t, row) for t, row in near if abs(t - ns) <= tolerance]
        if within:
            return min(within, key=lambda item: (abs(item[0] - ns), -inward * item[0]))[1]
        return " and ".join(f"row {row} at {from_ns(t).isoformat()}" for t, row in near)


def _window_rows(
    times_ns: Sequence[int], bounds: Sequence[tuple[int, int]], tolerance: int = 0
) -> list[tuple[int, int]]:
    """Map windows to inclusive (start_row, end_row) ranges, as NAB's labeler and sweeper do.

    Each bound must be a row's timestamp (or within `tolerance` of one: the
    nearest row is taken); a bound that is neither raises a ValidationError
    naming the window and the nearest rows, every such bound at once. A window
    wholly before the first row or after the last one is left out (not scored).
    """
    rows: list[tuple[int, int]] = []
    problems: list[str] = []
    if not times_ns:
        return rows
    index = _Rows(times_ns)
    for start_ns, end_ns in bounds:
        if end_ns < index.keys[0] or start_ns > index.keys[-1]:
            continue  # outside the series: no row to score
        first = index.of(start_ns, tolerance, +1)
        last = index.of(end_ns, tolerance, -1)
        for bound, found in (("start", first), ("end", last)):
            if isinstance(found, str):
                problems.append(
                    f"window {_window_text((start_ns, end_ns))}: its {bound} is not the time of a row "
                    f"(nearest: {found})."
                )
        if isinstance(first, int) and isinstance(last, int):
            name = f"window {_window_text((start_ns, end_ns))}"
            if last < first:
                problems.append(f"{name} holds no row within the tolerance.")
            elif rows and first < rows[-1][1]:
                problems.append(f"{name} shares rows with the one before it, matched within the tolerance.")
            else:
                rows.append((first, last))
    if problems:
        within = f" or within the tolerance ({tolerance} ns) of one" if tolerance else ""
        raise ValidationError({"windows": problems + [
            f"as in NAB, every window bound must be the timestamp of a row{within}: check the time zone "
            f"of the label file, or allow a tolerance"]})
    return rows


# --------------------------------------------------------------------------- scoring


def scaled_sigmoid(position: float) -> float:
    """NAB's A(x) = 2 / (1 + e^(5x)) - 1, and -1 beyond x > 3."""
    if position > 3.0:
        return -1.0
    return 2 * (1 / (1 + math.exp(5 * position))) - 1.0


def probationary_length(points: int) -> int:
    """Rows at the start of a series that NAB does not score."""
    return min(math.floor(PROBATION_PERCENT * points), PROBATION_MAX_ROWS)


@attrs.frozen
class _Sweep:
    """Per-row scoring terms, computed once per series and profile (NAB's `calcSweepScore`)."""

    weights: list[float]  # the score a detection at this row would add (TP credit or FP cost)
    window_of: list[int | None]  # index into `rows` for rows in a window, None outside
    rows: list[tuple[int, int]]  # (start_row, end_row) of every window within the series
    scored: list[bool]  # per window: has at least one row after the probationary period
    probation: int
    unscored_given: int  # windows given that lie wholly outside the series


def _sweep(
    times_ns: Sequence[int], n: int, bounds: Sequence[tuple[int, int]], profile: Profile, tolerance: int = 0
) -> _Sweep:
    rows = _window_rows(times_ns, bounds, tolerance)
    probation = probationary_length(n)
    max_tp = scaled_sigmoid(-1.0)
    weights = [0.0] * n
    window_of: list[int | None] = [None] * n
    prev_end: int | None = None
    prev_width = 0
    cursor = 0
    for w, (first, last) in enumerate(rows + [(n, n)]):
        for i in range(cursor, min(first, n)):  # rows outside every window
            if prev_end is None:
                weights[i] = -1.0 * profile.fp_weight
            elif prev_width <= 1:
                weights[i] = -1.0 * profile.fp_weight  # NAB divides by zero here; treat as far away
            else:
                weights[i] = scaled_sigmoid(abs(prev_end - i) / float(prev_width - 1)) * profile.fp_weight
        if first >= n:
            break
        width = float(last - first + 1)
        for i in range(first, last + 1):
            position = -(last - i + 1) / width
            weights[i] = scaled_sigmoid(position) * profile.tp_weight / max_tp
            window_of[i] = w
        prev_end, prev_width, cursor = last, int(width), last + 1
    # A row two touching windows share is the later one's (NAB's sweeper enters the next window there).
    owned = [
        last - 1 if w + 1 < len(rows) and rows[w + 1][0] == last else last for w, (_, last) in enumerate(rows)
    ]
    scored = [own >= max(probation, first) for (first, _), own in zip(rows, owned, strict=True)]
    return _Sweep(weights, window_of, rows, scored, probation, len(bounds) - len(rows))


def _result(sweep: _Sweep, scores: Sequence[float], threshold: float, profile: Profile) -> NabScore:
    n = len(scores)
    parts = [-profile.fn_weight if scored else 0.0 for scored in sweep.scored]
    detected = [False] * len(sweep.rows)
    fp_total = 0.0
    fp = tn = inside = 0
    for i in range(sweep.probation, n):
        w = sweep.window_of[i]
        hit = scores[i] >= threshold
        if w is None:
            if hit:
                fp += 1
                fp_total += sweep.weights[i]
            else:
                tn += 1
        elif hit:
            inside += 1
            if not detected[w]:  # only the earliest detection of a window counts
                detected[w] = True
                parts[w] = sweep.weights[i]
    raw = fp_total + sum(parts)
    windows = sum(sweep.scored)
    tp = sum(detected)
    null = -profile.fn_weight * windows
    perfect = profile.tp_weight * windows
    normalized = 100.0 * (raw - null) / (perfect - null) if perfect != null else None
    return NabScore(
        raw=raw,
        tp=tp,
        fp=fp,
        fn=windows - tp,
        tn=tn,
        threshold=threshold,
        profile=profile.name,
        points=n,
        probation=min(sweep.probation, n),
        windows=windows,
        windows_unscored=sweep.unscored_given + (len(sweep.rows) - windows),
        null=null,
        perfect=perfect,
        normalized=normalized,
        detections_in_windows=inside,
        detections_outside_windows=fp,
    )


def _prepare(
    times: Iterable[TimeLike],
    scores: Iterable[object],
    windows: Iterable[Sequence[TimeLike]],
    profile: Profile,
    tolerance: object = None,
) -> tuple[_Sweep, list[float]]:
    times_ns = [to_ns(t, name=f"times[{i}]") for i, t in enumerate(times)]
    values = _score_values(scores)
    if len(times_ns) != len(values):
        raise ValidationError(
            {"scores": [f"{len(values)} scores for {len(times_ns)} times: give one score per time"]}
        )
    slack = resolve_tolerance(tolerance)
    return _sweep(times_ns, len(values), _window_bounds(windows), profile, slack), values


def score_series(
    times: Iterable[TimeLike],
    scores: Iterable[float | None],
    windows: Iterable[Sequence[TimeLike]],
    *,
    profile: str | Profile = "standard",
    threshold: float | None = None,
    tolerance: object = None,
) -> NabScore:
    """NAB score of one series: `times` in row order, one anomaly score per time.

    A row is a detection when its score is >= `threshold` (default: NAB's
    optimised threshold for Numenta HTM under this profile). A missing score
    (None) is no detection. A window bound must be a row's timestamp, or within
    `tolerance` (a timedelta, "5m" or ns) of one; see the module's documentation.
    """
    prof = resolve_profile(profile)
    limit = _resolve_threshold(threshold, prof)
    sweep, values = _prepare(times, scores, windows, prof, tolerance)
    return _result(sweep, values, limit, prof)


def optimize_threshold(
    times: Iterable[TimeLike],
    scores: Iterable[float | None],
    windows: Iterable[Sequence[TimeLike]],
    *,
    profile: str | Profile = "standard",
    tolerance: object = None,
) -> tuple[float, NabScore]:
    """The threshold that maximises the raw NAB score of one series, and the score there.

    As NAB's optimiser (`nab/optimizer.py` with `Sweeper.calcScoreByThreshold`):
    every distinct score after the probationary period is a candidate, as is
    "no detection at all" (1.1); ties go to the highest threshold. The threshold
    is a score itself (or just above the highest): given back to `score_series`,
    it reproduces the score exactly.
    """
    prof = resolve_profile(profile)
    sweep, values = _prepare(times, scores, windows, prof, tolerance)
    n = len(values)
    order = sorted(range(sweep.probation, n), key=lambda i: values[i], reverse=True)
    parts = [-prof.fn_weight if scored else 0.0 for scored in sweep.scored]
    fp_total = 0.0
    top = values[order[0]] if order else 0.0
    best_threshold = NO_DETECTION_THRESHOLD if top < NO_DETECTION_THRESHOLD else math.nextafter(top, math.inf)
    best = fp_total + sum(parts)
    k = 0
    while k < len(order):
        level = values[order[k]]
        while k < len(order) and values[order[k]] == level:
            i = order[k]
            w = sweep.window_of[i]
            if w is None:
                fp_total += sweep.weights[i]
            else:
                parts[w] = max(parts[w], sweep.weights[i])
            k += 1
        total = fp_total + sum(parts)
        if total > best:
            best, best_threshold = total, level
    return best_threshold, _result(sweep, values, best_threshold, prof)


# --------------------------------------------------------------------------- stores and label files


def _store_series(store: Any, since: TimeLike | None, until: TimeLike | None) -> tuple[list[Any], list[Any]]:
    if not callable(getattr(store, "get_results", None)):
        raise ValidationError({"store": [f"{store!r} is not a model store (it has no get_results)"]})
    times: list[Any] = []
    scores: list[Any] = []
    for result in store.get_results(since=since, until=until):
        times.append(result.time)
        scores.append(result.anomaly_score)
    return times, scores


def score(
    store: Any,
    windows: Iterable[Sequence[TimeLike]],
    *,
    profile: str | Profile = "standard",
    threshold: float | None = None,
    since: TimeLike | None = None,
    until: TimeLike | None = None,
    tolerance: object = None,
) -> NabScore:
    """NAB score of a model's stored results (`store.get_results(since=, until=)`, in time order)."""
    times, scores = _store_series(store, since, until)
    return score_series(times, scores, windows, profile=profile, threshold=threshold, tolerance=tolerance)


def optimize_store_threshold(
    store: Any,
    windows: Iterable[Sequence[TimeLike]],
    *,
    profile: str | Profile = "standard",
    since: TimeLike | None = None,
    until: TimeLike | None = None,
    tolerance: object = None,
) -> tuple[float, NabScore]:
    """`optimize_threshold` over a model's stored results."""
    times, scores = _store_series(store, since, until)
    return optimize_threshold(times, scores, windows, profile=profile, tolerance=tolerance)


def read_labels(path: str | Path) -> Mapping[str, Any]:
    """A NAB label file (`combined_windows.json`): series key -> list of [start, end] windows."""
    try:
        with open(path, encoding="utf-8") as handle:
            labels = json.load(handle)
    except FileNotFoundError:
        raise NotFound(f"NAB label file {str(path)!r} does not exist") from None
    except json.JSONDecodeError as exc:
        raise ValidationError({"path": [f"{str(path)!r} is not JSON: {exc}"]}) from None
    if not isinstance(labels, Mapping):
        raise ValidationError({"path": [f"{str(path)!r} is not a NAB label file (no object at the top)"]})
    return labels


def load_windows(path: str | Path, key: str, tz: str = "UTC") -> list[Window]:
    """The labelled windows of one series from a NAB `combined_windows.json`.

    `key` is NAB's relative data path (`realKnownCause/nyc_taxi.csv`); the
    label file's naive timestamps are read in zone `tz` and returned as
    UTC-aware datetimes.
    """
    try:
        zone = ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise ValidationError({"tz": [f"unknown time zone {tz!r}: use an IANA name such as 'UTC'"]}) from None
    if not isinstance(key, str):
        raise ValidationError({"key": [f"{key!r} is not a series key such as 'realKnownCause/nyc_taxi.csv'"]})
    labels = read_labels(path)
    if key not in labels:
        near = [name for name in labels if str(name).endswith(Path(key).name)]
        hint = f"; did you mean {near[0]!r}?" if near else f"; it has {len(labels)} series"
        raise NotFound(f"no windows for key {key!r} in {str(path)!r}{hint}")
    windows: list[Window] = []
    entries = labels[key]
    if not isinstance(entries, list):
        raise ValidationError({key: [f"{entries!r} is not a list of [start, end] windows"]})
    for index, entry in enumerate(entries):
        if not (isinstance(entry, list) and len(entry) == 2 and all(isinstance(t, str) for t in entry)):
            raise ValidationError({key: {index: [f"{entry!r} is not a [start, end] pair of timestamps"]}})
        pair = []
        for text in entry:
            try:
                parsed = datetime.fromisoformat(text)
            except ValueError:
                raise ValidationError({key: {index: [f"{text!r} is not a timestamp"]}}) from None
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=zone)
            pair.append(parsed.astimezone(UTC))
        windows.append((pair[0], pair[1]))
    return windows
