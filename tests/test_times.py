"""The one rule for times: naive means UTC; process-wide, local time (as datetime.timestamp()) or refusal."""

import os
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta

import pytest

from influxhtm.core.errors import AmbiguousTimeError, ValidationError
from influxhtm.core.times import (
    from_ns,
    get_naive_times,
    inclusive_range,
    parse_duration,
    set_naive_times,
    to_ns,
    wall_time_ns,
)


def test_aware_and_integer_and_iso_forms_agree():
    t = datetime(2024, 1, 31, 12, 0, 0, 123456, tzinfo=UTC)
    ns = 1706702400123456000
    assert to_ns(t) == ns == to_ns(ns) == to_ns("2024-01-31T12:00:00.123456Z")
    assert to_ns("2024-01-31T13:00:00.123456789+01:00") == ns + 789
    assert from_ns(ns) == t
    assert to_ns(datetime(1900, 1, 1, 0, 0, 0, 1, tzinfo=UTC)) == -2208988800 * 10**9 + 1000


@pytest.mark.parametrize(
    "naive",
    [
        datetime(2024, 3, 31, 2, 30),  # in the spring-forward gap in Berlin
        datetime(2024, 10, 27, 2, 30),  # in the autumn fold
        datetime(2024, 10, 27, 2, 30, fold=1),
        datetime(2024, 7, 1, 12, 0, 0, 999999),
        datetime(1960, 1, 1, 0, 0, 0, 1),
    ],
)
def test_naive_times_are_utc_or_follow_timestamp_in_a_zone_with_daylight_saving(naive):
    code = textwrap.dedent(
        f"""
        import datetime, time
        time.tzset()
        from influxhtm.core.times import set_naive_times, to_ns
        naive = {naive!r}
        utc = naive.replace(tzinfo=datetime.UTC)
        print(to_ns(naive) == to_ns(utc) == to_ns(naive.isoformat()))  # the default: naive is UTC
        set_naive_times("local")
        expected = int(naive.replace(microsecond=0).timestamp()) * 10**9 + naive.microsecond * 1000
        print(to_ns(naive) == expected, abs(to_ns(naive) / 1e9 - naive.timestamp()) < 1e-5)
        print(to_ns(naive) != to_ns(utc))  # Berlin is never UTC
        """
    )
    env = {**os.environ, "TZ": "Europe/Berlin"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "True", "True", "True"], out.stderr


def test_naive_utc_now_is_the_present_instant():
    assert abs(to_ns(datetime.now(UTC).replace(tzinfo=None)) - to_ns(datetime.now(UTC))) < 5 * 10**9


def test_the_process_wide_rule_is_checked_returned_and_restorable():
    naive = datetime(2024, 3, 1, 12, 0)
    assert get_naive_times() == "utc"
    previous = set_naive_times("error")
    try:
        assert previous == "utc" and get_naive_times() == "error"
        with pytest.raises(ValidationError, match="naive datetime '2024-03-01T12:00:00' refused"):
            to_ns(naive)
        with pytest.raises(ValidationError, match="naive datetime"):
            to_ns("2024-03-01 12:00")
        assert to_ns(naive, naive="utc") == to_ns(naive.replace(tzinfo=UTC))  # an explicit rule wins
    finally:
        set_naive_times(previous)
    assert to_ns(naive) == to_ns(naive.replace(tzinfo=UTC))
    with pytest.raises(ValidationError, match="'UTC' is not one of 'utc', 'local', 'error'"):
        set_naive_times("UTC")
    assert get_naive_times() == "utc"


def test_wall_times_in_a_daylight_saving_gap_or_fold_are_refused_unless_a_reading_is_chosen():
    from zoneinfo import ZoneInfo

    berlin = ZoneInfo("Europe/Berlin")
    hour = 3600 * 10**9
    assert wall_time_ns(datetime(2024, 7, 1, 12), berlin) == to_ns(datetime(2024, 7, 1, 10, tzinfo=UTC))
    gap, fold = datetime(2024, 3, 31, 2, 30), datetime(2024, 10, 27, 2, 30)
    with pytest.raises(AmbiguousTimeError, match="2024-03-31 02:30:00 does not exist"):
        wall_time_ns(gap, berlin)
    with pytest.raises(AmbiguousTimeError, match="2024-10-27 02:30:00 happens twice"):
        wall_time_ns(fold, berlin)
    # the two readings: with the offset before the change, or after it
    assert wall_time_ns(gap, berlin, ambiguous="earlier") == to_ns("2024-03-31T00:30:00Z")
    assert wall_time_ns(gap, berlin, ambiguous="later") == to_ns("2024-03-31T01:30:00Z")
    assert wall_time_ns(fold, berlin, ambiguous="earlier") == to_ns("2024-10-27T00:30:00Z")
    assert wall_time_ns(fold, berlin, ambiguous="later") == to_ns("2024-10-27T00:30:00Z") + hour


def test_inclusive_range_of_since_until_and_before():
    assert inclusive_range() == (None, None)
    assert inclusive_range(10, 20) == (10, 20)
    assert inclusive_range(10, before=20) == (10, 19)
    assert inclusive_range(until="1970-01-01T00:00:01Z") == (None, 10**9)
    with pytest.raises(ValidationError, match="not both"):
        inclusive_range(0, 20, 30)
    with pytest.raises(ValidationError, match="before"):
        inclusive_range(before="tomorrow")


@pytest.mark.parametrize("bad", [True, 1.5, "yesterday", None, [1]])
def test_bad_times_are_refused_with_the_argument_name(bad):
    with pytest.raises(ValidationError, match="since"):
        to_ns(bad, name="since")


def test_range_and_durations():
    with pytest.raises(ValidationError, match="range"):
        to_ns(datetime(1600, 1, 1, tzinfo=UTC))
    assert parse_duration("1h30m") == int(timedelta(minutes=90).total_seconds()) * 10**9
    with pytest.raises(ValidationError, match="duration"):
        parse_duration("ten minutes")
