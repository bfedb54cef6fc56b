"""Reads are complete on a server that limits its answers (`[http] max-row-limit`).

InfluxDB 1.6 cuts a non-chunked answer after `max-row-limit` rows: it marks the cut
series `"partial": true`, or nothing at all when the cut falls on the end of a series
(the later series and statements are simply missing). influxhtm asks for every answer
in chunks, which the server never cuts, and puts them back together; a series still
marked partial at the end raises. Each read path below reads 5,000 points (or more
groups, series or tag values than the limit) from a real server started with a limit of
100 rows, and must get every one of them.
"""

from __future__ import annotations

import csv
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner

import influxhtm as ih
from influxhtm.cli import cli
from influxhtm.core.errors import ServerError
from influxhtm.core.times import to_ns
from influxhtm.model.data_layout import HtmResult
from influxhtm.pytest_plugin import server_settings
from influxhtm.tools import nab
from influxhtm.tools.server import LocalInfluxd

LIMIT = 100
N = 5_000
T0 = datetime(2024, 5, 1, tzinfo=UTC)
FAULT = f"max-row-limit {LIMIT}"


@ih.measurement("power")
class PowerReading:
    time: datetime = ih.timestamp()
    component: str = ih.tag()
    value: float = ih.field()


@pytest.fixture(scope="module")
def limited():
    """A real influxd that cuts every non-chunked answer after LIMIT rows."""
    with LocalInfluxd(config={"http": {"max-row-limit": LIMIT}}) as server:
        yield server


@pytest.fixture(scope="module")
def client(limited):
    client = ih.InfluxHtmClient.from_settings(f"test_rows_{uuid.uuid4().hex[:10]}", server_settings(limited))
    client.create_database()
    yield client
    client.drop_database()
    client.close()


def expected_values(i: int) -> float:
    return float((i * 7) % 101)


@pytest.fixture(scope="module")
def sensor(client):
    """A sensor of N points, one a minute, with a model holding a result for each."""
    sensor = client.create_sensor("machine", "pump")
    sensor.write([{"time": T0 + timedelta(minutes=i), "value": expected_values(i)} for i in range(N)])
    store = sensor.create_htm_model("m1", params={"k": 1})
    store.write_results(
        [HtmResult(T0 + timedelta(minutes=i), anomaly_score=i / N, anomaly_likelihood=0.5) for i in range(N)]
    )
    return sensor


@pytest.fixture(scope="module")
def repo(client):
    repo = client.repository(PowerReading)
    repo.add_all(
        PowerReading(time=T0 + timedelta(minutes=i), component=f"c{i % 2}", value=expected_values(i))
        for i in range(N)
    )
    return repo


def expected_points() -> dict[tuple, float]:
    return {(None, to_ns(T0 + timedelta(minutes=i))): expected_values(i) for i in range(N)}


def check(report_read_back, scenario: str, expected: dict, stored) -> None:
    """Tally the points read back against the points written, and record the report row."""
    read_back, lost, duplicated = report_read_back(scenario=scenario, faults=FAULT, expected=expected,
                                                   stored=stored)  # fmt: skip
    assert (read_back, lost, duplicated) == (len(expected), 0, 0), scenario


def test_the_server_really_cuts_a_plain_answer(limited, client, sensor):
    """The premise: asked without chunks, this server returns LIMIT of the N points."""
    url = server_settings(limited).url
    answer = requests.get(f"{url}/query", params={"db": client.database, "q": "SELECT value FROM machine"})
    (series,) = answer.json()["results"][0]["series"]
    assert len(series["values"]) == LIMIT and series["partial"] is True


def test_get_data_and_iter_data_return_every_point(sensor, report_read_back):
    readings = sensor.get_data()
    check(report_read_back, "Sensor.get_data under max-row-limit", expected_points(),
          (((None, to_ns(r.time)), r.value) for r in readings))  # fmt: skip
    assert len(list(sensor.iter_data())) == N
    latest = sensor.get_data(limit=N - 1)
    assert len(latest) == N - 1 and latest[0].time == T0 + timedelta(minutes=1)
    buckets = sensor.get_data(aggregation="2m", agg="count")  # N / 2 groups, more than the limit
    assert len(buckets) == N // 2 and all(b.value == 2 for b in buckets)


def test_get_results_return_every_result(sensor, report_read_back):
    results = sensor.get_htm_model("m1").get_results()
    expected = {(None, to_ns(T0 + timedelta(minutes=i))): i / N for i in range(N)}
    check(report_read_back, "HtmModelStore.get_results under max-row-limit", expected,
          (((None, to_ns(r.time)), r.anomaly_score) for r in results))  # fmt: skip


def test_combined_data_and_its_frame_hold_every_row(sensor, report_read_back):
    data = sensor.get_combined_sensor_data()
    check(report_read_back, "get_combined_sensor_data under max-row-limit", expected_points(),
          (((None, to_ns(row["time"])), row["value"]) for row in data))  # fmt: skip
    assert data.column("m1.anomalyScore") == [i / N for i in range(N)]  # every result aligned too
    frame = data.to_dataframe()  # what plots are drawn from
    assert len(frame) == N and frame["m1.anomalyScore"].notna().all()
    aggregated = sensor.get_combined_sensor_data(aggregation="2m")
    assert len(aggregated) == N // 2 and None not in aggregated.column("m1.anomalyScore")


def test_repository_reads_return_every_point(repo, report_read_back):
    expected = {(f"c{i % 2}", to_ns(T0 + timedelta(minutes=i))): expected_values(i) for i in range(N)}
    check(report_read_back, "Repository.all under max-row-limit", expected,
          (((p.component, to_ns(p.time)), p.value) for p in repo.query().all()))  # fmt: skip
    selected = repo.query().select("value").group_by("component").all()  # typed rows
    check(report_read_back, "Repository selection (typed rows) under max-row-limit", expected,
          (((r.component, to_ns(r.time)), r.value) for r in selected))  # fmt: skip
    assert repo.query().count() == N and len(repo.query().to_dataframe()) == N
    assert repo.query().order_by("time", "desc").first().time == T0 + timedelta(minutes=N - 1)


def test_hand_written_queries_return_every_row(sensor, client, report_read_back):
    """`client.query` (the escape hatch, issue 14) reads as every read does: nothing is cut."""
    rows = client.query("SELECT value FROM machine WHERE component = $c", {"c": "pump"})
    check(report_read_back, "client.query under max-row-limit", expected_points(),
          (((None, to_ns(r["time"])), r["value"]) for r in rows))  # fmt: skip
    assert len(client.query("SELECT value FROM machine", as_="dataframe")) == N


def test_aggregates_with_more_groups_than_the_limit_are_complete(repo):
    q = repo.query().select(ih.fn.count("value").as_("n")).group_by_time("1m").group_by("component")
    rows = list(q)
    assert len(rows) == 2 * N  # N buckets for each of the two components
    assert sum(r.n for r in rows) == N and {r.n for r in rows} == {0, 1}
    assert sorted((r.component, r.time) for r in rows if r.n) == sorted(
        (f"c{i % 2}", T0 + timedelta(minutes=i)) for i in range(N)
    )


def test_show_statements_return_every_row(client, report_read_back):
    many = 3 * LIMIT // 2
    client.write_lines([f"many,component=s{i:03d} value=1 {to_ns(T0)}" for i in range(many)])
    assert client.tag_values("many", "component") == [f"s{i:03d}" for i in range(many)]
    assert len(client.series("many")) == many
    sensors = [s.component for s in client.list_sensors() if s.measurement == "many"]
    check(report_read_back, "SHOW TAG VALUES / list_sensors under max-row-limit",
          {(None, f"s{i:03d}"): 1 for i in range(many)}, (((None, c), 1) for c in sensors))  # fmt: skip


def test_a_cut_answer_is_never_returned_as_complete(limited, client, sensor):
    """An answer that is still cut (a server that ignores `chunked`) raises instead of passing as whole."""
    url = server_settings(limited).url
    text = "SELECT value FROM machine"
    cut = requests.get(f"{url}/query", params={"db": client.database, "q": text, "epoch": "ns"})
    connection = client.connection
    with pytest.raises(ServerError, match=r"only part of series 'machine'.*max-row-limit"):
        connection._whole(connection._results(cut, text, stream=False), text)


# -- the command line: score and plot of a NAB file longer than the limit ---------------------------
KEY = "artificialWithAnomaly/art_daily_jumpsup.csv"


def s_sum(profile: str) -> float:
    """NAB's own score of the Numenta results of KEY, from its results file."""
    category, name = KEY.split("/")
    with open(nab.NAB_DATA_DIR / "results" / "numenta" / category / f"numenta_{name}", newline="") as fh:
        return sum(float(row[f"S(t)_{profile}"]) for row in csv.DictReader(fh))


def test_cli_score_and_plot_read_every_point(limited, tmp_path, reliability_report):
    settings = server_settings(limited)
    database = f"test_cli_rows_{uuid.uuid4().hex[:8]}"
    ih.InfluxHtmClient.from_settings(database, settings).create_database()
    conn = ["--host", settings.host, "--port", str(settings.port), "--database", database]

    def invoke(*args: object) -> str:
        result = CliRunner().invoke(cli, [*conn, *map(str, args)], catch_exceptions=False)
        assert result.exit_code == 0, (result.stdout, result.stderr)
        return result.stdout

    category, name = KEY.split("/")
    invoke("import", nab.NAB_DATA_DIR / "data" / KEY, "--measurement", "nab", "--component", "jumps")
    results = nab.NAB_DATA_DIR / "results" / "numenta" / category / f"numenta_{name}"
    params = json.dumps({"path": str(results)})
    run = invoke("run", "nab", "jumps", "--engine", "replay", "--id", "numenta", "--params", params,
                 "--no-progress")  # fmt: skip
    assert "4,032 points -> 4,032 results" in run
    scored = json.loads(invoke("score", "nab", "jumps", "--model", "numenta",
                               "--labels", nab.NAB_WINDOWS_FILE, "--label-key", KEY, "--json"))  # fmt: skip
    points = scored["points"]
    reliability_report(scenario="CLI score (NAB) under max-row-limit", faults=FAULT, written=4032,
                       read_back=points, lost=max(0, 4032 - points), duplicated=0)  # fmt: skip
    assert scored["points"] == 4032 and scored["raw"] == pytest.approx(s_sum("standard"), abs=1e-6)
    plotted = invoke("plot", "nab", "jumps", "--models", "numenta", "-o", Path(tmp_path) / "jumps.html")
    assert "(4,032 points, models: numenta)" in plotted
