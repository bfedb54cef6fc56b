"""Fixtures of the reliability suite, and the reliability report printed at the end of the run.

Every scenario records one row with `reliability_report(...)`: the faults it
injected, the points it wrote and read back, the points the server refused
(and influxhtm reported), and the points lost or duplicated. The table is
printed by `pytest_terminal_summary` below.

Scenarios still to come record their rows the same way; the "live run under
restart" scenario (issue 9, item 3, owned by whoever builds the Runner) belongs
here too: kill the managed influxd during `Runner.live(...)`, restart it, and
call `reliability_report(scenario="live run under restart", ...)`.
"""

from __future__ import annotations

import http.client
import socket
import struct
import subprocess
import threading
import time
from contextlib import AbstractContextManager, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import attrs
import pytest


# -- the report ---------------------------------------------------------------
@attrs.frozen
class ReportRow:
    scenario: str
    faults: str
    written: int
    read_back: int
    refused: int
    lost: int
    duplicated: int


REPORT: list[ReportRow] = []


@pytest.fixture
def reliability_report() -> Callable[..., ReportRow]:
    """Record one row of the reliability report: `reliability_report(scenario=..., faults=..., ...)`."""

    def record(
        *,
        scenario: str,
        faults: str,
        written: int,
        read_back: int,
        lost: int,
        duplicated: int,
        refused: int = 0,
    ) -> ReportRow:
        row = ReportRow(scenario, faults, written, read_back, refused, lost, duplicated)
        REPORT.append(row)
        return row

    return record


def render_report(rows: list[ReportRow]) -> list[str]:
    """The report as text lines: one table row per scenario, then the totals."""
    header = ("scenario", "faults injected", "written", "read back", "refused", "lost", "duplicated")
    table = [header] + [
        (r.scenario, r.faults, *(str(n) for n in (r.written, r.read_back, r.refused, r.lost, r.duplicated)))
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = []
    for n, row in enumerate(table):
        lines.append(" | ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
        if n == 0:
            lines.append("-+-".join("-" * width for width in widths))
    lines.append(
        f"total: {len(rows)} scenario(s), {sum(r.written for r in rows)} written, "
        f"{sum(r.read_back for r in rows)} read back, {sum(r.refused for r in rows)} refused and reported, "
        f"{sum(r.lost for r in rows)} lost, {sum(r.duplicated for r in rows)} duplicated"
    )
    return lines


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not REPORT:
        return
    terminalreporter.section("influxhtm reliability report")
    for line in render_report(REPORT):
        terminalreporter.write_line(line)


@pytest.fixture
def report_renderer() -> Callable[[list[ReportRow]], list[str]]:
    """`render_report`, and the row class, for testing the report itself."""
    return render_report


@pytest.fixture
def report_row() -> type[ReportRow]:
    return ReportRow


# -- comparing what was written with what is stored ---------------------------
Key = tuple[Any, ...]


def tally(expected: dict[Key, Any], stored: Iterable[tuple[Key, Any]]) -> tuple[int, int, int]:
    """(read back, lost, duplicated): lost = expected keys missing or with another value;
    duplicated = rows beyond one per expected key (a repeated key, or one never written)."""
    seen: dict[Key, Any] = {}
    read_back = duplicated = 0
    for key, value in stored:
        read_back += 1
        if key in seen or key not in expected:
            duplicated += 1
            continue
        seen[key] = value
    lost = sum(1 for key, value in expected.items() if key not in seen or seen[key] != value)
    return read_back, lost, duplicated


def stored_points(
    connection: Any, text: str, database: str, tag: str | None = None
) -> Iterator[tuple[Key, Any]]:
    """((tag value, time), value) of every row of a one-field query, streamed in chunks."""
    for result in connection.query_chunks(text, database=database, chunk_size=50_000):
        for series in result.get("series", []):
            tag_value = series.get("tags", {}).get(tag) if tag else series["name"]
            for time_ns, value in series["values"]:
                yield (tag_value, time_ns), value


# -- a fake server for faults a real influxd cannot be made to produce --------
class FlakyProxy:
    """An HTTP server on loopback that answers the first requests with scripted faults, then
    forwards every request to a real InfluxDB.

    A real influxd cannot be made to answer 503 on demand, to answer late, or to reset a
    connection in the middle of one request and then work again, so these faults are
    injected here; everything that is not a fault is answered by the real server, so the
    data a test writes through the proxy really lands and can be counted.

    Script items: an HTTP status (503, 500, ...), "reset" (close with a TCP RST, no answer),
    ("slow", seconds) (forward, but answer only after that delay) or "pass".
    `always` is what follows the script (default "pass").
    """

    def __init__(self, target_host: str, target_port: int, script: Iterable[Any] = (), always: Any = "pass"):
        self.target = (target_host, target_port)
        self.script = list(script)
        self.always = always
        self.seen: list[Any] = []
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

            def do_GET(self) -> None:
                proxy.handle(self)

            do_POST = do_GET

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.host = "127.0.0.1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def next_action(self) -> Any:
        with self.lock:
            action = self.script.pop(0) if self.script else self.always
            self.seen.append(action)
            return action

    @property
    def faults_injected(self) -> int:
        return sum(1 for action in self.seen if action != "pass")

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length) if length else b""
        action = self.next_action()
        if action == "reset":
            request.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            request.close_connection = True
            request.connection.close()
            return
        if isinstance(action, int):
            payload = b'{"error":"injected fault: service unavailable"}'
            request.send_response(action)
            request.send_header("Content-Type", "application/json")
            request.send_header("Content-Length", str(len(payload)))
            request.end_headers()
            request.wfile.write(payload)
            return
        status, headers, answer = self.forward(request, body)
        if isinstance(action, tuple) and action[0] == "slow":
            time.sleep(action[1])
        try:
            request.send_response(status)
            for name, value in headers:
                request.send_header(name, value)
            request.send_header("Content-Length", str(len(answer)))
            request.end_headers()
            request.wfile.write(answer)
        except OSError:  # the client gave up waiting (timeout), as intended
            request.close_connection = True

    def forward(
        self, request: BaseHTTPRequestHandler, body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        connection = http.client.HTTPConnection(*self.target, timeout=30)
        try:
            keep = ("Content-Type", "Content-Encoding", "Authorization", "Accept", "Accept-Encoding")
            headers = {name: request.headers[name] for name in keep if request.headers.get(name)}
            connection.request(request.command, request.path, body=body or None, headers=headers)
            response = connection.getresponse()
            answer = response.read()
            passed = [
                (name, value)
                for name, value in response.getheaders()
                if name.lower() in ("content-type", "content-encoding", "x-influxdb-version")
            ]
            return response.status, passed, answer
        finally:
            connection.close()

    def __enter__(self) -> "FlakyProxy":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


# -- certificates --------------------------------------------------------------
@attrs.frozen
class TlsFiles:
    certificate: Path
    private_key: Path


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """A self-signed certificate for 127.0.0.1 (subjectAltName IP), made with the openssl CLI."""
    folder = tmp_path_factory.mktemp("tls")
    certificate, key = folder / "cert.pem", folder / "key.pem"
    try:
        subprocess.run(
            [
                "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", "2",
                "-keyout", str(key), "-out", str(certificate),
                "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
            ],
            check=True,
            capture_output=True,
        )
    except FileNotFoundError:
        pytest.fail("the openssl command is needed to make a test certificate (apt-get install openssl)")
    return TlsFiles(certificate, key)


# -- servers with authentication ------------------------------------------------
@contextmanager
def auth_server(admin_password: str, **http: Any) -> Iterator[Any]:
    """A managed influxd with ``auth-enabled`` (and the other `http` settings given) and a user
    ``admin`` with all privileges and `admin_password`: with auth on and no user yet, InfluxDB lets
    anyone create the first admin."""
    from influxhtm.io.connection import Connection
    from influxhtm.io.settings import Settings
    from influxhtm.tools.server import LocalInfluxd

    with LocalInfluxd(config={"http": {"auth-enabled": True, **http}}) as server:
        with Connection(Settings(host=server.host, port=server.port)) as anonymous:
            anonymous.query("CREATE USER admin WITH PASSWORD $pw WITH ALL PRIVILEGES",
                            params={"pw": admin_password})
        yield server


# -- the helpers above, as fixtures (tests import nothing from conftest) -------
@pytest.fixture(scope="session")
def auth_server_with_admin() -> Callable[..., AbstractContextManager[Any]]:
    """`auth_server`: ``with auth_server_with_admin(PASSWORD, **http) as server:`` (module fixtures)."""
    return auth_server


@pytest.fixture
def flaky_proxy() -> Iterator[Callable[..., FlakyProxy]]:
    """Start a `FlakyProxy` in front of a server: `flaky_proxy(host, port, script=[503, 503])`."""
    started: list[FlakyProxy] = []

    def start(host: str, port: int, script: Iterable[Any] = (), always: Any = "pass") -> FlakyProxy:
        proxy = FlakyProxy(host, port, script, always).__enter__()
        started.append(proxy)
        return proxy

    yield start
    for proxy in started:
        proxy.__exit__(None, None, None)


@pytest.fixture
def compare() -> Callable[[dict[Key, Any], Iterable[tuple[Key, Any]]], tuple[int, int, int]]:
    """`tally`: (read back, lost, duplicated) of the stored rows against the expected ones."""
    return tally


@pytest.fixture
def report_read_back(reliability_report: Callable[..., ReportRow]) -> Callable[..., tuple[int, int, int]]:
    """Tally the stored rows against the expected ones (`tally`), record the scenario's report row, and
    return (read back, lost, duplicated) for the test to assert on. `written` defaults to the expected
    count; `refused`, to 0."""

    def record(
        *,
        scenario: str,
        faults: str,
        expected: dict[Key, Any],
        stored: Iterable[tuple[Key, Any]],
        written: int | None = None,
        refused: int = 0,
    ) -> tuple[int, int, int]:
        read_back, lost, duplicated = tally(expected, stored)
        reliability_report(
            scenario=scenario, faults=faults, written=len(expected) if written is None else written,
            read_back=read_back, refused=refused, lost=lost, duplicated=duplicated,
        )
        return read_back, lost, duplicated

    return record


@pytest.fixture
def read_points() -> Callable[..., Iterator[tuple[Key, Any]]]:
    """`stored_points`: ((tag value, time), value) of every row of a one-field query."""
    return stored_points
