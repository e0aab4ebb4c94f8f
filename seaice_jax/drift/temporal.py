"""Floe / lead maps that agree over time: a scene's prediction refined with the neighbouring
acquisitions warped onto it along the ice drift (issue 13).

Warping (`warp_onto`). Every `step`-th pixel of the target scene is geolocated (its tie points),
moved from the target's time to the neighbour's time, and located in the neighbour's pixel grid (the
exact inverse geolocation); between those pixels the map is bilinear (it is smooth), and the
neighbour's logit and binary map are sampled through it, bilinearly, on device
(`drift_images.resample_to_a`). The motion (`WARPS`):
  none       not moved: geolocation only (what using the neighbour as it is would do)
  estimated  drift files (launch/drift.py), velocity piecewise in time over the pairs
             (`motion.move_tracks`, the same motion the altimeter tracks get)
  true       the synthetic sequence's flow (`synthesize.py --sequence`; the ceiling)
A target pixel whose source falls outside the neighbour or next to its land / no data is not covered.

Agreement (`Agreement`), pooled exactly by counts over the pixels both acquisitions see:
  pixel_agreement          fraction of equal ice / water labels
  kappa                    Cohen's kappa: agreement beyond what the two ice fractions give by chance
  lead_iou                 water in both / water in either, inside the target chart's ice pack
                           (all covered pixels when the target has no chart)
  ice_fraction_difference  neighbour's ice fraction minus the target's, same pixels
The same numbers between the warped neighbour's and the target's *truth* (synthetic scenes) say how
much of the disagreement is the ice itself changing (leads opening and closing) rather than the model.

Fusion (`fuse`, `FUSIONS`); the target weighs 1, a neighbour exp(-|gap| / decay_days), each only on
the pixels it covers:
  mean_als    weighted mean of the ALS-scaled logits ((logit - b) / T with each acquisition's own ALS
              b and T, so a scene whose logits run larger does not outweigh the others), then ALS and
              the concentration-preserving binarization on the target's chart regions, exactly as
              inference does (inference.binarize.binary_maps): every chart region still holds its
              chart concentration. The written ice_logit is that fused, scaled logit.
  mean_logit  the same with the raw logits
  vote        weighted majority of the concentration-preserving maps (a tie keeps the target's label);
              ice_logit, ALS and the probability stay the target's own
Per-pixel outputs beside the maps: how many acquisitions were fused, and the weighted fraction of the
neighbours whose label agrees with the target's own map.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

import numpy as np

from seaice_jax.data.channels import CHART_FILL
from seaice_jax.metrics import TopologyAccumulator, ice_pack_mask

WARPS = ("none", "estimated", "true")
FUSIONS = ("mean_als", "mean_logit", "vote")
DAY_S = 86400.0
HH = "nersc_sar_primary"


@dataclasses.dataclass
class Acquisition:
    """One predicted scene: the scene (HH, charts, validity, geolocation, time) and its prediction."""

    scene: object  # data.scene_types.Scene
    logit: np.ndarray  # float32 [H, W]
    binary: np.ndarray  # bool [H, W], the concentration-preserving map
    valid: np.ndarray  # bool [H, W]: scene valid and predicted
    charts: dict  # chart head classes uint8 [H, W] (SIC / SOD / FLOE), as the prediction file has them
    checkpoint_step: int
    als: tuple[float, float] = (0.0, 1.0)  # the scene's ALS (b, T): (logit - b) / T is its scaled logit

    def scaled_logit(self) -> np.ndarray:
        b, t = self.als
        return ((self.logit - np.float32(b)) / np.float32(t)).astype(np.float32)

    @property
    def name(self) -> str:
        return self.scene.name

    @property
    def time_s(self) -> float:
        return float(np.datetime64(self.scene.start_time, "us").astype(np.int64)) / 1e6


def load_acquisition(scene_path: str, pred_dir: str) -> Acquisition:
    """The scene at `scene_path` with `<pred_dir>/<scene>_pred.nc`. ValueError (one line, naming the
    file) when the scene has no geolocation or time, or the prediction does not fit."""
    import xarray as xr

    from seaice_jax.data.scene import open_scene
    from seaice_jax.evaluation import load_prediction, prediction_path

    scene = open_scene(scene_path, channels=(HH,), require_charts=False)
    if scene.tie_points is None:
        raise ValueError(f"{scene_path}: no tie points: the scene cannot be warped")
    if scene.start_time is None:
        raise ValueError(f"{scene_path}: no acquisition time in its name or attributes")
    path = prediction_path(pred_dir, scene.name)
    pred = load_prediction(path, scene.shape, scene.name)
    with xr.open_dataset(path, decode_times=False) as ds:
        step = int(ds.attrs.get("checkpoint_step", 0))
        b, t = float(ds.attrs.get("als_b", np.nan)), float(ds.attrs.get("als_T", np.nan))
    valid = scene.valid & np.isfinite(pred.ice_logit) & (pred.ice_binary_conc != CHART_FILL)
    if not (np.isfinite(b) and np.isfinite(t) and t > 0):  # an older file without them: recompute
        from seaice_jax.scaling import analytical_logit_scaling

        als = analytical_logit_scaling(pred.ice_logit, valid)
        b, t = float(als.b), float(als.T)
    return Acquisition(scene, pred.ice_logit, pred.ice_binary_conc == 1, valid, pred.charts, step, (b, t))


# --------------------------------------------------------------------------------------------
# Warping
# --------------------------------------------------------------------------------------------

def motion(mode: str, t_from: float, t_to: float, *, fields=None, true_flow=None) -> Callable | None:
    """move(lat, lon) -> (lat, lon): where ice seen at unix time t_from is at t_to (None for 'none')."""
    if mode not in WARPS:
        raise ValueError(f"warp must be one of {WARPS}, got {mode!r}")
    if mode == "none":
        return None
    if mode == "estimated":
        if not fields:
            raise ValueError("warp 'estimated' needs drift files (--drift)")
        from seaice_jax.drift.motion import move_tracks

        start = np.datetime64(int(round(t_from * 1e6)), "us")
        end = np.datetime64(int(round(t_to * 1e6)), "us")
        return lambda lat, lon: move_tracks(lat, lon, start, fields, end)[:2]
    if true_flow is None:
        raise ValueError("warp 'true' needs the synthetic sequence truth (synthesize.py --sequence)")
    return lambda lat, lon: true_flow(lat, lon, t_from, t_to)


@dataclasses.dataclass
class Warped:
    """A neighbour on the target's grid, arrays [H, W]."""

    logit: np.ndarray  # float32 (0 where not covered)
    binary: np.ndarray  # bool
    covered: np.ndarray  # bool
    truth: np.ndarray | None  # uint8 neighbour's ice truth (255 where not covered), synthetic scenes
    als: tuple[float, float] = (0.0, 1.0)  # the neighbour's ALS (b, T)

    def scaled_logit(self) -> np.ndarray:
        """The neighbour's ALS-scaled logit (affine, so it commutes with the bilinear warp); 0 off cover."""
        b, t = self.als
        return np.where(self.covered, (self.logit - np.float32(b)) / np.float32(t), 0.0).astype(np.float32)


def warp_onto(target: Acquisition, neighbour: Acquisition, mode: str, *, fields=None, true_flow=None,
              step: int = 16) -> Warped:
    """The neighbour's logit, binary map (and truth) moved onto the target's pixels (module doc)."""
    from seaice_jax.drift.images import resample_to_a

    move = motion(mode, target.time_s, neighbour.time_s, fields=fields, true_flow=true_flow)
    shape = target.scene.shape
    tie_n, tie_t = neighbour.scene.tie_points, target.scene.tie_points

    def sample(values, valid):
        out, ok = resample_to_a(np.asarray(values, np.float32), valid, tie_n, tie_t, shape, step, move)
        return np.asarray(out), np.asarray(ok)

    logit, ok = sample(neighbour.logit, neighbour.valid)
    binary, _ = sample(neighbour.binary, neighbour.valid)
    covered = ok & target.valid
    truth = None
    if neighbour.scene.ice_truth is not None:
        t = neighbour.scene.ice_truth
        ice, ok_t = sample(t == 1, neighbour.valid & (t != CHART_FILL))
        truth = np.where(ok_t & covered, (ice >= 0.5).astype(np.uint8), np.uint8(CHART_FILL))
    return Warped(np.where(covered, logit, 0.0).astype(np.float32), covered & (binary >= 0.5), covered, truth,
                  neighbour.als)


# --------------------------------------------------------------------------------------------
# Agreement
# --------------------------------------------------------------------------------------------

def pack_mask(scene) -> np.ndarray:
    """Inside the chart's ice pack (concentration >= 15 %); everywhere when the scene has no chart."""
    if len(scene.region_conc) and (scene.region_ids >= 0).any():
        return ice_pack_mask(scene.region_ids, scene.region_conc)
    return np.ones(scene.shape, bool)


class Agreement:
    """Agreement between pairs of binary maps on shared pixels, pooled by counts (module doc)."""

    def __init__(self) -> None:
        self._acc = TopologyAccumulator()

    def add(self, reference: np.ndarray, other: np.ndarray, shared: np.ndarray, pack: np.ndarray) -> None:
        """reference, other: bool [H, W] ice labels (or uint8 with 255 = none); shared, pack: bool."""
        ref = np.asarray(reference)
        ref = ref if ref.dtype == np.uint8 else ref.astype(np.uint8)
        self._acc.add(np.asarray(other) == 1, ref, shared, pack)

    def merge(self, other: Agreement) -> None:
        self._acc.merge(other._acc)

    def scores(self) -> dict:
        cm = self._acc.all_confusion.astype(np.float64)  # [reference, other]
        n = cm.sum()
        if n == 0:
            return {"pixel_agreement": None, "kappa": None, "lead_iou": None, "ice_fraction_difference": None,
                    "pixels": 0}
        observed = np.trace(cm) / n
        p_ref, p_other = cm[1].sum() / n, cm[:, 1].sum() / n
        chance = p_ref * p_other + (1 - p_ref) * (1 - p_other)
        kappa = None if chance >= 1.0 else float((observed - chance) / (1.0 - chance))
        return {"pixel_agreement": float(observed), "kappa": kappa, "lead_iou": self._acc.scores()["lead_iou"],
                "ice_fraction_difference": float(p_other - p_ref), "pixels": int(n)}


# --------------------------------------------------------------------------------------------
# Fusion
# --------------------------------------------------------------------------------------------

def neighbour_weight(gap_days: float, decay_days: float) -> float:
    """exp(-|gap| / decay_days); decay_days <= 0 or inf: every neighbour weighs 1."""
    if not decay_days or math.isinf(decay_days) or decay_days <= 0:
        return 1.0
    return math.exp(-abs(gap_days) / decay_days)


@dataclasses.dataclass
class Fused:
    """One fused map of the target, arrays [H, W]."""

    logit: np.ndarray  # float32: the fused logit (vote: the target's own)
    binary: np.ndarray  # bool
    maps: object  # inference.binarize.BinaryMaps of the written prediction
    count: np.ndarray  # uint8 acquisitions fused at each pixel (the target included)
    agreement: np.ndarray  # float32 weighted fraction of covering neighbours agreeing with the target (NaN: none)


def fuse(target: Acquisition, warped: Sequence[Warped], weights: Sequence[float], method: str) -> Fused:
    """The target's map fused with its warped neighbours (module doc)."""
    from seaice_jax.inference.binarize import binary_maps

    if method not in FUSIONS:
        raise ValueError(f"fusion must be one of {FUSIONS}, got {method!r}")
    scaled = method == "mean_als"
    w_sum = np.ones(target.scene.shape, np.float32)
    logit_sum = (target.scaled_logit() if scaled else target.logit.astype(np.float32)).copy()
    ice_vote = target.binary.astype(np.float32)
    agree = np.zeros(target.scene.shape, np.float32)
    n_weight = np.zeros(target.scene.shape, np.float32)
    count = np.ones(target.scene.shape, np.uint8)
    for wp, w in zip(warped, weights, strict=True):
        w = np.float32(w) * wp.covered
        w_sum += w
        logit_sum += w * (wp.scaled_logit() if scaled else wp.logit)
        ice_vote += w * wp.binary
        agree += w * (wp.binary == target.binary)
        n_weight += w
        count += wp.covered.astype(np.uint8)
    with np.errstate(invalid="ignore", divide="ignore"):
        agreement = np.where(n_weight > 0, agree / n_weight, np.nan).astype(np.float32)
    if method in ("mean_als", "mean_logit"):
        logit = logit_sum / w_sum
        maps = binary_maps(target.scene, {"ice_logit": logit, **target.charts})
        binary = maps.binary_conc
    else:
        logit = target.logit
        half = w_sum / 2
        binary = np.where(ice_vote > half, True, np.where(ice_vote < half, False, target.binary))
        maps = binary_maps(target.scene, {"ice_logit": logit, **target.charts})
        maps = dataclasses.replace(maps, binary_conc=binary & target.valid)
    binary = binary & target.valid
    return Fused(logit.astype(np.float32), binary, maps, np.where(target.valid, count, 0).astype(np.uint8),
                 np.where(target.valid, agreement, np.nan).astype(np.float32))
