"""`InfluxHtmClient`: the gateway to the sensors, models and repositories of one database.

The orm layer's `DatabaseClient` (statements, queries, writes, repositories) with the sensors of
the database on top: creating, finding and listing them.
"""

from __future__ import annotations

from influxhtm.core.errors import SensorNotFound
from influxhtm.htm.sensor import Sensor
from influxhtm.influxql import Query, admin, col
from influxhtm.model.data_layout import REGISTRY_MEASUREMENT, RESULT_SUFFIX
from influxhtm.orm.client import DatabaseClient

__all__ = ["InfluxHtmClient"]


class InfluxHtmClient(DatabaseClient):
    """Sensors, HTM model stores and repositories over one InfluxDB database.

    `create`: when a write (or a retention policy, or a continuous query) finds that the
    database does not exist, create it and go on (True, the default; CREATE DATABASE needs
    admin rights), or raise `DatabaseNotFound` (False). The database is never created before
    the server has said that it is missing.
    """

    # -- sensors -------------------------------------------------------------
    def create_sensor(self, measurement: str, component: str) -> Sensor:
        """A sensor for `measurement` and `component` (both required); nothing is written yet."""
        return Sensor(self, measurement, component)

    def get_sensor(self, measurement: str, component: str) -> Sensor:
        """The existing sensor, or SensorNotFound."""
        sensor = Sensor(self, measurement, component)
        if (sensor.measurement, sensor.component) not in self._sensor_keys():
            raise SensorNotFound(f"no sensor {measurement!r}/{component!r} in database {self.database!r}")
        return sensor

    def list_sensors(self) -> list[Sensor]:
        """Every series with a measurement and a `component` tag, read from the server.

        Model results (told by the model registry: the series of `<measurement>_model`
        that carry a registered model `id`) and the registry itself are not sensors; a
        sensor of its own named `<measurement>_model` is, even next to such results.
        """
        return [Sensor(self, m, c) for m, c in sorted(self._sensor_keys())]

    def _sensor_keys(self) -> set[tuple[str, str]]:
        """(measurement, component) of every sensor: series with a `component` tag that are not results.

        Results are told by the model registry, not by the name: a registered model of
        sensor (m, c) stores its results in the series (m_model, c, id=<model id>). A
        sensor of its own named (m_model, c) writes series without an `id` tag, so it
        is listed even when a model of (m, c) has results there.
        """
        series = self.result_series(admin.show_tag_values("component"))
        keys = {
            (s["name"], row[1]) for s in series if s["name"] != REGISTRY_MEASUREMENT for row in s["values"]
        }
        registry = Query().from_(REGISTRY_MEASUREMENT).select("params").group_by("measurement", "component")
        results = {
            (s["tags"]["measurement"] + RESULT_SUFFIX, s["tags"]["component"])
            for s in self.result_series(registry)
        }
        # Results written before the registry existed: series with an `id` tag among anomaly fields.
        for name in {m for m, _ in keys if m.endswith(RESULT_SUFFIX)}:
            if self._looks_like_results(name):
                tagged = self.rows(admin.show_tag_values("component", name, col("id") != ""))
                results |= {(name, row[1]) for row in tagged}
        # Sensor data that shares a name with results: the series without an `id` tag.
        for name in {m for m, _ in results & keys}:
            plain = self.rows(admin.show_tag_values("component", name, col("id") == ""))
            results -= {(name, row[1]) for row in plain}
        return keys - results

    def _looks_like_results(self, measurement: str) -> bool:
        fields = {row[0] for row in self.rows(admin.show_field_keys(measurement))}
        return "anomalyScore" in fields and "value" not in fields
