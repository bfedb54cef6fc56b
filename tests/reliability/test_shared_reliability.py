"""The reliability scenarios of writes and reads, run with the sync and the async client (issue 18).

The same test, parametrised by client, against real servers configured to produce the
faults (`max-body-size`, `max-values-per-tag`, `max-row-limit`, `auth-enabled`), and a
loopback proxy (`flaky_proxy`) for what a real server cannot be made to do (5xx, resets,
late answers, an answer cut instead of chunked). Each scenario records a report row
naming its client.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, urlencode

import pytest
from clients import KINDS, Driver

import influxhtm as ih
from influxhtm.core.errors import (
    AuthenticationError,
    InfluxTimeoutError,
    PartialWriteError,
    QueryError,
    ServerError,
    TLSError,
)
from influxhtm.io.settings import Settings
from influxhtm.pytest_plugin import server_settings
from influxhtm.tools.server import LocalInfluxd

MAX_BODY = 4096
MAX_VALUES_PER_TAG = 5
LIMIT = 100
PASSWORD = "Sh4red-adm1n-Qx9"
FAST = {"backoff": 0.02, "max_backoff": 0.2}
T0 = datetime(2024, 5, 1, tzinfo=UTC)


@ih.measurement("shared_flow")
class Flow:
    time: datetime = ih.timestamp()
    line: str = ih.tag()
    value: float = ih.field()


def flows(n: int, lines: int = 4) -> list[Flow]:
    return [Flow(time=T0 + timedelta(seconds=i), line=f"l{i % lines}", value=i / 4) for i in range(n)]


def expected_of(objects: list[Flow]) -> dict:
    return {(f.line, f.time): f.value for f in objects}


@pytest.fixture(scope="module")
def limited():
    config = {
        "http": {"max-body-size": MAX_BODY, "max-row-limit": LIMIT},
        "data": {"max-values-per-tag": MAX_VALUES_PER_TAG},
    }
    with LocalInfluxd(config=config) as server:
        yield server


@pytest.fixture(params=KINDS)
def kind(request):
    return request.param


@pytest.fixture
def on_limited(kind, limited):
    d = Driver(kind, f"shared_{uuid.uuid4().hex[:10]}", server_settings(limited))
    yield d
    d.run(d.client.drop_database())
    d.close()


def stored(d, objects_cls=Flow) -> list:
    return d.run(d.client.repository(objects_cls).query().all())


def test_413_is_split_at_point_boundaries_and_an_oversize_point_refused(
    on_limited, compare, reliability_report
):
    d = on_limited
    objects = flows(3_000)
    assert d.run(d.client.repository(Flow).add_all(objects)) == 3_000  # bodies of ~130 KB, limit 4 KB
    assert d.client.connection.body_limit is not None and d.client.connection.body_limit <= MAX_BODY
    big = 'shared_flow,line=big value=1 1\nshared_flow,line=huge note="' + "x" * (2 * MAX_BODY) + '" 2'
    with pytest.raises(PartialWriteError) as info:
        d.run(d.client.write_lines(big.split("\n")))
    error = info.value
    assert (error.dropped, error.written, error.status) == (1, 1, 413) and "max-body-size" in str(error)
    expected = {**expected_of(objects), ("big", datetime.fromtimestamp(0, UTC) + timedelta(0)): 1.0}
    rows = [
        ((f.line, f.time.replace(microsecond=0) if f.line == "big" else f.time), f.value) for f in stored(d)
    ]
    read_back, lost, duplicated = compare(expected, rows)
    assert (read_back, lost, duplicated) == (3_001, 0, 0)
    reliability_report(scenario=f"413 split + oversize point ({d.kind} client)",
                       faults=f"max-body-size = {MAX_BODY} (real server)", written=3_001, read_back=read_back,
                       refused=error.dropped, lost=lost, duplicated=duplicated)  # fmt: skip


def test_a_partial_write_is_halved_until_every_refusal_stands_alone(on_limited, compare, reliability_report):
    d = on_limited
    first = flows(MAX_VALUES_PER_TAG, lines=MAX_VALUES_PER_TAG)
    d.run(d.client.repository(Flow).add_all(first))
    # two points for known tag values (stored), three for new values (refused); InfluxDB 1.6 also
    # drops an accepted point of such a batch, which the halving recovers
    second = [Flow(time=T0 + timedelta(hours=1, seconds=i), line=f"l{i}", value=9.5) for i in (0, 1)]
    second += [Flow(time=T0 + timedelta(hours=1, seconds=i), line=f"new{i}", value=9.5) for i in range(3)]
    with pytest.raises(PartialWriteError) as info:
        d.run(d.client.repository(Flow).add_all(second))
    error = info.value
    assert (error.dropped, error.written, error.not_sent) == (3, 2, 0)
    assert error.reason == "max-values-per-tag limit exceeded" and len(error.lines) == 3
    assert all("new" in line for line in error.lines)
    expected = expected_of(first + second[:2])
    read_back, lost, duplicated = compare(expected, [((f.line, f.time), f.value) for f in stored(d)])
    assert (read_back, lost, duplicated) == (len(expected), 0, 0)
    reliability_report(scenario=f"partial write halved ({d.kind} client)",
                       faults=f"max-values-per-tag = {MAX_VALUES_PER_TAG} (real server)",
                       written=len(expected) + 3, read_back=read_back, refused=error.dropped, lost=lost,
                       duplicated=duplicated)  # fmt: skip


def test_reads_over_max_row_limit_are_complete(on_limited, compare, reliability_report):
    d = on_limited
    objects = flows(2_500)
    d.run(d.client.repository(Flow).add_all(objects))
    q = d.client.repository(Flow).query()
    expected = expected_of(objects)
    for read in (d.run(q.all()), d.collect(q), d.collect(q.where(line="l1")) + d.collect(q.where(line="l0"))):
        assert len(read) in (2_500, 1_250)
    read_back, lost, duplicated = compare(expected, (((f.line, f.time), f.value) for f in d.run(q.all())))
    assert (read_back, lost, duplicated) == (2_500, 0, 0)
    streamed = d.collect(q)
    assert sorted(streamed, key=lambda f: (f.time, f.line)) == objects
    rows = d.run(q.select(ih.fn.count("value").as_("n")).group_by_time("1s").all())
    assert len(rows) == 2_500 and {r.n for r in rows} == {1}
    sensor = d.client.create_sensor("shared_machine", "pump")
    d.run(sensor.write([{"time": T0 + timedelta(seconds=i), "value": float(i)} for i in range(1_000)]))
    assert [r.value for r in d.run(sensor.get_data())] == [float(i) for i in range(1_000)]
    assert len(d.run(sensor.get_combined_sensor_data())) == 1_000
    reliability_report(scenario=f"reads under max-row-limit ({d.kind} client)",
                       faults=f"max-row-limit = {LIMIT} (real server)", written=3_500,
                       read_back=read_back + 1_000, lost=lost, duplicated=duplicated)  # fmt: skip


def test_an_answer_cut_instead_of_chunked_is_never_returned_as_complete(
    kind, limited, flaky_proxy, reliability_report
):
    """A server that ignores `chunked` cuts the answer at max-row-limit: it must raise, not pass as whole."""
    settings = server_settings(limited)
    d = Driver(kind, f"shared_{uuid.uuid4().hex[:10]}", settings)
    try:
        d.run(d.client.repository(Flow).add_all(flows(500)))
        proxy = flaky_proxy(settings.host, settings.port)
        forward = proxy.forward

        def unchunked(request, body):
            form = [(k, v) for k, v in parse_qsl(body.decode()) if k not in ("chunked", "chunk_size")]
            return forward(request, urlencode(form).encode() if body else body)

        proxy.forward = unchunked
        cut = Driver(kind, d.client.database, Settings(host=proxy.host, port=proxy.port, **FAST))
        try:
            with pytest.raises(ServerError, match=r"only part of series 'shared_flow'.*max-row-limit"):
                cut.run(cut.client.repository(Flow).query().all())
            with pytest.raises(ServerError, match="only part of series"):
                cut.run(cut.client.query("SELECT value FROM shared_flow"))
        finally:
            cut.close()
    finally:
        d.run(d.client.drop_database())
        d.close()
    reliability_report(scenario=f"cut answer refused ({kind} client)",
                       faults=f"proxy drops 'chunked'; max-row-limit = {LIMIT}", written=500, read_back=0,
                       lost=0, duplicated=0)  # fmt: skip


@pytest.mark.parametrize(
    "script", [[503, "reset", 502], ["reset", "reset"]], ids=["503-reset-502", "reset-x2"]
)
def test_5xx_and_resets_are_retried_and_the_write_lands(
    kind, influx_settings, influx_database, flaky_proxy, script, compare, reliability_report
):
    proxy = flaky_proxy(influx_settings.host, influx_settings.port, script=list(script))
    d = Driver(kind, influx_database, Settings(host=proxy.host, port=proxy.port, retries=5, **FAST))
    try:
        objects = flows(1_000)
        assert d.run(d.client.repository(Flow).add_all(objects)) == 1_000
        assert proxy.seen == [*script, "pass"]
        read_back, lost, duplicated = compare(
            expected_of(objects), [((f.line, f.time), f.value) for f in stored(d)]
        )
        assert (read_back, lost, duplicated) == (1_000, 0, 0)
        proxy.script = [503, "reset"]
        assert len(d.run(d.client.repository(Flow).query().all())) == 1_000  # reads are retried too
    finally:
        d.close()
    reliability_report(scenario=f"5xx / reset then success ({kind} client)",
                       faults=" ".join(map(str, script)) + " (proxy)", written=1_000, read_back=read_back,
                       lost=lost, duplicated=duplicated)  # fmt: skip


def test_persistent_faults_give_up_after_the_retries_and_client_errors_are_not_retried(
    kind, influx_settings, influx_database, flaky_proxy
):
    proxy = flaky_proxy(influx_settings.host, influx_settings.port, always=503)
    d = Driver(kind, influx_database, Settings(host=proxy.host, port=proxy.port, retries=2, **FAST))
    try:
        with pytest.raises(ServerError) as info:
            d.run(d.client.write_lines(["m v=1 1"]))
        assert info.value.status == 503 and len(proxy.seen) == 3 and "after 3 attempt(s)" in str(info.value)
        proxy.always, proxy.seen = "pass", []
        with pytest.raises(QueryError, match="SELEC nothing"):
            d.run(d.client.query("SELEC nothing"))
        assert len(proxy.seen) == 1
    finally:
        d.close()
    slow = flaky_proxy(influx_settings.host, influx_settings.port, always=("slow", 0.5))
    d = Driver(
        kind, influx_database, Settings(host=slow.host, port=slow.port, retries=1, timeout=0.2, **FAST)
    )
    try:
        with pytest.raises(InfluxTimeoutError, match=r"timed out.*after 2 attempt\(s\)"):
            d.run(d.client.query("SHOW DATABASES"))
        assert len(slow.seen) == 2
    finally:
        d.close()


@pytest.fixture(scope="module")
def auth_server():
    with LocalInfluxd(config={"http": {"auth-enabled": True}}) as server:
        with ih.InfluxHtmClient.from_settings("_", server_settings(server)) as anonymous:
            anonymous.connection.query(f"CREATE USER admin WITH PASSWORD '{PASSWORD}' WITH ALL PRIVILEGES")
        yield server


@pytest.mark.parametrize("password", [PASSWORD, "Wr0ng-pa55"], ids=["right", "wrong"])
def test_credentials(kind, auth_server, password):
    settings = Settings(
        host=auth_server.host, port=auth_server.port, username="admin", password=password, **FAST
    )
    d = Driver(kind, f"shared_{uuid.uuid4().hex[:8]}", settings)
    try:
        if password == PASSWORD:
            assert d.run(d.client.repository(Flow).add_all(flows(10))) == 10  # creates the database
            assert len(stored(d)) == 10
            d.run(d.client.drop_database())
            return
        with pytest.raises(AuthenticationError) as info:
            d.run(d.client.repository(Flow).add_all(flows(10)))
        assert info.value.status == 401 and password not in str(info.value) and len(str(info.value)) > 20
    finally:
        d.close()


@pytest.fixture(scope="module")
def tls_server(tls_files):
    config = {"http": {"https-enabled": True, "https-certificate": str(tls_files.certificate),
                       "https-private-key": str(tls_files.private_key)}}  # fmt: skip
    with LocalInfluxd(config=config) as server:
        yield server


@pytest.mark.parametrize("verify", ["default", "ca-file", "off"])
def test_tls_verifies_by_default_and_trusts_a_given_ca(kind, tls_server, tls_files, verify):
    ca_file = {"verify_ssl": str(tls_files.certificate)}
    options = {"default": {}, "ca-file": ca_file, "off": {"verify_ssl": False}}
    settings = Settings(host=tls_server.host, port=tls_server.port, ssl=True, retries=5, backoff=5.0,
                        **options[verify])  # fmt: skip
    d = Driver(kind, f"shared_{uuid.uuid4().hex[:8]}", settings)
    try:
        if verify == "default":
            started = time.monotonic()
            with pytest.raises(TLSError, match=r"^TLS with InfluxDB at https://.*verify_ssl"):
                d.run(d.client.ping())
            assert time.monotonic() - started < 2.5  # not retried
            return
        assert d.run(d.client.ping()).startswith("1.")
        assert d.run(d.client.repository(Flow).add_all(flows(5))) == 5
        assert len(stored(d)) == 5
        d.run(d.client.drop_database())
    finally:
        d.close()


@pytest.mark.parametrize("connections", [None, 4])
def test_batches_travel_side_by_side_only_when_their_times_are_apart(
    kind, influx_settings, influx_database, flaky_proxy, connections
):
    """Every answer is held back DELAY: batches whose spans are apart overlap in flight (the
    write takes about half as long as one by one), batches whose spans meet go one by one, and a
    repeated series and time keeps the value given last, with either client."""
    delay = 0.3
    proxy = flaky_proxy(influx_settings.host, influx_settings.port, always=("slow", delay))
    d = Driver(kind, influx_database, Settings(host=proxy.host, port=proxy.port, retries=0))
    try:
        repo = d.client.repository(Flow)
        started = time.monotonic()
        assert d.run(repo.add_all(flows(400, lines=1), batch_size=100, connections=connections)) == 400
        assert time.monotonic() - started < 3.5 * delay  # 4 batches, two or more at a time
        # four batches over the same 100 seconds, value k in batch k: one at a time, the last kept
        again = [Flow(time=T0 + timedelta(seconds=s), line="l0", value=float(k)) for k in range(4)
                 for s in range(100)]
        started = time.monotonic()
        assert d.run(repo.add_all(again, batch_size=100, connections=connections)) == 400
        assert time.monotonic() - started >= 4 * delay
        values = {(f.line, f.time): f.value for f in stored(d)}
        assert len(values) == 400
        assert all(values[("l0", T0 + timedelta(seconds=s))] == 3.0 for s in range(100))
    finally:
        d.close()
