"""Fixtures shared by every test module.

The InfluxDB fixtures (`influxd`, `influx_settings`, `influx_database`, `influx_client`)
come from influxhtm's own pytest plugin, registered through its `pytest11` entry point;
`client` below is the `InfluxHtmClient` most tests work with.
"""

from collections.abc import Iterator

import pytest

from influxhtm.htm.client import InfluxHtmClient


@pytest.fixture
def client(influx_settings, influx_database) -> Iterator[InfluxHtmClient]:
    """An `InfluxHtmClient` on the test's fresh database; its connection is closed afterwards."""
    with InfluxHtmClient.from_settings(influx_database, influx_settings) as client:
        yield client
