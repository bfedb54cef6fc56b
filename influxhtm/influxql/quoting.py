"""Identifiers in InfluxQL text: the one quoting function, and the few literals built from Python numbers.

Values never go into the text (they are bound parameters, see `expressions.Binder`);
only identifiers, validated numbers and validated durations do.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal

from influxhtm.core.errors import ValidationError

#: Words InfluxDB 1.6's parser refuses as bare identifiers (the InfluxQL spec's keyword list,
#: plus the operators and literals the scanner reads as tokens; probed against influxd 1.6.7).
KEYWORDS = frozenset(
    """
    ALL ALTER ANALYZE AND ANY AS ASC BEGIN BY CARDINALITY CONTINUOUS CREATE DATABASE DATABASES
    DEFAULT DELETE DESC DESTINATIONS DIAGNOSTICS DISTINCT DROP DURATION END EVERY EXACT EXPLAIN
    FIELD FOR FROM GRANT GRANTS GROUP GROUPS IN INF INSERT INTO KEY KEYS KILL LIMIT SHOW
    MEASUREMENT MEASUREMENTS NAME OFFSET ON OR ORDER PASSWORD POLICY POLICIES PRIVILEGES QUERIES
    QUERY READ REPLICATION RESAMPLE RETENTION REVOKE SELECT SERIES SET SHARD SHARDS SLIMIT SOFFSET
    STATS SUBSCRIPTION SUBSCRIPTIONS TAG TO USER USERS VALUES WHERE WITH WRITE TRUE FALSE TIME
    """.split()
)

_BARE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_INT64 = (-(2**63), 2**63 - 1)


def is_bare_identifier(name: str) -> bool:
    """True when `name` may stand in InfluxQL without quotes."""
    return bool(_BARE.fullmatch(name)) and name.upper() not in KEYWORDS


def check_unicode(text: str, *, what: str) -> str:
    """`text`, if it can travel as UTF-8 (a lone surrogate cannot): else a ValidationError naming `what`."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        bad = text[error.start : error.end]
        raise ValidationError({what: [f"{text!r} holds {bad!r}, which is not valid unicode text"]}) from None
    return text


def quote_ident(name: str, *, what: str = "identifier") -> str:
    """An identifier as InfluxQL text: bare when safe, else double-quoted with `\\`, `"` and newline escaped.

    `what` names the argument in the error raised for an empty or non-text name.
    """
    if not isinstance(name, str) or not name:
        raise ValidationError({what: [f"{name!r} is not a name: give a non-empty text"]})
    check_unicode(name, what=what)
    if is_bare_identifier(name):
        return name
    escaped = name.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def check_int64(value: object, *, what: str) -> int:
    """An integer that InfluxDB can hold (int64); bools are refused."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError({what: [f"{value!r} is not an integer"]})
    if not _INT64[0] <= value <= _INT64[1]:
        raise ValidationError({what: [f"{value!r} is outside the int64 range InfluxDB supports"]})
    return int(value)


def check_number(value: object, *, what: str) -> int | float:
    """A finite int (int64) or float; bools, NaN and infinities are refused."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValidationError({what: [f"{value!r} is not a number"]})
    if isinstance(value, int):
        return check_int64(value, what=what)
    if not math.isfinite(value):
        raise ValidationError({what: [f"{value!r} is not a finite number"]})
    return float(value)


def number_literal(value: int | float, *, what: str = "number") -> str:
    """InfluxQL text of a validated Python number, positional (InfluxQL has no exponent notation)."""
    number = check_number(value, what=what)
    if isinstance(number, int):
        return str(number)
    text = format(Decimal(repr(number)), "f")
    return text if "." in text else text + ".0"


def count_literal(value: object, *, what: str, minimum: int = 0) -> str:
    """A LIMIT/OFFSET-like count: an int no smaller than `minimum`."""
    number = check_int64(value, what=what)
    if number < minimum:
        raise ValidationError({what: [f"{value!r} must be at least {minimum}"]})
    return str(number)
