"""Every usage example of the original influxhtm README, run as written (Python 3 print).

The original README (2016), reproduced here for the examples:

    client = InfluxHtmClient(
      "database-name",
      host="localhost",
      port=8086,
      username="username",
      password="password",
      ssl=True
    )

    INFLUX_HOST=127.0.0.1
    INFLUX_PORT=8086
    INFLUX_USER=username
    INFLUX_PASS=password
    INFLUX_SSL=1

    sensor = client.createSensor(
      measurement="power", component="coffee-machine"
    )
    sensor.write({
      "time": datetime.datetime.now(),
      "value": 23.33
    })

    for sensor in client.listSensors():
      print sensor

    htmModelStore = sensor.createHtmModel("unique-id")

    for point in sensor.getData(limit=1000):
      # Process each data point through an HTM here.
      results = myHtmModel.run(point)
      htmModelStore.writeResult(results)

    data = sensor.getCombinedSensorData(since=oneWeekAgo, aggregation="10m")
"""

import datetime

import pytest

from influxhtm import InfluxHtmClient


class MyHtmModel:
    """A stand-in HTM model: a result that carries the point's time, as NuPIC's does."""

    def __init__(self):
        self.seen = 0

    def run(self, point):
        self.seen += 1
        return {
            "timestamp": point.time,
            "inferences": {"anomalyScore": (self.seen % 7) / 7.0},
            "anomalyLikelihood": 0.5,
        }


def test_client_with_keyword_credentials_does_no_io():
    client = InfluxHtmClient(
        "database-name", host="localhost", port=8086, username="username", password="password", ssl=True
    )
    assert client.settings.url == "https://localhost:8086"
    assert client.settings.username == "username" and client.settings.password == "password"
    assert "password" not in repr(client) and "password" not in repr(client.settings)


def test_client_from_environment_variables(monkeypatch):
    monkeypatch.setenv("INFLUX_HOST", "127.0.0.1")
    monkeypatch.setenv("INFLUX_PORT", "8086")
    monkeypatch.setenv("INFLUX_USER", "username")
    monkeypatch.setenv("INFLUX_PASS", "password")
    monkeypatch.setenv("INFLUX_SSL", "1")
    client = InfluxHtmClient("database-name")
    s = client.settings
    assert (s.host, s.port, s.username, s.password, s.ssl) == (
        "127.0.0.1",
        8086,
        "username",
        "password",
        True,
    )


@pytest.fixture
def env_client(influxd, monkeypatch):
    """The README's client, configured only through INFLUX_* variables, on a fresh database."""
    monkeypatch.setenv("INFLUX_HOST", influxd.host)
    monkeypatch.setenv("INFLUX_PORT", str(influxd.port))
    monkeypatch.setenv("INFLUX_SSL", "0")
    client = InfluxHtmClient("database-name")
    client.drop_database()
    yield client
    client.drop_database()


def test_the_readme_line_by_line(env_client, capsys):
    client = env_client
    sensor = client.createSensor(measurement="power", component="coffee-machine")
    sensor.write({"time": datetime.datetime.now(), "value": 23.33})
    # a little more history, so that the loop and the aggregation have something to do
    now = datetime.datetime.now()
    for minutes in range(1, 120):
        sensor.write({"time": now - datetime.timedelta(minutes=minutes), "value": float(minutes)})

    for sensor in client.listSensors():
        print(sensor)
    assert capsys.readouterr().out.strip() == "power/coffee-machine"

    myHtmModel = MyHtmModel()
    htmModelStore = sensor.createHtmModel("unique-id")

    for point in sensor.getData(limit=1000):
        # Process each data point through an HTM here.
        results = myHtmModel.run(point)
        htmModelStore.writeResult(results)

    assert myHtmModel.seen == 120
    assert len(htmModelStore.get_results()) == 120

    oneWeekAgo = datetime.datetime.now() - datetime.timedelta(days=7)
    data = sensor.getCombinedSensorData(since=oneWeekAgo, aggregation="10m")
    assert data.columns[:4] == ("time", "value", "unique-id.anomalyScore", "unique-id.anomalyLikelihood")
    assert 12 <= len(data.values) <= 14
    assert all(row[3] == 0.5 for row in data.values)
    as_dict = data.to_dict()
    assert as_dict["series"][0]["columns"][:4] == list(data.columns[:4])
    # the write of datetime.now() is the local wall clock read as UTC (naive = UTC, as influxdb-python,
    # which the original used, reads it): the present instant only where local time is UTC
    latest = sensor.get_data(limit=1)[0].time
    wall_clock_as_utc = datetime.datetime.now().replace(tzinfo=datetime.UTC)
    assert abs((latest - wall_clock_as_utc).total_seconds()) < 60
