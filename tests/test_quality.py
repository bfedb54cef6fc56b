"""The package stays ruff-clean and fully typed (it ships py.typed), as `tox -e ruff,mypy` checks."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=600
    )


def test_ruff_is_clean():
    result = run("ruff", "check", "influxhtm", "tests", "benchmarks")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_is_clean():
    result = run("mypy", "influxhtm")
    assert result.returncode == 0, result.stdout + result.stderr
    assert (ROOT / "influxhtm" / "py.typed").exists()
