"""Per-scene files of a prediction: `<scene>_pred.nc` on the scene's grid and the quicklook PNG."""

from __future__ import annotations

import math

import numpy as np

from seaice_jax import fileio
from seaice_jax.data.channels import CHART_FILL, CHART_NAMES, SAR_DIMS
from seaice_jax.inference.binarize import BinaryMaps
from seaice_jax.inference.submission import SUBMISSION_COMPRESSION

PRED_SUFFIX = "_pred.nc"  # what evaluation.load_prediction reads
QUICKLOOK_SUFFIX = "_quicklook.png"
HH = "nersc_sar_primary"


def masked_uint8(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """uint8 [H, W]: values where valid, 255 elsewhere (land, no data)."""
    return np.where(valid, values, CHART_FILL).astype(np.uint8)


def write_prediction(path: str, scene, pred: dict, maps: BinaryMaps, *, step: int, attrs: dict | None = None) -> str:
    """`<scene>_pred.nc` on the scene's SAR grid (dims sar_lines, sar_samples), written atomically.

    Variables: ice_logit float32 (raw blended logits, finite everywhere, so ALS can be recomputed),
    ice_probability float32 (ALS soft map, NaN on land / no data), ice_binary_als and
    ice_binary_conc uint8 (1 ice, 0 water, 255 land / no data), SIC / SOD / FLOE uint8 classes
    (255 on land / no data) for the heads the model has, `freeboard` float32 m (NaN on land / no
    data) when it has the freeboard head. Attributes: scene_name, checkpoint_step,
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
    if "freeboard" in pred:  # metres, NaN on land / no data
        data["freeboard"] = np.where(valid, pred["freeboard"], np.nan).astype(np.float32)
    ds = xr.Dataset({k: (SAR_DIMS, v) for k, v in data.items()})
    if "freeboard" in ds:
        ds["freeboard"].attrs.update(units="m", long_name="sea-ice freeboard (model head, leads at 0)")
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
