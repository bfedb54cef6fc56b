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

What to send, what an answer means and what to do next (retry, split, count)
are decided by the sans-I/O core in `protocol`, shared with the async transport
(`aio.AsyncConnection`); this module only moves the bytes.

`influxdb_client()` gives an `influxdb.InfluxDBClient` with the same settings for
code that wants influxdb-python itself.
"""

from __future__ import annotations

import logging
import re
import time
from functools import partial
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Mapping

from influxhtm.core.errors import InfluxHtmError
from influxhtm.io import http_api as protocol
from influxhtm.io.http_api import QUERY_CHUNK_SIZE, RETRYABLE_STATUS, merge_refusals, redact
from influxhtm.io.settings import Settings
from influxhtm.model.line_protocol import Batch

if TYPE_CHECKING:
    import requests

__all__ = ["QUERY_CHUNK_SIZE", "RETRYABLE_STATUS", "Connection", "merge_refusals", "redact"]

log = logging.getLogger(__name__)

_ERRNO = re.compile(r"\[Errno -?\d+\][^'\")]*")
_SSL_REASON = re.compile(r"\[SSL[^\]]*\][^'\")]*")


def read_environment_once(session: Any, url: str) -> None:
    """Read what requests takes from the environment (proxy variables and `NO_PROXY`, netrc
    credentials, `REQUESTS_CA_BUNDLE`) once, for the one server the session talks to, and stop
    requests reading it again on every request: that costs more CPU than the rest of a write's
    POST (the whole environment is scanned twice per request). A client made after the
    environment changes sees the change."""
    import requests.utils

    found = session.merge_environment_settings(url, {}, None, session.verify, None)
    session.proxies = found["proxies"]
    session.verify = found["verify"]
    if session.auth is None:
        session.auth = requests.utils.get_netrc_auth(url)
    session.trust_env = False


class Connection:
    """A keep-alive HTTP session to one InfluxDB server."""

    def __init__(self, settings: Settings):
        import requests  # here, not at import time: importing urllib3 opens a socket (IPv6 probe)

        self.settings = settings
        self.session = requests.Session()
        self.session.auth = protocol.auth(settings)
        self.session.verify = settings.verify_ssl
        self.session.headers["User-Agent"] = protocol.USER_AGENT
        read_environment_once(self.session, settings.url)
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
        return protocol.backoff_delay(self.settings, attempt)

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
        """Send one request, retrying refused/reset connections, timeouts and 5xx with backoff
        (`protocol.Attempts` decides).

        Returns the first answer that is not a retryable 5xx. Raises `InfluxConnectionError`
        (or `TLSError`, at once) when the server cannot be reached, and `ServerError` when it
        still answers 5xx after the last retry.
        """
        import requests

        s = self.settings
        attempts = protocol.Attempts(s, method, path)
        while True:
            attempts.start()
            try:
                response = self.session.request(
                    method,
                    attempts.url,
                    params=params,
                    data=data,
                    headers=headers,
                    timeout=s.timeout,
                    stream=stream,
                )
            except requests.exceptions.SSLError as error:
                raise attempts.tls_failed(_describe(error)) from None
            except (requests.ConnectionError, requests.Timeout) as error:
                try:
                    attempts.connection_failed(
                        _describe(error), timed_out=isinstance(error, requests.ReadTimeout)
                    )
                except InfluxHtmError as final:
                    raise final from None
            except (requests.RequestException, OSError, ValueError) as error:
                raise attempts.unsendable(error) from None
            else:
                try:
                    if attempts.answered(response.status_code, partial(_error_text, response)):
                        return response
                finally:
                    if response.status_code in RETRYABLE_STATUS:
                        response.close()
            time.sleep(attempts.pause())

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
        refused lines (`protocol.WritePlan`).
        """
        batch = body if isinstance(body, Batch) else Batch.of_text(body)
        params = protocol.write_params(database, retention_policy, precision)
        plan = protocol.WritePlan(self, batch)
        while (piece := plan.next_piece()) is not None:
            data, headers = plan.request(piece)
            response = self.request("POST", "write", params=params, data=data, headers=headers)
            plan.answered(piece, response.status_code, partial(_error_text, response), database)
        plan.finish(database)

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
        form = protocol.query_form(text, params, database, epoch=epoch)
        response = self.request(
            "POST", "query", data=form, headers=self._query_headers()
        )
        self._raise_for_status(response, query=text)
        return self._whole(self._results(response, text, stream=False), text)

    def query_chunks(
        self,
        text: str,
        *,
        params: Mapping[str, Any] | None = None,
        database: str | None = None,
        chunk_size: int = QUERY_CHUNK_SIZE,
        epoch: str = "ns",
    ) -> Iterator[dict[str, Any]]:
        """Stream a large answer: yields each partial statement result as it arrives.

        Failing to connect is retried; a connection lost in the middle of the stream is not
        (part of the answer has been handed out already) and raises InfluxConnectionError,
        as does an answer that ends before its last chunk. The statement and its parameters
        travel in the body of a POST, as in `query`.
        """
        form = protocol.query_form(text, params, database, epoch=epoch, chunk_size=chunk_size)
        response = self.request(
            "POST",
            "query",
            data=form,
            headers=self._query_headers(),
            stream=True,
        )
        with response:
            self._raise_for_status(response, query=text)
            yield from self._results(response, text, stream=True)

    def _results(self, response: requests.Response, text: str, *, stream: bool) -> Iterator[dict[str, Any]]:
        """Each statement result of a chunked answer, checked for errors, in order
        (`protocol.AnswerReader`: an answer that breaks off or ends while its last result
        still says `"partial": true` raises InfluxConnectionError)."""
        import requests

        reader = protocol.AnswerReader(self.settings, text, response.headers.get("Content-Type", ""))
        try:
            for block in _blocks(response, stream=stream):
                yield from reader.feed(block)
            yield from reader.end()
        except InfluxHtmError:
            raise
        except (requests.RequestException, OSError, ValueError, protocol.UnpackError) as error:
            raise reader.broke_off(_describe(error)) from None
        reader.finish()

    def _query_headers(self) -> dict[str, str]:
        return protocol.query_headers(gzip=bool(self.settings.gzip))

    def _whole(self, results: Iterable[dict[str, Any]], text: str) -> list[dict[str, Any]]:
        """The chunks of an answer put back together (`protocol.whole`: a series still partial
        raises ServerError, never returned as complete)."""
        return protocol.whole(results, self.settings.url, text)

    # -- error mapping -------------------------------------------------------
    def _raise_for_status(
        self, response: requests.Response, *, query: str | None = None, what: str = ""
    ) -> None:
        protocol.raise_for_status(
            self.settings, response.status_code, partial(_error_text, response), query=query, what=what
        )


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


def _blocks(response: requests.Response, *, stream: bool) -> Iterable[bytes | memoryview]:
    """The answer's bytes as they arrive (`stream`), or from the body already received."""
    if stream:
        return response.iter_content(chunk_size=1 << 16)
    content = memoryview(response.content)
    return (content[i : i + (1 << 20)] for i in range(0, len(content), 1 << 20))


def _error_text(response: requests.Response) -> str:
    try:
        content = response.content
    except Exception:  # noqa: BLE001 - the body could not even be read
        content = b""
    return protocol.error_text(content or b"", response.headers.get("Content-Type", ""), response.status_code)
