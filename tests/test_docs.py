"""The documentation builds with Sphinx, warnings as errors (as `./run docs` and `tox -e docs` do)."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(660)  # about 30 s of CPU, but minutes of wall time on a loaded machine
def test_sphinx_build_has_no_warnings(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "sphinx",
            "-q",
            "-W",
            "-b",
            "html",
            str(ROOT / "docs"),
            str(tmp_path / "html"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    pages = {p.stem for p in (tmp_path / "html").glob("*.html")}
    assert {"index", "tutorial", "layout", "engines", "cli", "reliability", "performance", "api"} <= pages
    assert {"migrate-influxdb-python", "migrate-influxhtm"} <= pages
