"""The `influxhtm` command line against a real InfluxDB: CliRunner and the installed console script."""

import csv
import json
import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from influxhtm.cli import cli
from influxhtm.tools import nab

NAB = nab.NAB_DATA_DIR
MACHINE = "realKnownCause/machine_temperature_system_failure.csv"
SHARED = sorted(f"{p.parent.name}/{p.name}" for p in (NAB / "data").glob("*/*.csv"))
PROFILES = ("standard", "reward_low_FP_rate", "reward_low_FN_rate")


@pytest.fixture
def conn(influx_settings, influx_database):
    """The group's connection options for the test database."""
    return [
        "--host",
        influx_settings.host,
        "--port",
        str(influx_settings.port),
        "--database",
        influx_database,
    ]


def invoke(conn, *args, ok=True):
    result = CliRunner().invoke(cli, [*conn, *map(str, args)], catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, (result.stdout, result.stderr)
    return result


def data_path(key):
    return NAB / "data" / key


def results_path(key):
    category, name = key.split("/")
    return NAB / "results" / "numenta" / category / f"numenta_{name}"


def s_sum(key, profile):
    with open(results_path(key), newline="") as fh:
        return sum(float(row[f"S(t)_{profile}"]) for row in csv.DictReader(fh))


def import_nab(conn, key, component=None):
    component = component or Path(key).stem
    return invoke(conn, "import", data_path(key), "--measurement", "nab", "--component", component)


def assert_one_line_error(result, *fragments):
    assert result.exit_code == 1, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


# ---------------------------------------------------------------- import, sensors, models


def test_import_nab_file_then_sensors_table(conn, client):
    result = import_nab(conn, MACHINE)
    assert "22,695 rows read, 22,683 points stored" in result.stdout
    assert "12 row(s) repeated an earlier timestamp" in result.stdout
    assert client.get_sensor("nab", "machine_temperature_system_failure").count() == 22683
    table = invoke(conn, "sensors").stdout.splitlines()
    assert table[0].split() == ["measurement", "component", "points", "first", "last"]
    assert table[2].split() == [
        "nab",
        "machine_temperature_system_failure",
        "22,683",
        "2013-12-02T21:15:00+00:00",
        "2014-02-19T15:25:00+00:00",
    ]


def test_import_reports_bad_rows_and_writes_the_rest(conn, client, tmp_path):
    path = tmp_path / "bad.csv"
    path.write_bytes(
        b"time,reading\r\n2020-01-01 00:00:00,1\r\noops,2\r\n2020-01-01 01:00:00,x\r\n2020-01-01 02:00,3\r\n"
    )
    result = invoke(
        conn, "import", path, "-m", "power", "-c", "coffee", "--time-column", "time",
        "--value-column", "reading", "--tz", "Europe/Berlin", "--no-progress",
    )  # fmt: skip
    assert "line 3: 'oops' is not an ISO 8601 timestamp" in result.stdout
    assert "line 4: 'x' is not a number" in result.stdout
    assert "4 rows read, 2 points stored" in result.stdout
    readings = client.get_sensor("power", "coffee").get_data()
    assert [(r.time, r.value) for r in readings] == [
        (datetime(2019, 12, 31, 23, tzinfo=UTC), 1.0),  # 00:00 in Berlin (UTC+1)
        (datetime(2020, 1, 1, 1, tzinfo=UTC), 3.0),
    ]


def test_import_with_no_readable_row_fails(conn, tmp_path):
    path = tmp_path / "none.csv"
    path.write_text("timestamp,value\nx,1\ny,2\n")
    result = invoke(conn, "import", path, "-m", "m", "-c", "c", ok=False)
    assert_one_line_error(result, "no row", "line 2")


def test_models_table_and_delete(conn, client):
    import_nab(conn, "artificialWithAnomaly/art_daily_jumpsup.csv", "jumps")
    params = json.dumps({"path": str(results_path("artificialWithAnomaly/art_daily_jumpsup.csv"))})
    result = invoke(conn, "run", "nab", "jumps", "--engine", "replay", "--id", "numenta", "--params", params)
    assert "4,032 points -> 4,032 results" in result.stdout
    lines = invoke(conn, "models", "nab", "jumps").stdout.splitlines()
    assert lines[0].split()[:4] == ["id", "engine", "aggregation", "results"]
    assert lines[2].split()[:4] == ["numenta", "replay", "-", "4,032"]
    invoke(conn, "delete-model", "nab", "jumps", "numenta")
    assert "no models" in invoke(conn, "models", "nab", "jumps").stdout
    assert client.get_sensor("nab", "jumps").list_htm_models() == []


# ---------------------------------------------------------------- the acceptance check: NAB through InfluxDB


@pytest.mark.parametrize("key", SHARED, ids=[Path(k).stem for k in SHARED])
def test_score_json_of_replayed_numenta_results_equals_nab(conn, key, tmp_path):
    import_nab(conn, key)
    component = Path(key).stem
    params_file = tmp_path / "params.json"
    params_file.write_text(json.dumps({"path": str(results_path(key))}))
    invoke(conn, "run", "nab", component, "--engine", "replay", "--id", "numenta", "--params", params_file,
           "--no-progress")  # fmt: skip
    for profile in PROFILES:
        out = invoke(conn, "score", "nab", component, "--model", "numenta", "--labels", nab.NAB_WINDOWS_FILE,
                     "--label-key", key, "--profile", profile, "--json").stdout  # fmt: skip
        scored = json.loads(out)
        assert scored["raw"] == pytest.approx(s_sum(key, profile), abs=1e-6)
        assert scored["threshold"] == nab.DEFAULT_THRESHOLDS[profile]
        assert scored["profile"] == profile and scored["model"] == "numenta" and scored["label_key"] == key


def test_score_text_optimised_and_label_key_guess(conn):
    import_nab(conn, MACHINE)
    invoke(conn, "run", "nab", "machine_temperature_system_failure", "-e", "replay", "--id", "numenta",
           "--params", json.dumps({"path": str(results_path(MACHINE))}))  # fmt: skip
    base = ["score", "nab", "machine_temperature_system_failure", "--model", "numenta",
            "--labels", nab.NAB_WINDOWS_FILE]  # fmt: skip
    text = invoke(conn, *base).stdout  # the key is found from the component
    assert f"raw score   {s_sum(MACHINE, 'standard'):.6f}" in text
    assert "threshold   0.5422 (NAB default)" in text
    default = json.loads(invoke(conn, *base, "--json").stdout)
    best = json.loads(invoke(conn, *base, "--optimize", "--json").stdout)
    assert best["threshold_rule"] == "optimised" and best["raw"] >= default["raw"]
    given = json.loads(invoke(conn, *base, "--threshold", best["threshold"], "--json").stdout)
    assert given["raw"] == pytest.approx(best["raw"]) and given["threshold_rule"] == "given"
    never = json.loads(invoke(conn, *base, "--threshold", "1.5", "--json").stdout)
    assert never["raw"] == pytest.approx(-never["windows"]) and never["fp"] == 0


def test_score_prints_the_optimised_threshold_so_that_feeding_it_back_reproduces_the_score(conn):
    import_nab(conn, MACHINE)
    invoke(conn, "run", "nab", "machine_temperature_system_failure", "-e", "replay", "--id", "numenta",
           "--params", json.dumps({"path": str(results_path(MACHINE))}), "--no-progress")  # fmt: skip
    base = ["score", "nab", "machine_temperature_system_failure", "--model", "numenta",
            "--labels", nab.NAB_WINDOWS_FILE]  # fmt: skip
    for profile in PROFILES:
        text = invoke(conn, *base, "--profile", profile, "--optimize").stdout
        printed = next(line.split()[1] for line in text.splitlines() if line.strip().startswith("threshold"))
        best = json.loads(invoke(conn, *base, "--profile", profile, "--optimize", "--json").stdout)
        assert float(printed) == best["threshold"]  # every digit is printed
        again = json.loads(invoke(conn, *base, "--profile", profile, "--threshold", printed, "--json").stdout)
        assert again["raw"] == best["raw"] and again["tp"] == best["tp"] and again["fp"] == best["fp"]
        raw_line = next(line for line in text.splitlines() if "raw score" in line)
        assert raw_line in invoke(conn, *base, "--profile", profile, "--threshold", printed).stdout


def test_score_refuses_windows_that_match_no_result_and_takes_a_tolerance(conn):
    import_nab(conn, "realKnownCause/nyc_taxi.csv")  # a row every 30 minutes
    invoke(conn, "run", "nab", "nyc_taxi", "-e", "replay", "--id", "numenta",
           "--params", json.dumps({"path": str(results_path("realKnownCause/nyc_taxi.csv"))}),
           "--no-progress")  # fmt: skip
    base = ["score", "nab", "nyc_taxi", "--model", "numenta", "--labels", nab.NAB_WINDOWS_FILE, "--json"]
    slipped = invoke(conn, *base, "--tz", "Asia/Kathmandu", ok=False)  # UTC+05:45: no bound is a row's time
    assert slipped.exit_code != 0
    first = nab.load_windows(nab.NAB_WINDOWS_FILE, "realKnownCause/nyc_taxi.csv", tz="Asia/Kathmandu")[0]
    assert first[0].isoformat() in slipped.stderr and "is not the time of a row" in slipped.stderr
    assert "nearest" in slipped.stderr and "tolerance" in slipped.stderr
    assert invoke(conn, *base, "--tz", "Asia/Kathmandu", "--tolerance", "10m", ok=False).exit_code != 0
    near = json.loads(invoke(conn, *base, "--tz", "Asia/Kathmandu", "--tolerance", "15m").stdout)
    exact = json.loads(invoke(conn, *base).stdout)
    assert near["windows"] == exact["windows"] == 5


# ---------------------------------------------------------------- run: brainblocks, resume, live


def test_run_brainblocks_resume_and_parameter_conflict(conn, client, tmp_path):
    path = tmp_path / "short.csv"
    start = datetime(2024, 1, 1, tzinfo=UTC)
    rows = [f"{(start + timedelta(minutes=5 * i)).isoformat()},{(i % 12) * 1.5}" for i in range(400)]
    path.write_text("timestamp,value\n" + "\n".join(rows) + "\n")
    invoke(conn, "import", path, "-m", "plant", "-c", "pump")
    params = json.dumps({"num_s": 256, "num_as": 8})
    result = invoke(conn, "run", "plant", "pump", "-e", "brainblocks", "--id", "bb", "--params", params,
                    "--until", "2024-01-01 16:35:00")  # fmt: skip
    assert "200 points -> 200 results" in result.stdout  # naive --until is UTC: 00:00 .. 16:35 is 200 points
    store = client.get_sensor("plant", "pump").get_htm_model("bb")
    assert store.engine == "brainblocks" and store.params["num_s"] == 256
    assert (store.params["min_val"], store.params["max_val"]) == (0.0, 16.5)  # the sensor's range, filled in
    result = invoke(
        conn, "run", "plant", "pump", "-e", "brainblocks", "--id", "bb", "--params", params, "--resume"
    )
    assert "200 points -> 200 results" in result.stdout
    assert store.count() == 400
    conflict = invoke(conn, "run", "plant", "pump", "-e", "brainblocks", "--id", "bb",
                      "--params", '{"num_s": 128}', ok=False)  # fmt: skip
    assert_one_line_error(conflict, "exists with other parameters")
    result = invoke(conn, "run", "plant", "pump", "-e", "brainblocks", "--id", "bb-nab", "--params", params,
                    "--anomaly-score", "log-likelihood", "--no-progress")  # fmt: skip
    results = client.get_sensor("plant", "pump").get_htm_model("bb-nab").get_results()
    from influxhtm.running.engines.likelihood import log_likelihood

    assert len(results) == 400
    assert all(r.anomaly_score == pytest.approx(log_likelihood(r.anomaly_likelihood)) for r in results)


def test_run_live_processes_new_points(conn, client):
    sensor = client.create_sensor("live", "meter")
    start = datetime.now(UTC) - timedelta(hours=1)
    sensor.write([{"time": start + timedelta(seconds=i), "value": float(i)} for i in range(20)])

    def later():
        time.sleep(1.0)
        sensor.write([{"time": start + timedelta(seconds=100 + i), "value": float(i)} for i in range(10)])

    writer = threading.Thread(target=later)
    writer.start()
    # a replay that knows no result stores nothing: the report's point count shows what was processed
    started = time.monotonic()
    result = invoke(conn, "run", "live", "meter", "-e", "replay", "--id", "echo", "--params",
                    json.dumps({"results": {}, "missing": "skip"}), "--live", "--max-points", "30",
                    "--poll-interval", "0.2")  # fmt: skip
    writer.join()
    assert "30 points" in result.stdout
    assert time.monotonic() - started >= 1.0  # it waited for the points written later


# ---------------------------------------------------------------- plot


def test_plot_writes_png_and_html(conn, tmp_path):
    key = "realAWSCloudwatch/ec2_cpu_utilization_5f5533.csv"
    import_nab(conn, key, "ec2")
    invoke(conn, "run", "nab", "ec2", "-e", "replay", "--id", "numenta", "--params",
           json.dumps({"path": str(results_path(key))}))  # fmt: skip
    png, html = tmp_path / "out" / "ec2.png", tmp_path / "ec2.html"
    result = invoke(conn, "plot", "nab", "ec2", "--models", "numenta", "--labels", nab.NAB_WINDOWS_FILE,
                    "--label-key", key, "--threshold", "0.5422", "-o", png, "-o", html)  # fmt: skip
    assert result.stdout.count("wrote ") == 2 and "4,032 points" in result.stdout
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    page = html.read_text()
    assert "numenta" in page and '<script src="http' not in page and len(page) > 1_000_000
    assert "<title>nab/ec2: models numenta</title>" in page  # the sensor and the models
    agg = tmp_path / "agg.png"
    invoke(conn, "plot", "nab", "ec2", "--aggregation", "1h", "--since", "2014-02-20", "-o", agg)
    assert agg.stat().st_size > 10_000


# ---------------------------------------------------------------- sweep


def test_sweep_over_two_sensors(conn, client):
    start = datetime(2024, 1, 1, tzinfo=UTC)
    for name in ("a", "b"):
        client.create_sensor("grid", name).write(
            [{"time": start + timedelta(minutes=i), "value": float(i % 7)} for i in range(150)]
        )
    grid = json.dumps({"num_s": [128, 256], "min_val": [0.0], "max_val": [6.0]})
    result = invoke(conn, "sweep", "--sensor", "grid", "a", "--sensor", "grid", "b", "-e", "brainblocks",
                    "--grid", grid, "--workers", "2", "--json")  # fmt: skip
    rows = json.loads(result.stdout)
    assert len(rows) == 4 and {r["sensor"] for r in rows} == {"grid/a", "grid/b"}
    assert all(r["points"] == 150 and r["results"] == 150 and r["error"] is None for r in rows)
    for name in ("a", "b"):
        models = client.get_sensor("grid", name).list_htm_models()
        assert sorted(m.params["num_s"] for m in models) == [128, 256]
    bad = invoke(
        conn, "sweep", "--sensor", "grid", "a", "-e", "brainblocks",
        "--grid", '{"num_s": [64], "num_c": [32]}', ok=False,
    )
    assert_one_line_error(bad, "1 of 1 runs failed", "num_c")


def test_sweep_on_a_local_dask_cluster(conn, client):
    start = datetime(2024, 1, 1, tzinfo=UTC)
    client.create_sensor("grid", "d").write(
        [{"time": start + timedelta(minutes=i), "value": float(i % 5)} for i in range(100)]
    )
    grid = json.dumps([{"num_s": 128, "min_val": 0, "max_val": 4}])
    result = invoke(conn, "sweep", "--sensor", "grid", "d", "-e", "brainblocks", "--grid", grid,
                    "--executor", "dask", "--workers", "1")  # fmt: skip
    lines = result.stdout.splitlines()
    assert lines[0].split()[:4] == ["sensor", "model_id", "points", "results"]
    assert lines[2].split()[0] == "grid/d" and lines[2].split()[2:4] == ["100", "100"]
    (store,) = client.get_sensor("grid", "d").list_htm_models()
    assert store.count() == 100 and store.engine == "brainblocks"


# ---------------------------------------------------------------- errors


def test_errors_end_with_one_line_and_exit_1(conn, tmp_path):
    import_nab(conn, "artificialWithAnomaly/art_daily_jumpsup.csv", "jumps")
    labels = str(nab.NAB_WINDOWS_FILE)
    cases = [
        (["import", tmp_path / "missing.csv", "-m", "m", "-c", "c"], ["missing.csv", "does not exist"]),
        (["import", data_path(MACHINE), "-m", "m", "-c", "c", "--tz", "Nowhere/City"], ["Nowhere/City"]),
        (["import", data_path(MACHINE), "-m", "m", "-c", "c", "--value-column", "v"], ["'v'"]),
        (["models", "nab", "nothing"], ["no sensor", "'nothing'"]),
        (["score", "nab", "jumps", "--model", "ghost", "--labels", labels], ["ghost"]),
        (["run", "nab", "jumps", "-e", "warp-drive", "--id", "x"], ["warp-drive"]),
        (["run", "nab", "jumps", "-e", "replay", "--id", "x", "--params", "{not json"], ["params"]),
        (["run", "nab", "jumps", "-e", "replay", "--id", "x", "--params", "[1, 2]"], ["JSON object"]),
        (
            ["run", "nab", "jumps", "-e", "replay", "--id", "x", "--since", "yesterday"],
            ["since", "'yesterday'"],
        ),
        (["plot", "nab", "jumps", "-o", tmp_path / "x.pdf"], ["x.pdf", ".png or .html"]),
        (["plot", "nab", "jumps", "--labels", labels, "-o", tmp_path / "x.png"], ["label-key"]),
        (["plot", "nab", "jumps", "--label-key", "k", "-o", tmp_path / "x.png"], ["--labels"]),
    ]
    for args, fragments in cases:
        assert_one_line_error(invoke(conn, *args, ok=False), *fragments)


def test_debug_shows_the_traceback(conn):
    runner = CliRunner()
    result = runner.invoke(cli, [*conn, "--debug", "models", "nab", "nothing"])
    assert result.exit_code == 1 and result.exception is not None
    assert type(result.exception).__name__ == "SensorNotFound"


def test_unreachable_server_is_one_line():
    result = CliRunner().invoke(cli, ["--host", "127.0.0.1", "--port", "1", "sensors"])
    assert_one_line_error(result)


# ---------------------------------------------------------------- the installed console script


def console_script():
    script = Path(sys.executable).with_name("influxhtm")
    return [str(script)] if script.exists() else [sys.executable, "-m", "influxhtm.cli"]


def test_console_script_import_run_score(conn, tmp_path):
    key = "realKnownCause/nyc_taxi.csv"
    env = {k: v for k, v in os.environ.items() if not k.startswith("INFLUX_")}
    base = [*console_script(), *conn]
    done = subprocess.run([*base, "import", str(data_path(key)), "-m", "taxi", "-c", "nyc", "--progress"],
                          capture_output=True, text=True, env=env, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "10,320 rows read, 10,320 points stored" in done.stdout
    assert "importing nyc_taxi.csv" in done.stderr  # the progress bar
    params = json.dumps({"path": str(results_path(key))})
    args = ["run", "taxi", "nyc", "-e", "replay", "--id", "numenta", "--params", params]
    done = subprocess.run([*base, *args], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    labels = str(nab.NAB_WINDOWS_FILE)
    done = subprocess.run([*base, "score", "taxi", "nyc", "--model", "numenta", "--labels", labels,
                           "--label-key", key, "--json"],
                          capture_output=True, text=True, env=env, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["raw"] == pytest.approx(s_sum(key, "standard"), abs=1e-6)
    done = subprocess.run([*base, "score", "taxi", "nyc", "--model", "nope", "--labels", labels],
                          capture_output=True, text=True, env=env, timeout=120)  # fmt: skip
    assert done.returncode == 1
    assert (
        len(done.stderr.strip().splitlines()) == 1
        and "nope" in done.stderr
        and "Traceback" not in done.stderr
    )


# ---------------------------------------------------------------- the reference page


def test_cli_reference_documents_every_command_and_option():
    page = (Path(__file__).resolve().parent.parent / "docs" / "cli.rst").read_text()
    for name, command in cli.commands.items():
        assert f"``{name}``" in page, name
        for param in command.params:
            for opt in param.opts if isinstance(param, click.Option) else []:
                if opt.startswith("--"):
                    assert opt in page, f"{name} {opt}"
    for param in cli.params:
        for opt in param.opts:
            assert opt in page, opt
