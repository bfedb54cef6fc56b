"""influxhtm: InfluxDB for Hierarchical Temporal Memory systems.

Importing the package reads no environment variable and opens no connection.
"""

from . import nab
from ._version import __version__
from .client import InfluxHtmClient
from .combined import CombinedData
from .csv_import import ImportReport, import_csv
from .declarations import declaration, field, measurement, tag, timestamp
from .engines import create_model, register_engine
from .errors import (
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
from .influxql import (
    Query,
    col,
    count,
    first,
    last,
    max_,
    mean,
    median,
    min_,
    mode,
    percentile,
    regex,
    select,
    spread,
    stddev,
    sum_,
)
from .line_protocol import encode, to_line
from .model_store import HtmModelStore
from .plotting import plot, plot_html, plot_png
from .records import HtmResult, ModelRecord, SensorReading
from .repository import Repository
from .running import Runner, RunReport, sweep
from .sensor import Sensor
from .server import LocalInfluxd
from .settings import Settings
from .times import get_naive_times, set_naive_times

__all__ = [
    "__version__",
    "AlreadyExists",
    "AuthenticationError",
    "CheckpointInUse",
    "CheckpointMismatch",
    "CombinedData",
    "ConfigurationError",
    "DatabaseNotFound",
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
    "RunReport",
    "Runner",
    "Sensor",
    "SensorNotFound",
    "SensorReading",
    "ServerError",
    "ServerStartError",
    "Settings",
    "TLSError",
    "ValidationError",
    "col",
    "count",
    "create_model",
    "declaration",
    "encode",
    "field",
    "first",
    "get_naive_times",
    "import_csv",
    "last",
    "max_",
    "mean",
    "measurement",
    "median",
    "min_",
    "mode",
    "nab",
    "percentile",
    "plot",
    "plot_html",
    "plot_png",
    "regex",
    "register_engine",
    "select",
    "set_naive_times",
    "spread",
    "stddev",
    "sum_",
    "sweep",
    "tag",
    "timestamp",
    "to_line",
]
