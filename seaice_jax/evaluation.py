"""Evaluate whole-scene predictions: challenge scores and floe/lead map metrics per scene and pooled.

For each scene `<name>` the prediction is `<pred_dir>/<name>_pred.nc` on the scene's SAR grid
(dims `sar_lines`, `sar_samples`) with
  ice_logit          float32  per-pixel ice logit
  ice_probability    float32  (not scored here)
  ice_binary_als     uint8    1 ice, 0 water, 255 land / no data (ALS binarization)
  ice_binary_conc    uint8    same, concentration-preserving binarization
  SIC, SOD, FLOE     uint8    optional chart classes, 255 masked

Binary maps compared ('methods'): sigmoid = ice_logit >= 0; als = ice_binary_als == 1;
conc = ice_binary_conc == 1; otsu = HH >= Otsu threshold of the scene's HH (classical baseline).
All methods are scored on the same pixels: the scene's valid pixels where the prediction has a
finite logit and neither binary map is 255, so the methods stay comparable.

Results (a figure that cannot be computed is None, JSON null):
  {"pooled": {"challenge": {...}, "methods": {method: {...}}}, "scenes": {name: same shape}}
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Callable, Sequence

import numpy as np
import xarray as xr

from seaice_jax import fileio
from seaice_jax.data.channels import CHART_NAMES, SAR_DIMS
from seaice_jax.data.scene_types import Scene
from seaice_jax.metrics import (
    ChallengeAccumulator,
    PolygonAccumulator,
    TopologyAccumulator,
    ice_pack_mask,
    otsu_threshold,
)

METHODS = ("sigmoid", "als", "conc", "otsu")
CHALLENGE_KEYS = ("sic_r2", "sod_f1", "floe_f1", "combined")
METHOD_KEYS = ("polygon_mae", "polygon_acc10", "pixel_accuracy", "lead_iou", "lead_f1", "ice_iou", "ice_f1")
PRED_SUFFIX = "_pred.nc"
HH_CHANNEL = "nersc_sar_primary"
_REQUIRED_PRED_VARS = ("ice_logit", "ice_binary_als", "ice_binary_conc")
_FILL = 255


class PredictionError(ValueError):
    """A prediction file that is missing or unusable; the message names the file on one line."""


@dataclasses.dataclass
class Prediction:
    """One scene's prediction, arrays [H, W]; charts holds only the chart heads the file has."""

    path: str
    ice_logit: np.ndarray
    ice_binary_als: np.ndarray
    ice_binary_conc: np.ndarray
    charts: dict[str, np.ndarray]


def prediction_path(pred_dir: str, scene_name: str) -> str:
    return os.path.join(pred_dir, scene_name + PRED_SUFFIX)


def load_prediction(path: str, shape: tuple[int, int], scene_name: str | None = None) -> Prediction:
    """Reads `path`, checking variables, dims, that every array is [H, W] = `shape` and, given
    `scene_name`, that the file's `scene_name` attribute (files before it had none: not checked) names
    that scene. Reads CF files (uint8 maps with _FillValue 255, latitude / longitude coordinates) and
    older ones alike."""
    if not os.path.isfile(path):
        raise PredictionError(f"{path}: prediction file not found")
    try:
        # mask_and_scale=False keeps uint8 maps as uint8 (a _FillValue would turn them into float NaN).
        with xr.open_dataset(path, mask_and_scale=False) as ds:
            stored_name = ds.attrs.get("scene_name")
            if scene_name is not None and stored_name is not None and str(stored_name) != scene_name:
                raise PredictionError(f"{path}: prediction of scene {stored_name}, not of {scene_name}")
            missing = [v for v in _REQUIRED_PRED_VARS if v not in ds.variables]
            if missing:
                raise PredictionError(f"{path}: missing variable(s) {', '.join(missing)}")
            names = list(_REQUIRED_PRED_VARS) + [c for c in CHART_NAMES if c in ds.variables]
            arrays = {}
            for name in names:
                var = ds[name]
                if var.dims != SAR_DIMS or var.shape != tuple(shape):
                    raise PredictionError(
                        f"{path}: {name} has dims {var.dims} shape {var.shape}, scene grid is {SAR_DIMS} {tuple(shape)}"
                    )
                arrays[name] = np.asarray(var.values)
    except PredictionError:
        raise
    except (OSError, ValueError, KeyError) as e:
        raise PredictionError(f"{path}: unreadable prediction file ({type(e).__name__}: {e})") from None
    return Prediction(
        path=path,
        ice_logit=arrays["ice_logit"].astype(np.float32, copy=False),
        ice_binary_als=arrays["ice_binary_als"],
        ice_binary_conc=arrays["ice_binary_conc"],
        charts={c: arrays[c] for c in CHART_NAMES if c in arrays},
    )


def evaluation_mask(scene: Scene, pred: Prediction) -> np.ndarray:
    """bool [H, W]: pixels every method is scored on (see module docstring)."""
    return (
        scene.valid.astype(bool)
        & np.isfinite(pred.ice_logit)
        & (pred.ice_binary_als != _FILL)
        & (pred.ice_binary_conc != _FILL)
    )


def method_maps(scene: Scene, pred: Prediction, mask: np.ndarray) -> dict[str, np.ndarray]:
    """Binary ice maps (bool [H, W]) of the four methods."""
    if HH_CHANNEL not in scene.channels:
        raise PredictionError(f"{scene.path}: scene has no {HH_CHANNEL} channel for the Otsu baseline")
    hh = scene.channels[HH_CHANNEL]
    otsu = (hh >= otsu_threshold(hh, mask)) if mask.any() else np.zeros(mask.shape, bool)
    return {
        "sigmoid": pred.ice_logit >= 0,
        "als": pred.ice_binary_als == 1,
        "conc": pred.ice_binary_conc == 1,
        "otsu": otsu,
    }


class EvaluationAccumulator:
    """Challenge, polygon and topology accumulators for one scene or for the pool of scenes."""

    def __init__(self, min_region_pixels: int) -> None:
        self.challenge = ChallengeAccumulator()
        self.polygon = {m: PolygonAccumulator(min_region_pixels) for m in METHODS}
        self.topology = {m: TopologyAccumulator() for m in METHODS}

    def add_scene(self, scene: Scene, pred: Prediction) -> None:
        for chart, pred_classes in pred.charts.items():
            reference = {"SIC": scene.sic, "SOD": scene.sod, "FLOE": scene.floe}[chart]
            try:
                self.challenge.add(chart, reference, pred_classes)
            except ValueError as e:
                raise PredictionError(f"{pred.path}: {e}") from None
        mask = evaluation_mask(scene, pred)
        pack = ice_pack_mask(scene.region_ids, scene.region_conc)
        for method, binary in method_maps(scene, pred, mask).items():
            self.polygon[method].add(binary, scene.region_ids, scene.region_conc, mask)
            if scene.ice_truth is not None:
                self.topology[method].add(binary, scene.ice_truth, mask, pack)

    def merge(self, other: EvaluationAccumulator) -> None:
        self.challenge.merge(other.challenge)
        for m in METHODS:
            self.polygon[m].merge(other.polygon[m])
            self.topology[m].merge(other.topology[m])

    def results(self) -> dict:
        methods = {}
        for m in METHODS:
            scores = {**self.polygon[m].scores(), **self.topology[m].scores()}
            methods[m] = {k: scores[k] for k in METHOD_KEYS}
        return {"challenge": self.challenge.scores(), "methods": methods}


def _default_scene_loader() -> Callable[[str], Scene]:
    from seaice_jax.data.scene import open_scene  # lazy: the reader pulls in the file-format code

    # Only HH is scored (Otsu baseline); skipping the other channels spares upsampling 20 2 km grids.
    return functools.partial(open_scene, channels=(HH_CHANNEL,))


def evaluate_predictions(
    pred_dir: str,
    scene_paths: Sequence[str],
    *,
    min_region_pixels: int = 100,
    scene_loader: Callable[[str], Scene] | None = None,
) -> dict:
    """Scores `<pred_dir>/<scene name>_pred.nc` against each scene, per scene and pooled.

    scene_loader: path -> Scene (default `seaice_jax.data.scene.open_scene` reading HH only).
    Returns {"pooled": {"challenge", "methods"}, "scenes": {name: {"challenge", "methods"}}}.
    Raises PredictionError naming the file when a prediction is missing or does not fit its scene.
    """
    if not scene_paths:
        raise ValueError("no scenes to evaluate")
    loader = scene_loader if scene_loader is not None else _default_scene_loader()
    pooled = EvaluationAccumulator(min_region_pixels)
    per_scene: dict[str, dict] = {}
    for path in scene_paths:
        scene = loader(path)
        if scene.name in per_scene:
            raise ValueError(f"{path}: scene {scene.name} is listed twice")
        pred = load_prediction(prediction_path(pred_dir, scene.name), scene.shape, scene.name)
        acc = EvaluationAccumulator(min_region_pixels)
        acc.add_scene(scene, pred)
        per_scene[scene.name] = acc.results()
        pooled.merge(acc)
    return {"pooled": pooled.results(), "scenes": per_scene}


def _fmt(value: float | None, digits: int) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def format_markdown(results: dict) -> str:
    """Pooled methods side by side (rows methods, columns metrics) and the pooled challenge scores."""
    pooled = results["pooled"]
    lines = [
        f"Pooled over {len(results['scenes'])} scene(s).",
        "",
        "| method | " + " | ".join(METHOD_KEYS) + " |",
        "|---|" + "---:|" * len(METHOD_KEYS),
    ]
    for m in METHODS:
        row = pooled["methods"][m]
        lines.append(f"| {m} | " + " | ".join(_fmt(row[k], 3) for k in METHOD_KEYS) + " |")
    lines += [
        "",
        "| challenge | " + " | ".join(CHALLENGE_KEYS) + " |",
        "|---|" + "---:|" * len(CHALLENGE_KEYS),
        "| pooled | " + " | ".join(_fmt(pooled["challenge"][k], 2) for k in CHALLENGE_KEYS) + " |",
    ]
    return "\n".join(lines) + "\n"


def write_json(results: dict, path: str) -> None:
    """Writes `results` to `path` through a temporary file in the same folder and a rename."""
    fileio.write_json(path, results, indent=2, allow_nan=False)
