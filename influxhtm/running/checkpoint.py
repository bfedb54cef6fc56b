"""Checkpoint files of a `Runner`: whose they are, written atomically, held by one run at a time.

A checkpoint records the run it belongs to (`identity`: database, measurement,
component, model id, engine, the model's class and the engine's parameters)
beside the model's state and the time of the last point whose result is
stored. Loading a checkpoint whose identity differs from the runner's raises
`CheckpointMismatch` naming every difference: a checkpoint of sensor A never
makes a runner of sensor B skip B's points.

Writing goes to a temporary file of its own in the checkpoint's directory,
flushed to disk, then renamed over the checkpoint: a reader sees the old file
or the new one, never a torn one, and two writers never trip over each other.
While a run goes on it holds an exclusive lock on ``<checkpoint>.lock``
(`flock`, released by the system when the process ends, so a crash leaves no
stale lock); a second run given the same path fails at once with
`CheckpointInUse`, and the first run goes on undisturbed.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import socket
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from influxhtm.core.errors import CheckpointInUse, CheckpointMismatch, ValidationError

#: What the `format` entry of a checkpoint says, and the version of its layout.
FORMAT = "influxhtm-checkpoint"
VERSION = 1
#: The entries of a checkpoint's identity, in the order differences are reported.
IDENTITY_KEYS = ("database", "measurement", "component", "model_id", "engine", "model_class", "params")


def _plain(value: Any) -> Any:
    """`value` as JSON would give it back (tuples become lists, keys text), so saved and new compare equal."""
    return json.loads(json.dumps(value, sort_keys=True, default=repr))


def _model_class(model: Any) -> str:
    """The qualified name of the model's class (of the function a FunctionModel wraps)."""
    inner = getattr(model, "function", None)
    target = inner if inner is not None and callable(inner) else type(model)
    return f"{getattr(target, '__module__', '?')}.{getattr(target, '__qualname__', repr(target))}"


def identity(sensor: Any, store: Any, model: Any) -> dict[str, Any]:
    """What a checkpoint of this run records, and what a loaded one must match.

    The parameters are the model's own `params` when it has them (every engine
    adapter does), else the parameters registered for the model.
    """
    params = getattr(model, "params", None)
    if not isinstance(params, Mapping):
        params = store.params
    return {
        "database": sensor.client.database,
        "measurement": sensor.measurement,
        "component": sensor.component,
        "model_id": store.model_id,
        "engine": store.engine,
        "model_class": _model_class(model),
        "params": _plain(params),
    }


def _differences(saved: Mapping[str, Any], wanted: Mapping[str, Any]) -> list[str]:
    found = []
    for key in IDENTITY_KEYS:
        old, new = saved.get(key), wanted.get(key)
        if old == new:
            continue
        if key == "params" and isinstance(old, Mapping) and isinstance(new, Mapping):
            keys = sorted(k for k in set(old) | set(new) if old.get(k, ...) != new.get(k, ...))
            was, now = [old.get(k) for k in keys], [new.get(k) for k in keys]
            names = ", ".join(map(repr, keys))
            found.append(f"params differ in {names} (checkpoint {was!r}, this run {now!r})")
        else:
            found.append(f"{key} is {old!r} in the checkpoint, {new!r} in this run")
    return found


def stamp(path: Path) -> tuple[int, int, int] | None:
    """Which version of the file is there (inode, size, mtime); None when there is none."""
    try:
        info = path.stat()
    except FileNotFoundError:
        return None
    return info.st_ino, info.st_size, info.st_mtime_ns


def load(path: Path, wanted: Mapping[str, Any]) -> dict[str, Any]:
    """The checkpoint at `path` ({"state", "last_ns", ...}) after checking it belongs to the run `wanted`."""
    try:
        with open(path, "rb") as fh:
            saved = pickle.load(fh)
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, IndexError, ValueError) as error:
        raise ValidationError(
            {"checkpoint": [f"{str(path)!r} is not an influxhtm checkpoint (it cannot be read: {error})"]}
        ) from None
    if not isinstance(saved, Mapping) or "last_ns" not in saved:
        raise ValidationError({"checkpoint": [f"{str(path)!r} is not an influxhtm checkpoint"]})
    recorded = saved.get("identity")
    if saved.get("format") != FORMAT or not isinstance(recorded, Mapping):
        raise CheckpointMismatch({"checkpoint": [
            f"{str(path)!r} does not record which run it belongs to (written by an older influxhtm): "
            f"delete it to start afresh, or give this run another checkpoint path"]})
    differences = _differences(recorded, wanted)
    if differences:
        raise CheckpointMismatch({"checkpoint": [
            f"{str(path)!r} was written for another run: {'; '.join(differences)}. "
            f"Give this run its own checkpoint path, or delete that file to start afresh"]})
    return dict(saved)


def save(path: Path, wanted: Mapping[str, Any], state: Any, last_ns: int | None) -> None:
    """Write a checkpoint atomically: a temporary file of its own, flushed, then renamed over `path`."""
    saved = {"format": FORMAT, "version": VERSION, "identity": dict(wanted), "state": state,
             "last_ns": last_ns}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            pickle.dump(saved, fh, protocol=pickle.HIGHEST_PROTOCOL)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


@contextlib.contextmanager
def held(path: Path) -> Iterator[None]:
    """Hold the lock of the checkpoint at `path` for one run; CheckpointInUse if another run has it."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock, the atomic writes still keep the file whole
        yield
        return
    lock_path = path.with_name(path.name + ".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "another process"
            raise CheckpointInUse(
                f"checkpoint {str(path)!r} is in use by another run ({holder}): give each run its own "
                f"checkpoint path, or wait until that run ends"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}".encode(), 0)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


__all__ = ["FORMAT", "IDENTITY_KEYS", "VERSION", "held", "identity", "load", "save", "stamp"]
