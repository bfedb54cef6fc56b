"""`python -m benchmarks.restore [--models N]`: what moving one BrainBlocks model costs, part by part.

A model of the fleet benchmark (`fleet.BB_PARAMS`) after 60 points is checkpointed and
restored as `ModelCache` does it; each part is timed alone (the median of repeats), then
`ModelCache.take` whole, without and with the restore done ahead (`prefetch`), and `N`
restores one after another as `Shard.feed` takes them (prefetching `fleet_shard.PREFETCH`
ahead), with a 10 ms wait that releases the GIL per model standing in for the server. No
server needed. Figures: docs/fleet.rst, *Moving a BrainBlocks model*.
"""

from __future__ import annotations

import argparse
import pickle
import random
import statistics
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any, Callable

from influxhtm.model.data_layout import SensorReading
from influxhtm.running import checkpoint as checkpoints
from influxhtm.running import model_cache
from influxhtm.running.engines import create_model
from influxhtm.running.fleet_shard import PREFETCH

from .fleet import BB_PARAMS

IDENTITY = {"database": "d", "measurement": "m", "component": "c", "model_id": "x",
            "engine": "brainblocks", "model_class": "engine:brainblocks", "params": {}}


def trained(points: int = 60, seed: int = 1) -> Any:
    """A BrainBlocks model of the fleet benchmark after `points` varied values."""
    rng = random.Random(seed)
    model = create_model("brainblocks", **BB_PARAMS)
    for i in range(points):
        model.run(SensorReading(time=i, value=rng.uniform(0.0, 100.0), component="c"))
    return model


def ms(function: Callable[[], Any], repeats: int = 15) -> float:
    """The median time of `function`, in ms."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def new_cache(directory: Path) -> model_cache.ModelCache:
    return model_cache.ModelCache(directory, lambda key: create_model("brainblocks", **BB_PARAMS),
                                  lambda key: IDENTITY)


def take_ahead(directory: Path) -> float:
    """The loop's time of one `take` whose restore was started ahead and is done."""
    cache = new_cache(directory)
    cache.prefetch(["k"])
    future = cache._prefetched["k"]
    future.result()
    start = time.perf_counter()
    cache.take("k")
    elapsed = time.perf_counter() - start
    cache.close()
    return elapsed


def in_a_row(directory: Path, models: int, wait: float = 0.01) -> tuple[float, float]:
    """`models` restores as `Shard.feed` takes them (the same checkpoint, under other keys): the wall
    time and the loop's time in `take`, per model, in ms."""
    cache = new_cache(directory)
    keys = [f"k{i}" for i in range(models)]
    start, taking = time.perf_counter(), 0.0
    for i, key in enumerate(keys):
        cache.prefetch(keys[i:i + PREFETCH])
        time.sleep(wait)  # the server's answer: the GIL is free meanwhile
        began = time.perf_counter()
        cache.take(key)
        taking += time.perf_counter() - began
    wall = time.perf_counter() - start
    cache.close()
    return wall / models * 1e3, taking / models * 1e3


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=40)
    args = parser.parse_args(argv)
    model = trained()
    directory = Path(tempfile.mkdtemp(prefix="influxhtm-restore-"))
    path = model_cache.checkpoint_path(directory, IDENTITY)
    state = model.get_state()
    pickled = pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)
    packed = model_cache.pack_pickled(pickled)
    checkpoints.save(path, IDENTITY, packed, 1)
    compressed = next(value for value in packed.values() if isinstance(value, bytes))
    rows = [
        ("save, loop: get_state", ms(model.get_state)),
        ("save, loop: pickle.dumps", ms(lambda: pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL))),
        ("save, writer: compress (pack_pickled)", ms(lambda: model_cache.pack_pickled(pickled))),
        ("save, writer: checkpoint.save (file, fsync)",
         ms(lambda: checkpoints.save(path, IDENTITY, packed, 1))),
        ("restore: make (create_model)", ms(lambda: create_model("brainblocks", **BB_PARAMS))),
        ("restore: checkpoint.load (file, identity)", ms(lambda: checkpoints.load(path, IDENTITY))),
        ("restore: unpack_state (decompress, unpickle)", ms(lambda: model_cache.unpack_state(packed))),
        ("restore: make + set_state", ms(lambda: create_model("brainblocks", **BB_PARAMS).set_state(state))),
        ("restore, loop: ModelCache.take, nothing ahead", ms(lambda: new_cache(directory).take("k"))),
        ("restore, loop: ModelCache.take, restored ahead",
         statistics.median(take_ahead(directory) for _ in range(15)) * 1e3),
    ]
    wall, taking = in_a_row(directory, args.models)
    rows.append((f"{args.models} restores in a row: wall per model (10 ms waits)", wall))
    rows.append((f"{args.models} restores in a row: loop's take per model", taking))
    print(f"state: pickled {len(pickled) / 1e6:.2f} MB, checkpoint {path.stat().st_size / 1e6:.2f} MB "
          f"(compressed {len(compressed) / 1e6:.2f} MB; zlib {zlib.ZLIB_RUNTIME_VERSION})")
    for name, value in rows:
        print(f"{name:62s} {value:7.1f} ms")


if __name__ == "__main__":
    main()
