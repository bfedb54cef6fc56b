"""The typed read path: the optional C decoder (`influxhtm._decode`) against the Python row mapper.

Differential tests: for generated result rows (every field type, nulls, enum tags and fields,
floats stored as ints, columns in any order, group-by tags, times at InfluxDB's extremes and
beyond), the C decoder builds objects equal to the Python mapper's, attribute by attribute and
type by type, and hands every row it does not handle to Python, which converts it or raises the
same error. Against a real server: chunked answers (a series in many pieces) read the same
through both paths. `protocol.decode` gives the same documents however the body is cut.
`./run` builds the extension, so this file fails, not skips, when it is missing.
"""

from __future__ import annotations

import enum
import json
import random
from datetime import UTC, datetime
from typing import Any, Optional

import attrs
import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import field_texts, tag_text

import influxhtm.model.declarations as d
from influxhtm import InfluxHtmClient
from influxhtm.core.errors import ValidationError
from influxhtm.core.times import MAX_NS, MIN_NS
from influxhtm.io.http_api import decode
from influxhtm.model.row_mappers import _decoder, objects_of
from influxhtm.pytest_plugin import server_settings

EXAMPLES = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


class Mood(enum.Enum):
    CALM = "calm"
    ODD = 'o d,d="=\\x'


@d.measurement("decoded")
class Decoded:
    time: datetime = d.timestamp()
    site: str = d.tag()
    mood: Optional[Mood] = d.tag(default=None)
    score: float = d.field(name="anomaly Score")
    text: Optional[str] = d.field(default=None)
    count: Optional[int] = d.field(default=None)
    flag: Optional[bool] = d.field(default=None)
    kind: Optional[Mood] = d.field(default=None)
    ratio: Optional[float] = d.field(default=None)


def test_the_extension_is_built_and_used():
    import influxhtm._decode as module  # ./run builds it: a missing build must fail here

    assert _decoder() is module


def both(monkeypatch: pytest.MonkeyPatch, columns: list[str], tags: Any, rows: list[list[Any]]) -> Any:
    """(C outcome, Python outcome): the objects, or the type and text of the error raised."""
    outcomes = []
    for off in ("0", "1"):
        monkeypatch.setenv("INFLUXHTM_NO_SPEEDUPS", off)
        try:
            objs = objects_of(Decoded, columns, tags, [list(row) for row in rows])
            outcomes.append([[(v, type(v)) for v in attrs.astuple(o, recurse=False)] for o in objs])
        except Exception as error:  # noqa: BLE001 - compared below
            outcomes.append((type(error), str(error)))
    return outcomes


ns_times = st.one_of(
    st.integers(MIN_NS, MAX_NS),
    st.sampled_from([MIN_NS, MAX_NS, 0, -1, 1, -999, -1000, -1001, 999, 1000, 1001, 10**18]),
)
floats = st.floats(allow_nan=False, allow_infinity=False)
numbers = st.one_of(floats, st.integers(-(2**63), 2**63 - 1))  # JSON answers give 1.0 as 1
COLUMNS = {
    "time": ns_times,
    "site": tag_text,
    "mood": st.none() | st.sampled_from([m.value for m in Mood]),
    "anomaly Score": numbers,
    "text": st.none() | field_texts(),
    "count": st.none() | st.integers(-(2**63), 2**63 - 1),
    "flag": st.none() | st.booleans(),
    "kind": st.none() | st.sampled_from([m.value for m in Mood]),
    "ratio": st.none() | numbers,
}


@st.composite
def answers(draw: Any) -> tuple[list[str], dict[str, str] | None, list[list[Any]]]:
    """A series: some columns (required ones always) in any order, group-by tags, rows."""
    optional = [k for k in COLUMNS if k not in ("time", "site", "anomaly Score")]
    chosen = ["time", "site", "anomaly Score", *draw(st.lists(st.sampled_from(optional), unique=True))]
    grouped = {}
    for key in ("site", "mood"):
        if draw(st.booleans()):
            chosen = [c for c in chosen if c != key]
            moods = st.sampled_from(["", *[m.value for m in Mood]])  # '' is a missing tag
            grouped[key] = draw(tag_text if key == "site" else moods)
    columns = draw(st.permutations(chosen))
    rows = draw(st.lists(st.tuples(*(COLUMNS[c] for c in columns)).map(list), max_size=12))
    return list(columns), grouped or None, rows


@EXAMPLES
@given(answers())
def test_rows_decode_in_c_exactly_as_in_python(monkeypatch, answer):
    columns, tags, rows = answer
    in_c, in_python = both(monkeypatch, columns, tags, rows)
    assert in_c == in_python
    assert isinstance(in_c, list)  # well-formed rows always decode
    for obj in in_c:
        stamp, kind = obj[0]
        assert kind is datetime and stamp.tzinfo is UTC


odd_values = st.one_of(
    st.none(), st.booleans(), st.text(max_size=4), st.integers(), floats,
    st.sampled_from(["2024-01-01T00:00:00Z", "1677-09-21T00:12:43.145224194Z", 2**63, -(2**63) - 1, 10**30]),
    st.lists(st.integers(), max_size=2),
)


@EXAMPLES
@given(answers(), st.data())
def test_any_odd_value_is_handed_to_python_and_fails_or_succeeds_as_there(monkeypatch, answer, data):
    """A time that is text or beyond int64, a float field holding text, an unknown enum, a short row."""
    columns, tags, rows = answer
    rows = rows or [[None] * len(columns)]
    row = data.draw(st.integers(0, len(rows) - 1))
    if data.draw(st.booleans()):
        rows[row] = rows[row][:-1]  # a row of the wrong length
    else:
        rows[row][data.draw(st.integers(0, len(columns) - 1))] = data.draw(odd_values)
    in_c, in_python = both(monkeypatch, columns, tags, rows)
    assert in_c == in_python


def test_an_unknown_enum_value_is_named_by_both_paths(monkeypatch):
    rows = [[5, "a", 1.0, "grumpy"]]
    in_c, in_python = both(monkeypatch, ["time", "site", "anomaly Score", "kind"], None, rows)
    assert in_c == in_python
    assert in_c[0] is ValidationError and "'grumpy' read from InfluxDB is not a Mood" in in_c[1]


def test_the_c_function_refuses_bad_arguments_without_crashing():
    module = _decoder()
    tz = UTC
    assert module.build_objects(Decoded, "not a plan", 1, [[1]], tz, None) is None
    assert module.build_objects(Decoded, (("nope", "p", 0, None),), 1, [[1]], tz, None) is None  # no slot
    assert module.build_objects(Decoded, (("site", "p", 5, None),), 1, [[1]], tz, None) is None  # index
    assert module.build_objects(Decoded, (("kind", "e", 0, "no dict"),), 1, [[1]], tz, None) is None
    assert module.build_objects(Decoded, (("site", "", 0, None),), 1, [[1]], tz, None) is None
    assert module.build_objects(Decoded, (), 0, ("not a list",), tz, None) is None
    with pytest.raises(TypeError):
        module.build_objects(Decoded)
    with pytest.raises(ZeroDivisionError):  # the fallback's error comes through, nothing leaks
        module.build_objects(Decoded, (("site", "p", 0, None),), 1, [[1], [2, 3]], tz, lambda row: 1 / 0)


# -- the answer, decoded however it is cut ----------------------------------------------------
documents = st.lists(
    st.fixed_dictionaries({"results": st.lists(st.fixed_dictionaries({
        "statement_id": st.integers(0, 3),
        "series": st.lists(st.fixed_dictionaries({
            "name": tag_text, "columns": st.just(["time", "v"]),
            "values": st.lists(st.tuples(st.integers(MIN_NS, MAX_NS), st.none() | floats | field_texts())
                               .map(list), max_size=5),
        }), max_size=2),
        "partial": st.booleans(),
    }), max_size=2)}),
    min_size=1, max_size=4,
)


@EXAMPLES
@given(documents, st.lists(st.integers(0, 400), max_size=8), st.sampled_from(["msgpack", "json"]))
def test_decode_gives_every_document_however_the_body_is_cut(docs, cuts, form):
    if form == "msgpack":
        body, content_type = b"".join(msgpack.packb(doc) for doc in docs), "application/x-msgpack"
    else:
        body, content_type = b"".join(json.dumps(doc).encode() + b"\n" for doc in docs), "application/json"
    edges = sorted({0, len(body), *(c % (len(body) + 1) for c in cuts)})
    blocks = [body[a:b] for a, b in zip(edges, edges[1:])]
    assert list(decode(blocks, content_type)) == docs


def test_decode_refuses_a_body_that_breaks_off():
    body = msgpack.packb({"results": [{"statement_id": 0, "series": []}]})
    with pytest.raises(ValueError):
        list(decode([b'{"results": [{"statement_id"'], "application/json"))
    assert list(decode([body[:-3]], "application/x-msgpack")) == []  # incomplete: nothing handed out


# -- against the server: chunked answers, partial series ----------------------------------------
@pytest.fixture(scope="module")
def stored(influxd):
    client = InfluxHtmClient.from_settings("test_decode_chunks", server_settings(influxd))
    client.drop_database()
    rng = random.Random(7)
    objs = [
        Decoded(
            time=datetime.fromtimestamp(1_700_000_000 + i * 0.000_001 * rng.randrange(10**6) + i, tz=UTC),
            site=f"site-{i % 3}",
            mood=[None, Mood.CALM, Mood.ODD][i % 3],
            score=rng.choice([float(i), i + 0.5, -1e300, 0.0]),
            text=None if i % 4 else f"t{i}\nline",
            count=None if i % 5 else rng.randrange(-(2**63), 2**63),
            flag=None if i % 2 else bool(i % 3),
            kind=None if i % 7 else Mood.ODD,
            ratio=None if i % 3 else 2.0,  # a float that looks like an int
        )
        for i in range(503)
    ]
    repo = client.repository(Decoded)
    repo.add_all(objs)
    yield client, repo, sorted(objs, key=lambda o: o.time)
    client.drop_database()
    client.close()


@pytest.mark.parametrize("chunk_size", [1, 7, 100, 10_000])
def test_chunked_answers_read_the_same_in_c_and_python(monkeypatch, stored, chunk_size):
    client, repo, objs = stored
    reads = []
    for off in ("0", "1"):
        monkeypatch.setenv("INFLUXHTM_NO_SPEEDUPS", off)
        read = list(repo.iter_query(repo.query(), chunk_size=chunk_size))
        reads.append([[(v, type(v)) for v in attrs.astuple(o, recurse=False)] for o in read])
        assert sorted(read, key=lambda o: o.time) == objs
    assert reads[0] == reads[1]


def test_every_whole_read_gives_the_objects_written(monkeypatch, stored):
    client, repo, objs = stored
    for off in ("0", "1"):
        monkeypatch.setenv("INFLUXHTM_NO_SPEEDUPS", off)
        assert repo.query().all() == objs
        assert sorted(client.query('SELECT * FROM "decoded"', as_=Decoded), key=lambda o: o.time) == objs
        grouped = repo.query().group_by("site").all()  # typed rows, a series per site
        assert sorted(row.time for row in grouped) == [o.time for o in objs]
