"""`sweep`: run every (sensor, parameter set) pair as its own model, on any executor.

Each run is a batch run of a fresh model from ``engine(**params)`` (an engine
name from `influxhtm.running.engines`, or a picklable factory callable). Its model id is
derived from the engine and the parameters (a stable hash), and its parameters
are stored in the model registry, so every experiment can be found and redone.

Only picklable values travel to the workers (database name, `Settings`,
measurement and component, engine, parameters); each worker opens its own
connection. Any `concurrent.futures.Executor` works, and so does a
`dask.distributed.Client` (its `submit` returns futures with `result()` too).

Every run runs in a process of its own, forked by the worker that took it
(`run_isolated`): a model that crashes its process (a segfault in a C++ engine,
`os._exit`, the OOM killer) fails only its own row, with the exit cause, and the
worker, the pool and the other runs go on. A run whose process died, or whose
executor broke under it, is run once more (on a fresh pool if the executor is
broken); if its process dies again, its row says so.

On Dask, a worker that dies while it runs a run (killed, out of memory) takes
the run's process with it. The run is run once more on another worker; if that
worker dies too, the run's row fails with `WorkerLost` and the workers' exit
causes, and the other runs go on: on any cluster, each run counts its own
starts (Dask events) and refuses a third one (see `local_dask_cluster` for the
cluster the CLI starts).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
import pickle
import re
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import attrs

from influxhtm.core.errors import InfluxHtmError, ValidationError
from influxhtm.core.processes import die_with_parent, exit_cause
from influxhtm.core.times import TimeLike, inclusive_range
from influxhtm.io.settings import Settings

if TYPE_CHECKING:
    import pandas

    from influxhtm.htm.sensor import Sensor

COLUMNS = (
    "sensor",
    "measurement",
    "component",
    "model_id",
    "params",
    "points",
    "results",
    "elapsed",
    "error",
)


def expand_grid(param_grid: Mapping[str, Any] | Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Parameter sets of a grid: a list of dicts as given, or a dict of lists expanded to their product.

    In a dict, each value must be a list, tuple or range of the values to try
    (wrap a value that is itself a list: ``{"value_range": [(0, 100)]}``).
    """
    if isinstance(param_grid, Mapping):
        keys = list(param_grid)
        choices = []
        for key in keys:
            values = param_grid[key]
            if not isinstance(values, (list, tuple, range)):
                raise ValidationError({str(key): [f"{values!r} is not a list of values to try"]})
            choices.append(list(values))
        return [dict(zip(keys, combination, strict=True)) for combination in itertools.product(*choices)]
    grid: object = param_grid  # anything may come in, whatever the annotation says
    if isinstance(grid, (str, bytes)) or not isinstance(grid, Iterable):
        raise ValidationError({"param_grid": [f"{param_grid!r} is not a list of dicts or a dict of lists"]})
    sets = []
    for index, params in enumerate(param_grid):
        if not isinstance(params, Mapping):
            raise ValidationError({index: [f"{params!r} is not a dict of parameters"]})
        sets.append(dict(params))
    return sets


def engine_name(engine: str | Callable[..., Any]) -> str:
    """The name stored in the registry: the engine's name, or the factory's dotted name."""
    if isinstance(engine, str):
        return engine
    target = getattr(engine, "func", engine)  # functools.partial
    if not callable(target):
        raise ValidationError({"engine": [f"{engine!r} is neither an engine name nor a callable"]})
    if not hasattr(target, "__qualname__"):
        target = type(target)
    return f"{target.__module__}.{target.__qualname__}"


def params_json(params: Mapping[str, Any]) -> str:
    """The canonical JSON text of a parameter set (sorted keys); ValidationError if it is not JSON."""
    try:
        return json.dumps(dict(params), sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as error:
        raise ValidationError({"params": [f"{dict(params)!r} cannot be stored as JSON: {error}"]}) from None


def model_id_for(engine: str | Callable[..., Any], params: Mapping[str, Any]) -> str:
    """A stable model id: ``<engine>-<10 hex digits of the SHA-1 of engine and parameters>``."""
    name = engine_name(engine)
    digest = hashlib.sha1(f"{name}\n{params_json(params)}".encode()).hexdigest()[:10]
    short = name.rsplit(".", 1)[-1].replace("<", "").replace(">", "") or "model"
    return f"{short}-{digest}"


@attrs.frozen(eq=False)
class SweepTask:
    """Everything one run needs, picklable: where the sensor is, the engine, the parameters."""

    database: str
    settings: Settings
    measurement: str
    component: str
    engine: Any
    engine_name: str
    params: dict[str, Any]
    model_id: str
    since: int | None = None
    until: int | None = None
    aggregation: str | None = None
    #: The sweeping client's `create`: whether a worker may create a database found missing.
    create: bool = True
    #: 1, or 2 when the run is retried after its process died (also keeps Dask from reusing the first key).
    attempt: int = 1
    #: Names this run among all sweeps: its starts on Dask workers are counted by it (`WorkerLost`).
    run_id: str = ""

    def row(self, **values: Any) -> dict[str, Any]:
        row = {
            "sensor": f"{self.measurement}/{self.component}",
            "measurement": self.measurement,
            "component": self.component,
            "model_id": self.model_id,
            "params": dict(self.params),
            "points": None,
            "results": None,
            "elapsed": None,
            "error": None,
        }
        row.update(values)
        return row


def run_task(task: SweepTask) -> dict[str, Any]:
    """Run one (sensor, parameters) pair in this process, with its own connection; returns its table row."""
    from influxhtm.htm.client import InfluxHtmClient
    from influxhtm.running.experiment import experiment

    started = time.perf_counter()
    client = InfluxHtmClient.from_settings(task.database, task.settings, create=task.create)
    try:
        sensor = client.create_sensor(task.measurement, task.component)
        runner = experiment(
            sensor, task.model_id, task.engine, task.params, engine_name=task.engine_name,
            aggregation=task.aggregation,
        )
        report = runner.run_batch(task.since, task.until, aggregation=task.aggregation)
    except Exception as error:  # noqa: BLE001 - one failed run is a row, not the end of the sweep
        return task.row(elapsed=time.perf_counter() - started, error=describe_error(error))
    finally:
        client.close()
    return task.row(points=report.points, results=report.results, elapsed=report.elapsed)


def describe_error(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


class ProcessDied(InfluxHtmError):
    """The process running one sweep run died (a crash, `os._exit`, a signal); the message names the cause."""


class WorkerLost(InfluxHtmError):
    """The Dask workers that ran one sweep run died twice while running it; the message names the causes."""


#: The Dask event topic where each run's starts on workers are logged.
DASK_TOPIC = "influxhtm-sweep"


def run_isolated(task: SweepTask) -> dict[str, Any]:
    """`run_task` in a child process forked from this one; its row, or `ProcessDied` with the exit cause.

    The child dies with this thread (``PR_SET_PDEATHSIG``), so a worker that is
    killed leaves no run going on. Without `os.fork` (Windows), the run is done here.
    On a Dask worker, a run that two workers already died running raises `WorkerLost`.
    """
    if _dask_starts_before(task) >= 2:
        raise WorkerLost("the Dask worker running it died twice")
    if not hasattr(os, "fork"):
        return run_task(task)
    read_end, write_end = os.pipe()
    parent = os.getpid()
    _flush_stdio()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child, measured by its row
        os.close(read_end)
        _child(task, write_end, parent)
    os.close(write_end)
    try:
        with os.fdopen(read_end, "rb") as pipe:
            data = pipe.read()
    except BaseException:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        raise
    code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    if code == 0 and data:
        row: dict[str, Any] = pickle.loads(data)
        return row
    raise ProcessDied(f"worker process died: {exit_cause(code)}")


def _child(task: SweepTask, fd: int, parent: int) -> None:
    """The forked child: run the task, write its pickled row to `fd`, and leave by `os._exit` (no atexit)."""
    code = 1
    try:
        die_with_parent(parent)
        try:
            row = run_task(task)
        except BaseException as error:  # noqa: BLE001 - KeyboardInterrupt, SystemExit: still one row
            row = task.row(error=describe_error(error))
        data = memoryview(pickle.dumps(row))
        while data:
            data = data[os.write(fd, data) :]
        code = 0
    finally:
        _flush_stdio()
        os._exit(code)


def _dask_starts_before(task: SweepTask) -> int:
    """On a Dask worker: log this start of `task` (its worker's pid) and count its earlier starts; else 0.

    A run only starts again after a start whose worker died (the scheduler
    reschedules the tasks of a lost worker), so the count is the workers lost.
    """
    try:
        from distributed import get_client, get_worker

        worker = get_worker()
    except (ImportError, ValueError):
        return 0
    client = get_client()
    earlier = [
        msg for _, msg in client.get_events(DASK_TOPIC) if _same_run(msg, task.run_id, task.attempt)
    ]
    start = {"run": task.run_id, "attempt": task.attempt, "pid": os.getpid(), "worker": worker.address}
    client.log_event(DASK_TOPIC, start)
    return len(earlier)


def _same_run(msg: Any, run_id: str, attempt: int) -> bool:
    return isinstance(msg, dict) and msg.get("run") == run_id and msg.get("attempt") == attempt


def _flush_stdio() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):
            pass


def _outcomes(
    executor: Any, tasks: list[SweepTask], done: Callable[[int], object] | None = None
) -> list[Any]:
    """Submit every task to `executor`; each one's row, or the exception its future raised
    (`done(1)` after each one, for a progress bar)."""
    futures: list[Any] = []
    for task in tasks:
        try:
            futures.append(executor.submit(run_isolated, task))
        except Exception as error:  # noqa: BLE001 - e.g. a task that cannot be pickled
            futures.append(_Failed(error))
    outcomes: list[Any] = []
    for future in futures:
        try:
            outcomes.append(future.result())
        except Exception as error:  # noqa: BLE001 - an unpicklable engine, a lost Dask worker
            outcomes.append(error)
        if done is not None:
            done(1)
    return outcomes


def _is_worker_lost(outcome: Any) -> bool:
    """A run whose Dask workers died: our own `WorkerLost`, or the scheduler's `KilledWorker`."""
    return isinstance(outcome, WorkerLost) or type(outcome).__name__ == "KilledWorker"


def _is_lost(outcome: Any) -> bool:
    """A run whose process died, or whose executor broke (a process pool whose worker died)."""
    from concurrent.futures import BrokenExecutor

    return isinstance(outcome, (ProcessDied, BrokenExecutor))


def _run_all(
    tasks: list[SweepTask], executor: Any, done: Callable[[int], object] | None = None
) -> list[dict[str, Any]]:
    """One row per task; a lost run is run once more, on a fresh pool if the executor broke."""
    from concurrent.futures import BrokenExecutor

    outcomes = _outcomes(executor, tasks, done)
    lost = [index for index, outcome in enumerate(outcomes) if _is_lost(outcome)]
    if lost:
        broken = any(isinstance(outcomes[index], BrokenExecutor) for index in lost)
        retry = [attrs.evolve(tasks[index], attempt=2) for index in lost]
        if broken:
            with _default_pool(len(retry)) as pool:
                again = _outcomes(pool, retry)
        else:
            again = _outcomes(executor, retry)
        for index, outcome in zip(lost, again, strict=True):
            if isinstance(outcome, ProcessDied):
                outcome = ProcessDied(f"{outcome} (run twice: it died both times)")
            outcomes[index] = outcome
    _name_lost_workers(executor, tasks, outcomes)
    return [
        outcome if isinstance(outcome, dict) else task.row(error=describe_error(outcome))
        for task, outcome in zip(tasks, outcomes, strict=True)
    ]


_DEATH = re.compile(r"Worker process (\d+) (?:exited with status (-?\d+)|was killed by signal (\d+))")


class _NannyDeaths(logging.Handler):
    """Collects the exit causes that Dask's nannies in this process log for their worker processes."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.causes: dict[int, str] = {}

    def emit(self, record: logging.LogRecord) -> None:
        match = _DEATH.search(record.getMessage())
        if match:
            pid, status, signum = match.groups()
            code = int(status) if status is not None else -int(signum)
            self.causes[int(pid)] = exit_cause(code)


_NANNY_DEATHS = _NannyDeaths()


@contextmanager
def _watching_nannies() -> Iterator[None]:
    """While a sweep runs: collect the exit causes logged by the nannies of a local Dask cluster."""
    logger = logging.getLogger("distributed.nanny")
    logger.addHandler(_NANNY_DEATHS)
    try:
        yield
    finally:
        logger.removeHandler(_NANNY_DEATHS)


def _name_lost_workers(executor: Any, tasks: list[SweepTask], outcomes: list[Any]) -> None:
    """Replace each run's lost-worker outcome by a `WorkerLost` naming the dead workers and their causes."""
    lost = [index for index, outcome in enumerate(outcomes) if _is_worker_lost(outcome)]
    if not lost:
        return
    events = [msg for _, msg in executor.get_events(DASK_TOPIC)]
    local = getattr(executor, "cluster", None) is not None  # its nannies log here
    for index in lost:
        task = tasks[index]
        starts = [msg for msg in events if _same_run(msg, task.run_id, task.attempt)]
        causes = [_worker_cause(msg, wait=local) for msg in starts[:2]]
        runs = "run twice: " if len(starts) >= 2 else ""
        outcomes[index] = WorkerLost(
            f"the Dask worker running it died ({runs}{'; '.join(causes) or 'no start recorded'})"
        )


def _worker_cause(start: Mapping[str, Any], *, wait: bool) -> str:
    """'worker process 123 killed by signal SIGKILL', or the worker's address when its nanny is elsewhere."""
    pid = int(start["pid"])
    deadline = time.monotonic() + (5.0 if wait else 0.0)
    while pid not in _NANNY_DEATHS.causes and time.monotonic() < deadline:
        time.sleep(0.05)
    cause = _NANNY_DEATHS.causes.get(pid, f"cause in the log of {start['worker']}'s nanny")
    return f"worker process {pid} {cause}"


#: The scheduler's ``allowed-failures`` on `local_dask_cluster`: it counts a lost worker against every
#: task assigned to it, also those only queued there, so it is kept high and the runs' own count of
#: their starts (`WorkerLost` at the third) decides.
LOCAL_ALLOWED_FAILURES = 10


def local_dask_cluster(workers: int | None = None) -> Any:
    """A Dask `LocalCluster` of worker processes (one thread each) for a sweep, as the CLI starts it.

    A run whose worker dies is run once more and fails (`WorkerLost`) if that
    worker dies too, by the runs' count of their starts. The scheduler's
    ``allowed-failures`` is `LOCAL_ALLOWED_FAILURES`, so a run that was only
    queued on lost workers is never failed by the scheduler.
    """
    import dask
    from dask.distributed import LocalCluster

    with dask.config.set({"distributed.scheduler.allowed-failures": LOCAL_ALLOWED_FAILURES}):
        return LocalCluster(
            n_workers=workers or os.cpu_count() or 1,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
        )


def _default_pool(tasks: int) -> Any:
    """The default executor: threads that each fork one process per run (`run_isolated`)."""
    from concurrent.futures import ThreadPoolExecutor

    workers = min(tasks, os.cpu_count() or 1)
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix="influxhtm-sweep")


def sweep(
    sensors: Sensor | Sequence[Sensor],
    param_grid: Mapping[str, Any] | Iterable[Mapping[str, Any]],
    engine: str | Callable[..., Any],
    *,
    since: TimeLike | None = None,
    until: TimeLike | None = None,
    aggregation: str | None = None,
    executor: Any = None,
    before: TimeLike | None = None,
    progress: bool | None = None,
) -> pandas.DataFrame:
    """Run `engine` with every parameter set of `param_grid` over every sensor; one row per run.

    Each run reads the points from `since` to `until` (both inclusive), or
    before `before` (exclusive). `executor` is any `concurrent.futures.Executor`
    or a `dask.distributed.Client` (default: one thread per CPU, shut down afterwards);
    whichever it is, each run runs in a process of its own (see the module's text).
    Columns: sensor ("measurement/component"), measurement, component, model_id, params,
    points, results, elapsed (seconds) and error (None, or "Type: message" for a run that
    failed, e.g. "ProcessDied: worker process died: killed by signal SIGSEGV"; the other
    runs go on). `progress`: a bar of finished runs on stderr (None: when it is a terminal and
    the sweep takes more than a moment; see `influxhtm.core.progress`).
    """
    import pandas

    from influxhtm.htm.sensor import Sensor

    if isinstance(sensors, Sensor):
        sensors = [sensors]
    sensors = list(sensors)
    for index, sensor in enumerate(sensors):
        if not isinstance(sensor, Sensor):
            raise ValidationError({"sensors": [f"item {index}, {sensor!r}, is not a Sensor"]})
    name = engine_name(engine)
    if isinstance(engine, str):
        from influxhtm.running.engines import get_engine

        get_engine(engine)  # unknown names fail here, before anything runs
    lo, hi = inclusive_range(since, until, before)
    parameter_sets: dict[str, dict[str, Any]] = {}
    for params in expand_grid(param_grid):
        parameter_sets.setdefault(model_id_for(engine, params), params)
    sweep_id = uuid.uuid4().hex
    tasks = [
        attrs.evolve(task, run_id=f"{sweep_id}-{index}")
        for index, task in enumerate(_tasks_for(sensors, engine, name, parameter_sets, lo, hi, aggregation))
    ]
    if not tasks:
        return pandas.DataFrame(columns=list(COLUMNS))
    if executor is not None and not callable(getattr(executor, "submit", None)):
        raise ValidationError({"executor": [f"{executor!r} is not an Executor or a dask Client (no submit)"]})
    from influxhtm.core.progress import progress_bar

    with progress_bar(progress, total=len(tasks), unit="run", desc=f"sweep {name}") as bar:
        if executor is None:
            with _default_pool(len(tasks)) as pool:
                rows = _run_all(tasks, pool, bar.update)
        else:
            with _watching_nannies():
                rows = _run_all(tasks, executor, bar.update)
    frame = pandas.DataFrame(rows, columns=list(COLUMNS))
    frame["points"] = frame["points"].astype("Int64")
    frame["results"] = frame["results"].astype("Int64")
    frame["elapsed"] = frame["elapsed"].astype(float)
    return frame


def _tasks_for(
    sensors: list[Sensor],
    engine: str | Callable[..., Any],
    name: str,
    parameter_sets: dict[str, dict[str, Any]],
    lo: int | None,
    hi: int | None,
    aggregation: str | None,
) -> list[SweepTask]:
    """One task per (sensor, parameter set)."""
    return [
        SweepTask(
            sensor.client.database,
            sensor.client.settings,
            sensor.measurement,
            sensor.component,
            engine,
            name,
            params,
            model_id,
            lo,
            hi,
            aggregation,
            sensor.client.create,
        )
        for sensor in sensors
        for model_id, params in parameter_sets.items()
    ]


class _Failed:
    """A future that failed before it was submitted."""

    def __init__(self, error: BaseException):
        self.error = error

    def result(self) -> Any:
        raise self.error
