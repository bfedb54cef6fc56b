"""A managed local `influxd`: the real server for tests, benchmarks and the demo.

`LocalInfluxd` writes its own configuration with every listener on 127.0.0.1 and
free ports, keeps its data in a temporary directory (removed on stop) or in a
directory you name (kept), waits for `/ping`, and always reaps the process, also
when the interpreter exits.

It leaves the process's signal handling alone. Its life is tied to its owner:
influxd is started with ``PR_SET_PDEATHSIG`` (Linux), so when the Python process
dies (SIGKILL, SIGTERM, SIGHUP, a crash) influxd is killed too, and the next
`LocalInfluxd` removes temporary directories whose owner is gone (each is marked
with its owner's pid and start time). A start that fails leaves no directory and
no open file.
"""

from __future__ import annotations

import atexit
import functools
import os
import queue
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Mapping

from influxhtm.core.errors import InfluxdNotFound, ServerStartError
from influxhtm.core.processes import die_with_parent, owner_is_gone, owner_mark

INSTALL_HINT = (
    "influxd (InfluxDB 1.x) is not installed: on Debian/Ubuntu run `apt-get install -y influxdb` "
    "(as root, after `apt-get update`), or set INFLUXD to the binary's path, "
    "or set INFLUX_HOST to use an existing server instead"
)

#: Every started server, held strongly: a server forgotten by its owner still stops at exit.
_RUNNING: "set[LocalInfluxd]" = set()
_PORT_LOCK = threading.Lock()
_HANDED_OUT: set[int] = set()
#: Temporary directories of managed servers: ``<tmp>/influxhtm-influxd-*``, each with an OWNER_FILE.
WORKDIR_PREFIX = "influxhtm-influxd-"
OWNER_FILE = "owner"


def find_influxd(path: str | os.PathLike[str] | None = None) -> str:
    """The `influxd` binary: the explicit path, else `$INFLUXD`, else the one on PATH."""
    candidate = str(path) if path else os.environ.get("INFLUXD") or shutil.which("influxd")
    if not candidate or not (os.path.isfile(candidate) and os.access(candidate, os.X_OK)):
        where = f" (looked for {candidate!r})" if candidate else ""
        raise InfluxdNotFound(INSTALL_HINT + where)
    return candidate


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now and that this process has not handed out."""
    with _PORT_LOCK:
        for _ in range(100):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.bind(("127.0.0.1", 0))
                port = sock.getsockname()[1]
            if port not in _HANDED_OUT:
                _HANDED_OUT.add(port)
                return port
    raise ServerStartError("no free TCP port found on 127.0.0.1")


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


class LocalInfluxd:
    """A real `influxd` on loopback, as a context manager.

    `config` adds or overrides settings per section, e.g.
    ``{"http": {"auth-enabled": True, "max-body-size": 4096}}``.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str] | None = None,
        *,
        port: int | None = None,
        binary: str | os.PathLike[str] | None = None,
        config: Mapping[str, Mapping[str, Any]] | None = None,
        startup_timeout: float = 30.0,
        stop_timeout: float = 10.0,
    ):
        self.binary = find_influxd(binary)
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.persistent = data_dir is not None
        self._requested_dir = Path(data_dir) if data_dir is not None else None
        self.data_dir: Path | None = None
        self.extra_config = {k: dict(v) for k, v in (config or {}).items()}
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.process: subprocess.Popen[bytes] | None = None
        self._workdir: Path | None = None
        self._log: Any = None
        self._owner_pid = os.getpid()

    # -- what a client needs -------------------------------------------------
    @property
    def ssl(self) -> bool:
        return bool(self.extra_config.get("http", {}).get("https-enabled", False))

    @property
    def url(self) -> str:
        return f"{'https' if self.ssl else 'http'}://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    @property
    def log_path(self) -> Path | None:
        return self._workdir / "influxd.log" if self._workdir else None

    def __repr__(self) -> str:
        state = f"pid={self.pid}" if self.running else "stopped"
        return f"<LocalInfluxd {self.url} {state} data_dir={str(self.data_dir)!r}>"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    # -- lifecycle -----------------------------------------------------------
    def start(self) -> "LocalInfluxd":
        """Start the server and wait until it answers `/ping`; a failed start leaves nothing behind."""
        if self.running:
            return self
        if not _port_is_free(self.port):
            raise ServerStartError(f"port {self.port} on 127.0.0.1 is in use: choose another, or port=None")
        remove_stale_workdirs()
        created = self._requested_dir is not None and not self._requested_dir.exists()
        try:
            self._launch()
            self._wait_ready()
        except BaseException:
            self.stop()
            if created:
                assert self._requested_dir is not None
                shutil.rmtree(self._requested_dir, ignore_errors=True)
            raise
        return self

    def _launch(self) -> None:
        """Write the configuration and start influxd, tied to this process (see `_LAUNCHER`)."""
        self._owner_pid = os.getpid()
        if self._workdir is None:
            self._workdir = Path(tempfile.mkdtemp(prefix=WORKDIR_PREFIX))
            (self._workdir / OWNER_FILE).write_text(owner_mark() + "\n")
        if self._requested_dir is not None:
            self.data_dir = self._requested_dir
            self.data_dir.mkdir(parents=True, exist_ok=True)
        else:
            self.data_dir = self._workdir / "data"
        config_path = self._workdir / "influxd.conf"
        config_path.write_text(self._config_text())
        self._log = open(self._workdir / "influxd.log", "ab")
        env = {k: v for k, v in os.environ.items() if not k.startswith("INFLUXDB_")}
        try:
            self.process = _LAUNCHER.popen(
                [self.binary, "-config", str(config_path)],
                stdout=self._log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,  # Ctrl-C in a terminal reaches us, and we stop it in order
                preexec_fn=functools.partial(die_with_parent, os.getpid()),
            )
        except OSError as error:  # e.g. a script whose interpreter does not exist
            raise ServerStartError(f"cannot run {self.binary}: {error}") from error
        _RUNNING.add(self)

    def _config_text(self) -> str:
        assert self.data_dir is not None
        rpc_port = free_port()
        sections: dict[str, dict[str, Any]] = {
            "": {"reporting-disabled": True, "bind-address": f"127.0.0.1:{rpc_port}"},
            "meta": {"dir": str(self.data_dir / "meta"), "logging-enabled": False},
            "data": {
                "dir": str(self.data_dir / "data"),
                "wal-dir": str(self.data_dir / "wal"),
                "query-log-enabled": False,
                "cache-snapshot-write-cold-duration": "10s",
            },
            "coordinator": {"log-queries-after": "0s"},
            "http": {
                "enabled": True,
                "bind-address": f"127.0.0.1:{self.port}",
                "log-enabled": False,
                "auth-enabled": False,
            },
            "monitor": {"store-enabled": False},
            "continuous_queries": {"log-enabled": False},
            "subscriber": {"enabled": True},
            "logging": {"level": "warn"},
        }
        for section, values in self.extra_config.items():
            sections.setdefault(section, {}).update(values)
        lines: list[str] = []
        for key, value in sections[""].items():
            lines.append(f"{key} = {_toml_value(value)}")
        for section, values in sections.items():
            if section == "":
                continue
            lines.append(f"\n[{section}]")
            lines.extend(f"  {key} = {_toml_value(value)}" for key, value in values.items())
        return "\n".join(lines) + "\n"

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        ping = f"{self.url}/ping"
        context = None
        if self.ssl:
            import ssl as ssl_module

            context = ssl_module._create_unverified_context()
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                code = self.process.returncode if self.process else None
                raise ServerStartError(f"influxd exited with code {code} while starting:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(ping, timeout=1.0, context=context) as answer:
                    if answer.status == 204:
                        return
            except urllib.error.HTTPError as error:
                if error.code in (204, 401):
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise ServerStartError(
            f"influxd did not answer {ping} within {self.startup_timeout:.0f} s:\n{self.log_tail()}"
        )

    def log_tail(self, lines: int = 30) -> str:
        """The last lines the server wrote, for error messages."""
        if self.log_path is None or not self.log_path.exists():
            return "(no log)"
        if self._log is not None:
            self._log.flush()
        text = self.log_path.read_bytes().decode("utf-8", "replace")
        return "\n".join(text.splitlines()[-lines:])

    def kill(self) -> None:
        """Kill the server at once (SIGKILL), keeping its data, as a crash would."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def _stop_process(self) -> None:
        """SIGTERM, then SIGKILL after the grace period, and reap; files stay."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def stop(self) -> None:
        """Stop the server and remove its temporary files (a persistent data directory is kept)."""
        self._stop_process()
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None
        _RUNNING.discard(self)

    def restart(self, delay: float = 0.0) -> None:
        """Stop (or, after `kill`, just reap) and start again on the same port and data."""
        self._stop_process()
        if delay:
            time.sleep(delay)
        self.start()

    def __enter__(self) -> "LocalInfluxd":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _port_is_free(port: int) -> bool:
    """True when nothing listens on the port (connections lingering in TIME_WAIT do not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as influxd itself binds
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def remove_stale_workdirs() -> list[Path]:
    """Remove the temporary directories of managed servers whose owner process is gone; returns them.

    A directory without an owner mark (being made right now, or from an older
    version) is left alone.
    """
    removed = []
    for path in Path(tempfile.gettempdir()).glob(WORKDIR_PREFIX + "*"):
        try:
            mark = (path / OWNER_FILE).read_text()
            gone = owner_is_gone(mark)
        except (OSError, ValueError):
            continue
        if gone:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


class _Launcher:
    """Starts every influxd from one long-lived thread.

    ``PR_SET_PDEATHSIG`` fires when the *thread* that forked the child ends, not
    the process: a server started from a short-lived thread would be killed when
    that thread returns. This daemon thread lives as long as the process.
    """

    def __init__(self) -> None:
        self._reset()
        os.register_at_fork(after_in_child=self._reset)  # a forked child starts its own thread

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._jobs: queue.SimpleQueue[tuple[list[str], dict[str, Any], Future[Any]]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def popen(self, args: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        """`subprocess.Popen(args, **kwargs)`, run on the launcher thread."""
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._serve, name="influxhtm-launcher", daemon=True)
                self._thread.start()
        future: Future[subprocess.Popen[bytes]] = Future()
        self._jobs.put((args, kwargs, future))
        try:
            return future.result()
        except BaseException:  # interrupted while waiting: a process started anyway is killed
            future.add_done_callback(_kill_started)
            raise

    def _serve(self) -> None:
        while True:
            args, kwargs, future = self._jobs.get()
            try:
                future.set_result(subprocess.Popen(args, **kwargs))
            except BaseException as error:  # noqa: BLE001 - handed to the caller
                future.set_exception(error)


def _kill_started(future: "Future[subprocess.Popen[bytes]]") -> None:
    if future.exception() is None:
        future.result().kill()


_LAUNCHER = _Launcher()


@atexit.register
def _stop_all() -> None:
    """Stop the servers this process started (not those of a parent that forked it)."""
    for server in list(_RUNNING):
        if server._owner_pid == os.getpid():
            server.stop()
