"""The transport: one HTTP session to InfluxDB, with retries, error mapping and streaming.

It speaks InfluxDB 1.x's HTTP API (`/write`, `/query`, `/ping`) over a
keep-alive `requests` session (the transport `influxdb-python` uses too), asks
for msgpack query answers, and turns every failure into an `InfluxHtmError`
whose message names the server's URL and never the password.

What is retried (with exponential backoff and jitter, at most
`Settings.retries` times and never after `Settings.retry_deadline`): refused
or reset connections, timeouts and HTTP 500/502/503/504. Writes are safe to
retry because InfluxDB overwrites a point with the same series and time. Not
retried: TLS failures (an untrusted certificate does not heal), 4xx answers
(credentials, bad queries, partial writes), anything else.

`influxdb_client()` gives an `influxdb.InfluxDBClient` with the same settings for
code that wants influxdb-python itself.
"""

from __future__ import annotations

import gzip as gzip_module
import json
import logging
import random
import re
import time
from collections import deque
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Mapping, Sequence

import msgpack

from .decoding import MSGPACK, decode
from .errors import (
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
from .line_protocol import Batch
from .settings import Settings

if TYPE_CHECKING:
    import requests

log = logging.getLogger(__name__)

RETRYABLE_STATUS = frozenset({500, 502, 503, 504})
_DROPPED = re.compile(r"dropped=(\d+)")
_PASSWORD = re.compile(r"(?i)(password\b[^']*)'(?:[^'\\]|\\.)*(?:'|$)")
_ERRNO = re.compile(r"\[Errno -?\d+\][^'\")]*")
_SSL_REASON = re.compile(r"\[SSL[^\]]*\][^'\")]*")
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
#: Rows per chunk of the answers `Connection.query` asks for (InfluxDB's own default chunk size).
QUERY_CHUNK_SIZE = 10_000


def redact(text: str) -> str:
    """`text` with every quoted literal after the word PASSWORD replaced by ``'***'``."""
    return _PASSWORD.sub(r"\1'***'", text)


def _shorten(text: str, limit: int = _MAX_TEXT) -> str:
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"


class Connection:
    """A keep-alive HTTP session to one InfluxDB server."""

    def __init__(self, settings: Settings):
        import requests  # here, not at import time: importing urllib3 opens a socket (IPv6 probe)

        self.settings = settings
        self.session = requests.Session()
        if settings.username is not None:
            self.session.auth = (settings.username, settings.password or "")
        self.session.verify = settings.verify_ssl
        self.session.headers["User-Agent"] = "influxhtm"
        #: Largest write body (bytes) known to pass the server's max-body-size; learnt from 413s.
        self.body_limit: int | None = None

    def __repr__(self) -> str:
        return f"<Connection {self.settings.url} user={self.settings.username!r}>"

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> "Connection":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def influxdb_client(self, database: str | None = None) -> Any:
        """An `influxdb.InfluxDBClient` with these settings."""
        from influxdb import InfluxDBClient

        s = self.settings
        return InfluxDBClient(
            host=s.host,
            port=s.port,
            username=s.username or "root",
            password=s.password or "root",
            database=database,
            ssl=s.ssl,
            verify_ssl=s.verify_ssl,
            timeout=s.timeout,
        )

    # -- requests with retries ----------------------------------------------
    def backoff_delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based): doubling, capped, jittered."""
        s = self.settings
        base = min(s.backoff * 2 ** (attempt - 1), s.max_backoff)
        return base * (0.5 + random.random())

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        data: bytes | Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        stream: bool = False,
    ) -> requests.Response:
        """Send one request, retrying refused/reset connections, timeouts and 5xx with backoff.

        Returns the first answer that is not a retryable 5xx. Raises `InfluxConnectionError`
        (or `TLSError`, at once) when the server cannot be reached, and `ServerError` when it
        still answers 5xx after the last retry.
        """
        import requests

        s = self.settings
        url = f"{s.url}/{path}"
        started = time.monotonic()
        deadline = started + s.retry_deadline
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self.session.request(
                    method,
                    url,
                    params=params,
                    data=data,
                    headers=headers,
                    timeout=s.timeout,
                    stream=stream,
                    # given per request: requests lets REQUESTS_CA_BUNDLE override the session's value
                    verify=s.verify_ssl,
                )
            except requests.exceptions.SSLError as error:
                raise TLSError(
                    f"TLS with InfluxDB at {s.url} failed: {_describe(error)}; {_tls_hint(s)}", url=s.url
                ) from None
            except (requests.ConnectionError, requests.Timeout) as error:
                reason = _describe(error)
                if not self._may_retry(attempt, deadline):
                    if isinstance(error, requests.ReadTimeout):
                        raise InfluxTimeoutError(
                            f"InfluxDB at {s.url} timed out: no answer to {method} /{path} within the "
                            f"{s.timeout:g} s timeout, after {attempt} attempt(s) in "
                            f"{time.monotonic() - started:.1f} s; the server is busy or the request too "
                            f"heavy (narrow it, or raise the timeout setting)",
                            url=s.url,
                        ) from None
                    raise InfluxConnectionError(
                        f"cannot reach InfluxDB at {s.url} ({method} /{path}) after {attempt} attempt(s) "
                        f"in {time.monotonic() - started:.1f} s: {reason}",
                        url=s.url,
                    ) from None
            except (requests.RequestException, OSError, ValueError) as error:
                raise InfluxConnectionError(
                    f"cannot send a request to InfluxDB at {s.url} ({method} /{path}): "
                    f"{type(error).__name__}: {_shorten(redact(str(error)))}",
                    url=s.url,
                ) from None
            else:
                if response.status_code not in RETRYABLE_STATUS:
                    return response
                reason = f"HTTP {response.status_code}"
                if not self._may_retry(attempt, deadline):
                    message = _error_text(response)
                    response.close()
                    raise ServerError(
                        f"InfluxDB at {s.url} answered HTTP {response.status_code} to {method} /{path} "
                        f"after {attempt} attempt(s) in {time.monotonic() - started:.1f} s: {message}",
                        status=response.status_code,
                        url=s.url,
                    )
                response.close()
            delay = max(0.0, min(self.backoff_delay(attempt), deadline - time.monotonic()))
            log.warning(
                "InfluxDB %s %s /%s failed (%s); retry %d of %d in %.2f s",
                s.url,
                method,
                path,
                reason,
                attempt,
                s.retries,
                delay,
            )
            time.sleep(delay)

    def _may_retry(self, attempt: int, deadline: float) -> bool:
        return attempt <= self.settings.retries and time.monotonic() < deadline

    # -- the API -------------------------------------------------------------
    def ping(self) -> str:
        """The server's version; raises InfluxConnectionError when it cannot be reached."""
        response = self.request("GET", "ping")
        self._raise_for_status(response)
        return response.headers.get("X-Influxdb-Version", "")

    def write(
        self,
        body: Batch | bytes | str,
        *,
        database: str,
        retention_policy: str | None = None,
        precision: str = "n",
    ) -> None:
        """POST line protocol: a `Batch` of encoded points, or raw text.

        A body is only ever cut between points: a `Batch` knows where its points end
        (a string field may hold newlines); raw text is cut where InfluxDB's own scanner
        cuts it (`scan_points`). A body the server refuses as too large (413,
        `max-body-size`) is sent in pieces; the size that passes is remembered for later
        writes. Points the server refuses (field type conflict, max-values-per-tag, a
        point larger than max-body-size, ...) raise one `PartialWriteError` at the end,
        after every other piece has been sent and stored, with exact counts and the
        refused lines.
        """
        batch = body if isinstance(body, Batch) else Batch.of_text(body)
        if not len(batch):
            return
        params = {"db": database, "precision": precision}
        if retention_policy:
            params["rp"] = retention_policy
        refusals: list[PartialWriteError] = []
        pending = deque([batch])
        while pending:
            chunk = pending.popleft()
            limit = self.body_limit
            if limit is not None and len(chunk.data) > limit and len(chunk) > 1:
                pending.extendleft(reversed(chunk.split(limit)))
                continue
            try:
                self._write_once(chunk.data, params, database, len(chunk))
            except _TooLarge:
                if len(chunk) == 1:
                    refusals.append(self._too_large(chunk.data))
                    continue
                self.body_limit = max(1, len(chunk.data) // 2)
                log.info(
                    "InfluxDB %s refused %d bytes (413); writing in pieces of at most %d bytes",
                    self.settings.url,
                    len(chunk.data),
                    self.body_limit,
                )
                pending.appendleft(chunk)
            except PartialWriteError as refusal:
                if len(chunk) == 1 or refusal.dropped == len(chunk):
                    refusal.dropped = len(chunk)
                    refusal.lines = [
                        _shorten(line.decode("utf-8", "replace"), 200)
                        for line in chunk.lines()[:100]
                    ]
                    refusals.append(refusal)
                    continue
                # Some points were accepted, or the server did not say how many (a type conflict
                # inside one batch refuses all of it). The server's count is not enough either:
                # InfluxDB 1.6 can drop an accepted point of the batch along with a refused one
                # (max-values-per-tag), so the batch is halved and re-sent (overwriting is
                # harmless) until every refused point stands alone and every other point is in
                # a piece answered 204.
                pending.extendleft(reversed(chunk.halves()))
        if refusals:
            dropped = sum(r.dropped or 0 for r in refusals)
            raise merge_refusals(
                refusals, written=len(batch) - dropped, not_sent=0, database=database, url=self.settings.url
            )

    def _too_large(self, point: bytes) -> PartialWriteError:
        """The refusal of one point larger than the server's max-body-size, naming it."""
        text = point.decode("utf-8", "replace")
        detail = f"a point of {len(point)} bytes is larger than max-body-size: {_name_point(text)}"
        return PartialWriteError(
            f"InfluxDB at {self.settings.url} refused {detail}",
            dropped=1,
            reason="point larger than max-body-size",
            status=413,
            url=self.settings.url,
            detail=f"Request Entity Too Large ({detail})",
            lines=[_shorten(text, 200)],
        )

    def _write_once(self, body: bytes, params: Mapping[str, str], database: str, count: int) -> None:
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        data = body
        if self.settings.gzip:
            data = gzip_module.compress(body, compresslevel=1)
            headers["Content-Encoding"] = "gzip"
        response = self.request("POST", "write", params=params, data=data, headers=headers)
        status = response.status_code
        if status == 204:
            return
        if status == 413:
            raise _TooLarge()
        message = _error_text(response)
        if status == 400 and any(marker in message for marker in _PARTIAL_MARKERS):
            raise _partial(message, count, self.settings.url)
        if status == 404 and "database not found" in message:
            raise NotFound(f"database {database!r} not found on InfluxDB at {self.settings.url}: {message}")
        self._raise_for_status(response, what=f"write to database {database!r}")

    def query(
        self,
        text: str,
        *,
        params: Mapping[str, Any] | None = None,
        database: str | None = None,
        method: str = "POST",
        epoch: str = "ns",
    ) -> list[dict[str, Any]]:
        """Run InfluxQL; returns one complete result dict per statement. Errors raise QueryError.

        The answer is always asked for in chunks and put back together here: InfluxDB cuts a
        non-chunked answer after its `[http] max-row-limit` rows, marking the series "partial"
        or, when the cut falls on the end of a series, not marking it at all (the later
        series and statements are just missing). A chunked answer is never cut.

        Every statement, its bound `params` and the database travel in the body of a POST,
        never in the URL: a URL ends up in server, proxy and access logs, and a statement
        can carry a password (CREATE USER, SET PASSWORD) or private values. `method` is
        accepted for compatibility and changes nothing.
        """
        form = self._query_params(text, params, database, epoch)
        form["chunked"] = "true"
        form["chunk_size"] = str(QUERY_CHUNK_SIZE)
        response = self.request("POST", "query", data=form, headers=self._query_headers())
        self._raise_for_status(response, query=text)
        return self._whole(self._results(response, text, stream=False), text)

    def query_chunks(
        self,
        text: str,
        *,
        params: Mapping[str, Any] | None = None,
        database: str | None = None,
        chunk_size: int = 10_000,
        epoch: str = "ns",
    ) -> Iterator[dict[str, Any]]:
        """Stream a large answer: yields each partial statement result as it arrives.

        Failing to connect is retried; a connection lost in the middle of the stream is not
        (part of the answer has been handed out already) and raises InfluxConnectionError,
        as does an answer that ends before its last chunk. The statement and its parameters
        travel in the body of a POST, as in `query`.
        """
        request_params = self._query_params(text, params, database, epoch)
        request_params["chunked"] = "true"
        request_params["chunk_size"] = str(chunk_size)
        response = self.request(
            "POST", "query", data=request_params, headers=self._query_headers(), stream=True
        )
        with response:
            self._raise_for_status(response, query=text)
            yield from self._results(response, text, stream=True)

    def _results(self, response: requests.Response, text: str, *, stream: bool) -> Iterator[dict[str, Any]]:
        """Each statement result of a chunked answer, checked for errors, in order.

        Raises InfluxConnectionError when the answer breaks off or ends while its last result
        still says more chunks follow (`"partial": true`).
        """
        import requests

        unfinished = True  # an answer without a single result is not an answer
        try:
            for body in _documents(response, stream=stream):
                for result in self._check_results(body, text):
                    unfinished = bool(result.get("partial"))
                    yield result
        except InfluxHtmError:
            raise
        except (requests.RequestException, OSError, ValueError, msgpack.UnpackException) as error:
            raise InfluxConnectionError(
                f"the answer of InfluxDB at {self.settings.url} broke off: {_describe(error)} "
                f"(query: {_shorten(redact(text))})",
                url=self.settings.url,
            ) from None
        if unfinished:
            raise InfluxConnectionError(
                f"the answer of InfluxDB at {self.settings.url} ended before its last chunk "
                f"(query: {_shorten(redact(text))})",
                url=self.settings.url,
            )

    def _whole(self, results: Iterable[dict[str, Any]], text: str) -> list[dict[str, Any]]:
        """The chunks of an answer put back together: one result per statement, each series whole.

        A series still marked partial at the end (a server that cut the answer instead of
        chunking it) raises ServerError: a partial result is never returned as complete.
        """
        whole: list[dict[str, Any]] = []
        for result in results:
            if not whole or whole[-1].get("statement_id") != result.get("statement_id"):
                result.pop("partial", None)
                whole.append(result)
                continue
            current = whole[-1]
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
        for result in whole:
            for series in result.get("series", []):
                if series.pop("partial", False):
                    raise ServerError(
                        f"InfluxDB at {self.settings.url} returned only part of series "
                        f"{series.get('name')!r} {series.get('tags') or ''} ({len(series['values'])} rows; "
                        f"is the answer cut at [http] max-row-limit?) (query: {_shorten(redact(text))})",
                        url=self.settings.url,
                    )
        return whole

    def _query_headers(self) -> dict[str, str]:
        """Answers in msgpack (smaller than JSON and decoded faster), compressed only with the
        `gzip` setting: on a fast link compressing costs the server and the client more time than
        it saves (a typed read of 200,000 points takes about a third longer)."""
        return {"Accept": MSGPACK, "Accept-Encoding": "gzip" if self.settings.gzip else "identity"}

    @staticmethod
    def _query_params(
        text: str, params: Mapping[str, Any] | None, database: str | None, epoch: str
    ) -> dict[str, str]:
        request_params = {"q": text, "epoch": epoch}
        if database:
            request_params["db"] = database
        if params:
            request_params["params"] = json.dumps(dict(params))
        return request_params

    # -- error mapping -------------------------------------------------------
    def _raise_for_status(
        self, response: requests.Response, *, query: str | None = None, what: str = ""
    ) -> None:
        status = response.status_code
        if status < 300:
            return
        url = self.settings.url
        message = _error_text(response)
        if status in (401, 403):
            who = f"user {self.settings.username!r}" if self.settings.username else "no credentials"
            hint = "" if self.settings.username else " (give username/password or INFLUX_USER/INFLUX_PASS)"
            raise AuthenticationError(
                f"InfluxDB at {url} refused {who} (HTTP {status}): {message}{hint}", status=status, url=url
            )
        if query is not None and status == 400:
            raise QueryError(
                f"InfluxDB at {url} refused the query: {message} (query: {_shorten(redact(query))})",
                status=status,
                url=url,
            )
        subject = f" to the {what}" if what else ""
        raise ServerError(
            f"InfluxDB at {url} answered HTTP {status}{subject}: {message}", status=status, url=url
        )

    def _check_results(self, body: Any, text: str) -> list[dict[str, Any]]:
        url = self.settings.url
        if not isinstance(body, dict):
            raise ServerError(
                f"InfluxDB at {url} sent an unexpected answer of type {type(body).__name__}", url=url
            )
        shown = _shorten(redact(text))
        if "error" in body:
            raise QueryError(
                f"InfluxDB at {url} refused the query: {body['error']} (query: {shown})", url=url
            )
        results: Sequence[dict[str, Any]] = body.get("results", [])
        for result in results:
            if "error" in result:
                raise QueryError(
                    f"InfluxDB at {url} failed the query: {result['error']} (query: {shown})", url=url
                )
        return list(results)


class _TooLarge(Exception):
    """Internal: the server answered 413 to a write."""


def _partial(message: str, total: int, url: str) -> PartialWriteError:
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
        f"InfluxDB at {url} dropped {count} of {total} point(s) ({reason}): {_shorten(message)}",
        dropped=dropped,
        reason=reason,
        status=400,
        url=url,
        detail=message,
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
        why = f": {type(stopped_by).__name__}: {_shorten(str(stopped_by), 200)}" if stopped_by else ""
        rest = f"{written} stored, {not_sent} not sent because the write stopped{why}"
    else:
        rest = f"the other {written} are stored"
    return PartialWriteError(
        f"InfluxDB at {url} refused {dropped} of {total} point(s) written to database {database!r} "
        f"({reason}); {rest}. First refusal: {_shorten(refusals[0].detail)}",
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


def _describe(error: BaseException) -> str:
    """A short reason for a transport error, without the request's URL or query string."""
    import requests

    if isinstance(error, requests.Timeout):
        return f"timed out ({type(error).__name__})"
    text = str(error)
    found = _SSL_REASON.search(text) if isinstance(error, requests.exceptions.SSLError) else None
    found = found or _ERRNO.search(text)
    if found:
        reason = re.sub(r"\s*\(_ssl\.c:\d+$", "", found.group(0).strip())
        return f"{type(error).__name__}: {reason}"
    markers = ("RemoteDisconnected", "Connection aborted", "Connection reset", "IncompleteRead", "timed out")
    for marker in markers:
        if marker in text:
            return f"{type(error).__name__}: {marker}"
    return type(error).__name__


def _tls_hint(settings: Settings) -> str:
    if settings.verify_ssl is True:
        return (
            "certificate verification is on: trust the server's CA with verify_ssl='/path/ca.pem' "
            "(or INFLUX_VERIFY_SSL), or turn it off explicitly with verify_ssl=False"
        )
    if isinstance(settings.verify_ssl, str):
        return f"the certificate does not verify against the CA bundle {settings.verify_ssl!r}"
    return "is the server speaking HTTPS on this port (ssl=True)?"


def _decode(response: requests.Response) -> Any:
    if response.headers.get("Content-Type", "").startswith(MSGPACK):
        return msgpack.unpackb(response.content, raw=False, strict_map_key=False)
    return response.json()


def _documents(response: requests.Response, *, stream: bool) -> Iterator[Any]:
    """Each msgpack or JSON document of a chunked answer, read as it arrives (`stream`) or from the
    body already received (see `decoding.decode`)."""
    blocks: Iterable[bytes | memoryview]
    if stream:
        blocks = response.iter_content(chunk_size=1 << 16)
    else:
        content = memoryview(response.content)
        blocks = (content[i : i + (1 << 20)] for i in range(0, len(content), 1 << 20))
    return decode(blocks, response.headers.get("Content-Type", ""))


def _same_series(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    return a.get("name") == b.get("name") and (a.get("tags") or {}) == (b.get("tags") or {})


def _error_text(response: requests.Response) -> str:
    try:
        body = _decode(response)
        if isinstance(body, dict) and "error" in body:
            return str(body["error"])
    except Exception:  # noqa: BLE001 - any undecodable body is reported as text
        pass
    try:
        text = response.text.strip()
    except Exception:  # noqa: BLE001 - the body could not even be read
        text = ""
    return _shorten(text) or f"HTTP {response.status_code}"
