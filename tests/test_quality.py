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


def test_mypy_is_strict_about_definitions_ignores_and_dead_code():
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]
    for option in ("disallow_untyped_defs", "warn_unused_ignores", "warn_unreachable"):
        assert config.get(option) is True, option


def test_time_bounds_are_typed_as_times():
    import inspect

    from influxhtm.core import times
    from influxhtm.htm.client import InfluxHtmClient
    from influxhtm.htm.model_store import HtmModelStore
    from influxhtm.htm.sensor import Sensor
    from influxhtm.running.sweep import sweep

    for function in (Sensor.get_data, Sensor.query, Sensor.delete_data, HtmModelStore.get_results, sweep,
                     times.inclusive_range, InfluxHtmClient.delete):
        hints = inspect.get_annotations(function)  # as written (the modules postpone annotations)
        bounds = [name for name in ("since", "until", "before") if name in hints]
        assert bounds, function
        for name in bounds:
            assert hints[name] == "TimeLike | None", (function, name, hints[name])


def test_pre_commit_runs_the_same_ruff_and_mypy():
    import yaml

    result = run("pre_commit", "validate-config", ".pre-commit-config.yaml")
    assert result.returncode == 0, result.stdout + result.stderr
    hooks = {
        hook["id"]: hook["entry"]
        for repo in yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())["repos"]
        for hook in repo["hooks"]
    }
    assert hooks["ruff"].startswith("ruff check") and hooks["mypy"] == "mypy influxhtm"


def setup_extras() -> dict[str, list[str]]:
    """The extras setup.py declares (setup() itself is not run)."""
    import setuptools

    captured: dict = {}
    source = (ROOT / "setup.py").read_text()
    namespace = {"__file__": str(ROOT / "setup.py"), "__name__": "setup"}
    original = setuptools.setup
    setuptools.setup = lambda **kwargs: captured.update(kwargs)
    try:
        exec(compile(source, "setup.py", "exec"), namespace)
    finally:
        setuptools.setup = original
    return captured["extras_require"]


def test_the_all_extra_has_no_lint_or_docs_tools_and_dev_has_them():
    extras = setup_extras()
    import re

    names = {key: {re.split(r"[<>=\[]", req)[0] for req in reqs} for key, reqs in extras.items()}
    assert not names["all"] & {"ruff", "mypy", "sphinx", "pre-commit", "pytest", "types-requests"}
    assert {"dask", "matplotlib", "brainblocks", "pandas"} <= names["all"]
    assert {"ruff", "mypy", "sphinx", "pre-commit", "pytest", "pytest-timeout", "hypothesis"} <= names["dev"]
    assert "'.[all,dev]'" in (ROOT / "run").read_text()


def test_the_changelog_has_an_unreleased_section_in_keep_a_changelog_form():
    text = (ROOT / "CHANGELOG.md").read_text()
    sections = [line for line in text.splitlines() if line.startswith("## ")]
    assert sections and sections[0] == "## Unreleased"
    assert {"### Added", "### Changed", "### Fixed"} <= set(text.splitlines())
