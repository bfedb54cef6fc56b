"""`influxhtm demo`: NAB data into InfluxDB, a real HTM engine over it, NAB scores and plots.

Steps (each announced, long ones with a progress bar):

1. import the NAB series shipped with influxhtm into measurement `nab`
   (component = the series name);
2. run the `brainblocks` engine over `machine_temperature_system_failure`
   (model id `brainblocks`), its anomaly likelihood log-scaled into the anomaly
   score exactly as NAB's Numenta detector reports it, so both models are
   thresholded on the same kind of score;
3. store Numenta's recorded HTM results for the same series as model `numenta`
   (the `replay` engine);
4. score both with NAB, all three profiles, at NAB's default thresholds, and
   brainblocks also at the thresholds NAB's optimiser finds for it; check that
   Numenta's scores equal the S(t) sums of NAB's own results file;
5. write a PNG and an interactive, self-contained HTML plot, and `scores.json`.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

from influxhtm.orm.csv_import import ImportReport, count_rows, import_csv
from influxhtm.tools import nab
from influxhtm.tools.scoring import StoreScore, score_series_of, score_store
from influxhtm.tools.text_table import format_table

#: The measurement the demo imports NAB's series into.
MEASUREMENT = "nab"
#: The series the models run over.
SERIES = "realKnownCause/machine_temperature_system_failure.csv"
#: Every NAB series shipped with influxhtm (label-file keys = paths under data/).
SHIPPED = tuple(sorted(f"{p.parent.name}/{p.name}" for p in (nab.NAB_DATA_DIR / "data").glob("*/*.csv")))
BRAINBLOCKS_ID = "brainblocks"
NUMENTA_ID = "numenta"
PROFILE_ORDER = ("standard", "reward_low_FP_rate", "reward_low_FN_rate")


def data_file(key: str) -> Path:
    """The shipped data CSV of a NAB key."""
    return nab.NAB_DATA_DIR / "data" / key


def results_file(key: str, detector: str = "numenta") -> Path:
    """The shipped results CSV of a detector for a NAB key."""
    category, name = key.split("/")
    return nab.NAB_DATA_DIR / "results" / detector / category / f"{detector}_{name}"


def component_of(key: str) -> str:
    """The sensor component of a NAB key: the file name without `.csv`."""
    return Path(key).stem


@attrs.frozen
class ModelRow:
    """One model's line of the demo's table: its scores per profile at one threshold rule."""

    model: str
    field: str
    threshold_rule: str
    scores: dict[str, StoreScore]

    @property
    def points(self) -> int:
        return self.scores["standard"].score.points


@attrs.frozen
class DemoResult:
    """What the demo produced: imports, score rows, the Numenta self-check, files and the printed table."""

    imports: tuple[ImportReport, ...]
    rows: tuple[ModelRow, ...]
    numenta_check: dict[str, tuple[float, float]]  # profile -> (raw via InfluxDB, S(t) sum of NAB's file)
    png: Path
    html: Path
    scores_json: Path
    table: str
    elapsed: float


def s_column_sums(path: Path) -> dict[str, float]:
    """Sum of each `S(t)_<profile>` column of a NAB results file (NAB's own raw scores)."""
    sums = dict.fromkeys(PROFILE_ORDER, 0.0)
    with open(path, newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            for profile in PROFILE_ORDER:
                sums[profile] += float(row[f"S(t)_{profile}"])
    return sums


def score_table(rows: tuple[ModelRow, ...] | list[ModelRow]) -> str:
    """The demo's table: model, points, NAB score per profile, detections in and out of the windows.

    Scores are NAB's normalised per-series scores (100 = perfect, 0 = a detector
    that never fires); thresholds are listed in profile order (standard, low FP, low FN).
    """
    headers = ["model", "thresholds", "points", "standard", "low FP", "low FN", "in windows", "outside"]
    body = []
    for row in rows:
        standard = row.scores["standard"].score
        thresholds = "/".join(repr(row.scores[p].score.threshold) for p in PROFILE_ORDER)  # every digit
        line: list[Any] = [row.model, f"{row.threshold_rule} {thresholds}", row.points]
        line += [row.scores[p].score.normalized for p in PROFILE_ORDER]
        line += [standard.detections_in_windows, standard.detections_outside_windows]
        body.append(line)
    return format_table(headers, body)


def run_demo(
    client: Any,
    output_dir: str | Path = "demo-output",
    *,
    echo: Callable[[str], Any] = print,
    progress: bool = True,
    series: tuple[str, ...] = SHIPPED,
) -> DemoResult:
    """Run the whole demo against `client`'s database; see the module docstring for the steps."""
    from tqdm.auto import tqdm

    from influxhtm.running.engines.likelihood import nab_params
    from influxhtm.running.experiment import experiment

    started = time.perf_counter()
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    if SERIES not in series:
        series = (*series, SERIES)
    component = component_of(SERIES)

    echo(f"[1/5] Importing {len(series)} NAB series into {client.database!r}, measurement {MEASUREMENT!r}")
    imports = []
    for key in series:
        sensor = client.create_sensor(MEASUREMENT, component_of(key))
        path = data_file(key)
        with tqdm(
            total=count_rows(path),
            unit="row",
            desc=f"  {component_of(key)}",
            disable=not progress,
            leave=False,
        ) as bar:
            report = import_csv(sensor, path, progress=bar.update)
        imports.append(report)
        merged = f", {report.merged} duplicate timestamp(s) merged" if report.merged else ""
        errors = f", {report.skipped} unreadable row(s) skipped" if report.skipped else ""
        echo(f"      {key}: {report.rows:,} rows -> {report.stored:,} points{merged}{errors}")

    sensor = client.get_sensor(MEASUREMENT, component)
    for model_id in (BRAINBLOCKS_ID, NUMENTA_ID):  # a demo run starts its models afresh
        if model_id in {s.model_id for s in sensor.list_htm_models()}:
            sensor.delete_htm_model(model_id)

    points = sensor.count()
    value_range = sensor.value_range()
    echo(
        f"[2/5] Running the brainblocks HTM engine over {sensor} ({points:,} points) as model "
        f"{BRAINBLOCKS_ID!r}"
    )
    params = {"value_range": value_range, "likelihood": nab_params(points), "anomaly_score": "log_likelihood"}
    brainblocks = experiment(sensor, BRAINBLOCKS_ID, "brainblocks", params, exist_ok=False)
    run = brainblocks.run_batch(progress=progress)
    echo(f"      {run}")

    numenta_path = results_file(SERIES)
    echo(f"[3/5] Storing Numenta's recorded HTM results as model {NUMENTA_ID!r} (replay engine)")
    replay = experiment(sensor, NUMENTA_ID, "replay", {"path": str(numenta_path)}, exist_ok=False)
    run = replay.run_batch(progress=progress)
    echo(f"      {run}")

    echo("[4/5] Scoring both models with NAB (profiles: " + ", ".join(PROFILE_ORDER) + ")")
    windows = nab.load_windows(nab.NAB_WINDOWS_FILE, SERIES)
    rows: list[ModelRow] = []
    for model_id, rules in ((NUMENTA_ID, (False,)), (BRAINBLOCKS_ID, (False, True))):
        store = sensor.get_htm_model(model_id)
        values = score_series_of(store, "anomalyScore")
        for optimize in rules:
            scores = {
                p: score_store(store, windows, profile=p, optimize=optimize, series=values)
                for p in PROFILE_ORDER
            }
            rows.append(ModelRow(model_id, "anomalyScore", scores[PROFILE_ORDER[0]].threshold_rule, scores))
    expected = s_column_sums(numenta_path)
    numenta_check = {p: (rows[0].scores[p].score.raw, expected[p]) for p in PROFILE_ORDER}
    for profile, (raw, want) in numenta_check.items():
        verdict = "equal" if abs(raw - want) <= 1e-6 else "DIFFERENT"
        echo(f"      check: numenta raw {profile} via InfluxDB {raw:.6f}, NAB's own {want:.6f}: {verdict}")

    echo(f"[5/5] Writing plots and scores to {out}/")
    data = sensor.get_combined_sensor_data(models=[NUMENTA_ID, BRAINBLOCKS_ID])
    title = f"NAB {SERIES}: Numenta HTM (recorded) and BrainBlocks (run now)"
    options = {"title": title, "windows": windows, "threshold": nab.DEFAULT_THRESHOLDS["standard"]}
    png = data.plot(out / f"{component}.png", **options)
    echo(f"      {png}")
    html = data.plot(out / f"{component}.html", **options)
    echo(f"      {html}")
    scores_json = out / "scores.json"
    scores_json.write_text(
        json.dumps(
            {
                "series": SERIES,
                "rows": [
                    {
                        "model": r.model,
                        "threshold_rule": r.threshold_rule,
                        "scores": {p: s.to_dict() for p, s in r.scores.items()},
                    }
                    for r in rows
                ],
                "numenta_check": numenta_check,
            },
            indent=2,
            default=str,
        )
        + "\n"
    )
    echo(f"      {scores_json}")
    table = score_table(rows)
    return DemoResult(
        tuple(imports),
        tuple(rows),
        numenta_check,
        png,
        html,
        scores_json,
        table,
        time.perf_counter() - started,
    )
