"""Freeboard truth of a synthetic scene: what the altimeters sample and what roughens the SAR.

Array level (`freeboard_truth`): stage of development per pixel (SOD-class order: 0 water, 1 new, 2 young,
3 thin FYI, 4 thick FYI, 5 old ice; anything else = no data), a lead mask (open or refrozen leads
at the sea surface) and a deformation map in [0, 1]:
  * level ice freeboard by stage plus smooth variability; snow depth by stage, redistributed;
  * ridges (sparse lognormal sails, ~1-2 px wide) and rubble where the ice is deformed;
  * `roughness` (m, local topography rms with lognormal scatter) for the SAR simulator:
    `roughness_brightening_db` turns it into a noisy dB offset (not a lookup);
  * laser (snow surface, ICESat-2 / SWOT) freeboard = ice freeboard + snow; radar (Ku, CryoSat-2 /
    Sentinel-3) freeboard = ice freeboard - 0.25 snow (slower propagation in snow, c/c_s ~ 1.25);
  * leads and water are exactly 0 (the sea-surface reference).
The level-ice / snow numbers are assumptions of ours (docs: typical values U), stated in STAGE_TABLE.

Scene level (`scene_freeboard(seed, surface, no_data, spacing_m)`): a deformation map (ridged / rubbled
ice, more of it along leads and on old ice) and the truth consistent with the scene's floes and leads.
`sar_brightening_db` turns the truth's roughness into the dB offset that the scene's HH / HV get (the
physical link the freeboard model relies on).

In the scene file (`truth_variables`): `freeboard_truth` (laser / total freeboard, what ICESat-2 and
SWOT measure), `radar_freeboard_truth` (CryoSat-2 / Sentinel-3), `ice_freeboard_truth`,
`snow_depth_truth` (float32 m, NaN on land / no data). Readers never use them to detect anything.
Everything is deterministic for a seed, from streams separate from the scene's own.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import xarray as xr
from scipy import ndimage

from seaice_jax.data import channels as ch
from seaice_jax.synthetic.surface import LAND, WATER, gaussian_random_field

# stage -> (level ice freeboard mean m, its std m, snow depth mean m). Ours (assumed).
STAGE_TABLE = {0: (0.0, 0.0, 0.0), 1: (0.01, 0.005, 0.0), 2: (0.03, 0.01, 0.02), 3: (0.06, 0.015, 0.07),
               4: (0.12, 0.03, 0.15), 5: (0.25, 0.06, 0.30)}
WAVE_SPEED_FACTOR = 0.25  # c / c_snow - 1 for snow density ~0.3 g/cm3
TRUTH_VARIABLES = {  # scene variable -> (FreeboardTruth field, long name)
    "freeboard_truth": ("laser_freeboard", "synthetic total (laser) freeboard truth, m (not in real files)"),
    "radar_freeboard_truth": ("radar_freeboard", "synthetic radar (Ku) freeboard truth, m (not in real files)"),
    "ice_freeboard_truth": ("ice_freeboard", "synthetic ice freeboard truth, m (not in real files)"),
    "snow_depth_truth": ("snow_depth", "synthetic snow depth truth, m (not in real files)"),
}
HV_BRIGHTENING = 0.8  # HV gets this share of the HH roughness brightening (dB)


def _smooth_noise(rng, shape, sigma_px):
    f = ndimage.gaussian_filter(rng.standard_normal(shape), sigma_px, mode="wrap")
    return f / max(float(f.std()), 1e-12)


@dataclasses.dataclass
class FreeboardTruth:
    """Truth fields on the SAR grid, float32 [H, W] metres (NaN off `valid`)."""

    ice_freeboard: np.ndarray
    snow_depth: np.ndarray
    laser_freeboard: np.ndarray
    radar_freeboard: np.ndarray
    roughness: np.ndarray
    lead: np.ndarray  # bool, sea-surface pixels (leads and open water)
    valid: np.ndarray  # bool

    def field(self, kind: str) -> np.ndarray:
        return {"laser": self.laser_freeboard, "radar": self.radar_freeboard, "ice": self.ice_freeboard}[kind]


def freeboard_truth(seed: int, stage: np.ndarray, lead_mask: np.ndarray, deformation: np.ndarray | None = None,
                    *, spacing_m: float = 80.0, ridge_density: float = 0.03, ridge_height_m: float = 1.0,
                    rubble_m: float = 0.15) -> FreeboardTruth:
    """Freeboard truth consistent with the given stages, leads and deformation (see module doc)."""
    rng = np.random.default_rng(seed)
    stage = np.asarray(stage)
    shape = stage.shape
    valid = np.isin(stage, list(STAGE_TABLE))
    sea = (np.asarray(lead_mask, bool) | (stage == 0)) & valid
    ice = valid & ~sea
    deform = np.zeros(shape) if deformation is None else np.clip(np.asarray(deformation, np.float64), 0, 1)
    deform = np.where(ice, deform, 0.0)
    st = np.where(valid, stage, 0).astype(int)
    mean = np.vectorize(lambda s: STAGE_TABLE[s][0])(st)
    std = np.vectorize(lambda s: STAGE_TABLE[s][1])(st)
    snow_mean = np.vectorize(lambda s: STAGE_TABLE[s][2])(st)
    level_sigma = max(1.0, 2000.0 / spacing_m)  # ~2 km level-ice variability
    level = np.maximum(mean + std * _smooth_noise(rng, shape, level_sigma), 0.3 * mean)
    # Ridges: sparse sails, lognormal heights, ~1.5 px wide; rubble: rough positive relief.
    sails = (rng.uniform(size=shape) < ridge_density * deform) * rng.lognormal(np.log(ridge_height_m), 0.5, shape)
    ridges = ndimage.gaussian_filter(sails, 0.7) * (2 * np.pi * 0.49)  # peak = the sail height
    rubble = rubble_m * deform * np.abs(_smooth_noise(rng, shape, 1.0))
    relief = ridges + rubble
    ice_fb = np.where(ice, level + relief, 0.0)
    snow = snow_mean * np.clip(1.0 + 0.3 * _smooth_noise(rng, shape, level_sigma / 2), 0.2, None)
    snow = np.where(ice, snow * (1.0 + 0.5 * deform), 0.0)  # snow drifts pile up on deformed ice
    local = ndimage.uniform_filter(relief, 3)
    rms = np.sqrt(np.maximum(ndimage.uniform_filter(relief ** 2, 3) - local ** 2, 0.0)) + 0.5 * relief
    roughness = np.where(ice, (rms + 0.005) * rng.lognormal(0.0, 0.3, shape), 0.0)
    out = {}
    for name, arr in (("ice_freeboard", ice_fb), ("snow_depth", snow), ("laser_freeboard", ice_fb + snow),
                      ("radar_freeboard", ice_fb - WAVE_SPEED_FACTOR * snow), ("roughness", roughness)):
        a = np.where(valid, arr, np.nan).astype(np.float32)
        if name != "roughness":
            a[sea] = 0.0
        out[name] = a
    return FreeboardTruth(lead=sea, valid=valid, **out)


def roughness_brightening_db(seed: int, roughness: np.ndarray, *, gain_db_per_m: float = 8.0,
                             scatter_db: float = 1.0, max_db: float = 6.0) -> np.ndarray:
    """A dB offset for HH / HV from the roughness: gain * roughness saturating at `max_db`, with
    multiplicative lognormal scatter and additive noise of `scatter_db` so the relation is not a lookup."""
    rng = np.random.default_rng(seed)
    r = np.nan_to_num(np.asarray(roughness, np.float64))
    base = max_db * (1.0 - np.exp(-gain_db_per_m * r / max_db))
    return (base * rng.lognormal(0.0, 0.25, r.shape) + scatter_db * rng.standard_normal(r.shape) * (r > 0)).astype(
        np.float32)

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


def scene_freeboard(seed: int, surface, no_data: np.ndarray, spacing_m: float) -> FreeboardTruth:
    """The freeboard truth of a synthetic scene (see the module doc)."""
    stage = np.asarray(surface.surface).astype(np.int16)
    stage = np.where((stage == LAND) | np.asarray(no_data, bool), 255, stage)
    lead = stage == WATER
    return freeboard_truth(_stream(seed, 0xFB), stage, lead, deformation_map(seed, surface, spacing_m),
                                spacing_m=spacing_m)


def sar_brightening_db(seed: int, truth: FreeboardTruth) -> np.ndarray:
    """HH dB offset from the roughness (noisy, saturating; 0 off the ice)."""
    return roughness_brightening_db(_stream(seed, 0x5A2), truth.roughness)


def truth_variables(truth: FreeboardTruth) -> dict[str, xr.Variable]:
    return {name: xr.Variable(ch.SAR_DIMS, getattr(truth, field).astype(np.float32),
                              {"long_name": long_name, "units": "m"})
            for name, (field, long_name) in TRUTH_VARIABLES.items()}


def truth_from_dataset(ds: xr.Dataset) -> FreeboardTruth:
    """The FreeboardTruth of a scene dataset holding `truth_variables` (roughness not stored: 0)."""
    f = {field: np.asarray(ds[name].values, np.float32) for name, (field, _) in TRUTH_VARIABLES.items()}
    valid = np.isfinite(f["laser_freeboard"])
    ice_truth = np.asarray(ds["ice_truth"].values)
    lead = valid & (ice_truth == 0)
    return FreeboardTruth(roughness=np.zeros_like(f["laser_freeboard"]), lead=lead, valid=valid, **f)

