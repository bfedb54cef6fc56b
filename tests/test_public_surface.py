"""The public surface is small: the user's vocabulary, `ih.errors`, `ih.fn`, and one legacy module."""

import re

import influxhtm as ih
from influxhtm import legacy
from influxhtm.core import errors as errors_module
from influxhtm.influxql import expressions

CAMEL = re.compile(r"^[a-z]+[A-Z]\w*$")


def test_errors_and_functions_are_namespaces():
    assert ih.errors is errors_module
    assert ih.errors.ModelNotFound.__module__ == "influxhtm.core.errors"
    assert ih.fn.mean("value") == expressions.mean("value")
    query = ih.Query().from_("power").select(ih.fn.mean("value"), ih.fn.moving_average("value", 3))
    assert str(query).startswith("SELECT mean(value), moving_average(value, 3) FROM power")
    for name in ("ModelNotFound", "QueryError", "moving_average", "percentile", "ModelRecord"):
        assert not hasattr(ih, name), name
    assert set(ih.__all__) <= set(dir(ih))
    assert len(ih.__all__) < 60


def test_camel_case_names_are_the_original_apis_only_and_live_in_legacy():
    original = {
        "createSensor", "listSensors", "getData", "createHtmModel", "writeResult", "getCombinedSensorData"
    }
    assert {n for names in legacy.ALIASES.values() for n in names} == original
    for cls in (ih.InfluxHtmClient, ih.Sensor, ih.HtmModelStore, ih.CombinedData, ih.Runner, ih.Repository):
        camel = {n for n in dir(cls) if CAMEL.match(n)}
        assert camel == set(legacy.ALIASES.get(cls, {})), cls
        for name, snake in legacy.ALIASES.get(cls, {}).items():
            assert getattr(cls, name) is getattr(cls, snake)
