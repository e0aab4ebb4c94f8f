"""Drift evaluation: displacement error against a known truth, and a synthetic study of the error as
a function of the time gap and of the drift's deformation, pattern matching beside phase correlation.

`evaluate_drift({method: DriftField}, truth DriftField)` -> {method: {"rmse_m", "valid_fraction", ...}}:
the truth (a DriftField on scene A's pixel grid, e.g. the synthesizer's) is interpolated bilinearly in
(line, sample) at each estimate's grid points; errors are in metres east / north. Statistics use the
estimate's valid vectors where the truth is defined.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import numpy as np
from scipy import interpolate

from seaice_jax import drift as drift_lib
from seaice_jax import drift_fields


def truth_at(truth: drift_lib.DriftField, rows: np.ndarray, cols: np.ndarray):
    """Truth east / north metres [len(rows), len(cols)] at grid rows x cols of the same scene A
    (NaN outside the truth's grid or where it is invalid)."""
    R, C = np.meshgrid(rows, cols, indexing="ij")
    out = []
    for values in (truth.east_m, truth.north_m):
        v = np.where(truth.valid, values, np.nan)
        f = interpolate.RegularGridInterpolator((truth.rows, truth.cols), v, bounds_error=False, fill_value=np.nan)
        out.append(f(np.stack([R, C], -1)))
    return out[0], out[1]


def displacement_errors(field: drift_lib.DriftField, truth: drift_lib.DriftField) -> np.ndarray:
    """Error vector lengths (m) [gy, gx]; NaN where the estimate is invalid or the truth undefined."""
    te, tn = truth_at(truth, field.rows, field.cols)
    err = np.hypot(field.east_m - te, field.north_m - tn)
    return np.where(field.valid, err, np.nan)


def evaluate_drift(estimates: dict[str, drift_lib.DriftField], truth: drift_lib.DriftField) -> dict:
    """{method: {rmse_m, mean_error_m, median_error_m, p90_error_m, bias_east_m, bias_north_m,
    valid_fraction, n_valid, n_grid, gap_hours}}."""
    results = {}
    for name, field in estimates.items():
        te, tn = truth_at(truth, field.rows, field.cols)
        scored = field.valid & np.isfinite(te) & np.isfinite(field.east_m)
        de, dn = (field.east_m - te)[scored], (field.north_m - tn)[scored]
        err = np.hypot(de, dn)
        stat = lambda fn: float(fn(err)) if err.size else float("nan")
        results[name] = {
            "rmse_m": stat(lambda e: np.sqrt(np.mean(e ** 2))),
            "mean_error_m": stat(np.mean),
            "median_error_m": stat(np.median),
            "p90_error_m": stat(lambda e: np.percentile(e, 90)),
            "bias_east_m": float(de.mean()) if err.size else float("nan"),
            "bias_north_m": float(dn.mean()) if err.size else float("nan"),
            "valid_fraction": float(field.valid.mean()),
            "n_valid": int(scored.sum()),
            "n_grid": int(field.valid.size),
            "gap_hours": field.gap_seconds / 3600.0,
        }
    return results


def sequence_truth(folder: str, field: drift_lib.DriftField, tolerance_s: float = 60.0):
    """(truth DriftField, info) for the pair of `field` in a synthesized sequence folder (`synthesize.py
    --sequence`): the truth file under `<folder>/drift_truth/` whose pair has the same start and end times
    (within `tolerance_s`). info: {"truth_file", "gap_days", "deformation_per_day"}."""
    import os
    from seaice_jax import drift_io
    from seaice_jax.data.synthetic import sequence as seq

    meta = seq.read_sequence(folder)
    truth_dir = os.path.join(folder, seq.TRUTH_DIR) if os.path.isdir(os.path.join(folder, seq.TRUTH_DIR)) else folder
    ta, tb = field.time_a.timestamp(), field.time_b.timestamp()
    times = {s["name"]: dt.datetime.fromisoformat(s["time"]).timestamp() for s in meta.scenes}
    for pair in meta.pairs:
        if abs(times[pair["a"]] - ta) <= tolerance_s and abs(times[pair["b"]] - tb) <= tolerance_s:
            truth = drift_io.read_drift(os.path.join(truth_dir, pair["file"]))["truth"]
            return truth, {"truth_file": pair["file"], "scene_a": pair["a"], "scene_b": pair["b"],
                           "gap_days": pair["gap_days"], "deformation_per_day": meta.deformation_per_day}
    raise ValueError(f"{folder}: no true drift for the pair {field.time_a:%Y%m%dT%H%M%S} -> "
                     f"{field.time_b:%Y%m%dT%H%M%S} (pairs: "
                     + ", ".join(f"{p['a']} -> {p['b']}" for p in meta.pairs) + ")")


def write_json(results: dict, path: str) -> None:
    with open(path, "w") as f:
        json.dump(results, f, indent=2, sort_keys=True)


@dataclasses.dataclass(frozen=True)
class StudyCase:
    gap_days: float
    deformation_per_day: float  # divergence = shear = this; rotation = this (rad/day) in degrees
    contrast: float = 1.0       # ice texture amplitude (drift_fields.ice_texture_db)


def synthetic_study(cases, *, shape=(384, 384), config: drift_lib.DriftConfig | None = None,
                    speed_m_per_day: float = 10_000.0, seed: int = 0) -> list[dict]:
    """RMSE of both methods on synthetic pairs, one row per case: drift of `speed_m_per_day` x gap
    with divergence, shear and rotation of `deformation_per_day`, and a lead opening at 200 m/day."""
    config = config or drift_lib.DriftConfig()
    tie = drift_fields.synthetic_tie_points(shape, config.pixel_spacing_m)
    t0 = dt.datetime(2021, 3, 1, 6)
    rows = []
    for i, case in enumerate(cases):
        d = case.deformation_per_day
        truth_model = drift_fields.KnownDrift(
            translation_m_per_day=(0.6 * speed_m_per_day, -0.8 * speed_m_per_day),
            rotation_deg_per_day=float(np.rad2deg(d)), divergence_per_day=d, shear_per_day=d,
            centre_px=(shape[0] / 2, shape[1] / 2), lead_opening_m_per_day=200.0 if d else 0.0,
            lead_offset_px=shape[0] / 5, pixel_spacing_m=config.pixel_spacing_m)
        hh_a, hh_b = drift_fields.synthetic_pair(shape, truth_model, case.gap_days, seed=seed + i,
                                                 contrast=case.contrast)
        t1 = t0 + dt.timedelta(days=case.gap_days)
        est = drift_lib.estimate_drift(hh_a, tie, t0, hh_b, tie, t1, config, methods=drift_lib.METHODS)
        truth = drift_fields.known_drift_field(truth_model, case.gap_days, est["pattern_matching"].rows,
                                               est["pattern_matching"].cols, tie, t0)
        scores = evaluate_drift(est, truth)
        rows.append({"gap_days": case.gap_days, "deformation_per_day": d, "contrast": case.contrast, **{
            m: {k: scores[m][k] for k in ("rmse_m", "valid_fraction", "p90_error_m")} for m in scores}})
    return rows
