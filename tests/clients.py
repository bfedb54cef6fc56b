"""Run the same test with the sync and the async client (the shared behaviour suite, issue 18).

`Driver` holds a client of one kind and makes the tests' calls read alike for both:
`d.run(x)` awaits `x` on the driver's event loop when it is awaitable (an async client's
coroutine) and returns it as it is otherwise (a sync client's value); `d.collect(q)`
iterates a bound query, a sensor's data or any iterable with `async for` or `for`.
The tests themselves call the clients' public API by the same names.
"""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import influxhtm as ih
from influxhtm.io.settings import Settings

KINDS = ("sync", "async")


class Driver:
    def __init__(self, kind: str, database: str, settings: Settings, *, create: bool = True):
        self.kind = kind
        self.loop = asyncio.new_event_loop() if kind == "async" else None
        factory = ih.AsyncInfluxHtmClient if kind == "async" else ih.InfluxHtmClient
        self.client: Any = factory.from_settings(database, settings, create=create)

    def run(self, value: Any) -> Any:
        if inspect.isawaitable(value):
            assert self.loop is not None, "a sync client returned an awaitable"
            return self.loop.run_until_complete(value)
        assert self.loop is None, f"the async client returned {value!r} instead of an awaitable"
        return value

    def collect(self, items: Any) -> list[Any]:
        if hasattr(items, "__aiter__") and self.loop is not None:

            async def gather() -> list[Any]:
                return [item async for item in items]

            return self.loop.run_until_complete(gather())
        return list(items)

    def close(self) -> None:
        if self.loop is not None:
            self.loop.run_until_complete(self.client.aclose())
            self.loop.close()
        else:
            self.client.close()
