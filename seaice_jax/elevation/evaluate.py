"""Freeboard maps of the model against three baselines, run on the same scenes and tracks
(`launch/evaluate_elevation.py`).

Methods (each a function of the collocated points it may use -> a freeboard map [H, W], m):
  model             the prediction file's `freeboard` (the network does not see the tracks; with
                    `calibrate` != 'none' it is recalibrated per scene on the tracks given to it)
  quantile_mapping  the scene's HV mapped through the CDF of the floe points' freeboards, leads at 0
                    (Kortum, Singha & Spreen 2025)
  gp                the JAX GP (altimetry/gp.py) on the points, inputs position + smoothed HH / HV
  nearest           nearest collocated point, leads at 0
Lead / floe map for all baselines: the prediction's ice logit < 0 (`lead_mask`; the ALS map can be far
off on a scene of almost only ice, where its concentration target is wrong).

Figures (metres; None where not computable): against the full synthetic truth (scene variable
`freeboard_truth` for kind 'laser') at 80 m and block-averaged to 100 / 200 / 400 m; on the SWOT
swath (height - mss - lead level); at held-out tracks (leave one track out, the figure that works on
real data); and against the truth as a function of the number of tracks per scene used (1, 2, 4, 8;
a seeded random subset). Pooled figures are over all scenes' pixels / points.
"""

from __future__ import annotations

import json
import os

import numpy as np
from scipy import ndimage

from seaice_jax.altimetry import baselines
from seaice_jax.altimetry import metrics as am
from seaice_jax.altimetry.collocate import collocate
from seaice_jax.elevation.calibrate import calibrated
from seaice_jax.elevation.data import TRUTH_VARIABLE, read_altimetry, tracks_of_kind

METHODS = ("model", "quantile_mapping", "gp", "nearest")
TRACK_COUNTS = (1, 2, 4, 8)
HH, HV = "nersc_sar_primary", "nersc_sar_secondary"
PRED_SUFFIX = "_pred.nc"


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


def _read_pred(pred_dir: str, name: str):
    import xarray as xr
    path = os.path.join(pred_dir, name + PRED_SUFFIX)
    if not os.path.exists(path):
        return None
    with xr.open_dataset(path, engine="netcdf4") as ds:
        return {k: np.asarray(ds[k].values) for k in ("freeboard", "ice_logit", "ice_binary_als") if k in ds}


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
    is given (all tracks of the scene), reused for the subsets (leave-one-track-out, fewer tracks)."""

    def __init__(self, features, valid, lead, *, step: int = 4, max_points: int = 600, seed: int = 0):
        from seaice_jax.altimetry import gp
        self.gp, self.features, self.valid, self.lead = gp, features, valid, lead
        self.step, self.n, self.seed, self.params = step, max_points, seed, None
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
        x, y, nv = _gp_padded(x, y, nv, self.n, self.seed)
        if self.params is None:
            self.params = self.gp.fit_gp(x, y, nv)
        m, _ = self.gp.gp_predict(self.params, x, y, nv, self.xq)
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


def scene_methods(scene, pred: dict | None, *, calibrate: str = "none", gp_step: int = 4,
                  gp_max_points: int = 600, seed: int = 0) -> dict:
    """{method: fit(colloc) -> map} for one scene."""
    valid = scene.valid
    lead = lead_mask(scene, pred)
    floe = valid & (~lead if lead is not None else True)
    hv = np.where(valid, scene.channels[HV], np.nan)
    feats = np.stack([ndimage.uniform_filter(scene.channels[c].astype(np.float64), 5) for c in (HH, HV)], -1)
    out = {}
    if pred is not None and "freeboard" in pred:
        fb = np.where(valid, pred["freeboard"], np.nan).astype(np.float32)
        out["model"] = lambda c: calibrated(fb, c, calibrate, lead)
    out["quantile_mapping"] = lambda c: baselines.quantile_mapping_from(c, hv, floe, valid)
    out["gp"] = GPBaseline(feats, valid, lead, step=gp_step, max_points=gp_max_points, seed=seed)
    out["nearest"] = lambda c: baselines.nearest_track_from(c, valid, lead)
    return out


def _subset_tracks(colloc, k: int, rng) -> object | None:
    tracks = np.unique(colloc.track_index)
    if tracks.size < k:
        return None
    chosen = rng.choice(tracks, k, replace=False)
    return colloc.select(np.isin(colloc.track_index, chosen))


def evaluate(pred_dir: str, scene_paths, track_paths, swath_paths=None, *, kind: str = "laser",
             max_time_gap_h: float = 6.0, calibrate: str = "none", track_counts=TRACK_COUNTS,
             loo: bool = True, gp_step: int = 4, seed: int = 0, methods=METHODS, progress=None) -> dict:
    """The evaluate_elevation JSON (see the module doc)."""
    from seaice_jax.data.scene import list_scene_files, open_scene

    tracks, swaths = read_altimetry(track_paths)
    if swath_paths:
        swaths += read_altimetry(swath_paths)[1]
    tracks = tracks_of_kind(tracks, kind)
    gap = max_time_gap_h * 3600.0
    files = list_scene_files(list(scene_paths))
    names = tuple(methods)
    grid = {m: {} for m in names}
    loo_sq = {m: _Sq() for m in names}
    sw_sq = {m: _Sq() for m in names}
    by_k = {k: {m: {} for m in names} for k in track_counts}
    scenes_out = {}
    for si, path in enumerate(files):
        scene = open_scene(path, channels=(HH, HV), require_charts=False)
        truth = _read_truth(path, kind)
        pred = _read_pred(pred_dir, scene.name)
        colloc = collocate(scene, tracks, gap, max_pixels=8)
        methods = {m: f for m, f in scene_methods(scene, pred, calibrate=calibrate, gp_step=gp_step,
                                                  seed=seed + si).items() if m in methods}
        lead = lead_mask(scene, pred)
        rng = np.random.default_rng([seed, si])
        subsets = {k: _subset_tracks(colloc, k, rng) for k in track_counts}
        sw_colls = swath_collocations(scene, swaths, gap, lead) if swaths else []
        entry = {"tracks": int(np.unique(colloc.track_index).size), "points": len(colloc), "methods": {}}
        for m, fit in methods.items():
            if progress:
                progress(f"{scene.name}: {m}")
            g = l_ = s_ = None
            if len(colloc):
                field = fit(colloc)
                if truth is not None:
                    sums = am.grid_error_sums(field, truth, scene.valid & np.isfinite(truth))
                    for res, es in sums.items():
                        grid[m][res] = grid[m].get(res, am.ErrorSums()).merge(es)
                    g = {k: v.stats() for k, v in sums.items()}
                if sw_colls:
                    s_ = swath_stats(field, sw_colls)
                    sw_sq[m].add(s_)
                if loo and np.unique(colloc.track_index).size > 1:
                    l_ = am.leave_one_track_out(fit, colloc)
                    loo_sq[m].add(l_["pooled"])
                if truth is not None:
                    for k, sub in subsets.items():
                        if sub is None:
                            continue
                        sums = am.grid_error_sums(fit(sub), truth, scene.valid & np.isfinite(truth),
                                                  resolutions=(80, 400))
                        for res, es in sums.items():
                            by_k[k][m][res] = by_k[k][m].get(res, am.ErrorSums()).merge(es)
            entry["methods"][m] = am.method_summary(g, l_, s_)
        scenes_out[scene.name] = entry
    pooled = {}
    for m in names:
        g = {k: v.stats() for k, v in grid[m].items()} if grid[m] else None
        row = am.method_summary(g, {"pooled": {"rmse": loo_sq[m].rmse()}}, {"rmse": sw_sq[m].rmse()})
        pooled[m] = row
    by_tracks = {str(k): {"methods": {m: {"rmse_80m": (v.get("80m") or am.ErrorSums()).stats()["rmse"],
                                          "rmse_400m": (v.get("400m") or am.ErrorSums()).stats()["rmse"]}
                                      for m, v in by_k[k].items()}} for k in track_counts}
    return {"pooled": {"methods": pooled, "by_tracks": by_tracks}, "scenes": scenes_out,
            "settings": {"kind": kind, "calibrate": calibrate, "max_time_gap_h": max_time_gap_h,
                         "scenes": len(files), "tracks_read": len(tracks), "swaths_read": len(swaths)}}


def _fmt(x):
    return "—" if x is None else f"{100 * x:.1f}"


def markdown_table(result: dict) -> str:
    """Pooled figures per method in cm (r unitless), then RMSE (400 m) against tracks per scene."""
    cols = ("rmse_80m", "rmse_400m", "mae_400m", "bias", "r", "loo_rmse", "swath_rmse")
    lines = ["| method | " + " | ".join(c + (" (cm)" if c != "r" else "") for c in cols) + " |",
             "|---" * (len(cols) + 1) + "|"]
    for m, row in result["pooled"]["methods"].items():
        vals = [("—" if row[c] is None else f"{row[c]:.2f}") if c == "r" else _fmt(row[c]) for c in cols]
        lines.append(f"| {m} | " + " | ".join(vals) + " |")
    ks = list(result["pooled"]["by_tracks"])
    lines += ["", "| method | " + " | ".join(f"RMSE 400 m, {k} tracks (cm)" for k in ks) + " |",
              "|---" * (len(ks) + 1) + "|"]
    for m in result["pooled"]["methods"]:
        lines.append(f"| {m} | " + " | ".join(_fmt(result["pooled"]["by_tracks"][k]["methods"][m]["rmse_400m"])
                                               for k in ks) + " |")
    return "\n".join(lines) + "\n"


def plot_rmse_vs_tracks(result: dict, path: str) -> str | None:
    """RMSE against the number of tracks per scene, one colour per method (400 m solid, 80 m dotted);
    only methods with a value (no 'model' line without a model), the legend beside the axes so it
    covers no line. None (nothing written) when no method has any value (e.g. scenes without truth)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from seaice_jax import fileio
    ks = [int(k) for k in result["pooled"]["by_tracks"]]
    lines = []
    for i, m in enumerate(result["pooled"]["methods"]):
        for res, style in (("rmse_400m", "-o"), ("rmse_80m", ":x")):
            ys = [result["pooled"]["by_tracks"][str(k)]["methods"][m][res] for k in ks]
            if all(y is None for y in ys):
                continue
            lines.append((ks, [np.nan if y is None else 100 * y for y in ys], style, f"C{i}", f"{m} {res[5:]}"))
    if not lines:
        return None
    fig, ax = plt.subplots(figsize=(6.5, 3.5))
    for xs, ys, style, colour, label in lines:
        ax.plot(xs, ys, style, color=colour, label=label)
    ax.set_xscale("log", base=2)
    ax.set_xticks(ks, [str(k) for k in ks])
    ax.set_xlabel("tracks per scene")
    ax.set_ylabel("freeboard RMSE vs truth (cm)")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, frameon=False)
    fig.tight_layout()
    try:
        fileio.write_atomically(lambda tmp: fig.savefig(tmp, format="png", dpi=100), path, ".png.part")
    finally:
        plt.close(fig)
    return path


def write_outputs(result: dict, json_path: str) -> dict[str, str | None]:
    """E.json, E.md and E_rmse_vs_tracks.png (None when there is nothing to plot), each written
    atomically (fileio: a failure leaves no partial file and raises a one-line WriteError)."""
    from seaice_jax import fileio
    base = os.path.splitext(json_path)[0]
    fileio.write_text(json_path, json.dumps(result, indent=1))
    fileio.write_text(base + ".md", markdown_table(result))
    return {"json": json_path, "markdown": base + ".md",
            "plot": plot_rmse_vs_tracks(result, base + "_rmse_vs_tracks.png")}
