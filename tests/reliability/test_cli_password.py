"""Passwords off the command line (issue 16, item 9), against an auth-enabled influxd.

`--password` is visible to every user in `ps`: it still works, with a warning on
stderr. `--password-stdin` reads one line of standard input, `--ask-password`
prompts (not echoed), and INFLUX_PASS still works; none of them warns.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner

from influxhtm.cli import cli

PASSWORD = "Cl1-pa55-Wq9z"
WARNING = "visible to other users"


@pytest.fixture(scope="module")
def auth_server(auth_server_with_admin):
    with auth_server_with_admin(PASSWORD) as server:
        yield server


@pytest.fixture
def base(auth_server) -> list[str]:
    database = "pw_" + uuid.uuid4().hex[:12]
    server = ["--host", auth_server.host, "--port", str(auth_server.port)]
    return [*server, "--username", "admin", "-d", database]


@pytest.fixture
def csv_file(tmp_path) -> Path:
    path = tmp_path / "data.csv"
    rows = [f"2024-01-01 00:{minute:02d}:00,{minute}.5" for minute in range(12)]
    path.write_text("timestamp,value\n" + "\n".join(rows) + "\n")
    return path


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("INFLUX_")}


def invoke(args: list[str], **kwargs):
    return CliRunner().invoke(cli, args, env={"INFLUX_PASS": None, "INFLUX_USER": None}, **kwargs)


@pytest.mark.parametrize(("how", "extra", "stdin", "env"), [
    ("stdin", ["--password-stdin"], PASSWORD + "\n", {}),
    ("prompt", ["--ask-password"], PASSWORD + "\n", {}),
    ("environment", [], None, {"INFLUX_PASS": PASSWORD}),
])
def test_password_without_the_command_line(base, csv_file, how, extra, stdin, env):
    result = CliRunner().invoke(cli, [*base, *extra, "import", str(csv_file), "-m", "m", "-c", how],
                                input=stdin, env={"INFLUX_USER": None, "INFLUX_PASS": None, **env})
    assert result.exit_code == 0, result.output
    assert "12 points stored" in result.stdout
    assert WARNING not in result.stderr
    assert PASSWORD not in result.stdout + result.stderr  # not echoed, not printed
    listed = CliRunner().invoke(cli, [*base, "--password-stdin", "sensors"], input=PASSWORD + "\n")
    assert listed.exit_code == 0 and how in listed.stdout


def test_password_on_the_command_line_works_with_a_warning(base, csv_file):
    result = invoke([*base, "--password", PASSWORD, "import", str(csv_file), "-m", "m", "-c", "argv"])
    assert result.exit_code == 0, result.output
    assert WARNING in result.stderr and "--password-stdin" in result.stderr
    assert PASSWORD not in result.stderr


def test_a_wrong_password_from_stdin_is_refused_without_showing_it(base):
    result = invoke([*base, "--password-stdin", "sensors"], input="not-" + PASSWORD + "\n")
    assert result.exit_code == 1
    assert "refused user" in result.stderr
    assert "not-" + PASSWORD not in result.output


@pytest.mark.parametrize("args", [["--password", "x", "--password-stdin"],
                                  ["--password-stdin", "--ask-password"]])
def test_one_way_at_a_time(base, args):
    result = invoke([*base, *args, "sensors"], input=PASSWORD + "\n")
    assert result.exit_code == 2
    assert "one way" in result.stderr


def test_help_names_the_safe_ways():
    text = invoke(["--help"]).stdout
    assert "--password-stdin" in text and "--ask-password" in text and "ps" in text


def console_script() -> list[str]:
    script = Path(sys.executable).with_name("influxhtm")
    return [str(script)] if script.exists() else [sys.executable, "-m", "influxhtm.cli"]


def test_console_script_reads_the_password_from_stdin(base, csv_file, reliability_report):
    env = clean_env()
    done = subprocess.run([*console_script(), *base, "--password-stdin", "import", str(csv_file),
                           "-m", "m", "-c", "script"], input=PASSWORD + "\n", capture_output=True, text=True,
                          env=env, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert WARNING not in done.stderr
    loud = subprocess.run([*console_script(), *base, "--password", PASSWORD, "sensors"],
                          capture_output=True, text=True, env=env, timeout=120)  # fmt: skip
    assert loud.returncode == 0, loud.stderr
    assert WARNING in loud.stderr
    rows = [line for line in loud.stdout.splitlines() if "script" in line]
    stored = int(rows[0].split()[2].replace(",", "")) if rows else 0
    reliability_report(
        scenario="password from stdin (console script)",
        faults="auth-enabled server; password by stdin, prompt, INFLUX_PASS; --password warned",
        written=12, read_back=stored, lost=12 - stored, duplicated=0,
    )
    assert stored == 12
