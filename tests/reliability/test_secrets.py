"""Secrets stay out of URLs, errors, reprs and logs (issue 12, item 11), on a real auth-enabled influxd.

What is sent is read from the server's own HTTP log (`log-enabled`): it records
each request line (method, path and query string) and never a body. A statement
with bound parameters, and any statement that is not a read, must travel in the
body (POST), so no request line carries its text or its parameters. Credentials
written into a host URL (`http://user:password@host`) are taken apart into
username and password; the password appears in no error, repr or log line.
"""

from __future__ import annotations

import logging
import time
import uuid

import pytest
from click.testing import CliRunner
from user_visible import all_text

from influxhtm.cli import cli
from influxhtm.core.errors import AuthenticationError, ConfigurationError, InfluxConnectionError
from influxhtm.htm.client import InfluxHtmClient
from influxhtm.influxql import Query, admin
from influxhtm.io.connection import Connection
from influxhtm.io.settings import Settings
from influxhtm.tools.server import free_port

ADMIN_PASSWORD = "Adm1n-S3cret-Hw4k"
SECRET = "Us3r-S3cret-Pz9q"
OTHER_SECRET = "Oth3r-S3cret-Lm5t"
WRONG = "Wr0ng-S3cret-Yc6d"
TAG_SECRET = "t4g-S3cret-Ru8n"


@pytest.fixture(scope="module")
def secrets_server(auth_server_with_admin):
    with auth_server_with_admin(ADMIN_PASSWORD, **{"log-enabled": True}) as server:
        yield server


def admin_settings(server, **options) -> Settings:
    return Settings(host=server.host, port=server.port, username="admin", password=ADMIN_PASSWORD, **options)


def request_lines(server, wanted: str = "", timeout: float = 5.0) -> str:
    """influxd's HTTP log (one request line each), waiting until `wanted` is in it (the line is
    written just after the answer)."""
    deadline = time.monotonic() + timeout
    while True:
        text = server.log_path.read_text(errors="replace")
        if wanted in text or time.monotonic() > deadline:
            return "\n".join(line for line in text.splitlines() if line.startswith("[httpd]"))
        time.sleep(0.05)


# -- statements travel in the body -----------------------------------------------------------------
def test_statements_with_parameters_and_changes_never_travel_in_a_url(
    secrets_server, caplog, reliability_report
):
    user = f"user_{uuid.uuid4().hex[:8]}"
    database = f"secrets_{uuid.uuid4().hex[:8]}"
    marker = uuid.uuid4().hex  # names the requests of this test in the log
    with caplog.at_level(logging.DEBUG), Connection(admin_settings(secrets_server)) as connection:
        connection.query(f"CREATE USER {user} WITH PASSWORD $pw", params={"pw": SECRET})
        connection.query(f"SET PASSWORD FOR {user} = $pw", params={"pw": OTHER_SECRET})
        for statement in (f'CREATE DATABASE "{database}"', f'GRANT READ ON "{database}" TO {user}',
                          f'REVOKE READ ON "{database}" FROM {user}',
                          f'ALTER RETENTION POLICY autogen ON "{database}" SHARD DURATION 2w',
                          f'DELETE FROM "m_{marker}"', f'DROP MEASUREMENT "m_{marker}"'):
            connection.query(statement, database=database)
        connection.write(f'm_{marker},k={TAG_SECRET} v=1 1', database=database)
        client = InfluxHtmClient.from_settings(database, admin_settings(secrets_server))
        # a read with a bound parameter, through the client (rows) and streamed (chunks)
        query = Query().from_(f"m_{marker}").select("v").where(k=TAG_SECRET)
        read_back = client.rows(query)
        assert read_back == [[1, 1.0]]
        assert [row for series in client.stream_series(query) for row in series["values"]] == [[1, 1.0]]
        client.execute(admin.delete(f"m_{marker}", k=TAG_SECRET))
        assert client.rows(query) == []
        connection.query(f'DROP USER {user}')
        connection.query(f'DROP DATABASE "{database}"')
    log = request_lines(secrets_server, f"/write?db={database}")
    assert f"/write?db={database}" in log  # the log does record request lines
    for secret in (SECRET, OTHER_SECRET, TAG_SECRET, marker, user, "params=", "q="):
        assert secret not in log, secret
    assert "GET /query" not in log
    assert SECRET not in caplog.text and OTHER_SECRET not in caplog.text
    reliability_report(scenario="secrets: passwords, parameters, changes by POST",
                       faults="auth + HTTP access log: 0 request lines with a secret", written=1,
                       read_back=len(read_back), lost=1 - len(read_back), duplicated=0)


def test_a_password_set_by_a_bound_parameter_works(secrets_server):
    user = f"user_{uuid.uuid4().hex[:8]}"
    with Connection(admin_settings(secrets_server)) as connection:
        connection.query(f"CREATE USER {user} WITH PASSWORD $pw", params={"pw": SECRET})
        try:
            settings = Settings(host=secrets_server.host, port=secrets_server.port, username=user,
                                password=SECRET)
            assert Connection(settings).query("SHOW DATABASES")  # the user logs in with it
        finally:
            connection.query(f"DROP USER {user}")
    assert SECRET not in request_lines(secrets_server)


# -- credentials written into the host -----------------------------------------------------------
def test_credentials_in_the_host_url_are_used_and_never_shown(secrets_server, caplog):
    host = f"http://admin:{ADMIN_PASSWORD}@{secrets_server.host}:{secrets_server.port}/"
    settings = Settings.resolve(host=host, environ={})
    assert (settings.host, settings.port, settings.username, settings.password, settings.ssl) == (
        secrets_server.host, secrets_server.port, "admin", ADMIN_PASSWORD, False)
    client = InfluxHtmClient("secrets_url", host=host)
    with caplog.at_level(logging.DEBUG):
        try:
            assert client.create_sensor("power", "fridge").write([{"time": 1, "value": 2.5}]) == 1
            assert [r.value for r in client.get_sensor("power", "fridge").get_data()] == [2.5]
        finally:
            client.drop_database()
    assert ADMIN_PASSWORD not in all_text(settings, client, client.connection) + caplog.text
    assert settings.url == f"http://{secrets_server.host}:{secrets_server.port}"


def test_a_wrong_password_in_the_host_url_is_never_shown(secrets_server, caplog, capsys):
    host = f"http://admin:{WRONG}@{secrets_server.host}"
    with caplog.at_level(logging.DEBUG):
        client = InfluxHtmClient("secrets_url", host=host, port=secrets_server.port)
        with pytest.raises(AuthenticationError) as info:
            client.create_sensor("power", "fridge").write([{"time": 1, "value": 2.5}])
        unreachable = InfluxHtmClient("x", host=f"http://admin:{WRONG}@127.0.0.1:{free_port()}", retries=1,
                                      backoff=0.01)
        with pytest.raises(InfluxConnectionError) as lost:
            unreachable.ping()
    assert info.value.status == 401 and "'admin'" in str(info.value)
    assert lost.value.url == unreachable.settings.url and "127.0.0.1" in str(lost.value)
    out, err = capsys.readouterr()
    seen = all_text(info.value, lost.value, client, client.settings, unreachable, unreachable.settings)
    assert WRONG not in seen + caplog.text + out + err


def test_the_cli_takes_credentials_from_a_host_url_and_never_prints_them(secrets_server, monkeypatch):
    monkeypatch.setenv("INFLUX_HOST", f"http://admin:{ADMIN_PASSWORD}@{secrets_server.host}")
    monkeypatch.setenv("INFLUX_PORT", str(secrets_server.port))
    done = CliRunner().invoke(cli, ["--database", "secrets_cli", "sensors"])
    assert done.exit_code == 0, done.output
    assert "no sensors in database 'secrets_cli'" in done.stdout and ADMIN_PASSWORD not in done.output
    monkeypatch.setenv("INFLUX_HOST", f"http://admin:{WRONG}@{secrets_server.host}")
    refused = CliRunner().invoke(cli, ["--database", "secrets_cli", "sensors"])
    assert refused.exit_code == 1 and "refused user 'admin'" in refused.stderr
    assert WRONG not in refused.output


@pytest.mark.parametrize(
    "host, arguments, fragment",
    [
        (f"http://admin:{SECRET}@db.example:8086/influx", {}, "path"),
        (f"ftp://admin:{SECRET}@db.example", {}, "'ftp'"),
        (f"http://admin:{SECRET}@db.example:8086", {"username": "other"}, "username"),
        (f"http://admin:{SECRET}@db.example:8086", {"password": WRONG}, "password"),
        (f"http://admin:{SECRET}@db.example:8086", {"port": 9999}, "port"),
        (f"https://admin:{SECRET}@db.example", {"ssl": False}, "ssl"),
        (f"http://admin:{SECRET}@db.example:http", {}, "port"),
        (f"http://admin:{SECRET}@:8086", {}, "host"),
    ],
    ids=["path", "scheme", "user", "password", "port", "ssl", "bad-port", "no-host"],
)
def test_a_host_url_that_cannot_be_used_is_refused_without_the_password(host, arguments, fragment):
    with pytest.raises(ConfigurationError) as info:
        Settings.resolve(host=host, environ={}, **arguments)
    assert fragment in str(info.value)
    assert SECRET not in all_text(info.value) and WRONG not in all_text(info.value)
    assert "admin:***@" in str(info.value)


def test_host_url_parts_fill_in_the_settings():
    s = Settings.resolve(host=f"https://reader:{SECRET}@[::1]:8443", environ={})
    assert (s.host, s.port, s.username, s.password, s.ssl) == ("::1", 8443, "reader", SECRET, True)
    assert s.url == "https://[::1]:8443" and SECRET not in repr(s)
    s = Settings.resolve(host="db.example:9000", environ={"INFLUX_USER": "env", "INFLUX_PASS": SECRET})
    assert (s.host, s.port, s.username, s.password, s.ssl) == ("db.example", 9000, "env", SECRET, False)
    # percent-encoded user info, as in any URL; equal values given twice agree
    s = Settings.resolve(host="http://a%40b:p%3Aw@h", port=8086, username="a@b", password="p:w", environ={})
    assert (s.host, s.port, s.username, s.password) == ("h", 8086, "a@b", "p:w")
    assert Settings.resolve(host="fe80::1", environ={}).host == "fe80::1"
    with pytest.raises(ConfigurationError) as info:
        Settings(host=f"admin:{SECRET}@db.example")
    assert SECRET not in all_text(info.value) and "Settings.resolve" in str(info.value)
