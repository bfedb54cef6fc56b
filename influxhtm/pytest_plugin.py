"""pytest fixtures for tests that need a real InfluxDB: registered as the `influxhtm` plugin.

- `influxd` (session): a managed `LocalInfluxd`, or the external server named by
  `INFLUX_HOST` when that is set.
- `influx_settings` (function): `Settings` pointing at that server.
- `influx_client` (function): an `influxdb.InfluxDBClient` on a fresh database,
  dropped afterwards.
- `influx_database` (function): the name of a fresh database, dropped afterwards.
"""

from __future__ import annotations

import os
import uuid
from typing import Any, Iterator

import attrs
import pytest

from influxhtm.io.settings import Settings


@attrs.frozen
class ExternalInfluxd:
    """An existing server, named by `INFLUX_*` variables, used instead of a managed one."""

    settings: Settings

    @property
    def host(self) -> str:
        return self.settings.host

    @property
    def port(self) -> int:
        return self.settings.port

    @property
    def url(self) -> str:
        return self.settings.url


def server_settings(server: Any) -> Settings:
    """Settings for a `LocalInfluxd` or an `ExternalInfluxd`."""
    if isinstance(server, ExternalInfluxd):
        return server.settings
    return Settings(host=server.host, port=server.port, ssl=getattr(server, "ssl", False), verify_ssl=False)


@pytest.fixture(scope="session")
def influxd() -> Iterator[Any]:
    """A real InfluxDB for the whole test session."""
    if os.environ.get("INFLUX_HOST"):
        yield ExternalInfluxd(Settings.resolve())
        return
    from influxhtm.tools.server import LocalInfluxd

    server = LocalInfluxd()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def influx_settings(influxd: Any) -> Settings:
    return server_settings(influxd)


@pytest.fixture
def influx_database(influx_settings: Settings) -> Iterator[str]:
    """A fresh, empty database name (created), dropped after the test."""
    from influxhtm.io.connection import Connection

    name = f"test_{uuid.uuid4().hex[:12]}"
    connection = Connection(influx_settings)
    connection.query(f'CREATE DATABASE "{name}"', method="POST")
    try:
        yield name
    finally:
        connection.query(f'DROP DATABASE "{name}"', method="POST")
        connection.close()


@pytest.fixture
def influx_client(influx_settings: Settings, influx_database: str) -> Iterator[Any]:
    """An `influxdb.InfluxDBClient` on a fresh database, dropped afterwards."""
    from influxhtm.io.connection import Connection

    connection = Connection(influx_settings)
    client = connection.influxdb_client(influx_database)
    try:
        yield client
    finally:
        client.close()
        connection.close()
