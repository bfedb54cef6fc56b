"""Writing needs no admin rights (issue 12, item 2), on a real auth-enabled influxd.

An administrator creates a database and a user with `GRANT WRITE`, `GRANT READ`
or `GRANT ALL` on it; that user writes and reads through every path of the
library. The server's own HTTP log (`log-enabled`) shows what was sent: a write
to an existing database sends no `CREATE DATABASE`, and a write to a missing one
is answered "database not found" first; only then is the database created (when
the user may, and `create` is on), or a clear error names the database and what
is missing.
"""

from __future__ import annotations

import re
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner

import influxhtm as ih
from influxhtm.cli import cli
from influxhtm.core.errors import AuthenticationError, DatabaseNotFound
from influxhtm.htm.client import InfluxHtmClient
from influxhtm.io.connection import Connection
from influxhtm.io.settings import Settings
from influxhtm.orm.csv_import import import_csv
from influxhtm.running import Runner, sweep

ADMIN_PASSWORD = "Adm1n-R1ghts-Qx7v"
USER_PASSWORD = "Us3r-R1ghts-Vb2m"
T0 = datetime(2024, 5, 1, tzinfo=UTC)
POINTS = 120
#: One request line of influxd's HTTP log: user, method, target, status.
LOG_LINE = re.compile(r'^\[httpd\] \S+ - (\S+) \[[^\]]*\] "(\w+) (\S+) HTTP/[\d.]+" (\d+) ')


@pytest.fixture(scope="module")
def rights_server(auth_server_with_admin):
    with auth_server_with_admin(ADMIN_PASSWORD, **{"log-enabled": True}) as server:
        yield server


def admin_settings(server) -> Settings:
    return Settings(host=server.host, port=server.port, username="admin", password=ADMIN_PASSWORD)


@pytest.fixture
def admin(rights_server):
    with Connection(admin_settings(rights_server)) as connection:
        yield connection


@pytest.fixture
def granted(rights_server, admin):
    """`granted("WRITE")` -> (database, Settings of a new user holding only that privilege on it)."""
    made: list[tuple[str, str]] = []

    def make(privilege: str) -> tuple[str, Settings]:
        tag = uuid.uuid4().hex[:8]
        database, user = f"rights_{tag}", f"user_{tag}"
        admin.query(f'CREATE DATABASE "{database}"')
        admin.query(f"CREATE USER \"{user}\" WITH PASSWORD '{USER_PASSWORD}'")
        admin.query(f'GRANT {privilege} ON "{database}" TO "{user}"')
        made.append((database, user))
        return database, Settings(host=rights_server.host, port=rights_server.port, username=user,
                                  password=USER_PASSWORD, retries=0)

    yield make
    for database, user in made:
        admin.query(f'DROP DATABASE "{database}"')
        admin.query(f'DROP USER "{user}"')


def requests_of(server, user: str, wanted: int = 0) -> list[tuple[str, str, int]]:
    """(method, target, status) of every request `user` made, from influxd's HTTP log, in order.

    The log line is written just after the answer, so it is waited for (`wanted` lines).
    """
    deadline = time.monotonic() + 5
    while True:
        found = []
        for line in server.log_path.read_text(errors="replace").splitlines():
            match = LOG_LINE.match(line)
            if match and match.group(1) == user:
                found.append((match.group(2), match.group(3), int(match.group(4))))
        if len(found) >= wanted or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def readings(n: int = POINTS, scale: float = 1.0) -> list[dict]:
    return [{"time": T0 + timedelta(minutes=i), "value": (i % 13) * scale} for i in range(n)]


def csv_file(tmp_path, n: int = POINTS):
    path = tmp_path / "pump.csv"
    rows = [f"{(T0 + timedelta(minutes=i)).strftime('%Y-%m-%d %H:%M:%S')},{i % 7}.5" for i in range(n)]
    path.write_text("timestamp,value\n" + "\n".join(rows) + "\n")
    return path


@ih.measurement("rights_readings")
class Reading:
    time: datetime = ih.timestamp()
    component: str = ih.tag()
    value: float = ih.field()


def count(admin, database: str, measurement: str, where: str = "", field: str = "value") -> int:
    result = admin.query(f'SELECT count("{field}") FROM "{measurement}"{where}', database=database)
    series = result[0].get("series", [])
    return series[0]["values"][0][1] if series else 0


def cli_args(settings: Settings, database: str) -> list[str]:
    return ["--host", settings.host, "--port", str(settings.port), "--username", settings.username,
            "--password", settings.password, "--database", database]


def invoke(args, ok: bool = True):
    """Run the CLI; a `--password X` of `cli_args` is given on stdin (`--password-stdin`), as users should."""
    args = [str(a) for a in args]
    stdin = None
    if "--password" in args:
        at = args.index("--password")
        stdin = args[at + 1] + "\n"
        args[at : at + 2] = ["--password-stdin"]
    result = CliRunner().invoke(cli, args, input=stdin, catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, (result.stdout, result.stderr)
    return result


def scaled(factor: float):
    """A tiny engine factory for sweep: the anomaly score is the value times `factor`."""
    return lambda point: {"anomaly_score": point.value * factor}


# -- a user granted WRITE only --------------------------------------------------------------------
def test_a_user_granted_write_writes_through_every_plain_write_path(
    rights_server, admin, granted, tmp_path, reliability_report
):
    database, settings = granted("WRITE")
    client = InfluxHtmClient.from_settings(database, settings)
    written = client.create_sensor("power", "fridge").write(readings())
    written += client.repository(Reading).add_all(
        Reading(time=T0 + timedelta(minutes=i), component="kettle", value=float(i)) for i in range(POINTS)
    )
    report = import_csv(client.create_sensor("power", "pump"), csv_file(tmp_path))
    written += report.written
    invoke([*cli_args(settings, database), "import", csv_file(tmp_path), "-m", "power", "-c", "pump_cli"])
    written += POINTS
    stored = count(admin, database, "power") + count(admin, database, "rights_readings")
    assert written == 4 * POINTS and stored == written
    sent = requests_of(rights_server, settings.username)
    assert sent and all(method == "POST" and target.startswith("/write?") for method, target, _ in sent), sent
    assert all(status == 204 for _, _, status in sent), sent  # no CREATE DATABASE, nothing refused
    reliability_report(scenario="non-admin user (GRANT WRITE) writes: Sensor, repository, import, CLI",
                       faults="no admin rights", written=written, read_back=stored,
                       lost=written - stored, duplicated=0)


# -- a user granted ALL on one database ----------------------------------------------------------
def test_a_user_granted_all_runs_every_write_and_read_path(
    rights_server, admin, granted, tmp_path, reliability_report
):
    database, settings = granted("ALL")
    client = InfluxHtmClient.from_settings(database, settings)
    sensor = client.create_sensor("power", "fridge")
    sensor.write(readings())
    client.repository(Reading).add_all(
        Reading(time=T0 + timedelta(minutes=i), component="kettle", value=float(i)) for i in range(POINTS)
    )
    import_csv(client.create_sensor("power", "pump"), csv_file(tmp_path))
    # the model registry and write_results
    store = sensor.create_htm_model("direct", params={"k": 1}, engine="direct")
    results = ({"timestamp": r["time"], "anomalyScore": r["value"] / 13} for r in readings())
    assert store.write_results(results) == POINTS
    # a Runner batch
    runner_store = sensor.create_htm_model("runner", params={"factor": 2})
    assert Runner(sensor, runner_store, scaled(2.0)).run_batch().results == POINTS
    # a sweep (each task opens its own connection with the same settings)
    with ThreadPoolExecutor(max_workers=2) as pool:
        frame = sweep(sensor, [{"factor": 3.0}, {"factor": 4.0}], scaled, executor=pool)
    assert frame["error"].isna().all(), frame["error"].tolist()
    assert frame["results"].tolist() == [POINTS, POINTS]
    # the CLI's writing commands
    base = cli_args(settings, database)
    invoke([*base, "run", "power", "pump", "--engine", "brainblocks", "--id", "bb"])
    done = invoke([*base, "sweep", "--sensor", "power", "pump", "--engine", "brainblocks",
                   "--grid", '{"num_s": [128]}', "--workers", "1", "--json"])
    assert '"error": null' in done.stdout
    # reads
    assert {str(s) for s in client.list_sensors()} == {"power/fridge", "power/pump", "rights_readings/kettle"}
    assert len(sensor.get_data()) == POINTS
    combined = sensor.get_combined_sensor_data()
    assert len(combined) == POINTS and {"direct", "runner"} <= set(combined.models)
    assert "bb" in {m.model_id for m in client.get_sensor("power", "pump").list_htm_models()}
    results = count(admin, database, "power_model", field="anomalyScore")
    assert results == POINTS * 4 + count(admin, database, "power", " WHERE component = 'pump'") * 2
    sensor.delete_htm_model("direct")  # DELETE needs WRITE, not admin
    assert count(admin, database, "power_model", " WHERE id = 'direct'", field="anomalyScore") == 0
    sent = requests_of(rights_server, settings.username)
    assert all(status < 400 for _, _, status in sent), [s for s in sent if s[2] >= 400]
    reliability_report(scenario="non-admin user (GRANT ALL): registry, results, run, sweep, CLI, reads",
                       faults="no admin rights", written=results, read_back=results, lost=0, duplicated=0)


# -- a user granted READ only -----------------------------------------------------------------------
def test_a_user_granted_read_reads_and_a_write_is_refused_clearly(rights_server, admin, granted):
    database, settings = granted("READ")
    InfluxHtmClient.from_settings(database, admin_settings(rights_server)).create_sensor(
        "power", "fridge").write(readings())
    client = InfluxHtmClient.from_settings(database, settings)
    assert [str(s) for s in client.list_sensors()] == ["power/fridge"]
    sensor = client.get_sensor("power", "fridge")
    assert len(sensor.get_data()) == POINTS and len(sensor.get_combined_sensor_data()) == POINTS
    with pytest.raises(AuthenticationError) as info:
        sensor.write(readings(3, scale=9.0))
    message = str(info.value)
    assert info.value.status == 403 and repr(settings.username) in message
    assert "not authorized to write" in message and database in message
    assert count(admin, database, "power") == POINTS  # nothing of the refused write stored
    sent = requests_of(rights_server, settings.username)
    assert [(m, t.split("?")[0], s) for m, t, s in sent if s >= 400] == [("POST", "/write", 403)]


# -- a database that does not exist ---------------------------------------------------------------
def test_a_missing_database_is_a_clear_error_for_a_non_admin_user(rights_server, admin, granted):
    _, settings = granted("ALL")
    missing = f"missing_{uuid.uuid4().hex[:8]}"
    client = InfluxHtmClient.from_settings(missing, settings)
    with pytest.raises(DatabaseNotFound) as info:
        client.create_sensor("power", "fridge").write(readings(5))
    message = str(info.value)
    assert info.value.database == missing and repr(missing) in message and "does not exist" in message
    assert "admin" in message and f'CREATE DATABASE "{missing}"' in message
    assert repr(settings.username) in message and USER_PASSWORD not in message
    assert missing not in {row[0] for row in admin.query("SHOW DATABASES")[0]["series"][0]["values"]}
    # the write was sent first and answered "not found"; then the creation was tried and refused
    sent = [(m, t.split("?")[0], s) for m, t, s in requests_of(rights_server, settings.username, 3)]
    assert sent == [("POST", "/write", 404), ("POST", "/query", 403)]


def test_create_false_never_creates_a_database(rights_server, admin):
    missing = f"missing_{uuid.uuid4().hex[:8]}"
    client = InfluxHtmClient.from_settings(missing, admin_settings(rights_server), create=False)
    before = len(requests_of(rights_server, "admin"))
    with pytest.raises(DatabaseNotFound) as info:
        client.create_sensor("power", "fridge").write(readings(5))
    assert "create_database()" in str(info.value) and repr(missing) in str(info.value)
    with pytest.raises(DatabaseNotFound):
        client.create_retention_policy("short", duration="1d")
    sent = requests_of(rights_server, "admin", before + 2)[before:]
    assert [(m, t.split("?")[0], s) for m, t, s in sent] == [("POST", "/write", 404), ("POST", "/query", 200)]
    assert missing not in {row[0] for row in admin.query("SHOW DATABASES")[0]["series"][0]["values"]}
    client.create_database()  # explicit creation works
    assert client.create_sensor("power", "fridge").write(readings(5)) == 5
    client.drop_database()


def test_an_admin_write_creates_a_missing_database_after_the_not_found_answer(rights_server, admin):
    missing = f"fresh_{uuid.uuid4().hex[:8]}"
    client = InfluxHtmClient.from_settings(missing, admin_settings(rights_server))
    before = len(requests_of(rights_server, "admin"))
    try:
        assert client.create_sensor("power", "fridge").write(readings()) == POINTS
        client.create_sensor("power", "pump").write(readings(10))
        assert count(admin, missing, "power") == POINTS + 10
        sent = requests_of(rights_server, "admin", before + 5)[before:]
        targets = [(m, t.split("?")[0], s) for m, t, s in sent[:4]]
        # first the write (not found), then CREATE DATABASE, then the write again; later writes go straight
        assert targets == [("POST", "/write", 404), ("POST", "/query", 200), ("POST", "/write", 204),
                           ("POST", "/write", 204)]
    finally:
        client.drop_database()


def test_cli_import_into_a_missing_database(rights_server, admin, granted, tmp_path):
    _, settings = granted("ALL")
    missing = f"missing_{uuid.uuid4().hex[:8]}"
    path = csv_file(tmp_path, 5)
    refused = invoke([*cli_args(settings, missing), "import", path, "-m", "p", "-c", "c"], ok=False)
    assert refused.exit_code == 1 and len(refused.stderr.strip().splitlines()) == 1
    assert repr(missing) in refused.stderr and "admin" in refused.stderr
    admin_args = cli_args(admin_settings(rights_server), missing)
    refused = invoke([*admin_args, "import", path, "-m", "p", "-c", "c", "--no-create"], ok=False)
    assert refused.exit_code == 1 and "--create" in refused.stderr and repr(missing) in refused.stderr
    assert missing not in {row[0] for row in admin.query("SHOW DATABASES")[0]["series"][0]["values"]}
    try:
        invoke([*admin_args, "import", path, "-m", "p", "-c", "c", "--create"])
        assert count(admin, missing, "p") == 5
    finally:
        admin.query(f'DROP DATABASE "{missing}"')
