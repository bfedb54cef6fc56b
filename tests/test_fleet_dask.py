"""`Fleet` on a `dask.distributed` LocalCluster: sensors split over the workers, workers killed and added.

Each input point must have exactly one stored result afterwards, with the very
numbers of a run in one process without Dask (the engine is deterministic).
When workers change, only the sensors whose owner changes move: the others are
never checkpointed, released or restored (their shard keeps running them).
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from types import SimpleNamespace

import pytest
from fleet_engine import ewma
from test_fleet import STEP, T0, results, wait_for, write

from influxhtm.htm.client import InfluxHtmClient
from influxhtm.influxql import admin
from influxhtm.running.fleet import Fleet
from influxhtm.running.fleet_dask import Coordinator, worker_names
from influxhtm.running.report import LagHistogram
from influxhtm.running.routing import owner_of

distributed = pytest.importorskip("distributed")

SENSORS = [f"s{i}" for i in range(24)]  # enough that every worker of 2 or 3 owns some


@pytest.fixture
def client(influx_settings, influx_database):
    client = InfluxHtmClient.from_settings(influx_database, influx_settings)
    client.create_database()
    yield client
    client.close()


@contextlib.contextmanager
def fleet_on_cluster(client, tmp_path, n_workers, **options):
    """A fleet ("d1") over SENSORS on a LocalCluster, each sensor pushed a point every 0.1 s.

    Yields once every sensor has its first 10 results; `run.finish()` stops the writer and
    waits for every point's result; afterwards `run.report` is the fleet's report.
    """
    for i, component in enumerate(SENSORS):
        write(client, "power", component, 0, 10, seed=i)
    cluster = distributed.LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                                       dashboard_address=":0", silence_logs=40)
    dask = distributed.Client(cluster)
    written = {"n": 10}
    stop_writing = threading.Event()

    def writer():  # one point per sensor every 0.1 s, pushed to the fleet by the subscription
        while not stop_writing.is_set():
            n = written["n"]
            for i, component in enumerate(SENSORS):
                write(client, "power", component, n, 1, seed=i)
            written["n"] = n + 1
            stop_writing.wait(0.1)

    fleet = Fleet(client, "power", engine=ewma, model_id="d1", checkpoint_dir=tmp_path / "ckpt",
                  poll_interval=0.5, discover_interval=5.0, status_interval=0.2, scheduler=dask, **options)
    statuses: list[dict] = [{}]
    out = {}
    runner = threading.Thread(target=lambda: out.setdefault("report", fleet.run(on_status=statuses.append)),
                              daemon=True)
    feeder = threading.Thread(target=writer, daemon=True)

    def finish():
        stop_writing.set()
        feeder.join(10)
        run.total = written["n"]
        wait_for(lambda: all(n == run.total for n in counts_now(client, SENSORS).values()), timeout=60)

    run = SimpleNamespace(cluster=cluster, dask=dask, written=written, status=lambda: statuses[-1],
                          finish=finish, checkpoint_dir=tmp_path / "ckpt")
    runner.start()
    try:
        wait_for(lambda: all(n >= 10 for n in counts_now(client, SENSORS).values()), timeout=90)
        feeder.start()
        yield run
    finally:
        stop_writing.set()
        fleet.stop()
        runner.join(120)
        dask.close()
        cluster.close()
    assert not runner.is_alive()
    run.report = out["report"]


def workers_of(dask):
    """The workers' names, sorted: what owns sensors (`owner_of`)."""
    return sorted(worker_names(dask))


def counts_now(client, components):
    """How many results each of `components` has (one query)."""
    series = client.result_series(admin.Statement(
        'SELECT count("anomalyScore") FROM "power_model" WHERE id = \'d1\' GROUP BY component', {}))
    found = {part["tags"]["component"]: part["values"][0][1] for part in series}
    return {c: found.get(c, 0) for c in components}


def checkpointed(directory):
    """The components whose model has a checkpoint file (named "<measurement>.<component>.<hash>.ckpt")."""
    return {path.name.split(".")[1] for path in directory.glob("*.ckpt")}


def kill_and_wait_for_new_results(run, client, victim, victims):
    """SIGKILL the worker named `victim`; seconds until each of its sensors `victims` has 5 more results."""
    address = worker_names(run.dask)[victim]
    pid = run.dask.run(os.getpid, workers=[address])[address]
    before = counts_now(client, victims)
    killed = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: all(n > before[c] + 5 for c, n in counts_now(client, victims).items()), timeout=60)
    return time.monotonic() - killed


def assert_one_result_per_point_as_without_dask(client, tmp_path, total):
    """Exactly one result per point (keyed by series and time), the numbers of a run without Dask."""
    alone = Fleet(client, "power", engine=ewma, model_id="d2", checkpoint_dir=tmp_path / "alone", mode="poll")
    alone.run(max_points=total * len(SENSORS))
    for component in SENSORS:
        stored = results(client, "power", component, "d1")
        assert sorted(stored) == [T0 + i * STEP for i in range(total)]
        assert stored == results(client, "power", component, "d2")


@pytest.mark.timeout(240)
def test_a_killed_worker_s_sensors_resume_elsewhere_with_exactly_one_result_per_point(client, tmp_path):
    with fleet_on_cluster(client, tmp_path, 2, checkpoint_every=5) as run:
        workers = workers_of(run.dask)
        victim = workers[0]
        victims = [c for c in SENSORS if owner_of(("power", c), workers) == victim]
        assert victims and len(victims) < len(SENSORS)  # both workers run sensors
        time.sleep(1.0)
        recovered = kill_and_wait_for_new_results(run, client, victim, victims)
        run.finish()
    report = run.report
    print(f"recovered in {recovered:.1f} s; {run.total} points per sensor; {report}")
    assert report.errors == 0 or report.points >= run.total * len(SENSORS)
    assert recovered < 30, f"the killed worker's sensors had new results after {recovered:.1f} s"
    assert_one_result_per_point_as_without_dask(client, tmp_path, run.total)


@pytest.mark.timeout(240)
def test_a_joining_worker_takes_only_the_sensors_it_gains_and_the_others_never_stop(client, tmp_path):
    # No periodic checkpoints: a model is checkpointed only when its sensor is released (or the fleet stops).
    with fleet_on_cluster(client, tmp_path, 1, checkpoint_every=10**6) as run:
        [first] = workers_of(run.dask)
        run.cluster.scale(2)
        run.dask.wait_for_workers(2, timeout=60)
        joined = time.monotonic()
        workers = workers_of(run.dask)
        [newcomer] = [w for w in workers if w != first]
        moved = [c for c in SENSORS if owner_of(("power", c), workers) == newcomer]
        assert moved and len(moved) < len(SENSORS)
        wait_for(lambda: set(moved) <= checkpointed(run.checkpoint_dir), timeout=30)  # released
        released = time.monotonic() - joined
        upto = run.written["n"] + 5  # written after the release: only the new owner can store these
        wait_for(lambda: all(n >= upto for n in counts_now(client, moved).values()), timeout=30)
        caught_up = time.monotonic() - joined
        saved = checkpointed(run.checkpoint_dir)
        run.finish()
        status = run.status()
    print(f"moved sensors released {released:.2f} s and caught up {caught_up:.2f} s after the join "
          f"(release phase {status.get('handover_max_s')} s: release {status.get('release_s')} s, "
          f"take-over {status.get('take_over_s')} s); moved {moved}; {run.report}")
    # Only the moved sensors were checkpointed (released); the others were never stopped.
    assert saved == set(moved)
    # Only the moved sensors were restored, each once, on their new owner.
    assert run.report.restores == len(moved)
    assert run.report.errors == 0
    assert_one_result_per_point_as_without_dask(client, tmp_path, run.total)
    assert status["shards_started"] == 2 and status["epoch"] == 2 and status["handovers"] == 1


@pytest.mark.timeout(240)
def test_a_killed_worker_s_replacement_takes_exactly_its_sensors_and_no_other_sensor_moves(client, tmp_path):
    """The nanny restarts a killed worker under its name: the replacement takes the victim's
    sensors, the survivor's are never released (no checkpoint), and no new epoch is published.
    The old code owned sensors by address: the replacement took half of every sensor."""
    with fleet_on_cluster(client, tmp_path, 2, checkpoint_every=10**6) as run:
        first = worker_names(run.dask)
        victim, survivor = sorted(first)
        victims = [c for c in SENSORS if owner_of(("power", c), sorted(first)) == victim]
        assert victims and len(victims) < len(SENSORS)
        recovered = kill_and_wait_for_new_results(run, client, victim, victims)
        final = worker_names(run.dask)
        assert sorted(final) == sorted(first) and final[victim] != first[victim]  # replaced, same name
        upto = run.written["n"] + 10  # a second later: every sensor runs
        wait_for(lambda: all(n >= upto for n in counts_now(client, SENSORS).values()), timeout=30)
        saved = checkpointed(run.checkpoint_dir)
        status = run.status()
        run.finish()
    stayers = [c for c in SENSORS if c not in victims]
    print(f"recovered in {recovered:.1f} s; checkpointed {sorted(saved)}; {status}")
    assert saved.isdisjoint(stayers)  # the survivor's sensors were never released
    assert status["epoch"] == 1 and status["handovers"] == 0  # nothing moved but the victim's sensors
    assert status["shards_started"] == 3 and status["workers"] == 2  # the replacement got a shard
    assert recovered < 30
    assert_one_result_per_point_as_without_dask(client, tmp_path, run.total)


@pytest.mark.timeout(240)
def test_with_no_grace_a_killed_worker_s_sensors_move_to_the_survivor_and_back_to_its_replacement(
        client, tmp_path):
    """`replace_grace=0`: the survivor takes the victim's sensors at once (a new epoch), the
    replacement takes them back (another), keeping the survivor's own sensors where they are."""
    with fleet_on_cluster(client, tmp_path, 2, checkpoint_every=10**6, replace_grace=0) as run:
        first = worker_names(run.dask)
        victim, survivor = sorted(first)
        victims = [c for c in SENSORS if owner_of(("power", c), sorted(first)) == victim]
        recovered = kill_and_wait_for_new_results(run, client, victim, victims)
        wait_for(lambda: run.status().get("epoch", 0) >= 3 and not run.status().get("handing_over"),
                 timeout=60)
        upto = run.written["n"] + 10
        wait_for(lambda: all(n >= upto for n in counts_now(client, SENSORS).values()), timeout=30)
        saved = checkpointed(run.checkpoint_dir)
        run.finish()
    stayers = [c for c in SENSORS if c not in victims]
    print(f"recovered in {recovered:.1f} s; checkpointed {sorted(saved)}")
    assert saved.isdisjoint(stayers) and saved <= set(victims)  # only the victim's moved (twice)
    assert recovered < 30
    assert_one_result_per_point_as_without_dask(client, tmp_path, run.total)


class _Holder:
    """What `Membership.follow` needs of a shard: the sensors it holds, releasing and syncing them."""

    def __init__(self, owns):
        self.sensors, self.owns, self.stop = {}, owns, threading.Event()

    def remove(self, key):
        del self.sensors[key]

    def released(self):
        pass

    def sync(self, present):
        self.sensors = {key: True for key in present if self.owns(key)}

    def until_done(self, action):
        return action()

    def catch_up(self):
        pass

    def take(self, keys):
        self.sensors.update({key: True for key in keys if self.owns(key)})

    def done(self):
        return self.stop.is_set()


def test_an_assignment_never_gives_a_sensor_to_two_shards_and_keeps_the_stayers_where_they_are():
    from influxhtm.running.fleet_dask import RELEASE, RUN, Membership

    keys = {("m", f"c{i}") for i in range(300)}
    epochs = [["a", "b"], ["a", "b", "c"], ["a", "c"], ["c"], ["a", "c", "d"]]
    first = {"epoch": 1, "workers": epochs[0], "phase": RUN}
    members = {w: Membership(w, first) for w in "abcd"}
    shards = {w: _Holder(members[w].owns) for w in "abcd"}
    for w in epochs[0]:
        shards[w].sync(keys)
    acks = []
    for epoch, workers in enumerate(epochs[1:], start=2):
        for w in set("abcd") - set(workers):
            shards[w].sensors = {}  # a worker gone (dead) holds nothing
        before = {w: set(shard.sensors) for w, shard in shards.items()}
        for phase in (RELEASE, RUN):
            for w in workers:
                members[w].latest = {"epoch": epoch, "workers": workers, "phase": phase}
                members[w].follow(shards[w], lambda: keys, acks.append)
                while phase == RUN and members[w].gained:  # the take-over's next slices
                    members[w].follow(shards[w], lambda: keys, acks.append)
                held = [key for shard in shards.values() for key in shard.sensors]
                assert len(held) == len(set(held)), "a sensor held by two shards"
            if phase == RELEASE:  # only what moves was released; what stays was kept
                for w in workers:
                    assert set(shards[w].sensors) == {k for k in before[w] if owner_of(k, workers) == w}
        assert {k for shard in shards.values() for k in shard.sensors} == keys
        assert all(owner_of(k, workers) == w for w, shard in shards.items() for k in shard.sensors)
    assert acks.count(2) == 3  # every live shard acknowledged the release of epoch 2


def test_a_dask_fleet_s_lag_is_over_every_point_of_every_shard():
    """Not the worst worker's p95: 10 slow points of 200 (5%) leave the fleet's p95 fast, 11 do not."""
    def histogram(seconds, count):
        lag = LagHistogram()
        for _ in range(count):
            lag.add(seconds)
        return lag.pairs()

    coordinator = Coordinator(fleet=None, dask=None, on_status=None)
    coordinator.latest = {"w1": {"lag_histogram": histogram(0.05, 190), "lag_p95": 0.05},
                          "w2": {"lag_histogram": histogram(8.0, 10), "lag_p95": 8.0}}
    status = coordinator.current()
    assert 0.05 <= status["lag_p95"] <= 0.05 * LagHistogram.RATIO
    assert 0.05 <= status["lag_p50"] <= 0.05 * LagHistogram.RATIO
    coordinator.done_lag.merge(histogram(8.0, 1))  # a shard that ended (its worker died): its points count
    assert 8.0 <= coordinator.current()["lag_p95"] <= 8.0 * LagHistogram.RATIO


def test_a_shard_that_gains_many_sensors_takes_them_in_slices_and_serves_its_own_between(
        client, tmp_path, monkeypatch):
    """A survivor takes a dead worker's sensors a group per round (TAKE_SLICE 0: exactly one group),
    its own sensors' new points stored at every round in between; afterwards every point has
    exactly one result, the numbers of a run without Dask. The old code took them all in one block."""
    from influxhtm.running import fleet_dask
    from influxhtm.running.fleet_dask import RELEASE, RUN, Membership
    from influxhtm.running.fleet_shard import FleetSpec, Shard, Timing, run_shard_loop
    from influxhtm.running.routing import Selector

    monkeypatch.setattr(fleet_dask, "TAKE_SLICE", 0.0, raising=False)
    monkeypatch.setattr(fleet_dask, "TAKE_GROUP", 2, raising=False)
    keys = {("power", c) for c in SENSORS}
    for i, component in enumerate(SENSORS):
        write(client, "power", component, 0, 12, seed=i)
    spec = FleetSpec(database=client.database, settings=client.settings, selector=Selector(["power"]),
                     engine=ewma, model_id="d1", checkpoint_dir=str(tmp_path / "ckpt"), checkpoint_every=5)
    first = {"epoch": 1, "workers": ["a", "b"], "phase": RUN}
    dead_membership = Membership("b", first)
    dead = Shard(spec, client, owns=dead_membership.owns)
    dead.sync(keys)
    dead.catch_up()
    dead.cache.close()  # "b" dies: its checkpoints are those of every 5 points, its results all stored
    gained = {key for key in keys if owner_of(key, ["a", "b"]) == "b"}
    kept = keys - gained
    assert len(gained) >= 6 and kept
    membership = Membership("a", first)
    shard = Shard(spec, client, owns=membership.owns)
    written = {"n": 12}
    rounds: list[tuple[int, bool]] = []  # (gained sensors held, every kept sensor up to date) per round

    def between():
        n = written["n"]
        up_to_date = all(shard.sensors[key].last_ns == T0 + (n - 1) * STEP for key in kept)
        rounds.append((len(gained & set(shard.sensors)), up_to_date))
        if len(rounds) == 1:
            membership.latest = {"epoch": 2, "workers": ["a"], "phase": RELEASE}
        elif len(rounds) == 2:
            membership.latest = {"epoch": 2, "workers": ["a"], "phase": RUN}
        if len(rounds) > 2 and rounds[-1][0] == len(gained):
            shard.stop.set()  # every gained sensor taken: the round is the last
            return
        for i, component in enumerate(SENSORS):  # a new point for every sensor, each round
            write(client, "power", component, n, 1, seed=i)
        written["n"] = n + 1
        membership.follow(shard, lambda: keys, lambda epoch: None)

    run_shard_loop(shard, news=None, discover=lambda: keys, between=between,
                   timing=Timing(poll_interval=0.0, discover_interval=3600.0, status_interval=3600.0))
    taking = [held for held, _ in rounds[2:]]  # the rounds after the take-over began
    print(f"gained {len(gained)}, held per round {[held for held, _ in rounds]}")
    assert taking[0] < len(gained), "the gained sensors were taken in one block"
    assert taking == [min(2 * i, len(gained)) for i in range(1, (len(gained) + 1) // 2 + 1)]  # a group each
    # Every round during the take-over began with the kept sensors' newest point stored.
    assert all(up_to_date for _, up_to_date in rounds[1:])
    assert shard.errors == 0 and shard.cache.restores >= len(gained)
    assert_one_result_per_point_as_without_dask(client, tmp_path, written["n"])


def test_the_coordinator_sees_every_worker_while_the_client_refreshes_its_cached_scheduler_info():
    """The client's periodic update of its cached scheduler info lists no workers; the old
    `_workers` (`scheduler_info()`) raced with it and saw every worker gone (about 1 look in 10
    with the update every millisecond), so the coordinator ended and restarted every shard."""
    import dask

    from influxhtm.running.fleet_dask import _workers

    with dask.config.set({"distributed.client.scheduler-info-interval": "1ms"}), \
            distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                     dashboard_address=":0", silence_logs=40) as cluster, \
            distributed.Client(cluster) as dask_client:
        expected = sorted(cluster.scheduler.workers)
        assert len(expected) == 2
        seen = [sorted((_workers(dask_client) or {}).values()) for _ in range(3000)]
    assert all(workers == expected for workers in seen), sum(workers != expected for workers in seen)


def test_a_shard_the_assignment_no_longer_names_stops():
    """A Dask task that is cancelled while it runs goes on running: a shard the coordinator
    replaced (a new shard task on its worker) stops instead of running its sensors twice."""
    from influxhtm.running.fleet_dask import RUN, Membership

    first = {"epoch": 1, "workers": ["a"], "phase": RUN, "shards": {"a": "fleet-shard-1"}}
    old, new = Membership("a", first, "fleet-shard-1"), Membership("a", first, "fleet-shard-2")
    old_shard, new_shard = _Holder(old.owns), _Holder(new.owns)
    for member, shard in ((old, old_shard), (new, new_shard)):
        member.follow(shard, set, lambda epoch: None)
    # Shard 2 started before the assignment names it: it does not take shard 1's name for its own end.
    assert not old_shard.stop.is_set() and not new_shard.stop.is_set()
    replaced = {**first, "shards": {"a": "fleet-shard-2"}}  # the coordinator started shard 2 on "a"
    for member, shard in ((old, old_shard), (new, new_shard)):
        member.latest = replaced
        member.follow(shard, set, lambda epoch: None)
    assert old_shard.stop.is_set() and not new_shard.stop.is_set()


def test_a_take_over_interrupted_by_a_new_epoch_takes_nothing_while_releasing_and_finishes_after(monkeypatch):
    from influxhtm.running import fleet_dask
    from influxhtm.running.fleet_dask import RELEASE, RUN, Membership

    monkeypatch.setattr(fleet_dask, "TAKE_SLICE", 0.0, raising=False)
    monkeypatch.setattr(fleet_dask, "TAKE_GROUP", 5, raising=False)
    keys = {("m", f"c{i}") for i in range(120)}
    first = {"epoch": 1, "workers": ["a"], "phase": RUN}
    members = {w: Membership(w, first) for w in "abc"}
    shards = {w: _Holder(members[w].owns) for w in "abc"}
    shards["a"].sync(keys)

    def step(workers, epoch, phase, rounds=1):
        for _ in range(rounds):
            for w in workers:
                members[w].latest = {"epoch": epoch, "workers": workers, "phase": phase}
                members[w].follow(shards[w], lambda: keys, lambda _epoch: None)
                held = [key for shard in shards.values() for key in shard.sensors]
                assert len(held) == len(set(held)), "a sensor held by two shards"

    step(["a", "b"], 2, RELEASE)
    step(["a", "b"], 2, RUN)  # "b" takes one group of the sensors it gains, then epoch 3 comes
    assert len(shards["b"].sensors) == 5
    step(["a", "b", "c"], 3, RELEASE, rounds=4)
    assert len(shards["b"].sensors) <= 5  # nothing taken while releasing (it may release some)
    step(["a", "b", "c"], 3, RUN, rounds=30)
    assert all(not members[w].gained for w in "abc")
    for w in "abc":
        assert set(shards[w].sensors) == {k for k in keys if owner_of(k, ["a", "b", "c"]) == w}
