"""influxhtm: InfluxDB for Hierarchical Temporal Memory systems.

The user's vocabulary: declared measurements (`measurement`, `tag`, `field`, `timestamp`), the client,
repositories and queries, sensors, model stores, runs, and the tools around them. Errors are in the
`errors` namespace (`ih.errors.ModelNotFound`) and InfluxQL's functions in `fn` (`ih.fn.mean("value")`);
the few names of either that the README and the docs show are also here. The original influxhtm's
camelCase names are in `influxhtm.legacy`.

Importing the package reads no environment variable and opens no connection, and loads none of
pandas, numpy, matplotlib or plotly: the plotting functions, the engines, the runners and the
tools are imported when first used (module `__getattr__`).
"""

from typing import TYPE_CHECKING

from influxhtm import legacy
from influxhtm._version import __version__
from influxhtm.core import errors
from influxhtm.core.errors import CheckpointInUse, CheckpointMismatch, InfluxHtmError, ValidationError
from influxhtm.core.times import get_naive_times, set_naive_times
from influxhtm.htm.client import InfluxHtmClient
from influxhtm.htm.combined import CombinedData
from influxhtm.htm.model_store import HtmModelStore
from influxhtm.htm.sensor import Sensor
from influxhtm.influxql import Query, Row, col, derivative, mean, regex, select
from influxhtm.influxql import functions as fn
from influxhtm.io.settings import Settings
from influxhtm.model.data_layout import HtmResult, SensorReading
from influxhtm.model.declarations import declaration, field, measurement, tag, timestamp
from influxhtm.model.declared_base import Declared
from influxhtm.model.line_protocol import encode, to_line
from influxhtm.orm.repository import Repository

__all__ = [
    "__version__",
    # declared measurements
    "declaration",
    "field",
    "measurement",
    "tag",
    "timestamp",
    "Declared",
    "encode",
    "to_line",
    # client, repositories, queries
    "InfluxHtmClient",
    "AsyncInfluxHtmClient",
    "Repository",
    "Query",
    "Row",
    "Settings",
    "col",
    "regex",
    "select",
    "fn",
    "mean",
    "derivative",
    # sensors, models, runs
    "Sensor",
    "SensorReading",
    "HtmModelStore",
    "HtmResult",
    "CombinedData",
    "Runner",
    "RunReport",
    "sweep",
    "Fleet",
    "create_model",
    "register_engine",
    # tools
    "ImportReport",
    "import_csv",
    "LocalInfluxd",
    "nab",
    "plot",
    "plot_html",
    "plot_png",
    # times
    "get_naive_times",
    "set_naive_times",
    # errors
    "errors",
    "InfluxHtmError",
    "ValidationError",
    "CheckpointInUse",
    "CheckpointMismatch",
    # the original API's camelCase names
    "legacy",
]


#: Names imported on first use: the module that holds each (its imports are heavy).
_LAZY = {
    "nab": "tools", "plot": "htm.plotting", "plot_html": "htm.plotting", "plot_png": "htm.plotting",
    "ImportReport": "orm.csv_import", "import_csv": "orm.csv_import",
    "create_model": "running.engines", "register_engine": "running.engines",
    "Runner": "running", "RunReport": "running", "sweep": "running",
    "LocalInfluxd": "tools.server",
    "Fleet": "running.fleet",
    "AsyncInfluxHtmClient": "htm.async_client",
}

if TYPE_CHECKING:
    from influxhtm.htm.async_client import AsyncInfluxHtmClient
    from influxhtm.htm.plotting import plot, plot_html, plot_png
    from influxhtm.orm.csv_import import ImportReport, import_csv
    from influxhtm.running import Runner, RunReport
    from influxhtm.running.engines import create_model, register_engine
    from influxhtm.running.fleet import Fleet
    from influxhtm.tools import nab
    from influxhtm.tools.server import LocalInfluxd


def __getattr__(name: str) -> object:
    """`influxhtm.plot` and friends: import their module (numpy, pandas) only when asked for."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'influxhtm' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{module}", __name__), name, None)
    if value is None:  # a module of its own (nab)
        value = importlib.import_module(f".{module}.{name}", __name__)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
