"""The README stays true: its Python examples run, in order, against a real server."""

import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_python_examples_run(influxd, monkeypatch, tmp_path):
    import influxhtm as ih

    monkeypatch.setenv("INFLUX_HOST", influxd.host)
    monkeypatch.setenv("INFLUX_PORT", str(influxd.port))
    monkeypatch.chdir(tmp_path)
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert len(blocks) >= 2
    namespace: dict = {}
    try:
        for block in blocks:
            exec(compile(block, str(README), "exec"), namespace)
        assert (tmp_path / "power.png").stat().st_size > 10_000
        rows = namespace["rows"]  # every 10-minute bucket of the explicit day (empty ones: mean None)
        assert len(rows) >= 24 * 6 and sum(row.mean is not None for row in rows) >= 10
        assert namespace["store"].count() == 500
    finally:
        ih.InfluxHtmClient("home").drop_database()
