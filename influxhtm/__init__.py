"""influxhtm: InfluxDB for Hierarchical Temporal Memory systems.

Importing the package reads no environment variable and opens no connection, and loads
none of pandas, numpy, matplotlib or plotly: the plotting functions are imported when first
used (module `__getattr__`), and the engines and frames import them inside the functions
that need them.
"""

from typing import TYPE_CHECKING

from influxhtm._version import __version__
from influxhtm.core.errors import (
    AlreadyExists,
    AuthenticationError,
    CheckpointInUse,
    CheckpointMismatch,
    ConfigurationError,
    DatabaseNotFound,
    InfluxConnectionError,
    InfluxdNotFound,
    InfluxHtmError,
    InfluxTimeoutError,
    ModelExists,
    ModelNotFound,
    NotFound,
    PartialWriteError,
    QueryError,
    SensorNotFound,
    ServerError,
    ServerStartError,
    TLSError,
    ValidationError,
)
from influxhtm.core.times import get_naive_times, set_naive_times
from influxhtm.htm.client import InfluxHtmClient
from influxhtm.htm.combined import CombinedData
from influxhtm.htm.model_store import HtmModelStore
from influxhtm.htm.sensor import Sensor
from influxhtm.influxql import (
    Query,
    Row,
    bottom,
    call,
    col,
    count,
    cumulative_sum,
    derivative,
    difference,
    distinct,
    first,
    integral,
    last,
    max_,
    mean,
    median,
    min_,
    mode,
    moving_average,
    non_negative_derivative,
    percentile,
    regex,
    sample,
    select,
    spread,
    stddev,
    sum_,
    top,
)
from influxhtm.io.settings import Settings
from influxhtm.model.data_layout import HtmResult, ModelRecord, SensorReading
from influxhtm.model.declarations import declaration, field, measurement, tag, timestamp
from influxhtm.model.declared_base import Declared
from influxhtm.model.line_protocol import encode, to_line
from influxhtm.orm.async_client import AsyncInfluxHtmClient
from influxhtm.orm.repository import Repository

__all__ = [
    "__version__",
    "AlreadyExists",
    "AsyncInfluxHtmClient",
    "AuthenticationError",
    "CheckpointInUse",
    "CheckpointMismatch",
    "CombinedData",
    "ConfigurationError",
    "DatabaseNotFound",
    "Declared",
    "HtmModelStore",
    "HtmResult",
    "ImportReport",
    "InfluxConnectionError",
    "InfluxTimeoutError",
    "InfluxdNotFound",
    "InfluxHtmClient",
    "InfluxHtmError",
    "LocalInfluxd",
    "ModelExists",
    "ModelNotFound",
    "ModelRecord",
    "NotFound",
    "PartialWriteError",
    "Query",
    "QueryError",
    "Repository",
    "Row",
    "RunReport",
    "Fleet",
    "Runner",
    "Sensor",
    "SensorNotFound",
    "SensorReading",
    "ServerError",
    "ServerStartError",
    "Settings",
    "TLSError",
    "ValidationError",
    "bottom",
    "call",
    "col",
    "count",
    "create_model",
    "cumulative_sum",
    "declaration",
    "derivative",
    "difference",
    "distinct",
    "encode",
    "field",
    "first",
    "get_naive_times",
    "import_csv",
    "integral",
    "last",
    "max_",
    "mean",
    "measurement",
    "median",
    "min_",
    "mode",
    "moving_average",
    "nab",
    "non_negative_derivative",
    "percentile",
    "plot",
    "plot_html",
    "plot_png",
    "regex",
    "register_engine",
    "sample",
    "select",
    "set_naive_times",
    "spread",
    "stddev",
    "sum_",
    "sweep",
    "tag",
    "timestamp",
    "to_line",
    "top",
]


#: Names imported on first use: the module that holds each (its imports are heavy).
_LAZY = {
    "nab": "", "plot": "plotting", "plot_html": "plotting", "plot_png": "plotting",
    "ImportReport": "csv_import", "import_csv": "csv_import",
    "create_model": "engines", "register_engine": "engines",
    "Runner": "running", "RunReport": "running", "sweep": "running",
    "LocalInfluxd": "server",
    "Fleet": "running.fleet",
}

if TYPE_CHECKING:
    from influxhtm.htm.plotting import plot, plot_html, plot_png
    from influxhtm.running import Runner, RunReport
    from influxhtm.running.engines import create_model, register_engine
    from influxhtm.running.fleet import Fleet
    from influxhtm.tools import nab
    from influxhtm.tools.csv_import import ImportReport, import_csv
    from influxhtm.tools.server import LocalInfluxd


def __getattr__(name: str) -> object:
    """`influxhtm.plot` and friends: import their module (numpy, pandas) only when asked for."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'influxhtm' has no attribute {name!r}")
    import importlib

    if not module:  # a submodule itself
        value: object = importlib.import_module(f".{name}", __name__)
    else:
        value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
