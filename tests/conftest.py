"""The InfluxDB fixtures (`influxd`, `influx_settings`, `influx_database`, `influx_client`)
come from influxhtm's own pytest plugin, registered through its `pytest11` entry point."""
