"""Huge `where(x=[...])` lists and slow answers (issue 16, item 7).

A list of more than `MAX_IN_VALUES` (1,000) values is refused at once, before
anything is rendered, with an error naming the column and the size; before, a
million values took seconds and gigabytes to render and ended in HTTP 431. A
list at the limit works against the real server. A server that accepts the
connection but answers after the timeout gives `InfluxTimeoutError` ("timed
out"), not "cannot reach InfluxDB" (the late answer comes from `FlakyProxy`).
"""

from __future__ import annotations

import time

import pytest

from influxhtm import InfluxHtmClient, Settings
from influxhtm.core.errors import InfluxTimeoutError, ValidationError
from influxhtm.influxql import Query, col
from influxhtm.influxql.expressions import MAX_IN_VALUES

N = MAX_IN_VALUES


@pytest.mark.parametrize("make", [
    lambda values: Query().from_("m").where(k=values),
    lambda values: Query().from_("m").where(k=set(values)),
    lambda values: Query().from_("m").where(col("k").in_(values)),
    lambda values: Query().from_("m").where(col("k").in_(iter(values))),
    lambda values: Query().from_("m").where(col("k").not_in(values)),
])
def test_a_huge_list_is_refused_fast_naming_the_column_and_size(make):
    values = [str(i) for i in range(1_000_000)]
    started = time.perf_counter()
    with pytest.raises(ValidationError) as info:
        make(values)
    assert time.perf_counter() - started < 1.0  # before: seconds to render, then HTTP 431
    text = str(info.value)
    assert text.startswith("k:") and ("1,000,000" in text or "more than 1,000" in text)
    assert f"at most {N:,}" in text


def test_a_list_at_the_limit_works_on_the_server(client, reliability_report):
    client.write_lines([f"m,k={i} v={i}i {i}" for i in range(2 * N)])
    wanted = [str(i) for i in range(0, 2 * N, 2)]  # N values: every other series
    rows = client.rows(Query().from_("m").select("v").where(k=wanted))
    expected = set(range(0, 2 * N, 2))
    got = {int(row[1]) for row in rows}
    reliability_report(
        scenario="where list of 1,000 values",
        faults=f"{N:,} tag values in one query; {N + 1:,} refused before rendering",
        written=len(expected), read_back=len(rows), lost=len(expected - got), duplicated=len(rows) - len(got),
    )
    assert got == expected
    with pytest.raises(ValidationError, match="1,001 values"):
        Query().from_("m").where(k=[*wanted, "x"])


def test_a_slow_answer_is_reported_as_a_timeout(client, flaky_proxy, reliability_report):
    settings = client.settings
    proxy = flaky_proxy(settings.host, settings.port, always=("slow", 1.0))
    slow = InfluxHtmClient.from_settings(client.database, Settings(
        host=proxy.host, port=proxy.port, timeout=0.3, retries=1, backoff=0.01))
    with pytest.raises(InfluxTimeoutError) as info:
        slow.rows(Query().from_("m").select("v"))
    text = str(info.value)
    assert "timed out" in text and "0.3 s" in text and "after 2 attempt(s)" in text
    assert "cannot reach" not in text
    reliability_report(
        scenario="slow answer reported as a timeout",
        faults="every answer 1 s late, client timeout 0.3 s (proxy)",
        written=0, read_back=0, lost=0, duplicated=0,
    )
    slow.close()
