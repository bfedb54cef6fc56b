"""NAB scoring: agreement with NAB's own per-row scores, and the rules one by one.

The acceptance check: for each shared NAB results file and each profile, the
raw score equals the sum of the file's `S(t)_<profile>` column (NAB's own
attribution). The edge-case tests derive their expected values by hand from
NAB's rules (data/nab/README.md), not from this implementation's output.

`score()` is tested here with a small stand-in object for the store (it only
needs `get_results(since=, until=)`); the test through a real `HtmModelStore`
on a real server belongs with the store.
"""

from __future__ import annotations

import csv
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from influxhtm.core.errors import NotFound, ValidationError
from influxhtm.tools import nab

RESULTS = nab.NAB_DATA_DIR / "results" / "numenta"
SHARED = [
    "artificialWithAnomaly/art_daily_jumpsup.csv",
    "realAWSCloudwatch/ec2_cpu_utilization_5f5533.csv",
    "realKnownCause/ambient_temperature_system_failure.csv",
    "realKnownCause/machine_temperature_system_failure.csv",
    "realKnownCause/nyc_taxi.csv",
]
T0 = datetime(2020, 1, 1, tzinfo=UTC)


def A(x: float) -> float:
    """NAB's scaled sigmoid, written from the README's formula."""
    return -1.0 if x > 3 else 2 / (1 + math.exp(5 * x)) - 1


def results_file(key: str) -> Path:
    category, name = key.split("/")
    return RESULTS / category / f"numenta_{name}"


_cache: dict[str, list[dict[str, str]]] = {}


def rows_of(key: str) -> list[dict[str, str]]:
    if key not in _cache:
        with open(results_file(key), newline="") as handle:
            _cache[key] = list(csv.DictReader(handle))
    return _cache[key]


def series_of(key: str) -> tuple[list[datetime], list[float]]:
    rows = rows_of(key)
    times = [datetime.fromisoformat(r["timestamp"]).replace(tzinfo=UTC) for r in rows]
    return times, [float(r["anomaly_score"]) for r in rows]


def minutes(n: int) -> list[datetime]:
    return [T0 + timedelta(minutes=i) for i in range(n)]


def window(first: int, last: int) -> tuple[datetime, datetime]:
    return (T0 + timedelta(minutes=first), T0 + timedelta(minutes=last))


def with_hits(n: int, hits: list[int]) -> list[float]:
    return [0.9 if i in hits else 0.1 for i in range(n)]


# ---------------------------------------------------------------- the acceptance check


@pytest.mark.parametrize("profile", sorted(nab.PROFILES))
@pytest.mark.parametrize("key", SHARED)
def test_raw_score_equals_nab_attribution(key, profile):
    times, scores = series_of(key)
    windows = nab.load_windows(nab.NAB_WINDOWS_FILE, key)
    result = nab.score_series(times, scores, windows, profile=profile)
    expected = sum(float(r[f"S(t)_{profile}"]) for r in rows_of(key))
    assert result.raw == pytest.approx(expected, abs=1e-6)
    assert result.threshold == nab.DEFAULT_THRESHOLDS[profile]
    assert result.points == len(times)
    assert result.windows == len(windows)
    assert result.tp + result.fn == result.windows
    weights = nab.PROFILES[profile]
    assert result.null == -weights.fn_weight * len(windows)
    assert result.perfect == weights.tp_weight * len(windows)
    # the window terms are the non-zero S(t) values on the rows that open a window
    labels = [int(r["label"]) for r in rows_of(key)]
    starts = [i for i, v in enumerate(labels) if v and (i == 0 or not labels[i - 1])]
    window_terms = [float(rows_of(key)[i][f"S(t)_{profile}"]) for i in starts]
    assert len(starts) == len(windows)
    assert sum(1 for t in window_terms if t > 0) == result.tp
    assert sum(1 for t in window_terms if t < 0) == result.fn


def test_profiles_match_nab_config():
    assert {name: (p.tp_weight, p.fn_weight, p.fp_weight) for name, p in nab.PROFILES.items()} == {
        "standard": (1.0, 1.0, 0.11),
        "reward_low_FP_rate": (1.0, 1.0, 0.22),
        "reward_low_FN_rate": (1.0, 2.0, 0.11),
    }


# ---------------------------------------------------------------- the rules, by hand


def test_no_windows_every_detection_costs_fp_weight():
    # 20 rows: probation floor(3.0) = 3 rows; the hit at row 1 is not scored.
    result = nab.score_series(minutes(20), with_hits(20, [1, 5, 10]), [])
    assert result.raw == pytest.approx(-0.22)
    assert (result.fp, result.tp, result.fn, result.windows) == (2, 0, 0, 0)
    assert result.tn == 17 - 2
    assert result.normalized is None
    low_fp = nab.score_series(minutes(20), with_hits(20, [1, 5, 10]), [], profile="reward_low_FP_rate")
    assert low_fp.raw == pytest.approx(-0.44)


@pytest.mark.parametrize("profile,cost", [("standard", 1.0), ("reward_low_FN_rate", 2.0)])
def test_missed_window_costs_fn_weight(profile, cost):
    result = nab.score_series(minutes(20), with_hits(20, []), [window(10, 13)], profile=profile)
    assert result.raw == -cost
    assert (result.tp, result.fn, result.fp) == (0, 1, 0)
    assert result.normalized == 0.0


def test_detection_at_window_start_earns_full_credit_and_later_ones_nothing():
    result = nab.score_series(minutes(20), with_hits(20, [10, 11, 13]), [window(10, 13)])
    assert result.raw == pytest.approx(1.0, abs=1e-15)
    assert (result.tp, result.fn, result.fp, result.detections_in_windows) == (1, 0, 0, 3)
    assert result.normalized == pytest.approx(100.0)


def test_only_the_earliest_detection_in_a_window_counts():
    # window rows 10..13 (width 4); earliest hit at row 12: position -(13 - 12 + 1) / 4
    result = nab.score_series(minutes(20), with_hits(20, [12, 13]), [window(10, 13)])
    assert result.raw == pytest.approx(A(-0.5) / A(-1.0), abs=1e-12)
    last_only = nab.score_series(minutes(20), with_hits(20, [13]), [window(10, 13)])
    assert last_only.raw == pytest.approx(A(-0.25) / A(-1.0), abs=1e-12)
    assert last_only.raw < result.raw


def test_false_positive_after_a_window_is_weighed_by_distance():
    # window rows 10..13 (width 4); hits at 15 (x = 2/3) and 30 (x = 17/3 > 3 -> -1)
    result = nab.score_series(minutes(40), with_hits(40, [15, 30]), [window(10, 13)])
    expected = -1.0 + 0.11 * A(2 / 3) + 0.11 * -1.0
    assert result.raw == pytest.approx(expected, abs=1e-12)
    assert (result.fp, result.fn, result.detections_outside_windows) == (2, 1, 2)


def test_probationary_period_is_capped_at_750_rows():
    n = 6000  # 15% would be 900 rows
    hits = [800]
    result = nab.score_series([T0 + timedelta(minutes=i) for i in range(n)], with_hits(n, hits), [])
    assert result.probation == 750
    assert result.fp == 1


def test_window_inside_probation_is_not_scored_but_still_precedes():
    # 100 rows: probation 15 rows; window rows 2..5 (width 4) is not scored,
    # a hit at row 20 is weighed from its end: x = 15 / 3 > 3 -> -fpWeight
    result = nab.score_series(minutes(100), with_hits(100, [7, 20]), [window(2, 5)])
    assert result.windows == 0 and result.windows_unscored == 1
    assert result.raw == pytest.approx(-0.11, abs=1e-12)  # row 7 is in probation
    assert result.fp == 1


def test_window_straddling_probation_scores_only_rows_after_it():
    # 100 rows: probation 15 rows; window rows 12..17 (width 6); the hit at row 13
    # is in probation, so the earliest scored hit is row 16: position -(17 - 16 + 1) / 6
    result = nab.score_series(minutes(100), with_hits(100, [13, 16]), [window(12, 17)])
    assert result.windows == 1 and result.tp == 1
    assert result.raw == pytest.approx(A(-1 / 3) / A(-1.0), abs=1e-12)


def test_threshold_is_inclusive_and_must_be_a_number():
    scores = [0.0] * 20
    scores[10] = 0.5
    at = nab.score_series(minutes(20), scores, [window(10, 12)], threshold=0.5)
    above = nab.score_series(minutes(20), scores, [window(10, 12)], threshold=0.5000001)
    assert at.tp == 1 and above.tp == 0
    for bad in ["0.5", True, float("nan"), float("inf"), [0.5]]:
        with pytest.raises(ValidationError) as info:
            nab.score_series(minutes(20), scores, [], threshold=bad)
        assert "threshold" in info.value.errors
        assert repr(bad) in str(info.value)


def test_unknown_profile_is_named():
    with pytest.raises(ValidationError) as info:
        nab.score_series(minutes(5), [0.0] * 5, [], profile="reward_everything")
    assert "reward_everything" in str(info.value)
    assert "profile" in info.value.errors


def test_custom_profile_needs_a_threshold():
    custom = nab.Profile("mine", tp_weight=2.0, fn_weight=0.5, fp_weight=0.5)
    with pytest.raises(ValidationError, match="threshold"):
        nab.score_series(minutes(20), [0.0] * 20, [], profile=custom)
    result = nab.score_series(
        minutes(20), with_hits(20, [10]), [window(10, 12)], profile=custom, threshold=0.5
    )
    assert result.raw == pytest.approx(2.0) and result.perfect == 2.0 and result.null == -0.5


def test_empty_series():
    result = nab.score_series([], [], [window(1, 2)])
    assert (result.raw, result.points, result.windows, result.windows_unscored) == (0.0, 0, 0, 1)
    assert result.normalized is None
    threshold, best = nab.optimize_threshold([], [], [])
    assert best.raw == 0.0 and threshold == nab.NO_DETECTION_THRESHOLD


def test_bad_inputs_are_named():
    with pytest.raises(ValidationError, match="3 scores for 2 times"):
        nab.score_series(minutes(2), [0.0, 0.1, 0.2], [])
    with pytest.raises(ValidationError) as info:
        nab.score_series(minutes(3), [0.0, "high", 0.2], [])
    assert "'high'" in str(info.value)
    with pytest.raises(ValidationError, match="before it starts"):
        nab.score_series(minutes(20), [0.0] * 20, [window(12, 10)])
    with pytest.raises(ValidationError, match="overlap"):
        nab.score_series(minutes(20), [0.0] * 20, [window(5, 10), window(9, 12)])
    for bad in ["5 minutes", -1, 1.5, True]:
        with pytest.raises(ValidationError, match="tolerance"):
            nab.score_series(minutes(20), [0.0] * 20, [], tolerance=bad)


def test_missing_scores_count_as_no_detection():
    scores = with_hits(20, [10, 15])
    scores[10] = None
    result = nab.score_series(minutes(20), scores, [window(10, 12)])
    assert (result.tp, result.fn, result.fp) == (0, 1, 1)


def test_a_window_bound_that_is_no_row_is_refused_naming_the_window_and_the_nearest_rows():
    # rows every 10 minutes; a window 35..65 min has no bound at a row (NAB's labeler refuses it)
    times = [T0 + timedelta(minutes=10 * i) for i in range(40)]
    start, end = T0 + timedelta(minutes=35), T0 + timedelta(minutes=65)
    with pytest.raises(ValidationError) as info:
        nab.score_series(times, with_hits(40, [6]), [(start, end)])
    message = str(info.value)
    assert f"window [{start.isoformat()}, {end.isoformat()}]" in message
    assert f"row 3 at {times[3].isoformat()} and row 4 at {times[4].isoformat()}" in message  # start
    assert f"row 6 at {times[6].isoformat()} and row 7 at {times[7].isoformat()}" in message  # end
    with pytest.raises(ValidationError):
        nab.optimize_threshold(times, with_hits(40, [6]), [(start, end)])
    # Within an explicit tolerance the nearest row is taken (a tie goes inside): rows 4..6.
    for tolerance in ["5m", timedelta(minutes=5), 5 * 60 * 10**9]:
        result = nab.score_series(times, with_hits(40, [6]), [(start, end)], tolerance=tolerance)
        assert result.raw == pytest.approx(A(-1 / 3) / A(-1.0), abs=1e-12)
    with pytest.raises(ValidationError, match="is not the time of a row"):
        nab.score_series(times, with_hits(40, [6]), [(start, end)], tolerance="4m")
    # A bound before the first row of a window that reaches into the series is refused too.
    with pytest.raises(ValidationError, match="nearest: row 0 at"):
        nab.score_series(times, with_hits(40, [6]), [(T0 - timedelta(minutes=10), times[2])])


def test_windows_wholly_outside_the_series_are_not_scored():
    times = minutes(40)
    result = nab.score_series(times, with_hits(40, [20]), [window(-30, -20), window(20, 22), window(50, 60)])
    assert (result.windows, result.windows_unscored, result.tp) == (1, 2, 1)


def test_touching_windows_are_accepted_and_the_shared_row_is_the_later_ones():
    # 40 rows, probation 6; windows rows 10..15 and 15..20 touch at row 15. As NAB's sweeper: row 15
    # enters the second window, whose width is 6 (15..20): a hit there is at -(20 - 15 + 1) / 6 = -1.
    touching = [window(10, 15), window(15, 20)]
    at_shared = nab.score_series(minutes(40), with_hits(40, [15]), touching)
    assert (at_shared.tp, at_shared.fn, at_shared.windows) == (1, 1, 2)
    assert at_shared.raw == pytest.approx(A(-1.0) / A(-1.0) - 1.0, abs=1e-12)
    # A hit at row 14 is the first window's: its width is still 6 (10..15), position -(15 - 14 + 1) / 6.
    before = nab.score_series(minutes(40), with_hits(40, [14]), touching)
    assert (before.tp, before.fn) == (1, 1)
    assert before.raw == pytest.approx(A(-1 / 3) / A(-1.0) - 1.0, abs=1e-12)


# ---------------------------------------------------------------- label files


def test_load_windows_reads_nab_labels():
    windows = nab.load_windows(nab.NAB_WINDOWS_FILE, "realKnownCause/nyc_taxi.csv")
    assert len(windows) == 5
    assert windows[0] == (
        datetime(2014, 10, 30, 15, 30, tzinfo=UTC),
        datetime(2014, 11, 3, 22, 30, tzinfo=UTC),
    )
    berlin = nab.load_windows(nab.NAB_WINDOWS_FILE, "realKnownCause/nyc_taxi.csv", tz="Europe/Berlin")
    assert berlin[0][0] == datetime(2014, 10, 30, 14, 30, tzinfo=UTC)  # CET, UTC+1


def test_load_windows_errors_name_the_problem(tmp_path):
    with pytest.raises(NotFound) as info:
        nab.load_windows(nab.NAB_WINDOWS_FILE, "realKnownCause/no_such_series.csv")
    assert "realKnownCause/no_such_series.csv" in str(info.value)
    with pytest.raises(NotFound, match="did you mean 'realKnownCause/nyc_taxi.csv'"):
        nab.load_windows(nab.NAB_WINDOWS_FILE, "nyc_taxi.csv")
    with pytest.raises(NotFound, match="missing.json"):
        nab.load_windows(tmp_path / "missing.json", "a.csv")
    with pytest.raises(ValidationError, match="Mars/Olympus"):
        nab.load_windows(nab.NAB_WINDOWS_FILE, "realKnownCause/nyc_taxi.csv", tz="Mars/Olympus")
    bad = tmp_path / "bad.json"
    bad.write_text('{"a.csv": [["2014-01-01 00:00:00"]]}')
    with pytest.raises(ValidationError, match="a.csv"):
        nab.load_windows(bad, "a.csv")


def test_empty_label_entry(tmp_path):
    path = tmp_path / "labels.json"
    path.write_text('{"x/y.csv": []}')
    assert nab.load_windows(path, "x/y.csv") == []


# ---------------------------------------------------------------- the store


class _Result:
    def __init__(self, time, anomaly_score):
        self.time = time
        self.anomaly_score = anomaly_score


class _StandInStore:
    """Stands in for HtmModelStore: only `get_results(since=, until=)` is used."""

    def __init__(self, times, scores):
        self.rows = [_Result(t, s) for t, s in zip(times, scores, strict=True)]
        self.calls = []

    def get_results(self, since=None, until=None):
        self.calls.append((since, until))
        return iter(
            [
                r
                for r in self.rows
                if (since is None or r.time >= since) and (until is None or r.time <= until)
            ]
        )


def test_score_reads_the_store():
    key = "realKnownCause/nyc_taxi.csv"
    times, scores = series_of(key)
    windows = nab.load_windows(nab.NAB_WINDOWS_FILE, key)
    store = _StandInStore(times, scores)
    for profile in nab.PROFILES:
        assert nab.score(store, windows, profile=profile) == nab.score_series(
            times, scores, windows, profile=profile
        )
    since, until = times[1000], times[5000]
    sliced = nab.score(store, windows, since=since, until=until)
    assert store.calls[-1] == (since, until)
    assert sliced.points == 4001
    assert sliced == nab.score_series(times[1000:5001], scores[1000:5001], windows)
    threshold, best = nab.optimize_store_threshold(store, windows, profile="reward_low_FP_rate")
    assert (threshold, best) == nab.optimize_threshold(times, scores, windows, profile="reward_low_FP_rate")


def test_score_treats_missing_store_scores_as_zero():
    store = _StandInStore(minutes(20), [None] * 10 + [0.9] + [None] * 9)
    assert nab.score(store, [window(10, 12)]).tp == 1
    assert nab.score(store, [window(14, 16)]).raw == pytest.approx(-1.0 - 0.11)


# ---------------------------------------------------------------- threshold optimisation


@pytest.mark.parametrize("key", SHARED)
def test_optimized_threshold_is_at_least_as_good_as_the_default(key):
    times, scores = series_of(key)
    windows = nab.load_windows(nab.NAB_WINDOWS_FILE, key)
    for profile in nab.PROFILES:
        threshold, best = nab.optimize_threshold(times, scores, windows, profile=profile)
        default = nab.score_series(times, scores, windows, profile=profile)
        assert best.raw >= default.raw - 1e-12
        assert best == nab.score_series(times, scores, windows, profile=profile, threshold=threshold)
        assert nab.optimize_threshold(times, scores, windows, profile=profile) == (threshold, best)


def test_optimization_improves_on_the_default_somewhere():
    key = "realKnownCause/machine_temperature_system_failure.csv"
    times, scores = series_of(key)
    windows = nab.load_windows(nab.NAB_WINDOWS_FILE, key)
    _, best = nab.optimize_threshold(times, scores, windows)
    assert best.raw > nab.score_series(times, scores, windows).raw + 0.1


@settings(max_examples=60, deadline=None)
@given(
    scores=st.lists(st.sampled_from([0.0, 0.2, 0.4, 0.5, 0.7, 0.9, 1.0]), min_size=0, max_size=60),
    spans=st.lists(st.tuples(st.integers(0, 59), st.integers(0, 8)), max_size=4),
    profile=st.sampled_from(sorted(nab.PROFILES)),
)
def test_optimum_matches_brute_force(scores, spans, profile):
    n = len(scores)
    windows, taken = [], set()
    for first, length in spans:
        if first + length >= n:
            continue  # a window bound must be a row of the series
        rows = set(range(first, first + length + 1))
        if not rows & taken:
            taken |= rows
            windows.append(window(first, first + length))
    times = minutes(n)
    threshold, best = nab.optimize_threshold(times, scores, windows, profile=profile)
    candidates = sorted(set(scores) | {nab.NO_DETECTION_THRESHOLD}, reverse=True)
    raws = [nab.score_series(times, scores, windows, profile=profile, threshold=t).raw for t in candidates]
    top = max(raws)
    assert best.raw == pytest.approx(top, abs=1e-12)
    # ties go to the highest threshold, as in NAB's optimiser
    first_best = next(t for t, r in zip(candidates, raws, strict=True) if r >= top - 1e-12)
    assert threshold == first_best
    never = nab.score_series(times, scores, windows, profile=profile, threshold=nab.NO_DETECTION_THRESHOLD)
    assert never.raw == pytest.approx(never.null) and never.fp == 0


@pytest.mark.parametrize("key", SHARED)
def test_windows_map_to_the_rows_nab_labels(key):
    # the results files mark every row inside a window with label 1
    times, _ = series_of(key)
    bounds = nab._window_bounds(nab.load_windows(nab.NAB_WINDOWS_FILE, key))
    rows = nab._window_rows([nab.to_ns(t) for t in times], bounds)
    inside = {i for first, last in rows for i in range(first, last + 1)}
    labelled = {i for i, r in enumerate(rows_of(key)) if r["label"] == "1"}
    assert inside == labelled
