"""Push mode: an HTTP endpoint that InfluxDB 1.x subscriptions write to, and a line protocol parser.

`CREATE SUBSCRIPTION ... DESTINATIONS ALL 'http://127.0.0.1:<port>'` makes the
server POST every write of a database to `<dest>/write?db=..&rp=..&precision=..`
as line protocol. `SubscriptionReceiver` serves that endpoint on loopback,
parses what arrives, keeps the points a filter accepts, and hands them over
through a queue. `Subscription` registers the endpoint and always drops it again.

The endpoint's URL carries an unguessable token (`secrets.token_urlsafe`) as its
path, and that URL is what `CREATE SUBSCRIPTION` is given: a POST to any other
path is answered 403 and never queued. Only administrators see the token
(`SHOW SUBSCRIPTIONS` needs admin rights). Even then a pushed point is only a
signal: a live run reads the values it feeds to the model from the server.
"""

from __future__ import annotations

import contextlib
import gzip
import hmac
import logging
import queue
import secrets
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import attrs

from influxhtm.core.errors import InfluxHtmError, ValidationError

log = logging.getLogger(__name__)

#: Nanoseconds per unit of each `precision` InfluxDB accepts on /write.
PRECISION_NS = {"n": 1, "ns": 1, "u": 1_000, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
                "m": 60_000_000_000, "h": 3_600_000_000_000}


@attrs.frozen
class ParsedPoint:
    """One line of line protocol: measurement, tags, fields and time (ns; None when the line has none)."""

    measurement: str
    tags: dict[str, str]
    fields: dict[str, Any]
    time: int | None


# -- parsing ---------------------------------------------------------------------------
_MEASUREMENT_ESCAPES = frozenset(", ")
_KEY_ESCAPES = frozenset(",= ")


def _scan_name(line: str, i: int, stops: str, escapes: frozenset[str]) -> tuple[str, int]:
    """Read a name up to an unescaped character of `stops`; a backslash before an escapable is dropped."""
    out: list[str] = []
    n = len(line)
    start = i
    while i < n:
        ch = line[i]
        if ch == "\\" and i + 1 < n and line[i + 1] in escapes:
            out.append(line[start:i])
            out.append(line[i + 1])
            i += 2
            start = i
            continue
        if ch in stops:
            break
        i += 1
    out.append(line[start:i])
    return "".join(out), i


def _scan_string(line: str, i: int) -> tuple[str, int]:
    """A double-quoted string field value starting at line[i] == '"'; `\\"` and `\\\\` are unescaped."""
    out: list[str] = []
    i += 1
    n = len(line)
    while i < n:
        ch = line[i]
        if ch == "\\" and i + 1 < n and line[i + 1] in '"\\':
            out.append(line[i + 1])
            i += 2
            continue
        if ch == '"':
            return "".join(out), i + 1
        out.append(ch)
        i += 1
    raise ValidationError({"line": [f"unterminated string field value in {line!r}"]})


def _field_value(text: str, line: str) -> Any:
    if not text:
        raise ValidationError({"line": [f"a field has no value in {line!r}"]})
    last = text[-1]
    try:
        if last == "i":
            return int(text[:-1])
        if last == "u":
            return int(text[:-1])
        if text in ("t", "T", "true", "True", "TRUE"):
            return True
        if text in ("f", "F", "false", "False", "FALSE"):
            return False
        return float(text)
    except ValueError:
        raise ValidationError({"line": [f"{text!r} is not a field value in {line!r}"]}) from None


def parse_line(line: str, precision: str = "ns") -> ParsedPoint | None:
    """Parse one line of InfluxDB 1.x line protocol; None for a blank line or a comment.

    Escaping is InfluxDB's: `\\,` and `\\ ` in measurement names; `\\,`, `\\=` and
    `\\ ` in tag keys, tag values and field keys; `\\"` and `\\\\` inside string
    field values. Integers (`1i`), unsigned (`1u`), floats, booleans and strings
    are read as Python values; the time is scaled from `precision` to ns.
    """
    line = line.rstrip("\r")
    if not line.strip() or line.lstrip().startswith("#"):
        return None
    try:
        scale = PRECISION_NS[precision]
    except KeyError:
        known = ", ".join(PRECISION_NS)
        raise ValidationError({"precision": [f"{precision!r} is not one of {known}"]}) from None
    measurement, i = _scan_name(line, 0, ", ", _MEASUREMENT_ESCAPES)
    if not measurement:
        raise ValidationError({"line": [f"no measurement in {line!r}"]})
    tags: dict[str, str] = {}
    n = len(line)
    while i < n and line[i] == ",":
        key, i = _scan_name(line, i + 1, "=, ", _KEY_ESCAPES)
        if i >= n or line[i] != "=":
            raise ValidationError({"line": [f"tag {key!r} has no value in {line!r}"]})
        value, i = _scan_name(line, i + 1, ", ", _KEY_ESCAPES)
        if not key or not value:
            raise ValidationError({"line": [f"empty tag key or value in {line!r}"]})
        tags[key] = value
    if i >= n or line[i] != " ":
        raise ValidationError({"line": [f"no fields in {line!r}"]})
    i += 1
    fields: dict[str, Any] = {}
    while True:
        key, i = _scan_name(line, i, "= ,", _KEY_ESCAPES)
        if i >= n or line[i] != "=" or not key:
            raise ValidationError({"line": [f"malformed field {key!r} in {line!r}"]})
        i += 1
        if i < n and line[i] == '"':
            value, i = _scan_string(line, i)
            fields[key] = value
        else:
            start = i
            while i < n and line[i] not in ", ":
                i += 1
            fields[key] = _field_value(line[start:i], line)
        if i < n and line[i] == ",":
            i += 1
            continue
        break
    timestamp: int | None = None
    rest = line[i:].strip()
    if rest:
        try:
            timestamp = int(rest) * scale
        except ValueError:
            raise ValidationError({"line": [f"{rest!r} is not a timestamp in {line!r}"]}) from None
    return ParsedPoint(measurement, tags, fields, timestamp)


def parse_lines(body: str, precision: str = "ns") -> Iterator[ParsedPoint]:
    """Every point of a line protocol body (blank lines and comments skipped)."""
    for line in body.split("\n"):
        point = parse_line(line, precision)
        if point is not None:
            yield point


# -- the endpoint ---------------------------------------------------------------------------
@attrs.frozen
class PushedPoint:
    """A point of the watched series as it was pushed: time (ns), value, and the wall time it arrived.

    The value is as pushed, unverified: a live run uses a push only as the news that the
    series has a point at `time`, and reads the value from the server."""

    time: int
    value: float
    received: float
    #: (measurement, component) of the pushed point: how a fleet routes it to its sensor's model.
    series: tuple[str, str] | None = None


PointFilter = Callable[[ParsedPoint], bool]


class SubscriptionReceiver:
    """An HTTP server on 127.0.0.1 (a free port) that queues the pushed points `accept` keeps.

    A write is answered only once its points are queued: a 204 means every point
    the filter keeps is in `points`. Lines that do not parse are logged and
    skipped (still 204, so InfluxDB never retries or backs off); a body that is
    not gzip although it says so gets a 400. Only POSTs to `url` (its path is a
    secret token) are read; any other path gets a 403, counted in `refused`.
    Use as a context manager.
    """

    def __init__(self, accept: PointFilter, *, database: str | None = None, host: str = "127.0.0.1"):
        self.accept = accept
        self.database = database
        self.points: queue.Queue[PushedPoint] = queue.Queue()
        self.requests = 0
        self.bad_lines = 0
        self.refused = 0
        self.token = secrets.token_urlsafe(32)
        self._server = ThreadingHTTPServer((host, 0), self._handler_class())
        self._server.daemon_threads = False  # server_close() joins the handler threads
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()  # InfluxDB's keep-alive connections, closed on stop

    @property
    def url(self) -> str:
        """The endpoint, token included: give this URL (and only this one) to CREATE SUBSCRIPTION."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/{self.token}"

    def authentic(self, path: str) -> bool:
        """True for a request path of `url`: `/<token>/write` (InfluxDB appends `/write`)."""
        return hmac.compare_digest(urlsplit(path).path.encode(), f"/{self.token}/write".encode())

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = 10.0  # an idle keep-alive connection is closed, and its thread ends

            def setup(self) -> None:
                super().setup()
                receiver._connections.add(self.connection)

            def finish(self) -> None:
                receiver._connections.discard(self.connection)
                super().finish()

            def do_POST(self) -> None:  # noqa: N802 - the http.server naming
                received = time.time()
                if not receiver.authentic(self.path):
                    receiver.refused += 1
                    log.warning("subscription endpoint: refused a POST to a path without the token")
                    self.send_response(403)
                    self.send_header("Content-Length", "0")
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.close_connection = True
                    return
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                status = 204
                try:
                    if self.headers.get("Content-Encoding", "").lower() == "gzip":
                        body = gzip.decompress(body)
                except (OSError, EOFError) as error:
                    log.warning("subscription endpoint: a body that is not gzip: %s", error)
                    status = 400
                else:
                    # Queue first, answer then: a 204 means the points are in the queue.
                    receiver._receive(body, parse_qs(urlsplit(self.path).query), received)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's name
                log.debug("subscription endpoint: " + format, *args)

        return Handler

    def _receive(self, body: bytes, query: dict[str, list[str]], received: float) -> None:
        self.requests += 1
        if self.database is not None and query.get("db", [self.database])[0] != self.database:
            return
        precision = query.get("precision", ["ns"])[0] or "ns"
        for line in body.decode("utf-8", "replace").split("\n"):
            try:
                point = parse_line(line, precision)
            except ValidationError as error:
                self.bad_lines += 1
                log.warning("subscription endpoint: skipping a line it cannot parse: %s", error)
                continue
            if point is None or point.time is None or not self.accept(point):
                continue
            value = point.fields.get("value")
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            series = (point.measurement, point.tags.get("component", ""))
            self.points.put(PushedPoint(point.time, float(value), received, series))

    def start(self) -> SubscriptionReceiver:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                name="influxhtm-subscription", daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close every open connection, so that no handler thread is left."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        for connection in list(self._connections):
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        self._server.server_close()

    def __enter__(self) -> SubscriptionReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def series_filter(measurement: str, component: str) -> PointFilter:
    """Accept the points of one sensor: its measurement with tag component=<component>."""

    def accept(point: ParsedPoint) -> bool:
        return point.measurement == measurement and point.tags.get("component") == component

    return accept


class Subscription:
    """A subscription of `database`.`retention_policy` to `destination`, dropped on exit (also on errors).

    `client` is an InfluxHtmClient. The name is unique per run (`influxhtm_<hex>`).
    """

    def __init__(self, client: Any, destination: str, *, retention_policy: str = "autogen",
                 name: str | None = None):
        self.client = client
        self.destination = destination
        self.retention_policy = retention_policy
        self.name = name or f"influxhtm_{uuid.uuid4().hex[:12]}"
        self.active = False

    def create(self) -> None:
        from influxhtm.influxql import admin

        self.client.create_database()  # a subscription needs the database to exist
        self.client.execute(admin.create_subscription(
            self.name, database=self.client.database, retention_policy=self.retention_policy,
            destinations=[self.destination], mode="ALL",
        ))
        self.active = True

    def drop(self) -> None:
        """Drop the subscription; a failure is logged (the server may be gone), never raised."""
        from influxhtm.influxql import admin

        if not self.active:
            return
        try:
            self.client.execute(admin.drop_subscription(
                self.name, database=self.client.database, retention_policy=self.retention_policy))
            self.active = False
        except InfluxHtmError as error:
            log.warning("could not drop subscription %r on %r: %s", self.name, self.client.database, error)

    def __enter__(self) -> Subscription:
        self.create()
        return self

    def __exit__(self, *exc: object) -> None:
        self.drop()
