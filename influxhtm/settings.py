"""Connection settings: explicit arguments, then `INFLUX_*` environment variables, then defaults.

Variables: INFLUX_HOST, INFLUX_PORT, INFLUX_USER, INFLUX_PASS, INFLUX_SSL and
INFLUX_VERIFY_SSL (yes/no, or the path of a CA bundle to trust).

Nothing here runs at import time: the environment is read when `Settings.resolve`
is called, so importing influxhtm never fails for a missing variable.
"""

from __future__ import annotations

import os
from typing import Any, Mapping

import attrs

from .errors import ConfigurationError

DEFAULT_HOST = "localhost"
DEFAULT_PORT = 8086

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def parse_bool(value: str | bool, *, name: str) -> bool:
    """Read a yes/no setting: 1/true/yes/on or 0/false/no/off/empty, any case."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConfigurationError(f"{name}={value!r} is not a yes/no value: use 1/true/yes/on or 0/false/no/off")


def parse_port(value: object, *, name: str = "port") -> int:
    """A TCP port: an integer from 1 to 65535."""
    if isinstance(value, bool):
        raise ConfigurationError(f"{name}={value!r} is not a port: give an integer from 1 to 65535")
    try:
        port = int(str(value).strip()) if isinstance(value, str) else int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        raise ConfigurationError(f"{name}={value!r} is not a port: give an integer from 1 to 65535") from None
    if isinstance(value, float) and value != port:
        raise ConfigurationError(f"{name}={value!r} is not a port: give an integer from 1 to 65535")
    if not 1 <= port <= 65535:
        raise ConfigurationError(f"{name}={value!r} is out of range: give an integer from 1 to 65535")
    return port


def parse_verify(value: str | bool, *, name: str) -> bool | str:
    """Certificate verification: a yes/no word, or the path of a CA bundle (file or directory)."""
    if isinstance(value, bool):
        return value
    text = str(value).strip()
    if text.lower() in _TRUE | _FALSE:
        return parse_bool(text, name=name)
    return text


def _check_verify(instance: Any, attribute: Any, value: Any) -> None:
    if isinstance(value, bool):
        return
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"verify_ssl={value!r} is neither True/False nor the path of a CA bundle")
    if not os.path.exists(value):
        raise ConfigurationError(f"verify_ssl={value!r}: no such CA bundle file or directory")


def _non_negative(kind: type, *, positive: bool = False) -> Any:
    """An attrs validator: a number of `kind` (bool refused), zero or more (or more than zero)."""

    def check(instance: Any, attribute: Any, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float) if kind is float else int):
            raise ConfigurationError(f"{attribute.name}={value!r} is not a number ({kind.__name__})")
        if value != value or value < 0 or (positive and value == 0):
            raise ConfigurationError(
                f"{attribute.name}={value!r} must be {'positive' if positive else 'zero or positive'}"
            )

    return check


@attrs.frozen
class Settings:
    """Where and how to reach InfluxDB. The password is never shown in `repr`."""

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    username: str | None = None
    password: str | None = attrs.field(default=None, repr=False)
    ssl: bool = False
    #: Certificate verification: True (default), False, or a CA bundle path.
    verify_ssl: bool | str = attrs.field(default=True, validator=_check_verify)
    #: Seconds to wait for the server to connect or answer, per attempt.
    timeout: float = attrs.field(default=30.0, validator=_non_negative(float, positive=True))
    #: How often a failed request (refused, reset, timeout, 5xx) is retried after the first attempt.
    retries: int = attrs.field(default=5, validator=_non_negative(int))
    #: Seconds after the first attempt of a request when no further retry is started.
    retry_deadline: float = attrs.field(default=60.0, validator=_non_negative(float))
    #: First backoff delay in seconds; it doubles each try, with jitter (x0.5 to x1.5).
    backoff: float = attrs.field(default=0.2, validator=_non_negative(float))
    #: Upper bound of one backoff delay, in seconds (before jitter).
    max_backoff: float = attrs.field(default=10.0, validator=_non_negative(float))
    gzip: bool = False

    @classmethod
    def resolve(
        cls,
        host: str | None = None,
        port: int | str | None = None,
        username: str | None = None,
        password: str | None = None,
        ssl: bool | str | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        **options: object,
    ) -> "Settings":
        """Settings from arguments, falling back to `INFLUX_*` variables, then defaults."""
        env = os.environ if environ is None else environ
        if host is None:
            host = env.get("INFLUX_HOST") or DEFAULT_HOST
        if port is None:
            env_port = env.get("INFLUX_PORT")
            port = parse_port(env_port, name="INFLUX_PORT") if env_port not in (None, "") else DEFAULT_PORT
        if username is None:
            username = env.get("INFLUX_USER") or None
        if password is None:
            password = env.get("INFLUX_PASS") or None
        if ssl is None:
            ssl = parse_bool(env.get("INFLUX_SSL", ""), name="INFLUX_SSL")
        if "verify_ssl" not in options and env.get("INFLUX_VERIFY_SSL", "").strip():
            options["verify_ssl"] = parse_verify(env["INFLUX_VERIFY_SSL"], name="INFLUX_VERIFY_SSL")
        unknown = sorted(set(options) - {a.name for a in attrs.fields(cls)})
        if unknown:
            known = ", ".join(a.name for a in attrs.fields(cls))
            raise ConfigurationError(f"unknown setting(s) {', '.join(map(repr, unknown))}; known: {known}")
        if not isinstance(host, str) or not host.strip():
            raise ConfigurationError(f"host={host!r} is not a host name or address")
        return cls(
            host=str(host),
            port=parse_port(port),
            username=username,
            password=password,
            ssl=parse_bool(ssl, name="ssl"),
            **options,  # type: ignore[arg-type]
        )

    @property
    def url(self) -> str:
        """The server's base URL (no credentials in it)."""
        scheme = "https" if self.ssl else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}"
