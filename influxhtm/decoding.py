"""The answer of InfluxDB's `/query`, decoded: a plain function any transport can call (sans I/O).

A chunked answer is a sequence of documents (msgpack objects back to back, or one JSON
object per line), each `{"results": [{"statement_id", "series", "partial"?}, ...]}`.
`decode` takes the body in blocks of any size, as they arrive, and yields each document
as soon as it is whole; `Connection` checks and joins them (see `Connection.query`), and
`rows.objects_of` turns a series' rows into typed objects.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Iterable, Iterator
from typing import Any

import msgpack

MSGPACK = "application/x-msgpack"


def decode(blocks: Iterable[bytes | memoryview], content_type: str) -> Iterator[Any]:
    """Each document of a chunked answer whose body comes in `blocks` (`content_type` is the
    answer's Content-Type: msgpack, else JSON lines). Raises ValueError (or msgpack's
    UnpackException) on a body that is not one."""
    if content_type.startswith(MSGPACK):
        yield from _msgpack_documents(blocks)
    else:
        yield from _json_documents(blocks)


def _msgpack_documents(blocks: Iterable[bytes | memoryview]) -> Iterator[Any]:
    unpacker = msgpack.Unpacker(raw=False, strict_map_key=False, max_buffer_size=1 << 30)
    for block in blocks:
        unpacker.feed(block)
        # The rows of a chunk are thousands of new lists: the collector is paused while they are
        # made (it would run over them again and again), never while a document is handed out.
        collecting = gc.isenabled()
        gc.disable()
        try:
            documents = list(unpacker)
        finally:
            if collecting:
                gc.enable()
        yield from documents


def _json_documents(blocks: Iterable[bytes | memoryview]) -> Iterator[Any]:
    pending = b""
    for block in blocks:
        lines = (pending + bytes(block)).split(b"\n")
        pending = lines.pop()
        for line in lines:
            if line.strip():
                yield json.loads(line)
    if pending.strip():
        yield json.loads(pending)
