"""The project's acceptance check through InfluxDB: Numenta's recorded results for each shared
NAB series, stored through influxhtm and scored from the server at NAB's thresholds, give
NAB's own raw score (the sum of the file's S(t)_<profile> column) to 1e-6."""

import csv
from datetime import UTC, datetime

import pytest

import influxhtm as ih
from influxhtm.tools import nab

SERIES = [
    "artificialWithAnomaly/art_daily_jumpsup.csv",
    "realAWSCloudwatch/ec2_cpu_utilization_5f5533.csv",
    "realKnownCause/ambient_temperature_system_failure.csv",
    "realKnownCause/machine_temperature_system_failure.csv",
    "realKnownCause/nyc_taxi.csv",
]
PROFILES = ["standard", "reward_low_FP_rate", "reward_low_FN_rate"]


def utc(text):
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.fixture(scope="module")
def stored(influxd):
    """Every shared series and Numenta's results for it, written once through influxhtm."""
    from influxhtm.pytest_plugin import server_settings

    client = ih.InfluxHtmClient.from_settings("nab_acceptance", server_settings(influxd))
    client.drop_database()
    expected = {}
    for key in SERIES:
        category, name = key.split("/")
        sensor = client.create_sensor("nab", name[:-4])
        with open(nab.NAB_DATA_DIR / "data" / key, newline="") as f:
            sensor.write(
                [{"time": utc(r["timestamp"]), "value": float(r["value"])} for r in csv.DictReader(f)]
            )
        with open(nab.NAB_DATA_DIR / "results" / "numenta" / category / f"numenta_{name}", newline="") as f:
            rows = list(csv.DictReader(f))
        store = sensor.create_htm_model("numenta", engine="replay")
        store.write_results(
            {
                "time": utc(r["timestamp"]),
                "anomaly_score": float(r["anomaly_score"]),
                "raw_score": float(r["raw_score"]),
            }
            for r in rows
        )
        expected[key] = (store, {p: sum(float(r[f"S(t)_{p}"]) for r in rows) for p in PROFILES}, len(rows))
    yield expected
    client.drop_database()


@pytest.mark.parametrize("key", SERIES)
@pytest.mark.parametrize("profile", PROFILES)
def test_numenta_results_scored_from_influxdb_match_nab(stored, key, profile):
    store, sums, _ = stored[key]
    windows = nab.load_windows(nab.NAB_WINDOWS_FILE, key)
    result = nab.score(store, windows, profile=profile)
    assert result.threshold == nab.DEFAULT_THRESHOLDS[profile]
    assert result.raw == pytest.approx(sums[profile], abs=1e-6)


def test_duplicate_timestamps_are_merged_by_influxdb(stored):
    store, _, rows = stored["realKnownCause/machine_temperature_system_failure.csv"]
    assert store.count() == rows - 12  # the 55-minute clock step back: 12 timestamps occur twice
