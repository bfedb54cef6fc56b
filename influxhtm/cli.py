"""The `influxhtm` command line.

Connection options sit on the group and fall back to `INFLUX_*` variables.
Errors end with exit code 1 and one line on stderr; `--debug` shows the traceback.
Times given to `--since`/`--until`/`--before` are ISO 8601; without an offset
they are UTC, like the timestamps `import` reads by default. `--since` and
`--until` are inclusive, `--before` is an exclusive end.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

import click

from influxhtm._version import __version__
from influxhtm.core.errors import InfluxHtmError, ValidationError


class Context:
    """What the group's options say, handed to every command."""

    def __init__(self, **options: Any):
        self.options = options
        self.debug: bool = options.pop("debug", False)

    def client(self, **overrides: Any) -> Any:
        """An `InfluxHtmClient` from the group's options (and `INFLUX_*`); `overrides` replace options."""
        from influxhtm.htm.client import InfluxHtmClient

        o = {**self.options, **overrides}
        return InfluxHtmClient(
            o["database"],
            host=o["host"],
            port=o["port"],
            username=o["username"],
            password=o["password"],
            ssl=o["ssl"],
            create=o.get("create", True),
        )

    @property
    def names_a_server(self) -> bool:
        """Whether the user named a server (`--host` or `INFLUX_HOST`)."""
        return self.options.get("host") is not None or bool(os.environ.get("INFLUX_HOST"))


def command_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn errors into one line and exit code 1 (the traceback only with --debug)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        ctx = click.get_current_context()
        debug = isinstance(ctx.obj, Context) and ctx.obj.debug
        try:
            return func(*args, **kwargs)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except (InfluxHtmError, OSError, ValueError) as error:
            if debug:
                raise
            click.echo(one_line(f"Error: {error}"), err=True)
            sys.exit(1)
        except Exception as error:  # noqa: BLE001 - an unexpected failure still ends in one line
            if debug:
                raise
            click.echo(
                one_line(f"Error: {type(error).__name__}: {error} (run with --debug for the traceback)"),
                err=True,
            )
            sys.exit(1)

    return wrapper


def show_progress(progress: bool | None) -> bool:
    """Progress bars go to stderr: by default only when it is a terminal, so logs and pipes stay clean."""
    return sys.stderr.isatty() if progress is None else progress


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[0] if lines else text


# --------------------------------------------------------------------------- option parsing


def parse_range(since: str | None, until: str | None, before: str | None) -> tuple[int | None, int | None]:
    """Inclusive (first, last) nanoseconds of `--since`, and `--until` or `--before`; naive means UTC."""
    from influxhtm.core.times import inclusive_range

    return inclusive_range(since, until, before)


def parse_json_option(text: str | None, name: str) -> Any:
    """JSON given inline or as the path of a file holding it."""
    if text is None:
        return None
    source = text
    if not text.lstrip().startswith(("{", "[")) and os.path.exists(text):
        source = Path(text).read_text(encoding="utf-8")
    try:
        return json.loads(source)
    except json.JSONDecodeError as error:
        raise ValidationError({name: [f"{text!r} is neither JSON nor a JSON file: {error}"]}) from None


def parse_params(text: str | None) -> dict[str, Any]:
    params = parse_json_option(text, "params")
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise ValidationError({"params": [f"{text!r} is not a JSON object of parameter names to values"]})
    return params


def split_models(values: tuple[str, ...]) -> list[str] | None:
    """`--models a,b --models c` -> ["a", "b", "c"]; None when not given (every model)."""
    names = [name.strip() for value in values for name in value.split(",") if name.strip()]
    return names or None


def load_label_windows(
    labels: str | None, key: str | None, tz: str, sensor: Any
) -> tuple[list[Any], str | None]:
    """The labelled windows of a sensor from a NAB label file (none without a file)."""
    if labels is None:
        if key is not None:
            raise ValidationError({"label_key": ["--label-key needs --labels FILE"]})
        return [], None
    from influxhtm.tools import nab
    from influxhtm.tools.scoring import label_key

    chosen = label_key(labels, key, [sensor.component, sensor.measurement])
    return nab.load_windows(labels, chosen, tz=tz), chosen


def create_option(command: Callable[..., Any]) -> Callable[..., Any]:
    """The `--create/--no-create` option of the commands that write into a database they may not find."""
    return click.option(
        "--create/--no-create",
        default=True,
        show_default=True,
        help="create the database if the server says it does not exist (needs admin rights)",
    )(command)


# --------------------------------------------------------------------------- the group


def time_range_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """`--since`, `--until` and `--before` of every command that reads a slice of time.

    The command gets `since` and `until` as inclusive nanoseconds (or None);
    `--before T` arrives as `until = T - 1ns`.
    """

    @functools.wraps(command)
    def with_range(*args: Any, since: str | None, until: str | None, before: str | None, **kw: Any) -> Any:
        lo, hi = command_errors(parse_range)(since, until, before)
        return command(*args, since=lo, until=hi, **kw)

    wrapped: Callable[..., Any] = with_range
    for name, help_text in (
        ("--before", "exclusive end (ISO 8601, naive = UTC)"),
        ("--until", "last time, inclusive (ISO 8601, naive = UTC)"),
        ("--since", "first time, inclusive (ISO 8601, naive = UTC)"),
    ):
        wrapped = click.option(name, default=None, help=help_text)(wrapped)
    return wrapped


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="influxhtm")
@click.option("--host", default=None, help="InfluxDB host or URL [INFLUX_HOST, localhost]")
@click.option("--port", default=None, help="InfluxDB port [INFLUX_PORT, 8086]")
@click.option("--username", default=None, help="user name [INFLUX_USER]")
@click.option(
    "--password", default=None,
    help="password [INFLUX_PASS]; visible to other users in `ps`: prefer --password-stdin, "
         "--ask-password or INFLUX_PASS",
)
@click.option("--password-stdin", is_flag=True, help="read the password from the first line of stdin")
@click.option("--ask-password", is_flag=True, help="prompt for the password (not echoed)")
@click.option("--ssl/--no-ssl", default=None, help="use HTTPS [INFLUX_SSL]")
@click.option("--database", "-d", default="influxhtm", show_default=True, help="database name")
@click.option("--debug", is_flag=True, help="show tracebacks")
@click.pass_context
def cli(ctx: click.Context, **options: Any) -> None:
    """influxhtm: InfluxDB sensors, HTM models and their results."""
    options["password"] = resolve_password(
        options["password"], options.pop("password_stdin"), options.pop("ask_password"))
    ctx.obj = Context(**options)


def resolve_password(password: str | None, from_stdin: bool, ask: bool) -> str | None:
    """The password of --password, --password-stdin or --ask-password (at most one); None: INFLUX_PASS.

    A password given on the command line is visible to every user of the machine
    (`ps`, /proc/<pid>/cmdline): it still works, with a warning on stderr.
    """
    given = [name for name, on in (("--password", password is not None), ("--password-stdin", from_stdin),
                                   ("--ask-password", ask)) if on]
    if len(given) > 1:
        raise click.UsageError(f"give the password one way, not {' and '.join(given)}")
    if password is not None:
        click.echo("warning: --password is visible to other users of this machine (ps); use "
                   "--password-stdin, --ask-password or INFLUX_PASS", err=True)
        return password
    if from_stdin:
        line = sys.stdin.readline()
        if not line:
            raise click.UsageError("--password-stdin: standard input is empty")
        return line.rstrip("\r\n")
    if ask:
        return str(click.prompt("Password", hide_input=True, err=True))
    return None


pass_context = click.make_pass_decorator(Context)


@cli.command()
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="keep the data here (default: a temporary directory, removed on exit)",
)
@click.option("--port", "server_port", type=int, default=None, help="HTTP port (default: a free one)")
@command_errors
def server(data_dir: str | None, server_port: int | None) -> None:
    """Run a managed local influxd in the foreground until Ctrl-C."""
    from influxhtm.tools.server import LocalInfluxd

    local = LocalInfluxd(data_dir, port=server_port)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    # Ctrl-C stops the server even when this process was started with SIGINT ignored (as a shell
    # does for a background job), which would otherwise leave it running until killed.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    with local:
        wait_for_interrupt(
            local,
            f"influxd running at {local.url} (pid {local.pid}, data in {local.data_dir})",
            f"export INFLUX_HOST={local.host} INFLUX_PORT={local.port}",
            "Ctrl-C to stop.",
        )


def wait_for_interrupt(local: Any, *lines: str) -> None:
    """Print `lines`, then block until Ctrl-C (or the server dies, which is an error).

    A Ctrl-C that comes while the lines are printed (as soon as the first one is read)
    stops the server as cleanly as one that comes later."""
    try:
        for line in lines:
            click.echo(line)
        while local.running:
            time.sleep(0.5)
    except KeyboardInterrupt:
        click.echo("stopping influxd")
    if not local.running and local.process is not None:
        raise InfluxHtmError(f"influxd exited unexpectedly:\n{local.log_tail()}")


# --------------------------------------------------------------------------- import


@cli.command("import")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option(
    "--measurement", "-m", default=None, help="the sensor's measurement (with --class: where to write)"
)
@click.option("--component", "-c", default=None, help="the sensor's component tag")
@click.option(
    "--class",
    "class_name",
    default=None,
    metavar="MODULE:CLASS",
    help="import rows of a declared class instead of a sensor (the module is found from the current "
    "directory too)",
)
@click.option(
    "--time-column",
    default=None,
    help="column holding the time (default: timestamp; with --class: the declared time's name, time or "
    "timestamp)",
)
@click.option("--value-column", default="value", show_default=True, help="column holding the value")
@click.option("--tz", default="UTC", show_default=True, help="zone of naive timestamps (IANA name)")
@click.option(
    "--ambiguous",
    type=click.Choice(["earlier", "later"]),
    default=None,
    help="--tz: read a time in a daylight-saving gap or fold as the earlier or later instant "
    "(default: refuse the file, naming the lines)",
)
@click.option("--batch-size", type=int, default=5000, show_default=True, help="points per write")
@create_option
@click.option(
    "--progress/--no-progress", default=None, help="show a progress bar (default: when stderr is a terminal)"
)
@pass_context
@command_errors
def import_(
    ctx: Context,
    file: str,
    measurement: str | None,
    component: str | None,
    class_name: str | None,
    time_column: str | None,
    value_column: str,
    tz: str,
    ambiguous: str | None,
    batch_size: int,
    create: bool,
    progress: bool | None,
) -> None:
    """Import a CSV FILE (NAB's format as it is) into a sensor (--measurement and --component), or
    rows of a declared class (--class module:Class; the header names its time, tags and fields).

    Rows that cannot be read are reported with their line numbers and the rest
    is written; rows repeating a timestamp are merged (InfluxDB keeps one point
    per series and time) and counted. Naive times that a daylight-saving change
    of --tz skips or repeats refuse the whole file (naming the lines) unless
    --ambiguous says which reading to take. A database that does not exist is
    created (an administrator's right) unless --no-create.
    """
    from tqdm.auto import tqdm

    from influxhtm.orm.csv_import import count_rows, import_csv

    if class_name is None and (measurement is None or component is None):
        raise InfluxHtmError("give --measurement and --component (a sensor), or --class module:Class")
    if class_name is not None and component is not None:
        raise InfluxHtmError("--component is a sensor's: with --class, the file's columns give the tags")
    if not os.path.isfile(file):
        raise InfluxHtmError(f"file {file!r} does not exist")
    if class_name is not None:
        cls = declared_class(class_name)
        repository = ctx.client(create=create).repository(cls, measurement=measurement)
        report = repository.import_csv(
            file,
            time_column=time_column,
            tz=tz,
            ambiguous=ambiguous,
            batch_size=batch_size,
            progress=show_progress(progress),
        )
    else:
        assert measurement is not None and component is not None
        client = ctx.client(create=create)
        sensor = client.create_sensor(measurement, component)
        with tqdm(
            total=count_rows(file),
            unit="row",
            desc=f"importing {Path(file).name}",
            disable=not show_progress(progress),
            file=sys.stderr,
        ) as bar:
            report = import_csv(
                sensor,
                file,
                time_column=time_column or "timestamp",
                value_column=value_column,
                tz=tz,
                batch_size=batch_size,
                progress=bar.update,
                ambiguous=ambiguous,
            )
    click.echo(report.summary())
    if report.rows and not report.written:
        raise InfluxHtmError(f"no row of {file!r} could be read (first problem: {report.errors[0]})")


def declared_class(name: str) -> type:
    """The declared class `module:Class` (the module is looked up from the current directory too)."""
    import pkgutil

    from influxhtm.model.declarations import is_declared

    if ":" not in name:
        raise InfluxHtmError(f"--class {name!r}: give it as module:Class (e.g. myapp.models:Climate)")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        found = pkgutil.resolve_name(name)
    except (ImportError, AttributeError, ValueError) as error:
        raise InfluxHtmError(f"--class {name!r}: cannot import it: {error}") from None
    if not isinstance(found, type) or not is_declared(found):
        raise InfluxHtmError(f"--class {name!r} is not a class declared with @measurement(...)")
    return found


# --------------------------------------------------------------------------- listing


@cli.command()
@pass_context
@command_errors
def sensors(ctx: Context) -> None:
    """List the sensors of the database: measurement, component, points, first and last time."""
    from influxhtm.tools.text_table import format_table

    client = ctx.client()
    rows = []
    for sensor in client.list_sensors():
        bounds = sensor.time_bounds()
        first, last = (b.isoformat() for b in bounds) if bounds else (None, None)
        rows.append([sensor.measurement, sensor.component, sensor.count(), first, last])
    if not rows:
        click.echo(f"no sensors in database {client.database!r}")
        return
    click.echo(format_table(["measurement", "component", "points", "first", "last"], rows))


@cli.command()
@click.argument("measurement")
@click.argument("component")
@pass_context
@command_errors
def models(ctx: Context, measurement: str, component: str) -> None:
    """List the models of a sensor: id, engine, aggregation, results, last result, created, params."""
    from influxhtm.tools.text_table import format_table

    sensor = ctx.client().get_sensor(measurement, component)
    rows = []
    for store in sensor.list_htm_models():
        last = store.last_result_time()
        params = json.dumps(store.params, sort_keys=True) if store.params is not None else None
        if params is not None and len(params) > 60:
            params = params[:57] + "..."
        rows.append(
            [
                store.model_id,
                store.engine,
                store.aggregation,
                store.count(),
                last.isoformat() if last else None,
                store.created.isoformat(timespec="seconds") if store.created else None,
                params,
            ]
        )
    if not rows:
        click.echo(f"no models for sensor {sensor}")
        return
    click.echo(
        format_table(["id", "engine", "aggregation", "results", "last result", "created", "params"], rows)
    )


@cli.command("delete-model")
@click.argument("measurement")
@click.argument("component")
@click.argument("model_id")
@pass_context
@command_errors
def delete_model(ctx: Context, measurement: str, component: str, model_id: str) -> None:
    """Delete one model of a sensor: its results and its registry entry."""
    sensor = ctx.client().get_sensor(measurement, component)
    sensor.delete_htm_model(model_id)
    click.echo(f"deleted model {model_id!r} of {sensor}")


# --------------------------------------------------------------------------- run


@cli.command()
@click.argument("measurement")
@click.argument("component")
@click.option("--engine", "-e", required=True, help="engine name (brainblocks, htmcore, replay, ...)")
@click.option("--id", "model_id", required=True, help="model id the results are stored under")
@click.option("--params", default=None, help="engine parameters: JSON text or a JSON file")
@time_range_options
@click.option("--aggregation", default=None, help="feed one mean per bucket, e.g. 10m")
@click.option("--resume", is_flag=True, help="continue after the model's last stored result")
@click.option(
    "--anomaly-score",
    type=click.Choice(["engine", "log-likelihood"]),
    default="engine",
    show_default=True,
    help="store the engine's score, or its log-scaled likelihood (NAB's HTM score)",
)
@click.option("--live", is_flag=True, help="after the existing points, process new ones as they arrive")
@click.option(
    "--poll-interval", type=float, default=1.0, show_default=True, help="live: seconds between polls"
)
@click.option("--max-points", type=int, default=None, help="live: stop after this many points")
@click.option(
    "--mode",
    type=click.Choice(["poll", "subscription"]),
    default="poll",
    show_default=True,
    help="live: how new points are noticed",
)
@click.option(
    "--progress/--no-progress", default=None, help="show a progress bar (default: when stderr is a terminal)"
)
@pass_context
@command_errors
def run(
    ctx: Context,
    measurement: str,
    component: str,
    engine: str,
    model_id: str,
    params: str | None,
    since: int | None,
    until: int | None,
    aggregation: str | None,
    resume: bool,
    anomaly_score: str,
    live: bool,
    poll_interval: float,
    max_points: int | None,
    mode: str,
    progress: bool | None,
) -> None:
    """Run an engine over a sensor's data and store its results as model --id.

    A model id that exists already must have been registered with the same
    parameters (or use --resume to continue it).
    """
    from influxhtm.running.experiment import experiment

    if live and (until is not None or aggregation is not None):
        raise ValidationError({"live": ["--live takes neither --until/--before nor --aggregation"]})
    client = ctx.client()
    sensor = client.get_sensor(measurement, component)
    runner = experiment(
        sensor, model_id, engine, parse_params(params), aggregation=aggregation, anomaly_score=anomaly_score,
        same_params=not resume,
    )
    if not live:
        report = runner.run_batch(
            since=since,
            until=until,
            aggregation=aggregation,
            resume=resume,
            progress=show_progress(progress),
        )
        click.echo(str(report))
        return
    stop = threading.Event()
    previous = {}
    if threading.current_thread() is threading.main_thread():  # signals can only be caught there
        previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    click.echo(f"running {model_id!r} live over {sensor} (Ctrl-C to stop)")
    try:
        report = runner.run_live(
            poll_interval=poll_interval,
            stop=stop,
            max_points=max_points,
            mode=mode,
            since=since,
        )
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    click.echo(str(report))


# --------------------------------------------------------------------------- plot and score


@cli.command()
@click.argument("measurement")
@click.argument("component")
@click.option("--models", multiple=True, help="model ids to draw (repeat or comma-separate; default: all)")
@time_range_options
@click.option("--aggregation", default=None, help="draw one mean per bucket, e.g. 1h")
@click.option(
    "--labels", type=click.Path(dir_okay=False), default=None, help="NAB label file: shade its windows"
)
@click.option(
    "--label-key", default=None, help="key in the label file (default: the one named like the component)"
)
@click.option("--tz", default="UTC", show_default=True, help="zone of the label file's naive timestamps")
@click.option("--threshold", type=float, default=None, help="mark detections (anomaly score >= X)")
@click.option("--title", default=None, help="title of the plot (default: the sensor and its models)")
@click.option(
    "--output",
    "-o",
    "outputs",
    multiple=True,
    required=True,
    type=click.Path(dir_okay=False),
    help="file to write, .png or .html (repeatable)",
)
@pass_context
@command_errors
def plot(
    ctx: Context,
    measurement: str,
    component: str,
    models: tuple[str, ...],
    since: int | None,
    until: int | None,
    aggregation: str | None,
    labels: str | None,
    label_key: str | None,
    tz: str,
    threshold: float | None,
    title: str | None,
    outputs: tuple[str, ...],
) -> None:
    """Plot a sensor's values with its models' anomaly scores to a PNG or an interactive HTML file."""
    for output in outputs:
        if Path(output).suffix.lower() not in (".png", ".html"):
            raise ValidationError({"output": [f"{output!r} must end in .png or .html"]})
    sensor = ctx.client().get_sensor(measurement, component)
    windows, _ = load_label_windows(labels, label_key, tz, sensor)
    data = sensor.get_combined_sensor_data(
        since=since,
        until=until,
        aggregation=aggregation,
        models=split_models(models),
    )
    if data.empty:
        raise InfluxHtmError(f"sensor {sensor} has no data in the given time range")
    for output in outputs:
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        written = data.plot(output, title=title, windows=windows, threshold=threshold)
        click.echo(f"wrote {written} ({len(data):,} points, models: {', '.join(data.models) or 'none'})")


@cli.command()
@click.argument("measurement")
@click.argument("component")
@click.option("--model", "model_id", required=True, help="the model id to score")
@click.option(
    "--labels", type=click.Path(dir_okay=False), required=True, help="NAB label file (combined_windows.json)"
)
@click.option(
    "--label-key", default=None, help="key in the label file (default: the one named like the component)"
)
@click.option("--tz", default="UTC", show_default=True, help="zone of the label file's naive timestamps")
@click.option(
    "--profile",
    type=click.Choice(["standard", "reward_low_FP_rate", "reward_low_FN_rate"]),
    default="standard",
    show_default=True,
    help="NAB application profile",
)
@click.option(
    "--threshold", type=float, default=None, help="detection threshold (default: NAB's for the profile)"
)
@click.option("--optimize", is_flag=True, help="use the threshold NAB's optimiser finds for this model")
@click.option(
    "--tolerance",
    default=None,
    help="let a window bound match the nearest result within this duration, e.g. 5m (default: exactly)",
)
@click.option(
    "--field",
    type=click.Choice(["anomalyScore", "logLikelihood", "anomalyLikelihood", "rawScore"]),
    default="anomalyScore",
    show_default=True,
    help="what is thresholded (logLikelihood: the log-scaled anomalyLikelihood, NAB's HTM score)",
)
@time_range_options
@click.option("--json", "as_json", is_flag=True, help="print the score as JSON")
@pass_context
@command_errors
def score(
    ctx: Context,
    measurement: str,
    component: str,
    model_id: str,
    labels: str,
    label_key: str | None,
    tz: str,
    profile: str,
    threshold: float | None,
    optimize: bool,
    tolerance: str | None,
    field: str,
    since: int | None,
    until: int | None,
    as_json: bool,
) -> None:
    """Score a model's stored results with the Numenta Anomaly Benchmark (NAB)."""
    from influxhtm.tools.scoring import score_store

    sensor = ctx.client().get_sensor(measurement, component)
    store = sensor.get_htm_model(model_id)
    windows, key = load_label_windows(labels, label_key, tz, sensor)
    result = score_store(
        store,
        windows,
        profile=profile,
        threshold=threshold,
        optimize=optimize,
        field=field,
        since=since,
        until=until,
        tolerance=tolerance,
    )
    if as_json:
        click.echo(
            json.dumps(
                {"measurement": measurement, "component": component, "label_key": key, **result.to_dict()},
                indent=2,
            )
        )
        return
    s = result.score
    normalized = "-" if s.normalized is None else f"{s.normalized:.2f}"
    click.echo(f"NAB score of model {model_id!r} of {sensor} ({key}), profile {profile}, field {field}")
    click.echo(f"  threshold   {s.threshold!r} ({result.threshold_rule})")  # repr: every digit
    click.echo(f"  raw score   {s.raw:.6f}   (null {s.null:g}, perfect {s.perfect:g})")
    click.echo(f"  normalised  {normalized}   (100 = perfect, 0 = a detector that never fires)")
    click.echo(
        f"  windows     {s.windows} scored: {s.tp} detected, {s.fn} missed"
        + (f"; {s.windows_unscored} not scored" if s.windows_unscored else "")
    )
    click.echo(
        f"  detections  {s.detections_in_windows} in windows, {s.detections_outside_windows} outside "
        f"(false positives)"
    )
    click.echo(f"  points      {s.points:,} ({s.probation:,} probationary)")


# --------------------------------------------------------------------------- sweep


@cli.command("sweep")
@click.option(
    "--sensor",
    "sensor_pairs",
    nargs=2,
    multiple=True,
    required=True,
    metavar="MEASUREMENT COMPONENT",
    help="a sensor to run over (repeatable)",
)
@click.option("--engine", "-e", required=True, help="engine name")
@click.option(
    "--grid",
    required=True,
    help='parameter grid: JSON text or file, e.g. {"num_s": [256, 512], "min_val": [0], "max_val": [100]}',
)
@time_range_options
@click.option("--aggregation", default=None, help="feed one mean per bucket, e.g. 10m")
@click.option(
    "--executor",
    type=click.Choice(["process", "dask"]),
    default="process",
    show_default=True,
    help="local process pool, or Dask (a local cluster, or --scheduler)",
)
@click.option("--workers", type=int, default=None, help="worker processes (default: one per CPU)")
@click.option("--scheduler", default=None, help="dask: address of a running scheduler (tcp://host:8786)")
@click.option("--json", "as_json", is_flag=True, help="print the result rows as JSON")
@click.option(
    "--progress/--no-progress", default=None, help="show a progress bar (default: when stderr is a terminal)"
)
@pass_context
@command_errors
def sweep_command(
    ctx: Context,
    sensor_pairs: tuple[tuple[str, str], ...],
    engine: str,
    grid: str,
    since: int | None,
    until: int | None,
    aggregation: str | None,
    executor: str,
    workers: int | None,
    scheduler: str | None,
    as_json: bool,
    progress: bool | None,
) -> None:
    """Run an engine with every parameter set of a grid over sensors, one model per (sensor, set)."""
    from influxhtm.running import sweep
    from influxhtm.running.sweep import local_dask_cluster

    client = ctx.client()
    sensors_ = [client.get_sensor(m, c) for m, c in sensor_pairs]
    param_grid = parse_json_option(grid, "grid")
    if not isinstance(param_grid, (dict, list)):
        raise ValidationError({"grid": [f"{grid!r} is not a JSON object (or a list of objects)"]})
    lo, hi = since, until
    pool: Any
    if executor == "dask":
        try:
            from dask.distributed import Client
        except ImportError as error:
            raise InfluxHtmError(
                f"--executor dask needs dask[distributed] (pip install 'dask[distributed]'): {error}"
            ) from None
        cluster = None
        if scheduler is None:
            cluster = local_dask_cluster(workers)
        pool = Client(scheduler or cluster)
        try:
            frame = sweep(
                sensors_, param_grid, engine, since=lo, until=hi, aggregation=aggregation, executor=pool,
                progress=show_progress(progress),
            )
        finally:
            pool.close()
            if cluster is not None:
                cluster.close()
    else:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
            frame = sweep(
                sensors_, param_grid, engine, since=lo, until=hi, aggregation=aggregation, executor=pool,
                progress=show_progress(progress),
            )
    records = frame.astype(object).where(frame.notna(), None).to_dict("records")
    if as_json:
        click.echo(json.dumps(records, indent=2, default=str))
    else:
        from influxhtm.tools.text_table import format_table

        columns = ["sensor", "model_id", "points", "results", "elapsed", "params", "error"]
        rows = [
            [r[c] if c != "params" else json.dumps(r[c], sort_keys=True) for c in columns] for r in records
        ]
        click.echo(format_table(columns, rows))
    failed = [r for r in records if r["error"]]
    if failed:
        raise InfluxHtmError(f"{len(failed)} of {len(records)} runs failed (first: {failed[0]['error']})")


# --------------------------------------------------------------------------- demo


@cli.command()
@click.option(
    "--output-dir",
    "-o",
    type=click.Path(file_okay=False),
    default="demo-output",
    show_default=True,
    help="where the plots and scores.json go",
)
@click.option(
    "--keep-server",
    is_flag=True,
    help="keep the managed influxd running afterwards (data in OUTPUT_DIR/influxdb), until Ctrl-C",
)
@create_option
@click.option(
    "--progress/--no-progress", default=None, help="show progress bars (default: when stderr is a terminal)"
)
@pass_context
@command_errors
def demo(ctx: Context, output_dir: str, keep_server: bool, create: bool, progress: bool | None) -> None:
    """Import NAB data, run a real HTM engine, replay Numenta's results, score both with NAB, plot them.

    Without --host or INFLUX_HOST it starts a managed local influxd (removed
    afterwards unless --keep-server).
    """
    from influxhtm.tools.demo import SERIES, run_demo

    series_name = Path(SERIES).stem

    started = time.perf_counter()
    local = None
    if ctx.names_a_server:
        client = ctx.client(create=create)
        click.echo(f"Using InfluxDB at {client.settings.url}, database {client.database!r}")
    else:
        from influxhtm.tools.server import LocalInfluxd

        data_dir = Path(output_dir) / "influxdb" if keep_server else None
        local = LocalInfluxd(data_dir)
        click.echo("Starting a managed local influxd (no INFLUX_HOST given) ...")
        local.start()
        click.echo(f"      influxd at {local.url}")
        client = ctx.client(
            host=local.host, port=local.port, ssl=False, username=None, password=None, create=create
        )
    try:
        client.ping()
        result = run_demo(client, output_dir, echo=click.echo, progress=show_progress(progress))
        click.echo("")
        click.echo(
            f"NAB scores, {series_name} ({result.rows[0].points:,} points); normalised per series, "
            "100 = perfect, 0 = a detector that never fires:"
        )
        click.echo(result.table)
        click.echo(
            "thresholds (standard/low FP/low FN): 'NAB default' = NAB's thresholds for Numenta's HTM; "
            "'optimised' = the best for this model (NAB's optimiser)."
        )
        click.echo(
            "brainblocks' anomaly score is its log-scaled anomaly likelihood, as Numenta's. "
            "Detections in/outside the labelled windows: standard profile."
        )
        click.echo(f"Raw scores and all counts: {result.scores_json}")
        click.echo(f"Plots: {result.png}  {result.html}")
        click.echo(f"Done in {time.perf_counter() - started:.0f} s.")
        if local is not None and keep_server:
            click.echo(f"influxd keeps running at {local.url} (data in {local.data_dir}); try:")
            click.echo(f"  influxhtm --host {local.host} --port {local.port} -d {client.database} sensors")
            wait_for_interrupt(local, "Ctrl-C to stop.")
    finally:
        client.close()
        if local is not None:
            local.stop()


# --------------------------------------------------------------------------- fleet


@cli.command("fleet")
@click.argument("measurements", nargs=-1)
@click.option("--regex", default=None, help="also every measurement whose name matches this regex")
@click.option("--tag", "tags", multiple=True, help="only series with this tag: key=value (repeatable)")
@click.option("--engine", "-e", default="brainblocks", show_default=True, help="engine name")
@click.option("--params", default=None, help="engine parameters as JSON, for every sensor")
@click.option("--overrides", default=None,
              help='per-sensor parameters as JSON: {"measurement/component": {...}}')
@click.option("--id", "model_id", default=None,
              help="model id (default: engine and a hash of the parameters)")
@click.option("--checkpoint-dir", default="influxhtm-fleet", show_default=True,
              help="where models are checkpointed (shared by every worker on a cluster)")
@click.option("--max-models", type=int, default=None, help="at most this many models in memory per process")
@click.option("--mode", type=click.Choice(["subscription", "poll"]), default="subscription",
              show_default=True, help="how new points are noticed")
@click.option("--poll-interval", type=float, default=1.0, show_default=True, help="seconds between polls")
@click.option("--checkpoint-every", type=int, default=1000, show_default=True,
              help="checkpoint a model after this many points")
@click.option("--since", default=None,
              help="sensors without a checkpoint start here (ISO 8601; default: their first point)")
@click.option("--scheduler", default=None, help="dask: address of a running scheduler (tcp://host:8786)")
@click.option("--replace-grace", type=float, default=10.0, show_default=True,
              help="dask: seconds a worker's sensors wait for a replacement of its name before they move")
@pass_context
@command_errors
def fleet_command(
    ctx: Context, measurements: tuple[str, ...], regex: str | None, tags: tuple[str, ...], engine: str,
    params: str | None, overrides: str | None, model_id: str | None, checkpoint_dir: str,
    max_models: int | None, mode: str, poll_interval: float, checkpoint_every: int, since: str | None,
    scheduler: str | None, replace_grace: float,
) -> None:
    """Keep a live model for every sensor of MEASUREMENTS (and --regex); Ctrl-C checkpoints and stops."""
    from influxhtm.running.fleet import Fleet, status_line

    pairs = [tag.split("=", 1) for tag in tags]
    if any(len(pair) != 2 for pair in pairs):
        raise ValidationError({"tag": [f"{tags!r}: give each as key=value"]})
    per_sensor = parse_json_option(overrides, "overrides") or {}
    if not isinstance(per_sensor, dict):
        raise ValidationError({"overrides": [f"{overrides!r} is not a JSON object"]})
    fleet = Fleet(
        ctx.client(), list(measurements) or None, regex=regex, tags=dict(pairs), engine=engine,
        params=parse_params(params), overrides=per_sensor, model_id=model_id, checkpoint_dir=checkpoint_dir,
        max_models=max_models, mode=mode, poll_interval=poll_interval, checkpoint_every=checkpoint_every,
        since=since, scheduler=scheduler, replace_grace=replace_grace,
    )
    previous = {}
    if threading.current_thread() is threading.main_thread():  # signals can only be caught there
        previous = {sig: signal.signal(sig, lambda *_: fleet.stop())
                    for sig in (signal.SIGINT, signal.SIGTERM)}
    last = [time.monotonic(), 0]
    interactive = sys.stderr.isatty()

    def show(status: dict[str, Any]) -> None:
        now = time.monotonic()
        rate = (status.get("points", 0) - last[1]) / max(now - last[0], 1e-9)
        last[0], last[1] = now, status.get("points", 0)
        line = status_line(status, rate)
        click.echo(f"\r{line}\033[K" if interactive else line, err=True, nl=not interactive)

    click.echo(f"fleet over {', '.join(measurements) or regex} with {engine} (Ctrl-C to stop)", err=True)
    try:
        report = fleet.run(on_status=show)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if interactive:
        click.echo("", err=True)
    click.echo(f"stopped: {report.sensors} sensors, {report.points} points, {report.results} results, "
               f"{report.errors} errors; every model checkpointed in {checkpoint_dir}")
    for sensor, error in sorted(report.failed.items()):
        click.echo(f"  {sensor}: {error}", err=True)


def main() -> None:
    """Entry point of the `influxhtm` console script."""
    cli(prog_name="influxhtm")


if __name__ == "__main__":
    main()
