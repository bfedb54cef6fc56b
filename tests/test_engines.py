"""Engine adapters: registry, anomaly likelihood, BrainBlocks, replay, htm.core (no server needed)."""

from __future__ import annotations

import csv
import json
import math
import os
import pickle
import random
import re
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest

import influxhtm
from influxhtm.core.errors import ConfigurationError, NotFound, ValidationError
from influxhtm.running.engines import (
    ENGINES,
    AnomalyLikelihood,
    EngineNotInstalled,
    as_model,
    create_model,
    get_engine,
    log_likelihood,
    register_engine,
)
from influxhtm.running.engines import brainblocks as bb_adapter
from influxhtm.running.engines.brainblocks import BrainBlocksModel, validate_params
from influxhtm.running.engines.likelihood import nab_params, tail_probability
from influxhtm.running.engines.replay import ReplayModel

NAB = Path(influxhtm.__file__).parent / "data" / "nab"
SERIES = "artificialWithAnomaly/art_daily_jumpsup.csv"
DATA_FILE = NAB / "data" / SERIES
RESULTS_FILE = NAB / "results" / "numenta" / "artificialWithAnomaly" / "numenta_art_daily_jumpsup.csv"
ROOT = Path(__file__).resolve().parent.parent


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def point(time: datetime, value: float) -> SimpleNamespace:
    return SimpleNamespace(time=time, value=value)


@pytest.fixture(scope="module")
def nab_points() -> list[SimpleNamespace]:
    with open(DATA_FILE, newline="") as fh:
        return [point(utc(row["timestamp"]), float(row["value"])) for row in csv.DictReader(fh)]


@pytest.fixture(scope="module")
def nab_windows() -> list[tuple[datetime, datetime]]:
    labels = json.loads((NAB / "labels" / "combined_windows.json").read_text())
    return [(utc(start), utc(end)) for start, end in labels[SERIES]]


def value_range(points: list[SimpleNamespace]) -> tuple[float, float]:
    values = [p.value for p in points]
    return min(values), max(values)


# -- registry ------------------------------------------------------------------------------------------


def test_unknown_engine_names_it_and_lists_known_ones():
    with pytest.raises(ValidationError) as info:
        create_model("nupic-classic")
    message = str(info.value)
    assert "nupic-classic" in message
    for name in ("brainblocks", "htmcore", "replay"):
        assert name in message
    assert "engine" in info.value.errors
    with pytest.raises(ValidationError, match="nupic-classic"):
        get_engine("nupic-classic")


def test_plain_callable_factory_and_plain_function_model():
    def factory(offset: float = 0.0):
        def model(p):
            return {"time": p.time, "anomaly_score": p.value + offset}

        return model

    model = create_model(factory, offset=0.25)
    t = utc("2024-01-01 00:00:00")
    assert model.run(point(t, 0.5)) == {"time": t, "anomaly_score": 0.75}
    model.reset()  # a plain function has no state, but reset is there


def test_factory_returning_a_model_object_is_kept_as_is():
    class Model:
        def run(self, p):
            return None

    made = Model()
    assert create_model(lambda: made) is made
    assert as_model(made) is made
    with pytest.raises(ValidationError, match="no run"):
        as_model(42)


def test_register_engine_then_create_by_name():
    def factory(scale=1.0):
        return lambda p: {"time": p.time, "anomaly_score": p.value * scale}

    register_engine("test-scale", factory)
    try:
        model = create_model("test-scale", scale=2.0)
        assert model.run(point(utc("2024-01-01 00:00:00"), 0.25))["anomaly_score"] == 0.5
        with pytest.raises(ValidationError, match="registered already"):
            register_engine("test-scale", lambda: None)
        register_engine("test-scale", lambda: None, replace=True)
        with pytest.raises(ValidationError, match="non-empty"):
            register_engine("", factory)
    finally:
        ENGINES.pop("test-scale", None)


def test_importing_engines_does_not_import_brainblocks():
    code = "import sys, influxhtm.running.engines; print('brainblocks' in sys.modules, 'htm' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_engine_not_installed_is_an_import_and_configuration_error():
    error = EngineNotInstalled("x")
    assert isinstance(error, ImportError)
    assert isinstance(error, ConfigurationError)


# -- the docs' example adapter ---------------------------------------------------------------------------


def test_docs_zscore_example_runs():
    text = (ROOT / "docs" / "engines.rst").read_text()
    block = text.split(".. code-block:: python\n", 1)[1].split("\nThat is all", 1)[0]
    code = "\n".join(line[4:] for line in block.splitlines())
    source_lines = [line for line in code.splitlines() if line.strip()]
    assert len(source_lines) < 20 + 3  # the adapter itself stays short (+ imports/registration)
    namespace: dict = {}
    try:
        exec(compile(code, "engines.rst", "exec"), namespace)
        model = namespace["model"]
        start = utc("2024-01-01 00:00:00")
        scores = [
            model.run(point(start + timedelta(minutes=i), math.sin(i / 5)))["anomaly_score"]
            for i in range(200)
        ]
        spike = model.run(point(start + timedelta(minutes=200), 50.0))["anomaly_score"]
        assert max(scores[10:]) < 1.0
        assert spike == 1.0
    finally:
        ENGINES.pop("zscore", None)


# -- anomaly likelihood ----------------------------------------------------------------------------------


def test_tail_probability_and_log_scaling_match_known_values():
    # standard normal: P(Z > 1.96) = 0.0250 (tables); the tail is the upper one only
    assert tail_probability(1.96, 0.0, 1.0) == pytest.approx(0.0250, abs=1e-4)
    assert tail_probability(-1.96, 0.0, 1.0) == pytest.approx(0.9750, abs=1e-4)
    assert tail_probability(0.0, 0.0, 1.0) == pytest.approx(0.5)
    assert tail_probability(13.0, 10.0, 2.0) == pytest.approx(0.0668, abs=1e-4)  # z = 1.5
    # NAB's probationary rows hold log_likelihood(0.5) = log(0.5)/log(1e-10) = 0.0301...
    assert log_likelihood(0.5) == pytest.approx(math.log10(2) / 10, rel=1e-6)
    assert log_likelihood(1.0) == pytest.approx(1.0, abs=1e-9)
    assert log_likelihood(0.9999999999) == pytest.approx(math.log(2e-10) / math.log(1e-10), rel=1e-6)
    assert log_likelihood(0.0) == pytest.approx(0.0, abs=1e-9)


def test_likelihood_is_half_during_the_probationary_period():
    al = AnomalyLikelihood(learning_period=50, estimation_samples=30)
    rng = random.Random(1)
    values = [al.update(rng.random()) for _ in range(80)]
    assert values == [0.5] * 80
    assert al.distribution is None
    al.update(0.1)
    assert al.distribution is not None


def test_likelihood_rises_to_near_one_after_a_sudden_change():
    al = AnomalyLikelihood(learning_period=100, estimation_samples=100, reestimation_period=50)
    steady = [al.update(0.1 if i % 2 else 0.0) for i in range(1000)]
    # the 10-point average of 0, 0.1, 0, ... is always 0.05, the fitted mean: likelihood ~ 0.5
    assert all(abs(p - 0.5) < 0.05 for p in steady[200:])
    jump = [al.update(1.0) for _ in range(3)]
    # the average jumps to ~0.15, > 5 stdev (floor sqrt(0.0003) ~ 0.017) above 0.05
    assert jump[0] > 0.9999
    assert all(p > 0.99 for p in jump)


def test_likelihood_is_deterministic_and_its_state_round_trips():
    rng = random.Random(7)
    scores = [rng.random() ** 4 for _ in range(1500)]
    params = {"learning_period": 100, "estimation_samples": 50, "historic_window_size": 600}
    a, b = AnomalyLikelihood(**params), AnomalyLikelihood(**params)
    first = [a.update(s) for s in scores]
    assert first == [b.update(s) for s in scores]
    assert len(set(first[200:])) > 10  # not a constant

    c = AnomalyLikelihood(**params)
    head = [c.update(s) for s in scores[:700]]
    restored = AnomalyLikelihood()
    restored.set_state(c.get_state())
    copied = pickle.loads(pickle.dumps(c))
    json.dumps(c.get_state())  # plain data
    assert head + [restored.update(s) for s in scores[700:]] == first
    assert [copied.update(s) for s in scores[700:]] == first[700:]


@pytest.mark.parametrize(
    "results_file",
    [RESULTS_FILE, NAB / "results" / "numenta" / "realKnownCause" / "numenta_nyc_taxi.csv"],
    ids=lambda p: p.name,
)
def test_likelihood_reproduces_nab_numenta_scores(results_file):
    """NAB's anomaly_score is log_likelihood(likelihood(raw_score)), except rows forced to 1.0."""
    with open(results_file, newline="") as fh:
        rows = list(csv.DictReader(fh))
    al = AnomalyLikelihood(**nab_params(len(rows)))
    compared = forced = 0
    for row in rows:
        score = log_likelihood(al.update(float(row["raw_score"]), float(row["value"])))
        expected = float(row["anomaly_score"])
        if expected == 1.0 and score < 0.999:  # NAB's detector overrides "spatial anomalies" with 1.0
            forced += 1
            continue
        assert score == pytest.approx(expected, abs=1e-9), row["timestamp"]
        compared += 1
    assert compared > 0.99 * len(rows) and forced < 0.01 * len(rows)


def test_nab_params_follow_the_probationary_rule():
    # NAB: probationary period = min(floor(0.15 * rows), 750), half of it for learning
    assert nab_params(4032)["learning_period"] == 302
    assert nab_params(4032)["learning_period"] + nab_params(4032)["estimation_samples"] == 604
    assert nab_params(22695)["learning_period"] + nab_params(22695)["estimation_samples"] == 750


def test_likelihood_flat_metric_gets_the_null_distribution():
    al = AnomalyLikelihood(learning_period=10, estimation_samples=10)
    for _ in range(20):
        al.update(0.0, value=3.0)
    # a flat metric: even a burst of raw anomaly is not alarming
    assert al.update(1.0, value=3.0) < 0.6


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"learning_period": -1}, "learning_period"),
        ({"averaging_window": 0}, "averaging_window"),
        ({"reestimation_period": 2.5}, "reestimation_period"),
        ({"estimation_samples": 100, "historic_window_size": 50}, "estimation_samples"),
    ],
)
def test_likelihood_parameter_errors(params, field):
    with pytest.raises(ValidationError) as info:
        AnomalyLikelihood(**params)
    assert field in info.value.errors


# -- BrainBlocks -----------------------------------------------------------------------------------------


@pytest.fixture()
def no_blocks(monkeypatch):
    """Fail if any BrainBlocks block would be built: validation must come first."""

    def refuse():
        raise AssertionError("brainblocks blocks were about to be built")

    monkeypatch.setattr(bb_adapter, "_import_blocks", refuse)


def test_brainblocks_num_c_mismatch_is_refused_before_building(no_blocks):
    with pytest.raises(ValidationError) as info:
        create_model("brainblocks", value_range=(0.0, 1.0), num_s=512, num_c=256)
    assert "num_c" in info.value.errors
    message = str(info.value)
    assert "256" in message and "512" in message


def test_brainblocks_unknown_parameter(no_blocks):
    with pytest.raises(ValidationError) as info:
        create_model("brainblocks", value_range=(0.0, 1.0), num_columns=2048)
    assert "num_columns" in info.value.errors
    assert "unknown parameter" in str(info.value)


@pytest.mark.parametrize(
    ("params", "field", "text"),
    [
        ({"num_s": "512"}, "num_s", "'512'"),
        ({"num_spc": True}, "num_spc", "True"),
        ({"num_dps": 0}, "num_dps", "0"),
        ({"pct_pool": 0.0}, "pct_pool", "0.0"),
        ({"pct_conn": "half"}, "pct_conn", "'half'"),
        ({"num_ai": 2000}, "num_ai", "2000"),
        ({"num_as": 600}, "num_as", "600"),
        ({"d_thresh": 20}, "d_thresh", "20"),
        ({"perm_thr": 200}, "perm_thr", "200"),
        ({"min_val": float("nan")}, "min_val", "nan"),
        ({"min_val": 5.0, "max_val": 1.0}, "min_val", "5.0"),
        ({"learn": "yes"}, "learn", "'yes'"),
        ({"likelihood": {"window": 3}}, "likelihood.window", "window"),
    ],
)
def test_brainblocks_bad_values_name_the_parameter_and_value(no_blocks, params, field, text):
    with pytest.raises(ValidationError) as info:
        BrainBlocksModel({"min_val": 0.0, "max_val": 10.0, **params})
    assert field in info.value.errors, info.value.errors
    assert text in " ".join(info.value.errors[field])
    assert field in str(info.value)


def test_brainblocks_value_range_is_required_and_fills_the_range(no_blocks):
    with pytest.raises(ValidationError) as info:
        validate_params({})
    assert "min_val" in info.value.errors and "value_range" in str(info.value)
    resolved = validate_params({"max_val": 50.0}, value_range=(1.0, 20.0))
    assert (resolved["min_val"], resolved["max_val"]) == (1.0, 50.0)
    assert resolved["num_c"] == resolved["num_s"]
    json.dumps(resolved)  # recordable in the model registry


def test_brainblocks_scores_the_labelled_anomaly_higher(nab_points, nab_windows):
    model = create_model("brainblocks", value_range=value_range(nab_points))
    start = time.perf_counter()
    results = [model.run(p) for p in nab_points]
    ms_per_point = (time.perf_counter() - start) / len(nab_points) * 1000
    print(f"brainblocks: {ms_per_point:.3f} ms/point")

    assert all(r["time"] is p.time for r, p in zip(results, nab_points, strict=True))
    assert all(0.0 <= r["raw_score"] <= 1.0 and r["anomaly_score"] == r["raw_score"] for r in results)
    assert all(0.0 <= r["anomaly_likelihood"] <= 1.0 for r in results)
    probation = AnomalyLikelihood().probationary_period
    assert [r["anomaly_likelihood"] for r in results[:probation]] == [0.5] * probation

    inside = [any(s <= p.time <= e for s, e in nab_windows) for p in nab_points]
    assert 0 < sum(inside) < len(inside)
    raw_in = [r["raw_score"] for r, i in zip(results, inside, strict=True) if i]
    raw_out = [r["raw_score"] for r, i in zip(results, inside, strict=True) if not i]
    mean_in, mean_out = sum(raw_in) / len(raw_in), sum(raw_out) / len(raw_out)
    print(f"brainblocks: mean raw anomaly inside {mean_in:.4f}, outside {mean_out:.4f}")
    assert mean_in > mean_out
    # the likelihood flags the jump: NAB-style detections (log-likelihood >= 0.5) are denser inside
    detected = [log_likelihood(r["anomaly_likelihood"]) >= 0.5 for r in results]
    scored = list(zip(detected[probation:], inside[probation:], strict=True))
    rate_in = sum(d for d, i in scored if i) / sum(i for _, i in scored)
    rate_out = sum(d for d, i in scored if not i) / sum(not i for _, i in scored)
    print(f"brainblocks: detection rate inside {rate_in:.4f}, outside {rate_out:.4f}")
    assert rate_in > rate_out


def test_brainblocks_is_deterministic_and_flags_out_of_range_values(nab_points):
    lo, hi = value_range(nab_points)
    a, b = BrainBlocksModel.for_range(lo, hi), BrainBlocksModel.for_range(lo, hi)
    sample = nab_points[:600]
    assert [a.run(p) for p in sample] == [b.run(p) for p in sample]
    outside = a.run(point(sample[-1].time + timedelta(minutes=5), hi + 100.0))
    assert outside["raw_score"] == 1.0
    with pytest.raises(ValidationError, match="value"):
        a.run(point(sample[-1].time, float("nan")))


def test_brainblocks_state_round_trip(nab_points):
    lo, hi = value_range(nab_points)
    model = create_model("brainblocks", value_range=(lo, hi), likelihood={"learning_period": 100})
    for p in nab_points[:1500]:
        model.run(p)
    state = model.get_state()
    restored = pickle.loads(pickle.dumps(model))
    other = create_model("brainblocks", value_range=(0.0, 1.0))
    other.set_state(state)
    assert restored.params == model.params == other.params

    rest = nab_points[1500:2500]
    original = [model.run(p) for p in rest]
    copy = [restored.run(p) for p in rest]
    assert [r["raw_score"] for r in [other.run(p) for p in rest]] == [r["raw_score"] for r in copy]
    # the next score is exactly the uninterrupted one, and so is the likelihood state at first
    assert copy[0] == original[0]
    assert restored.iteration == model.iteration
    # later ones may differ a little (BrainBlocks' random generators are not saved), but not much
    differing = sum(a["raw_score"] != b["raw_score"] for a, b in zip(original, copy, strict=True))
    assert differing < 0.1 * len(rest)
    with pytest.raises(ValidationError, match="state"):
        other.set_state({"engine": "replay"})


def test_brainblocks_states_taken_and_set_on_several_threads_at_once_stay_their_own(nab_points):
    """A state's memories pass through scratch files of each thread (a fleet restores on reader
    threads beside its loop): states of different sizes, at once, never mix."""
    import concurrent.futures

    lo, hi = value_range(nab_points)
    models = [create_model("brainblocks", value_range=(lo, hi), num_s=size, num_c=size)
              for size in (32, 64, 96, 128)]
    for p in nab_points[:40]:
        for model in models:
            model.run(p)
    states = [model.get_state() for model in models]

    def round_trips(i):
        pooled = set()
        for _ in range(5):
            copy = create_model("brainblocks", value_range=(lo, hi), num_s=32 * (i + 1), num_c=32 * (i + 1))
            copy.set_state(states[i])
            pooled.add(bytes(copy.get_state()["memories"]["pooler"]))
        return pooled

    opened = len(os.listdir("/proc/self/fd"))
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        got = list(pool.map(round_trips, range(4)))
    assert got == [{bytes(state["memories"]["pooler"])} for state in states]
    assert len(os.listdir("/proc/self/fd")) <= opened  # the threads' files are closed when they end


def test_brainblocks_states_keep_the_pooler_as_its_difference_and_version_1_states_still_load(
        nab_points, tmp_path):
    lo, hi = value_range(nab_points)
    model = create_model("brainblocks", value_range=(lo, hi))
    for p in nab_points[:200]:
        model.run(p)
    state = model.get_state()
    raw = {}
    for name, block in (("pooler", model._pp), ("learner", model._sl)):
        block.save(str(tmp_path / name))
        raw[name] = (tmp_path / name).read_bytes()
    # the pooler is kept as what differs from the pooler it started as: mostly zeros
    assert state["version"] == 2 and len(state["memories"]["pooler"]) == len(raw["pooler"])
    assert state["memories"]["pooler"].count(0) > 0.9 * len(raw["pooler"]) > raw["pooler"].count(0)
    # a state of the previous release (version 1: the memories as BrainBlocks saves them) still loads
    old = {k: v for k, v in state.items() if k != "pooler_initial_crc32"} | {"version": 1, "memories": raw}
    from_old, from_new = create_model("brainblocks", value_range=(lo, hi)), create_model("brainblocks",
                                                                                         value_range=(0, 1))
    from_old.set_state(old)
    from_new.set_state(state)
    assert from_old.get_state() == from_new.get_state()
    rest = nab_points[200:260]
    assert [from_old.run(p) for p in rest] == [from_new.run(p) for p in rest]
    # a difference from another BrainBlocks build's initial pooler is refused, not loaded wrong
    with pytest.raises(ValidationError, match="initial pooler"):
        create_model("brainblocks", value_range=(lo, hi)).set_state(
            {**state, "pooler_initial_crc32": state["pooler_initial_crc32"] ^ 1})


def test_brainblocks_reset_keeps_what_was_learned(nab_points):
    model = create_model("brainblocks", value_range=value_range(nab_points))
    for p in nab_points[:1000]:
        model.run(p)
    model.reset()
    after = [model.run(p)["raw_score"] for p in nab_points[1000:1300]]
    fresh = create_model("brainblocks", value_range=value_range(nab_points))
    untrained = [fresh.run(p)["raw_score"] for p in nab_points[1000:1300]]
    assert sum(after) < sum(untrained)


# -- replay ----------------------------------------------------------------------------------------------


def test_replay_gives_every_point_its_recorded_score(nab_points):
    with open(RESULTS_FILE, newline="") as fh:
        expected = {
            utc(r["timestamp"]): (float(r["anomaly_score"]), float(r["raw_score"]))
            for r in csv.DictReader(fh)
        }
    model = create_model("replay", path=RESULTS_FILE)
    assert len(model) == len(nab_points) == len(expected)
    for p in nab_points:
        result = model.run(p)
        assert (result["anomaly_score"], result["raw_score"]) == expected[p.time]
        assert result["anomaly_likelihood"] is None
        assert result["time"] is p.time


def test_replay_missing_time_names_it(tmp_path):
    model = ReplayModel.from_csv(RESULTS_FILE)
    missing = utc("2014-04-01 00:02:30")
    with pytest.raises(NotFound, match=re.escape("2014-04-01T00:02:30.000000000Z")):
        model.run(point(missing, 1.0))
    skipping = create_model("replay", path=RESULTS_FILE, missing="skip")
    assert skipping.run(point(missing, 1.0)) is None
    with pytest.raises(ValidationError, match="missing"):
        ReplayModel.from_csv(RESULTS_FILE, missing="ignore")
    with pytest.raises(ConfigurationError, match="nope.csv"):
        ReplayModel.from_csv(tmp_path / "nope.csv")


def test_replay_duplicates_last_wins_and_zone(tmp_path):
    path = tmp_path / "results.csv"
    path.write_text(
        "timestamp,value,anomaly_score,raw_score,label\r\n"
        "2014-01-01 10:00:00,1.0,0.1,0.5,0\r\n"
        "2014-01-01 10:05:00,1.0,0.2,0.6,0\r\n"
        "2014-01-01 10:00:00,1.0,0.3,0.7,0\r\n"
    )
    model = ReplayModel.from_csv(path)
    assert model.duplicates == 1 and len(model) == 2
    assert model.run(point(utc("2014-01-01 10:00:00"), 1.0))["anomaly_score"] == 0.3
    berlin = ReplayModel.from_csv(path, tz="Europe/Berlin")
    # 10:00 in Berlin (CET, UTC+1 in January) is 09:00 UTC
    assert berlin.run(point(utc("2014-01-01 09:00:00"), 1.0))["raw_score"] == 0.7
    local = datetime(2014, 1, 1, 10, 5, tzinfo=ZoneInfo("Europe/Berlin"))
    assert berlin.run(point(local, 1.0))["anomaly_score"] == 0.2
    with pytest.raises(ValidationError, match="Mars/Olympus"):
        ReplayModel.from_csv(path, tz="Mars/Olympus")


def test_replay_from_mapping():
    t = utc("2024-05-01 12:00:00")
    model = create_model(
        "replay", results={t: {"anomaly_score": 0.9, "raw_score": 0.4}, "2024-05-01T12:01:00Z": 0.1}
    )
    assert model.run(point(t, 0.0)) == {
        "time": t,
        "anomaly_score": 0.9,
        "raw_score": 0.4,
        "anomaly_likelihood": None,
    }
    assert model.run(point(t + timedelta(minutes=1), 0.0))["anomaly_score"] == 0.1
    with pytest.raises(ValidationError, match="exactly one"):
        create_model("replay")
    with pytest.raises(ValidationError, match="unknown result keys"):
        ReplayModel({t: {"score": 1.0}})


# -- htm.core --------------------------------------------------------------------------------------------


def _htm_installed() -> bool:
    try:
        import htm.bindings.algorithms  # noqa: F401
    except ImportError:
        return False
    return True


def test_htmcore_missing_is_a_clear_error():
    if _htm_installed():
        pytest.skip("htm.core is installed here, so the 'not installed' error cannot occur")
    with pytest.raises(EngineNotInstalled, match="htm.core"):
        create_model("htmcore", value_range=(0.0, 1.0))


def test_htmcore_scores_a_series(nab_points):
    if not _htm_installed():
        pytest.skip("htm.core is not installed (it is not installable from PyPI on this platform)")
    model = create_model("htmcore", value_range=value_range(nab_points))
    results = [model.run(p) for p in nab_points[:500]]
    assert all(0.0 <= r["raw_score"] <= 1.0 for r in results)


def test_brainblocks_log_likelihood_score_is_a_registered_parameter():
    from influxhtm.core.errors import ValidationError
    from influxhtm.running.engines import create_model
    from influxhtm.running.engines.likelihood import log_likelihood

    model = create_model("brainblocks", min_val=0.0, max_val=10.0, anomaly_score="log_likelihood")
    assert model.params["anomaly_score"] == "log_likelihood"
    again = create_model("brainblocks", **model.params)  # the registered parameters rebuild the model
    from datetime import datetime, timedelta
    from types import SimpleNamespace

    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    for i in range(50):
        point = SimpleNamespace(time=t0 + timedelta(minutes=i), value=float(i % 10))
        a, b = model.run(point), again.run(point)
        assert a == b
        assert a["anomaly_score"] == log_likelihood(a["anomaly_likelihood"])
    with pytest.raises(ValidationError, match="anomaly_score"):
        create_model("brainblocks", min_val=0.0, max_val=1.0, anomaly_score="likelihood")
