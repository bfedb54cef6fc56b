"""Times in and out: the one rule for every time that enters influxhtm.

In: an aware `datetime`, an ISO 8601 text (with an offset or `Z`), or integer
nanoseconds since the epoch. A naive `datetime` (or ISO text without offset)
means local time, exactly as `datetime.timestamp()` reads it, unless naive
times are refused (`strict=True`). Out: UTC-aware `datetime`.

All conversions use integer arithmetic, so microseconds map to exact
nanoseconds, before 1970 too.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Union

from .errors import ValidationError

#: InfluxDB 1.x accepts timestamps in this closed range (models.MinNanoTime/MaxNanoTime).
MIN_NS = -9223372036854775806
MAX_NS = 9223372036854775806

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

TimeLike = Union[datetime, str, int]

#: How naive times are read where no one says otherwise: "local" or "error".
_naive_times = "local"


def set_naive_times(policy: str) -> str:
    """Read naive times as local time ("local", the default) or refuse them ("error") process-wide.

    Returns the previous policy. A class declared with `naive_times=` keeps its own rule.
    """
    global _naive_times
    if policy not in ("local", "error"):
        raise ValidationError({"naive_times": [f"{policy!r} is not 'local' or 'error'"]})
    previous, _naive_times = _naive_times, policy
    return previous

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


def datetime_to_ns(value: datetime, *, name: str = "time", strict: bool | None = None) -> int:
    """Nanoseconds since the epoch of a datetime; naive means local time (or an error, if strict).

    `strict=None` follows the process-wide rule of `set_naive_times`.
    """
    extra_ns = getattr(value, "nanosecond", 0)  # pandas.Timestamp carries nanoseconds
    if hasattr(value, "to_pydatetime"):
        value = value.to_pydatetime(warn=False)
    if value.tzinfo is None or value.utcoffset() is None:
        if strict or (strict is None and _naive_times == "error"):
            raise ValidationError(
                {name: [f"naive datetime {value.isoformat()!r} refused: give a timezone-aware datetime"]}
            )
        # Local time, read exactly as datetime.timestamp() reads it (folds and gaps included);
        # whole seconds are exact in a float, the microseconds are added as integers.
        seconds = int(value.replace(microsecond=0).timestamp())
        return (seconds * 1_000_000 + value.microsecond) * 1000 + extra_ns
    return timedelta_to_ns(value - EPOCH) + extra_ns


def to_ns(value: object, *, name: str = "time", strict: bool | None = None) -> int:
    """Nanoseconds since the epoch of any accepted time, range-checked.

    `name` is the argument or field named in the error message.
    """
    if isinstance(value, bool):
        raise ValidationError({name: [f"{value!r} is not a time"]})
    if isinstance(value, datetime):
        ns = datetime_to_ns(value, name=name, strict=strict)
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
        ns = datetime_to_ns(parsed, name=name, strict=strict)
        ns += _extra_nanoseconds(text)
    else:
        raise ValidationError(
            {name: [f"{value!r} is not a time: give a datetime, an ISO 8601 text or integer nanoseconds"]}
        )
    if not MIN_NS <= ns <= MAX_NS:
        raise ValidationError(
            {name: [f"{value!r} is outside InfluxDB's time range (1677-09-21 to 2262-04-11)"]}
        )
    return ns


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
