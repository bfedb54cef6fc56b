"""The one rule for times: naive means local time, exactly as datetime.timestamp() reads it."""

import os
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta

import pytest

from influxhtm.errors import ValidationError
from influxhtm.times import from_ns, parse_duration, to_ns


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
def test_naive_times_follow_timestamp_in_a_zone_with_daylight_saving(naive):
    code = textwrap.dedent(
        f"""
        import datetime, time
        time.tzset()
        from influxhtm.times import to_ns
        naive = {naive!r}
        expected = int(naive.replace(microsecond=0).timestamp()) * 10**9 + naive.microsecond * 1000
        print(to_ns(naive) == expected, abs(to_ns(naive) / 1e9 - naive.timestamp()) < 1e-5)
        """
    )
    env = {**os.environ, "TZ": "Europe/Berlin"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "True"], out.stderr


def test_now_is_the_present_instant():
    assert abs(to_ns(datetime.now()) - to_ns(datetime.now(UTC))) < 5 * 10**9


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
