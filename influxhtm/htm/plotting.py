"""Plots of sensor values merged with model results: a static PNG and a self-contained HTML page.

Input is the frame of `CombinedData.to_dataframe()`: a UTC `DatetimeIndex`
named `time`, a `value` column and, for each model id `M`, the columns
`M.anomalyScore`, `M.anomalyLikelihood` (and optionally `M.rawScore`,
`M.prediction`, ...), NaN where a model has no result. A frame of one model
may carry the result columns unprefixed (`anomalyScore`, ...).

Both plots show the same things: the value (and any model's prediction) on
top, one panel per model with its anomaly score and likelihood on [0, 1],
the labelled anomaly windows shaded in every panel, and, when a threshold is
given, the detections (score >= threshold) marked on the value line and on
the model's panel.

matplotlib and plotly are optional (`pip install influxhtm[plot]`) and are
imported only when a plot is drawn. The PNG is drawn with the Agg canvas on
a bare `Figure` (no pyplot, no display, no global backend switch). The HTML
embeds plotly.js (works offline, no CDN) and draws lines with WebGL
(`scattergl`), so a NAB series of ~22,000 points stays responsive at full
resolution; only traces longer than `HTML_MAX_POINTS` are thinned, by keeping
the minimum and maximum of each bucket so that spikes survive. Detections are
computed from the full data before any thinning.
"""

from __future__ import annotations

import html
import math
import os
from datetime import UTC
from pathlib import Path
from typing import Any, Iterable, Sequence

import attrs
import numpy as np
import pandas as pd

from influxhtm.core.errors import ConfigurationError, ValidationError
from influxhtm.core.times import to_ns

__all__ = [
    "plot", "plot_png", "plot_html", "matplotlib_figure", "plotly_figure", "prepare",
    "PlotData", "ModelSeries", "RESULT_FIELDS", "HTML_MAX_POINTS",
]

#: Result fields a model column may carry, `<model>.<field>`.
RESULT_FIELDS = ("anomalyScore", "anomalyLikelihood", "rawScore", "prediction", "predictionConfidence")

#: Above this many points a trace of the HTML plot is thinned (min/max per bucket).
HTML_MAX_POINTS = 50_000

#: Model name used for a frame whose result columns carry no `<model>.` prefix.
DEFAULT_MODEL_NAME = "model"

#: Title of a plot when none is given.
DEFAULT_TITLE = "Sensor value and anomaly scores"

_SUFFIXES = (".png", ".html")
_INSTALL_HINT = "pip install influxhtm[plot]"

_VALUE_COLOR = "#1f4e79"
_PREDICTION_COLOR = "#7f7f7f"
_SCORE_COLOR = "#d95f02"
_LIKELIHOOD_COLOR = "#1b9e77"
_WINDOW_COLOR = "#e7298a"
_WINDOW_ALPHA = 0.15
_THRESHOLD_COLOR = "#555555"
# One colour and marker per model for detections, so the value panel tells models apart.
_DETECTION_COLORS = ("#d62728", "#6a3d9a", "#b15928", "#e6ab02", "#17becf", "#8c564b")
_MPL_MARKERS = ("v", "^", "D", "s", "P", "X")
_PLOTLY_MARKERS = ("triangle-down", "triangle-up", "diamond", "square", "cross", "x")


@attrs.frozen
class ModelSeries:
    """The result columns of one model, each a float Series on the frame's index (None if absent)."""

    name: str
    score: pd.Series | None
    likelihood: pd.Series | None
    prediction: pd.Series | None

    def detections(self, threshold: float | None) -> np.ndarray:
        """Boolean mask of the rows whose anomaly score is >= threshold (empty without score or threshold)."""
        if threshold is None or self.score is None:
            return np.zeros(0, dtype=bool)
        return self.score.to_numpy(dtype=float, na_value=np.nan) >= threshold


@attrs.frozen
class PlotData:
    """A validated frame, split into what the plots draw; times are naive UTC datetime64."""

    times: np.ndarray
    value: pd.Series
    models: tuple[ModelSeries, ...]
    windows: tuple[tuple[np.datetime64, np.datetime64], ...]
    threshold: float | None


# --------------------------------------------------------------------------- public API


def plot(frame: pd.DataFrame, path: str | os.PathLike[str], **kwargs: Any) -> Path:
    """Write `frame` as a PNG or an HTML plot, chosen by the suffix of `path` (`.png` or `.html`)."""
    if not isinstance(path, (str, os.PathLike)):
        raise ValidationError({"path": [f"{path!r} is not a file path ending in {' or '.join(_SUFFIXES)}"]})
    suffix = Path(path).suffix.lower()
    if suffix == ".png":
        return plot_png(frame, path, **kwargs)
    if suffix == ".html":
        return plot_html(frame, path, **kwargs)
    raise ValidationError(
        {"path": [f"{os.fspath(path)!r} has suffix {suffix or '(none)'!r}; "
                  f"use one of {', '.join(_SUFFIXES)}"]}
    )


def plot_png(
    frame: pd.DataFrame,
    path: str | os.PathLike[str],
    *,
    title: str | None = None,
    windows: Iterable[Sequence[Any]] | None = None,
    threshold: float | None = None,
    models: Sequence[str] | str | None = None,
) -> Path:
    """Draw a static PNG: value on top, one anomaly panel per model; 1400 x (300 + 220 * models) px.

    `windows` are (start, end) pairs (aware datetimes, ISO texts or ns) shaded in
    every panel; `threshold` marks detections (score >= threshold); `models`
    picks and orders the models to draw (default: all, in column order).
    """
    fig = matplotlib_figure(frame, title=title, windows=windows, threshold=threshold, models=models)
    target = Path(path)
    fig.savefig(target, format="png", dpi=100)
    return target


def plot_html(
    frame: pd.DataFrame,
    path: str | os.PathLike[str],
    *,
    title: str | None = None,
    windows: Iterable[Sequence[Any]] | None = None,
    threshold: float | None = None,
    models: Sequence[str] | str | None = None,
) -> Path:
    """Write an interactive, self-contained HTML plot (plotly.js embedded, no CDN): zoom, pan, hover.

    Same content and arguments as `plot_png`; the panels share their x axis.
    """
    fig = plotly_figure(frame, title=title, windows=windows, threshold=threshold, models=models)
    page = fig.to_html(
        include_plotlyjs=True, full_html=True, include_mathjax=False,
        config={"responsive": True, "displaylogo": False, "scrollZoom": True},
        default_width="100%",
    )
    heading = html.escape(_heading(title))
    page = page.replace("<head>", f"<head><title>{heading}</title>", 1)
    target = Path(path)
    target.write_text(page, encoding="utf-8")
    return target


def matplotlib_figure(
    frame: pd.DataFrame,
    *,
    title: str | None = None,
    windows: Iterable[Sequence[Any]] | None = None,
    threshold: float | None = None,
    models: Sequence[str] | str | None = None,
) -> Any:
    """The PNG's `matplotlib.figure.Figure` (Agg canvas, no pyplot), e.g. to show in a notebook."""
    data = prepare(frame, windows=windows, threshold=threshold, models=models)
    try:
        import matplotlib  # noqa: F401
        import matplotlib.dates as mdates
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.patches import Patch
    except ImportError as exc:
        raise ConfigurationError(f"plot_png needs matplotlib: {_INSTALL_HINT}") from exc

    n_models = len(data.models)
    fig = Figure(figsize=(14, 3 + 2.2 * n_models), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(
        1 + n_models, 1, sharex=True, squeeze=False,
        gridspec_kw={"height_ratios": [1.4] + [1.0] * n_models},
    )[:, 0]
    value_ax, model_axes = axes[0], axes[1:]

    _mpl_line(value_ax, data.times, data.value, color=_VALUE_COLOR, lw=0.8, label="value")
    for model in data.models:
        if model.prediction is not None:
            _mpl_line(value_ax, data.times, model.prediction, color=_PREDICTION_COLOR, lw=0.7,
                      ls="--", label=f"{model.name} prediction")
    value_ax.set_ylabel("value")
    value_ax.set_title(_heading(title), loc="left")

    value_values = data.value.to_numpy(dtype=float, na_value=np.nan)
    for k, (model, ax) in enumerate(zip(data.models, model_axes, strict=True)):
        color, marker = _DETECTION_COLORS[k % len(_DETECTION_COLORS)], _MPL_MARKERS[k % len(_MPL_MARKERS)]
        if model.score is not None:
            # on top of the likelihood: the score is what the threshold and the markers refer to
            _mpl_line(ax, data.times, model.score, color=_SCORE_COLOR, lw=0.8, label="anomaly score",
                      zorder=2.2)
        if model.likelihood is not None:
            _mpl_line(ax, data.times, model.likelihood, color=_LIKELIHOOD_COLOR, lw=0.8,
                      label="anomaly likelihood")
        if data.threshold is not None:
            ax.axhline(data.threshold, color=_THRESHOLD_COLOR, lw=0.8, ls=":",
                       label=f"threshold {data.threshold:g}")
            hits = model.detections(data.threshold)
            if hits.any():
                scores = model.score.to_numpy(dtype=float, na_value=np.nan)  # type: ignore[union-attr]
                ax.scatter(data.times[hits], scores[hits], s=22, marker=marker, color=color, zorder=3,
                           label=f"detections ({int(hits.sum())})")
                on_value = hits & ~np.isnan(value_values)
                value_ax.scatter(data.times[on_value], value_values[on_value], s=26, marker=marker,
                                 color=color, zorder=3, label=f"{model.name} detections ({int(hits.sum())})")
        ax.set_ylim(-0.05, 1.1)
        ax.set_ylabel("score")
        ax.set_title(f"model {model.name}", loc="left", fontsize=10)

    for ax in axes:
        for start, end in data.windows:
            ax.axvspan(start, end, color=_WINDOW_COLOR, alpha=_WINDOW_ALPHA, lw=0, zorder=0)
        ax.grid(True, color="#dddddd", lw=0.5)
        handles, _labels = ax.get_legend_handles_labels()
        if data.windows:
            handles.append(Patch(color=_WINDOW_COLOR, alpha=_WINDOW_ALPHA * 2, label="anomaly window"))
        if handles:
            ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=8,
                      frameon=False, borderaxespad=0.0)

    locator = mdates.AutoDateLocator(tz=UTC)
    last_ax = axes[-1]
    last_ax.xaxis.set_major_locator(locator)
    last_ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, tz=UTC))
    start, end = data.times[0], data.times[-1]
    # The concise formatter omits the year/month of early ticks: the label states the full range.
    last_ax.set_xlabel(f"time (UTC), {_span_text(start, end)}")
    if start == end:  # one point: give the axis some width
        start, end = start - np.timedelta64(30, "m"), end + np.timedelta64(30, "m")
    last_ax.set_xlim(start, end)
    return fig


def plotly_figure(
    frame: pd.DataFrame,
    *,
    title: str | None = None,
    windows: Iterable[Sequence[Any]] | None = None,
    threshold: float | None = None,
    models: Sequence[str] | str | None = None,
) -> Any:
    """The HTML page's `plotly.graph_objects.Figure`, e.g. to `.show()` in a notebook."""
    data = prepare(frame, windows=windows, threshold=threshold, models=models)
    try:
        import plotly.graph_objects as go
        from plotly.subplots import make_subplots
    except ImportError as exc:
        raise ConfigurationError(f"plot_html needs plotly: {_INSTALL_HINT}") from exc

    n_models = len(data.models)
    fig = make_subplots(
        rows=1 + n_models, cols=1, shared_xaxes=True, vertical_spacing=0.04 if n_models < 4 else 0.025,
        row_heights=[1.4] + [1.0] * n_models,
        subplot_titles=["value"] + [f"model {m.name}" for m in data.models],
    )
    times = data.times
    value_values = data.value.to_numpy(dtype=float, na_value=np.nan)
    shapes: list[dict[str, Any]] = []  # set once at the end: update_layout(shapes=) merges, not appends
    fig.add_trace(_gl_line(go, times, value_values, "value", _VALUE_COLOR, group="value"), row=1, col=1)
    for model in data.models:
        if model.prediction is not None:
            fig.add_trace(
                _gl_line(go, times, model.prediction.to_numpy(dtype=float, na_value=np.nan),
                         f"{model.name} prediction", _PREDICTION_COLOR, group=model.name, dash="dash"),
                row=1, col=1,
            )

    for k, model in enumerate(data.models):
        row = k + 2
        color = _DETECTION_COLORS[k % len(_DETECTION_COLORS)]
        symbol = _PLOTLY_MARKERS[k % len(_PLOTLY_MARKERS)]
        scores = None if model.score is None else model.score.to_numpy(dtype=float, na_value=np.nan)
        if scores is not None:
            fig.add_trace(_gl_line(go, times, scores, f"{model.name} anomaly score", _SCORE_COLOR,
                                   group=model.name), row=row, col=1)
        if model.likelihood is not None:
            fig.add_trace(
                _gl_line(go, times, model.likelihood.to_numpy(dtype=float, na_value=np.nan),
                         f"{model.name} anomaly likelihood", _LIKELIHOOD_COLOR, group=model.name),
                row=row, col=1,
            )
        if data.threshold is not None and scores is not None:
            shapes.append({
                "type": "line", "xref": f"x{row} domain", "yref": f"y{row}", "x0": 0, "x1": 1,
                "y0": data.threshold, "y1": data.threshold, "layer": "below",
                "line": {"color": _THRESHOLD_COLOR, "width": 1, "dash": "dot"},
            })
            hits = model.detections(data.threshold)
            if hits.any():
                label = f"{model.name} detections ({int(hits.sum())})"
                fig.add_trace(_gl_markers(go, times[hits], scores[hits], label, color, symbol,
                                          group=model.name, legend=False), row=row, col=1)
                on_value = hits & ~np.isnan(value_values)
                fig.add_trace(_gl_markers(go, times[on_value], value_values[on_value], label, color, symbol,
                                          group=model.name, legend=True), row=1, col=1)
        fig.update_yaxes(range=[-0.05, 1.1], title_text="score", row=row, col=1)

    for row in range(1, n_models + 2):
        yref = "y domain" if row == 1 else f"y{row} domain"
        for start, end in data.windows:
            shapes.append({
                "type": "rect", "xref": "x", "yref": yref, "x0": _iso(start), "x1": _iso(end),
                "y0": 0, "y1": 1, "fillcolor": _WINDOW_COLOR, "opacity": _WINDOW_ALPHA,
                "line": {"width": 0}, "layer": "below",
            })
    if data.windows:  # a legend entry for the shading (shapes have none of their own in older plotly)
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name="anomaly window",
                                 marker={"symbol": "square", "size": 12, "color": _WINDOW_COLOR,
                                         "opacity": 0.4}, hoverinfo="skip"), row=1, col=1)
    fig.update_layout(
        shapes=shapes,
        title={"text": html.escape(_heading(title)), "x": 0.01},
        height=int(100 * (3 + 2.2 * n_models)) + 60,
        hovermode="x",
        legend={"orientation": "v", "x": 1.01, "y": 1.0, "font": {"size": 11}},
        margin={"l": 60, "r": 20, "t": 70, "b": 40},
        plot_bgcolor="white",
    )
    fig.update_xaxes(showgrid=True, gridcolor="#eeeeee", type="date")
    fig.update_yaxes(showgrid=True, gridcolor="#eeeeee")
    fig.update_yaxes(title_text="value", row=1, col=1)
    fig.update_xaxes(title_text=f"time (UTC), {_span_text(times[0], times[-1])}", row=n_models + 1, col=1)
    return fig


# --------------------------------------------------------------------------- validation


def prepare(
    frame: pd.DataFrame,
    *,
    windows: Iterable[Sequence[Any]] | None = None,
    threshold: float | None = None,
    models: Sequence[str] | str | None = None,
) -> PlotData:
    """Check a combined frame and the plot options, and split them into what the plots draw.

    Raises ValidationError naming the argument: `frame` (not a DataFrame, no
    time index, no rows), `value` (column missing), `models`, `windows`,
    `threshold`.
    """
    if not isinstance(frame, pd.DataFrame):
        raise ValidationError({"frame": [f"expected a pandas DataFrame, got {type(frame).__name__}"]})
    frame = _time_indexed(frame)
    if len(frame) == 0:
        raise ValidationError({"frame": ["has no rows: nothing to plot (was the time range empty?)"]})
    if "value" not in frame.columns:
        raise ValidationError(
            {"value": [f"column 'value' is missing; the frame has {[str(c) for c in frame.columns]}"]}
        )
    if not frame.index.is_monotonic_increasing:
        frame = frame.sort_index(kind="stable")
    index = pd.DatetimeIndex(frame.index)  # UTC, by _time_indexed
    times = index.tz_localize(None).to_numpy(dtype="datetime64[ns]")
    value = _float_series(frame, "value")
    model_series = tuple(
        ModelSeries(
            name=name,
            score=_float_column(frame, columns.get("anomalyScore")),
            likelihood=_float_column(frame, columns.get("anomalyLikelihood")),
            prediction=_float_column(frame, columns.get("prediction")),
        )
        for name, columns in _select_models(_model_columns(frame, models), models).items()
    )
    stamps = times.astype(np.int64)
    return PlotData(
        times=times,
        value=value,
        models=model_series,
        windows=_check_windows(windows, (int(stamps[0]), int(stamps[-1]))),
        threshold=_check_threshold(threshold),
    )


def _time_indexed(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with a UTC DatetimeIndex (a `time` column is used as index; naive times are UTC)."""
    if not isinstance(frame.index, pd.DatetimeIndex):
        if "time" in frame.columns:
            frame = frame.set_index(pd.DatetimeIndex(pd.to_datetime(frame["time"]), name="time"))
        elif len(frame) == 0:
            frame = frame.set_index(pd.DatetimeIndex([], tz="UTC", name="time"))
        else:
            raise ValidationError(
                {"frame": [f"needs a DatetimeIndex (or a 'time' column), got {type(frame.index).__name__}"]}
            )
    index = pd.DatetimeIndex(frame.index)
    if index.hasnans:
        missing = int(np.count_nonzero(index.isna()))
        raise ValidationError({"frame": [f"the time index has {missing} missing (NaT) times"]})
    if index.tz is None:  # the library's one rule: naive means UTC (or the process-wide setting)
        ns = [to_ns(t.to_pydatetime(), name="frame.index") for t in index]
        index = pd.DatetimeIndex(pd.to_datetime(ns, unit="ns", utc=True), name=index.name)
    else:
        index = index.tz_convert("UTC")
    return frame.set_axis(index, axis=0)


def _float_column(frame: pd.DataFrame, column: str | None) -> pd.Series | None:
    """A column as float64 (non-numbers become NaN), or None when not given."""
    return None if column is None else _float_series(frame, column)


def _float_series(frame: pd.DataFrame, column: str) -> pd.Series:
    """A column as float64; non-numbers become NaN."""
    return pd.to_numeric(frame[column], errors="coerce").astype("float64")


def _model_columns(frame: pd.DataFrame, models: Sequence[str] | str | None) -> dict[str, dict[str, str]]:
    """Map model name -> {field: column}, in column order; handles unprefixed one-model frames."""
    found: dict[str, dict[str, str]] = {}
    for column in frame.columns:
        if not isinstance(column, str) or "." not in column:
            continue
        name, field = column.rsplit(".", 1)
        if field in RESULT_FIELDS and name:
            found.setdefault(name, {})[field] = column
    if found:
        return found
    plain = {field: field for field in RESULT_FIELDS if field in frame.columns}
    if "anomalyScore" not in plain and "anomalyLikelihood" not in plain:
        return {}
    wanted = [models] if isinstance(models, str) else list(models or [])
    if len(wanted) > 1:
        raise ValidationError(
            {"models": [f"{wanted!r} names {len(wanted)} models, but the frame's result columns "
                        "are unprefixed (one model)"]}
        )
    return {wanted[0] if wanted else DEFAULT_MODEL_NAME: plain}


def _select_models(
    found: dict[str, dict[str, str]], models: Sequence[str] | str | None
) -> dict[str, dict[str, str]]:
    """The models asked for, in the order asked; all of them when `models` is None."""
    if models is None:
        return found
    wanted = [models] if isinstance(models, str) else list(models)
    unknown = [m for m in wanted if m not in found]
    if unknown:
        raise ValidationError(
            {"models": [f"{unknown!r} not in the frame; its models are {list(found)!r}"]}
        )
    return {m: found[m] for m in dict.fromkeys(wanted)}


def _check_windows(
    windows: Iterable[Sequence[Any]] | None, span: tuple[int, int] | None
) -> tuple[tuple[np.datetime64, np.datetime64], ...]:
    """Windows as naive-UTC datetime64 pairs, clipped to `span` (first, last ns; outside ones dropped)."""
    if windows is None:
        return ()
    if isinstance(windows, (str, bytes)):
        raise ValidationError({"windows": [f"expected (start, end) pairs, got the text {windows!r}"]})
    result = []
    for i, window in enumerate(windows):
        if isinstance(window, (str, bytes)) or not isinstance(window, Sequence) or len(window) != 2:
            raise ValidationError({"windows": {i: [f"expected a (start, end) pair, got {window!r}"]}})
        start = to_ns(_as_time(window[0]), name=f"windows[{i}].start")
        end = to_ns(_as_time(window[1]), name=f"windows[{i}].end")
        if end < start:
            raise ValidationError({"windows": {i: [f"end {window[1]!r} is before start {window[0]!r}"]}})
        if span is not None:
            if end < span[0] or start > span[1]:
                continue
            start, end = max(start, span[0]), min(end, span[1])
        result.append((np.datetime64(start, "ns"), np.datetime64(end, "ns")))
    return tuple(result)


def _as_time(value: Any) -> Any:
    """numpy datetime64 (naive UTC by numpy's convention) to an aware datetime; other times unchanged."""
    if isinstance(value, np.datetime64):
        return pd.Timestamp(value).tz_localize("UTC").to_pydatetime()
    return value


def _check_threshold(threshold: float | None) -> float | None:
    """A finite number in [0, 1], or None."""
    if threshold is None:
        return None
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.integer, np.floating)):
        raise ValidationError({"threshold": [f"expected a number in [0, 1], got {threshold!r}"]})
    value = float(threshold)
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise ValidationError({"threshold": [f"expected a number in [0, 1], got {threshold!r}"]})
    return value


# --------------------------------------------------------------------------- drawing helpers


def _mpl_line(ax: Any, times: np.ndarray, series: pd.Series, **style: Any) -> None:
    """Plot a series skipping its NaNs, so sparse results still draw as a connected line."""
    values = series.to_numpy(dtype=float, na_value=np.nan)
    keep = ~np.isnan(values)
    ax.plot(times[keep], values[keep], **style)


def _heading(title: str | None) -> str:
    """The plot's title, or the default one."""
    return title if title is not None else DEFAULT_TITLE


def _span_text(start: np.datetime64, end: np.datetime64) -> str:
    """`2013-12-02 21:15 to 2014-02-19 15:25`: the plotted time range, for axis labels."""
    first, last = (str(np.datetime_as_string(t, unit="m")).replace("T", " ") for t in (start, end))
    return f"{first} to {last}"


def _iso(t: np.datetime64) -> str:
    """A datetime64 as the ISO text plotly reads on a date axis."""
    return str(np.datetime_as_string(t, unit="ms"))


def _thin(times: np.ndarray, values: np.ndarray, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Drop NaNs, then keep each bucket's min and max when longer than `limit` (spikes survive)."""
    limit = HTML_MAX_POINTS if limit is None else limit
    keep = ~np.isnan(values)
    times, values = times[keep], values[keep]
    if len(values) <= limit:
        return times, values
    buckets = max(1, limit // 2)
    edges = np.linspace(0, len(values), buckets + 1).astype(int)
    picks: list[int] = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        if hi <= lo:
            continue
        chunk = values[lo:hi]
        a, b = lo + int(np.argmin(chunk)), lo + int(np.argmax(chunk))
        picks.extend(sorted({a, b}))
    index = np.asarray(picks)
    return times[index], values[index]


def _plotly_x(times: np.ndarray) -> np.ndarray:
    """Times as milliseconds since the epoch: plotly reads numbers on a date axis as ms, compactly."""
    return times.astype("datetime64[ms]").astype(np.int64).astype(np.float64)


def _gl_line(go: Any, times: np.ndarray, values: np.ndarray, name: str, color: str, *,
             group: str, dash: str | None = None) -> Any:
    """A WebGL line trace (NaNs dropped, thinned above HTML_MAX_POINTS)."""
    t, v = _thin(times, values)
    return go.Scattergl(
        x=_plotly_x(t), y=v, mode="lines", name=name, legendgroup=group,
        line={"color": color, "width": 1, **({"dash": dash} if dash else {})},
        hovertemplate="%{x|%Y-%m-%d %H:%M:%S} UTC<br>%{y:.4g}<extra>" + html.escape(name) + "</extra>",
    )


def _gl_markers(go: Any, times: np.ndarray, values: np.ndarray, name: str, color: str, symbol: str, *,
                group: str, legend: bool) -> Any:
    """A WebGL marker trace for detections."""
    return go.Scattergl(
        x=_plotly_x(times), y=values, mode="markers", name=name, legendgroup=group, showlegend=legend,
        marker={"color": color, "symbol": symbol, "size": 8, "line": {"width": 0}},
        hovertemplate="%{x|%Y-%m-%d %H:%M:%S} UTC<br>%{y:.4g}<extra>" + html.escape(name) + "</extra>",
    )
