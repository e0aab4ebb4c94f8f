"""Array-level freeboard baselines: scene features + collocated points in, freeboard map out.

  * `quantile_mapping` (Kortum, Singha & Spreen 2025): floe pixels ranked by HV backscatter and mapped
    through the CDF of the track floe freeboards; leads / open water at 0 (the sea-surface reference);
  * `nearest_track`: each pixel takes the value of the nearest collocated point;
  * the Gaussian process baseline lives in `seaice_jax.altimetry.gp` (`gp_map`).
Maps are float32 [H, W], NaN where `valid` is False.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks, ties sharing their average rank (scipy.stats.rankdata 'average')."""
    x = np.asarray(x).ravel()
    uniq, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    return (first + (counts + 1) / 2.0)[inverse]


def quantile_mapping(hv: np.ndarray, floe_mask: np.ndarray, track_freeboard: np.ndarray,
                     valid: np.ndarray | None = None) -> np.ndarray:
    """Quantile mapping of the scene's HV distribution onto the track floe freeboards.

    hv: [H, W] HV backscatter (any monotone scale); floe_mask: [H, W] True on floe (ice) pixels, False on
    leads / open water (which get 0); track_freeboard: [M] freeboards of the collocated floe points
    (leads excluded). A floe pixel with average rank r among n floe pixels sits at p = (r - 0.5) / n and
    gets the p-quantile (linear interpolation, `np.quantile`'s default) of the track freeboards.
    """
    hv = np.asarray(hv, np.float64)
    valid = np.isfinite(hv) if valid is None else (np.asarray(valid, bool) & np.isfinite(hv))
    floe = valid & np.asarray(floe_mask, bool)
    out = np.full(hv.shape, np.nan, np.float32)
    out[valid & ~floe] = 0.0
    fb = np.sort(np.asarray(track_freeboard, np.float64)[np.isfinite(track_freeboard)])
    if fb.size == 0 or not floe.any():
        return out
    n = int(floe.sum())
    p = (average_ranks(hv[floe]) - 0.5) / n
    pos = p * (fb.size - 1)
    out[floe] = np.interp(pos, np.arange(fb.size), fb).astype(np.float32)
    return out


def nearest_track(shape, rows, cols, values, valid: np.ndarray | None = None,
                  lead_mask: np.ndarray | None = None, max_distance_px: float | None = None) -> np.ndarray:
    """Nearest-point interpolation of collocated values onto the [H, W] grid.

    Each pixel takes the value held by the nearest pixel that holds a point centre (the mean of the
    points centred there): one Euclidean distance transform, O(H W), where a k-d tree query of every
    pixel took seconds on a 768 x 768 scene. lead_mask: pixels forced to 0 (leads / water); beyond
    `max_distance_px` from every point: NaN.
    """
    h, w = shape
    out = np.full((h, w), np.nan, np.float32)
    rows, cols, values = (np.asarray(a, np.float64) for a in (rows, cols, values))
    ri, ci = np.rint(rows), np.rint(cols)
    ok = np.isfinite(ri) & np.isfinite(ci) & np.isfinite(values) & (ri >= 0) & (ri < h) & (ci >= 0) & (ci < w)
    if ok.any():
        flat = ri[ok].astype(np.int64) * w + ci[ok].astype(np.int64)
        total = np.bincount(flat, weights=values[ok], minlength=h * w)
        count = np.bincount(flat, minlength=h * w)
        seeds = (count > 0).reshape(h, w)
        mean = np.where(count > 0, total / np.maximum(count, 1), np.nan).reshape(h, w)
        d, (ir, ic) = ndimage.distance_transform_edt(~seeds, return_indices=True)
        out = mean[ir, ic].astype(np.float32)
        if max_distance_px is not None:
            out[d > max_distance_px] = np.nan
    if lead_mask is not None:
        out[np.asarray(lead_mask, bool)] = 0.0
    if valid is not None:
        out[~np.asarray(valid, bool)] = np.nan
    return out


# ------------------------------------------------------------------ from a Collocation (for LOO closures)
def quantile_mapping_from(colloc, hv, floe_mask, valid=None) -> np.ndarray:
    """`quantile_mapping` with the collocated floe points of `colloc` (leads excluded)."""
    from seaice_jax.altimetry.track import FLOE
    return quantile_mapping(hv, floe_mask, colloc.value[colloc.surface == FLOE], valid)


def nearest_track_from(colloc, valid=None, lead_mask=None, max_distance_px=None) -> np.ndarray:
    """`nearest_track` from the collocated points' centres."""
    return nearest_track(colloc.shape, colloc.row, colloc.col, colloc.value, valid, lead_mask, max_distance_px)


def gp_from(colloc, features, *, spacing_m: float = 80.0, valid=None, lead_mask=None, **kw) -> np.ndarray:
    """`gp.gp_map` mean from the collocated points (uncertainties as the noise)."""
    from seaice_jax.altimetry import gp
    mean, _, _ = gp.gp_map(features, colloc.row, colloc.col, colloc.value, colloc.uncertainty, spacing_m=spacing_m,
                           valid=valid, lead_mask=lead_mask, **kw)
    return mean
