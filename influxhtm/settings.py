"""Connection settings: explicit arguments, then `INFLUX_*` environment variables, then defaults.

Nothing here runs at import time: the environment is read when `Settings.resolve`
is called, so importing influxhtm never fails for a missing variable.
"""

from __future__ import annotations

import os
from typing import Mapping

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


@attrs.frozen
class Settings:
    """Where and how to reach InfluxDB. The password is never shown in `repr`."""

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    username: str | None = None
    password: str | None = attrs.field(default=None, repr=False)
    ssl: bool = False
    #: Certificate verification: True (default), False, or a CA bundle path.
    verify_ssl: bool | str = True
    timeout: float = 30.0
    #: How often a failed request (refused, reset, timeout, 5xx) is retried.
    retries: int = 5
    #: Upper bound, in seconds, of the whole retry sequence of one request.
    retry_deadline: float = 60.0
    #: First backoff delay in seconds; it doubles each try, with jitter.
    backoff: float = 0.2
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
