"""Times in and out: the one rule for every time that enters influxhtm.

In: an aware `datetime`, an ISO 8601 text (with an offset or `Z`), or integer
nanoseconds since the epoch. A naive `datetime` (or ISO text without offset)
means **UTC**, as in influxdb-python, influxdb-client and pandas, wherever it
enters (Python API, CLI, queries). `set_naive_times("local")` reads naive times
as local time instead (exactly as `datetime.timestamp()` reads them), and
`set_naive_times("error")` refuses them, process-wide; a class declared with
`naive_times=` keeps its own rule. Out: UTC-aware `datetime`.

A wall-clock time in a named zone (a CSV file's `--tz`) goes through
`wall_time_ns`, which refuses a time that a daylight-saving change skips (gap)
or repeats (fold) unless the caller says which reading to take.

Time ranges: `since` and `until` are both inclusive; `before` is an exclusive
end (`inclusive_range` turns the three into inclusive nanoseconds).

All conversions use integer arithmetic, so microseconds map to exact
nanoseconds, before 1970 too.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, Union

from influxhtm.core.errors import AmbiguousTimeError, ValidationError

#: InfluxDB 1.x accepts timestamps in this closed range (models.MinNanoTime/MaxNanoTime).
MIN_NS = -9223372036854775806
MAX_NS = 9223372036854775806

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

TimeLike = Union[datetime, str, int]

#: How a naive time may be read: as UTC (the default), as local time, or refused.
NAIVE_TIME_POLICIES = ("utc", "local", "error")
#: How naive times are read where no one says otherwise (see `set_naive_times`).
_naive_times = "utc"
#: Which reading of a wall-clock time in a daylight-saving gap or fold `wall_time_ns` may take.
AMBIGUOUS_POLICIES = ("earlier", "later")


def check_naive_policy(policy: Any, name: str = "naive_times") -> str:
    """`policy` if it is one of NAIVE_TIME_POLICIES, else a ValidationError naming it."""
    if policy not in NAIVE_TIME_POLICIES:
        choices = ", ".join(map(repr, NAIVE_TIME_POLICIES))
        raise ValidationError({name: [f"{policy!r} is not one of {choices}"]})
    return str(policy)


def set_naive_times(policy: str) -> str:
    """Process-wide: read naive times as "utc" (the default), as "local" time, or refuse them ("error").

    Returns the previous policy, so a caller can restore it. A class declared
    with `naive_times=` keeps its own rule.
    """
    global _naive_times
    previous, _naive_times = _naive_times, check_naive_policy(policy)
    return previous


def get_naive_times() -> str:
    """The process-wide rule for naive times: "utc", "local" or "error"."""
    return _naive_times

_NS_PER_UNIT = {
    "ns": 1,
    "u": 1_000,
    "µ": 1_000,
    "us": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60 * 1_000_000_000,
    "h": 3600 * 1_000_000_000,
    "d": 86400 * 1_000_000_000,
    "w": 7 * 86400 * 1_000_000_000,
}
_DURATION_PART = re.compile(r"(\d+)(ns|us|u|µ|ms|s|m|h|d|w)")
_DURATION = re.compile(r"(?:\d+(?:ns|us|u|µ|ms|s|m|h|d|w))+")


def timedelta_to_ns(delta: timedelta) -> int:
    """Exact nanoseconds of a `timedelta`."""
    return ((delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds) * 1000


def datetime_to_ns(value: datetime, *, name: str = "time", naive: str | None = None) -> int:
    """Nanoseconds since the epoch of a datetime; a naive one is read by the `naive` policy.

    `naive=None` follows the process-wide rule of `set_naive_times` (UTC by default).
    """
    extra_ns = getattr(value, "nanosecond", 0)  # pandas.Timestamp carries nanoseconds
    if hasattr(value, "to_pydatetime"):
        value = value.to_pydatetime(warn=False)
    if value.tzinfo is None or value.utcoffset() is None:
        policy = _naive_times if naive is None else naive
        if policy == "error":
            raise ValidationError(
                {name: [f"naive datetime {value.isoformat()!r} refused: give a timezone-aware datetime"]}
            )
        if policy == "utc":
            return timedelta_to_ns(value.replace(tzinfo=UTC) - EPOCH) + extra_ns
        # Local time, read exactly as datetime.timestamp() reads it (folds and gaps included);
        # whole seconds are exact in a float, the microseconds are added as integers.
        try:
            seconds = int(value.replace(microsecond=0).timestamp())
        except (ValueError, OverflowError, OSError):  # e.g. "year 0 is out of range" near datetime.min
            problem = f"{value!r} is outside InfluxDB's time range {_RANGE_TEXT}"
            raise ValidationError({name: [problem]}) from None
        return (seconds * 1_000_000 + value.microsecond) * 1000 + extra_ns
    return timedelta_to_ns(value - EPOCH) + extra_ns


def wall_time_ns(value: datetime, zone: tzinfo, *, ambiguous: str | None = None) -> int:
    """Nanoseconds of the naive wall-clock time `value` in `zone`.

    A time that a daylight-saving change skips (a gap) or repeats (a fold) has
    two readings; it raises AmbiguousTimeError unless `ambiguous` says which
    to take: the "earlier" or the "later" instant.
    """
    first = timedelta_to_ns(value.replace(tzinfo=zone, fold=0) - EPOCH)
    second = timedelta_to_ns(value.replace(tzinfo=zone, fold=1) - EPOCH)
    if first == second:
        return first
    if ambiguous == "earlier":
        return min(first, second)
    if ambiguous == "later":
        return max(first, second)
    # In a gap fold=0 reads the time with the offset before the change, which is the later instant.
    what = "does not exist (skipped by a daylight-saving change)" if first > second else (
        "happens twice (repeated by a daylight-saving change)"
    )
    raise AmbiguousTimeError(f"{value.isoformat(sep=' ')} {what} in {zone}")


def inclusive_range(
    since: TimeLike | None = None, until: TimeLike | None = None, before: TimeLike | None = None
) -> tuple[int | None, int | None]:
    """(first, last) nanoseconds, both inclusive, of `since`, and `until` (inclusive) or `before` (exclusive).

    None leaves that side open. `before=t` is `until=t - 1ns`; giving both is an error.
    """
    if until is not None and before is not None:
        raise ValidationError({"before": ["give until (inclusive) or before (exclusive), not both"]})
    lo = to_ns(since, name="since") if since is not None else None
    if before is not None:
        return lo, to_ns(before, name="before") - 1
    return lo, to_ns(until, name="until") if until is not None else None


def to_ns(value: object, *, name: str = "time", naive: str | None = None) -> int:
    """Nanoseconds since the epoch of any accepted time, range-checked.

    `name` is the argument or field named in the error message; `naive` the rule
    for a naive time (None: the process-wide one).
    """
    if isinstance(value, bool):
        raise ValidationError({name: [f"{value!r} is not a time"]})
    if isinstance(value, datetime):
        ns = datetime_to_ns(value, name=name, naive=naive)
    elif isinstance(value, int):
        ns = int(value)
    elif isinstance(value, str):
        text = value.strip()
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise ValidationError(
                {name: [f"{value!r} is not an ISO 8601 time (for example 2024-01-31T12:00:00Z)"]}
            ) from None
        ns = datetime_to_ns(parsed, name=name, naive=naive)
        ns += _extra_nanoseconds(text)
    else:
        raise ValidationError(
            {name: [f"{value!r} is not a time: give a datetime, an ISO 8601 text or integer nanoseconds"]}
        )
    if not MIN_NS <= ns <= MAX_NS:
        raise ValidationError(
            {name: [f"{value!r} is outside InfluxDB's time range {_RANGE_TEXT}"]}
        )
    return ns


_RANGE_TEXT = "(1677-09-21 to 2262-04-11)"
_FRACTION = re.compile(r"[T ]\d\d:\d\d:\d\d[.,](\d{7,9})")


def _extra_nanoseconds(text: str) -> int:
    """The digits past microseconds of an ISO text (fromisoformat drops them)."""
    match = _FRACTION.search(text)
    if not match:
        return 0
    digits = match.group(1).ljust(9, "0")
    return int(digits[6:])


def from_ns(ns: int) -> datetime:
    """UTC-aware datetime of nanoseconds since the epoch (sub-microsecond digits are dropped)."""
    if not MIN_NS <= ns <= MAX_NS:
        raise ValidationError({"ns": [f"{ns!r} is not a time in InfluxDB's range {_RANGE_TEXT}"]})
    return EPOCH + timedelta(microseconds=ns // 1000)


def parse_duration(text: str, *, name: str = "duration") -> int:
    """Nanoseconds of an InfluxQL duration literal such as `10m`, `1h30m`, `7d`."""
    if not isinstance(text, str) or not _DURATION.fullmatch(text.strip()):
        raise ValidationError(
            {name: [f"{text!r} is not a duration: use a number and a unit, e.g. 10m, 1h, 7d, 500ms"]}
        )
    total = sum(int(n) * _NS_PER_UNIT[unit] for n, unit in _DURATION_PART.findall(text.strip()))
    if total <= 0:
        raise ValidationError({name: [f"{text!r} must be longer than zero"]})
    return total


def format_duration(ns: int) -> str:
    """The shortest InfluxQL duration literal for a whole number of nanoseconds."""
    for unit in ("w", "d", "h", "m", "s", "ms", "u"):
        size = _NS_PER_UNIT[unit]
        if ns % size == 0:
            return f"{ns // size}{unit}"
    return f"{ns}ns"


def now_ns() -> int:
    """The present instant in nanoseconds."""
    return datetime_to_ns(datetime.now(UTC))


def format_rfc3339(ns: int) -> str:
    """RFC 3339 text with nanoseconds, as InfluxQL time literals want it."""
    seconds, frac = divmod(ns, 1_000_000_000)
    base = (EPOCH + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}.{frac:09d}Z"


def is_duration(text: str) -> bool:
    """Whether `text` is InfluxQL duration text (`10m`, `1h30m`)."""
    return bool(_DURATION.fullmatch(text.strip()))


def duration_ns(value: str | timedelta | int, *, what: str, signed: bool = False) -> int:
    """Nanoseconds of a duration given as text (`10m`), a timedelta or int ns; `what` names it in errors."""
    if isinstance(value, timedelta):
        ns = timedelta_to_ns(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        ns = value
    elif isinstance(value, str):
        text = value.strip()
        negative = signed and text.startswith("-")
        ns = parse_duration(text[1:] if negative else text, name=what)
        ns = -ns if negative else ns
    else:
        raise ValidationError({what: [f"{value!r} is not a duration: use text like 10m, or a timedelta"]})
    if ns == 0 and signed:
        return 0
    if ns <= 0 and not signed:
        raise ValidationError({what: [f"{value!r} must be longer than zero"]})
    return ns
