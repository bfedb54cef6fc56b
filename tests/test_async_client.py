"""The async client's own forms (issue 18): async iterators, the batching writer, concurrent
queries, `async for` on a sync query, and the FastAPI-style example of docs/async.rst, run as
written. Behaviour shared with the sync client is in test_shared_clients.py."""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import influxhtm as ih
from influxhtm.core.errors import InfluxHtmError, PartialWriteError, ValidationError

ROOT = Path(__file__).resolve().parent.parent
T0 = datetime(2024, 6, 1, tzinfo=UTC)


@ih.measurement("async_level")
class Level:
    time: datetime = ih.timestamp()
    tank: str = ih.tag()
    litres: float = ih.field()


def levels(n: int, start: int = 0) -> list[Level]:
    return [
        Level(time=T0 + timedelta(seconds=i), tank=f"t{i % 2}", litres=i / 2) for i in range(start, start + n)
    ]


@pytest.fixture
def client(influx_settings, influx_database):
    return ih.AsyncInfluxHtmClient.from_settings(influx_database, influx_settings)


def run(coroutine):
    return asyncio.run(coroutine)


def test_add_all_streams_an_async_iterator_batch_by_batch(client):
    made: list[int] = []

    async def arrive(n):
        for level in levels(n):
            made.append(1)
            await asyncio.sleep(0)
            yield level

    async def scenario():
        async with client:
            repo = client.repository(Level)
            assert await repo.add_all(arrive(2_500), batch_size=1_000) == 2_500
            return await repo.query().all()

    assert run(scenario()) == levels(2_500) and len(made) == 2_500


def test_a_bad_item_of_an_async_iterator_stops_the_write_with_counts(client):
    async def arrive():
        for level in levels(20):
            yield level
        yield {"time": T0, "tank": "t0", "litres": "lots"}  # bad: in the second batch of 20

    async def scenario():
        async with client:
            repo = client.repository(Level)
            with pytest.raises(ValidationError) as info:
                await repo.add_all(arrive(), batch_size=20)
            return info.value, await repo.query().count()

    error, stored = run(scenario())
    assert 20 in error.errors and stored == 20


def test_a_refusal_before_a_stop_reports_what_was_not_sent(client):
    async def arrive():
        yield {"time": T0, "tank": "t0", "litres": 1.0}
        yield {"time": T0 + timedelta(seconds=1), "tank": "t0", "litres": "bad"}

    async def scenario():
        async with client:
            await client.write_lines([f"async_level,tank=t0 litres=1i {int(T0.timestamp() * 1e9) - 5}"])
            with pytest.raises(PartialWriteError) as info:
                await client.repository(Level).add_all(arrive(), batch_size=1)
            return info.value

    error = run(scenario())
    assert (error.dropped, error.written, error.not_sent) == (1, 0, 1)
    assert isinstance(error.__cause__, ValidationError)


def test_the_batch_writer_flushes_on_size_interval_and_exit(client):
    async def scenario():
        async with client:
            repo = client.repository(Level)
            count = repo.query().count
            async with client.batch_writer(repo, size=3, interval=0.3) as writer:
                for level in levels(4):
                    await writer.add(level)
                by_size = await count()  # 3 written when the third came; 1 waits
                await asyncio.sleep(0.8)
                by_interval = await count()
                await writer.add(levels(1, start=10)[0])
                before_exit = await count()
            return by_size, by_interval, before_exit, await count(), writer.written

    assert run(scenario()) == (3, 4, 4, 5, 5)


def test_the_batch_writer_raises_a_failed_flush_at_the_next_call(client):
    async def scenario():
        async with client:
            await client.write_lines([f"async_level,tank=t0 litres=1i {int(T0.timestamp() * 1e9) - 5}"])
            writer = client.batch_writer(client.repository(Level), size=2, interval=0.2)
            async with writer:
                await writer.add(levels(1)[0])
                await asyncio.sleep(0.5)  # the interval flush is refused (float into an integer field)
                with pytest.raises(PartialWriteError):
                    await writer.add(levels(1, start=1)[0])
            return writer.written

    assert run(scenario()) == 0
    with pytest.raises(ValidationError, match="interval"):
        ih.AsyncInfluxHtmClient("x").batch_writer(object(), interval=0)


def test_concurrent_queries_each_get_their_own_answer(client):
    async def scenario():
        async with client:
            repo = client.repository(Level)
            await repo.add_all(levels(1_000))
            queries = [repo.query().within(T0 + timedelta(seconds=i * 10), T0 + timedelta(seconds=i * 10 + 9))
                       for i in range(100)]  # fmt: skip
            return await asyncio.gather(*(q.all() for q in queries))

    answers = run(scenario())
    assert [len(a) for a in answers] == [10] * 100
    assert [a[0].litres for a in answers] == [i * 5.0 for i in range(100)]


def test_a_query_says_which_iteration_its_repository_needs(client, influx_settings, influx_database):
    sync_query = ih.InfluxHtmClient.from_settings(influx_database, influx_settings).repository(Level).query()
    with pytest.raises(InfluxHtmError, match="sync repository"):
        sync_query.__aiter__()
    with pytest.raises(InfluxHtmError, match="async for"):
        list(client.repository(Level).query())


def test_the_docs_example_runs_as_written(influxd, monkeypatch, capsys):
    """The FastAPI-style example of docs/async.rst, executed from the page itself."""
    text = (ROOT / "docs" / "async.rst").read_text()
    section = text.split("Example: handlers of a web service", 1)[1]
    code = re.search(r"\.\. code-block:: python\n\n((?:    .*\n|\n)+)", section).group(1)
    printed = section.split("It prints::\n\n", 1)[1].split("\n\n", 1)[0]
    source = "\n".join(line[4:] for line in code.splitlines())
    database = f"docs_{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("INFLUX_HOST", influxd.host)
    monkeypatch.setenv("INFLUX_PORT", str(influxd.port))
    exec(
        compile(source.replace('"plant"', repr(database)), "docs/async.rst", "exec"), {"__name__": "example"}
    )
    assert capsys.readouterr().out.splitlines() == [line[4:] for line in printed.splitlines()]
    ih.InfluxHtmClient(database, host=influxd.host, port=influxd.port).drop_database()
