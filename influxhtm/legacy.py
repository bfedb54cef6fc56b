"""Legacy: the original influxhtm's camelCase names, as aliases of the snake_case API.

The original influxhtm (rhyolight/influx.htm) spelled its API in camelCase; every example of its
README runs as written because these names are kept, and only these: `InfluxHtmClient.createSensor`
and `listSensors`, `Sensor.getData`, `createHtmModel` and `getCombinedSensorData`,
`HtmModelStore.writeResult`. Each is the snake_case method itself (`Sensor.getData is
Sensor.get_data`). New code uses the snake_case names.
"""

from __future__ import annotations

from influxhtm.htm.client import InfluxHtmClient
from influxhtm.htm.model_store import HtmModelStore
from influxhtm.htm.sensor import Sensor

#: class -> {original camelCase name: the snake_case method it stands for}
ALIASES: dict[type, dict[str, str]] = {
    InfluxHtmClient: {"createSensor": "create_sensor", "listSensors": "list_sensors"},
    Sensor: {
        "getData": "get_data",
        "createHtmModel": "create_htm_model",
        "getCombinedSensorData": "get_combined_sensor_data",
    },
    HtmModelStore: {"writeResult": "write_result"},
}

for _cls, _names in ALIASES.items():
    for _camel, _snake in _names.items():
        setattr(_cls, _camel, getattr(_cls, _snake))
