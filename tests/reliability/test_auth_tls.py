"""Authentication and TLS on the real managed influxd.

- `auth-enabled = true`: the right credentials work; wrong or missing ones raise
  `AuthenticationError` at once (not retried) with no password in it; the password
  is absent from every repr, log line, exception and printed output.
- `https-enabled` with a self-signed certificate made here: `ssl=True` connects;
  certificate verification is on by default (an untrusted certificate fails fast with
  `TLSError`, never retried); it can be turned off explicitly or pointed at a CA file.
"""

from __future__ import annotations

import logging
import time
import uuid
import warnings

import pytest
from user_visible import all_text

from influxhtm.core.errors import AuthenticationError, InfluxConnectionError, QueryError, TLSError
from influxhtm.io.connection import Connection
from influxhtm.io.settings import Settings
from influxhtm.tools.server import LocalInfluxd

PASSWORD = "Adm1n-pa55-Zq7x"
WRONG = "Wr0ng-pa55-Kp3y"
READER_PASSWORD = "R3ader-pa55-Jt8w"


@pytest.fixture(scope="module")
def auth_server(auth_server_with_admin):
    with auth_server_with_admin(PASSWORD) as server:
        yield server


def settings_for(server, username=None, password=None, **options) -> Settings:
    return Settings(host=server.host, port=server.port, username=username, password=password,
                    ssl=server.ssl, **{"backoff": 0.5, "retries": 5, **options})


def test_right_credentials_work(auth_server):
    with Connection(settings_for(auth_server, "admin", PASSWORD)) as admin:
        database = f"auth_{uuid.uuid4().hex[:8]}"
        admin.query(f'CREATE DATABASE "{database}"', method="POST")
        admin.write("secured v=1.5 10\nsecured v=2.5 20", database=database)
        result = admin.query("SELECT v FROM secured", database=database)
        assert result[0]["series"][0]["values"] == [[10, 1.5], [20, 2.5]]


@pytest.mark.parametrize("username, password", [("admin", WRONG), ("nobody", PASSWORD), (None, None)],
                         ids=["wrong-password", "unknown-user", "no-credentials"])
def test_wrong_credentials_raise_authentication_error_without_password(
    auth_server, username, password, caplog, capsys
):
    settings = settings_for(auth_server, username, password, backoff=5.0)
    connection = Connection(settings)
    started = time.monotonic()
    with caplog.at_level(logging.DEBUG):
        with pytest.raises(AuthenticationError) as info:
            connection.query("SHOW DATABASES")
        with pytest.raises(AuthenticationError) as write_info:
            connection.write("m v=1 1", database="anything")
    assert time.monotonic() - started < 0.5 * settings.backoff  # not retried (a retry waits 2.5 s or more)
    error = info.value
    assert error.status == 401 and settings.url in str(error) and error.url == settings.url
    if username:
        assert repr(username) in str(error)
    else:
        assert "INFLUX_USER" in str(error)  # the hint says how to give credentials
    out, err = capsys.readouterr()
    seen = all_text(error, write_info.value, settings, connection) + caplog.text + out + err
    assert PASSWORD not in seen and WRONG not in seen
    assert "retry" not in caplog.text


def test_user_without_privileges_is_refused_with_authentication_error(auth_server, caplog):
    with Connection(settings_for(auth_server, "admin", PASSWORD)) as admin:
        admin.query(f"CREATE USER reader WITH PASSWORD '{READER_PASSWORD}'", method="POST")
        admin.query('CREATE DATABASE "private"', method="POST")
    reader = Connection(settings_for(auth_server, "reader", READER_PASSWORD))
    with caplog.at_level(logging.DEBUG):
        with pytest.raises(AuthenticationError) as info:
            reader.write("m v=1 1", database="private")
    assert info.value.status == 403 and "'reader'" in str(info.value)
    assert READER_PASSWORD not in all_text(info.value, reader) + caplog.text


def test_password_in_a_failing_statement_is_redacted(auth_server, caplog):
    with Connection(settings_for(auth_server, "admin", PASSWORD)) as admin:
        with caplog.at_level(logging.DEBUG):
            admin.query(f"CREATE USER twice WITH PASSWORD '{READER_PASSWORD}'", method="POST")
            with pytest.raises(QueryError) as info:  # InfluxDB: "user already exists"
                admin.query(f"CREATE USER twice WITH PASSWORD '{WRONG}'", method="POST")
            # a statement with a password goes in the body even when called as GET (which
            # InfluxDB would refuse for SET PASSWORD), so no URL and no log line carries it
            admin.query(f"SET PASSWORD FOR twice = '{WRONG}'")
    assert "user already exists" in str(info.value)
    assert "PASSWORD '***'" in str(info.value)
    assert WRONG not in all_text(info.value) + caplog.text
    assert READER_PASSWORD not in caplog.text  # the statement travelled in the body, not the URL


def test_unreachable_server_error_has_no_password(caplog):
    from influxhtm.tools.server import free_port

    settings = Settings(host="127.0.0.1", port=free_port(), username="admin", password=PASSWORD,
                        retries=1, backoff=0.01)
    with caplog.at_level(logging.DEBUG):
        with pytest.raises(InfluxConnectionError) as info:
            Connection(settings).query(f"SET PASSWORD FOR admin = '{WRONG}'", method="POST")
    assert settings.url in str(info.value)
    seen = all_text(info.value, settings) + caplog.text
    assert PASSWORD not in seen and WRONG not in seen


# -- TLS ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tls_server(tls_files):
    config = {"http": {"https-enabled": True, "https-certificate": str(tls_files.certificate),
                       "https-private-key": str(tls_files.private_key)}}
    with LocalInfluxd(config=config) as server:  # readiness over https works
        assert server.url.startswith("https://127.0.0.1:")
        yield server


def test_self_signed_certificate_fails_by_default_and_is_not_retried(tls_server, caplog):
    settings = settings_for(tls_server, backoff=5.0, retries=5)
    assert settings.ssl and settings.verify_ssl is True  # verification is on by default
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="influxhtm.io.connection"):
        with pytest.raises(TLSError) as info:
            Connection(settings).ping()
    assert time.monotonic() - started < 2.0  # the first backoff alone would take 2.5 s or more
    assert "retry" not in caplog.text
    message = str(info.value)
    assert "certificate verify failed" in message and "verify_ssl" in message
    assert settings.url in message and message.startswith("TLS with InfluxDB at https://")
    assert isinstance(info.value, InfluxConnectionError)


def test_ssl_true_with_a_ca_file_connects(tls_server, tls_files):
    settings = settings_for(tls_server, verify_ssl=str(tls_files.certificate))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a verified connection warns about nothing
        with Connection(settings) as connection:
            assert connection.ping().startswith("1.")
            database = f"tls_{uuid.uuid4().hex[:8]}"
            connection.query(f'CREATE DATABASE "{database}"', method="POST")
            connection.write("tls v=4.5 7", database=database)
            result = connection.query("SELECT v FROM tls", database=database)
            assert result[0]["series"][0]["values"] == [[7, 4.5]]


def test_ca_file_from_the_environment(tls_server, tls_files):
    settings = Settings.resolve(tls_server.host, tls_server.port, ssl=True,
                                environ={"INFLUX_VERIFY_SSL": str(tls_files.certificate)})
    assert settings.verify_ssl == str(tls_files.certificate)
    assert Connection(settings).ping().startswith("1.")


def test_requests_ca_bundle_serves_when_verify_ssl_is_left_on_and_an_explicit_setting_wins(
    tls_server, tls_files, tmp_path, monkeypatch
):
    """The variable is read once, when the connection is made, as requests would per request."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tls_files.certificate))
    assert Connection(settings_for(tls_server, retries=0)).ping().startswith("1.")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "no-such-ca.pem"))
    explicit = settings_for(tls_server, retries=0, verify_ssl=str(tls_files.certificate))
    assert Connection(explicit).ping().startswith("1.")  # the given CA, not the variable's


def test_verification_can_be_turned_off_explicitly(tls_server):
    settings = settings_for(tls_server, verify_ssl=False)
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        assert Connection(settings).ping().startswith("1.")
    off = Settings.resolve(tls_server.host, tls_server.port, ssl=True, environ={"INFLUX_VERIFY_SSL": "false"})
    assert off.verify_ssl is False


def test_a_missing_ca_file_is_a_configuration_error(tmp_path):
    from influxhtm.core.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="verify_ssl="):
        Settings(ssl=True, verify_ssl=str(tmp_path / "missing.pem"))


def test_https_to_a_plain_http_server_fails_fast(influx_settings):
    settings = Settings(host=influx_settings.host, port=influx_settings.port, ssl=True, backoff=5.0)
    started = time.monotonic()
    with pytest.raises(TLSError) as info:
        Connection(settings).ping()
    assert time.monotonic() - started < 2.0
    assert settings.url in str(info.value)
