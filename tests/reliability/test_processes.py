"""What survives what: crashing models in a sweep, signals to the owner of a managed influxd, failed starts.

Real processes, real signals, a real influxd:

- a sweep where one model ends its own process (``os._exit(3)``, ``SIGSEGV``):
  only its row fails, with the cause; the other runs' results are all stored
  (default pool, a Dask cluster of worker processes);
- a worker killed (SIGKILL) while it runs a model (a user's process pool, a Dask
  worker): the run is done again and every result is stored;
- SIGTERM, SIGHUP, SIGKILL to a Python process that owns a `LocalInfluxd`: the
  process ends as that signal ends it, influxd with it, and the next
  `LocalInfluxd` removes the stale directory;
- an influxd that cannot start leaves no directory and no open file.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from influxhtm.core.errors import ServerStartError
from influxhtm.running import sweep
from influxhtm.tools.server import LocalInfluxd, remove_stale_workdirs

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2024, 5, 1, tzinfo=UTC)
POINTS = 60


# -- engines (importable by name, so they reach Dask's worker processes) -------
class Scaled:
    def __init__(self, factor: float):
        self.factor = factor

    def run(self, point):
        return {"anomaly_score": point.value * self.factor}


class Crashing:
    """Ends its own process at the first point, as a crash in a C++ engine would."""

    def __init__(self, how: str):
        self.how = how

    def run(self, point):
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # no core file
        if self.how == "exit":
            os._exit(3)
        os.kill(os.getpid(), signal.SIGSEGV)
        time.sleep(10)


class Stalling(Scaled):
    """On its first attempt: writes its pid and its parent's in `marker` (the worker is one of them), then
    waits to be killed; on the next attempt (the marker exists) it scores like `Scaled`."""

    def __init__(self, factor: float, marker: str):
        super().__init__(factor)
        self.marker = Path(marker)

    def run(self, point):
        if not self.marker.exists():
            partial = self.marker.with_suffix(".partial")
            partial.write_text(f"{os.getpid()} {os.getppid()}")
            partial.rename(self.marker)
            time.sleep(60)
            raise RuntimeError("the worker was not killed")
        return super().run(point)


class Doomed:
    """Every attempt: leaves a file ``<pid> <worker pid>`` in `starts`, then waits for its worker's end."""

    def __init__(self, starts: str):
        self.starts = Path(starts)

    def run(self, point):
        partial = self.starts / f"{os.getpid()}.partial"
        partial.write_text(f"{os.getpid()} {os.getppid()}")
        partial.rename(partial.with_suffix(".start"))
        time.sleep(60)
        raise RuntimeError("the worker was not killed")


def engine(factor: float, crash: str | None = None, stall: str | None = None, doomed: str | None = None):
    if doomed:
        return Doomed(doomed)
    if crash:
        return Crashing(crash)
    if stall:
        return Stalling(factor, stall)
    return Scaled(factor)


# -- helpers --------------------------------------------------------------------
def make_sensor(client, name="press"):
    sensor = client.create_sensor("power", name)
    sensor.write([{"time": T0 + timedelta(minutes=i), "value": float(i % 9)} for i in range(POINTS)])
    return sensor


def stored_results(sensor, table, reliability_report, *, scenario: str, faults: str):
    """(expected, read back, lost, duplicated) over the rows that succeeded, each result checked; recorded
    as the scenario's report row."""
    values = {p.time: p.value for p in sensor.get_data()}
    expected = read_back = lost = duplicated = 0
    for _, row in table[table["error"].isna()].iterrows():
        results = sensor.get_htm_model(row["model_id"]).get_results()
        expected += POINTS
        read_back += len(results)
        times = [r.time for r in results]
        duplicated += len(times) - len(set(times))
        good = {r.time for r in results if r.anomaly_score == values[r.time] * row["params"]["factor"]}
        lost += POINTS - len(good)
    reliability_report(scenario=scenario, faults=faults, written=expected, read_back=read_back, lost=lost,
                       duplicated=duplicated)  # fmt: skip
    return expected, read_back, lost, duplicated


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[1])


def kill_when_marked(marker: Path, is_worker) -> list[int]:
    """In a thread: wait for `marker`, then SIGKILL the worker it names. Returns the list the pid lands in."""
    killed: list[int] = []

    def watch():
        deadline = time.monotonic() + 60
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        if marker.exists():
            pid = next(int(p) for p in marker.read_text().split() if is_worker(int(p)))
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    threading.Thread(target=watch, daemon=True).start()
    return killed


def is_gone(pid: int, within: float = 10.0) -> bool:
    """True once the process has ended (gone, or a zombie nobody reaps), waiting up to `within` s."""
    deadline = time.monotonic() + within
    while True:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
        except OSError:
            return True
        if state in ("Z", "X"):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


# -- item 1: a crashing model fails its own row only -----------------------------
@pytest.mark.parametrize(("how", "cause"), [("exit", "exit code 3"), ("segv", "killed by signal SIGSEGV")])
def test_a_model_that_ends_its_process_fails_only_its_own_row(client, how, cause, reliability_report):
    sensor = make_sensor(client)
    grid = [{"factor": 1.0}, {"factor": 2.0, "crash": how}, {"factor": 3.0}, {"factor": 0.5}]
    table = sweep(sensor, grid, engine)
    failed = table[table["error"].notna()]
    assert failed["params"].tolist() == [{"factor": 2.0, "crash": how}], table["error"].tolist()
    assert failed["error"].iloc[0] == (
        f"ProcessDied: worker process died: {cause} (run twice: it died both times)"
    )
    expected, read_back, lost, duplicated = stored_results(
        sensor, table, reliability_report,
        scenario=f"sweep, one model ends its process ({how})",
        faults=f"{cause} in 1 of 4 runs (default pool): that row fails with the cause",
    )
    assert (expected, read_back, lost, duplicated) == (3 * POINTS, 3 * POINTS, 0, 0)


def test_a_killed_process_pool_worker_is_replaced(client, tmp_path, reliability_report):
    sensor = make_sensor(client)
    marker = tmp_path / "worker.pid"
    grid = [{"factor": 1.0}, {"factor": 2.0, "stall": str(marker)}, {"factor": 3.0}, {"factor": 4.0}]
    killed = kill_when_marked(marker, lambda pid: parent_of(pid) == os.getpid())
    with ProcessPoolExecutor(2) as pool:
        table = sweep(sensor, grid, engine, executor=pool)
    assert len(killed) == 1 and is_gone(killed[0])
    assert table["error"].isna().all(), table["error"].tolist()
    expected, read_back, lost, duplicated = stored_results(
        sensor, table, reliability_report,
        scenario="sweep, process pool worker killed",
        faults="SIGKILL to a worker of the caller's ProcessPoolExecutor during a run: pool replaced",
    )
    assert (expected, read_back, lost, duplicated) == (4 * POINTS, 4 * POINTS, 0, 0)


@pytest.fixture(scope="module")
def dask_client():
    distributed = pytest.importorskip("dask.distributed")
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as dask:
        yield dask


def test_on_dask_a_segfaulting_model_fails_only_its_row_and_no_worker_dies(
    client, dask_client, reliability_report
):
    sensor = make_sensor(client)
    workers = set(dask_client.nthreads())
    grid = [{"factor": 1.0}, {"factor": 2.0, "crash": "segv"}, {"factor": 3.0}]
    table = sweep(sensor, grid, engine, executor=dask_client)
    assert table["error"].tolist()[1] == (
        "ProcessDied: worker process died: killed by signal SIGSEGV (run twice: it died both times)"
    )
    assert table["error"].isna().sum() == 2
    assert set(dask_client.nthreads()) == workers  # the same two workers, none restarted
    expected, read_back, lost, duplicated = stored_results(
        sensor, table, reliability_report,
        scenario="sweep on Dask, one model segfaults",
        faults="SIGSEGV in 1 of 3 runs on a 2-process LocalCluster: its row fails, no worker lost",
    )
    assert (expected, read_back, lost, duplicated) == (2 * POINTS, 2 * POINTS, 0, 0)


def test_on_dask_a_worker_killed_during_a_run_loses_nothing(
    client, dask_client, tmp_path, reliability_report
):
    sensor = make_sensor(client)
    marker = tmp_path / "dask-worker.pid"
    workers = set(dask_client.run(os.getpid).values())
    grid = [{"factor": 1.0}, {"factor": 2.0, "stall": str(marker)}, {"factor": 3.0}]
    killed = kill_when_marked(marker, lambda pid: pid in workers)
    table = sweep(sensor, grid, engine, executor=dask_client)
    assert len(killed) == 1 and killed[0] in workers and is_gone(killed[0])
    assert table["error"].isna().all(), table["error"].tolist()
    expected, read_back, lost, duplicated = stored_results(
        sensor, table, reliability_report,
        scenario="sweep on Dask, worker killed",
        faults="SIGKILL to the Dask worker process running a model: the run is done again",
    )
    assert (expected, read_back, lost, duplicated) == (3 * POINTS, 3 * POINTS, 0, 0)


def kill_every_start(starts: Path) -> tuple[list[int], threading.Event]:
    """In a thread: for each new start file in `starts`, SIGKILL the worker named in it (until the event)."""
    killed: list[int] = []
    done = threading.Event()

    def watch():
        seen: set[Path] = set()
        while not done.wait(0.02):
            for start in sorted(set(starts.glob("*.start")) - seen, key=lambda f: f.stat().st_mtime):
                seen.add(start)
                worker = int(start.read_text().split()[1])
                os.kill(worker, signal.SIGKILL)
                killed.append(worker)

    threading.Thread(target=watch, daemon=True).start()
    return killed, done


@pytest.fixture(params=["user's LocalCluster", "local_dask_cluster"])
def fresh_dask_client(request):
    """A 3-process Dask cluster of its own (its workers get killed): the caller's, with the scheduler's
    defaults (allowed-failures 3), or the one influxhtm starts for the CLI (allowed-failures 10)."""
    distributed = pytest.importorskip("dask.distributed")
    from influxhtm.running.sweep import local_dask_cluster

    # three workers: after two are killed, one is still there for the rest (their restarts may be slow)
    if request.param == "local_dask_cluster":
        cluster = local_dask_cluster(3)
    else:
        cluster = distributed.LocalCluster(n_workers=3, processes=True, threads_per_worker=1,
                                           dashboard_address=None)
    with cluster, distributed.Client(cluster) as dask:
        yield dask


# A cluster start and two killed workers: ~25 s on an idle 2-core machine, 46 s under a load average of 18.
@pytest.mark.timeout(300)
def test_on_dask_a_run_whose_worker_dies_twice_fails_after_one_retry(
    client, fresh_dask_client, tmp_path, reliability_report
):
    sensor = make_sensor(client)
    grid = [{"factor": 1.0}, {"factor": 2.0, "doomed": str(tmp_path)}, {"factor": 3.0}]
    killed, done = kill_every_start(tmp_path)
    try:
        table = sweep(sensor, grid, engine, executor=fresh_dask_client)
    finally:
        done.set()
    starts = sorted(tmp_path.glob("*.start"), key=lambda f: f.stat().st_mtime)
    workers = [int(f.read_text().split()[1]) for f in starts]
    assert len(starts) == 2 and killed == workers  # the model ran twice: the first run and one retry
    causes = "; ".join(f"worker process {pid} killed by signal SIGKILL" for pid in workers)
    assert table["error"].tolist()[1] == f"WorkerLost: the Dask worker running it died (run twice: {causes})"
    assert table["error"].isna().sum() == 2
    expected, read_back, lost, duplicated = stored_results(
        sensor, table, reliability_report,
        scenario="sweep on Dask, a run's worker dies twice",
        faults="SIGKILL to each Dask worker that starts one run: run twice, then its row fails (WorkerLost)",
    )
    assert (expected, read_back, lost, duplicated) == (2 * POINTS, 2 * POINTS, 0, 0)


# -- items 3 and 4: the owner of a managed influxd and its signals -----------------
OWNER = """
import os, signal, sys, time
from influxhtm.tools.server import LocalInfluxd
from influxdb import InfluxDBClient

server = LocalInfluxd(sys.argv[1] if len(sys.argv) > 1 else None).start()
client = InfluxDBClient(server.host, server.port, database="kept")
client.create_database("kept")
client.write_points([{"measurement": "m", "fields": {"v": float(i)}, "time": i} for i in range(500)],
                    time_precision="n", batch_size=100)
print(server.pid, server.log_path.parent, signal.getsignal(signal.SIGTERM) is signal.SIG_DFL, flush=True)
time.sleep(60)
"""


def _default_signals() -> None:
    """The owner starts with the default actions, as from a terminal: a suite run under nohup or as a
    background job would otherwise hand it SIGHUP or SIGINT ignored."""
    for sig in (signal.SIGHUP, signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)


def start_owner(tmp_path, *args: str) -> tuple[subprocess.Popen, int, Path, str]:
    script = tmp_path / "owner.py"
    script.write_text(OWNER)
    owner = subprocess.Popen([sys.executable, str(script), *args], stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": str(ROOT)}, preexec_fn=_default_signals)
    pid, workdir, default_handler = owner.stdout.readline().split()
    return owner, int(pid), Path(workdir), default_handler


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGKILL], ids=lambda s: s.name)
def test_influxd_dies_with_its_owner_and_the_next_server_cleans_up(tmp_path, sig, reliability_report):
    data = tmp_path / "persistent"
    owner, pid, workdir, default_handler = start_owner(tmp_path, str(data))
    try:
        assert default_handler == "True"  # starting a server left SIGTERM's handling alone
        owner.send_signal(sig)
        assert owner.wait(30) == -sig  # the owner ended as that signal ends a process
    finally:
        owner.kill()
    assert is_gone(pid), f"influxd {pid} outlived its owner"
    assert workdir.exists()  # nobody could clean up ...
    with LocalInfluxd(data) as server:  # ... until the next server starts
        assert not workdir.exists()
        stored = [p["v"] for p in server_points(server)]
    reliability_report(
        scenario=f"owner of a managed influxd gets {sig.name}",
        faults=f"{sig.name} to the Python process: it ends by {sig.name}, influxd with it; stale dir removed",
        written=500, read_back=len(stored), lost=500 - len(set(stored) & {float(i) for i in range(500)}),
        duplicated=len(stored) - len(set(stored)),
    )
    assert sorted(stored) == [float(i) for i in range(500)]  # the persistent data survived


def server_points(server):
    from influxdb import InfluxDBClient

    return InfluxDBClient(server.host, server.port, database="kept").query("SELECT v FROM m").get_points()


def test_an_own_sigterm_handler_is_kept(tmp_path):
    code = textwrap.dedent(
        """
        import os, signal, sys, time
        from influxhtm.tools.server import LocalInfluxd
        got = []
        def handler(signum, frame):
            got.append(signum)
        signal.signal(signal.SIGTERM, handler)
        with LocalInfluxd() as server:
            print(signal.getsignal(signal.SIGTERM) is handler, flush=True)
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.5)
            print(got == [signal.SIGTERM], server.running, flush=True)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "True", "True"]


def test_sigterm_under_pytest_ends_the_run_instead_of_failing_one_test(tmp_path):
    (tmp_path / "test_victim.py").write_text(textwrap.dedent(
        """
        import os, signal, time
        from pathlib import Path
        from influxhtm.tools.server import LocalInfluxd

        def test_first():
            server = LocalInfluxd().start()
            Path("influxd.pid").write_text(str(server.pid))
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(10)

        def test_second():
            Path("second.ran").write_text("yes")
        """
    ))
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "test_victim.py"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert run.returncode == -signal.SIGTERM, run.stdout[-2000:]
    assert not (tmp_path / "second.ran").exists()
    assert is_gone(int((tmp_path / "influxd.pid").read_text()))


def test_a_server_started_from_a_short_lived_thread_keeps_running():
    box: list[LocalInfluxd] = []
    thread = threading.Thread(target=lambda: box.append(LocalInfluxd().start()))
    thread.start()
    thread.join()
    server = box[0]
    try:
        time.sleep(0.5)  # PR_SET_PDEATHSIG would have fired by now if the thread had forked it
        assert server.running
    finally:
        server.stop()


def test_stale_directories_of_live_owners_and_unmarked_ones_are_kept(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    dirs = {}
    for name, mark in [("dead", f"{dead} 1"), ("alive", None), ("reused", f"{os.getpid()} 1"),
                       ("unmarked", "")]:
        path = tmp_path / f"influxhtm-influxd-{name}"
        path.mkdir()
        if mark is None:
            from influxhtm.core.processes import owner_mark

            mark = owner_mark()
        if mark:
            (path / "owner").write_text(mark)
        dirs[name] = path
    removed = remove_stale_workdirs()
    assert sorted(removed) == sorted([dirs["dead"], dirs["reused"]])  # "reused": our pid, another start time
    assert dirs["alive"].exists() and dirs["unmarked"].exists()


def open_files() -> set[str]:
    found = set()
    for fd in Path("/proc/self/fd").iterdir():
        try:
            found.add(os.readlink(fd))
        except OSError:
            pass
    return found


@pytest.mark.parametrize("how", ["exits 1", "no interpreter", "bad config"])
def test_a_failed_start_leaves_no_directory_and_no_open_file(tmp_path, monkeypatch, how, reliability_report):
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    config = None
    if how == "bad config":
        config = {"http": {"bind-address": "not an address"}}
    else:
        fake = tmp_path / "influxd"
        first = "#!/bin/sh\necho 'cannot start' >&2\nexit 1\n" if how == "exits 1" else "#!/no/such/sh\n"
        fake.write_text(first)
        fake.chmod(0o755)
        monkeypatch.setenv("INFLUXD", str(fake))
    data = tmp_path / "new-data-dir"
    before = open_files()
    with pytest.raises(ServerStartError):
        LocalInfluxd(data, config=config).start()
    leaked = [p for p in open_files() - before if str(tmp_path) in p]
    reliability_report(
        scenario=f"influxd fails to start ({how})",
        faults="a failing binary or configuration: no directory, no open file left",
        written=0, read_back=0, duplicated=0,
        lost=len(list(temp.iterdir())) + int(data.exists()) + len(leaked),  # what was left behind
    )
    assert list(temp.iterdir()) == [] and not data.exists()
    assert leaked == []
