"""Synthetic Sentinel-1 EW imagery: incidence angle, HH / HV backscatter with speckle and the HV noise
floor, swath no-data border (step 3 of seaice_jax.synthetic)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from seaice_jax.data import channels as ch
from seaice_jax.synthetic.surface import (
    FYI,
    NEW_ICE,
    OLD_ICE,
    THIN_FYI,
    WATER,
    YOUNG_ICE,
    Surface,
    gaussian_random_field,
)

SAR_LOOKS = {"rtt": 10.0, "raw": 3.0}  # equivalent number of looks of the intensity

# Water is computed from the wind instead (row kept for completeness).
SAR_SURFACE_DB = np.array([
    [-18.0, -0.50, -31.0, -0.10],  # water (unused: wind model)
    [-22.0, -0.25, -30.0, -0.10],  # new ice / nilas: dark
    [-18.0, -0.22, -27.0, -0.10],  # young ice
    [-16.5, -0.22, -25.0, -0.12],  # thin first-year ice
    [-14.5, -0.22, -23.5, -0.15],  # first-year ice
    [-10.5, -0.15, -18.5, -0.12],  # old ice
    [-9.0, -0.10, -19.0, -0.08],   # land
], np.float32)
SUMMER_ICE_OFFSET_DB = (-2.0, -1.5)   # wet snow lowers the ice backscatter (HH, HV)
SUMMER_OLD_ICE_DB = (-13.0, -21.0)    # old ice loses most of its winter contrast


def incidence_angle(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Degrees, ~18.9 near range (sample 0) to ~46.9 far range, slightly varying along track."""
    h, w = shape
    near, far = 18.9 + rng.uniform(-0.3, 0.3), 46.9 + rng.uniform(-0.3, 0.3)
    across = np.linspace(near, far, w, dtype=np.float32)[None, :]
    along = np.linspace(-0.15, 0.15, h, dtype=np.float32)[:, None]
    return (across + along).astype(np.float32)


def _water_backscatter_db(wind: np.ndarray, theta_off: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(HH, HV) dB of open water: steep fall with incidence, rising with wind speed (m/s)."""
    log_wind = np.log10(np.clip(wind, 1.0, 25.0) / 6.0)
    hh = -15.5 - 0.5 * theta_off + 12.0 * log_wind
    hv = -31.5 - 0.1 * theta_off + 6.0 * log_wind
    return hh, hv


def _hv_noise_floor_db(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Residual noise floor (~ -29.5..-28 dB) with the EW mode's five sub-swaths. [1, W]."""
    w = shape[1]
    x = np.linspace(0.0, 5.0, w, dtype=np.float32)
    within = x - np.floor(np.minimum(x, 4.999))
    base = rng.uniform(-30.0, -29.0)
    return (base + 1.2 * (2.0 * within - 1.0) ** 2)[None, :].astype(np.float32)


def sar_backscatter(rng: np.random.Generator, surface: Surface, theta: np.ndarray,
                     wind: np.ndarray, season: str, product: str,
                     texture: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(HH, HV) float32 dB [H, W] with speckle (no no-data yet). `texture`: the ice / land texture (dB)
    to use instead of a fresh one (a time series keeps its ice's texture)."""
    shape = surface.surface.shape
    spacing = ch.PIXEL_SPACING_M[product]
    theta_off = theta - 30.0
    params = SAR_SURFACE_DB.copy()
    if season == "summer":
        for s in (NEW_ICE, YOUNG_ICE, THIN_FYI, FYI):
            params[s, 0] += SUMMER_ICE_OFFSET_DB[0]
            params[s, 2] += SUMMER_ICE_OFFSET_DB[1]
        params[OLD_ICE, 0], params[OLD_ICE, 2] = SUMMER_OLD_ICE_DB
    s = surface.surface.astype(np.intp)
    hh = params[s, 0] + params[s, 1] * theta_off
    hv = params[s, 2] + params[s, 3] * theta_off
    # deformation / ridging texture on ice and terrain on land
    if texture is None:
        texture = 1.3 * gaussian_random_field(rng, shape, 150.0 / spacing) \
            + 1.0 * gaussian_random_field(rng, shape, 1500.0 / spacing)
    solid = surface.surface != WATER
    hh = np.where(solid, hh + texture, hh)
    hv = np.where(solid, hv + 0.8 * texture, hv)
    water_hh, water_hv = _water_backscatter_db(wind, theta_off)
    water = surface.surface == WATER
    hh = np.where(water, water_hh, hh)
    hv = np.where(water, water_hv, hv)
    hh_lin, hv_lin = 10.0 ** (hh / 10.0), 10.0 ** (hv / 10.0)
    if season == "summer":  # ponds: calm water on the floes, in linear power
        pond_hh, pond_hv = _water_backscatter_db(0.5 * wind, theta_off)
        p = surface.ponds
        hh_lin = (1 - p) * hh_lin + p * 10.0 ** (pond_hh / 10.0)
        hv_lin = (1 - p) * hv_lin + p * 10.0 ** (pond_hv / 10.0)
    looks = SAR_LOOKS[product]
    hh_lin = hh_lin * rng.gamma(looks, 1.0 / looks, shape) \
        + 10.0 ** (-32.0 / 10.0) * rng.gamma(looks, 1.0 / looks, shape)
    floor = 10.0 ** (_hv_noise_floor_db(shape, rng) / 10.0)
    hv_lin = hv_lin * rng.gamma(looks, 1.0 / looks, shape) + floor * rng.gamma(looks, 1.0 / looks, shape)
    return (10.0 * np.log10(hh_lin)).astype(np.float32), (10.0 * np.log10(hv_lin)).astype(np.float32)


def swath_no_data(rng: np.random.Generator, shape: tuple[int, int], product: str) -> np.ndarray:
    """bool [H, W]: a thin jagged no-data border at the near-range edge (and sometimes far range)."""
    h, w = shape
    scale = 2 if product == "raw" else 1
    mask = np.zeros(shape, bool)
    edges = [0] + ([1] if rng.random() < 0.4 else [])
    for edge in edges:
        width = scale * rng.uniform(2.0, 6.0) + scale * 1.5 * np.abs(
            ndimage.gaussian_filter1d(rng.standard_normal(h), 8.0, mode="wrap") * 6.0)
        width = np.minimum(width, 0.05 * w).astype(np.float32)
        x = np.arange(w, dtype=np.float32)[None, :]
        mask |= (x < width[:, None]) if edge == 0 else (x >= w - width[:, None])
    return mask

