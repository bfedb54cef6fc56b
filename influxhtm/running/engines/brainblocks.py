"""Adapter for BrainBlocks (PyPI ``brainblocks``), an HTM-like library from The Aerospace Corporation.

Per point: ``ScalarTransformer`` (encoder) -> ``PatternPooler`` (spatial pooler
analogue) -> ``SequenceLearner`` (temporal memory analogue), learning online.
The result carries:

- ``raw_score``: the SequenceLearner's anomaly score in [0, 1] (fraction of
  active columns it did not predict); 1.0 for a value outside
  [min_val, max_val], as BrainBlocks' own ``AnomalyDetector`` template does;
- ``anomaly_score``: the raw score by default; with the parameter
  ``anomaly_score="log_likelihood"``, the log-scaled anomaly likelihood, the
  score Numenta's NAB detector reports and NAB's default thresholds are tuned for;
- ``anomaly_likelihood``: Numenta's anomaly likelihood of the raw scores
  (:class:`~influxhtm.running.engines.likelihood.AnomalyLikelihood`); apply
  :func:`~influxhtm.running.engines.likelihood.log_likelihood` to it for a NAB-style
  score.

Every parameter is checked before any block is built: BrainBlocks' C++ core
does not check its arguments and crashes the interpreter on some mistakes
(for instance a SequenceLearner ``num_c`` that differs from the pooler's
``num_s``).

``brainblocks`` is imported only when a model is built, so influxhtm works
without it.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import tempfile
import threading
import zlib
from collections.abc import Iterator
from typing import Any, Callable, Mapping, Sequence

from influxhtm.core.errors import ValidationError
from influxhtm.running.engines.base import EngineNotInstalled
from influxhtm.running.engines.likelihood import AnomalyLikelihood, log_likelihood, validate_likelihood_params

#: Parameters and their defaults (BrainBlocks' ``AnomalyDetector`` template values).
DEFAULT_PARAMS: dict[str, Any] = {
    # ScalarTransformer: the value range, statelets and active statelets
    "min_val": None,
    "max_val": None,
    "num_i": 1024,
    "num_ai": 128,
    # PatternPooler
    "num_s": 512,
    "num_as": 8,
    "pct_pool": 0.8,
    "pct_conn": 0.5,
    "pct_learn": 0.3,
    # SequenceLearner (num_c, its number of columns, must equal num_s; None means num_s)
    "num_c": None,
    "num_spc": 10,
    "num_dps": 10,
    "num_rpd": 12,
    "d_thresh": 6,
    # receptor permanences, shared by the pooler and the learner (0..99 in BrainBlocks)
    "perm_thr": 20,
    "perm_inc": 2,
    "perm_dec": 1,
    "seed": 0,
    "learn": True,
    # what the result's anomaly_score is: "raw" or "log_likelihood"
    "anomaly_score": "raw",
    # AnomalyLikelihood parameters (see influxhtm.running.engines.likelihood.DEFAULTS)
    "likelihood": {},
}

ANOMALY_SCORES = ("raw", "log_likelihood")
_POSITIVE_INTS = ("num_i", "num_ai", "num_s", "num_as", "num_spc", "num_dps", "num_rpd", "d_thresh")
_PERMANENCES = ("perm_thr", "perm_inc", "perm_dec")
_FRACTIONS = ("pct_pool", "pct_conn", "pct_learn")
PERM_MAX = 99

#: Outputs kept by each block (BrainBlocks' default num_t); replayed after loading a state.
_HISTORY = 2
#: Where a block's memory passes through a file on its way to and from a state (BrainBlocks saves and
#: loads only files): memory-backed when there is one, as a disk mounted with `discard` makes each
#: removed file cost milliseconds.
_SCRATCH = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None


class _ThreadFiles:
    """The in-memory files of one thread and process, closed when the thread ends."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.fds: dict[str, int] = {}

    def __del__(self) -> None:
        for fd in self.fds.values():
            with contextlib.suppress(OSError):
                os.close(fd)


class _MemoryFiles(threading.local):
    """One in-memory file per block name and thread (``memfd``, reached as ``/proc/self/fd/N``), kept
    open and written over in place: a state's memories pass through them without a directory made
    and removed, nor pages allocated, each time (a restore's `set_state`: about 4 ms less)."""

    files: _ThreadFiles | None = None

    def path(self, name: str) -> str:
        files = self.files
        if files is None or files.pid != os.getpid():  # a forked child shares its parent's: its own
            files = self.files = _ThreadFiles()
        fd = files.fds.get(name)
        if fd is None:
            fd = files.fds[name] = os.memfd_create(f"influxhtm-bb-{name}", os.MFD_CLOEXEC)
        return f"/proc/self/fd/{fd}"


@functools.cache
def _memory_files() -> _MemoryFiles | None:
    """The threads' in-memory files, when this system has them (Linux: ``memfd_create`` and ``/proc``)."""
    files = _MemoryFiles()
    try:
        with open(files.path("probe"), "wb") as fh:
            fh.write(b"ok")
        with open(files.path("probe"), "rb") as fh:
            return files if fh.read() == b"ok" else None
    except (AttributeError, OSError):
        return None


@contextlib.contextmanager
def _scratch() -> Iterator[Callable[[str], str]]:
    """Paths a block's memory is saved to and loaded from, by name: the thread's in-memory files, else
    a temporary directory (in `_SCRATCH`) removed afterwards."""
    files = _memory_files()
    if files is not None:
        yield files.path
        return
    with tempfile.TemporaryDirectory(prefix="influxhtm-bb-", dir=_SCRATCH) as tmp:
        yield lambda name: os.path.join(tmp, f"{name}.bin")


#: The parameters a PatternPooler's initial memory depends on (not the value range).
_POOLER_PARAMS = ("num_i", "num_ai", "num_s", "num_as", "perm_thr", "perm_inc", "perm_dec", "pct_pool",
                  "pct_conn", "pct_learn", "seed")


@functools.lru_cache(maxsize=8)
def _initial_pooler(key: tuple[Any, ...]) -> tuple[bytes, int]:
    """The memory of a PatternPooler just built with these parameters (`_POOLER_PARAMS`' values) and
    its CRC-32. A pooler learns by changing permanences only (its receptors' addresses are drawn once,
    from `seed`): a learned memory differs from this one in a few percent of its bytes."""
    blocks = _import_blocks()
    p = dict(zip(_POOLER_PARAMS, key, strict=True))
    st = blocks.ScalarTransformer(0.0, 1.0, p["num_i"], p["num_ai"])
    pp = _pattern_pooler(blocks, p)
    pp.input.add_child(st.output, 0)
    pp.init()
    with _scratch() as path_of:
        path = path_of("pooler")
        pp.save(path)
        memory = bytes(_read_all(path))
    return memory, zlib.crc32(memory)


def _pattern_pooler(blocks: Any, p: Mapping[str, Any]) -> Any:
    """A PatternPooler of the parameters `p` (a model's, or `_initial_pooler`'s), not yet initialised."""
    return blocks.PatternPooler(
        p["num_s"], p["num_as"], p["perm_thr"], p["perm_inc"], p["perm_dec"],
        p["pct_pool"], p["pct_conn"], p["pct_learn"], seed=p["seed"],
    )  # fmt: skip


def _xor(data: bytes | bytearray, base: bytes, into: bytearray | None = None) -> bytearray:
    """`data` XOR `base` (of the same length), in `into` (which may be `data`) or a new bytearray: the
    bytes that differ are the only ones not zero."""
    import numpy

    out = bytearray(len(data)) if into is None else into
    numpy.bitwise_xor(numpy.frombuffer(data, numpy.uint8), numpy.frombuffer(base, numpy.uint8),
                      out=numpy.frombuffer(out, numpy.uint8))
    return out


def _read_all(path: str) -> bytearray:
    """The content of `path`, read into one buffer of its size (a block's memory: megabytes)."""
    with open(path, "rb", buffering=0) as fh:
        data = bytearray(os.fstat(fh.fileno()).st_size)
        view, got = memoryview(data), 0
        while got < len(data):
            n = fh.readinto(view[got:])
            if not n:
                break
            got += n
        view.release()
    del data[got:]
    return data


def _write_over(path: str, data: bytes | bytearray) -> None:
    """`data` as the whole content of `path`, written over the pages already there."""
    with open(path, "r+b" if os.path.exists(path) else "wb", buffering=0) as fh:
        view = memoryview(data)
        while view:
            view = view[fh.write(view):]
        fh.truncate(len(data))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def validate_params(
    params: Mapping[str, Any] | None = None, value_range: Sequence[float] | None = None
) -> dict[str, Any]:
    """Complete `params` with DEFAULT_PARAMS and check every one; return the resolved dict.

    `value_range` = (lo, hi), for example the sensor's min and max, fills
    min_val/max_val where `params` does not give them. Raises ValidationError
    naming every bad parameter and its value.
    """
    params = dict(params or {})
    errors: dict[str, list[str]] = {}

    def bad(key: str, message: str) -> None:
        errors.setdefault(key, []).append(message)

    for key in sorted(set(params) - set(DEFAULT_PARAMS), key=str):
        bad(str(key), f"unknown parameter {key!r} (known: {', '.join(DEFAULT_PARAMS)})")
    resolved: dict[str, Any] = {k: (dict(v) if isinstance(v, dict) else v) for k, v in DEFAULT_PARAMS.items()}
    resolved.update({k: v for k, v in params.items() if k in DEFAULT_PARAMS})

    if value_range is not None:
        try:
            lo, hi = value_range
        except (TypeError, ValueError):
            bad("value_range", f"must be a pair (lo, hi), got {value_range!r}")
        else:
            if resolved["min_val"] is None:
                resolved["min_val"] = lo
            if resolved["max_val"] is None:
                resolved["max_val"] = hi

    for key in ("min_val", "max_val"):
        value = resolved[key]
        if value is None:
            bad(key, "is required: give min_val and max_val, or value_range=(lo, hi)")
        elif not _is_number(value) or not math.isfinite(value):
            bad(key, f"must be a finite number, got {value!r}")
        else:
            resolved[key] = float(value)
    if "min_val" not in errors and "max_val" not in errors:
        lo, hi = resolved["min_val"], resolved["max_val"]
        if lo == hi:  # a constant series: widen the range so the encoder has room
            resolved["min_val"], resolved["max_val"] = lo - 0.5, hi + 0.5
        elif lo > hi:
            bad("min_val", f"{lo!r} is greater than max_val {hi!r}")

    for key in _POSITIVE_INTS:
        value = resolved[key]
        if not _is_int(value):
            bad(key, f"must be an integer, got {value!r}")
        elif value < 1:
            bad(key, f"must be >= 1, got {value!r}")
    for key in _PERMANENCES:
        value = resolved[key]
        if not _is_int(value):
            bad(key, f"must be an integer, got {value!r}")
        elif not 0 <= value <= PERM_MAX:
            bad(key, f"must be between 0 and {PERM_MAX}, got {value!r}")
    for key in _FRACTIONS:
        value = resolved[key]
        if not _is_number(value) or not math.isfinite(value):
            bad(key, f"must be a number, got {value!r}")
        elif not 0.0 < value <= 1.0:
            bad(key, f"must be in (0, 1], got {value!r}")
        else:
            resolved[key] = float(value)
    if not _is_int(resolved["seed"]) or resolved["seed"] < 0:
        bad("seed", f"must be a non-negative integer, got {resolved['seed']!r}")
    if not isinstance(resolved["learn"], bool):
        bad("learn", f"must be True or False, got {resolved['learn']!r}")
    if resolved["anomaly_score"] not in ANOMALY_SCORES:
        bad("anomaly_score", f"must be one of {', '.join(ANOMALY_SCORES)}, got {resolved['anomaly_score']!r}")

    def both_ok(*keys: str) -> bool:
        return not any(k in errors for k in keys)

    if both_ok("num_ai", "num_i") and resolved["num_ai"] > resolved["num_i"]:
        bad("num_ai", f"{resolved['num_ai']!r} exceeds num_i {resolved['num_i']!r}")
    if both_ok("num_as", "num_s") and resolved["num_as"] > resolved["num_s"]:
        bad("num_as", f"{resolved['num_as']!r} exceeds num_s {resolved['num_s']!r}")
    if both_ok("d_thresh", "num_rpd") and resolved["d_thresh"] > resolved["num_rpd"]:
        bad("d_thresh", f"{resolved['d_thresh']!r} exceeds num_rpd {resolved['num_rpd']!r}")
    num_c = resolved["num_c"]
    if num_c is None:
        resolved["num_c"] = resolved["num_s"]
    elif not _is_int(num_c):
        bad("num_c", f"must be an integer, got {num_c!r}")
    elif both_ok("num_s") and num_c != resolved["num_s"]:
        bad(
            "num_c",
            f"{num_c!r} must equal the PatternPooler's num_s {resolved['num_s']!r} "
            "(the SequenceLearner has one column per pooler statelet)",
        )

    if not isinstance(resolved["likelihood"], Mapping):
        bad(
            "likelihood", f"must be a mapping of AnomalyLikelihood parameters, got {resolved['likelihood']!r}"
        )
    else:
        try:
            resolved["likelihood"] = validate_likelihood_params(resolved["likelihood"], prefix="likelihood.")
        except ValidationError as exc:
            for key, messages in exc.errors.items():
                errors.setdefault(key, []).extend(messages)

    if errors:
        raise ValidationError(errors)
    return resolved


def _import_blocks() -> Any:
    try:
        from brainblocks import blocks
    except ImportError as exc:
        raise EngineNotInstalled(
            f"engine 'brainblocks' needs the brainblocks package (pip install brainblocks): {exc}"
        ) from exc
    return blocks


class BrainBlocksModel:
    """An online BrainBlocks anomaly model: ``run(point) -> result dict``.

    `params` are checked by :func:`validate_params`; `value_range` = (lo, hi)
    fills min_val/max_val when they are not given. The resolved parameters are
    in ``self.params`` (JSON-able, for the model registry).
    """

    engine = "brainblocks"

    def __init__(
        self, params: Mapping[str, Any] | None = None, *, value_range: Sequence[float] | None = None
    ):
        self.params = validate_params(params, value_range)
        self._build()

    @classmethod
    def for_range(cls, lo: float, hi: float, **params: Any) -> BrainBlocksModel:
        """A model whose value range defaults to [lo, hi] (e.g. the sensor's min and max)."""
        return cls(params, value_range=(lo, hi))

    def _build(self) -> None:
        blocks = _import_blocks()
        p = self.params
        self._st = blocks.ScalarTransformer(p["min_val"], p["max_val"], p["num_i"], p["num_ai"])
        self._pp = _pattern_pooler(blocks, p)
        self._sl = blocks.SequenceLearner(
            p["num_c"], p["num_spc"], p["num_dps"], p["num_rpd"], p["d_thresh"],
            p["perm_thr"], p["perm_inc"], p["perm_dec"], seed=p["seed"],
        )  # fmt: skip
        self._pp.input.add_child(self._st.output, 0)
        self._sl.input.add_child(self._pp.output, 0)
        self._pp.init()
        self._sl.init()
        self._likelihood = AnomalyLikelihood(**p["likelihood"])
        self._recent: list[float] = []  # the last _HISTORY values, to re-establish activity on load
        self.iteration = 0
        self._pristine = True  # just built, never stepped: set_state of the same params needs no rebuild

    def _step(self, value: float, learn: bool) -> float:
        self._pristine = False
        self._st.set_value(value)
        self._st.feedforward()
        self._pp.feedforward(learn)
        self._sl.feedforward(learn)
        return float(self._sl.get_anomaly_score())

    def run(self, point: Any) -> dict[str, Any]:
        """Learn from one point (``.time``, ``.value``) and score it."""
        value = point.value
        if not _is_number(value) or not math.isfinite(value):
            raise ValidationError({"value": [f"must be a finite number, got {value!r} at {point.time!r}"]})
        value = float(value)
        raw = self._step(value, self.params["learn"])
        if not self.params["min_val"] <= value <= self.params["max_val"]:
            raw = 1.0
        self._recent = [*self._recent, value][-_HISTORY:]
        self.iteration += 1
        likelihood = self._likelihood.update(raw, value)
        score = log_likelihood(likelihood) if self.params["anomaly_score"] == "log_likelihood" else raw
        return {
            "time": point.time,
            "anomaly_score": score,
            "raw_score": raw,
            "anomaly_likelihood": likelihood,
        }

    __call__ = run

    def reset(self) -> None:
        """Start a new sequence: forget the recent activity, keep what was learned."""
        self._pristine = False
        for block in (self._st, self._pp, self._sl):
            block.clear()
        self._recent = []

    # -- state -------------------------------------------------------------------------------------

    def get_state(self) -> dict[str, Any]:
        """What the blocks learned (their saved memories), the likelihood state and parameters.

        BrainBlocks saves a block's memory (its synapses) but neither its random
        generator nor its last outputs. `set_state` re-establishes the last
        activity by replaying the last two values without learning, so the next
        score is the same as an uninterrupted model's; later scores may still
        differ slightly, because new synapses are grown with a fresh random
        stream (on NAB art_daily_jumpsup, about 2% of the following scores).

        Version 2: the pooler's memory is kept as its XOR with the memory of the
        pooler it started as (`_initial_pooler`), mostly zeros, and that memory's
        CRC-32, which `set_state` checks; version 1 kept it as it is.
        """
        memories: dict[str, bytearray] = {}
        with _scratch() as path_of:
            for name, block in (("pooler", self._pp), ("learner", self._sl)):
                path = path_of(name)
                block.save(path)
                memories[name] = _read_all(path)
        initial, crc = _initial_pooler(self._pooler_key())
        pooler = memories["pooler"]
        crc_kept: int | None = crc
        if len(initial) == len(pooler):
            # kept as its difference from the pooler it started as: mostly zeros, ~10x smaller compressed
            _xor(pooler, initial, into=pooler)
        else:
            crc_kept = None  # not a pooler memory of the size its parameters give: kept as it is
        return {
            "engine": self.engine,
            "version": 2,
            "params": self.params,
            "iteration": self.iteration,
            "recent": list(self._recent),
            "memories": memories,
            "pooler_initial_crc32": crc_kept,
            "likelihood": self._likelihood.get_state(),
        }

    def _pooler_key(self) -> tuple[Any, ...]:
        return tuple(self.params[k] for k in _POOLER_PARAMS)

    def set_state(self, state: Mapping[str, Any]) -> None:
        """Continue from `get_state`'s result (the parameters come with it); see get_state."""
        version = state.get("version") if isinstance(state, Mapping) else None
        if not isinstance(state, Mapping) or state.get("engine") != self.engine or version not in (1, 2):
            raise ValidationError({"state": ["not a brainblocks model state (version 1 or 2)"]})
        params = validate_params(state["params"])
        # A model just made with these parameters has its blocks already: building them again is ~15 ms.
        if not (getattr(self, "_pristine", False) and params == self.params):
            self.params = params
            self._build()
        memories = dict(state["memories"])
        crc = state.get("pooler_initial_crc32") if version == 2 else None
        if crc is not None:
            initial, initial_crc = _initial_pooler(self._pooler_key())
            if crc != initial_crc or len(initial) != len(memories["pooler"]):
                raise ValidationError({"state.memories.pooler": [
                    "kept as its difference from the initial pooler of another BrainBlocks build (the "
                    "initial poolers differ): restore it with the BrainBlocks that saved it"]})
            memories["pooler"] = _xor(memories["pooler"], initial)
        with _scratch() as path_of:
            for name, block in (("pooler", self._pp), ("learner", self._sl)):
                path = path_of(name)
                _write_over(path, memories[name])
                if not block.load(path):
                    raise ValidationError({f"state.memories.{name}": ["BrainBlocks could not load it"]})
        for value in state["recent"]:
            self._step(float(value), learn=False)
        self._recent = [float(v) for v in state["recent"]]
        self.iteration = int(state["iteration"])
        self._likelihood.set_state(state["likelihood"])

    def __getstate__(self) -> dict[str, Any]:
        return self.get_state()

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.set_state(state)

    def __repr__(self) -> str:
        return f"BrainBlocksModel(iteration={self.iteration}, params={self.params!r})"


def create(value_range: Sequence[float] | None = None, **params: Any) -> BrainBlocksModel:
    """Engine factory: ``create(value_range=(lo, hi), num_s=..., ...)``."""
    return BrainBlocksModel(params, value_range=value_range)
