"""Freeboard maps of the model, with and without its track inputs, against three baselines on the same
scenes and tracks (`launch/evaluate_elevation.py`).

Methods (each a function of the collocated points it may use -> a freeboard map [H, W], m):
  model             the prediction file's freeboard map (`infer.py --altimetry`: the scene's tracks are
                    the network's inputs); for held-out figures the network is run again with the
                    scored track left out of its inputs (the workdir the file names, or --workdir)
  model_sar_only    the same network with no track input (the SAR alone)
  quantile_mapping  the scene's HV mapped through the CDF of the floe points' freeboards, leads at 0
                    (Kortum, Singha & Spreen 2025)
  gp                the JAX GP (altimetry/gp.py) on the points, inputs position + smoothed HH / HV
  nearest           nearest collocated point, leads at 0
Lead / floe map for the baselines: the prediction's ice logit < 0. With `calibrate` != 'none' the model
maps are recalibrated per scene on the tracks given to them.

Figures (metres; None where not computable), pooled over all scenes' pixels / points:
  pooled.methods.<m>   rmse_80m / rmse_400m / mae_400m / bias / r against the synthetic truth (80 m and
                       block-averaged), swath_rmse on a SWOT swath (height - mss - lead level), loo_rmse
                       at held-out tracks (leave one track out: fitted, or for the model run, without it)
  pooled.by_tracks     RMSE against the truth with 1, 2, 4, 8 tracks per scene (a seeded random subset)
  by_distance          RMSE in bins of distance to the nearest input track point (0-1, 1-5, 5-20, > 20 km):
                       against the truth at 80 m where the scenes have one, else at held-out points
                       (distance to the nearest remaining track)
  uncertainty          the model's predicted sigma on held-out points: the share within 1 and 2 total
                       sigmas, sqrt(predicted^2 + stated^2) (calibrated: ~0.68 / ~0.95), the same for
                       the SAR-only run (every point is held out there)
"""

from __future__ import annotations

import json
import os

import numpy as np
from scipy import ndimage

from seaice_jax.altimetry import baselines
from seaice_jax.altimetry import metrics as am
from seaice_jax.altimetry.collocate import collocate, pixel_spacing_m
from seaice_jax.elevation.calibrate import calibrated
from seaice_jax.elevation.data import (
    HEAD_OF_KIND,
    MODEL_METHODS,
    PRED_SUFFIX,  # noqa: F401  (re-exported)
    TRUTH_VARIABLE,
    EvaluationError,
    read_altimetry,
)
from seaice_jax.elevation.data import read_prediction as _read_pred
from seaice_jax.elevation.model_runs import SceneModel, model_loo, model_runner
from seaice_jax.elevation.report import markdown_table  # noqa: F401  (re-exported for the launcher)

METHODS = ("model", "model_sar_only", "quantile_mapping", "gp", "nearest")
TRACK_COUNTS = (1, 2, 4, 8)
DISTANCE_BINS_KM = (("0-1 km", 0.0, 1.0), ("1-5 km", 1.0, 5.0), ("5-20 km", 5.0, 20.0), ("> 20 km", 20.0, np.inf))
HH, HV = "nersc_sar_primary", "nersc_sar_secondary"


class _Sq:
    """Pooled RMSE from per-part (rmse, n)."""

    def __init__(self):
        self.se2, self.n = 0.0, 0

    def add(self, stats):
        if stats and stats.get("n") and stats.get("rmse") is not None:
            self.se2 += stats["rmse"] ** 2 * stats["n"]
            self.n += stats["n"]

    def rmse(self):
        return float(np.sqrt(self.se2 / self.n)) if self.n else None


def _read_truth(path: str, kind: str):
    import xarray as xr
    with xr.open_dataset(path, engine="netcdf4") as ds:
        var = TRUTH_VARIABLE[kind]
        return np.asarray(ds[var].values, np.float32) if var in ds else None


def _gp_padded(x, y, nv, n: int, seed: int):
    """Points subsampled / padded to exactly `n` (one compiled shape for every fit): padding points sit
    far away (1e4 km) with a huge noise variance, so they do not move the posterior."""
    idx = np.arange(x.shape[0])
    if idx.size > n:
        idx = np.sort(np.random.default_rng(seed).choice(idx, n, replace=False))
    x, y, nv = x[idx], y[idx], nv[idx]
    pad = n - x.shape[0]
    if pad:
        far = np.zeros((pad, x.shape[1]))
        far[:, 0] = 1e4 + np.arange(pad) * 1e3
        x = np.concatenate([x, far])
        y = np.concatenate([y, np.full(pad, float(np.mean(y)) if y.size else 0.0)])
        nv = np.concatenate([nv, np.full(pad, 1e8)])
    return x, y, nv


class GPBaseline:
    """The GP baseline of one scene: hyperparameters fitted (marginal likelihood) on the first points it
    is given (all tracks of the scene; a seeded subset of `fit_points` of them: the fit's cost grows with
    the cube of the points), reused for the subsets (leave-one-track-out, fewer tracks); predictions
    from up to `max_points` points, the posterior mean only."""

    def __init__(self, features, valid, lead, *, step: int = 4, max_points: int = 600, fit_points: int = 300,
                 seed: int = 0):
        from seaice_jax.altimetry import gp
        self.gp, self.features, self.valid, self.lead = gp, features, valid, lead
        self.step, self.n, self.fit_n, self.seed, self.params = step, max_points, fit_points, seed, None
        h, w = features.shape[:2]
        rr, cc = np.mgrid[0:h:step, 0:w:step]
        self.grid_shape = rr.shape
        self.xq = gp.gp_inputs(features, rr.ravel(), cc.ravel())

    def __call__(self, c) -> np.ndarray:
        h, w = self.features.shape[:2]
        ok = np.isfinite(c.value)
        if ok.sum() < 3:
            return np.full((h, w), np.nan, np.float32)
        x = self.gp.gp_inputs(self.features, c.row[ok], c.col[ok])
        y = c.value[ok].astype(np.float64)
        nv = np.maximum(np.nan_to_num(c.uncertainty[ok].astype(np.float64), nan=0.1), 1e-3) ** 2
        if self.params is None:
            self.params = self.gp.fit_gp(*_gp_padded(x, y, nv, self.fit_n, self.seed))
        x, y, nv = _gp_padded(x, y, nv, self.n, self.seed)
        m = self.gp.gp_predict_mean(self.params, x, y, nv, self.xq)
        m = np.repeat(np.repeat(m.reshape(self.grid_shape), self.step, 0), self.step, 1)[:h, :w].astype(np.float32)
        if self.lead is not None:
            m[self.lead] = 0.0
        m[~self.valid] = np.nan
        return m


def swath_collocations(scene, swaths, gap, lead=None) -> list:
    """[(collocation, reference value)] of each swath side over the scene: height - mss - lead level."""
    out = []
    for sw in swaths:
        c = collocate(scene, sw.as_track(), gap)
        if len(c) == 0:
            continue
        level = 0.0
        if lead is not None:
            r, cc = c.pixel_rc()
            on = lead[r, cc]
            if on.any():
                level = float(np.median(c.value[on]))
        out.append((c, c.value - level))
    return out


def swath_stats(field, swath_colls) -> dict:
    if not swath_colls:
        return am.error_stats([], [])
    return am.error_stats(np.concatenate([am.footprint_means(field, c) for c, _ in swath_colls]),
                          np.concatenate([ref for _, ref in swath_colls]))


def lead_mask(scene, pred: dict | None):
    """Lead / open-water pixels of the prediction: the network's ice logit < 0 (p_ice < 0.5, the map the
    freeboard head is multiplied by), else its ALS binary map; None without a prediction."""
    if pred is None:
        return None
    if "ice_logit" in pred:
        return scene.valid & (pred["ice_logit"] < 0)
    if "ice_binary_als" in pred:
        return scene.valid & (pred["ice_binary_als"] == 0)
    return None


# ----------------------------------------------------------------------------------------------
# Scoring


def scene_methods(scene, pred: dict | None, *, scene_model: SceneModel | None = None, calibrate: str = "none",
                  gp_step: int = 4, gp_max_points: int = 600, seed: int = 0, methods=METHODS) -> dict:
    """{method: fit(colloc) -> map} for one scene (model fits: see the module doc)."""
    valid = scene.valid
    lead = lead_mask(scene, pred)
    floe = valid & (~lead if lead is not None else True)
    hv = np.where(valid, scene.channels[HV], np.nan)
    out = {}

    def masked(fb):
        return np.where(valid, fb, np.nan).astype(np.float32)

    if "model" in methods:
        fb_file = masked(pred["freeboard"]) if pred is not None and "freeboard" in pred else None
        rerun = scene_model is not None and scene_model.runner.uses_points

        def model_fit(c):
            # The file's map holds every track; a subset of them (by_tracks, leave one out) is run again.
            if fb_file is not None and (not rerun or scene_model.is_every_track(c.track_index)):
                return calibrated(fb_file, c, calibrate, lead)
            return calibrated(masked(scene_model.run(np.unique(c.track_index))[0]), c, calibrate, lead)

        if fb_file is not None or scene_model is not None:
            out["model"] = model_fit
    if "model_sar_only" in methods and scene_model is not None:
        out["model_sar_only"] = lambda c: calibrated(masked(scene_model.sar_only()[0]), c, calibrate, lead)
    if "quantile_mapping" in methods:
        out["quantile_mapping"] = lambda c: baselines.quantile_mapping_from(c, hv, floe, valid)
    if "gp" in methods:
        feats = np.stack([ndimage.uniform_filter(scene.channels[c].astype(np.float64), 5) for c in (HH, HV)], -1)
        out["gp"] = GPBaseline(feats, valid, lead, step=gp_step, max_points=gp_max_points, seed=seed)
    if "nearest" in methods:
        out["nearest"] = lambda c: baselines.nearest_track_from(c, valid, lead)
    return out


def _subset_tracks(colloc, k: int, rng):
    tracks = np.unique(colloc.track_index)
    if tracks.size < k:
        return None
    chosen = rng.choice(tracks, k, replace=False)
    return colloc.select(np.isin(colloc.track_index, chosen))


def distance_to_points_km(shape, rows, cols, spacing_m: float) -> np.ndarray:
    """[H, W] km from each pixel to the nearest of the points (their nearest pixels)."""
    h, w = shape
    seeds = np.ones((h, w), bool)
    r = np.clip(np.rint(rows), 0, h - 1).astype(int)
    c = np.clip(np.rint(cols), 0, w - 1).astype(int)
    seeds[r, c] = False
    if seeds.all():
        return np.full((h, w), np.inf)
    return ndimage.distance_transform_edt(seeds) * spacing_m / 1000.0


def _bin_index(dist_km) -> np.ndarray:
    out = np.full(np.shape(dist_km), -1, np.int64)
    for i, (_, lo, hi) in enumerate(DISTANCE_BINS_KM):
        out[(dist_km >= lo) & (dist_km < hi)] = i
    return out


def _loo_distances_km(colloc, spacing_m: float) -> np.ndarray:
    """Each point's distance to the nearest point of another track (km)."""
    from scipy import spatial

    out = np.full(len(colloc), np.inf)
    xy = np.stack([colloc.row, colloc.col], 1) * spacing_m / 1000.0
    for ti in np.unique(colloc.track_index):
        held = colloc.track_index == ti
        if (~held).any():
            out[held] = spatial.cKDTree(xy[~held]).query(xy[held])[0]
    return out


def _uncertainty_row(res, sig) -> dict:
    ok = np.isfinite(res) & np.isfinite(sig) & (sig > 0)
    if not ok.any():
        return {"within_1sigma": None, "within_2sigma": None, "n_points": 0, "mean_sigma": None}
    z = np.abs(res[ok]) / sig[ok]
    return {"within_1sigma": float(np.mean(z <= 1.0)), "within_2sigma": float(np.mean(z <= 2.0)),
            "n_points": int(ok.sum()), "mean_sigma": float(np.mean(sig[ok]))}


def evaluate(pred_dir: str, scene_paths, track_paths, swath_paths=None, *, kind: str = "laser",
             max_time_gap_h: float = 6.0, calibrate: str = "none", track_counts=TRACK_COUNTS,
             loo: bool = True, gp_step: int = 4, seed: int = 0, methods=METHODS, workdir: str | None = None,
             progress=None) -> dict:
    """The evaluate_elevation JSON (see the module doc). Raises EvaluationError when there is nothing to
    evaluate (no scene, no track of the kind read, no point collocated, no prediction with the
    freeboard variable and no model to make one)."""
    from seaice_jax.data.scene import list_scene_files, open_scene

    if kind not in HEAD_OF_KIND:
        raise ValueError(f"--kind must be one of {tuple(HEAD_OF_KIND)}, got {kind!r}")
    head = HEAD_OF_KIND[kind]
    read = read_altimetry(track_paths)
    swaths = list(read.swaths)
    if swath_paths:
        swaths += read_altimetry(swath_paths).swaths
    tracks = read.of_kind(kind)
    files = list_scene_files(list(scene_paths))
    if not files:
        raise EvaluationError(f"no scene file in {', '.join(map(str, scene_paths))}")
    if not tracks:
        raise EvaluationError(
            f"no {kind} freeboard track read from {', '.join(map(str, track_paths))} ({read.files} file(s), "
            f"{len(read.unreadable)} unreadable" + (f": {read.unreadable[0]}" if read.unreadable else "") + ")")
    gap = max_time_gap_h * 3600.0
    runner, runner_note = model_runner(pred_dir, files, workdir, kind, methods)
    names = tuple(m for m in methods if m != "model_sar_only" or runner is not None)
    grid = {m: {} for m in names}
    loo_sq = {m: _Sq() for m in names}
    sw_sq = {m: _Sq() for m in names}
    by_k = {k: {m: {} for m in names} for k in track_counts}
    dist_truth = {m: [am.ErrorSums() for _ in DISTANCE_BINS_KM] for m in names}
    dist_loo = {m: [am.ErrorSums() for _ in DISTANCE_BINS_KM] for m in names}
    unc_res, unc_sig, sar_res, sar_sig = [], [], [], []
    scenes_out, points_total, with_pred = {}, 0, 0
    read_channels = tuple(dict.fromkeys((HH, HV) + (runner.read_channels if runner else ())))
    for si, path in enumerate(files):
        scene = open_scene(path, channels=read_channels, require_charts=False)
        truth = _read_truth(path, kind)
        pred = _read_pred(pred_dir, scene.name, head) if pred_dir else None
        with_pred += int(pred is not None and "freeboard" in pred)
        colloc = collocate(scene, tracks, gap, max_pixels=8)
        points_total += len(colloc)
        scene_model = SceneModel(runner, scene, tracks, gap, colloc) if runner is not None else None
        fits = scene_methods(scene, pred, scene_model=scene_model, calibrate=calibrate, gp_step=gp_step,
                             seed=seed + si, methods=names)
        lead = lead_mask(scene, pred)
        rng = np.random.default_rng([seed, si])
        subsets = {k: _subset_tracks(colloc, k, rng) for k in track_counts}
        sw_colls = swath_collocations(scene, swaths, gap, lead) if swaths else []
        n_tracks = int(np.unique(colloc.track_index).size)
        entry = {"tracks": n_tracks, "points": len(colloc), "methods": {}}
        spacing = float(np.mean(pixel_spacing_m(scene.tie_points)))
        ok_truth = None if truth is None else scene.valid & np.isfinite(truth)
        bins = (_bin_index(distance_to_points_km(scene.shape, colloc.row, colloc.col, spacing))
                if truth is not None and len(colloc) else None)
        loo_bins = _bin_index(_loo_distances_km(colloc, spacing)) if len(colloc) else None
        for m, fit in fits.items():
            if progress:
                progress(f"{scene.name}: {m}")
            g = l_ = s_ = None
            if not len(colloc):
                entry["methods"][m] = am.method_summary(None, None, None)
                continue
            field = fit(colloc)
            if truth is not None:
                sums = am.grid_error_sums(field, truth, ok_truth)
                for res, es in sums.items():
                    grid[m][res] = grid[m].get(res, am.ErrorSums()).merge(es)
                g = {k: v.stats() for k, v in sums.items()}
                for b in range(len(DISTANCE_BINS_KM)):
                    dist_truth[m][b].add(field, truth, ok_truth & (bins == b))
            if sw_colls:
                s_ = swath_stats(field, sw_colls)
                sw_sq[m].add(s_)
            if loo and n_tracks > 1:
                if m == "model" and scene_model is not None and runner.uses_points:
                    preds, sig = model_loo(scene_model, colloc, calibrate, lead)
                    unc_res.append(preds - colloc.value)
                    unc_sig.append(sig)
                    l_ = {"pooled": am.error_stats(preds, colloc.value)}
                else:
                    if m in MODEL_METHODS:  # independent of the tracks: every point is held out
                        preds = am.footprint_means(field, colloc)
                        l_ = {"pooled": am.error_stats(preds, colloc.value)}
                    else:
                        preds = _loo_preds(fit, colloc)
                        l_ = {"pooled": am.error_stats(preds, colloc.value)}
                if m == "model_sar_only" and scene_model.sar_only()[1] is not None:
                    s = am.footprint_means(scene_model.sar_only()[1], colloc)
                    sar_res.append(preds - colloc.value)
                    sar_sig.append(np.sqrt(s ** 2 + np.nan_to_num(colloc.uncertainty.astype(np.float64)) ** 2))
                loo_sq[m].add(l_["pooled"])
                for b in range(len(DISTANCE_BINS_KM)):
                    dist_loo[m][b].add(preds, colloc.value, loo_bins == b)
            if truth is not None:
                for k, sub in subsets.items():
                    if sub is None:
                        continue
                    sums = am.grid_error_sums(fit(sub), truth, ok_truth, resolutions=(80, 400))
                    for res, es in sums.items():
                        by_k[k][m][res] = by_k[k][m].get(res, am.ErrorSums()).merge(es)
            entry["methods"][m] = am.method_summary(g, l_, s_)
        scenes_out[scene.name] = entry
    if not points_total:
        raise EvaluationError(f"no {kind} track point falls on the {len(files)} scene(s) within "
                              f"{max_time_gap_h:g} h of their start ({len(tracks)} track(s) read)")
    if "model" in names and not with_pred and runner is None:
        raise EvaluationError(f"{pred_dir}: no prediction with a '{head}' variable for the {len(files)} scene(s), "
                              f"and no model to make one ({runner_note})")
    pooled = {}
    for m in names:
        g = {k: v.stats() for k, v in grid[m].items()} if grid[m] else None
        pooled[m] = am.method_summary(g, {"pooled": {"rmse": loo_sq[m].rmse()}}, {"rmse": sw_sq[m].rmse()})
    by_tracks = {str(k): {"methods": {m: {"rmse_80m": (v.get("80m") or am.ErrorSums()).stats()["rmse"],
                                          "rmse_400m": (v.get("400m") or am.ErrorSums()).stats()["rmse"]}
                                      for m, v in by_k[k].items()}} for k in track_counts}
    has_truth = any(s.n for v in dist_truth.values() for s in v)
    basis = dist_truth if has_truth else dist_loo
    by_distance = {
        "basis": "truth at 80 m" if has_truth else "held-out points (leave one track out)",
        "bins": {name: {"n": max((basis[m][b].n for m in names), default=0),
                        "methods": {m: basis[m][b].stats()["rmse"] for m in names}}
                 for b, (name, _, _) in enumerate(DISTANCE_BINS_KM)},
    }
    uncertainty = dict(_uncertainty_row(np.concatenate(unc_res) if unc_res else np.array([]),
                                        np.concatenate(unc_sig) if unc_sig else np.array([])),
                       basis="held-out points (the model run without the point's own track)",
                       model_sar_only=_uncertainty_row(np.concatenate(sar_res) if sar_res else np.array([]),
                                                       np.concatenate(sar_sig) if sar_sig else np.array([])))
    notes = list(read.unreadable) + read.notes[:20] + ([runner_note] if runner_note else [])
    return {"pooled": {"methods": pooled, "by_tracks": by_tracks}, "by_distance": by_distance,
            "uncertainty": uncertainty, "scenes": scenes_out,
            "settings": {"kind": kind, "calibrate": calibrate, "max_time_gap_h": max_time_gap_h,
                         "scenes": len(files), "tracks_read": len(tracks), "swaths_read": len(swaths),
                         "files_read": read.files, "files_unreadable": len(read.unreadable),
                         "points_collocated": int(points_total), "predictions": with_pred,
                         "model_workdir": runner.workdir if runner else None,
                         "model_runs": runner.runs if runner else 0},
            "notes": notes}


def _loo_preds(fit, colloc) -> np.ndarray:
    """Footprint-mean predictions at each track's points from `fit` on the other tracks (what
    altimetry.metrics.leave_one_track_out scores)."""
    preds = np.full(len(colloc), np.nan)
    for ti in np.unique(colloc.track_index):
        held = colloc.track_index == ti
        if held.all():
            continue
        preds[held] = am.footprint_means(fit(colloc.select(~held)), colloc.select(held))
    return preds


def write_outputs(result: dict, json_path: str) -> dict[str, str | None]:
    """E.json, E.md, E_rmse_vs_tracks.png and E_rmse_vs_distance.png (a plot None when there is
    nothing to draw), each written atomically (fileio: a failure leaves no partial file and raises a
    one-line WriteError)."""
    from seaice_jax import fileio
    from seaice_jax.elevation.report import plot_rmse_vs_distance, plot_rmse_vs_tracks

    base = os.path.splitext(json_path)[0]
    os.makedirs(os.path.dirname(os.path.abspath(json_path)), exist_ok=True)
    fileio.write_text(json_path, json.dumps(result, indent=1))
    fileio.write_text(base + ".md", markdown_table(result))
    return {"json": json_path, "markdown": base + ".md",
            "plot": plot_rmse_vs_tracks(result, base + "_rmse_vs_tracks.png"),
            "distance_plot": plot_rmse_vs_distance(result, base + "_rmse_vs_distance.png")}
