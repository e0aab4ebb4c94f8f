"""Drift-compensated altimetry (issue 13): tracks from other days moved to the SAR acquisition time, and
the elevation evaluation with them.

`compensate_tracks(tracks, target_time, mode, ...)`:
  none       the points stay where they were measured; only their time is set to the SAR time (used
             like same-day points, so they sample the ice that was there on their own day)
  estimated  moved with estimated drift fields (`drift.motion.move_tracks`: velocity piecewise in time
             over the pairs, linear in time between pairs, nearest pair beyond them); the position
             uncertainty grows with each pair's nominal error pro rata of the time it covers
  true       moved with the synthetic truth (a `drift.motion.PointFlow` such as
             `synthetic.sequence.true_flow`, exact; the ceiling)
The freeboard uncertainty grows by FREEBOARD_PER_POSITION x the position uncertainty (in quadrature;
an assumption: ~5 cm of freeboard per km of misplacement, the scale of level-ice variability). The
original time and the position uncertainty go into each track's attrs.

`evaluate_compensation(...)` -> the evaluate_elevation JSON's `by_compensation[mode]`: RMSE against the
truth at 80 m and 400 m with all tracks within the gaps `GAP_DAYS` moved to each scene's time
(`rmse_80m`, `rmse_400m` of the headline method), per method, and per gap (tracks whose time is within
half a day of `gap` days before or after the scene).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from seaice_jax.altimetry import metrics as am
from seaice_jax.altimetry.collocate import collocate
from seaice_jax.altimetry.track import to_unix_seconds
from seaice_jax.drift.io import read_drift_fields

MODES = ("none", "estimated", "true")
GAP_DAYS = (0, 1, 3, 7)
FREEBOARD_PER_POSITION = 0.05 / 1000.0  # m of freeboard per m of position uncertainty
HEADLINE = ("model", "gp", "nearest", "quantile_mapping")  # the first one evaluated is the headline
DEFAULT_METHODS = ("model", "nearest", "quantile_mapping")
DAY_S = 86400.0


def compensate_tracks(tracks, target_time, mode: str, *, fields=None, true_flow=None) -> list:
    """The tracks moved to `target_time` (see the module doc); every returned point has time target_time."""
    if mode not in MODES:
        raise ValueError(f"drift compensation must be one of {MODES}, got {mode!r}")
    if mode == "estimated" and not fields:
        raise ValueError("drift compensation 'estimated' needs drift files (--drift)")
    if mode == "true" and true_flow is None:
        raise ValueError("drift compensation 'true' needs the synthetic sequence truth (synthesize.py --sequence)")
    tracks = [t for t in tracks if len(t)]
    if not tracks:
        return []
    target = to_unix_seconds(target_time)
    lat = np.concatenate([t.latitude for t in tracks])
    lon = np.concatenate([t.longitude for t in tracks])
    time = np.concatenate([t.time for t in tracks])
    pos_unc = np.zeros_like(lat)
    if mode == "estimated":
        from seaice_jax.drift.motion import move_tracks
        t64 = (time * 1e6).astype("int64").astype("datetime64[us]")
        lat, lon, pos_unc = move_tracks(lat, lon, t64, fields, np.datetime64(int(target * 1e6), "us"))
    elif mode == "true":
        lat, lon = true_flow(lat, lon, time, target)
    out, i = [], 0
    for t in tracks:
        n = len(t)
        sl = slice(i, i + n)
        i += n
        unc = np.sqrt(np.asarray(t.uncertainty, np.float64) ** 2 + (FREEBOARD_PER_POSITION * pos_unc[sl]) ** 2)
        attrs = dict(t.attrs, original_time=t.time.copy(), position_uncertainty_m=pos_unc[sl].astype(np.float32),
                     drift_compensation=mode)
        out.append(dataclasses.replace(t, time=np.full(n, target), latitude=lat[sl], longitude=lon[sl],
                                       uncertainty=unc, attrs=attrs))
    return out


def tracks_within(tracks, scene_time, gap_days: float, tolerance_days: float = 0.5) -> list:
    """The points of `tracks` measured gap_days +- tolerance_days before or after scene_time."""
    t0 = to_unix_seconds(scene_time)
    out = []
    for t in tracks:
        d = np.abs(t.time - t0) / DAY_S
        sel = np.abs(d - gap_days) <= tolerance_days
        if gap_days - tolerance_days < 0:
            sel |= d <= tolerance_days
        if sel.any():
            out.append(t.select(sel))
    return out


def evaluate_compensation(pred_dir: str, scene_paths, track_paths, modes=MODES, *, drift_paths=None,
                          drift_method: str = "pattern_matching", true_flow=None,
                          kind: str = "laser", gaps=GAP_DAYS, methods=DEFAULT_METHODS, seed: int = 0,
                          progress=None) -> dict:
    """{mode: {"rmse_80m", "rmse_400m", "method", "methods": {m: {...}}, "by_gap_days": {g: {...}}}}."""
    from seaice_jax.data.scene import list_scene_files, open_scene
    from seaice_jax.elevation.data import read_altimetry
    from seaice_jax.elevation.evaluate import HH, HV, _read_pred, _read_truth, scene_methods

    modes = [modes] if isinstance(modes, str) else list(modes)
    files = list_scene_files(list(scene_paths))
    tracks = read_altimetry(track_paths).of_kind(kind)
    fields = read_drift_fields(drift_paths, drift_method) if "estimated" in modes else None
    keys = ["all"] + [str(g) for g in gaps]
    sums = {mode: {k: {} for k in keys} for mode in modes}
    points = {mode: {k: 0 for k in keys} for mode in modes}
    for si, path in enumerate(files):
        scene = open_scene(path, channels=(HH, HV), require_charts=False)
        truth = _read_truth(path, kind)
        if truth is None:
            raise ValueError(f"{path}: no freeboard truth (drift compensation is evaluated on synthetic scenes)")
        pred = _read_pred(pred_dir, scene.name) if pred_dir else None
        fits = {m: f for m, f in scene_methods(scene, pred, seed=seed + si, methods=methods).items()}
        mask = scene.valid & np.isfinite(truth)
        by_gap = {str(g): tracks_within(tracks, scene.start_time, g) for g in gaps}
        by_gap["all"] = tracks_within(tracks, scene.start_time, max(gaps) / 2.0, max(gaps) / 2.0 + 0.5)
        for mode in modes:
            for key in keys:
                moved = compensate_tracks(by_gap[key], scene.start_time, mode, fields=fields, true_flow=true_flow)
                colloc = collocate(scene, moved, None, max_pixels=8)
                points[mode][key] += len(colloc)
                if len(colloc) < 3:
                    continue
                for m, fit in fits.items():
                    if progress:
                        progress(f"{scene.name}: {mode} {key} {m}")
                    got = am.grid_error_sums(fit(colloc), truth, mask, resolutions=(80, 400))
                    acc = sums[mode][key].setdefault(m, {})
                    for res, es in got.items():
                        acc[res] = acc.get(res, am.ErrorSums()).merge(es)
    out = {}
    for mode in modes:
        def row(key, mode=mode):
            ms = {m: {"rmse_80m": v["80m"].stats()["rmse"] if "80m" in v else None,
                      "rmse_400m": v["400m"].stats()["rmse"] if "400m" in v else None}
                  for m, v in sums[mode][key].items()}
            return ms
        all_rows = row("all")
        head = next((m for m in HEADLINE if m in all_rows), None)
        entry = {"rmse_80m": all_rows[head]["rmse_80m"] if head else None,
                 "rmse_400m": all_rows[head]["rmse_400m"] if head else None,
                 "method": head, "points": points[mode]["all"], "methods": all_rows, "by_gap_days": {}}
        for g in gaps:
            r = row(str(g))
            entry["by_gap_days"][str(g)] = {"rmse_80m": r.get(head, {}).get("rmse_80m"),
                                            "rmse_400m": r.get(head, {}).get("rmse_400m"),
                                            "points": points[mode][str(g)], "methods": r}
        out[mode] = entry
    return out


def _cm(x):
    return "—" if x is None else f"{100 * x:.1f}"


def compensation_table(by_compensation: dict) -> str:
    """Markdown: headline-method RMSE (cm) at 80 / 400 m per compensation, all tracks and per gap."""
    modes = list(by_compensation)
    gaps = list(next(iter(by_compensation.values()))["by_gap_days"]) if modes else []
    head = next((e["method"] for e in by_compensation.values() if e.get("method")), "?")
    cols = [f"all (±{gaps[-1]} d)" if gaps else "all"] + [f"{g} d" for g in gaps]
    lines = [f"Freeboard RMSE vs truth ({head}), cm, 80 m / 400 m, tracks from the days around the SAR time:", "",
             "| drift compensation | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for mode, e in by_compensation.items():
        cells = [f"{_cm(e['rmse_80m'])} / {_cm(e['rmse_400m'])}"]
        cells += [f"{_cm(e['by_gap_days'][g]['rmse_80m'])} / {_cm(e['by_gap_days'][g]['rmse_400m'])}" for g in gaps]
        lines.append(f"| {mode} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_compensation(by_compensation: dict, path: str) -> str:
    """RMSE (400 m solid, 80 m dotted) against the tracks' time gap, one colour per compensation."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    head = "?"
    for i, (mode, e) in enumerate(by_compensation.items()):
        head = e.get("method") or head
        gaps = [int(g) for g in e["by_gap_days"]]
        for res, style in (("rmse_400m", "-o"), ("rmse_80m", ":x")):
            ys = [e["by_gap_days"][str(g)][res] for g in gaps]
            ax.plot(gaps, [np.nan if y is None else 100 * y for y in ys], style, color=f"C{i}",
                    label=f"{mode} drift compensation, {res[5:]}")
    ax.set_xlabel("time gap between tracks and SAR (days)")
    ax.set_ylabel(f"freeboard RMSE vs truth (cm), {head}")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
