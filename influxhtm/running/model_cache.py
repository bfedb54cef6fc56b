"""More models than memory: a bounded LRU of models with compressed checkpoints (the *model swapper*).

`ModelCache` holds at most `max_models` models (and, optionally, about
`max_bytes` of model state) in memory (a model's size: its pickled state, measured when it is made, restored
or checkpointed). The bounds count the states in flight as models too (checkpoints waiting to be
written, states read ahead), and room is made before a model is restored or made: at no moment are
more than `max_models` models' states in memory (beside the model in use). Taking a model that is
not held restores it from its checkpoint (or makes a new one); making room evicts the least
recently used model after writing its checkpoint. A checkpoint is the run's
checkpoint (`influxhtm.running.checkpoint`: identity checked on load, written
atomically) whose state is the model's pickled state compressed with zlib at
level 1 (a BrainBlocks state: about 5.3 MB to 0.09 MB in about 10 ms; 0.95 MB in 33 ms before its
version 2, see docs/fleet.rst, *Moving a BrainBlocks model*).

A checkpoint records the time of the last point whose result is *stored*: the
owner must store a model's results before it is evicted (`before_evict`), so an
evicted and restored model continues exactly where it stopped, and its results
are those of a model that never left memory (bit for bit for a deterministic
engine whose `get_state`/`set_state` round-trip is exact).
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import ctypes.util
import hashlib
import logging
import os
import pickle
import queue
import re
import threading
import zlib
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs

from influxhtm.core.errors import ValidationError
from influxhtm.running import checkpoint as checkpoints

log = logging.getLogger(__name__)

#: zlib level of checkpoints: level 1 is about 5x smaller and fast (see the module's text).
COMPRESSION = 1
#: Threads that compress and write checkpoints, and the checkpoints each holds waiting at most (the
#: loop that submits one more waits): a BrainBlocks state waits as its pickle, about 5.3 MB.
WRITE_THREADS = 2
WRITE_QUEUE = 2
#: Threads that restore the models about to be taken (`prefetch`: read, decompress, make, set): two for
#: an unbounded cache (a take-over restores hundreds), one for a bounded one, as each holds a
#: decompressed copy beside the state it sets (10 MB for BrainBlocks, not counted as a model); one keeps
#: up with 10 restores a second.
READ_THREADS = 2
#: Allocations from this size on get pages of their own, given back when freed (`keep_large_buffers_apart`).
MMAP_THRESHOLD = 128 * 1024


def pack_state(state: Any) -> dict[str, Any]:
    """A model's state as a checkpoint's compressed payload (with its pickled size, `nbytes`)."""
    return pack_pickled(pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL))


def pack_pickled(pickled: bytes) -> dict[str, Any]:
    """A pickled state as a checkpoint's compressed payload."""
    return {"zlib": zlib.compress(pickled, COMPRESSION), "nbytes": len(pickled)}


def unpack_state(payload: Any) -> Any:
    """The state `pack_state` packed (a plain state is given back as it is)."""
    if isinstance(payload, Mapping) and "zlib" in payload:
        return pickle.loads(zlib.decompress(payload["zlib"]))
    return payload


def keep_large_buffers_apart() -> bool:
    """Make glibc give every allocation of `MMAP_THRESHOLD` bytes or more pages of its own, returned to
    the system when freed; whether it did (only on glibc, and not when the process set the threshold
    itself with MALLOC_MMAP_THRESHOLD_).

    glibc starts at this threshold but raises it to the size of each large block freed: after the
    first model state (5 MB) the next ones come from the heaps of the threads that make them (the
    loop, the writer's and reader's threads), and a swapping cache leaves those heaps full of holes
    that are never given back. Measured in the fleet benchmark (20 BrainBlocks models of 60
    sensors), with the states in flight counted as models: peak resident memory 1.6x that of the
    models alone, 1.24x with the threshold fixed. It is set once for the process (a swapping cache
    is what such a process does); the price is the page faults of each new large buffer, about
    3.5 ms per 5 MB on the loaded test machine (a few such buffers per swap).
    """
    if "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        mallopt = getattr(libc, "mallopt", None)
        if mallopt is None or not hasattr(libc, "gnu_get_libc_version"):
            return False
        return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD))
    except OSError:
        return False


_M_MMAP_THRESHOLD = -3  # glibc's malloc.h


def checkpoint_path(directory: Path, identity: Mapping[str, Any]) -> Path:
    """Where the checkpoint of one (sensor, model) lives: a readable name and a hash of the identity."""
    parts = (identity["database"], identity["measurement"], identity["component"], identity["model_id"])
    digest = hashlib.sha1("\n".join(parts).encode()).hexdigest()[:16]
    readable = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{parts[1]}.{parts[2]}")[:80]
    return directory / f"{readable}.{digest}.ckpt"


@attrs.frozen
class Pending:
    """A checkpoint pickled, waiting to be compressed and written."""

    identity: dict[str, Any]
    pickled: bytes | None
    last_ns: int | None


class CheckpointWriter:
    """Compresses and writes checkpoints on a thread of its own, so the loop that feeds models goes on.

    zlib and the file system release the GIL: the compression (most of a checkpoint's
    cost, about 10 ms for a BrainBlocks model) runs beside the loop. A checkpoint waiting
    here is what a restore or `last_ns` reads (`pending`); `wait` and `flush` block until
    written. A process killed meanwhile loses only the waiting checkpoints: the sensors
    resume from older ones and recompute the results after them (one result per point).
    A write that fails is raised by the next `submit`, `wait` or `flush`.
    """

    def __init__(self, threads: int = WRITE_THREADS, depth: int = WRITE_QUEUE):
        # One queue per thread, a path always to the same one: two writes of a path never race.
        self._queues: list[queue.Queue[Path | None]] = [queue.Queue(maxsize=depth) for _ in range(threads)]
        self._threads: list[threading.Thread | None] = [None] * threads
        self._pending: dict[Path, Pending] = {}
        self._lock = threading.Lock()
        self._written = threading.Condition(self._lock)
        self._error: BaseException | None = None

    def submit(self, path: Path, pending: Pending) -> None:
        self._raise()
        with self._lock:
            self._pending[path] = pending  # the newest state of a path wins
        i = hash(path) % len(self._queues)
        thread = self._threads[i]
        if thread is None or not thread.is_alive():
            thread = self._threads[i] = threading.Thread(
                target=self._run, args=(self._queues[i],), name="influxhtm-checkpoints", daemon=True)
            thread.start()
        self._queues[i].put(path)

    def pending(self, path: Path) -> Pending | None:
        with self._lock:
            return self._pending.get(path)

    def check(self) -> None:
        """Raise the error of a write that failed, if one did (as `submit` does first)."""
        self._raise()

    def waiting(self) -> tuple[int, int]:
        """The pickled states waiting to be written: how many, and their bytes."""
        with self._lock:
            sizes = [len(p.pickled) for p in self._pending.values() if p.pickled is not None]
        return len(sizes), sum(sizes)

    def wait(self, path: Path) -> None:
        """Block until the checkpoint of `path` is written (at once if none waits)."""
        with self._written:
            while path in self._pending and self._error is None:
                self._written.wait(0.5)
        self._raise()

    def flush(self) -> None:
        """Block until every waiting checkpoint is written."""
        with self._written:
            while self._pending and self._error is None:
                self._written.wait(0.5)
        self._raise()

    def close(self) -> None:
        """Write what waits, then end the thread."""
        self.flush()
        for i, thread in enumerate(self._threads):
            if thread is not None and thread.is_alive():
                self._queues[i].put(None)
                thread.join()
            self._threads[i] = None

    def _raise(self) -> None:
        error, self._error = self._error, None
        if error is not None:
            raise error

    def _run(self, paths: queue.Queue[Path | None]) -> None:
        while True:
            path = paths.get()
            if path is None:
                return
            with self._lock:
                pending = self._pending.get(path)
            if pending is None:
                continue  # written already, with a newer state
            try:
                state = pack_pickled(pending.pickled) if pending.pickled is not None else None
                checkpoints.save(path, pending.identity, state, pending.last_ns)
            except BaseException as error:  # noqa: BLE001 - handed to the loop by the next call
                log.error("checkpoint %s not written: %s", path, error)
                with self._written:
                    self._error = error
                    if self._pending.get(path) is pending:
                        del self._pending[path]  # the older checkpoint stays: its sensor recomputes more
                    self._written.notify_all()
                continue
            with self._written:
                if self._pending.get(path) is pending:
                    del self._pending[path]
                self._written.notify_all()


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
        self.writer = CheckpointWriter()
        self._reader: concurrent.futures.ThreadPoolExecutor | None = None
        #: Models being restored ahead (`prefetch`): (model, pickled size, last stored time).
        self._prefetched: dict[Hashable, concurrent.futures.Future[tuple[Any, Any, int | None]]] = {}
        if max_models is not None or max_bytes is not None:
            keep_large_buffers_apart()  # a swapping cache: freed states must not stay resident

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
        """The model of `key`, most recently used now: held, restored from its checkpoint, or new.

        Room is made first (the least recently used model evicted), then the state is read and the
        model made: at most `max_models` models are in memory at any moment, during a restore too."""
        held = self._held.get(key)
        if held is not None:
            self._held.move_to_end(key)
            return Restored(held.model, held.last_ns, False)
        identity = self.identity(key)
        path = checkpoint_path(self.directory, identity)
        pending = self.writer.pending(path)
        prefetched = self._prefetched.pop(key, None)
        self._make_room(extra=0)  # room first (a model restored ahead no longer counts in flight)
        last_ns = None
        nbytes = None
        restored = pending is not None or prefetched is not None or path.exists()
        if pending is not None:  # its checkpoint is still being written: the same state, from memory
            model = self.make(key)
            _set_state(model, None if pending.pickled is None else pickle.loads(pending.pickled))
            nbytes, last_ns = (len(pending.pickled) if pending.pickled else None), pending.last_ns
        elif prefetched is not None:  # restored on a reader's thread already
            model, nbytes, last_ns = prefetched.result()
        elif restored:
            model, nbytes, last_ns = self._restore(key, path, identity)
        else:
            model = self.make(key)
        if restored:
            self.restores += 1
        held = Held(model, identity, path, last_ns, saved_ns=last_ns)
        if self.max_bytes is not None:
            held.nbytes = nbytes if isinstance(nbytes, int) else self.size_of(model)
            self._make_room(extra=held.nbytes)
        self._held[key] = held
        return Restored(model, last_ns, restored)

    def _restore(self, key: Hashable, path: Path, identity: Mapping[str, Any]) -> tuple[Any, Any, int | None]:
        """A model of `key` continuing from its checkpoint at `path`: (model, pickled size, last stored
        time). Read and checked before the model is made: a checkpoint of another run makes none."""
        state, nbytes, last_ns = _read_state(path, identity)
        model = self.make(key)
        try:
            _set_state(model, state)
        except ValidationError as error:  # a state this engine refuses: say which checkpoint holds it
            raise ValidationError({"checkpoint": [f"{str(path)!r} holds a state this model refuses: {error}"]}
                                  ) from error
        del state  # the model holds what it needs: the state is not kept beside it
        return model, nbytes, last_ns

    def prefetch(self, keys: Iterable[Hashable]) -> None:
        """Start restoring the models of `keys` that are not held (read, decompress, make, set the
        state: `_restore`) on threads of their own, for `take` to find ready: the decompression
        releases the GIL, and the rest (a BrainBlocks model: about 10 ms holding the GIL) overlaps
        the loop's waits for the server. A failure is raised by `take`."""
        for key in keys:
            if key in self._held or key in self._prefetched:
                continue
            if self.max_models is not None and self.in_flight()[0] >= self.max_models - 1:
                return  # a state read ahead counts as a model: room is left for the model in use
            identity = self.identity(key)
            path = checkpoint_path(self.directory, identity)
            if self.writer.pending(path) is not None or not path.exists():
                continue
            self._make_room(extra=0)  # ... and is made before it is read
            if self._reader is None:
                bounded = self.max_models is not None or self.max_bytes is not None
                self._reader = concurrent.futures.ThreadPoolExecutor(1 if bounded else READ_THREADS,
                                                                     "influxhtm-restores")
            self._prefetched[key] = self._reader.submit(self._restore, key, path, identity)

    def stored(self, key: Hashable, last_ns: int) -> None:
        """The results of `key`'s model are stored up to `last_ns`."""
        self._held[key].last_ns = last_ns

    def _make_room(self, extra: int) -> None:
        """Evict least recently used models until one more (of `extra` bytes) fits beside the held
        models and the states in flight (`in_flight`)."""
        while self._held and self._full(extra):
            self.evict(next(iter(self._held)))

    def _full(self, extra: int = 0) -> bool:
        """Whether one more model (of `extra` bytes) would pass a bound, the states in flight counted."""
        states, nbytes = self.in_flight()
        return ((self.max_models is not None and len(self._held) + states >= self.max_models)
                or (self.max_bytes is not None and self.nbytes + nbytes + extra > self.max_bytes))

    def in_flight(self) -> tuple[int, int]:
        """The model states in memory beside the held models, and their bytes: the checkpoints waiting
        to be written and the ones read ahead (`prefetch`). Each is about a model's size (a BrainBlocks
        state: 5.3 MB pickled, its model about 5.5 MB), so the bounds count them as models: at most
        `max_models` models' states are in memory, whatever the writer's backlog (beside the model
        in use, which is always held)."""
        states, nbytes = self.writer.waiting()
        for future in self._prefetched.values():
            states += 1
            if future.done() and future.exception() is None and isinstance(future.result()[1], int):
                nbytes += future.result()[1]
        return states, nbytes

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
        self._let_go(key)
        self.evictions += 1

    def save(self, key: Hashable) -> bool:
        """Checkpoint `key`'s model if it has seen points since its last checkpoint; whether it did."""
        return self._save(self._held[key])

    def _let_go(self, key: Hashable) -> bool:
        """Checkpoint `key`'s model (if it changed) and drop it from the cache; whether it was saved.
        A write that failed before is raised first, while the model is still held; the model leaves
        the cache before its state is taken, so a model let go is never saved."""
        self.writer.check()
        return self._save(self._held.pop(key), drop=True)

    def _save(self, held: Held, drop: bool = False) -> bool:
        """`save`; with `drop` the model is let go once its state is taken, before the state is
        pickled (an evicted model, its state and their pickle are not all in memory at once)."""
        if held.last_ns is None or held.last_ns == held.saved_ns:
            return False
        get_state = getattr(held.model, "get_state", None)
        state = get_state() if callable(get_state) else None
        if drop:
            held.model = None
        pickled = pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL) if callable(get_state) else None
        del state
        self.writer.submit(held.path, Pending(held.identity, pickled, held.last_ns))
        if pickled is not None:
            held.nbytes = len(pickled)  # the size estimate follows the model's growth
        held.saved_ns = held.last_ns
        self.checkpoints += 1
        return True

    def save_all(self) -> int:
        """Checkpoint every held model that changed and wait until written; how many were. A bounded
        cache keeps its bound meanwhile: once the held models and the waiting checkpoints fill it,
        each model is let go as its state is taken (it is restored when taken again)."""
        saved = 0
        for key in list(self._held):
            if self._full():  # its pickle would pass the bound beside it: the model is let go
                saved += self._let_go(key)
            else:
                saved += self.save(key)
        self.writer.flush()
        return saved

    def release(self, key: Hashable) -> None:
        """Checkpoint and drop one model (a sensor that is gone, or moved to another worker: `written`
        tells when its checkpoint is there for the new owner to read)."""
        self._prefetched.pop(key, None)
        if key in self._held:
            self.evict(key)

    def written(self) -> None:
        """Wait until every checkpoint submitted so far is written."""
        self.writer.flush()

    def close(self) -> None:
        """Write the waiting checkpoints and end the writer's and reader's threads (they start again
        if needed)."""
        self.writer.close()
        self._prefetched.clear()
        if self._reader is not None:
            self._reader.shutdown()
            self._reader = None

    def last_saved_ns(self, key: Hashable) -> int | None:
        held = self._held.get(key)
        return None if held is None else held.saved_ns

    def saved_last_ns(self, key: Hashable) -> int | None:
        """The last stored time the checkpoint of `key` records (None without one), identity checked."""
        path = checkpoint_path(self.directory, self.identity(key))
        pending = self.writer.pending(path)
        return pending.last_ns if pending is not None else read_last_ns(path, self.identity(key))


def _read_state(path: Path, identity: Mapping[str, Any]) -> tuple[Any, Any, int | None]:
    """A checkpoint's state (unpacked), its pickled size and last stored time, identity checked."""
    saved = checkpoints.load(path, identity)
    state = None if saved.get("state") is None else unpack_state(saved["state"])
    nbytes = saved["state"].get("nbytes") if isinstance(saved["state"], Mapping) else None
    return state, nbytes, saved["last_ns"]


def _set_state(model: Any, state: Any) -> None:
    """Continue `model` from `state` (nothing for a state of None or a model without `set_state`)."""
    set_state = getattr(model, "set_state", None)
    if state is not None and callable(set_state):
        set_state(state)


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


__all__ = ["COMPRESSION", "CheckpointWriter", "ModelCache", "Restored", "checkpoint_path", "pack_pickled",
           "pack_state", "read_last_ns", "state_size", "unpack_state"]
