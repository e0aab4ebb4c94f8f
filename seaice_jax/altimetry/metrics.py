"""Elevation (freeboard) metrics: RMSE, MAE, bias, correlation at the native grid and block-averaged to
coarser resolutions (area-weighted, non-integer factors allowed), at track points, leave one track out,
and against a SWOT swath. Every function returns plain dicts of floats / None (JSON-ready; None where
not computable)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from seaice_jax.altimetry.collocate import Collocation, collocate

RESOLUTIONS_M = (80, 100, 200, 400)


def overlap_matrix(n_in: int, factor: float) -> np.ndarray:
    """[floor(n_in / factor), n_in]: overlap length of output cell j = [j f, (j + 1) f) with input pixel i."""
    n_out = int(np.floor(n_in / factor + 1e-9))
    lo = np.arange(n_out)[:, None] * factor
    hi = lo + factor
    i = np.arange(n_in)[None, :]
    return np.clip(np.minimum(hi, i + 1) - np.maximum(lo, i), 0.0, None)


def block_average(field: np.ndarray, factor: float, weights: np.ndarray | None = None):
    """Area-weighted block average of `field` [H, W] by `factor` (>= 1, may be non-integer).

    NaN pixels (and weight 0) do not count. Returns (mean, coverage): coverage = the fraction of each
    output cell's area holding weight (1 = fully covered); mean is NaN where coverage is 0.
    """
    from scipy import sparse

    field = np.asarray(field, np.float64)
    w = np.ones(field.shape) if weights is None else np.asarray(weights, np.float64)
    w = np.where(np.isfinite(field), w, 0.0)
    x = np.where(w > 0, field, 0.0)
    # each output cell overlaps about factor + 1 input pixels per axis: sparse products, O(H W factor)
    ar = sparse.csr_matrix(overlap_matrix(field.shape[0], factor))
    ac = sparse.csr_matrix(overlap_matrix(field.shape[1], factor))
    num = np.asarray((ac @ (ar @ (w * x)).T).T)
    den = np.asarray((ac @ (ar @ w).T).T)
    mean = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
    return mean, den / (factor * factor)


@dataclasses.dataclass
class ErrorSums:
    """Sufficient sums of (pred, truth) pairs: exact pooled RMSE / MAE / bias / r over scenes or tracks."""

    n: int = 0
    se: float = 0.0  # sum of errors
    se2: float = 0.0  # sum of squared errors
    sae: float = 0.0  # sum of absolute errors
    sp: float = 0.0
    st: float = 0.0
    sp2: float = 0.0
    st2: float = 0.0
    spt: float = 0.0

    def add(self, pred, truth, mask=None) -> ErrorSums:
        p, t = np.asarray(pred, np.float64).ravel(), np.asarray(truth, np.float64).ravel()
        ok = np.isfinite(p) & np.isfinite(t)
        if mask is not None:
            ok &= np.asarray(mask, bool).ravel()
        p, t = p[ok], t[ok]
        e = p - t
        self.n += int(p.size)
        self.se += float(e.sum())
        self.se2 += float((e * e).sum())
        self.sae += float(np.abs(e).sum())
        self.sp += float(p.sum())
        self.st += float(t.sum())
        self.sp2 += float((p * p).sum())
        self.st2 += float((t * t).sum())
        self.spt += float((p * t).sum())
        return self

    def merge(self, other: ErrorSums) -> ErrorSums:
        return ErrorSums(*[getattr(self, f.name) + getattr(other, f.name) for f in dataclasses.fields(self)])

    def stats(self) -> dict:
        """{'rmse', 'mae', 'bias' (mean pred - truth), 'r' (Pearson), 'n'}; None where not computable."""
        n = self.n
        if n == 0:
            return {"rmse": None, "mae": None, "bias": None, "r": None, "n": 0}
        vp = self.sp2 / n - (self.sp / n) ** 2
        vt = self.st2 / n - (self.st / n) ** 2
        cov = self.spt / n - (self.sp / n) * (self.st / n)
        tiny = 1e-12 * max(1.0, self.sp2 / n, self.st2 / n)
        r = float(np.clip(cov / np.sqrt(vp * vt), -1.0, 1.0)) if n > 1 and vp > tiny and vt > tiny else None
        return {"rmse": float(np.sqrt(max(self.se2 / n, 0.0))), "mae": self.sae / n, "bias": self.se / n, "r": r,
                "n": n}


def error_stats(pred, truth, mask=None) -> dict:
    """{'rmse', 'mae', 'bias' (mean pred - truth), 'r' (Pearson), 'n'}; None where not computable."""
    return ErrorSums().add(pred, truth, mask).stats()


def grid_error_sums(pred, truth, valid=None, *, native_m: float = 80.0, resolutions=RESOLUTIONS_M,
                    min_coverage: float = 0.5) -> dict[str, ErrorSums]:
    """ErrorSums per resolution ('80m', '100m', ...): pred and truth averaged over the same valid,
    finite pixels; coarse cells under `min_coverage` are dropped. Merge over scenes to pool."""
    pred, truth = np.asarray(pred, np.float64), np.asarray(truth, np.float64)
    ok = np.isfinite(pred) & np.isfinite(truth)
    if valid is not None:
        ok &= np.asarray(valid, bool)
    out = {}
    for res in resolutions:
        factor = float(res) / native_m
        key = f"{int(round(res))}m"
        if abs(factor - 1.0) < 1e-9:
            out[key] = ErrorSums().add(pred, truth, ok)
            continue
        pm, cov = block_average(np.where(ok, pred, np.nan), factor)
        tm, _ = block_average(np.where(ok, truth, np.nan), factor)
        out[key] = ErrorSums().add(pm, tm, cov >= min_coverage)
    return out


def grid_metrics(pred, truth, valid=None, **kw) -> dict:
    """Error stats per resolution {'80m': {...}, '100m': ..., '400m': ...} (see `grid_error_sums`)."""
    return {k: v.stats() for k, v in grid_error_sums(pred, truth, valid, **kw).items()}


def footprint_means(pred: np.ndarray, colloc: Collocation) -> np.ndarray:
    """Footprint-weighted means of `pred` (numpy; NaN pixels ignored, NaN when none are finite)."""
    flat = np.asarray(pred, np.float64).ravel()
    g = flat[colloc.index]
    w = np.where(np.isfinite(g), colloc.weight, 0.0)
    s = w.sum(1)
    return np.where(s > 0, np.sum(np.where(w > 0, g, 0.0) * w, 1) / np.where(s > 0, s, 1.0), np.nan)


def point_metrics(pred: np.ndarray, colloc: Collocation, mask=None) -> dict:
    """Error stats of footprint-mean predictions against the measured values."""
    return error_stats(footprint_means(pred, colloc), colloc.value, mask)


def leave_one_track_out(method: Callable[[Collocation], np.ndarray], colloc: Collocation) -> dict:
    """For each track: fit `method` on the other tracks' points (-> map [H, W]), score at the held-out
    track's points. Returns {'pooled': stats over all held-out points, 'by_track': {track_id: stats}}."""
    preds = np.full(len(colloc), np.nan)
    by_track = {}
    tracks = np.unique(colloc.track_index)
    for ti in tracks:
        held = colloc.track_index == ti
        if held.all():
            continue
        field = method(colloc.select(~held))
        preds[held] = footprint_means(field, colloc.select(held))
        by_track[colloc.track_ids[ti]] = error_stats(preds[held], colloc.value[held])
    return {"pooled": error_stats(preds, colloc.value), "by_track": by_track}


def swath_metrics(pred: np.ndarray, scene, swaths, *, lead_mask=None, max_time_gap=None) -> dict:
    """Freeboard map vs SWOT swath(s): swath pixels collocated (250 m footprints) and compared as
    `height - mss - level`, level = the median anomaly of the pixels centred on `lead_mask` (0 without)."""
    vals, refs = [], []
    for sw in swaths:
        c = collocate(scene, sw.as_track(), max_time_gap)
        if len(c) == 0:
            continue
        level = 0.0
        if lead_mask is not None:
            r, cc = c.pixel_rc()
            on_lead = np.asarray(lead_mask, bool)[r, cc]
            if on_lead.any():
                level = float(np.median(c.value[on_lead]))
        vals.append(footprint_means(pred, c))
        refs.append(c.value - level)
    if not vals:
        return error_stats([], [])
    return error_stats(np.concatenate(vals), np.concatenate(refs))


def method_summary(grid: dict | None = None, loo: dict | None = None, swath: dict | None = None) -> dict:
    """The evaluate_elevation row: rmse_80m, rmse_400m, mae_400m, bias, r (native grid), loo_rmse,
    swath_rmse; None where the input is missing or not computable."""
    g80 = (grid or {}).get("80m", {}) or {}
    g400 = (grid or {}).get("400m", {}) or {}
    return {"rmse_80m": g80.get("rmse"), "rmse_400m": g400.get("rmse"), "mae_400m": g400.get("mae"),
            "bias": g80.get("bias"), "r": g80.get("r"),
            "loo_rmse": ((loo or {}).get("pooled") or {}).get("rmse"),
            "swath_rmse": (swath or {}).get("rmse")}


def track_point_metrics(pred: np.ndarray, colloc: Collocation) -> dict:
    """{track_id: error stats at that track's points} (footprint means vs measured)."""
    means = footprint_means(pred, colloc)
    return {colloc.track_ids[ti]: error_stats(means[colloc.track_index == ti], colloc.value[colloc.track_index == ti])
            for ti in np.unique(colloc.track_index)}
