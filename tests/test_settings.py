"""Connection settings: argument over environment over default; SSL spellings; ports; no password leaks."""

import logging

import pytest

from influxhtm.core.errors import ConfigurationError, InfluxConnectionError
from influxhtm.io.connection import Connection
from influxhtm.io.settings import Settings

ENV = {"INFLUX_HOST": "envhost", "INFLUX_PORT": "9999", "INFLUX_USER": "envuser", "INFLUX_PASS": "envpass"}


def test_defaults_without_environment():
    s = Settings.resolve(environ={})
    assert (s.host, s.port, s.username, s.password, s.ssl) == ("localhost", 8086, None, None, False)


def test_environment_over_default():
    s = Settings.resolve(environ={**ENV, "INFLUX_SSL": "1"})
    assert (s.host, s.port, s.username, s.password, s.ssl) == ("envhost", 9999, "envuser", "envpass", True)


def test_argument_over_environment():
    s = Settings.resolve("arghost", 1234, "arguser", "argpass", False, environ={**ENV, "INFLUX_SSL": "yes"})
    assert (s.host, s.port, s.username, s.password, s.ssl) == ("arghost", 1234, "arguser", "argpass", False)


def test_real_environment_is_read_at_resolve_time(monkeypatch):
    monkeypatch.setenv("INFLUX_HOST", "fromenv")
    assert Settings.resolve().host == "fromenv"
    monkeypatch.delenv("INFLUX_HOST")
    assert Settings.resolve().host == "localhost"


@pytest.mark.parametrize("text", ["1", "true", "TRUE", "True", "yes", "YES", "on", "On", " on "])
def test_ssl_true_spellings(text):
    assert Settings.resolve(environ={"INFLUX_SSL": text}).ssl is True


@pytest.mark.parametrize("text", ["0", "false", "FALSE", "no", "No", "off", "OFF", ""])
def test_ssl_false_spellings(text):
    assert Settings.resolve(environ={"INFLUX_SSL": text}).ssl is False


def test_ssl_nonsense_is_refused():
    with pytest.raises(ConfigurationError, match="INFLUX_SSL='maybe'"):
        Settings.resolve(environ={"INFLUX_SSL": "maybe"})


@pytest.mark.parametrize("port", ["0", "65536", "-1", "http", "80.5", 0, 70000, 3.5, True])
def test_bad_port_is_refused(port):
    with pytest.raises(ConfigurationError, match="port"):
        Settings.resolve(port=port, environ={})


def test_bad_port_from_environment_names_the_variable():
    with pytest.raises(ConfigurationError, match="INFLUX_PORT='abc'"):
        Settings.resolve(environ={"INFLUX_PORT": "abc"})


@pytest.mark.parametrize("port", ["1", "65535", 8086, " 8087 "])
def test_good_ports(port):
    assert 1 <= Settings.resolve(port=port, environ={}).port <= 65535


def test_password_hidden_in_repr_errors_and_logs(caplog):
    secret = "s3cr3t-Pa55"
    from influxhtm.tools.server import free_port

    s = Settings.resolve("127.0.0.1", free_port(), "user", secret, environ={}, retries=2, backoff=0.01)
    connection = Connection(s)
    assert secret not in repr(s) and secret not in s.url and secret not in repr(connection)
    with caplog.at_level(logging.DEBUG):
        with pytest.raises(InfluxConnectionError) as info:
            connection.ping()
    assert "127.0.0.1" in str(info.value)
    assert secret not in str(info.value) and secret not in repr(info.value)
    assert "retry" in caplog.text and secret not in caplog.text


def test_unknown_setting_and_bad_host_are_named():
    with pytest.raises(ConfigurationError, match="'timeot'"):
        Settings.resolve(environ={}, timeot=5)
    with pytest.raises(ConfigurationError, match="host=5"):
        Settings.resolve(host=5, environ={})


def test_proxy_variables_are_read_once_when_the_client_is_made(influx_settings, influx_database, monkeypatch):
    """requests would scan the environment on every request (more CPU than the rest of a write's
    POST); the connection reads it once: a proxy named when the client is made is used for its
    life, NO_PROXY is honoured, and a client made later sees the change."""
    import attrs

    from influxhtm import InfluxHtmClient
    from influxhtm.tools.server import free_port

    settings = attrs.evolve(influx_settings, retries=0, timeout=5)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    proxied = InfluxHtmClient.from_settings(influx_database, settings)
    with pytest.raises(InfluxConnectionError):
        proxied.ping()
    monkeypatch.setenv("NO_PROXY", settings.host)
    bypassing = InfluxHtmClient.from_settings(influx_database, settings)
    assert bypassing.ping().startswith("1.")
    monkeypatch.delenv("HTTP_PROXY")
    with pytest.raises(InfluxConnectionError):
        proxied.ping()  # its environment was read when it was made
    assert InfluxHtmClient.from_settings(influx_database, settings).ping().startswith("1.")
