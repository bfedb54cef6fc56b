"""The sans-I/O core of influxhtm's HTTP API: what to send, what an answer means, what to do next.

Nothing here opens a socket or sleeps. The sync transport (`connection.Connection`,
`requests`) and the async one (`async_connection.AsyncConnection`, h11 on asyncio) both call these
pieces, so encoding requests, decoding answers, mapping errors, retrying and splitting
writes behave the same whichever transport carries the bytes (as h11 and httpx are built):

- request building: `write_request`, `query_form`, `query_headers`;
- retry decisions: `Attempts` (which answer or failure is retried, for how long, and the
  error raised when giving up);
- answer decoding: `decode` and `DocumentDecoder` (the msgpack or JSON documents of a chunked answer,
  fed as bytes arrive), `ResultReader` (each statement result checked; an answer that
  ends while its last result says `partial` is an error), `whole` (chunks put back
  together; a series still partial raises: never returned as complete);
- error mapping: `error_text`, `status_error`, `write_outcome`;
- write splitting: `WritePlan` (413 → split at point boundaries; a partial write →
  halve until every refused point stands alone; exact counts; `merge_refusals`).
"""

from __future__ import annotations

import gc
import gzip as gzip_module
import json
import logging
import random
import re
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Protocol

import msgpack

from influxhtm.core.errors import (
    AuthenticationError,
    InfluxConnectionError,
    InfluxHtmError,
    InfluxTimeoutError,
    NotFound,
    PartialWriteError,
    QueryError,
    ServerError,
    TLSError,
)
from influxhtm.io.settings import Settings
from influxhtm.model.line_protocol import Batch

log = logging.getLogger("influxhtm.io.connection")

RETRYABLE_STATUS = frozenset({500, 502, 503, 504})
#: Rows per chunk of the answers `query` asks for (InfluxDB's own default chunk size).
QUERY_CHUNK_SIZE = 10_000
#: Query answers are asked for as msgpack (JSON is read too, e.g. from a proxy).
USER_AGENT = "influxhtm"
_DROPPED = re.compile(r"dropped=(\d+)")
_PASSWORD = re.compile(r"(?i)(password\b[^']*)'(?:[^'\\]|\\.)*(?:'|$)")
#: The kinds of refusal InfluxDB reports in a partial write, as found in its message.
_PARTIAL_KINDS = (
    "field type conflict",
    "max-values-per-tag limit exceeded",
    "max-series-per-database limit exceeded",
    "points beyond retention policy",
    "unable to parse",
)
#: A 400 answer to a write that means "some or all points refused, the rest stored": a type conflict
#: inside one batch comes without the "partial write" prefix (and the whole batch is refused).
_PARTIAL_MARKERS = ("partial write", "unable to parse", "field type conflict")
_MAX_TEXT = 500


def redact(text: str) -> str:
    """`text` with every quoted literal after the word PASSWORD replaced by ``'***'``."""
    return _PASSWORD.sub(r"\1'***'", text)


def shorten(text: str, limit: int = _MAX_TEXT) -> str:
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"


# -- request building -----------------------------------------------------------------
def write_params(database: str, retention_policy: str | None, precision: str) -> dict[str, str]:
    """The URL parameters of a write."""
    params = {"db": database, "precision": precision}
    if retention_policy:
        params["rp"] = retention_policy
    return params


def write_request(settings: Settings, body: bytes) -> tuple[bytes, dict[str, str]]:
    """The body (gzipped when the settings ask) and headers of one write POST."""
    headers = {"Content-Type": "text/plain; charset=utf-8"}
    if settings.gzip:
        headers["Content-Encoding"] = "gzip"
        return gzip_module.compress(body, compresslevel=1), headers
    return body, headers


def query_form(
    text: str,
    params: Mapping[str, Any] | None,
    database: str | None,
    *,
    epoch: str = "ns",
    chunk_size: int = QUERY_CHUNK_SIZE,
) -> dict[str, str]:
    """The form of a query POST: the statement, its bound parameters and the database travel in the
    body, never in the URL (a URL ends up in logs; a statement can carry a password). Always chunked:
    a chunked answer is never cut at `[http] max-row-limit`."""
    form = {"q": text, "epoch": epoch}
    if database:
        form["db"] = database
    if params:
        form["params"] = json.dumps(dict(params))
    form["chunked"] = "true"
    form["chunk_size"] = str(chunk_size)
    return form


def auth(settings: Settings) -> tuple[str, str] | None:
    """Basic-auth credentials, when the settings have a user."""
    return None if settings.username is None else (settings.username, settings.password or "")


# -- retry decisions --------------------------------------------------------------------
def backoff_delay(settings: Settings, attempt: int) -> float:
    """Seconds to wait after failed attempt number `attempt` (1-based): doubling, capped, jittered."""
    base = min(settings.backoff * 2 ** (attempt - 1), settings.max_backoff)
    return base * (0.5 + random.random())


class Attempts:
    """The attempts of one request: which failure is retried, how long to wait, and the error when
    giving up (refused or reset connections, timeouts and HTTP 5xx are retried with backoff, at most
    `Settings.retries` times and never after `Settings.retry_deadline`).

    A transport calls `start()` before each attempt, then one of `answered(status)` (True: the
    answer is final), `connection_failed(reason, timed_out=...)` or raises `tls_failed(...)` /
    `unsendable(...)`; after a retryable failure it waits `pause()` seconds.
    """

    def __init__(self, settings: Settings, method: str, path: str, delay: Any = backoff_delay):
        self.settings = settings
        self.method = method
        self.path = path
        self.started = time.monotonic()
        self.deadline = self.started + settings.retry_deadline
        self.attempt = 0
        self.reason = ""
        self._delay = delay

    @property
    def url(self) -> str:
        return f"{self.settings.url}/{self.path}"

    def start(self) -> None:
        self.attempt += 1

    def may_retry(self) -> bool:
        return self.attempt <= self.settings.retries and time.monotonic() < self.deadline

    def _elapsed(self) -> str:
        return f"{time.monotonic() - self.started:.1f} s"

    def answered(self, status: int, message: Any = None) -> bool:
        """True when an answer with `status` is final; False to retry it. `message()` gives the error
        text of an answer that is given up on (then a ServerError is raised)."""
        if status not in RETRYABLE_STATUS:
            return True
        self.reason = f"HTTP {status}"
        if self.may_retry():
            return False
        s = self.settings
        raise ServerError(
            f"InfluxDB at {s.url} answered HTTP {status} to {self.method} /{self.path} "
            f"after {self.attempt} attempt(s) in {self._elapsed()}: {message() if message else ''}",
            status=status,
            url=s.url,
        )

    def connection_failed(self, reason: str, *, timed_out: bool) -> None:
        """A refused, reset or timed-out attempt: returns to retry it, or raises the error of giving up."""
        self.reason = reason
        if self.may_retry():
            return
        s = self.settings
        if timed_out:
            raise InfluxTimeoutError(
                f"InfluxDB at {s.url} timed out: no answer to {self.method} /{self.path} within the "
                f"{s.timeout:g} s timeout, after {self.attempt} attempt(s) in {self._elapsed()}; the "
                f"server is busy or the request too heavy (narrow it, or raise the timeout setting)",
                url=s.url,
            )
        raise InfluxConnectionError(
            f"cannot reach InfluxDB at {s.url} ({self.method} /{self.path}) after {self.attempt} "
            f"attempt(s) in {self._elapsed()}: {reason}",
            url=s.url,
        )

    def tls_failed(self, reason: str) -> TLSError:
        s = self.settings
        return TLSError(f"TLS with InfluxDB at {s.url} failed: {reason}; {tls_hint(s)}", url=s.url)

    def unsendable(self, error: BaseException) -> InfluxConnectionError:
        s = self.settings
        return InfluxConnectionError(
            f"cannot send a request to InfluxDB at {s.url} ({self.method} /{self.path}): "
            f"{type(error).__name__}: {shorten(redact(str(error)))}",
            url=s.url,
        )

    def pause(self) -> float:
        """Seconds to wait before the next attempt (logged)."""
        delay = max(0.0, min(self._delay(self.settings, self.attempt), self.deadline - time.monotonic()))
        log.warning(
            "InfluxDB %s %s /%s failed (%s); retry %d of %d in %.2f s",
            self.settings.url,
            self.method,
            self.path,
            self.reason,
            self.attempt,
            self.settings.retries,
            delay,
        )
        return delay


def tls_hint(settings: Settings) -> str:
    if settings.verify_ssl is True:
        return (
            "certificate verification is on: trust the server's CA with verify_ssl='/path/ca.pem' "
            "(or INFLUX_VERIFY_SSL), or turn it off explicitly with verify_ssl=False"
        )
    if isinstance(settings.verify_ssl, str):
        return f"the certificate does not verify against the CA bundle {settings.verify_ssl!r}"
    return "is the server speaking HTTPS on this port (ssl=True)?"


# -- answer decoding --------------------------------------------------------------------
def query_headers(*, gzip: bool = False) -> dict[str, str]:
    """Answers in msgpack (smaller than JSON and decoded faster), compressed only with the `gzip`
    setting: on a fast link compressing costs the server and the client more time than it saves
    (a typed read of 200,000 points takes about a third longer)."""
    return {"Accept": "application/x-msgpack", "Accept-Encoding": "gzip" if gzip else "identity"}


def is_msgpack(content_type: str) -> bool:
    return content_type.startswith("application/x-msgpack")


def decode(blocks: Iterable[bytes | memoryview], content_type: str) -> Iterator[Any]:
    """Each document of a chunked answer whose body comes in `blocks` (`content_type` is the
    answer's Content-Type: msgpack, else JSON lines). Raises ValueError or UnpackError on a body
    that is not one."""
    decoder = DocumentDecoder(content_type)
    for block in blocks:
        yield from decoder.feed(block)
    yield from decoder.finish()


class DocumentDecoder:
    """The msgpack or JSON-lines documents of a chunked answer, from its bytes as they arrive."""

    def __init__(self, content_type: str):
        self.msgpack = is_msgpack(content_type)
        self._unpacker = msgpack.Unpacker(raw=False, strict_map_key=False, max_buffer_size=1 << 30)
        self._rest = b""

    def feed(self, block: bytes | memoryview) -> Iterator[Any]:
        """The documents completed by `block`."""
        if self.msgpack:
            self._unpacker.feed(block)
            # The rows of a chunk are thousands of new lists: the collector is paused while they
            # are made (it would run over them again and again), never while a document is handed out.
            collecting = gc.isenabled()
            gc.disable()
            try:
                documents = list(self._unpacker)
            finally:
                if collecting:
                    gc.enable()
            yield from documents
            return
        lines = (self._rest + bytes(block)).split(b"\n")
        self._rest = lines.pop()
        for line in lines:
            if line.strip():
                yield json.loads(line)

    def finish(self) -> Iterator[Any]:
        """The last document of a JSON answer without a final newline."""
        rest, self._rest = self._rest, b""
        if rest.strip():
            yield json.loads(rest)


def documents(content: bytes, content_type: str) -> Iterator[Any]:
    """Each document of an answer already received whole."""
    decoder = DocumentDecoder(content_type)
    view = memoryview(content)
    for start in range(0, len(view), 1 << 20):
        yield from decoder.feed(view[start : start + (1 << 20)])
    yield from decoder.finish()


class ResultReader:
    """Each statement result of a chunked answer, checked for errors, in order; `finish()` raises
    when the answer ended while its last result still said more chunks follow (`"partial": true`),
    or with its last series marked partial (an answer cut instead of chunked: a server that ignores
    `chunked` cuts it at `[http] max-row-limit`), so a streamed read never passes as complete."""

    def __init__(self, settings: Settings, text: str):
        self.settings = settings
        self.text = text
        self.unfinished = True  # an answer without a single result is not an answer
        self.cut: Mapping[str, Any] | None = None

    def results(self, body: Any) -> list[dict[str, Any]]:
        results = check_results(body, self.settings.url, self.text)
        for result in results:
            self.unfinished = bool(result.get("partial"))
            series = result.get("series") or ()
            last = series[-1] if series else None
            self.cut = last if last is not None and last.get("partial") and not self.unfinished else None
        return results

    def finish(self) -> None:
        if self.cut is not None:
            raise cut_answer(self.cut, self.settings.url, self.text)
        if self.unfinished:
            raise InfluxConnectionError(
                f"the answer of InfluxDB at {self.settings.url} ended before its last chunk "
                f"(query: {shorten(redact(self.text))})",
                url=self.settings.url,
            )

    def broke_off(self, reason: str) -> InfluxConnectionError:
        return InfluxConnectionError(
            f"the answer of InfluxDB at {self.settings.url} broke off: {reason} "
            f"(query: {shorten(redact(self.text))})",
            url=self.settings.url,
        )


class AnswerReader(ResultReader):
    """A `ResultReader` fed with the answer's bytes as they arrive (a `DocumentDecoder` of its
    `content_type`), so that both transports read an answer alike: `feed(block)` for each block,
    then `end()`, then `finish()`."""

    def __init__(self, settings: Settings, text: str, content_type: str):
        super().__init__(settings, text)
        self.decoder = DocumentDecoder(content_type)

    def feed(self, block: bytes | memoryview) -> Iterator[dict[str, Any]]:
        """The statement results completed by `block`."""
        for body in self.decoder.feed(block):
            yield from self.results(body)

    def end(self) -> Iterator[dict[str, Any]]:
        """The statement results of what is left once the answer's bytes have all arrived."""
        for body in self.decoder.finish():
            yield from self.results(body)


#: Errors of decoding an answer's bytes (besides the transport's own).
UnpackError = msgpack.UnpackException


def check_results(body: Any, url: str, text: str) -> list[dict[str, Any]]:
    """The statement results of one answer document; an error in it raises QueryError."""
    if not isinstance(body, dict):
        raise ServerError(
            f"InfluxDB at {url} sent an unexpected answer of type {type(body).__name__}", url=url
        )
    shown = shorten(redact(text))
    if "error" in body:
        raise QueryError(f"InfluxDB at {url} refused the query: {body['error']} (query: {shown})", url=url)
    results: Sequence[dict[str, Any]] = body.get("results", [])
    for result in results:
        if "error" in result:
            raise QueryError(
                f"InfluxDB at {url} failed the query: {result['error']} (query: {shown})", url=url
            )
    return list(results)


def whole(results: Iterable[dict[str, Any]], url: str, text: str) -> list[dict[str, Any]]:
    """The chunks of an answer put back together: one result per statement, each series whole.

    A series still marked partial at the end (a server that cut the answer instead of
    chunking it) raises ServerError: a partial result is never returned as complete.
    """
    out: list[dict[str, Any]] = []
    for result in results:
        if not out or out[-1].get("statement_id") != result.get("statement_id"):
            result.pop("partial", None)
            out.append(result)
            continue
        current = out[-1]
        series = current.setdefault("series", [])
        for piece in result.get("series", []):
            last = series[-1] if series else None
            if last is not None and last.get("partial") and _same_series(last, piece):
                last["values"].extend(piece["values"])
                last["partial"] = piece.get("partial", False)
            else:
                series.append(piece)
        if result.get("messages"):
            current.setdefault("messages", []).extend(result["messages"])
    for result in out:
        for series in result.get("series", []):
            if series.pop("partial", False):
                raise cut_answer(series, url, text)
    return out


def cut_answer(series: Mapping[str, Any], url: str, text: str) -> ServerError:
    """The error of an answer that holds only part of `series` (cut, not chunked)."""
    return ServerError(
        f"InfluxDB at {url} returned only part of series "
        f"{series.get('name')!r} {series.get('tags') or ''} ({len(series['values'])} rows; "
        f"is the answer cut at [http] max-row-limit?) (query: {shorten(redact(text))})",
        url=url,
    )


def _same_series(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    return a.get("name") == b.get("name") and (a.get("tags") or {}) == (b.get("tags") or {})


# -- error mapping ----------------------------------------------------------------------
def error_text(content: bytes, content_type: str, status: int) -> str:
    """The server's error message of an answer: its `error` member, else its text, shortened."""
    try:
        if is_msgpack(content_type):
            body = msgpack.unpackb(content, raw=False, strict_map_key=False)
        else:
            body = json.loads(content)
        if isinstance(body, dict) and "error" in body:
            return str(body["error"])
    except Exception:  # noqa: BLE001, S110 - any undecodable body is reported as text
        pass
    text = content.decode("utf-8", "replace").strip()
    return shorten(text) or f"HTTP {status}"


def status_error(
    settings: Settings, status: int, message: str, *, query: str | None = None, what: str = ""
) -> InfluxHtmError | None:
    """The error of an answer with `status` (None for a success)."""
    if status < 300:
        return None
    url = settings.url
    if status in (401, 403):
        who = f"user {settings.username!r}" if settings.username else "no credentials"
        hint = "" if settings.username else " (give username/password or INFLUX_USER/INFLUX_PASS)"
        return AuthenticationError(
            f"InfluxDB at {url} refused {who} (HTTP {status}): {message}{hint}", status=status, url=url
        )
    if query is not None and status == 400:
        return QueryError(
            f"InfluxDB at {url} refused the query: {message} (query: {shorten(redact(query))})",
            status=status,
            url=url,
        )
    subject = f" to the {what}" if what else ""
    return ServerError(
        f"InfluxDB at {url} answered HTTP {status}{subject}: {message}", status=status, url=url
    )


def raise_for_status(
    settings: Settings, status: int, message: Callable[[], str], *, query: str | None = None, what: str = ""
) -> None:
    """Raise the error of an answer with `status` (`status_error`); `message()` reads the server's
    error text, only for an answer that is not a success."""
    if status < 300:
        return
    error = status_error(settings, status, message(), query=query, what=what)
    if error is not None:
        raise error


class TooLarge(Exception):
    """Internal: the server answered 413 to a write."""


def write_outcome(
    settings: Settings, status: int, message: str, *, database: str, count: int
) -> Exception | None:
    """What the answer to a write of `count` points means: None (stored), `TooLarge` (413), a
    `PartialWriteError`, `NotFound` (no database) or the status error. `message` is only read
    for an answer that is not 204 or 413."""
    if status == 204:
        return None
    if status == 413:
        return TooLarge()
    if status == 400 and any(marker in message for marker in _PARTIAL_MARKERS):
        return partial(message, count, settings.url)
    if status == 404 and "database not found" in message:
        return NotFound(f"database {database!r} not found on InfluxDB at {settings.url}: {message}")
    return status_error(settings, status, message, what=f"write to database {database!r}")


def partial(message: str, total: int, url: str) -> PartialWriteError:
    """A PartialWriteError from InfluxDB's 400 answer to a write of `total` points."""
    match = _DROPPED.search(message)
    unparsable = message.count("unable to parse '")
    if match:
        dropped: int | None = int(match.group(1)) + unparsable
    elif unparsable:
        dropped = unparsable
    else:
        dropped = None
    kinds = [kind for kind in _PARTIAL_KINDS if kind in message] or ["refused by the server"]
    reason = "; ".join(kinds)
    count = "some" if dropped is None else str(dropped)
    return PartialWriteError(
        f"InfluxDB at {url} dropped {count} of {total} point(s) ({reason}): {shorten(message)}",
        dropped=dropped,
        reason=reason,
        status=400,
        url=url,
        detail=message,
    )


# -- write splitting --------------------------------------------------------------------
class BodyLimited(Protocol):
    """A transport that remembers the largest write body known to pass (learnt from 413s)."""

    settings: Settings
    body_limit: int | None


class WritePlan:
    """The pieces of one write, in order: `next_piece()` gives the next body to POST, `done(piece,
    outcome)` takes what the answer meant, `finish(database)` raises the write's one
    `PartialWriteError` when points were refused.

    A body is only ever cut between points. A body the server refuses as too large (413,
    `max-body-size`) is sent in pieces; the size that passes is kept on the transport for
    later writes. A partial write that refused some but not all points of a piece is halved
    and re-sent (overwriting is harmless) until every refused point stands alone: InfluxDB
    1.6 can drop an accepted point along with a refused one (max-values-per-tag).
    """

    def __init__(self, transport: BodyLimited, batch: Batch):
        self.transport = transport
        self.batch = batch
        self.refusals: list[PartialWriteError] = []
        self._pending = deque([batch]) if len(batch) else deque()

    def next_piece(self) -> Batch | None:
        while self._pending:
            piece = self._pending.popleft()
            limit = self.transport.body_limit
            if limit is not None and len(piece.data) > limit and len(piece) > 1:
                self._pending.extendleft(reversed(piece.split(limit)))
                continue
            return piece
        return None

    def done(self, piece: Batch, outcome: Exception | None) -> None:
        """Take the outcome of POSTing `piece` (from `write_outcome`); other errors are raised."""
        if outcome is None:
            return
        if isinstance(outcome, TooLarge):
            if len(piece) == 1:
                self.refusals.append(too_large(piece.data, self.transport.settings.url))
                return
            self.transport.body_limit = max(1, len(piece.data) // 2)
            log.info(
                "InfluxDB %s refused %d bytes (413); writing in pieces of at most %d bytes",
                self.transport.settings.url,
                len(piece.data),
                self.transport.body_limit,
            )
            self._pending.appendleft(piece)
            return
        if isinstance(outcome, PartialWriteError):
            if len(piece) == 1 or outcome.dropped == len(piece):
                outcome.dropped = len(piece)
                outcome.lines = [
                    shorten(line.decode("utf-8", "replace"), 200) for line in piece.lines()[:100]
                ]
                self.refusals.append(outcome)
                return
            self._pending.extendleft(reversed(piece.halves()))
            return
        raise outcome

    def request(self, piece: Batch) -> tuple[bytes, dict[str, str]]:
        """The body and headers of the POST of `piece` (`write_request`)."""
        return write_request(self.transport.settings, piece.data)

    def answered(self, piece: Batch, status: int, message: Callable[[], str], database: str) -> None:
        """Take the answer to the POST of `piece` (`write_outcome`, then `done`); `message()` reads
        the server's error text, only for an answer that is not 204 or 413."""
        text = "" if status in (204, 413) else message()
        settings = self.transport.settings
        self.done(piece, write_outcome(settings, status, text, database=database, count=len(piece)))

    def finish(self, database: str) -> None:
        if self.refusals:
            dropped = sum(r.dropped or 0 for r in self.refusals)
            raise merge_refusals(
                self.refusals,
                written=len(self.batch) - dropped,
                not_sent=0,
                database=database,
                url=self.transport.settings.url,
            )


def too_large(point: bytes, url: str) -> PartialWriteError:
    """The refusal of one point larger than the server's max-body-size, naming it."""
    text = point.decode("utf-8", "replace")
    detail = f"a point of {len(point)} bytes is larger than max-body-size: {_name_point(text)}"
    return PartialWriteError(
        f"InfluxDB at {url} refused {detail}",
        dropped=1,
        reason="point larger than max-body-size",
        status=413,
        url=url,
        detail=f"Request Entity Too Large ({detail})",
        lines=[shorten(text, 200)],
    )


def merge_refusals(
    refusals: Sequence[PartialWriteError],
    *,
    written: int,
    not_sent: int,
    database: str,
    url: str | None,
    stopped_by: BaseException | None = None,
) -> PartialWriteError:
    """One PartialWriteError for all the refusals of one write, with its exact counts.

    `written` points are stored, the refused ones are counted from `refusals`, and
    `not_sent` points were never sent because the write stopped (`stopped_by`).
    """
    dropped = sum(r.dropped or 0 for r in refusals)
    kinds: list[str] = []
    for refusal in refusals:
        for kind in refusal.reason.split("; "):
            if kind and kind not in kinds:
                kinds.append(kind)
    reason = "; ".join(kinds)
    detail = "\n".join(dict.fromkeys(r.detail for r in refusals))
    total = written + dropped + not_sent
    if not_sent:
        why = f": {type(stopped_by).__name__}: {shorten(str(stopped_by), 200)}" if stopped_by else ""
        rest = f"{written} stored, {not_sent} not sent because the write stopped{why}"
    else:
        rest = f"the other {written} are stored"
    return PartialWriteError(
        f"InfluxDB at {url} refused {dropped} of {total} point(s) written to database {database!r} "
        f"({reason}); {rest}. First refusal: {shorten(refusals[0].detail)}",
        dropped=dropped,
        reason=reason,
        status=refusals[0].status,
        url=url,
        detail=detail,
        lines=[line for refusal in refusals for line in refusal.lines][:100],
        written=written,
        not_sent=not_sent,
    )


def _name_point(text: str) -> str:
    """A long point shown by its start (measurement, tags) and its end (the time)."""
    return text if len(text) <= 160 else f"{text[:100]} ... {text[-40:]} ({len(text)} characters)"
