"""A model's results as line protocol, fast: the runner's hot path.

A runner writes millions of results of one model. `ResultEncoder` reads the
common result form (a dict of numbers, without a time or with the point's own
time) straight into an `HtmResult` (the declaration's row mapper: no second
validation) and formats it with the encoder of the store's repository
(`HtmModelStore.results`), the one encoder of results. Every other form goes
through `to_htm_result`, as `write_result` would. Either way the result is
stored at the input point's exact timestamp (ns, not the datetime's µs).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from itertools import islice
from typing import TYPE_CHECKING, Any

from influxhtm.htm.result_conversion import to_htm_result
from influxhtm.model.data_layout import RESULT_KEYS, HtmResult
from influxhtm.model.row_mappers import row_mapper

if TYPE_CHECKING:
    from influxhtm.htm.model_store import HtmModelStore

#: Result key (snake_case or camelCase) -> its column in the row (time first, then RESULT_KEYS order).
_SLOTS: dict[str, int] = {}
for _slot, (_attr, _key) in enumerate(RESULT_KEYS.items(), start=1):
    _SLOTS[_attr] = _SLOTS[_key] = _slot
_NO_VALUES = (None,) * len(RESULT_KEYS)
_TIME_KEYS = ("time", "timestamp")
#: Keys a model may return that are not stored (as in `to_htm_result`).
_IGNORED = frozenset({"value", "component", "id", "predictionNumber"})


class ResultEncoder:
    """Encodes a model's results for `store`, each at the timestamp (ns) of the point it answers."""

    def __init__(self, store: HtmModelStore):
        self.store = store
        self._encode = store.results.encoder  # checks the measurement and tags once
        self._result_of_row = row_mapper(HtmResult, ("time", *RESULT_KEYS.values()))

    def line(self, result: Any, point: Any, ns: int) -> str:
        """The line of `result` for `point` (whose time is `ns`)."""
        if type(result) is dict:
            line = self._fast(result, point, ns)
            if line is not None:
                return line
        return self._general(result, point, ns)

    def _fast(self, result: dict[str, Any], point: Any, ns: int) -> str | None:
        """The line of a plain dict of numbers, or None to take the general path."""
        row: list[Any] = [ns, *_NO_VALUES]
        slots = _SLOTS
        for key, value in result.items():
            slot = slots.get(key)
            if slot is not None:
                row[slot] = value
            elif key in _TIME_KEYS:
                if value is not None and value is not point.time:
                    return None
            elif key not in _IGNORED:
                return None
        found = False
        for value in islice(row, 1, None):
            if value is None:
                continue
            kind = type(value)
            if (kind is not float and kind is not int) or not math.isfinite(value):
                return None
            found = True
        if not found:
            return None
        return self._encode(self._result_of_row(row), ns)

    def _general(self, result: Any, point: Any, ns: int) -> str:
        own_time = _own_time(result)
        if own_time is None or own_time is point.time:
            return self._encode(to_htm_result(result, time=point.time), ns)
        return self._encode(to_htm_result(result))


def _own_time(result: Any) -> Any:
    """The time a result carries itself, or None."""
    if isinstance(result, HtmResult):
        return result.time
    if isinstance(result, Mapping):
        for key in _TIME_KEYS:
            if result.get(key) is not None:
                return result[key]
        raw = result.get("rawInput")
        return raw.get("timestamp") if isinstance(raw, Mapping) else None
    raw = getattr(result, "rawInput", None)
    return raw.get("timestamp") if isinstance(raw, Mapping) else None

