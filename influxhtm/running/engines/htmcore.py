"""Adapter for htm.core (the HTM community's NuPIC successor), used only when it is importable.

Per point: RDSE encoder -> SpatialPooler -> TemporalMemory; ``raw_score`` and
``anomaly_score`` are the TemporalMemory's anomaly, ``anomaly_likelihood``
comes from :class:`~influxhtm.running.engines.likelihood.AnomalyLikelihood`.
Parameters are the hotgym example's, flattened; the RDSE resolution defaults
to (max - min) / 130 as in NAB's Numenta detector.

htm.core is not on PyPI for every platform; this module imports it only when
a model is built, and says so clearly when it is missing.
"""

from __future__ import annotations

import math
import pickle
from typing import Any, Mapping, Sequence

from influxhtm.core.errors import ValidationError
from influxhtm.running.engines.base import EngineNotInstalled
from influxhtm.running.engines.likelihood import AnomalyLikelihood, validate_likelihood_params

DEFAULT_PARAMS: dict[str, Any] = {
    "min_val": None, "max_val": None, "resolution": None, "size": 700, "sparsity": 0.02, "seed": 0,
    "column_count": 1638, "potential_pct": 0.85, "local_area_density": 0.04395604395604396,
    "syn_perm_active_inc": 0.04, "syn_perm_inactive_dec": 0.006, "syn_perm_connected": 0.14,
    "boost_strength": 3.0, "cells_per_column": 13, "activation_threshold": 17, "initial_perm": 0.21,
    "min_threshold": 10, "new_synapse_count": 32, "permanence_inc": 0.1, "permanence_dec": 0.1,
    "max_segments_per_cell": 128, "max_synapses_per_segment": 64, "learn": True, "likelihood": {},
}  # fmt: skip
NUM_BUCKETS = 130


def _import_htm() -> Any:
    try:
        from htm.bindings.algorithms import SpatialPooler, TemporalMemory
        from htm.bindings.sdr import SDR
        from htm.encoders.rdse import RDSE, RDSE_Parameters
    except ImportError as exc:
        raise EngineNotInstalled(
            "engine 'htmcore' needs htm.core, which is not installed "
            f"(see github.com/htm-community/htm.core): {exc}"
        ) from exc
    return SDR, RDSE, RDSE_Parameters, SpatialPooler, TemporalMemory


def validate_params(
    params: Mapping[str, Any] | None, value_range: Sequence[float] | None = None
) -> dict[str, Any]:
    """Complete and check the parameters; ValidationError names every bad one."""
    params = dict(params or {})
    errors: dict[str, list[str]] = {}
    for key in sorted(set(params) - set(DEFAULT_PARAMS), key=str):
        errors[str(key)] = [f"unknown parameter {key!r} (known: {', '.join(DEFAULT_PARAMS)})"]
    p = {**DEFAULT_PARAMS, **{k: v for k, v in params.items() if k in DEFAULT_PARAMS}}
    if value_range is not None:
        lo, hi = value_range
        p["min_val"] = lo if p["min_val"] is None else p["min_val"]
        p["max_val"] = hi if p["max_val"] is None else p["max_val"]
    for key, default in DEFAULT_PARAMS.items():
        value = p[key]
        if key in ("min_val", "max_val", "resolution") and value is None:
            continue
        if isinstance(default, bool) or key == "learn":
            ok = isinstance(value, bool)
        elif isinstance(default, int):
            ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
        elif isinstance(default, dict):
            ok = isinstance(value, Mapping)
        else:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        if not ok:
            errors.setdefault(key, []).append(f"bad value {value!r}")
    if p["resolution"] is None and not errors:
        if p["min_val"] is None or p["max_val"] is None:
            errors["resolution"] = ["give resolution, or min_val and max_val, or value_range=(lo, hi)"]
        else:
            p["resolution"] = max(0.001, (p["max_val"] - p["min_val"]) / NUM_BUCKETS)
    if isinstance(p["likelihood"], Mapping):
        try:
            p["likelihood"] = validate_likelihood_params(p["likelihood"], prefix="likelihood.")
        except ValidationError as exc:
            errors.update(exc.errors)
    if errors:
        raise ValidationError(errors)
    return p


class HtmCoreModel:
    """An online htm.core anomaly model: ``run(point) -> result dict``."""

    engine = "htmcore"

    def __init__(
        self, params: Mapping[str, Any] | None = None, *, value_range: Sequence[float] | None = None
    ):
        self.params = validate_params(params, value_range)
        SDR, RDSE, RDSE_Parameters, SpatialPooler, TemporalMemory = _import_htm()
        p = self.params
        enc = RDSE_Parameters()
        enc.size, enc.sparsity, enc.seed = p["size"], p["sparsity"], p["seed"]
        enc.resolution = p["resolution"]
        self._encoder = RDSE(enc)
        self._sdr = SDR
        self._sp = SpatialPooler(
            inputDimensions=(p["size"],), columnDimensions=(p["column_count"],),
            potentialPct=p["potential_pct"], potentialRadius=p["size"], globalInhibition=True,
            localAreaDensity=p["local_area_density"], synPermInactiveDec=p["syn_perm_inactive_dec"],
            synPermActiveInc=p["syn_perm_active_inc"], synPermConnected=p["syn_perm_connected"],
            boostStrength=p["boost_strength"], wrapAround=True, seed=p["seed"],
        )  # fmt: skip
        self._tm = TemporalMemory(
            columnDimensions=(p["column_count"],), cellsPerColumn=p["cells_per_column"],
            activationThreshold=p["activation_threshold"], initialPermanence=p["initial_perm"],
            connectedPermanence=p["syn_perm_connected"], minThreshold=p["min_threshold"],
            maxNewSynapseCount=p["new_synapse_count"], permanenceIncrement=p["permanence_inc"],
            permanenceDecrement=p["permanence_dec"], predictedSegmentDecrement=0.0,
            maxSegmentsPerCell=p["max_segments_per_cell"],
            maxSynapsesPerSegment=p["max_synapses_per_segment"], seed=p["seed"],
        )  # fmt: skip
        self._likelihood = AnomalyLikelihood(**p["likelihood"])

    def run(self, point: Any) -> dict[str, Any]:
        """Learn from one point (``.time``, ``.value``) and score it."""
        value = float(point.value)
        columns = self._sdr(self._sp.getColumnDimensions())
        self._sp.compute(self._encoder.encode(value), self.params["learn"], columns)
        self._tm.compute(columns, learn=self.params["learn"])
        raw = float(self._tm.anomaly)
        likelihood = self._likelihood.update(raw, value)
        return {"time": point.time, "anomaly_score": raw, "raw_score": raw, "anomaly_likelihood": likelihood}

    __call__ = run

    def reset(self) -> None:
        """Start a new sequence (the TemporalMemory forgets its last activity)."""
        self._tm.reset()

    def get_state(self) -> dict[str, Any]:
        """Pickled SpatialPooler and TemporalMemory (htm.core supports pickle) and the likelihood."""
        return {
            "engine": self.engine, "params": self.params, "sp": pickle.dumps(self._sp),
            "tm": pickle.dumps(self._tm), "likelihood": self._likelihood.get_state(),
        }  # fmt: skip

    def set_state(self, state: Mapping[str, Any]) -> None:
        self.__init__(state["params"])  # type: ignore[misc]
        self._sp = pickle.loads(state["sp"])
        self._tm = pickle.loads(state["tm"])
        self._likelihood.set_state(state["likelihood"])


def create(value_range: Sequence[float] | None = None, **params: Any) -> HtmCoreModel:
    """Engine factory: ``create(value_range=(lo, hi), column_count=..., ...)``."""
    return HtmCoreModel(params, value_range=value_range)
