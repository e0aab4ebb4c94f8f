"""Refining every scene of a time series with its neighbours (seaice_jax.drift.temporal), writing the refined
predictions, the agreement / accuracy JSON and optional figures. Used by launch/refine_maps.py.

For each target scene, every other scene within `max_gap_days` whose warped map covers at least
MIN_COVERAGE of it is a neighbour. Agreement is measured under every warp that is available (none;
estimated with drift files; true with a synthetic sequence), the fusion uses the chosen one. With a
pixel truth (synthetic scenes), the target's own map and every fusion are scored against it
(`truth`: pixel accuracy, lead / ice IoU and F1 as in launch/evaluate.py), and `gain` is the chosen
fusion minus the target's own map.
"""

from __future__ import annotations

import math
import os

import numpy as np

from seaice_jax.data.channels import CHART_FILL
from seaice_jax.drift import temporal as tm
from seaice_jax.metrics import TopologyAccumulator, ice_pack_mask

MIN_COVERAGE = 0.01
GAIN_KEYS = ("pixel_accuracy", "lead_iou", "ice_iou")
EXTRA_VARIABLES = {
    "acquisitions": {"units": "1", "long_name": "number of acquisitions fused at this pixel (the scene included)"},
    "temporal_agreement": {"units": "1", "long_name": "weighted fraction of the warped neighbouring acquisitions "
                                                      "whose ice / water label agrees with this scene's own map"},
}


def _available_warps(warp: str, fields, true_flow) -> list[str]:
    modes = ["none"]
    if fields:
        modes.append("estimated")
    if true_flow is not None:
        modes.append("true")
    if warp not in modes:
        modes.append(warp)  # tm.motion names what is missing
    return modes


def _round(d):
    if isinstance(d, dict):
        return {k: _round(v) for k, v in d.items()}
    return round(d, 6) if isinstance(d, float) else d


def refine_scenes(scene_paths, pred_dir: str, out_dir: str, *, warp: str = "estimated", drift_paths=None,
                  drift_method: str = "pattern_matching", true_flow=None,
                  fusion: str = "vote", decay_days: float = 2.0, max_gap_days: float = 3.0,
                  step: int = 16, png: bool = False, progress=None) -> dict:
    """Refines every scene (module doc); writes `<out_dir>/<scene>_pred.nc` (and `_temporal.png`).
    `true_flow`: the exact motion of a synthetic sequence (`drift.motion.PointFlow`; enables the warp
    'true'). Returns the JSON document."""
    from seaice_jax.data.scene import list_scene_files
    from seaice_jax.drift.io import read_drift_fields
    from seaice_jax.inference.products import PRED_SUFFIX, write_prediction

    if fusion not in tm.FUSIONS:
        raise ValueError(f"fusion must be one of {tm.FUSIONS}, got {fusion!r}")
    files = list_scene_files(list(scene_paths))
    if len(files) < 2:
        raise ValueError(f"refining needs at least two scenes of the same area, got {len(files)}")
    if os.path.realpath(out_dir) == os.path.realpath(pred_dir):
        raise ValueError(f"{out_dir}: the output folder is the --pred folder; the refined maps would replace "
                         "the predictions they are made from")
    fields = read_drift_fields(drift_paths, drift_method) if drift_paths else None
    modes = _available_warps(warp, fields, true_flow)
    tm.motion(warp, 0.0, 1.0, fields=fields, true_flow=true_flow)  # fails early when the warp cannot be made
    acqs = sorted((tm.load_acquisition(p, pred_dir) for p in files), key=lambda a: a.time_s)
    names = [a.name for a in acqs]
    if len(set(names)) != len(names):
        raise ValueError("a scene is listed twice: " + ", ".join(sorted({n for n in names if names.count(n) > 1})))

    agreement = {m: tm.Agreement() for m in modes}
    truth_agreement = {m: tm.Agreement() for m in modes}
    truth = {k: TopologyAccumulator() for k in ("single",) + tm.FUSIONS}
    has_truth = False
    scenes, written = {}, []
    os.makedirs(out_dir, exist_ok=True)
    for target in acqs:
        entry = {"time": str(np.datetime64(target.scene.start_time, "s")), "neighbours": {}}
        pack = tm.pack_mask(target.scene)
        used, weights = [], []
        for nb in acqs:
            gap = (nb.time_s - target.time_s) / tm.DAY_S
            if nb is target or abs(gap) > max_gap_days:
                continue
            if progress:
                progress(f"{target.name}: warping {nb.name} ({gap:+.2f} days)")
            per_mode, truth_mode, chosen = {}, {}, None
            for mode in modes:
                wp = tm.warp_onto(target, nb, mode, fields=fields, true_flow=true_flow, step=step)
                if mode == warp:
                    chosen = wp
                a = tm.Agreement()
                a.add(target.binary, wp.binary, wp.covered, pack)
                per_mode[mode] = a.scores()
                if wp.truth is not None and target.scene.ice_truth is not None:
                    ta = tm.Agreement()
                    ta.add(target.scene.ice_truth, wp.truth, wp.covered & (target.scene.ice_truth != CHART_FILL), pack)
                    truth_mode[mode] = ta.scores()
                    truth_agreement[mode].merge(ta)
                agreement[mode].merge(a)
            coverage = float(chosen.covered.sum() / max(target.valid.sum(), 1))
            nb_entry = {"gap_days": gap, "coverage": coverage, "agreement": per_mode}
            if truth_mode:
                nb_entry["truth_agreement"] = truth_mode
            if coverage >= MIN_COVERAGE:
                used.append(chosen)
                weights.append(tm.neighbour_weight(gap, decay_days))
                nb_entry["weight"] = weights[-1]
            else:
                nb_entry["weight"] = 0.0
            entry["neighbours"][nb.name] = nb_entry
        results = {m: tm.fuse(target, used, weights, m) for m in tm.FUSIONS}
        out = results[fusion]
        entry["covered_fraction"] = float(((out.count > 1) & target.valid).sum() / max(target.valid.sum(), 1))
        if target.scene.ice_truth is not None:
            has_truth = True
            mask = target.valid & (target.scene.ice_truth != CHART_FILL)
            chart_pack = ice_pack_mask(target.scene.region_ids, target.scene.region_conc)
            scene_truth = {}
            for key, binary in (("single", target.binary), *((m, r.binary) for m, r in results.items())):
                acc = TopologyAccumulator()
                acc.add(binary, target.scene.ice_truth, mask, chart_pack)
                truth[key].merge(acc)
                scene_truth[key] = acc.scores()
            entry["truth"] = scene_truth
        path = os.path.join(out_dir, target.name + PRED_SUFFIX)
        extra = {"acquisitions": (out.count, EXTRA_VARIABLES["acquisitions"]),
                 "temporal_agreement": (out.agreement, EXTRA_VARIABLES["temporal_agreement"])}
        attrs = {"temporal_warp": warp, "temporal_fusion": fusion, "temporal_decay_days": float(decay_days),
                 "temporal_neighbours": " ".join(n for n, e in entry["neighbours"].items() if e["weight"] > 0),
                 "title": f"seaice-jax sea-ice prediction for {target.name}, refined with its neighbours"}
        written.append(write_prediction(path, target.scene, {"ice_logit": out.logit, **target.charts}, out.maps,
                                        step=target.checkpoint_step, attrs=attrs, extra=extra))
        if png:
            written.append(write_figure(os.path.join(out_dir, target.name + "_temporal.png"), target, out))
        entry["written"] = path
        scenes[target.name] = entry
        if progress:
            progress(f"{target.name}: {len(used)} neighbour(s) fused ({fusion}), written {path}")

    doc = {"warp": warp, "fusion": fusion, "decay_days": decay_days, "max_gap_days": max_gap_days,
           "drift_method": drift_method if fields else None,
           "agreement": {m: a.scores() for m, a in agreement.items()}}
    if has_truth:
        doc["truth_agreement"] = {m: a.scores() for m, a in truth_agreement.items()}
        doc["truth"] = {k: a.scores() for k, a in truth.items()}
        doc["gain"] = {k: (None if doc["truth"][fusion][k] is None or doc["truth"]["single"][k] is None
                           else doc["truth"][fusion][k] - doc["truth"]["single"][k]) for k in GAIN_KEYS}
    doc["scenes"] = scenes
    doc["written"] = written
    return _round(doc)


def summary_table(doc: dict) -> str:
    """Markdown: agreement per warp, and (with truth) the target's own map against the fusions."""

    def f(v, d=3):
        return "n/a" if v is None else f"{v:.{d}f}"

    lines = ["| warp | pixel agreement | kappa | lead IoU | truth agreement |", "|---|---|---|---|---|"]
    for mode, s in doc["agreement"].items():
        t = doc.get("truth_agreement", {}).get(mode, {}).get("pixel_agreement")
        lines.append(f"| {mode} | {f(s['pixel_agreement'])} | {f(s['kappa'])} | {f(s['lead_iou'])} | {f(t)} |")
    if "truth" in doc:
        lines += ["", "| map | pixel accuracy | lead IoU | ice IoU |", "|---|---|---|---|"]
        for key, s in doc["truth"].items():
            lines.append(f"| {key} | {f(s['pixel_accuracy'], 4)} | {f(s['lead_iou'])} | {f(s['ice_iou'], 4)} |")
    return "\n".join(lines)


def write_figure(path: str, target: tm.Acquisition, fused: tm.Fused, max_pixels: int = 800) -> str:
    """PNG: HH, the scene's own map, the refined map, the neighbours' agreement (colour bar), truth."""
    from seaice_jax.inference.products import _categorical, surface_masks, write_panels

    scene = target.scene
    s = max(1, math.ceil(max(scene.shape) / max_pixels))
    valid = target.valid[::s, ::s]
    land = surface_masks(scene)[0][::s, ::s]
    panels = [("HH (standard-scaled)", "hh", np.where(valid, scene.channels[tm.HH][::s, ::s], np.nan)),
              ("own map (concentration-preserving)", "classes", _categorical(target.binary[::s, ::s], valid, land)),
              ("refined with neighbours", "classes", _categorical(fused.binary[::s, ::s], valid, land)),
              ("neighbours agreeing (grey: none covers)", ("magma", "fraction of neighbours agreeing"),
               fused.agreement[::s, ::s])]
    if scene.ice_truth is not None:
        t = scene.ice_truth[::s, ::s]
        panels.append(("truth", "classes", _categorical(t == 1, valid & (t != CHART_FILL), land)))
    return write_panels(path, panels, land, scene.name)
