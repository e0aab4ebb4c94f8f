"""Freeboard truth of a synthetic scene and its altimeter passes (issue 12; the array-level physics lives in
`seaice_jax.altimetry.synthetic`).

`scene_freeboard(seed, surface, no_data, spacing_m)`: a deformation map (ridged / rubbled ice, more of it
along leads and on old ice) and the freeboard truth consistent with the scene's floes and leads: open
water and open leads at the sea surface (0), refrozen leads at new / young ice freeboard, level ice by
stage, ridges and rubble where deformed, snow. `sar_brightening_db` turns the truth's roughness into a
noisy dB offset that the scene's HH / HV get (the physical link the freeboard model relies on).

In the scene file (`truth_variables`): `freeboard_truth` (laser / total freeboard, what ICESat-2 and
SWOT measure), `radar_freeboard_truth` (CryoSat-2 / Sentinel-3), `ice_freeboard_truth`,
`snow_depth_truth` (float32 m, NaN on land / no data). Readers never use them to detect anything.

`write_scene_altimetry(out_dir, ds, seed, missions)`: the passes over one written scene (tracks of the
chosen missions and a SWOT-like swath) in the real product layouts. Everything is deterministic for a
seed, from streams separate from the scene's own (a scene without altimetry is unchanged).
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from scipy import ndimage

from seaice_jax.altimetry import synthetic as asyn
from seaice_jax.data import channels as ch
from seaice_jax.data.synthetic.surface import LAND, WATER, gaussian_random_field

TRUTH_VARIABLES = {  # scene variable -> (FreeboardTruth field, long name)
    "freeboard_truth": ("laser_freeboard", "synthetic total (laser) freeboard truth, m (not in real files)"),
    "radar_freeboard_truth": ("radar_freeboard", "synthetic radar (Ku) freeboard truth, m (not in real files)"),
    "ice_freeboard_truth": ("ice_freeboard", "synthetic ice freeboard truth, m (not in real files)"),
    "snow_depth_truth": ("snow_depth", "synthetic snow depth truth, m (not in real files)"),
}
# passes per mission for one scene (ICESat-2: 3 strong beams each, so 9 laser tracks with 3 passes)
DEFAULT_PASSES = {"icesat2": 3, "cryosat2": 2, "sentinel3a": 1}
ALTIMETRY_DIR = "altimetry"
HV_BRIGHTENING = 0.8  # HV gets this share of the HH roughness brightening (dB)


def _stream(seed: int, tag: int) -> int:
    return int(np.random.SeedSequence([int(seed) % (2**63), tag]).generate_state(1, np.uint32)[0])


def deformation_map(seed: int, surface, spacing_m: float) -> np.ndarray:
    """float32 [H, W] in [0, 1]: patchy deformation (~1.5 km fields), raised near leads (shear zones)
    and on old ice, 0 off the ice."""
    rng = np.random.default_rng(_stream(seed, 0xDEF))
    s = surface.surface
    shape = s.shape
    patches = gaussian_random_field(rng, shape, 1500.0 / spacing_m) + 0.5 * gaussian_random_field(
        rng, shape, 400.0 / spacing_m)
    sea = s == WATER
    dist_km = ndimage.distance_transform_edt(~sea) * spacing_m / 1000.0 if sea.any() else np.full(shape, 1e3)
    near_lead = np.exp(-dist_km / 1.5)
    old = (s == 5).astype(np.float32)
    d = 1.0 / (1.0 + np.exp(-(1.6 * patches + 2.0 * near_lead + 0.8 * old - 1.2)))
    ice = (s >= 1) & (s <= 5)
    return np.where(ice, d, 0.0).astype(np.float32)


def scene_freeboard(seed: int, surface, no_data: np.ndarray, spacing_m: float) -> asyn.FreeboardTruth:
    """The freeboard truth of a synthetic scene (see the module doc)."""
    stage = np.asarray(surface.surface).astype(np.int16)
    stage = np.where((stage == LAND) | np.asarray(no_data, bool), 255, stage)
    lead = stage == WATER
    return asyn.freeboard_truth(_stream(seed, 0xFB), stage, lead, deformation_map(seed, surface, spacing_m),
                                spacing_m=spacing_m)


def sar_brightening_db(seed: int, truth: asyn.FreeboardTruth) -> np.ndarray:
    """HH dB offset from the roughness (noisy, saturating; 0 off the ice)."""
    return asyn.roughness_brightening_db(_stream(seed, 0x5A2), truth.roughness)


def truth_variables(truth: asyn.FreeboardTruth) -> dict[str, xr.Variable]:
    return {name: xr.Variable(ch.SAR_DIMS, getattr(truth, field).astype(np.float32),
                              {"long_name": long_name, "units": "m"})
            for name, (field, long_name) in TRUTH_VARIABLES.items()}


def truth_from_dataset(ds: xr.Dataset) -> asyn.FreeboardTruth:
    """The FreeboardTruth of a scene dataset holding `truth_variables` (roughness not stored: 0)."""
    f = {field: np.asarray(ds[name].values, np.float32) for name, (field, _) in TRUTH_VARIABLES.items()}
    valid = np.isfinite(f["laser_freeboard"])
    ice_truth = np.asarray(ds["ice_truth"].values)
    lead = valid & (ice_truth == 0)
    return asyn.FreeboardTruth(roughness=np.zeros_like(f["laser_freeboard"]), lead=lead, valid=valid, **f)


def _tie_points(ds: xr.Dataset, shape):
    from seaice_jax.data import geolocation as geo
    if "sar_grid2d_latitude" in ds:
        return geo.tie_points_from_rtt(ds["sar_grid2d_latitude"].values, ds["sar_grid2d_longitude"].values, shape)
    return geo.tie_points_from_raw(ds["sar_grid_line"].values, ds["sar_grid_sample"].values,
                                   ds["sar_grid_latitude"].values, ds["sar_grid_longitude"].values)


def simulate_scene_altimetry(ds: xr.Dataset, seed: int, missions: str = "all", start_time=None,
                             passes: dict | None = None):
    """(tracks, swath) over one scene dataset with the freeboard truth variables."""
    truth = truth_from_dataset(ds)
    shape = truth.valid.shape
    tp = _tie_points(ds, shape)
    spacing = float(ds.attrs.get("pixel_spacing", ch.PIXEL_SPACING_M["rtt" if "sar_grid2d_latitude" in ds
                                                                       else "raw"]))
    counts = dict(DEFAULT_PASSES, **(passes or {}))
    return asyn.simulate_altimetry(_stream(seed, 0xA17), truth, tp, start_time, missions, passes=counts,
                                   spacing_m=(spacing, spacing))


def write_scene_altimetry(out_dir: str, ds: xr.Dataset, seed: int, missions: str = "all", start_time=None,
                          passes: dict | None = None) -> list[str]:
    """Writes the scene's simulated tracks and swath under `out_dir` in the real layouts; the paths."""
    import os
    os.makedirs(out_dir, exist_ok=True)
    tracks, swath = simulate_scene_altimetry(ds, seed, missions, start_time, passes)
    return asyn.write_synthetic_altimetry(out_dir, tracks, swath)
