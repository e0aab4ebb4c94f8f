"""The 2 km grid of a synthetic scene: AMSR2 brightness temperatures from the surface fractions of
each cell's own block, and smooth ERA5 fields (step 4 of seaice_jax.synthetic)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from seaice_jax.data import channels as ch
from seaice_jax.synthetic.surface import (
    FYI,
    ICE_SURFACES,
    LAND,
    NEW_ICE,
    NUM_SURFACES,
    OLD_ICE,
    THIN_FYI,
    WATER,
    YOUNG_ICE,
    gaussian_random_field,
)

# AMSR2 brightness temperatures (K) per surface, channels in channels.AMSR2_CHANNELS order.
_TB_H = {  # 6.9, 7.3, 10.7, 18.7, 23.8, 36.5, 89.0 GHz, h polarisation
    WATER: (80, 81, 87, 103, 120, 137, 185),
    NEW_ICE: (165, 165, 170, 185, 195, 205, 215),
    YOUNG_ICE: (200, 200, 203, 210, 215, 218, 220),
    THIN_FYI: (228, 228, 228, 228, 228, 225, 215),
    FYI: (232, 232, 231, 230, 228, 224, 212),
    OLD_ICE: (225, 225, 220, 205, 196, 180, 170),
    LAND: (238, 238, 238, 236, 236, 234, 230),
}
_TB_V = {
    WATER: (158, 159, 165, 183, 200, 212, 242),
    NEW_ICE: (230, 230, 232, 236, 238, 240, 240),
    YOUNG_ICE: (245, 245, 246, 246, 246, 245, 238),
    THIN_FYI: (250, 250, 249, 248, 246, 243, 230),
    FYI: (252, 252, 250, 248, 245, 240, 225),
    OLD_ICE: (245, 245, 238, 222, 212, 195, 180),
    LAND: (252, 252, 251, 250, 249, 247, 240),
}
_SUMMER_ICE_TB = ((240, 240, 241, 243, 245, 246, 245), (256, 256, 256, 256, 256, 255, 250))
_SUMMER_LAND_TB = ((255,) * 7, (268,) * 7)
# Footprint (Gaussian sigma, in 2 km cells), noise (K) and water-vapour sensitivity (K per kg m-2)
# per frequency; 89 GHz is the sharpest and the noisiest.
_TB_FOOTPRINT_CELLS = (10.0, 10.0, 7.0, 3.8, 4.0, 2.0, 0.85)
_TB_NOISE_K = (0.3, 0.3, 0.4, 0.5, 0.5, 0.6, 1.5)
_TB_VAPOUR_K = ((0.1, 0.1, 0.1, 0.5, 2.0, 0.6, 1.8), (0.05, 0.05, 0.05, 0.3, 1.2, 0.4, 1.0))
POND_TB_WEIGHT = 0.6  # share of a pond that passive microwave sees as open water


def _surface_tb(season: str) -> np.ndarray:
    """Brightness temperatures [NUM_SURFACES, 14] (K) in channels.AMSR2_CHANNELS order."""
    tb = np.zeros((NUM_SURFACES, 14), np.float32)
    for s in range(NUM_SURFACES):
        h, v = np.array(_TB_H[s], np.float32), np.array(_TB_V[s], np.float32)
        if season == "summer" and s in ICE_SURFACES:
            h, v = np.array(_SUMMER_ICE_TB[0], np.float32), np.array(_SUMMER_ICE_TB[1], np.float32)
            if s == OLD_ICE:
                h, v = h - 5.0, v - 5.0
        if season == "summer" and s == LAND:
            h, v = np.array(_SUMMER_LAND_TB[0], np.float32), np.array(_SUMMER_LAND_TB[1], np.float32)
        tb[s, 0::2], tb[s, 1::2] = h, v
    return tb



def block_mean(values: np.ndarray, factor: int) -> np.ndarray:
    """Mean of each whole factor x factor block starting at (0, 0): the 2 km grid of real files.

    values: [H, W] -> [floor(H / factor), floor(W / factor)] float32; the few edge pixels past the
    last whole block have no cell of their own.
    """
    h, w = values.shape
    gh, gw = h // factor, w // factor
    blocks = np.asarray(values[: gh * factor, : gw * factor], np.float64)
    return blocks.reshape(gh, factor, gw, factor).mean(axis=(1, 3)).astype(np.float32)


def era5_fields(rng: np.random.Generator, wind_u: np.ndarray, wind_v: np.ndarray,
                 ice_fraction_2km: np.ndarray, season: str) -> dict[str, np.ndarray]:
    """The six ERA5 variables on the 2 km grid in physical units (ERA5 ~ 30 km: very smooth)."""
    grid = ice_fraction_2km.shape
    smooth = lambda: gaussian_random_field(rng, grid, 8.0)  # noqa: E731  8 cells = 16 km
    ice_smooth = ndimage.gaussian_filter(ice_fraction_2km, 3.0, mode="nearest")
    if season == "winter":
        t_air = rng.uniform(244.0, 262.0) + 2.0 * smooth()
        t2m = t_air + (1.0 - ice_smooth) * rng.uniform(4.0, 10.0)
        skt = ice_smooth * (t_air - rng.uniform(0.5, 3.0)) + (1.0 - ice_smooth) * 271.4
        tcwv = np.clip(rng.uniform(1.5, 5.0) + 0.8 * smooth(), 0.3, None)
        tclw = np.clip(0.02 + 0.03 * smooth(), 0.0, None)
    else:
        t2m = rng.uniform(270.5, 275.0) + 0.8 * smooth()
        skt = ice_smooth * 272.8 + (1.0 - ice_smooth) * rng.uniform(272.0, 276.0) + 0.5 * smooth()
        tcwv = np.clip(rng.uniform(8.0, 18.0) + 2.5 * smooth(), 1.0, None)
        tclw = np.clip(0.05 + 0.06 * smooth(), 0.0, None)
    fields = {"u10m_rotated": wind_u, "v10m_rotated": wind_v, "t2m": t2m, "skt": skt,
              "tcwv": tcwv, "tclw": tclw}
    return {k: np.asarray(v, np.float32) for k, v in fields.items()}


def amsr2_fields(rng: np.random.Generator, fractions: np.ndarray, ponds_2km: np.ndarray,
                  era5: dict[str, np.ndarray], season: str,
                  footprint: bool) -> dict[str, np.ndarray]:
    """AMSR2 TBs (K) per 2 km cell from the surface fractions of its own block.

    fractions: [NUM_SURFACES, h, w] (sum 1 per cell); ponds_2km: [h, w] pond share of the cell's ice.
    """
    tb = _surface_tb(season)                                     # [S, 14]
    mixed = np.einsum("shw,sc->chw", fractions, tb)              # [14, h, w]
    ice_share = fractions[NEW_ICE:OLD_ICE + 1].sum(0)
    water_tb = tb[WATER][:, None, None]
    ice_tb = np.einsum("shw,sc->chw", fractions[NEW_ICE:OLD_ICE + 1], tb[NEW_ICE:OLD_ICE + 1])
    # ponds look like water to the radiometer (summer concentrations read low, as in reality)
    mixed += POND_TB_WEIGHT * ponds_2km[None] * (ice_share[None] * water_tb - ice_tb)
    # the atmosphere shows over the radiometrically cold open water; cloud liquid water at 89 GHz
    vapour = (era5["tcwv"] - 5.0) * fractions[WATER]
    out = {}
    for c, name in enumerate(ch.AMSR2_CHANNELS):
        freq, pol = divmod(c, 2)
        value = mixed[c] + _TB_VAPOUR_K[pol][freq] * vapour
        if freq == len(_TB_NOISE_K) - 1:
            value = value + 20.0 * era5["tclw"]
        if footprint:
            value = ndimage.gaussian_filter(value, _TB_FOOTPRINT_CELLS[freq], mode="nearest")
        value = value + _TB_NOISE_K[freq] * rng.standard_normal(value.shape)
        out[name] = value.astype(np.float32)
    return out

