"""The tutorial's section on DataFrames and CSV files of a declared class runs as written."""

import contextlib
import io
import re
from pathlib import Path

import influxhtm as ih

ROOT = Path(__file__).resolve().parent.parent
SECTION = "Writing DataFrames and CSV files of a declared class"


def section_code() -> list[str]:
    """The `.. code-block:: python` blocks of the section, dedented."""
    text = (ROOT / "docs" / "tutorial.rst").read_text(encoding="utf-8")
    start = text.index(SECTION)
    end = text.index("\n----", text.index("\n----", start) + 5)  # up to the next section's underline
    body = text[start:end]
    blocks = re.findall(r"\.\. code-block:: python\n\n((?:    .*\n|\n)+)", body)
    return ["\n".join(line[4:] for line in block.splitlines()) for block in blocks]


def test_the_tutorial_writes_a_dataframe_and_imports_a_csv(influx_settings, influx_database, tmp_path,
                                                            monkeypatch):
    blocks = section_code()
    assert len(blocks) == 2
    monkeypatch.chdir(tmp_path)
    namespace = {"client": ih.InfluxHtmClient.from_settings(influx_database, influx_settings)}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        for block in blocks:
            exec(compile(block, "tutorial.rst", "exec"), namespace)  # noqa: S102 - the docs' own code
    printed = out.getvalue()
    assert printed.startswith("3\n")
    documented = [line.strip()[2:] for line in blocks[1].splitlines() if line.strip().startswith("# ")]
    summary = namespace["report"].summary().splitlines()
    assert [line.strip() for line in summary] == [line.strip() for line in documented]
    rooms = namespace["rooms"].query().all()
    assert [(r.site, r.temperature, r.humidity, r.occupied) for r in rooms] == [
        ("north", 21.5, 0.41, None),
        ("north", 22.0, None, None),
        ("south", 19.5, 0.38, None),
        ("north", 22.5, 0.4, True),
        ("south", 20.0, None, None),
    ]
    assert "occupied=False" in printed
