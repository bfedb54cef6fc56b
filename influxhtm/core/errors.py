"""The exception hierarchy: every error influxhtm raises on purpose is an InfluxHtmError.

Messages name the argument or field and the offending value, and never carry a
password.
"""

from __future__ import annotations

from typing import Any, Mapping


class InfluxHtmError(Exception):
    """Base class of every error raised by influxhtm."""


class ConfigurationError(InfluxHtmError, ValueError):
    """A setting (host, port, credentials, server binary, ...) is wrong or missing."""


class InfluxdNotFound(ConfigurationError):
    """No `influxd` binary could be found to start a managed local server."""


class ServerStartError(InfluxHtmError):
    """A managed `influxd` did not come up; the message carries the tail of its log."""


class ValidationError(InfluxHtmError, ValueError):
    """Input that cannot be stored or queried as given.

    `errors` maps each field name (or item index, then field name) to a list of
    messages, like marshmallow's `ValidationError.messages`, so that every
    problem of a batch is reported at once.
    """

    def __init__(self, message: str | Mapping[Any, Any], errors: Mapping[Any, Any] | None = None):
        if errors is None and not isinstance(message, str):
            errors = dict(message)
            message = format_errors(errors)
        super().__init__(message)
        self.errors: dict[Any, Any] = dict(errors or {})


def show_value(value: object) -> str:
    """`repr(value)`, cut to 80 characters: how an error names an offending value."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def check_name(value: object, what: str) -> str:
    """A non-empty text name (measurement, component, model id)."""
    if not isinstance(value, str) or not value.strip():
        raise ValidationError({what: [f"{value!r} is not a valid {what}: give a non-empty text"]})
    return value


def check_positive_int(value: object, name: str) -> int:
    """`value` if it is a positive int (not a bool); else a ValidationError naming `name`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValidationError({name: [f"{value!r} is not a positive integer"]})
    return value


class AmbiguousTimeError(ValidationError):
    """A wall-clock time that a daylight-saving change skips (gap) or repeats (fold), with no rule given."""


def format_errors(errors: Mapping[Any, Any], prefix: str = "") -> str:
    """Render a nested error mapping as `key.sub: message; ...` on one line."""
    parts: list[str] = []
    for key, value in errors.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            parts.append(format_errors(value, prefix=f"{path}."))
        elif isinstance(value, (list, tuple)):
            parts.append(f"{path}: " + " ".join(str(v) for v in value))
        else:
            parts.append(f"{path}: {value}")
    return "; ".join(parts)


class NotFound(InfluxHtmError, LookupError):
    """Something asked for by name does not exist."""


class DatabaseNotFound(NotFound):
    """The database does not exist (and was not created: `create=False`, or the user may not)."""

    def __init__(self, message: str, database: str, url: str | None = None):
        super().__init__(message)
        self.database = database
        self.url = url


class SensorNotFound(NotFound):
    """No series with this measurement and component exists."""


class ModelNotFound(NotFound):
    """No model with this id is registered for the sensor."""


class AlreadyExists(InfluxHtmError):
    """Something to be created exists already."""


class ModelExists(AlreadyExists):
    """A model with this id is registered for the sensor already."""


class CheckpointMismatch(ValidationError):
    """A checkpoint was written for another run: its database, sensor, model, engine or parameters differ."""


class CheckpointInUse(InfluxHtmError):
    """Another run (in this or another process) holds the checkpoint file."""


class ServerError(InfluxHtmError):
    """InfluxDB answered with an error.

    `status` is the HTTP status code (None when the error came inside a 200
    answer, as InfluxQL errors do).
    """

    def __init__(self, message: str, status: int | None = None, url: str | None = None):
        super().__init__(message)
        self.status = status
        self.url = url


class QueryError(ServerError):
    """InfluxDB refused or failed a query."""


class PartialWriteError(ServerError):
    """InfluxDB stored only part of a write; `dropped` points were refused and `reason` says why.

    The counts of a write are exact: `written` points are stored, `dropped` were
    refused by the server, and `not_sent` were never sent because the caller's
    write stopped (a later batch failed validation, or the server became
    unreachable); `not_sent` is 0 when every batch was sent. `reason` is the kind
    of refusal ("field type conflict", "max-values-per-tag limit exceeded",
    "point larger than max-body-size", ...; several joined by "; "), `detail` the
    server's own message(s), and `lines` the refused lines of line protocol (the
    first 100). (`dropped` is None, and `written` 0, only on an intermediate
    error for one request whose count the server did not give; the error a
    write raises always has them.)
    """

    def __init__(
        self,
        message: str,
        dropped: int | None = None,
        reason: str = "",
        status: int | None = 400,
        url: str | None = None,
        detail: str = "",
        lines: list[str] | None = None,
        written: int = 0,
        not_sent: int = 0,
    ):
        super().__init__(message, status, url)
        self.dropped = dropped
        self.written = written
        self.not_sent = not_sent
        self.reason = reason
        self.detail = detail
        self.lines: list[str] = list(lines or [])


class InfluxConnectionError(InfluxHtmError, ConnectionError):
    """The server could not be reached (refused, reset, timed out), after all retries."""

    def __init__(self, message: str, url: str | None = None):
        super().__init__(message)
        self.url = url


class InfluxTimeoutError(InfluxConnectionError):
    """The server accepted the connection but did not answer within `Settings.timeout` (after all retries)."""


class TLSError(InfluxConnectionError):
    """The TLS handshake failed (certificate not trusted, wrong protocol): never retried."""


class AuthenticationError(InfluxHtmError):
    """The server refused the credentials (or requires some and none were given)."""

    def __init__(self, message: str, status: int | None = None, url: str | None = None):
        super().__init__(message)
        self.status = status
        self.url = url
