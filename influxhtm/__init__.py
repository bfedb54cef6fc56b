"""influxhtm: InfluxDB for Hierarchical Temporal Memory systems.

Importing the package reads no environment variable and opens no connection.
"""

from ._version import __version__
from .errors import (
    AlreadyExists,
    AuthenticationError,
    ConfigurationError,
    InfluxConnectionError,
    InfluxdNotFound,
    InfluxHtmError,
    ModelExists,
    ModelNotFound,
    NotFound,
    PartialWriteError,
    QueryError,
    SensorNotFound,
    ServerError,
    ServerStartError,
    ValidationError,
)
from .server import LocalInfluxd
from .settings import Settings

__all__ = [
    "__version__",
    "AlreadyExists",
    "AuthenticationError",
    "ConfigurationError",
    "InfluxConnectionError",
    "InfluxdNotFound",
    "InfluxHtmError",
    "LocalInfluxd",
    "ModelExists",
    "ModelNotFound",
    "NotFound",
    "PartialWriteError",
    "QueryError",
    "SensorNotFound",
    "ServerError",
    "ServerStartError",
    "Settings",
    "ValidationError",
]
