"""Line protocol of a model's results, fast: the runner's hot path.

`HtmModelStore.result_line` checks every part of every line. A runner writes
millions of results of one model, whose measurement and tags never change, so
`ResultEncoder` escapes them once and, for the common result form (a dict of
numbers, without a time or with the point's own time), only formats the fields.
Every other form goes through `to_htm_result` and the store, as `write_result`
would. Either way the result is stored at the input point's exact timestamp.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..records import RESULT_KEYS, HtmResult
from ..result_forms import to_htm_result
from ..times import from_ns

if TYPE_CHECKING:
    from ..model_store import HtmModelStore

#: Result key (snake_case or camelCase) -> its slot in RESULT_KEYS order.
_SLOTS: dict[str, int] = {}
for _slot, (_attr, _key) in enumerate(RESULT_KEYS.items()):
    _SLOTS[_attr] = _SLOTS[_key] = _slot
_FIELD_NAMES = tuple(RESULT_KEYS.values())
_TIME_KEYS = ("time", "timestamp")
#: Keys a model may return that are not stored (as in `to_htm_result`).
_IGNORED = frozenset({"value", "component", "id", "predictionNumber"})


class ResultEncoder:
    """Encodes a model's results for `store`, each at the timestamp (ns) of the point it answers."""

    def __init__(self, store: HtmModelStore):
        self.store = store
        sample = store.result_line(HtmResult(time=from_ns(0), anomaly_score=0.0))
        self.prefix = sample.rsplit(" ", 2)[0] + " "  # escaped measurement and tags, checked once

    def line(self, result: Any, point: Any, ns: int) -> str:
        """The line of `result` for `point` (whose time is `ns`)."""
        if type(result) is dict:
            line = self._fast(result, point, ns)
            if line is not None:
                return line
        return self._general(result, point, ns)

    def _fast(self, result: dict[str, Any], point: Any, ns: int) -> str | None:
        """The line of a plain dict of numbers, or None to take the general path."""
        values: list[Any] = [None] * len(_FIELD_NAMES)
        slots = _SLOTS
        for key, value in result.items():
            slot = slots.get(key)
            if slot is not None:
                values[slot] = value
            elif key in _TIME_KEYS:
                if value is not None and value is not point.time:
                    return None
            elif key not in _IGNORED:
                return None
        fields = []
        for name, value in zip(_FIELD_NAMES, values, strict=True):
            if value is None:
                continue
            kind = type(value)
            if kind is not float:
                if kind is not int:
                    return None
                value = float(value)
            if not math.isfinite(value):
                return None
            fields.append(f"{name}={value!r}")
        if not fields:
            return None
        return f"{self.prefix}{','.join(fields)} {ns}"

    def _general(self, result: Any, point: Any, ns: int) -> str:
        own_time = _own_time(result)
        if own_time is None or own_time is point.time:
            htm = to_htm_result(result, time=point.time)
            return self.store.result_line(htm).rsplit(" ", 1)[0] + f" {ns}"
        return self.store.result_line(to_htm_result(result))


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

