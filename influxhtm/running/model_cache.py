"""More models than memory: a bounded LRU of models with compressed checkpoints (the *model swapper*).

`ModelCache` holds at most `max_models` models (and, optionally, about
`max_bytes` of model state) in memory (a model's size: its pickled state, measured when it is made, restored
or checkpointed). Taking a model that is not held restores
it from its checkpoint (or makes a new one); making room evicts the least
recently used model after writing its checkpoint. A checkpoint is the run's
checkpoint (`influxhtm.running.checkpoint`: identity checked on load, written
atomically) whose state is the model's pickled state compressed with zlib at
level 1 (a BrainBlocks state: about 5.3 MB to 0.95 MB in about 40 ms).

A checkpoint records the time of the last point whose result is *stored*: the
owner must store a model's results before it is evicted (`before_evict`), so an
evicted and restored model continues exactly where it stopped, and its results
are those of a model that never left memory (bit for bit for a deterministic
engine whose `get_state`/`set_state` round-trip is exact).
"""

from __future__ import annotations

import hashlib
import pickle
import re
import zlib
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from pathlib import Path
from typing import Any

import attrs

from influxhtm.running import checkpoint as checkpoints

#: zlib level of checkpoints: level 1 is about 5x smaller and fast (see the module's text).
COMPRESSION = 1


def pack_state(state: Any) -> dict[str, Any]:
    """A model's state as a checkpoint's compressed payload (with its pickled size, `nbytes`)."""
    pickled = pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)
    return {"zlib": zlib.compress(pickled, COMPRESSION), "nbytes": len(pickled)}


def unpack_state(payload: Any) -> Any:
    """The state `pack_state` packed (a plain state is given back as it is)."""
    if isinstance(payload, Mapping) and "zlib" in payload:
        return pickle.loads(zlib.decompress(payload["zlib"]))
    return payload


def checkpoint_path(directory: Path, identity: Mapping[str, Any]) -> Path:
    """Where the checkpoint of one (sensor, model) lives: a readable name and a hash of the identity."""
    parts = (identity["database"], identity["measurement"], identity["component"], identity["model_id"])
    digest = hashlib.sha1("\n".join(parts).encode()).hexdigest()[:16]
    readable = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{parts[1]}.{parts[2]}")[:80]
    return directory / f"{readable}.{digest}.ckpt"


@attrs.define
class Held:
    """A model in memory: its identity, checkpoint path, the last stored time and its size estimate."""

    model: Any
    identity: dict[str, Any]
    path: Path
    last_ns: int | None
    nbytes: int = 0
    saved_ns: int | None = None  # the last_ns of its newest checkpoint


@attrs.define
class Restored:
    """What `ModelCache.take` gives: the model and the time of the last point its state has seen."""

    model: Any
    last_ns: int | None
    restored: bool


class ModelCache:
    """An LRU of models, bounded by count and optionally by bytes; evicted models are checkpointed.

    `make(key)` returns a new model of `key`, `identity(key)` what its checkpoint records;
    `before_evict(key)` is called before a model is checkpointed and dropped (store its results there).
    """

    def __init__(
        self,
        directory: str | Path,
        make: Callable[[Any], Any],
        identity: Callable[[Any], dict[str, Any]],
        *,
        max_models: int | None = None,
        max_bytes: int | None = None,
        before_evict: Callable[[Any], None] | None = None,
        size_of: Callable[[Any], int] | None = None,
    ):
        self.directory = Path(directory)
        self.make = make
        self.identity = identity
        self.max_models = max_models
        self.max_bytes = max_bytes
        self.before_evict = before_evict or (lambda key: None)
        self.size_of = size_of or state_size
        self._held: OrderedDict[Hashable, Held] = OrderedDict()
        self.evictions = 0
        self.restores = 0
        self.checkpoints = 0

    def __len__(self) -> int:
        return len(self._held)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._held

    @property
    def nbytes(self) -> int:
        return sum(held.nbytes for held in self._held.values())

    def held(self, key: Hashable) -> Held | None:
        return self._held.get(key)

    def keys(self) -> list[Hashable]:
        return list(self._held)

    def take(self, key: Hashable) -> Restored:
        """The model of `key`, most recently used now: held, restored from its checkpoint, or new."""
        held = self._held.get(key)
        if held is not None:
            self._held.move_to_end(key)
            return Restored(held.model, held.last_ns, False)
        identity = self.identity(key)
        model = self.make(key)
        path = checkpoint_path(self.directory, identity)
        last_ns = saved_ns = None
        restored = False
        nbytes = None
        if path.exists():
            saved = checkpoints.load(path, identity)
            set_state = getattr(model, "set_state", None)
            if saved.get("state") is not None and callable(set_state):
                set_state(unpack_state(saved["state"]))
                nbytes = saved["state"].get("nbytes") if isinstance(saved["state"], Mapping) else None
            last_ns = saved_ns = saved["last_ns"]
            restored = True
            self.restores += 1
        held = Held(model, identity, path, last_ns, saved_ns=saved_ns)
        if self.max_bytes is not None:
            held.nbytes = nbytes if isinstance(nbytes, int) else self.size_of(model)
        self._make_room(extra=held.nbytes)
        self._held[key] = held
        return Restored(model, last_ns, restored)

    def stored(self, key: Hashable, last_ns: int) -> None:
        """The results of `key`'s model are stored up to `last_ns`."""
        self._held[key].last_ns = last_ns

    def _make_room(self, extra: int) -> None:
        while self._held and (
            (self.max_models is not None and len(self._held) >= self.max_models)
            or (self.max_bytes is not None and self.nbytes + extra > self.max_bytes)
        ):
            self.evict(next(iter(self._held)))

    def trim(self) -> None:
        """Evict least recently used models while more than the bounds are held (sizes change as
        models learn: a checkpoint measures them again)."""
        while len(self._held) > 1 and (
            (self.max_models is not None and len(self._held) > self.max_models)
            or (self.max_bytes is not None and self.nbytes > self.max_bytes)
        ):
            self.evict(next(iter(self._held)))

    def evict(self, key: Hashable) -> None:
        """Store the model's results (`before_evict`), checkpoint it, and drop it from memory."""
        self.before_evict(key)
        if key not in self._held:
            return  # storing the results made room already (see `trim`)
        self.save(key)
        del self._held[key]
        self.evictions += 1

    def save(self, key: Hashable) -> bool:
        """Checkpoint `key`'s model if it has seen points since its last checkpoint; whether it did."""
        held = self._held[key]
        if held.last_ns is None or held.last_ns == held.saved_ns:
            return False
        get_state = getattr(held.model, "get_state", None)
        state = pack_state(get_state()) if callable(get_state) else None
        checkpoints.save(held.path, held.identity, state, held.last_ns)
        if state is not None:
            held.nbytes = state["nbytes"]  # the size estimate follows the model's growth
        held.saved_ns = held.last_ns
        self.checkpoints += 1
        return True

    def save_all(self) -> int:
        """Checkpoint every held model that changed; how many were written."""
        return sum(self.save(key) for key in list(self._held))

    def release(self, key: Hashable) -> None:
        """Checkpoint and drop one model (a sensor that is gone, or moved to another worker)."""
        if key in self._held:
            self.evict(key)

    def last_saved_ns(self, key: Hashable) -> int | None:
        held = self._held.get(key)
        return None if held is None else held.saved_ns

    def saved_last_ns(self, key: Hashable) -> int | None:
        """The last stored time the checkpoint of `key` records (None without one), identity checked."""
        return read_last_ns(checkpoint_path(self.directory, self.identity(key)), self.identity(key))


def state_size(model: Any) -> int:
    """About how many bytes a model holds: the size of its pickled state (0 without `get_state`)."""
    get_state = getattr(model, "get_state", None)
    if not callable(get_state):
        return 0
    return len(pickle.dumps(get_state(), protocol=pickle.HIGHEST_PROTOCOL))


def read_last_ns(path: Path, identity: Mapping[str, Any]) -> int | None:
    """The last stored time a checkpoint records (None without one), after checking it is this run's."""
    if not path.exists():
        return None
    last_ns: int | None = checkpoints.load(path, identity)["last_ns"]
    return last_ns


__all__ = ["COMPRESSION", "ModelCache", "Restored", "checkpoint_path", "pack_state", "read_last_ns",
           "state_size", "unpack_state"]
