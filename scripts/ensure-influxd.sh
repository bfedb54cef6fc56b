#!/usr/bin/env bash
# Make sure a real influxd (InfluxDB 1.x) is available: install Debian's package when
# missing and we are root; otherwise stop with the one-line instruction.
set -euo pipefail
if [ -n "${INFLUX_HOST:-}" ]; then
  echo "using the InfluxDB server at INFLUX_HOST=${INFLUX_HOST}"; exit 0
fi
if command -v "${INFLUXD:-influxd}" >/dev/null 2>&1; then exit 0; fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "influxd not found: installing Debian's influxdb package"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq influxdb >/dev/null
  # The package starts a system service on port 8086; influxhtm runs its own servers.
  (systemctl stop influxdb || service influxdb stop || true) >/dev/null 2>&1
  command -v influxd >/dev/null
  exit 0
fi
echo "influxd is missing: run 'sudo apt-get install -y influxdb' (or set INFLUX_HOST to an existing InfluxDB 1.x server)" >&2
exit 1
