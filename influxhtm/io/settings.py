"""Connection settings: explicit arguments, then `INFLUX_*` environment variables, then defaults.

Variables: INFLUX_HOST, INFLUX_PORT, INFLUX_USER, INFLUX_PASS, INFLUX_SSL and
INFLUX_VERIFY_SSL (yes/no, or the path of a CA bundle to trust).

The host may be written as a URL, `http(s)://[user[:password]@]host[:port][/]`
(or `host:port`): its parts fill in ssl, username, password and port, and one
given twice with different values is an error. The password is never shown: an
error quotes such a host as `user:***@host`.

Nothing here runs at import time: the environment is read when `Settings.resolve`
is called, so importing influxhtm never fails for a missing variable.
"""

from __future__ import annotations

import os
import re
from typing import Any, Mapping
from urllib.parse import unquote

import attrs

from influxhtm.core.errors import ConfigurationError

DEFAULT_HOST = "localhost"
DEFAULT_PORT = 8086

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
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


def mask_password(text: str) -> str:
    """`text` (a host or URL) with the password of a `user:password@` part replaced by `***`."""
    match = _SCHEME.match(text)
    start = match.end() if match else 0
    userinfo, at, rest = text[start:].rpartition("@")
    if not at:
        return text
    user, colon, _ = userinfo.partition(":")
    return text[:start] + user + (":***" if colon else "") + "@" + rest


@attrs.frozen
class HostParts:
    """What a host setting says: the host, and what a URL adds (None where it says nothing)."""

    host: str
    port: int | None = None
    ssl: bool | None = None
    username: str | None = None
    password: str | None = attrs.field(default=None, repr=False)


def parse_host(text: str) -> HostParts:
    """Split a host setting: a name or address, `host:port`, or `http(s)://[user[:password]@]host[:port][/]`.

    User and password are percent-decoded, as in any URL (write `@`, `:` and `/` in them
    as %40, %3A and %2F). Errors show the text with the password masked.
    """
    shown = mask_password(text.strip())
    raw = text.strip()
    ssl = None
    match = _SCHEME.match(raw)
    if match:
        scheme = match.group(1).lower()
        if scheme not in ("http", "https"):
            raise ConfigurationError(f"host={shown!r}: the scheme {scheme!r} is not http or https")
        ssl = scheme == "https"
        raw = raw[match.end() :]
    userinfo, at, hostport = raw.rpartition("@")
    hostport = hostport[:-1] if hostport.endswith("/") else hostport
    if "/" in userinfo or any(c in hostport for c in "/?#"):
        raise ConfigurationError(
            f"host={shown!r}: a URL path, query or fragment is not supported, give the server's address "
            "(a '/' in a password is written %2F)"
        )
    host, port = _split_port(hostport, shown)
    if not host:
        raise ConfigurationError(f"host={shown!r} names no host")
    username = password = None
    if at:
        user, colon, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon else None
    return HostParts(host, port, ssl, username, password)


def _split_port(hostport: str, shown: str) -> tuple[str, int | None]:
    """(host, port or None) of `host`, `host:port`, `[v6]`, `[v6]:port` or a bare IPv6 address."""
    if hostport.startswith("["):
        host, bracket, rest = hostport[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ConfigurationError(
                f"host={shown!r}: an IPv6 address is written [address] or [address]:port"
            )
        port_text = rest[1:] if rest else None
    elif hostport.count(":") == 1:
        host, _, port_text = hostport.partition(":")
    else:
        return hostport, None  # a name, an IPv4 address, or an IPv6 address without a port
    if port_text is None:
        return host, None
    try:
        return host, parse_port(port_text)
    except ConfigurationError:
        raise ConfigurationError(f"host={shown!r}: {port_text!r} is not a port (1 to 65535)") from None


def _agree(name: str, given: Any, from_host: Any, shown: str, *, secret: bool = False) -> Any:
    """The value of a setting that the host URL may also give; two different values are an error."""
    if from_host is None:
        return given
    if given is not None and given != from_host:
        values = "" if secret else f" ({from_host!r} in the host, {given!r} given)"
        raise ConfigurationError(
            f"host={shown!r} and the {name} setting disagree{values}: give the {name} once"
        )
    return from_host


def _check_host(instance: Any, attribute: Any, value: Any) -> None:
    if isinstance(value, str) and ("@" in value or "/" in value):
        raise ConfigurationError(
            f"host={mask_password(value)!r} is a URL, not a host name or address: Settings.resolve(host=...) "
            "reads one, or give port, ssl, username and password as their own settings"
        )


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

    host: str = attrs.field(default=DEFAULT_HOST, validator=_check_host)
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
    #: Compress write bodies and ask for compressed query answers (for slow links; off: faster on LAN).
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
        """Settings from arguments, falling back to `INFLUX_*` variables, then defaults.

        A host written as a URL gives its parts (see the module docstring).
        """
        env = os.environ if environ is None else environ
        if host is None:
            host = env.get("INFLUX_HOST") or DEFAULT_HOST
        if not isinstance(host, str) or not host.strip():
            raise ConfigurationError(f"host={host!r} is not a host name or address")
        parts = parse_host(host)
        shown = mask_password(host.strip())
        if port is None:
            env_port = env.get("INFLUX_PORT")
            port = parse_port(env_port, name="INFLUX_PORT") if env_port not in (None, "") else None
        if username is None:
            username = env.get("INFLUX_USER") or None
        if password is None:
            password = env.get("INFLUX_PASS") or None
        if ssl is None and env.get("INFLUX_SSL", "").strip():
            ssl = parse_bool(env["INFLUX_SSL"], name="INFLUX_SSL")
        given_port = parse_port(port) if port is not None else None
        resolved_port: int | None = _agree("port", given_port, parts.port, shown)
        username = _agree("username", username, parts.username, shown)
        password = _agree("password", password, parts.password, shown, secret=True)
        ssl = _agree("ssl", parse_bool(ssl, name="ssl") if ssl is not None else None, parts.ssl, shown)
        if "verify_ssl" not in options and env.get("INFLUX_VERIFY_SSL", "").strip():
            options["verify_ssl"] = parse_verify(env["INFLUX_VERIFY_SSL"], name="INFLUX_VERIFY_SSL")
        unknown = sorted(set(options) - {a.name for a in attrs.fields(cls)})
        if unknown:
            known = ", ".join(a.name for a in attrs.fields(cls))
            raise ConfigurationError(f"unknown setting(s) {', '.join(map(repr, unknown))}; known: {known}")
        return cls(
            host=parts.host,
            port=DEFAULT_PORT if resolved_port is None else resolved_port,
            username=username,
            password=password,
            ssl=bool(ssl),
            **options,  # type: ignore[arg-type]
        )

    @property
    def url(self) -> str:
        """The server's base URL (no credentials in it)."""
        scheme = "https" if self.ssl else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}"
