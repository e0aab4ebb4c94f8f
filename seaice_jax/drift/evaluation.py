"""Drift evaluation: displacement error against a known truth (a drift file, or the synthetic world's).

`evaluate_drift({method: DriftField}, truth DriftField)` -> {method: {"rmse_m", "valid_fraction", ...}}:
the truth (a DriftField on scene A's pixel grid, e.g. the synthesizer's) is interpolated bilinearly in
(line, sample) at each estimate's grid points; errors are in metres east / north. Statistics use the
estimate's valid vectors where the truth is defined.
"""

from __future__ import annotations

import json

import numpy as np
from scipy import interpolate

from seaice_jax.drift import estimation as drift_lib


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

        def stat(fn, err=err):
            return float(fn(err)) if err.size else float("nan")

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


def write_json(results: dict, path: str) -> None:
    with open(path, "w") as f:
        json.dump(results, f, indent=2, sort_keys=True)
