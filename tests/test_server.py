"""The managed local influxd: start, ping, write/query, stop, cycles, persistence, install hint."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import requests
from influxdb import InfluxDBClient

from influxhtm.core.errors import InfluxdNotFound, ServerStartError
from influxhtm.tools.server import LocalInfluxd


def influxd_children() -> list[int]:
    """PIDs of influxd processes whose parent is this test process."""
    out = subprocess.run(["ps", "-eo", "pid,ppid,comm"], capture_output=True, text=True).stdout
    me = os.getpid()
    return [
        int(p)
        for p, pp, c in (line.split(None, 2) for line in out.splitlines()[1:])
        if int(pp) == me and c.strip() == "influxd"
    ]


def test_start_ping_write_query_stop():
    with LocalInfluxd() as server:
        assert server.host == "127.0.0.1" and server.url == f"http://127.0.0.1:{server.port}"
        assert server.pid and server.running
        assert requests.get(f"{server.url}/ping", timeout=5).status_code == 204
        client = InfluxDBClient(server.host, server.port, database="smoke")
        client.create_database("smoke")
        client.write_points(
            [
                {
                    "measurement": "power",
                    "tags": {"component": "c"},
                    "fields": {"value": 2.5},
                    "time": 1_000_000_000,
                }
            ],
            time_precision="n",
        )
        points = list(client.query("SELECT * FROM power").get_points())
        assert points[0]["value"] == 2.5 and points[0]["component"] == "c"
        data_dir = server.data_dir
        assert data_dir is not None and data_dir.exists()
        pid = server.pid
    assert not server.running and server.pid is None
    assert not data_dir.exists()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def listening_addresses(pid: int) -> list[str]:
    """Local addresses of the TCP sockets a process listens on, read from /proc."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        target = os.readlink(fd)
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            cols = line.split()
            if cols[3] == "0A" and cols[9] in inodes:  # 0A = LISTEN
                host, port = cols[1].split(":")
                if len(host) == 8:
                    host = ".".join(str(int(host[i : i + 2], 16)) for i in (6, 4, 2, 0))
                found.append(f"{host}:{int(port, 16)}")
    return found


def test_config_binds_every_listener_to_loopback():
    with LocalInfluxd() as server:
        addresses = listening_addresses(server.pid)
        assert f"127.0.0.1:{server.port}" in addresses
        assert len(addresses) >= 2  # HTTP and the RPC bind address
        assert all(a.startswith("127.0.0.1:") for a in addresses), addresses


def test_twenty_cycles_leave_nothing_behind():
    before = set(influxd_children())  # e.g. the session's own server, started by other tests
    dirs = []
    for _ in range(20):
        server = LocalInfluxd()
        server.start()
        assert requests.get(f"{server.url}/ping", timeout=5).status_code == 204
        dirs.append(server.log_path.parent)
        server.stop()
    assert set(influxd_children()) == before
    assert not any(d.exists() for d in dirs)


def test_two_servers_at_once_get_different_ports():
    with LocalInfluxd() as a, LocalInfluxd() as b:
        assert a.port != b.port
        assert requests.get(f"{a.url}/ping", timeout=5).status_code == 204
        assert requests.get(f"{b.url}/ping", timeout=5).status_code == 204


def test_persistent_data_dir_keeps_data_across_restart(tmp_path):
    data = tmp_path / "influx"
    with LocalInfluxd(data) as server:
        client = InfluxDBClient(server.host, server.port, database="keep")
        client.create_database("keep")
        client.write_points([{"measurement": "m", "fields": {"v": 7.0}, "time": 5}], time_precision="n")
    assert data.exists() and any(data.iterdir())
    with LocalInfluxd(data) as server:
        client = InfluxDBClient(server.host, server.port, database="keep")
        assert [p["v"] for p in client.query("SELECT v FROM m").get_points()] == [7.0]


def test_restart_keeps_data_of_a_temporary_server():
    with LocalInfluxd() as server:
        client = InfluxDBClient(server.host, server.port, database="r")
        client.create_database("r")
        client.write_points([{"measurement": "m", "fields": {"v": 1.0}, "time": 5}], time_precision="n")
        server.kill()
        assert not server.running
        server.restart()
        client = InfluxDBClient(server.host, server.port, database="r")
        assert [p["v"] for p in client.query("SELECT v FROM m").get_points()] == [1.0]


def test_missing_binary_gives_install_hint(tmp_path, monkeypatch):
    monkeypatch.delenv("INFLUXD", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(InfluxdNotFound) as info:
        LocalInfluxd()
    message = str(info.value)
    assert "apt-get install" in message and "influxdb" in message and "INFLUX_HOST" in message


def test_explicit_binary_path_that_does_not_exist(tmp_path):
    with pytest.raises(InfluxdNotFound, match="nope"):
        LocalInfluxd(binary=tmp_path / "nope")


def test_failed_start_reports_log_tail(tmp_path):
    fake = tmp_path / "influxd"
    fake.write_text("#!/bin/sh\necho 'boom: cannot open meta dir' >&2\nexit 3\n")
    fake.chmod(0o755)
    with pytest.raises(ServerStartError, match="boom: cannot open meta dir"):
        LocalInfluxd(binary=fake).start()


def test_interpreter_exit_reaps_the_server(tmp_path):
    code = textwrap.dedent(
        """
        from influxhtm.tools.server import LocalInfluxd
        s = LocalInfluxd().start()
        print(s.pid, s.log_path.parent, flush=True)
        raise SystemExit(0)  # no stop(): atexit must do it
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    pid, workdir = out.stdout.split()
    time.sleep(0.2)
    with pytest.raises(ProcessLookupError):
        os.kill(int(pid), 0)
    assert not Path(workdir).exists()


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.parametrize("started_with", ["SIGINT default", "SIGINT ignored"])
def test_cli_server_runs_until_interrupted(started_with):
    # A shell starts a background job with SIGINT ignored, and Python then installs no
    # KeyboardInterrupt handler: Ctrl-C must still stop the server.
    process = subprocess.Popen(
        [sys.executable, "-m", "influxhtm.cli", "server"],
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=_ignore_sigint if started_with == "SIGINT ignored" else None,
    )
    try:
        line = process.stdout.readline()
        assert line.startswith("influxd running at http://127.0.0.1:"), line
        url = line.split()[3]
        assert requests.get(f"{url}/ping", timeout=5).status_code == 204
        process.send_signal(2)
        assert process.wait(30) == 0
        with pytest.raises(requests.ConnectionError):
            requests.get(f"{url}/ping", timeout=2)
    finally:
        process.kill()


def test_cli_version():
    out = subprocess.run([sys.executable, "-m", "influxhtm.cli", "--version"], capture_output=True, text=True)
    import influxhtm

    assert out.returncode == 0 and influxhtm.__version__ in out.stdout


def test_pytest_fixture_gives_fresh_database(influx_client):
    assert list(influx_client.query("SHOW MEASUREMENTS").get_points()) == []
    influx_client.write_points([{"measurement": "m", "fields": {"v": 1.0}}])
    assert len(list(influx_client.query("SELECT * FROM m").get_points())) == 1


def test_a_port_in_use_is_refused():
    with LocalInfluxd() as server:
        with pytest.raises(ServerStartError, match=f"port {server.port}"):
            LocalInfluxd(port=server.port).start()


def test_a_forgotten_owner_leaves_no_server():
    code = textwrap.dedent(
        """
        import gc
        from influxhtm.tools.server import LocalInfluxd
        s = LocalInfluxd().start()
        print(s.pid, s.log_path.parent, flush=True)
        del s
        gc.collect()
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    pid, workdir = out.stdout.split()
    time.sleep(0.2)
    with pytest.raises(ProcessLookupError):
        os.kill(int(pid), 0)
    assert not Path(workdir).exists()
    # A SIGTERM'd, SIGHUP'd or SIGKILL'd owner: tests/reliability/test_processes.py.
