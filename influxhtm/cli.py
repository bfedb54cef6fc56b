"""The `influxhtm` command line.

Connection options sit on the group and fall back to `INFLUX_*` variables.
Errors end with exit code 1 and one line on stderr; `--debug` shows the traceback.
"""

from __future__ import annotations

import functools
import signal
import sys
import time
from typing import Any, Callable

import click

from ._version import __version__
from .errors import InfluxHtmError


class Context:
    """What the group's options say, handed to every command."""

    def __init__(self, **options: Any):
        self.options = options
        self.debug: bool = options.pop("debug", False)

    def client(self) -> Any:
        """An `InfluxHtmClient` from the group's options (and `INFLUX_*`)."""
        from .client import InfluxHtmClient

        o = self.options
        return InfluxHtmClient(
            o["database"], host=o["host"], port=o["port"], username=o["username"],
            password=o["password"], ssl=o["ssl"],
        )


def command_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn influxhtm's errors into one line and exit code 1 (the traceback only with --debug)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        ctx = click.get_current_context()
        debug = isinstance(ctx.obj, Context) and ctx.obj.debug
        try:
            return func(*args, **kwargs)
        except (InfluxHtmError, OSError, ValueError) as error:
            if debug:
                raise
            click.echo(f"Error: {error}".splitlines()[0], err=True)
            sys.exit(1)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="influxhtm")
@click.option("--host", default=None, help="InfluxDB host [INFLUX_HOST, localhost]")
@click.option("--port", default=None, help="InfluxDB port [INFLUX_PORT, 8086]")
@click.option("--username", default=None, help="user name [INFLUX_USER]")
@click.option("--password", default=None, help="password [INFLUX_PASS]")
@click.option("--ssl/--no-ssl", default=None, help="use HTTPS [INFLUX_SSL]")
@click.option("--database", "-d", default="influxhtm", show_default=True, help="database name")
@click.option("--debug", is_flag=True, help="show tracebacks")
@click.pass_context
def cli(ctx: click.Context, **options: Any) -> None:
    """influxhtm: InfluxDB sensors, HTM models and their results."""
    ctx.obj = Context(**options)


@cli.command()
@click.option("--data-dir", type=click.Path(file_okay=False), default=None,
              help="keep the data here (default: a temporary directory, removed on exit)")
@click.option("--port", "server_port", type=int, default=None, help="HTTP port (default: a free one)")
@command_errors
def server(data_dir: str | None, server_port: int | None) -> None:
    """Run a managed local influxd in the foreground until Ctrl-C."""
    from .server import LocalInfluxd

    local = LocalInfluxd(data_dir, port=server_port)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with local:
        click.echo(f"influxd running at {local.url} (pid {local.pid}, data in {local.data_dir})")
        click.echo(f"export INFLUX_HOST={local.host} INFLUX_PORT={local.port}")
        click.echo("Ctrl-C to stop.")
        try:
            while local.running:
                time.sleep(0.5)
        except KeyboardInterrupt:
            click.echo("stopping influxd")
        if not local.running and local.process is not None:
            raise InfluxHtmError(f"influxd exited unexpectedly:\n{local.log_tail()}")


def main() -> None:
    """Entry point of the `influxhtm` console script."""
    cli(prog_name="influxhtm")


if __name__ == "__main__":
    main()
