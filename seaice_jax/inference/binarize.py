"""Binary ice maps of one predicted scene: ALS and the concentration-preserving map with its ties trimmed.

The kernels are in `seaice_jax.scaling`; this module picks the regions and their targets (the chart's,
or cells aiming at the model's own estimate on an unlabelled scene) and makes every region hold
exactly its ice count (`trim_threshold_ties`).
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np

from seaice_jax import scaling
from seaice_jax.data.channels import PIXELS_PER_2KM

CONC_CELL_2KM = 10  # no chart: conc regions are cells of 10 x 10 2 km cells (20 km, ice-chart polygon scale)


@dataclasses.dataclass
class BinaryMaps:
    """ALS and concentration-preserving maps of one scene (arrays [H, W])."""

    probability: np.ndarray  # float32 ALS soft map, NaN on invalid pixels
    binary_als: np.ndarray  # bool
    binary_conc: np.ndarray  # bool
    als_params: dict[str, float]  # z2, z98, b, T
    conc_source: str  # where the conc targets came from: chart | model_sic | model_probability


def _bucket(n: int) -> int:
    """Next power of two >= max(n, 1): one compiled binarization per bucket, not per scene."""
    return 1 << max(0, (max(n, 1) - 1).bit_length())


def cell_regions(shape: tuple[int, int], cell: int, valid: np.ndarray) -> tuple[np.ndarray, int]:
    """Regions = a grid of cell x cell pixel blocks; -1 on invalid pixels. (int32 [H, W], count)."""
    h, w = shape
    rows, cols = np.arange(h) // cell, np.arange(w) // cell
    ncols = int(cols[-1]) + 1
    ids = (rows[:, None] * ncols + cols[None, :]).astype(np.int32)
    return np.where(valid, ids, -1).astype(np.int32), int(rows[-1] + 1) * ncols


def region_means(values: np.ndarray, region_ids: np.ndarray, num_regions: int) -> np.ndarray:
    """float32 [R] mean of `values` over each region's pixels (NaN for an empty region)."""
    inside = region_ids >= 0
    sums = np.bincount(region_ids[inside], weights=values[inside].astype(np.float64), minlength=num_regions)
    counts = np.bincount(region_ids[inside], minlength=num_regions)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan).astype(np.float32)


def conc_targets(scene, pred: dict) -> tuple[np.ndarray, np.ndarray, str]:
    """(region_ids int32 [H, W], targets float32 [R], source) for the concentration-preserving map.

    With a chart: the chart's regions and concentrations. Without (an unlabelled scene): cells of
    CONC_CELL_2KM x CONC_CELL_2KM 2 km cells, each aiming at the model's own estimate: the mean SIC
    class / 10 of the SIC head over the cell, or (no SIC head) NaN, which makes the binarization
    use the cell's mean sigmoid probability, the quantity the region loss trained.
    """
    if len(scene.region_conc) and (scene.region_ids >= 0).any():
        return scene.region_ids, np.asarray(scene.region_conc, np.float32), "chart"
    cell = CONC_CELL_2KM * PIXELS_PER_2KM[scene.product]
    region_ids, count = cell_regions(scene.shape, cell, scene.valid)
    if "SIC" in pred:
        return region_ids, region_means(pred["SIC"] / np.float32(10), region_ids, count), "model_sic"
    return region_ids, np.full(count, np.nan, np.float32), "model_probability"


def region_ice_counts(logits: np.ndarray, region_ids: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """int64 [R] ice pixels per region as scaling.concentration_preserving_binarization aims:
    round(c_r n_r) in float32, c_r = target, or the region's mean sigmoid where the target is NaN."""
    inside = region_ids >= 0
    ids = region_ids[inside]
    sizes = np.bincount(ids, minlength=len(targets))
    with np.errstate(over="ignore"):
        probability = 1.0 / (1.0 + np.exp(-logits[inside].astype(np.float64)))
    mean_probability = np.bincount(ids, weights=probability, minlength=len(targets)) / np.maximum(sizes, 1)
    conc = np.clip(np.where(np.isnan(targets), mean_probability, targets), 0, 1).astype(np.float32)
    return np.clip(np.round(conc * sizes.astype(np.float32)).astype(np.int64), 0, sizes)


def trim_threshold_ties(ice: np.ndarray, logits: np.ndarray, secondary: np.ndarray, region_ids: np.ndarray,
                        ice_counts: np.ndarray) -> np.ndarray:
    """Turns tied threshold pixels back to water until each region holds exactly its ice count.

    The binarization makes every pixel tied with its region's threshold ice, and ReLU nets give
    exact ties (plateaus where all last features are 0: the logit is the head's bias). Among the
    tied pixels of a region, those with the lowest `secondary` (the blurred logit: the neighbourhood
    decides), then the lowest flat index, go back to water. ice, logits, secondary, region_ids: [H, W].
    Returns bool [H, W].
    """
    num_regions = len(ice_counts)
    inside = (region_ids >= 0) & ice
    ids = region_ids[inside]
    excess = np.bincount(ids, minlength=num_regions) - ice_counts
    if not (excess > 0).any():
        return ice
    threshold = np.full(num_regions, np.inf, np.float32)
    np.minimum.at(threshold, ids, logits[inside])  # smallest ice logit = the region's threshold
    safe_ids = np.maximum(region_ids, 0)
    tied = inside & (excess[safe_ids] > 0) & (logits == threshold[safe_ids])
    flat = np.flatnonzero(tied)
    tied_region = region_ids.ravel()[flat]
    order = np.lexsort((flat, secondary.ravel()[flat], tied_region))  # by region, secondary, index
    flat, tied_region = flat[order], tied_region[order]
    first = np.searchsorted(tied_region, tied_region, side="left")
    drop = flat[(np.arange(len(flat)) - first) < excess[tied_region]]
    out = ice.copy()
    out.ravel()[drop] = False
    return out


def binary_maps(scene, pred: dict) -> BinaryMaps:
    """ALS on the whole logit map and the concentration-preserving map (on device, ties fixed on host)."""
    logits = jnp.asarray(pred["ice_logit"])
    valid = jnp.asarray(scene.valid)
    als = scaling.analytical_logit_scaling(logits, valid)
    params = {"z2": float(als.z_low), "z98": float(als.z_high), "b": float(als.b), "T": float(als.T)}
    probability, binary_als = np.asarray(als.soft, np.float32), np.asarray(als.binary)
    del als
    region_ids, targets, source = conc_targets(scene, pred)
    num_regions = _bucket(len(targets))  # unused slots hold no pixel
    padded = np.full(num_regions, np.nan, np.float32)
    padded[: len(targets)] = targets
    conc = np.asarray(scaling.concentration_preserving_binarization(
        logits, jnp.asarray(region_ids), jnp.asarray(padded), valid, num_regions=num_regions))
    counts = region_ice_counts(pred["ice_logit"], region_ids, targets)
    blurred = np.asarray(scaling.gaussian_blur(logits))
    conc = trim_threshold_ties(conc, pred["ice_logit"], blurred, region_ids, counts)
    return BinaryMaps(probability, binary_als, conc, params, source)
