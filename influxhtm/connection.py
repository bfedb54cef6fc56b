"""The transport: one HTTP session to InfluxDB, with retries, error mapping and streaming.

It speaks InfluxDB 1.x's HTTP API (`/write`, `/query`, `/ping`) over a
keep-alive `requests` session (the transport `influxdb-python` uses too), asks
for msgpack query answers, and turns every failure into an `InfluxHtmError`.
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
from typing import Any, Iterator, Mapping, Sequence

import msgpack
import requests

from .errors import (
    AuthenticationError,
    InfluxConnectionError,
    PartialWriteError,
    QueryError,
    ServerError,
)
from .settings import Settings

log = logging.getLogger(__name__)

_DROPPED = re.compile(r"dropped=(\d+)")
_RETRYABLE_STATUS = {500, 502, 503, 504}


class Connection:
    """A keep-alive HTTP session to one InfluxDB server."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.session = requests.Session()
        if settings.username is not None:
            self.session.auth = (settings.username, settings.password or "")
        self.session.verify = settings.verify_ssl
        self.session.headers["User-Agent"] = "influxhtm"

    def __repr__(self) -> str:
        return f"<Connection {self.settings.url} user={self.settings.username!r}>"

    def close(self) -> None:
        self.session.close()

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
    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        stream: bool = False,
    ) -> requests.Response:
        """Send one request, retrying refused/reset connections, timeouts and 5xx with backoff.

        Writes are safe to retry: InfluxDB overwrites a point with the same series and time.
        """
        s = self.settings
        url = f"{s.url}/{path}"
        deadline = time.monotonic() + s.retry_deadline
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self.session.request(
                    method, url, params=params, data=data, headers=headers, timeout=s.timeout, stream=stream
                )
            except (requests.ConnectionError, requests.Timeout) as error:
                reason = f"{type(error).__name__}"
                if not self._may_retry(attempt, deadline):
                    raise InfluxConnectionError(
                        f"cannot reach InfluxDB at {s.url} after {attempt} attempt(s): {reason}"
                    ) from None
            else:
                if response.status_code not in _RETRYABLE_STATUS:
                    return response
                reason = f"HTTP {response.status_code}"
                if not self._may_retry(attempt, deadline):
                    return response
            delay = min(s.backoff * 2 ** (attempt - 1), 10.0) * (0.5 + random.random())
            delay = max(0.0, min(delay, deadline - time.monotonic()))
            log.warning("InfluxDB %s %s failed (%s); retry %d in %.2f s", method, path, reason, attempt, delay)
            time.sleep(delay)

    def _may_retry(self, attempt: int, deadline: float) -> bool:
        return attempt <= self.settings.retries and time.monotonic() < deadline

    # -- the API -------------------------------------------------------------
    def ping(self) -> str:
        """The server's version; raises InfluxConnectionError when it cannot be reached."""
        response = self.request("GET", "ping")
        _raise_for_status(response)
        return response.headers.get("X-Influxdb-Version", "")

    def write(
        self,
        body: bytes | str,
        *,
        database: str,
        retention_policy: str | None = None,
        precision: str = "n",
    ) -> None:
        """POST line protocol. A 413 (body too large) is split at line boundaries and retried."""
        if isinstance(body, str):
            body = body.encode("utf-8")
        if not body:
            return
        params = {"db": database, "precision": precision}
        if retention_policy:
            params["rp"] = retention_policy
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        data = body
        if self.settings.gzip:
            data = gzip_module.compress(body, compresslevel=1)
            headers["Content-Encoding"] = "gzip"
        response = self.request("POST", "write", params=params, data=data, headers=headers)
        if response.status_code == 204:
            return
        if response.status_code == 413:
            lines = body.split(b"\n")
            if len(lines) <= 1:
                raise PartialWriteError(
                    "InfluxDB refused a single point as too large (max-body-size)",
                    dropped=1,
                    reason="request entity too large",
                    status=413,
                )
            half = len(lines) // 2
            self.write(b"\n".join(lines[:half]), database=database, retention_policy=retention_policy)
            self.write(b"\n".join(lines[half:]), database=database, retention_policy=retention_policy)
            return
        message = _error_text(response)
        if "partial write" in message or "max-values-per-tag" in message or "field type conflict" in message:
            match = _DROPPED.search(message)
            dropped = int(match.group(1)) if match else None
            raise PartialWriteError(
                f"InfluxDB dropped {dropped if dropped is not None else 'some'} point(s): {message}",
                dropped=dropped,
                reason=message,
                status=response.status_code,
            )
        if response.status_code == 404 and "database not found" in message:
            from .errors import NotFound

            raise NotFound(f"database {database!r} not found: {message}")
        _raise_for_status(response)

    def query(
        self,
        text: str,
        *,
        params: Mapping[str, Any] | None = None,
        database: str | None = None,
        method: str = "GET",
        epoch: str = "ns",
    ) -> list[dict[str, Any]]:
        """Run InfluxQL; returns one result dict per statement. Errors raise QueryError."""
        request_params = self._query_params(text, params, database, epoch)
        response = self.request(
            method, "query", params=request_params, headers={"Accept": "application/x-msgpack"}
        )
        _raise_for_status(response)
        body = _decode(response)
        return _check_results(body, text)

    def query_chunks(
        self,
        text: str,
        *,
        params: Mapping[str, Any] | None = None,
        database: str | None = None,
        chunk_size: int = 10_000,
        epoch: str = "ns",
    ) -> Iterator[dict[str, Any]]:
        """Stream a large answer: yields each partial statement result as it arrives."""
        request_params = self._query_params(text, params, database, epoch)
        request_params["chunked"] = "true"
        request_params["chunk_size"] = str(chunk_size)
        response = self.request(
            "GET", "query", params=request_params, headers={"Accept": "application/x-msgpack"}, stream=True
        )
        with response:
            _raise_for_status(response)
            if response.headers.get("Content-Type", "").startswith("application/x-msgpack"):
                unpacker = msgpack.Unpacker(raw=False, strict_map_key=False)
                for block in response.iter_content(chunk_size=1 << 16):
                    unpacker.feed(block)
                    for body in unpacker:
                        yield from _check_results(body, text)
            else:
                for line in response.iter_lines():
                    if line:
                        yield from _check_results(json.loads(line), text)

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


def _decode(response: requests.Response) -> Any:
    if response.headers.get("Content-Type", "").startswith("application/x-msgpack"):
        return msgpack.unpackb(response.content, raw=False, strict_map_key=False)
    return response.json()


def _error_text(response: requests.Response) -> str:
    try:
        body = _decode(response)
        if isinstance(body, dict) and "error" in body:
            return str(body["error"])
    except Exception:  # noqa: BLE001 - any undecodable body is reported as text
        pass
    return response.text.strip() or f"HTTP {response.status_code}"


def _raise_for_status(response: requests.Response) -> None:
    status = response.status_code
    if status < 300:
        return
    message = _error_text(response)
    if status in (401, 403):
        raise AuthenticationError(f"InfluxDB refused the credentials (HTTP {status}): {message}")
    raise ServerError(f"InfluxDB answered HTTP {status}: {message}", status=status)


def _check_results(body: Any, text: str) -> list[dict[str, Any]]:
    if "error" in body:
        raise QueryError(f"InfluxDB refused the query: {body['error']} (query: {text})")
    results: Sequence[dict[str, Any]] = body.get("results", [])
    for result in results:
        if "error" in result:
            raise QueryError(f"InfluxDB failed the query: {result['error']} (query: {text})")
    return list(results)
