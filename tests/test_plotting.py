"""Plots of combined data (influxhtm.htm.plotting): PNG and self-contained HTML, built from NAB data.

No server is needed: the frames are built from NAB's published Numenta results,
laid out as `CombinedData.to_dataframe()` lays them out.
"""

from __future__ import annotations

import json
import re
import struct
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from influxhtm.core.errors import ConfigurationError, ValidationError
from influxhtm.htm import plotting

NAB = Path(__file__).resolve().parent.parent / "influxhtm" / "data" / "nab"
THRESHOLD = 0.5422  # NAB's optimised threshold for Numenta HTM, standard profile
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def nab_results(name: str) -> pd.DataFrame:
    category, file = name.split("/")
    return pd.read_csv(NAB / "results" / "numenta" / category / f"numenta_{file}", parse_dates=["timestamp"])


def nab_windows(name: str) -> list[tuple[datetime, datetime]]:
    labels = json.loads((NAB / "labels" / "combined_windows.json").read_text())
    return [
        (datetime.fromisoformat(a).replace(tzinfo=UTC), datetime.fromisoformat(b).replace(tzinfo=UTC))
        for a, b in labels[name]
    ]


def combined(results: pd.DataFrame) -> pd.DataFrame:
    """Two models in the combined layout: `numenta` (NAB's score) and `raw` (the raw HTM score)."""
    index = pd.DatetimeIndex(results["timestamp"].dt.tz_localize("UTC"), name="time")
    raw_likelihood = results["anomaly_score"].to_numpy(copy=True)
    raw_likelihood[: len(raw_likelihood) // 2] = np.nan  # a model with results for half of the rows only
    return pd.DataFrame(
        {
            "value": results["value"].to_numpy(),
            "numenta.anomalyScore": results["anomaly_score"].to_numpy(),
            "numenta.anomalyLikelihood": results["anomaly_score"].to_numpy(),
            "numenta.rawScore": results["raw_score"].to_numpy(),
            "raw.anomalyScore": results["raw_score"].to_numpy(),
            "raw.anomalyLikelihood": raw_likelihood,
        },
        index=index,
    )


JUMPSUP = "artificialWithAnomaly/art_daily_jumpsup.csv"
MACHINE = "realKnownCause/machine_temperature_system_failure.csv"


@pytest.fixture(scope="module")
def jumpsup() -> pd.DataFrame:
    return nab_results(JUMPSUP)


@pytest.fixture(scope="module")
def frame(jumpsup: pd.DataFrame) -> pd.DataFrame:
    return combined(jumpsup)


@pytest.fixture(scope="module")
def windows() -> list[tuple[datetime, datetime]]:
    return nab_windows(JUMPSUP)


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def script_sources(page: str) -> list[str]:
    return re.findall(r"<script[^>]*\ssrc\s*=", page, flags=re.IGNORECASE)


# --------------------------------------------------------------------------- PNG


def test_png_is_a_png_of_the_documented_size(tmp_path, frame, windows):
    path = plotting.plot_png(frame, tmp_path / "plot.png", title="jumps up", windows=windows,
                             threshold=THRESHOLD)
    assert path == tmp_path / "plot.png"
    # 14 x (3 + 2.2 * 2 models) inches at 100 dpi
    assert png_size(path) == (1400, round(100 * (3 + 2.2 * 2)))
    import matplotlib.image

    pixels = matplotlib.image.imread(path)
    assert pixels.shape[:2] == (740, 1400)
    assert pixels.std() > 0.05  # something was drawn, not a blank canvas


def test_png_panels_windows_and_detections(frame, jumpsup, windows):
    import matplotlib.dates as mdates

    fig = plotting.matplotlib_figure(frame, windows=windows, threshold=THRESHOLD)
    axes = fig.get_axes()
    assert len(axes) == 3
    assert [ax.get_title(loc="left") for ax in axes[1:]] == ["model numenta", "model raw"]
    for ax in axes[1:]:
        low, high = ax.get_ylim()
        assert low <= 0 and high >= 1
    # each panel shades the one labelled window, at the label's times
    (start, end), = windows
    for ax in axes:
        spans = [p for p in ax.patches if p.get_alpha() == plotting._WINDOW_ALPHA]
        assert len(spans) == 1
        span = spans[0]  # a Polygon before matplotlib 3.9, a Rectangle since
        xs = span.get_patch_transform().transform(span.get_path().vertices)[:, 0]
        assert min(xs) == pytest.approx(mdates.date2num(start.replace(tzinfo=None)))
        assert max(xs) == pytest.approx(mdates.date2num(end.replace(tzinfo=None)))
        assert ax.get_legend() is not None
    # detection markers: as many as NAB's anomaly_score >= threshold, on the value panel and the model's
    expected = int((jumpsup["anomaly_score"] >= THRESHOLD).sum())
    assert expected > 0
    numenta_marks = [c for c in axes[1].collections if len(c.get_offsets())]
    assert sum(len(c.get_offsets()) for c in numenta_marks) == expected
    value_marks = [c for c in axes[0].collections if "numenta" in c.get_label()]
    assert len(value_marks) == 1 and len(value_marks[0].get_offsets()) == expected
    # the bottom axis says the time zone and the full range
    label = axes[-1].get_xlabel()
    first, last = (jumpsup["timestamp"].iloc[i].strftime("%Y-%m-%d %H:%M") for i in (0, -1))
    assert "UTC" in label and first in label and last in label


def test_png_without_threshold_or_windows_has_no_markers(frame):
    fig = plotting.matplotlib_figure(frame)
    for ax in fig.get_axes():
        assert not [c for c in ax.collections if len(c.get_offsets())]
        assert not ax.patches


def test_sparse_results_draw_as_connected_lines(frame):
    fig = plotting.matplotlib_figure(frame, models=["raw"])
    lines = {line.get_label(): line for line in fig.get_axes()[1].get_lines()}
    assert len(lines["anomaly likelihood"].get_xdata()) == frame["raw.anomalyLikelihood"].notna().sum()
    assert len(lines["anomaly score"].get_xdata()) == len(frame)


# --------------------------------------------------------------------------- HTML


def test_html_is_self_contained(tmp_path, frame, windows):
    path = plotting.plot_html(frame, tmp_path / "plot.html", title="jumps & <up>", windows=windows,
                              threshold=THRESHOLD)
    page = path.read_text(encoding="utf-8")
    assert script_sources(page) == []  # no external script at all, so no CDN
    assert not re.search(r"<link[^>]*href\s*=\s*[\"']?https?:", page, flags=re.IGNORECASE)
    assert "Plotly.newPlot" in page
    import plotly

    bundle = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    assert bundle.read_text(encoding="utf-8")[:2000] in page  # the library itself is embedded
    assert "numenta" in page and "raw" in page
    assert "<title>jumps &amp; &lt;up&gt;</title>" in page
    assert path.stat().st_size < bundle.stat().st_size + 3_000_000


def test_html_figure_content(frame, jumpsup, windows):
    fig = plotting.plotly_figure(frame, windows=windows, threshold=THRESHOLD)
    names = [trace.name for trace in fig.data]
    for name in ("value", "numenta anomaly score", "numenta anomaly likelihood", "raw anomaly score",
                 "raw anomaly likelihood", "anomaly window"):
        assert name in names
    assert all(t.type == "scattergl" for t in fig.data if t.name != "anomaly window")
    expected = int((jumpsup["anomaly_score"] >= THRESHOLD).sum())
    numenta_marks = [t for t in fig.data if t.mode == "markers" and t.name.startswith("numenta detections")]
    assert [len(t.x) for t in numenta_marks] == [expected, expected]
    assert {t.yaxis for t in numenta_marks} == {"y", "y2"}  # on the value line and on the model's panel
    # the window is shaded in all three panels, at the label's times
    rects = [s for s in fig.layout.shapes if s.type == "rect"]
    assert len(rects) == 3
    (start, end), = windows
    for rect in rects:
        assert pd.Timestamp(rect.x0) == pd.Timestamp(start.replace(tzinfo=None))
        assert pd.Timestamp(rect.x1) == pd.Timestamp(end.replace(tzinfo=None))
    assert {r.yref for r in rects} == {"y domain", "y2 domain", "y3 domain"}
    thresholds = [s for s in fig.layout.shapes if s.type == "line"]
    assert sorted(s.yref for s in thresholds) == ["y2", "y3"]
    assert all(s.y0 == s.y1 == THRESHOLD for s in thresholds)
    # shared x axis, scores on [0, 1]
    assert fig.layout.xaxis.matches == "x3" and fig.layout.xaxis2.matches == "x3"
    low, high = fig.layout.yaxis2.range
    assert low <= 0 and high >= 1
    # x values are epoch milliseconds of the index
    value = next(t for t in fig.data if t.name == "value")
    first_ms = pd.Timestamp("2014-04-01 00:00:00", tz="UTC").value // 1_000_000
    assert value.x[0] == first_ms
    assert len(value.x) == len(frame)


def test_long_traces_are_thinned_keeping_extremes(monkeypatch, frame):
    monkeypatch.setattr(plotting, "HTML_MAX_POINTS", 1000)
    fig = plotting.plotly_figure(frame, threshold=THRESHOLD)
    value = next(t for t in fig.data if t.name == "value")
    assert 500 <= len(value.x) <= 1000
    assert max(value.y) == frame["value"].max() and min(value.y) == frame["value"].min()
    assert np.all(np.diff(value.x) > 0)
    # detections are counted on the full data, not the thinned line
    marks = next(t for t in fig.data if t.mode == "markers" and t.name.startswith("raw detections"))
    assert len(marks.x) == int((frame["raw.anomalyScore"] >= THRESHOLD).sum())


# --------------------------------------------------------------------------- big data, dispatch


def test_nab_size_series_is_quick(tmp_path):
    results = nab_results(MACHINE)
    assert len(results) > 20_000
    frame = combined(results)
    for suffix in (".png", ".html"):
        began = time.perf_counter()
        path = plotting.plot(frame, tmp_path / f"machine{suffix}", windows=nab_windows(MACHINE),
                             threshold=THRESHOLD)
        assert time.perf_counter() - began < 5.0, suffix
        assert path.stat().st_size > 10_000
    assert png_size(tmp_path / "machine.png") == (1400, 740)
    page = (tmp_path / "machine.html").read_text(encoding="utf-8")
    assert script_sources(page) == []
    assert (tmp_path / "machine.html").stat().st_size < 12_000_000


def test_plot_dispatches_by_suffix(tmp_path, frame):
    png = plotting.plot(frame, str(tmp_path / "a.PNG"))
    assert png_size(png)[0] == 1400
    page = plotting.plot(frame, tmp_path / "a.html").read_text(encoding="utf-8")
    assert "Plotly.newPlot" in page


@pytest.mark.parametrize("name", ["plot.svg", "plot", "plot.png.txt"])
def test_plot_refuses_other_suffixes(tmp_path, frame, name):
    with pytest.raises(ValidationError) as info:
        plotting.plot(frame, tmp_path / name)
    assert "path" in info.value.errors
    message = str(info.value)
    assert name in message and ".png" in message and ".html" in message
    assert not (tmp_path / name).exists()


# --------------------------------------------------------------------------- frame layouts


def unprefixed(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[["value", "numenta.anomalyScore", "numenta.anomalyLikelihood"]].rename(
        columns={"numenta.anomalyScore": "anomalyScore", "numenta.anomalyLikelihood": "anomalyLikelihood"}
    )


def test_unprefixed_one_model_frame(tmp_path, frame, jumpsup):
    one = unprefixed(frame)
    path = plotting.plot_png(one, tmp_path / "one.png", threshold=THRESHOLD)
    assert png_size(path) == (1400, round(100 * (3 + 2.2)))
    fig = plotting.plotly_figure(one, threshold=THRESHOLD)
    titles = [a.text for a in fig.layout.annotations]
    assert "model model" in titles
    marks = [t for t in fig.data if t.mode == "markers" and "detections" in t.name]
    assert len(marks[0].x) == int((jumpsup["anomaly_score"] >= THRESHOLD).sum())
    named = plotting.plotly_figure(one, models="sensor-1")
    assert "model sensor-1" in [a.text for a in named.layout.annotations]
    with pytest.raises(ValidationError) as info:
        plotting.plotly_figure(one, models=["a", "b"])
    assert "models" in info.value.errors


def test_value_only_frame_plots_one_panel(frame):
    fig = plotting.matplotlib_figure(frame[["value"]])
    assert len(fig.get_axes()) == 1


def test_models_pick_and_order(frame):
    fig = plotting.matplotlib_figure(frame, models=["raw", "numenta"])
    assert [ax.get_title(loc="left") for ax in fig.get_axes()[1:]] == ["model raw", "model numenta"]
    with pytest.raises(ValidationError) as info:
        plotting.matplotlib_figure(frame, models=["nope"])
    assert "nope" in str(info.value) and "numenta" in str(info.value)


def test_empty_frame_is_refused(tmp_path, frame):
    with pytest.raises(ValidationError) as info:
        plotting.plot_png(frame.iloc[:0], tmp_path / "empty.png")
    assert "frame" in info.value.errors and "no rows" in str(info.value)
    with pytest.raises(ValidationError):
        plotting.plot_html(pd.DataFrame(), tmp_path / "empty.html")
    assert not (tmp_path / "empty.png").exists() and not (tmp_path / "empty.html").exists()


def test_frame_shape_errors(frame):
    with pytest.raises(ValidationError) as info:
        plotting.prepare(frame.drop(columns=["value"]))
    assert "value" in info.value.errors
    with pytest.raises(ValidationError) as info:
        plotting.prepare(frame.reset_index(drop=True))
    assert "frame" in info.value.errors and "DatetimeIndex" in str(info.value)
    with pytest.raises(ValidationError):
        plotting.prepare([1, 2, 3])  # type: ignore[arg-type]


def test_time_column_and_unsorted_index_are_accepted(frame):
    shuffled = frame.iloc[::-1]
    data = plotting.prepare(shuffled)
    assert np.all(np.diff(data.times) > np.timedelta64(0))
    assert data.value.iloc[0] == frame["value"].iloc[0]
    with_column = plotting.prepare(frame.reset_index())
    assert np.array_equal(with_column.times, data.times)


def test_naive_index_means_utc_or_the_process_wide_rule(monkeypatch, frame):
    from influxhtm.core.times import set_naive_times

    naive = frame.iloc[:10].copy()
    naive.index = naive.index.tz_localize(None)
    monkeypatch.setenv("TZ", "Etc/GMT+5")  # five hours behind UTC, no DST: local time is not UTC
    time.tzset()
    try:
        assert plotting.prepare(naive).times[0] == np.datetime64("2014-04-01T00:00:00")
        previous = set_naive_times("local")
        try:
            local = plotting.prepare(naive)
        finally:
            set_naive_times(previous)
    finally:
        monkeypatch.undo()
        time.tzset()
    assert local.times[0] == np.datetime64("2014-04-01T05:00:00")


# --------------------------------------------------------------------------- options


def test_windows_are_validated_and_clipped(frame):
    first = frame.index[0].to_pydatetime()
    last = frame.index[-1].to_pydatetime()
    data = plotting.prepare(frame, windows=[
        (first - timedelta(days=3), first + timedelta(hours=2)),  # clipped at the first point
        ("2014-04-05T00:00:00+02:00", "2014-04-05T12:00:00Z"),    # ISO texts with offsets
        (last + timedelta(days=1), last + timedelta(days=2)),     # wholly outside: dropped
    ])
    assert data.windows == (
        (np.datetime64("2014-04-01T00:00:00"), np.datetime64("2014-04-01T02:00:00")),
        (np.datetime64("2014-04-04T22:00:00"), np.datetime64("2014-04-05T12:00:00")),
    )
    with pytest.raises(ValidationError) as info:
        plotting.prepare(frame, windows=[(last, first)])
    assert "windows" in info.value.errors and "before" in str(info.value)
    with pytest.raises(ValidationError) as info:
        plotting.prepare(frame, windows=[(first,)])
    assert "windows" in info.value.errors
    with pytest.raises(ValidationError) as info:
        plotting.prepare(frame, windows=[(first, "yesterday")])
    assert "windows[0].end" in info.value.errors


@pytest.mark.parametrize("bad", [1.5, -0.1, float("nan"), "0.5", True])
def test_threshold_is_validated(frame, bad):
    with pytest.raises(ValidationError) as info:
        plotting.prepare(frame, threshold=bad)
    assert "threshold" in info.value.errors


def test_threshold_bounds_are_inclusive(frame):
    fig = plotting.plotly_figure(frame, threshold=1.0, models="numenta")
    marks = [t for t in fig.data if t.mode == "markers" and "detections" in t.name]
    assert len(marks[0].x) == int((frame["numenta.anomalyScore"] >= 1.0).sum()) > 0


# --------------------------------------------------------------------------- optional dependencies


def hide_modules(monkeypatch, prefix: str) -> None:
    for name in list(sys.modules):
        if name == prefix or name.startswith(prefix + "."):
            monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, prefix, None)


@pytest.mark.parametrize("suffix, library", [(".png", "matplotlib"), (".html", "plotly")])
def test_missing_library_names_the_extra(monkeypatch, tmp_path, frame, suffix, library):
    hide_modules(monkeypatch, library)
    with pytest.raises(ConfigurationError) as info:
        plotting.plot(frame, tmp_path / f"x{suffix}")
    assert "pip install influxhtm[plot]" in str(info.value)
    assert library in str(info.value)


def test_windows_accept_pandas_and_numpy_times(frame):
    start, end = pd.Timestamp("2014-04-02 00:00", tz="UTC"), np.datetime64("2014-04-02T06:00:00")
    data = plotting.prepare(frame, windows=[(start, end)])
    assert data.windows == ((np.datetime64("2014-04-02T00:00:00"), np.datetime64("2014-04-02T06:00:00")),)


def test_missing_times_are_refused(frame):
    broken = frame.iloc[:5].copy()
    broken.index = pd.DatetimeIndex([broken.index[0], pd.NaT, *broken.index[2:]], name="time")
    with pytest.raises(ValidationError) as info:
        plotting.prepare(broken)
    assert "frame" in info.value.errors and "NaT" in str(info.value)
