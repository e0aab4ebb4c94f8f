"""Per-scene calibration of a freeboard map on that scene's tracks (floe points only; leads stay at 0)."""

from __future__ import annotations

import numpy as np

from seaice_jax.altimetry.metrics import footprint_means
from seaice_jax.altimetry.track import FLOE

MODES = ("none", "offset", "scale_offset")


def fit_calibration(pred: np.ndarray, colloc, mode: str = "offset", min_points: int = 20) -> tuple[float, float]:
    """(scale, offset) so that scale * footprint mean + offset fits the floe points' values (least
    squares; 'offset' keeps scale 1). (1, 0) for 'none' or with fewer than `min_points` points."""
    if mode not in MODES:
        raise ValueError(f"calibration mode must be one of {MODES}, got {mode!r}")
    if mode == "none" or colloc is None or len(colloc) == 0:
        return 1.0, 0.0
    m = footprint_means(pred, colloc)
    ok = np.isfinite(m) & np.isfinite(colloc.value) & (colloc.surface == FLOE)
    if ok.sum() < min_points:
        return 1.0, 0.0
    x, y = m[ok].astype(np.float64), colloc.value[ok].astype(np.float64)
    if mode == "offset":
        return 1.0, float(np.mean(y - x))
    a = np.stack([x, np.ones_like(x)], 1)
    (scale, offset), *_ = np.linalg.lstsq(a, y, rcond=None)
    return float(np.clip(scale, 0.25, 4.0)), float(offset)


def apply_calibration(pred: np.ndarray, scale: float, offset: float, lead_mask=None) -> np.ndarray:
    """scale * pred + offset on floe pixels, >= 0; lead pixels (lead_mask) at 0."""
    out = np.maximum(scale * np.asarray(pred, np.float64) + offset, 0.0).astype(np.float32)
    if lead_mask is not None:
        out[np.asarray(lead_mask, bool) & np.isfinite(out)] = 0.0
    return out


def calibrated(pred, colloc, mode: str = "offset", lead_mask=None) -> np.ndarray:
    if mode == "none":
        return np.asarray(pred, np.float32)
    return apply_calibration(pred, *fit_calibration(pred, colloc, mode), lead_mask=lead_mask)
