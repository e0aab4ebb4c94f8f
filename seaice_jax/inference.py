"""Whole-scene prediction: overlapping tiles blended into one map, written per scene.

Tiling (`predict_scene`). Tiles of one fixed shape go through one jitted function (a scene of any size
compiles once). A tile's outputs count only in its *core*, the tile minus a `margin` on every side,
weighted there by a sine-squared window; cores of neighbouring tiles overlap and blend. Pixels in the
margin get weight 0 because their receptive field is cut by the tile edge: with margin >= the model's
receptive radius, and tile origins on the model's pooling grid (multiples of 2^depth), every blended
pixel equals what one tile covering the whole scene would give, whatever the tiling (exactly for a
translation-equivariant model; the align-corners bilinear upsampling of the baseline U-Net is not
quite, see `tiled_vs_untiled` in the tests). The tile grid starts at -margin, so scene-border pixels
sit in a core too, with zero (= no-data) input beyond the scene.
A scene that one tile covers skips the blending: its tile is one forward pass whose class argmax runs
on the device (`single_tile_predictor`); only the finished maps come back to the host.
Memory: scene rows are read one tile-row band at a time ([tile, W, C]) and the blend is accumulated
in a rolling band of `core` rows ([core, W, K] float32); only the output maps are scene-sized.

Per scene (`predict_files`): the ice logit map, ALS (scaling.analytical_logit_scaling on the whole
logit map) and the concentration-preserving map (scaling.concentration_preserving_binarization),
written to `<out_dir>/<scene name>_pred.nc` on the scene's SAR grid; optional quick-look PNG and the
challenge submission file.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re

import jax
import jax.numpy as jnp
import numpy as np

from seaice_jax import fileio
from seaice_jax.data.channels import CHART_FILL, CHART_NAMES, PIXELS_PER_2KM, SAR_DIMS

PRED_SUFFIX = "_pred.nc"  # what evaluation.load_prediction reads
QUICKLOOK_SUFFIX = "_quicklook.png"
HH = "nersc_sar_primary"
CONC_CELL_2KM = 10  # no chart: conc regions are cells of 10 x 10 2 km cells (20 km, ice-chart polygon scale)
SUBMISSION_COMPRESSION = dict(zlib=True, complevel=1)  # the challenge's upload format


# ----------------------------------------------------------------------------------------------
# Tiling geometry


def tile_alignment(model_cfg) -> int:
    """Pooling period of the U-Net, 2^depth: tile origins and sizes must be multiples of it so every
    tile pools on the same grid as the whole scene would (depth = len(filters) max-pools)."""
    return 2 ** len(model_cfg.filters)


def receptive_radius(model_cfg) -> int:
    """Conservative receptive-field radius (pixels) of the U-Net built from `model_cfg`.

    A 3x3 conv (dilation d) at level l adds d * 2^l; a 2x2 max-pool from level l adds 2^l; a x2
    upsampling to level l adds 2^(l+1) (bilinear reads the coarse neighbour). The ASPP image-pool
    branch with a global mean (aspp_pool_window 0) sees the whole tile: no finite radius (-1).
    """
    depth = len(model_cfg.filters)
    convs = model_cfg.convs_per_block
    radius = sum(convs * 2**l + 2**l for l in range(depth))  # encoder blocks + pools
    radius += convs * 2**depth  # bridge
    if model_cfg.aspp_rates:
        if model_cfg.aspp_pool_window == 0:
            return -1
        radius += max(max(model_cfg.aspp_rates), model_cfg.aspp_pool_window // 2) * 2**depth
    radius += sum(2 ** (l + 1) + convs * 2**l for l in range(depth))  # upsampling + decoder blocks
    return radius


def default_margin(tile: int, stride: int, align: int = 1) -> int:
    """Margin with half the core overlap: (tile - stride) / 4, rounded down to the pooling period."""
    return (tile - stride) // 4 // align * align


def check_tiling(tile: int, stride: int, margin: int, align: int = 1) -> None:
    """ValueError unless tile, stride and margin are multiples of `align` and the cores cover the scene."""
    for name, value in (("tile", tile), ("stride", stride), ("margin", margin)):
        if value < 0 or value % align:
            raise ValueError(f"inference: {name}={value} must be a non-negative multiple of {align} (2^depth)")
    if stride < 1 or tile - 2 * margin < stride:
        raise ValueError(f"inference: tile {tile} - 2 x margin {margin} must be >= stride {stride} >= 1 "
                         "so that tile cores cover the scene")


def tile_origins(length: int, tile: int, stride: int, margin: int) -> list[int]:
    """Tile starts along one axis: -margin, -margin + stride, ... until the cores reach `length`."""
    core = tile - 2 * margin
    count = max(0, math.ceil((length - core) / stride)) + 1
    return [-margin + i * stride for i in range(count)]


def core_window(core: int) -> np.ndarray:
    """[core, core] sine-squared blending weights, > 0 everywhere (half-pixel offset)."""
    w = np.sin(np.pi * (np.arange(core) + 0.5) / core) ** 2
    return np.outer(w, w).astype(np.float32)


# ----------------------------------------------------------------------------------------------
# Tiled prediction


def head_layout(outputs: dict) -> list[tuple[str, int]]:
    """[(head name, channels)] in output order; 'ice' and regression heads have 1 channel."""
    return [(k, 1 if v.ndim == 3 else v.shape[-1]) for k, v in sorted(outputs.items())
            if not k.startswith("features/")]


def tile_predictor(fns, tile: int, margin: int, channels: int):
    """Jitted (params, batch_stats, tiles [B, T, T, C]) -> window-weighted core outputs [B, c, c, K].

    Only the core leaves the device (c = T - 2 margin): the margin's weight is 0 anyway.
    """
    cache = fns.__dict__.setdefault("_tile_predictors", {})  # one compile per model and geometry
    key = (tile, margin, channels)
    if key not in cache:
        core = tile - 2 * margin
        weights = jnp.asarray(core_window(core))

        def predict(params, batch_stats, x):
            out = fns.apply_eval(params, batch_stats, x)
            parts = [out[k][..., None] if out[k].ndim == 3 else out[k] for k, _ in head_layout(out)]
            stacked = jnp.concatenate(parts, axis=-1).astype(jnp.float32)
            return stacked[:, margin : margin + core, margin : margin + core] * weights[None, :, :, None]

        cache[key] = jax.jit(predict)
    return cache[key]


def _as_planes(inputs) -> list[np.ndarray]:
    """[H, W, C] array or a sequence of C [H, W] arrays -> list of C [H, W] views (no copy)."""
    if isinstance(inputs, np.ndarray) and inputs.ndim == 3:
        return [inputs[..., i] for i in range(inputs.shape[-1])]
    planes = [np.asarray(p) for p in inputs]
    if not planes or any(p.ndim != 2 or p.shape != planes[0].shape for p in planes):
        raise ValueError("inference: inputs must be [H, W, C] or a sequence of equal [H, W] channel maps")
    return planes


def _row_band(planes: list[np.ndarray], top: int, tile: int, left: int, width: int) -> np.ndarray:
    """float32 [tile, width, C]: scene rows top..top+tile, cols left..left+width; 0 outside the scene."""
    h, w = planes[0].shape
    band = np.zeros((tile, width, len(planes)), np.float32)
    r0, r1 = max(top, 0), min(top + tile, h)
    c0, c1 = max(left, 0), min(left + width, w)
    if r1 > r0 and c1 > c0:
        for i, plane in enumerate(planes):
            band[r0 - top : r1 - top, c0 - left : c1 - left, i] = plane[r0:r1, c0:c1]
    return band


def output_maps(stacked, layout, xp=np) -> dict:
    """Head outputs stacked on the last axis ([..., K], in `layout` order) -> the scene maps:
    'ice_logit' float32, and uint8 classes for the chart heads (argmax; a 1-channel SIC head is a
    regression of class / 10). `xp` is numpy on host or jax.numpy inside a jitted function."""
    maps, i = {}, 0
    for name, k in layout:
        part = stacked[..., i : i + k]
        i += k
        if name == "ice":
            maps["ice_logit"] = part[..., 0].astype(xp.float32)
        elif k == 1:
            maps[name] = xp.clip(xp.rint(part[..., 0] * 10), 0, 10).astype(xp.uint8)
        else:
            maps[name] = xp.argmax(part, axis=-1).astype(xp.uint8)
    return maps


def _finalise(acc: np.ndarray, wsum: np.ndarray, layout, out: dict, rows: slice) -> None:
    """Normalise accumulated rows and write logits / class maps into the output arrays."""
    for name, values in output_maps(acc / wsum[..., None], layout).items():
        out[name][rows] = values


def single_tile_predictor(fns, tile: int, margin: int, channels: int):
    """Jitted (params, batch_stats, tile [1, T, T, C]) -> the core's finished maps (see `output_maps`).

    For a scene that one tile covers: no blending is needed (one tile's window weights cancel), so the
    class argmax runs on the device and only the uint8 maps and the ice logit come back.
    """
    cache = fns.__dict__.setdefault("_single_tile_predictors", {})
    key = (tile, margin, channels)
    if key not in cache:
        core = tile - 2 * margin

        def predict(params, batch_stats, x):
            out = fns.apply_eval(params, batch_stats, x)
            layout = head_layout(out)
            parts = [out[k][..., None] if out[k].ndim == 3 else out[k] for k, _ in layout]
            stacked = jnp.concatenate(parts, axis=-1)[0, margin : margin + core, margin : margin + core]
            return output_maps(stacked, layout, jnp)

        cache[key] = jax.jit(predict)
    return cache[key]


def _single_tile_input(planes, inputs, tile: int, margin: int) -> np.ndarray:
    """[1, T, T, C] float32: the scene at (margin, margin), zeros around it. A C-contiguous [T, T, C]
    float32 scene with no margin is used as it is (no copy; on CPU not even to the device when it is
    64-byte aligned)."""
    h, w = planes[0].shape
    if (margin == 0 and h == tile and w == tile and isinstance(inputs, np.ndarray) and inputs.ndim == 3
            and inputs.dtype == np.float32 and inputs.flags.c_contiguous):
        return inputs[None]
    return _row_band(planes, -margin, tile, -margin, tile)[None]


def predict_scene(
    fns,
    params,
    batch_stats,
    inputs,
    *,
    tile: int = 256,
    stride: int = 64,
    batch_size: int = 8,
    margin: int | None = None,
    align: int = 1,
) -> dict[str, np.ndarray]:
    """Whole-scene outputs from overlapping tiles (see the module docstring).

    inputs: float32 [H, W, C] standard-scaled channels in the model's order, or a sequence of C
      [H, W] maps (spares the stacked copy of a large scene).
    margin: tile border with weight 0 (None: `default_margin`); align: the model's pooling period
      (`tile_alignment`); tile, stride and margin must be multiples of it.
    Returns 'ice_logit' float32 [H, W] (if the model has the ice head) and uint8 [H, W] class maps
    'SIC', 'SOD', 'FLOE' for the heads it has (no masking: the caller applies land / no-data).
    """
    planes = _as_planes(inputs)
    h, w = planes[0].shape
    margin = default_margin(tile, stride, align) if margin is None else margin
    check_tiling(tile, stride, margin, align)
    core = tile - 2 * margin
    rows, cols = tile_origins(h, tile, stride, margin), tile_origins(w, tile, stride, margin)
    if len(rows) == 1 and len(cols) == 1:  # one tile covers the scene: finish on the device
        x = _single_tile_input(planes, inputs, tile, margin)
        maps = single_tile_predictor(fns, tile, margin, len(planes))(params, batch_stats, x)
        return {name: np.array(values[:h, :w]) for name, values in maps.items()}
    predict = tile_predictor(fns, tile, margin, len(planes))
    probe = jax.eval_shape(fns.apply_eval, params, batch_stats,
                           jax.ShapeDtypeStruct((1, tile, tile, len(planes)), jnp.float32))
    layout = head_layout(probe)
    out = {("ice_logit" if name == "ice" else name): np.zeros((h, w), np.float32 if name == "ice" else np.uint8)
           for name, _ in layout}
    weights = core_window(core)
    band_width = cols[-1] + tile + margin  # band column j is scene column j - margin
    acc = np.zeros((core, w, sum(k for _, k in layout)), np.float32)  # acc row 0 = scene row `top`
    wsum = np.zeros((core, w), np.float32)
    top = rows[0] + margin  # = 0

    def accumulate(pred: np.ndarray, chunk: list[int]) -> None:
        n = min(core, h - top)  # core rows inside the scene
        for j, c in enumerate(chunk):
            c0, c1 = c + margin, min(c + margin + core, w)
            acc[:n, c0:c1] += pred[j, :n, : c1 - c0]
            wsum[:n, c0:c1] += weights[:n, : c1 - c0]

    for r in rows:
        shift = r + margin - top
        if shift:  # scene rows above this tile row's core are final: no later core reaches them
            _finalise(acc[:shift], wsum[:shift], layout, out, slice(top, top + shift))
            acc[:-shift], wsum[:-shift] = acc[shift:].copy(), wsum[shift:].copy()
            acc[-shift:], wsum[-shift:] = 0.0, 0.0
            top += shift
        band = _row_band(planes, r, tile, -margin, band_width)
        pending = None  # one batch in flight while the host accumulates the previous one
        for b in range(0, len(cols), batch_size):
            chunk = cols[b : b + batch_size]
            tiles = np.zeros((batch_size, tile, tile, len(planes)), np.float32)  # one compiled shape
            for j, c in enumerate(chunk):
                tiles[j] = band[:, c + margin : c + margin + tile]
            result = predict(params, batch_stats, jnp.asarray(tiles))
            if pending is not None:
                accumulate(np.asarray(pending[0]), pending[1])
            pending = (result, chunk)
        accumulate(np.asarray(pending[0]), pending[1])
    last = min(core, h - top)
    _finalise(acc[:last], wsum[:last], layout, out, slice(top, top + last))
    return out


# ----------------------------------------------------------------------------------------------
# Binary maps


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
    from seaice_jax import scaling

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


# ----------------------------------------------------------------------------------------------
# Output files


def masked_uint8(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """uint8 [H, W]: values where valid, 255 elsewhere (land, no data)."""
    return np.where(valid, values, CHART_FILL).astype(np.uint8)


def write_prediction(path: str, scene, pred: dict, maps: BinaryMaps, *, step: int, attrs: dict | None = None) -> str:
    """`<scene>_pred.nc` on the scene's SAR grid (dims sar_lines, sar_samples), written atomically.

    Variables: ice_logit float32 (raw blended logits, finite everywhere, so ALS can be recomputed),
    ice_probability float32 (ALS soft map, NaN on land / no data), ice_binary_als and
    ice_binary_conc uint8 (1 ice, 0 water, 255 land / no data), SIC / SOD / FLOE uint8 classes
    (255 on land / no data) for the heads the model has. Attributes: scene_name, checkpoint_step,
    product, als_z2, als_z98, als_b, als_T, conc_target_source, plus `attrs`.
    """
    import xarray as xr

    valid = scene.valid
    data = {
        "ice_logit": pred["ice_logit"].astype(np.float32, copy=False),
        "ice_probability": maps.probability,
        "ice_binary_als": masked_uint8(maps.binary_als, valid),
        "ice_binary_conc": masked_uint8(maps.binary_conc, valid),
    }
    data.update({c: masked_uint8(pred[c], valid) for c in CHART_NAMES if c in pred})
    ds = xr.Dataset({k: (SAR_DIMS, v) for k, v in data.items()})
    for name in data:
        if ds[name].dtype == np.uint8:
            ds[name].attrs["chart_fill_value"] = CHART_FILL  # not _FillValue: keeps uint8 when read
    ds.attrs.update(
        scene_name=scene.name, checkpoint_step=int(step), product=scene.product,
        als_z2=maps.als_params["z2"], als_z98=maps.als_params["z98"],
        als_b=maps.als_params["b"], als_T=maps.als_params["T"],
        conc_target_source=maps.conc_source, **(attrs or {}))
    encoding = {k: dict(SUBMISSION_COMPRESSION) for k in data}
    return fileio.write_atomically(lambda tmp: ds.to_netcdf(tmp, engine="netcdf4", encoding=encoding), path, ".nc.part")


def write_quicklook(path: str, scene, maps: BinaryMaps, *, max_pixels: int = 800) -> str:
    """PNG of HH, the ALS probability, both binary maps and the truth when the scene has one."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    step = max(1, math.ceil(max(scene.shape) / max_pixels))  # subsample: a figure needs no 10k pixels
    valid = scene.valid[::step, ::step]

    def shown(x):
        return np.where(valid, x[::step, ::step].astype(np.float32), np.nan)

    panels = [("HH (scaled)", shown(scene.channels[HH]), "gray"),
              ("ALS probability", shown(maps.probability), "viridis"),
              ("ice, ALS", shown(maps.binary_als), "gray"),
              ("ice, concentration-preserving", shown(maps.binary_conc), "gray")]
    if scene.ice_truth is not None:
        truth = scene.ice_truth[::step, ::step].astype(np.float32)
        panels.append(("truth", np.where(valid & (truth != CHART_FILL), truth, np.nan), "gray"))
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.6), squeeze=False)
    for i, (ax, (title, image, cmap)) in enumerate(zip(axes[0], panels)):
        finite = image[np.isfinite(image)]
        # HH: robust 2..98 % stretch; maps: fixed 0..1 so that 1 is always white / yellow.
        limits = tuple(np.percentile(finite, [2, 98])) if i == 0 and finite.size else (0.0, 1.0)
        colours = plt.get_cmap(cmap).with_extremes(bad="#d9b38c")  # land / no data in tan
        ax.imshow(image, cmap=colours, interpolation="nearest", vmin=limits[0], vmax=limits[1])
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    fig.suptitle(scene.name, fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.93))  # room for the suptitle
    try:
        return fileio.write_atomically(lambda tmp: fig.savefig(tmp, format="png", dpi=100), path, ".png.part")
    finally:
        plt.close(fig)


# ----------------------------------------------------------------------------------------------
# Challenge submission

_RAW_NAME = re.compile(r"_(\d{8}T\d{6})_.*icechart_(cis|dmi)_")


def submission_key(scene_name: str) -> str:
    """Variable prefix of a scene in the upload file: the first 19 characters of its name.

    RTT `20190430T101830_cis_prep` -> `20190430T101830_cis`. A raw name's first 19 characters are
    the same for every scene (`S1A_EW_GRDM_1SDH_20`), so a raw scene uses the RTT form
    `<start time>_<service>` read from its name (the name of the same scene in the RTT product).
    """
    match = _RAW_NAME.search(scene_name)
    if scene_name.startswith("S1") and match:
        return f"{match.group(1)}_{match.group(2)}"
    return scene_name[:19]


def block_max_2x2(classes: np.ndarray) -> np.ndarray:
    """uint8 [H, W] -> [ceil(H/2), ceil(W/2)]: 2x2 max, as RTT charts were made from raw ones.

    An odd last row / column is its own block (edge-replicated).
    """
    h, w = classes.shape
    padded = np.pad(classes, ((0, h % 2), (0, w % 2)), mode="edge")
    return padded.reshape(padded.shape[0] // 2, 2, padded.shape[1] // 2, 2).max(axis=(1, 3))


def submission_charts(product: str, pred: dict) -> dict[str, np.ndarray]:
    """uint8 chart maps at 80 m for the upload file: RTT as predicted, raw (40 m) by `block_max_2x2`.

    The maps are not masked: the challenge drops pixels where its reference is 255, and a 255 on a
    pixel it scores would count as a (wrong, for SIC far off) class.
    """
    charts = {c: pred[c].astype(np.uint8, copy=False) for c in CHART_NAMES if c in pred}
    if product == "raw":
        charts = {c: block_max_2x2(v) for c, v in charts.items()}
    return charts


class SubmissionWriter:
    """The challenge upload file, written scene by scene (memory: one scene) to a temporary file.

    One uint8 variable `<key>_<chart>` with dims (`<key>_<chart>_dim0`, `<key>_<chart>_dim1`) per
    scene and chart, zlib level 1 (the format of the challenge's test_upload notebook).
    `close()` renames it into place; `abort()` removes it.
    """

    def __init__(self, path: str):
        import netCDF4

        self.path = path
        self.tmp = fileio.temporary_path(path, ".nc.part")
        self.ds = netCDF4.Dataset(self.tmp, "w", format="NETCDF4")
        self.keys: set[str] = set()

    def add(self, scene_name: str, charts: dict[str, np.ndarray]) -> None:
        key = submission_key(scene_name)
        if key in self.keys:
            raise ValueError(f"{self.path}: two scenes share the submission name {key} ({scene_name})")
        self.keys.add(key)
        for chart, values in charts.items():
            name = f"{key}_{chart}"
            dims = (f"{name}_dim0", f"{name}_dim1")
            for dim, size in zip(dims, values.shape):
                self.ds.createDimension(dim, size)
            var = self.ds.createVariable(name, "u1", dims, fill_value=False, **SUBMISSION_COMPRESSION)
            var[:] = values

    def close(self) -> str:
        self.ds.close()
        fileio.publish(self.tmp, self.path)
        return self.path

    def abort(self) -> None:
        if self.ds.isopen():
            self.ds.close()
        if os.path.exists(self.tmp):
            os.unlink(self.tmp)


def write_submission(path: str, scenes: dict[str, tuple[str, dict]]) -> str:
    """Upload file from {scene name: (product, predictions with SIC / SOD / FLOE)}."""
    writer = SubmissionWriter(path)
    try:
        for name, (product, pred) in scenes.items():
            writer.add(name, submission_charts(product, pred))
    except BaseException:
        writer.abort()
        raise
    return writer.close()


# ----------------------------------------------------------------------------------------------
# Files in, files out


def predict_files(
    workdir: str,
    scene_paths: list[str],
    out_dir: str,
    *,
    png: bool = False,
    submission: str | None = None,
    tile: int | None = None,
    stride: int | None = None,
    batch_size: int | None = None,
) -> list[str]:
    """Predict every scene with the latest checkpoint of `workdir`; returns the `_pred.nc` paths.

    scene_paths: scene files or folders of them (seaice_jax.data.scene.list_scene_files); scenes
    without a chart (unlabelled) work. tile / stride / batch_size default to config.eval. Writes
    `<out_dir>/<scene name>_pred.nc` (see `write_prediction`), with `png` also
    `<out_dir>/<scene name>_quicklook.png`, and with `submission` the challenge upload file there.
    Raises FileNotFoundError (no workdir / checkpoint), SceneError (a bad scene, which stops the
    run; scenes done before it keep their files) and ValueError (bad tiling, a model without the
    ice head, or a submission from a model without chart heads) before writing anything broken.
    """
    from seaice_jax.data.scene import list_scene_files, open_scene
    from seaice_jax.train import input_channels, restore_for_inference

    files = list_scene_files(list(scene_paths))
    config, fns, params, batch_stats, step = restore_for_inference(workdir)
    channels = input_channels(config)
    tile = int(tile or config.eval.tile)
    stride = int(stride or config.eval.stride)
    batch_size = int(batch_size or config.eval.batch_size)
    align = tile_alignment(config.model)
    margin = default_margin(tile, stride, align)
    check_tiling(tile, stride, margin, align)
    heads = config.model.heads
    if not heads.ice:
        raise ValueError(f"{workdir}: the model has no ice head; binary ice maps need it")
    if submission and heads.sic == "none" and not heads.sod and not heads.floe:
        raise ValueError(f"{workdir}: the model has no SIC / SOD / FLOE head for a submission")
    read = tuple(dict.fromkeys(channels + ((HH,) if png else ())))  # only what the model (and the PNG) needs

    os.makedirs(out_dir, exist_ok=True)
    writer = SubmissionWriter(submission) if submission else None
    written, names = [], set()
    try:
        for path in files:
            scene = open_scene(path, channels=read, require_charts=False)
            if scene.name in names:
                raise ValueError(f"{path}: scene name {scene.name} appears twice in the input")
            names.add(scene.name)
            pred = predict_scene(fns, params, batch_stats, [scene.channels[n] for n in channels],
                                 tile=tile, stride=stride, batch_size=batch_size, margin=margin, align=align)
            maps = binary_maps(scene, pred)
            written.append(write_prediction(
                os.path.join(out_dir, scene.name + PRED_SUFFIX), scene, pred, maps, step=step,
                attrs=dict(tile=tile, stride=stride, margin=margin)))
            if png:
                write_quicklook(os.path.join(out_dir, scene.name + QUICKLOOK_SUFFIX), scene, maps)
            if writer is not None:
                writer.add(scene.name, submission_charts(scene.product, pred))
            del scene, pred, maps  # free the scene before reading the next
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    if writer is not None:
        writer.close()
    return written


def evaluate_binary_maps(config, fns, params, batch_stats, scene_paths: list[str]) -> dict:
    """Pooled pixel accuracy against ice_truth of the sigmoid >= 0.5, ALS and concentration-preserving
    maps (the same maps launch/infer.py writes), the all-ice baseline, and the polygon MAE of each."""
    from seaice_jax.data.scene import open_scene
    from seaice_jax.metrics import PolygonAccumulator
    from seaice_jax.train import input_channels

    channels = input_channels(config)
    align = tile_alignment(config.model)
    tile, stride = config.eval.tile, config.eval.stride
    methods = ("sigmoid", "als", "conc")
    correct = dict.fromkeys(methods, 0)
    polygons = {m: PolygonAccumulator(config.eval.min_region_pixels) for m in methods}
    total = ice = 0
    for path in scene_paths:
        scene = open_scene(path, channels=channels)
        pred = predict_scene(fns, params, batch_stats, [scene.channels[n] for n in channels],
                             tile=tile, stride=stride, batch_size=config.eval.batch_size,
                             margin=default_margin(tile, stride, align), align=align)
        maps = binary_maps(scene, pred)
        binary = {"sigmoid": pred["ice_logit"] >= 0, "als": maps.binary_als, "conc": maps.binary_conc}
        for m in methods:
            polygons[m].add(binary[m], scene.region_ids, scene.region_conc, scene.valid)
        if scene.ice_truth is not None:
            mask = scene.valid & (scene.ice_truth != 255)
            truth = scene.ice_truth[mask] == 1
            for m in methods:
                correct[m] += int((binary[m][mask] == truth).sum())
            total += int(mask.sum())
            ice += int(truth.sum())
    out = {f"pixel_accuracy_{m}": correct[m] / total if total else None for m in methods}
    out["pixel_accuracy_all_ice"] = ice / total if total else None  # the trivial baseline
    out.update({f"polygon_mae_{m}": polygons[m].scores()["polygon_mae"] for m in methods})
    return out
