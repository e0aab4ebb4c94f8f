"""Per-scene files of a prediction: `<scene>_pred.nc` on the scene's grid and the quicklook PNG."""

from __future__ import annotations

import math
import os

import numpy as np

from seaice_jax import fileio
from seaice_jax.data.channels import CHART_FILL, CHART_NAMES, SAR_DIMS
from seaice_jax.inference.binarize import BinaryMaps
from seaice_jax.inference.submission import SUBMISSION_COMPRESSION

PRED_SUFFIX = "_pred.nc"  # what evaluation.load_prediction reads
QUICKLOOK_SUFFIX = "_quicklook.png"
HH = "nersc_sar_primary"


CF_CONVENTIONS = "CF-1.8"
SOD_CLASSES = ("open water", "new ice", "young ice", "thin first-year ice", "thick first-year ice", "old ice")
FLOE_CLASSES = ("open water", "cake ice", "small floe", "medium floe", "big floe", "vast floe", "bergs")
SIC_CLASSES = tuple(f"{10 * k} %" for k in range(11))  # class k = k tenths
CLASS_NAMES = {"SIC": SIC_CLASSES, "SOD": SOD_CLASSES, "FLOE": FLOE_CLASSES}
BINARY_CLASSES = ("water", "ice")


def _flags(names) -> dict:
    """flag_values 0..n-1 (uint8) and flag_meanings (blank-separated words, spaces -> '_')."""
    words = [n.replace(" %", "_percent").replace(" ", "_").replace("-", "_") for n in names]
    return {"flag_values": np.arange(len(names), dtype=np.uint8), "flag_meanings": " ".join(words)}


# Every variable of a prediction file with its CF attributes (units, long_name, standard_name where CF
# has one, flags for class maps). uint8 maps get _FillValue 255 (land / no data), float maps NaN. A new
# variable (e.g. a freeboard map from an extra head) is one more entry here: `prediction_arrays` then
# writes pred[name] (masked off the valid pixels), or pass it to `write_prediction(extra=...)`.
PRED_VARIABLES: dict[str, dict] = {
    "ice_logit": {"units": "1", "long_name": "ice logit (log-odds of sea ice) of the model, blended over tiles"},
    "ice_probability": {"units": "1", "standard_name": "sea_ice_area_fraction",
                        "long_name": "ice probability after analytical logit scaling (ALS)"},
    "ice_binary_als": {"units": "1", "long_name": "binary ice map, ALS threshold", **_flags(BINARY_CLASSES)},
    "ice_binary_conc": {"units": "1", "long_name": "binary ice map, concentration-preserving",
                        **_flags(BINARY_CLASSES)},
    "SIC": {"units": "1", "long_name": "sea ice concentration class (tenths: class k = 10 k %)",
            **_flags(SIC_CLASSES)},
    "SOD": {"units": "1", "long_name": "stage of development class", **_flags(SOD_CLASSES)},
    "FLOE": {"units": "1", "long_name": "floe size class", **_flags(FLOE_CLASSES)},
    # The freeboard heads (elevation.kinds): leads held at 0 by the ice probability; each with its
    # predicted uncertainty (one standard deviation) when the model has one.
    "freeboard": {"units": "m", "standard_name": "sea_ice_freeboard",
                  "long_name": "total (snow + ice) freeboard, laser altimetry kind (ICESat-2), from the "
                               "model's freeboard head (leads at 0)",
                  "ancillary_variables": "freeboard_uncertainty"},
    "freeboard_uncertainty": {"units": "m", "standard_name": "sea_ice_freeboard standard_error",
                              "long_name": "predicted uncertainty (one standard deviation) of freeboard"},
    "radar_freeboard": {"units": "m", "long_name": "radar freeboard, Ku-band altimetry kind (CryoSat-2 / "
                                                  "Sentinel-3), from the model's radar freeboard head (leads at 0)",
                        "ancillary_variables": "radar_freeboard_uncertainty"},
    "radar_freeboard_uncertainty": {"units": "m",
                                    "long_name": "predicted uncertainty (one standard deviation) of radar_freeboard"},
}
COORDINATES = {
    "latitude": {"units": "degrees_north", "standard_name": "latitude", "long_name": "latitude"},
    "longitude": {"units": "degrees_east", "standard_name": "longitude", "long_name": "longitude"},
}


def masked_uint8(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """uint8 [H, W]: values where valid, 255 elsewhere (land, no data)."""
    return np.where(valid, values, CHART_FILL).astype(np.uint8)


def prediction_arrays(scene, pred: dict, maps: BinaryMaps) -> dict[str, np.ndarray]:
    """The arrays of a prediction file, [H, W] each, in file order (names from PRED_VARIABLES)."""
    valid = scene.valid
    data = {
        "ice_logit": pred["ice_logit"].astype(np.float32, copy=False),
        "ice_probability": maps.probability,
        "ice_binary_als": masked_uint8(maps.binary_als, valid),
        "ice_binary_conc": masked_uint8(maps.binary_conc, valid),
    }
    # Chart classes masked as the binary maps are (255 on land / no data, as _FillValue declares); the
    # challenge upload file (submission.py) keeps a class at every pixel, as the challenge scores them.
    data.update({c: masked_uint8(np.asarray(pred[c], np.uint8), valid) for c in CHART_NAMES if c in pred})
    for name in PRED_VARIABLES:  # any further map the table knows: float NaN / uint8 255 off the valid pixels
        if name in pred and name not in data:
            values = pred[name]
            data[name] = (masked_uint8(values, valid) if values.dtype == np.uint8
                          else np.where(valid, values, np.nan).astype(np.float32))
    return data


def provenance(scene, *, step: int, config=None) -> dict:
    """Global attributes saying what made the file: package version, checkpoint, config, source, history."""
    import datetime

    from seaice_jax import __version__

    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    attrs = {
        "Conventions": CF_CONVENTIONS,
        "title": f"seaice-jax sea-ice prediction for {scene.name}",
        "source": f"seaice-jax {__version__} U-Net, checkpoint step {int(step)}",
        "history": f"{now} seaice-jax {__version__} inference (checkpoint step {int(step)}) of "
                   f"{os.path.basename(scene.path)}",
        "seaice_jax_version": __version__,
        "source_scene": os.path.basename(scene.path),
        "scene_name": scene.name,
        "checkpoint_step": int(step),
        "product": scene.product,
    }
    if config is not None:
        attrs["config_json"] = config.to_json_best_effort()
    return attrs


def write_prediction(path: str, scene, pred: dict, maps: BinaryMaps, *, step: int, attrs: dict | None = None,
                     config=None, extra: dict[str, tuple[np.ndarray, dict]] | None = None) -> str:
    """`<scene>_pred.nc` on the scene's SAR grid (dims sar_lines, sar_samples), CF-1.8, written atomically.

    Variables (PRED_VARIABLES gives their CF attributes): ice_logit float32 (raw blended logits,
    finite everywhere, so ALS can be recomputed), ice_probability float32 (ALS soft map, NaN on
    land / no data), ice_binary_als and ice_binary_conc uint8 (1 ice, 0 water, _FillValue 255 on
    land / no data), SIC / SOD / FLOE uint8 classes (_FillValue 255 on land / no data: the upload file
    has the unmasked classes) for the heads the model has;
    2-D latitude / longitude coordinates (float32, from the tie points) when the scene has them.
    `extra`: {name: (array [H, W], CF attributes)} more variables (e.g. a freeboard map).
    Global attributes: `provenance` (Conventions, history, version, config_json with `config`, ...),
    als_z2, als_z98, als_b, als_T, conc_target_source, plus `attrs`.
    Read with mask_and_scale=False the uint8 maps stay uint8 with 255 on land (evaluation does so).
    """
    import xarray as xr

    data = prediction_arrays(scene, pred, maps)
    variables = {k: (SAR_DIMS, v, dict(PRED_VARIABLES[k])) for k, v in data.items()}
    for name, (values, var_attrs) in (extra or {}).items():
        variables[name] = (SAR_DIMS, values, dict(var_attrs))
    coords = {}
    if scene.tie_points is not None:
        lat, lon = scene.latlon(dtype=np.float32)
        coords = {"latitude": (SAR_DIMS, lat, COORDINATES["latitude"]),
                  "longitude": (SAR_DIMS, lon, COORDINATES["longitude"])}
    ds = xr.Dataset(variables, coords=coords)
    ds.attrs.update(provenance(scene, step=step, config=config))
    ds.attrs.update(
        als_z2=maps.als_params["z2"], als_z98=maps.als_params["z98"],
        als_b=maps.als_params["b"], als_T=maps.als_params["T"],
        conc_target_source=maps.conc_source, **(attrs or {}))
    encoding = {k: dict(SUBMISSION_COMPRESSION) for k in list(variables) + list(coords)}
    for name in variables:
        if ds[name].dtype == np.uint8:
            encoding[name]["_FillValue"] = np.uint8(CHART_FILL)
        elif ds[name].dtype.kind == "f":
            encoding[name]["_FillValue"] = np.float32(np.nan) if ds[name].dtype == np.float32 else np.nan
    for name in coords:
        encoding[name]["_FillValue"] = None
    # xarray writes each data variable's `coordinates` attribute ("latitude longitude") itself.
    return fileio.write_atomically(lambda tmp: ds.to_netcdf(tmp, engine="netcdf4", encoding=encoding), path, ".nc.part")


LAND_COLOUR = "#d9b38c"  # tan: land in the quicklook and the Grad-CAM figure
NO_DATA_COLOUR = "#9e9e9e"  # grey: SAR no data
ICE_COLOUR, WATER_COLOUR = "#ffffff", "#1f3a93"
DISTANCE = "distance_map"


def surface_masks(scene) -> tuple[np.ndarray, np.ndarray]:
    """(land, no_data) bool [H, W] among the scene's invalid pixels. Land is where the distance map
    (when read) says distance 0; without it every invalid pixel counts as land."""
    invalid = ~scene.valid
    if DISTANCE not in scene.channels:
        return invalid, np.zeros_like(invalid)
    from seaice_jax.data.channels import NORM_STATS

    mean, std = NORM_STATS[DISTANCE]
    land = invalid & (np.abs(scene.channels[DISTANCE] * np.float32(std) + np.float32(mean)) < 0.1)
    return land, invalid & ~land


def _categorical(binary: np.ndarray, valid: np.ndarray, land: np.ndarray) -> np.ndarray:
    """uint8 codes for the legend's colours: 0 water, 1 ice, 2 land, 3 no data."""
    codes = np.where(binary.astype(bool), 1, 0).astype(np.uint8)
    codes[~valid] = 3
    codes[land] = 2
    return codes


def write_quicklook(path: str, scene, maps: BinaryMaps, *, max_pixels: int = 800,
                    freeboard: np.ndarray | None = None) -> str:
    """PNG of HH, the ALS probability (with a colour bar), both binary maps, the truth when the
    scene has one and the freeboard map of a freeboard model (`freeboard`, m, with a colour bar);
    one legend for ice, water, land and no data."""
    step = max(1, math.ceil(max(scene.shape) / max_pixels))  # subsample: a figure needs no 10k pixels
    valid = scene.valid[::step, ::step]
    land = surface_masks(scene)[0][::step, ::step]
    panels = [("HH (standard-scaled)", "hh", np.where(valid, scene.channels[HH][::step, ::step], np.nan)),
              ("ALS ice probability", ("viridis", "ice probability"),
               np.where(valid, maps.probability[::step, ::step], np.nan)),
              ("ice, ALS threshold", "classes", _categorical(maps.binary_als[::step, ::step], valid, land)),
              ("ice, concentration-preserving", "classes",
               _categorical(maps.binary_conc[::step, ::step], valid, land))]
    if scene.ice_truth is not None:
        truth = scene.ice_truth[::step, ::step]
        panels.append(("truth", "classes", _categorical(truth == 1, valid & (truth != CHART_FILL), land)))
    if freeboard is not None:
        fb = np.where(valid, np.asarray(freeboard, np.float32)[::step, ::step], np.nan)
        finite = fb[np.isfinite(fb)]
        top = float(np.percentile(finite, 98)) if finite.size else 1.0
        panels.append(("freeboard", ("cividis", "freeboard (m)", 0.0, max(top, 0.05)), fb))
    return write_panels(path, panels, land, scene.name)


def write_panels(path: str, panels, land: np.ndarray, title: str) -> str:
    """A row of map panels as a PNG with one legend for ice, water, land and no data.

    panels: (title, kind, image [h, w]) with kind "classes" (`_categorical` codes), "hh" (grey, 2-98 %
    stretch) or (colour map, colour-bar label[, vmin, vmax]) for a field in [vmin, vmax] (default
    [0, 1]); land [h, w] is drawn in its legend colour under the continuous panels."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import ListedColormap
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    categories = ListedColormap([WATER_COLOUR, ICE_COLOUR, LAND_COLOUR, NO_DATA_COLOUR])
    surface = ListedColormap([LAND_COLOUR, NO_DATA_COLOUR])
    h, w = land.shape
    fig = Figure(figsize=(3.2 * len(panels), 3.2 * h / max(w, 1) + 1.4))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (name, kind, image) in zip(axes, panels, strict=True):
        if kind == "classes":
            ax.imshow(image, cmap=categories, vmin=-0.5, vmax=3.5, interpolation="nearest")
        else:
            # Land / no data under the map in their legend colours; the map on the sea only.
            ax.imshow(np.where(land, 0, 1).astype(np.float32), cmap=surface, vmin=-0.5, vmax=1.5,
                      interpolation="nearest")
            if kind == "hh":
                finite = image[np.isfinite(image)]
                lo, hi = np.percentile(finite, [2, 98]) if finite.size else (0.0, 1.0)
                ax.imshow(image, cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
            else:
                cmap, label, vmin, vmax = kind if len(kind) == 4 else (*kind, 0.0, 1.0)
                shown = ax.imshow(image, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
                bar = fig.colorbar(shown, cax=ax.inset_axes((0.0, -0.13, 1.0, 0.05)), orientation="horizontal")
                bar.set_label(label, fontsize=8)
                bar.ax.tick_params(labelsize=7)
        ax.set_title(name, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    handles = [Patch(facecolor=c, edgecolor="black", linewidth=0.5, label=n) for n, c in
               (("ice", ICE_COLOUR), ("water", WATER_COLOUR), ("land", LAND_COLOUR), ("no data", NO_DATA_COLOUR))]
    fig.legend(handles=handles, loc="lower center", ncol=4, fontsize=8, frameon=False)
    fig.suptitle(title, fontsize=9)
    fig.subplots_adjust(left=0.02, right=0.98, top=0.88, bottom=0.22, wspace=0.08)
    return fileio.write_atomically(lambda tmp: fig.savefig(tmp, format="png", dpi=100), path, ".png.part")
