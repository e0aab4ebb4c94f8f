"""Synthetic AI4Arctic scenes with pixel-level ice truth, written in the real products' format.

A scene is built in five steps, all from one seeded numpy generator (same seed -> same arrays):

1. Surface truth on the SAR grid: a smooth large-scale concentration field C (an ice edge plus
   ~12 km blobs) decides where ice is likely; multi-scale Gaussian random fields thresholded at the
   (1 - C) quantile make the floes (summer: small fragmented floes, winter: big floes); zero-level
   sets of smooth fields cut leads. Winter leads are mostly refrozen: they hold new / young ice and
   count as ICE in `ice_truth` (they are ice in the chart's CT too); only open leads are water.
   Summer ice carries melt ponds, which are ice in the truth but look like water to the sensors.
   A land blob at one edge (most scenes), and in some winter scenes a fast-ice band along it.
2. Chart: polygons much larger than floes (warped Voronoi cells, split along the open-water edge),
   one SIGRID row each; CT is the polygon's true ice fraction rounded to the SIGRID codes.
3. SAR: HH / HV in dB from per-surface means with incidence-angle slopes, wind-roughened water
   (brighter than ice in HH at low incidence and high wind), gamma speckle, an HV noise floor.
4. 2 km grid: AMSR2 brightness temperatures mixed from the surface fractions of each cell's own
   block, blurred by each frequency's footprint, plus noise; smooth ERA5 fields.
5. The dataset: RTT (80 m, standard-scaled, SIC / SOD / FLOE rasters) or raw (40 m, physical units,
   `polygon_icechart` + `polygon_codes`), see shared docs ai4arctic-format.md.

Format choices that the doc leaves open (ours):
  * raw `polygon_icechart` is int32 without `_FillValue`; every pixel belongs to a polygon (land
    pixels to land polygons, POLY_TYPE L); attr `chart_fill_value` = -1 names the unused fill.
    Polygon ids are not contiguous (readers must look ids up, not index rows).
  * raw SAR no-data is NaN (attr `variable_fill_value` NaN), RTT SAR no-data is 0; both at a thin
    jagged swath border. RTT charts are 255 there; `ice_truth` keeps the surface there.
  * `ice_truth` (uint8: 1 ice, 0 water, 255 land) is the one extra variable real files lack.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import os

import numpy as np
import xarray as xr
from scipy import ndimage, special

from seaice_jax.data import channels as ch
from seaice_jax.data import sigrid

PRODUCTS = ("rtt", "raw")
SEASONS = ("summer", "winter")
SERVICES = ("cis", "dmi")

# Surface classes of the truth map (ours). 1..5 are ice, ordered from thinnest to thickest.
WATER, NEW_ICE, YOUNG_ICE, THIN_FYI, FYI, OLD_ICE, LAND = range(7)
NUM_SURFACES = 7
ICE_SURFACES = (NEW_ICE, YOUNG_ICE, THIN_FYI, FYI, OLD_ICE)
CONSOLIDATED_SURFACES = (THIN_FYI, FYI, OLD_ICE)  # what floes are made of (leads cut them)

TRUTH_WATER, TRUTH_ICE, TRUTH_LAND = 0, 1, 255
NUM_TIEPOINTS = 21
MAX_DISTANCE_ZONE = 41
SAR_LOOKS = {"rtt": 10.0, "raw": 3.0}  # equivalent number of looks of the intensity

# SIGRID stage-of-development codes a chart may use for each surface (one is drawn per scene).
STAGE_CODES = {
    NEW_ICE: (81, 82),
    YOUNG_ICE: (83, 84, 85),
    THIN_FYI: (87, 88, 89),
    FYI: (86, 91, 93),
    OLD_ICE: (95, 96, 97),
}

# Chart regions of each service: name -> (lat min, lat max, lon min, lon max) of scene centres.
CHART_REGIONS = {
    "cis": {
        "EA": (66.0, 79.0, -80.0, -60.0),
        "WA": (69.0, 77.0, -140.0, -115.0),
        "HB": (56.0, 64.0, -93.0, -79.0),
        "EC": (47.0, 58.0, -64.0, -52.0),
    },
    "dmi": {
        "CapeFarewell": (59.0, 62.0, -48.0, -41.0),
        "CentralEast": (65.0, 72.0, -30.0, -19.0),
        "CentralWest": (64.0, 70.0, -57.0, -51.0),
        "NorthEast": (72.0, 80.0, -18.0, -6.0),
        "NorthWest": (70.0, 77.0, -68.0, -57.0),
        "SouthEast": (62.0, 65.0, -41.0, -34.0),
        "SouthWest": (60.0, 64.0, -52.0, -46.0),
        "Qaanaaq": (76.0, 78.0, -74.0, -66.0),
    },
}

# ---------------------------------------------------------------------------------------------
# Season parameters (ours; plausible, not fitted).


@dataclasses.dataclass(frozen=True)
class SeasonParams:
    floe_sigmas_m: tuple[float, ...]     # Gaussian scales of the floe field
    floe_weights: tuple[float, ...]
    concentration_bias: tuple[float, float]  # uniform range of the scene's mean logit of C
    lead_sigma_m: tuple[float, float]    # scale range of lead-generating fields
    lead_width_m: tuple[float, float]    # lead width range
    num_lead_families: int
    crack_sigmas_m: tuple[float, ...]    # floe-scale cracks that make floes separate pieces
    crack_width_m: float
    refrozen_share: float                # share of leads that are refrozen (ice)
    base_stage: tuple[int, ...]          # consolidated ice surface choices
    old_ice_probability: float
    months: tuple[int, ...]


SEASON_PARAMS = {
    "summer": SeasonParams(
        floe_sigmas_m=(150.0, 400.0, 1000.0), floe_weights=(0.7, 0.6, 0.4),
        concentration_bias=(-1.0, 2.0), lead_sigma_m=(2000.0, 5000.0), lead_width_m=(150.0, 400.0),
        num_lead_families=3, crack_sigmas_m=(250.0, 800.0), crack_width_m=70.0,
        refrozen_share=0.0, base_stage=(THIN_FYI, THIN_FYI, FYI),
        old_ice_probability=0.3, months=(6, 7, 8, 9),
    ),
    "winter": SeasonParams(
        floe_sigmas_m=(600.0, 2000.0, 6000.0), floe_weights=(0.3, 0.6, 0.8),
        concentration_bias=(0.0, 3.5), lead_sigma_m=(3000.0, 9000.0), lead_width_m=(80.0, 250.0),
        num_lead_families=3, crack_sigmas_m=(), crack_width_m=0.0,
        refrozen_share=0.7, base_stage=(FYI,),
        old_ice_probability=0.5, months=(12, 1, 2, 3, 4),
    ),
}

# SAR backscatter of each surface: (HH dB at 30 deg, HH slope dB/deg, HV dB at 30 deg, HV slope).
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


# ---------------------------------------------------------------------------------------------
# File names and times.


def _time_stream(start_time: dt.datetime, service: str) -> np.random.Generator:
    """A generator seeded by the time and service only, so names are a pure function of them."""
    stamp = int((start_time.replace(tzinfo=None) - dt.datetime(1970, 1, 1)).total_seconds())
    return np.random.default_rng([abs(stamp), SERVICES.index(service)])


def chart_region(start_time: dt.datetime, service: str) -> str:
    """The ice service's chart region of a scene (e.g. 'EA' for cis, 'CentralWest' for dmi)."""
    regions = sorted(CHART_REGIONS[service])
    return regions[int(_time_stream(start_time, service).integers(len(regions)))]


_S1_ORBIT_PERIOD_S = 12 * 86400 / 175  # 175 orbits per 12-day repeat cycle
# (reference time, absolute orbit, mission datatake id) per satellite, from real product names.
_S1_REFERENCE = {
    "S1A": (dt.datetime(2019, 4, 30, 10, 18, 30), 27020, 0x030B5B),
    "S1B": (dt.datetime(2019, 4, 30, 0, 0, 0), 15990, 0x01E2A0),
}
_S1B_END = dt.datetime(2021, 12, 23)


def _raw_name_pieces(start_time: dt.datetime, service: str) -> str:
    rng = _time_stream(start_time, service)
    mission = "S1A" if start_time >= _S1B_END or rng.random() < 0.5 else "S1B"
    ref_time, ref_orbit, ref_datatake = _S1_REFERENCE[mission]
    orbit = ref_orbit + int(math.floor((start_time - ref_time).total_seconds() / _S1_ORBIT_PERIOD_S))
    datatake = ref_datatake + int(round((orbit - ref_orbit) * 7.4)) + int(rng.integers(0, 4))
    unique_id = int(rng.integers(0, 0x10000))
    stop_time = start_time + dt.timedelta(seconds=64)
    fmt = "%Y%m%dT%H%M%S"
    sar = (f"{mission}_EW_GRDM_1SDH_{start_time.strftime(fmt)}_{stop_time.strftime(fmt)}_"
           f"{orbit:06d}_{datatake & 0xFFFFFF:06X}_{unique_id:04X}")
    region = chart_region(start_time, service)
    if service == "cis":
        chart = f"icechart_cis_SGRDI{region}_{start_time.strftime('%Y%m%d')}T1800Z_pl_a"
    else:
        chart_time = start_time.replace(second=0) - dt.timedelta(minutes=start_time.minute % 5)
        chart = f"icechart_dmi_{chart_time.strftime('%Y%m%d%H%M')}_{region}_RIC"
    return f"{sar}_{chart}"


def scene_file_name(product: str, start_time: dt.datetime, service: str) -> str:
    """File name of a scene: RTT `<YYYYMMDDTHHMMSS>_<service>_prep.nc`, raw the S1 + ice chart name.

    e.g. `20190430T101830_cis_prep.nc` and
    `S1A_EW_GRDM_1SDH_20190430T101830_20190430T101934_027020_030B5B_0A43_icechart_cis_SGRDIEA_20190430T1800Z_pl_a.nc`.
    A pure function of its arguments.
    """
    _check_choice("product", product, PRODUCTS)
    _check_choice("service", service, SERVICES)
    if product == "rtt":
        return f"{start_time.strftime('%Y%m%dT%H%M%S')}_{service}_prep.nc"
    return f"{_raw_name_pieces(start_time, service)}.nc"


def _check_choice(what: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{what} must be one of {', '.join(allowed)}, got {value!r}")


def default_start_time(seed: int, season: str) -> dt.datetime:
    """A sensing start time in the season's months of 2018..2021, drawn from the seed."""
    rng = np.random.default_rng([int(seed) % (2**63), 0x5EA5])
    months = SEASON_PARAMS[season].months
    year = int(rng.integers(2018, 2022))
    month = int(months[rng.integers(len(months))])
    day = int(rng.integers(1, 29))
    seconds = int(rng.integers(0, 86400))
    return dt.datetime(year, month, day) + dt.timedelta(seconds=seconds)


def resolve_service(service: str, seed: int) -> str:
    """'cis' / 'dmi' as given; 'mixed' draws one from the seed with the train split's 315:197 dmi:cis."""
    if service == "mixed":
        rng = np.random.default_rng([int(seed) % (2**63), 0xD31])
        return "dmi" if rng.random() < 315 / 512 else "cis"
    _check_choice("service", service, SERVICES)
    return service


# ---------------------------------------------------------------------------------------------
# Random fields.


def gaussian_random_field(
    rng: np.random.Generator, shape: tuple[int, int], sigma_px: float | tuple[float, float]
) -> np.ndarray:
    """Smooth Gaussian noise with unit marginal variance: float32 [H, W].

    Small scales: white noise through scipy's Gaussian filter. Large scales: white noise on a
    coarse lattice (spacing sigma / 2, margin 3 sigma) summed with Gaussian weights at each pixel,
    as two matrix products (cost ~ H * W * W / spacing), and normalised per pixel by the exact
    standard deviation so fields wider than the scene stay unit-variance.
    """
    sy, sx = (sigma_px, sigma_px) if np.isscalar(sigma_px) else sigma_px
    sy, sx = float(sy), float(sx)
    if min(sy, sx) <= 6.0:
        field = ndimage.gaussian_filter(rng.standard_normal(shape, dtype=np.float32), (sy, sx),
                                        mode="wrap")
        return (field / max(float(field.std()), 1e-12)).astype(np.float32)
    weights_y = _gaussian_weights(shape[0], sy)
    weights_x = _gaussian_weights(shape[1], sx)
    noise = rng.standard_normal((weights_y.shape[1], weights_x.shape[1]), dtype=np.float32)
    field = weights_y @ noise @ weights_x.T
    std = np.sqrt(np.outer((weights_y ** 2).sum(1), (weights_x ** 2).sum(1)))
    return (field / std).astype(np.float32)


def _gaussian_weights(length: int, sigma: float) -> np.ndarray:
    """Weights [length, K] of K coarse lattice points (spacing sigma / 2) for each pixel centre."""
    spacing = sigma / 2.0
    margin = 3.0 * sigma
    lattice = np.arange(-margin, length + margin, spacing, dtype=np.float32)
    pixels = np.arange(length, dtype=np.float32)[:, None]
    return np.exp(-0.5 * ((pixels - lattice[None, :]) / sigma) ** 2).astype(np.float32)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return (1.0 / (1.0 + np.exp(-x))).astype(np.float32)


def _unit_ramp(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """A linear ramp in [-1, 1] along a random direction: float32 [H, W]."""
    angle = rng.uniform(0, 2 * np.pi)
    y = np.linspace(-1, 1, shape[0], dtype=np.float32)[:, None]
    x = np.linspace(-1, 1, shape[1], dtype=np.float32)[None, :]
    ramp = np.cos(angle) * x + np.sin(angle) * y
    return (ramp / max(float(np.abs(ramp).max()), 1e-6)).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Surface truth.


@dataclasses.dataclass
class Surface:
    """The truth of one scene on its SAR grid.

    surface: int8 [H, W] surface class (WATER..LAND); concentration: float32 [H, W] the large-scale
    ice probability field; ponds: float32 [H, W] melt-pond fraction on ice (0 in winter);
    distance_km: float32 [H, W] distance to land; fast_ice: bool [H, W].
    """

    surface: np.ndarray
    concentration: np.ndarray
    ponds: np.ndarray
    distance_km: np.ndarray
    fast_ice: np.ndarray

    @property
    def ice(self) -> np.ndarray:
        return (self.surface >= NEW_ICE) & (self.surface <= OLD_ICE)

    @property
    def land(self) -> np.ndarray:
        return self.surface == LAND

    def truth(self) -> np.ndarray:
        """uint8 [H, W]: 1 ice, 0 water, 255 land."""
        out = np.where(self.ice, TRUTH_ICE, TRUTH_WATER).astype(np.uint8)
        out[self.land] = TRUTH_LAND
        return out


def _land_mask(rng: np.random.Generator, shape: tuple[int, int], spacing_m: float,
               probability: float) -> np.ndarray:
    """bool [H, W]: a coast-like blob at one random edge (or no land), small islands removed."""
    if rng.random() >= probability:
        return np.zeros(shape, bool)
    h, w = shape
    edge = int(rng.integers(4))
    depth = rng.uniform(0.06, 0.22)
    # distance from the chosen edge (0 left, 1 right, 2 top, 3 bottom) in scene fractions
    if edge in (0, 1):
        t = np.linspace(0.0, 1.0, w, dtype=np.float32)[None, :]
    else:
        t = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None]
    if edge in (1, 3):
        t = 1.0 - t
    coast = 0.05 * gaussian_random_field(rng, shape, 6000.0 / spacing_m) \
        + 0.015 * gaussian_random_field(rng, shape, 800.0 / spacing_m)
    land = t < depth + coast
    labels, count = ndimage.label(land)
    if count:
        sizes = np.bincount(labels.ravel())
        keep = sizes >= max(50, int(0.002 * h * w))
        keep[0] = False
        land = keep[labels]
    return land


def _distance_to_land_km(rng: np.random.Generator, land: np.ndarray, spacing_m: float) -> np.ndarray:
    """float32 [H, W] km to the nearest land pixel; without land, to a virtual coast 20..150 km away."""
    if land.any():
        return (ndimage.distance_transform_edt(~land) * spacing_m / 1000.0).astype(np.float32)
    offset = rng.uniform(20.0, 150.0)
    extent_km = max(land.shape) * spacing_m / 1000.0
    return (offset + 0.5 * extent_km * (1.0 + _unit_ramp(rng, land.shape))).astype(np.float32)


# Upper bounds (km) of the distance zones 1..41; zones widen with distance (ours).
DISTANCE_ZONE_EDGES_KM = np.array([0.5 * k * (1.0 + k / 8.0) for k in range(1, MAX_DISTANCE_ZONE)],
                                  np.float32)


def distance_zone(distance_km: np.ndarray, land: np.ndarray) -> np.ndarray:
    """Nonlinear distance-to-land zone index: 0 on land, 1..41 at sea. float32 [H, W]."""
    zone = 1 + np.searchsorted(DISTANCE_ZONE_EDGES_KM, distance_km, side="right")
    zone = np.minimum(zone, MAX_DISTANCE_ZONE).astype(np.float32)
    zone[land] = 0.0
    return zone


def _level_set_lines(rng: np.random.Generator, shape: tuple[int, int], sigmas_px: tuple[float, float],
                     width_px: float) -> np.ndarray:
    """bool [H, W]: thin curves (zero-level set of a smooth field) about width_px wide, >= 1 px.

    Anisotropic fields are rotated by a random angle, so the curves have no preferred axis.
    """
    field = _rotated_field(rng, shape, sigmas_px) if sigmas_px[0] != sigmas_px[1] \
        else gaussian_random_field(rng, shape, sigmas_px)
    # |field| < a is a band of width ~ 2a / |grad field|, and |grad field| ~ 1 / sigma
    half_width = max(width_px, 1.2) / (2.0 * min(sigmas_px))
    return np.abs(field) < half_width


def _rotated_field(rng: np.random.Generator, shape: tuple[int, int],
                   sigmas_px: tuple[float, float]) -> np.ndarray:
    """Anisotropic unit Gaussian field [H, W] whose long axis points in a random direction."""
    side = int(math.ceil(math.hypot(*shape))) + 4
    angle = rng.uniform(0.0, 180.0)
    big = ndimage.rotate(gaussian_random_field(rng, (side, side), sigmas_px), angle, reshape=False,
                         order=1, mode="nearest")
    top, left = (side - shape[0]) // 2, (side - shape[1]) // 2
    return big[top:top + shape[0], left:left + shape[1]]


def _lead_masks(rng: np.random.Generator, shape: tuple[int, int], spacing_m: float,
                params: SeasonParams, concentration: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(open, refrozen) bool [H, W]: leads and floe-scale cracks as zero-level sets of smooth fields.

    Cracks (summer) separate floes where the pack is loose; compact pack (C ~ 1) keeps few.
    """
    open_leads = np.zeros(shape, bool)
    refrozen = np.zeros(shape, bool)
    for _ in range(params.num_lead_families):
        sigma = rng.uniform(*params.lead_sigma_m) / spacing_m
        stretch = rng.uniform(1.2, 3.0)
        sigmas = (sigma * stretch, sigma / stretch) if rng.random() < 0.5 else (sigma / stretch, sigma * stretch)
        lead = _level_set_lines(rng, shape, sigmas, rng.uniform(*params.lead_width_m) / spacing_m)
        # leads exist only along part of each level set (they end in the pack)
        lead &= gaussian_random_field(rng, shape, 2.0 * sigma) > -0.3
        if params.refrozen_share > 0:
            frozen_here = gaussian_random_field(rng, shape, sigma) < special.ndtri(params.refrozen_share)
        else:
            frozen_here = np.zeros(shape, bool)
        refrozen |= lead & frozen_here
        open_leads |= lead & ~frozen_here
    for crack_sigma in params.crack_sigmas_m:
        sigma = crack_sigma / spacing_m
        crack = _level_set_lines(rng, shape, (sigma, sigma), params.crack_width_m / spacing_m)
        crack_probability = np.clip(0.25 + 1.5 * (1.0 - concentration), 1e-4, 1.0 - 1e-4)
        present = gaussian_random_field(rng, shape, 20.0 * sigma) < special.ndtri(crack_probability)
        open_leads |= crack & present
    return open_leads & ~refrozen, refrozen


def _make_surface(rng: np.random.Generator, shape: tuple[int, int], product: str, season: str,
                  service: str) -> Surface:
    params = SEASON_PARAMS[season]
    spacing = float(ch.PIXEL_SPACING_M[product])
    land = _land_mask(rng, shape, spacing, probability=0.85 if service == "dmi" else 0.7)
    distance_km = _distance_to_land_km(rng, land, spacing)

    # Large-scale ice probability: blobs + an ice edge across the scene.
    bias = rng.uniform(*params.concentration_bias)
    edge_strength = rng.uniform(0.0, 2.0)
    logit = 1.2 * gaussian_random_field(rng, shape, 12000.0 / spacing) \
        + edge_strength * _unit_ramp(rng, shape) + bias
    concentration = _sigmoid(2.0 * logit)

    floes = sum(wt * gaussian_random_field(rng, shape, s / spacing)
                for s, wt in zip(params.floe_sigmas_m, params.floe_weights))
    floes = floes / math.sqrt(sum(wt * wt for wt in params.floe_weights))
    threshold = special.ndtri(np.clip(1.0 - concentration, 1e-4, 1.0 - 1e-4)).astype(np.float32)
    ice = floes > threshold

    open_leads, refrozen = _lead_masks(rng, shape, spacing, params, concentration)
    base = params.base_stage[int(rng.integers(len(params.base_stage)))]
    surface = np.where(ice, base, WATER).astype(np.int8)
    if rng.random() < params.old_ice_probability:
        old_share = rng.uniform(0.1, 0.6)
        old = gaussian_random_field(rng, shape, 10000.0 / spacing) > special.ndtri(1.0 - old_share)
        surface[ice & old] = OLD_ICE
    thin_kind = gaussian_random_field(rng, shape, 3000.0 / spacing) > 0
    surface[refrozen & ice] = np.where(thin_kind, YOUNG_ICE, NEW_ICE)[refrozen & ice]
    surface[open_leads] = WATER

    fast_ice = np.zeros(shape, bool)
    if season == "winter" and land.any() and rng.random() < 0.5:
        width = rng.uniform(2.0, 6.0)
        wobble = 1.0 + 0.3 * gaussian_random_field(rng, shape, 4000.0 / spacing)
        fast_ice = (distance_km < width * wobble) & ~land
        fast_ice = ndimage.binary_opening(fast_ice, iterations=2)
        surface[fast_ice] = FYI
    surface[land] = LAND

    ponds = np.zeros(shape, np.float32)
    if season == "summer":
        ponds = np.clip(0.2 + 0.12 * gaussian_random_field(rng, shape, 300.0 / spacing)
                        + 0.08 * gaussian_random_field(rng, shape, 8000.0 / spacing), 0.0, 0.6)
        ponds[~((surface >= NEW_ICE) & (surface <= OLD_ICE))] = 0.0
    return Surface(surface, concentration, ponds.astype(np.float32), distance_km, fast_ice)


# ---------------------------------------------------------------------------------------------
# The chart.


@dataclasses.dataclass
class Chart:
    """polygon_index: int32 [H, W] 0..P-1; rows: P SIGRID rows (dicts of codes + POLY_TYPE)."""

    polygon_index: np.ndarray
    rows: list[dict]


def _warped_voronoi(rng: np.random.Generator, shape: tuple[int, int], num_cells: int,
                    candidates: np.ndarray) -> np.ndarray:
    """int32 [H, W] nearest-seed index with coordinates warped by smooth noise (wavy borders)."""
    h, w = shape
    flat = np.flatnonzero(candidates.ravel()) if candidates.any() else np.arange(h * w)
    picks = rng.choice(flat, size=min(num_cells, flat.size), replace=False)
    seeds_y, seeds_x = np.divmod(picks, w)
    scale = max(h, w)
    warp_y = 0.04 * scale * gaussian_random_field(rng, shape, scale / 6.0)
    warp_x = 0.04 * scale * gaussian_random_field(rng, shape, scale / 6.0)
    yy = np.arange(h, dtype=np.float32)[:, None] + warp_y
    xx = np.arange(w, dtype=np.float32)[None, :] + warp_x
    best = np.full(shape, np.inf, np.float32)
    index = np.zeros(shape, np.int32)
    for k, (sy, sx) in enumerate(zip(seeds_y, seeds_x)):
        d2 = (yy - sy) ** 2 + (xx - sx) ** 2
        closer = d2 < best
        best[closer] = d2[closer]
        index[closer] = k
    return index


def _components(mask: np.ndarray, min_pixels: int) -> tuple[np.ndarray, int]:
    """Connected components of `mask` with at least min_pixels: (labels int32 [H, W] 0 = none, count)."""
    labels, count = ndimage.label(mask, structure=np.ones((3, 3)))
    if count == 0:
        return labels.astype(np.int32), 0
    sizes = np.bincount(labels.ravel())
    keep = sizes >= min_pixels
    keep[0] = False
    remap = np.zeros(count + 1, np.int32)
    remap[keep] = np.arange(1, int(keep.sum()) + 1)
    return remap[labels], int(keep.sum())


def _polygon_partition(rng: np.random.Generator, surface: Surface, product: str) -> tuple[np.ndarray, list[str]]:
    """Chart polygons: (index int32 [H, W] 0..P-1, kind per polygon: 'sea' | 'fast' | 'land').

    Sea polygons are warped Voronoi cells (~6..14 per 1000 x 1000 px RTT scene, 3 at least), each
    split along the open-water edge where that leaves a real open-water part, as analysts draw.
    """
    shape = surface.surface.shape
    h, w = shape
    spacing = ch.PIXEL_SPACING_M[product]
    area_rtt_units = h * w * (spacing / ch.PIXEL_SPACING_M["rtt"]) ** 2 / 1e6
    num_cells = max(3, int(round(rng.uniform(6, 14) * area_rtt_units)))
    sea = ~surface.land & ~surface.fast_ice
    cells = _warped_voronoi(rng, shape, num_cells, sea)
    open_part = surface.concentration < 0.02
    split_key = cells * 2 + open_part.astype(np.int32)
    # keep a split only where the open-water part is substantial, else merge it back
    min_part = max(200, int(0.1 * h * w / num_cells))
    counts = np.bincount(split_key[sea], minlength=2 * num_cells)
    for cell in range(num_cells):
        if min(counts[2 * cell], counts[2 * cell + 1]) < min_part:
            split_key[split_key == 2 * cell + 1] = 2 * cell
    index = np.full(shape, -1, np.int32)
    kinds: list[str] = []
    used_keys = np.unique(split_key[sea])
    remap = np.full(2 * num_cells, -1, np.int32)
    remap[used_keys] = np.arange(used_keys.size)
    index[sea] = remap[split_key[sea]]
    kinds += ["sea"] * int(used_keys.size)
    for mask, kind, min_pixels in ((surface.fast_ice, "fast", 1), (surface.land, "land", 1)):
        labels, count = _components(mask, min_pixels)
        if count:
            index[labels > 0] = len(kinds) + labels[labels > 0] - 1
            kinds += [kind] * count
    assert (index >= 0).all()
    return index, kinds


@dataclasses.dataclass(frozen=True)
class AnalystHabits:
    """Per-polygon choices of the analyst, drawn before the fractions are known (arrays [P])."""

    water_code: np.ndarray      # CT for open water: mostly 1 (open water), some 0 / 2
    unsure: np.ndarray          # bool: writes a range code such as 57 (5..7 tenths)
    leaves_ca_empty: np.ndarray  # bool: leaves CA = -9 when there is a single ice type
    error: np.ndarray           # added to the true ice fraction before coding


def _analyst_habits(seed: int, num: int, analyst_error: float) -> AnalystHabits:
    """Own streams, so imagery and truth do not depend on analyst_error (label-noise ablations)."""
    codes_rng = np.random.default_rng([int(seed) % (2**63), 1])
    noise_rng = np.random.default_rng([int(seed) % (2**63), 2])
    return AnalystHabits(
        water_code=codes_rng.choice(np.array([1, 1, 1, 0, 2]), size=num),
        unsure=codes_rng.random(num) < 0.15,
        leaves_ca_empty=codes_rng.random(num) < 0.7,
        error=analyst_error * noise_rng.standard_normal(num),
    )


def concentration_code(fraction: float, *, water_code: int = 1, unsure: bool = False) -> int:
    """SIGRID CT code of an ice fraction in [0, 1].

    < 5 % -> water_code (0, 1 or 2); > 95 % -> 91; else the nearest tenth 10..90, or where the
    analyst is unsure and the tenth is 2..8 the range code around it (0.6 -> 57). The code's
    concentration is always within 0.05 of `fraction`.
    """
    if fraction < 0.05:
        return int(water_code)
    if fraction > 0.95:
        return 91
    tenths = int(math.floor(fraction * 10.0 + 0.5))
    if unsure and 2 <= tenths <= 8:
        return 10 * (tenths - 1) + (tenths + 1)
    return 10 * min(max(tenths, 1), 9)


def _floe_size_code(diameter_m: float) -> int:
    """SIGRID form code of a floe diameter: 2 cake .. 7 giant (WMO sizes)."""
    for code, upper in ((2, 20.0), (3, 100.0), (4, 500.0), (5, 2000.0), (6, 10000.0)):
        if diameter_m < upper:
            return code
    return 7


def _allocate_tenths(total_tenths: int, shares: dict[int, float]) -> dict[int, int]:
    """Split `total_tenths` over ice types by largest remainder; at most 3 types, none empty."""
    raw = {s: total_tenths * v for s, v in shares.items() if v > 0}
    alloc = {s: int(math.floor(x)) for s, x in raw.items()}
    leftover = total_tenths - sum(alloc.values())
    for s in sorted(raw, key=lambda s: raw[s] - alloc[s], reverse=True)[:leftover]:
        alloc[s] += 1
    alloc = {s: n for s, n in alloc.items() if n > 0}
    while len(alloc) > 3:  # SIGRID has three partial slots: give the smallest to the largest
        smallest = min(alloc, key=alloc.get)
        largest = max(alloc, key=alloc.get)
        alloc[largest] += alloc.pop(smallest)
    return alloc


def _empty_row(poly_id: int, poly_type: str) -> dict:
    row = {c: sigrid.NOT_FILLED for c in sigrid.CODE_COLUMNS}
    row["id"] = poly_id
    row["POLY_TYPE"] = poly_type
    return row


def _sea_row(poly_id: int, fraction: float, type_counts: np.ndarray, floe_code: int,
             stage_codes: dict[int, int], water_code: int, unsure: bool, leaves_ca_empty: bool) -> dict:
    ct = concentration_code(fraction, water_code=water_code, unsure=unsure)
    if sigrid.concentration_from_ct(ct) == 0.0:
        row = _empty_row(poly_id, "W")
        row["CT"] = ct
        return row
    row = _empty_row(poly_id, "I")
    row["CT"] = ct
    total_tenths = int(round(10 * sigrid.concentration_from_ct(ct)))
    ice_total = float(sum(type_counts[s] for s in ICE_SURFACES))
    shares = {s: float(type_counts[s]) / ice_total for s in ICE_SURFACES} if ice_total else {FYI: 1.0}
    alloc = _allocate_tenths(total_tenths, shares)
    ordered = sorted(alloc, reverse=True)  # A = thickest
    for slot, s in zip("ABC", ordered):
        row[f"C{slot}"] = 10 * alloc[s] if len(ordered) > 1 else ct
        row[f"S{slot}"] = stage_codes[s]
        row[f"F{slot}"] = floe_code if s in CONSOLIDATED_SURFACES else sigrid.NOT_FILLED
    if len(ordered) == 1 and leaves_ca_empty:  # real charts often leave CA empty for one type
        row["CA"] = sigrid.NOT_FILLED
    return row


def _median_floe_diameter(surface: Surface, index: np.ndarray, num_polygons: int,
                          spacing_m: float) -> np.ndarray:
    """float [P]: typical floe diameter (m) of the consolidated ice in each polygon.

    Touching floes merge into one connected component, so component areas overstate floe size.
    Instead: the median distance t of floe pixels to the nearest non-floe pixel; for a disk of
    diameter D the median is D (1 - 1/sqrt(2)) / 2, so D ~ 6.8 t (narrow necks split floes).
    """
    consolidated = np.isin(surface.surface, CONSOLIDATED_SURFACES)
    # distance to the floe edge; + half a pixel so a one-pixel floe is one pixel across
    inside = ndimage.distance_transform_edt(consolidated)[consolidated] - 0.5
    ids = index[consolidated]
    order = np.argsort(ids, kind="stable")
    ids, inside = ids[order], inside[order]
    bounds = np.searchsorted(ids, np.arange(num_polygons + 1))
    out = np.zeros(num_polygons)
    for p in range(num_polygons):
        part = inside[bounds[p]:bounds[p + 1]]
        out[p] = 6.8 * float(np.median(part)) * spacing_m if part.size else 0.0
    return out


def _make_chart(rng: np.random.Generator, seed: int, surface: Surface, product: str, season: str,
                analyst_error: float) -> Chart:
    index, kinds = _polygon_partition(rng, surface, product)
    num = len(kinds)
    habits = _analyst_habits(seed, num, analyst_error)
    flat = index.ravel()
    valid_counts = np.bincount(flat[~surface.land.ravel()], minlength=num)
    type_counts = np.stack([np.bincount(flat[surface.surface.ravel() == s], minlength=num)
                            for s in range(NUM_SURFACES)], axis=1)  # [P, NUM_SURFACES]
    diameters = _median_floe_diameter(surface, index, num, ch.PIXEL_SPACING_M[product])
    stage_codes = {s: int(rng.choice(STAGE_CODES[s])) for s in ICE_SURFACES}
    if season == "summer":
        stage_codes[FYI] = int(rng.choice([86, 91]))
    # polygon ids are not contiguous: readers must look them up
    ids = np.sort(rng.choice(np.arange(1, 4 * num + 10), size=num, replace=False))
    rows = []
    for p, kind in enumerate(kinds):
        if kind == "land":
            rows.append(_empty_row(int(ids[p]), "L"))
            continue
        if kind == "fast":
            row = _empty_row(int(ids[p]), "I")
            row.update(CT=92, SA=stage_codes[FYI], FA=sigrid.FAST_ICE_FLOE_CODE)
            rows.append(row)
            continue
        ice = type_counts[p, NEW_ICE:OLD_ICE + 1].sum()
        fraction = float(np.clip(ice / max(valid_counts[p], 1) + habits.error[p], 0.0, 1.0))
        rows.append(_sea_row(int(ids[p]), fraction, type_counts[p], _floe_size_code(diameters[p]),
                             stage_codes, int(habits.water_code[p]), bool(habits.unsure[p]),
                             bool(habits.leaves_ca_empty[p])))
    return Chart(index, rows)


def polygon_code_lines(rows: list[dict]) -> list[str]:
    """`polygon_codes` strings: the header, then `id;CT;...;POLY_TYPE` per polygon."""
    lines = [ch.POLYGON_CODES_HEADER]
    for row in rows:
        lines.append(";".join([str(row["id"])] + [str(row[c]) for c in sigrid.CODE_COLUMNS]
                              + [row["POLY_TYPE"]]))
    return lines


def chart_rasters(chart: Chart) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(SIC, SOD, FLOE) uint8 [H, W] from the polygon rows with the SIGRID rules (sigrid.py)."""
    classes = np.array([sigrid.polygon_classes(row) for row in chart.rows], np.uint8).reshape(-1, 3)
    return tuple(classes[chart.polygon_index, k] for k in range(3))


# ---------------------------------------------------------------------------------------------
# Sensors.


def _incidence_angle(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
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


def _sar_backscatter(rng: np.random.Generator, surface: Surface, theta: np.ndarray,
                     wind: np.ndarray, season: str, product: str) -> tuple[np.ndarray, np.ndarray]:
    """(HH, HV) float32 dB [H, W] with speckle (no no-data yet)."""
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


def _swath_no_data(rng: np.random.Generator, shape: tuple[int, int], product: str) -> np.ndarray:
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


def block_mean(values: np.ndarray, factor: int) -> np.ndarray:
    """Mean of each factor x factor block starting at (0, 0); partial edge blocks use their pixels.

    values: [H, W] -> [ceil(H / factor), ceil(W / factor)] float32.
    """
    h, w = values.shape
    gh, gw = -(-h // factor), -(-w // factor)
    padded = np.zeros((gh * factor, gw * factor), np.float64)
    counts = np.zeros_like(padded)
    padded[:h, :w] = values
    counts[:h, :w] = 1.0
    sums = padded.reshape(gh, factor, gw, factor).sum(axis=(1, 3))
    n = counts.reshape(gh, factor, gw, factor).sum(axis=(1, 3))
    return (sums / n).astype(np.float32)


def _era5_fields(rng: np.random.Generator, wind_u: np.ndarray, wind_v: np.ndarray,
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


def _amsr2_fields(rng: np.random.Generator, fractions: np.ndarray, ponds_2km: np.ndarray,
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


def _tie_point_geolocation(rng: np.random.Generator, shape: tuple[int, int], product: str,
                           service: str, region: str) -> dict[str, np.ndarray]:
    """Tie-point lines / samples and lat / lon (float64) of a scene centred in the chart region."""
    lat_min, lat_max, lon_min, lon_max = CHART_REGIONS[service][region]
    lat0, lon0 = rng.uniform(lat_min, lat_max), rng.uniform(lon_min, lon_max)
    heading = np.deg2rad(rng.choice([-12.0, 192.0]) + rng.uniform(-4.0, 4.0))  # asc / desc pass
    spacing = ch.PIXEL_SPACING_M[product]
    n_lines, n_samples = min(NUM_TIEPOINTS, shape[0]), min(NUM_TIEPOINTS, shape[1])
    lines = np.linspace(0, shape[0] - 1, n_lines).round()
    samples = np.linspace(0, shape[1] - 1, n_samples).round()
    along = (lines[:, None] - (shape[0] - 1) / 2) * spacing      # metres along track
    across = (samples[None, :] - (shape[1] - 1) / 2) * spacing   # metres across track
    north = along * np.cos(heading) - across * np.sin(heading)
    east = along * np.sin(heading) + across * np.cos(heading)
    lat = lat0 + north / 111_195.0
    lon = lon0 + east / (111_195.0 * np.cos(np.deg2rad(lat)))
    return {"lines": lines.astype(np.float64), "samples": samples.astype(np.float64),
            "lat": lat.astype(np.float64), "lon": lon.astype(np.float64)}


# ---------------------------------------------------------------------------------------------
# The scene.


def _scaled(name: str, values: np.ndarray) -> np.ndarray:
    mean, std = ch.NORM_STATS[name]
    return ((values - mean) / std).astype(np.float32)


def synthesize_scene(
    product: str,
    season: str,
    size: tuple[int, int],
    seed: int,
    *,
    service: str = "cis",
    analyst_error: float = 0.0,
    start_time: dt.datetime | None = None,
    amsr2_footprint: bool = True,
) -> xr.Dataset:
    """One synthetic scene in the format of the real `product` ('rtt' or 'raw').

    size: (H, W) SAR pixels. service: 'cis', 'dmi' or 'mixed' (drawn from the seed). analyst_error:
    std of noise added to each polygon's true ice fraction before it is coded as CT. start_time:
    sensing start (default drawn from the seed within the season). amsr2_footprint: blur each AMSR2
    frequency by its footprint (False: each cell sees only its own block, plus noise).
    Deterministic: the same arguments give identical arrays.
    """
    _check_choice("product", product, PRODUCTS)
    _check_choice("season", season, SEASONS)
    h, w = (int(size[0]), int(size[1]))
    if h < 8 or w < 8:
        raise ValueError(f"size must be at least 8 x 8 pixels, got {h} x {w}")
    if analyst_error < 0:
        raise ValueError(f"analyst_error must be >= 0, got {analyst_error}")
    service = resolve_service(service, seed)
    start_time = start_time or default_start_time(seed, season)
    rng = np.random.default_rng(int(seed) % (2**63))
    shape = (h, w)
    factor = ch.PIXELS_PER_2KM[product]
    spacing = ch.PIXEL_SPACING_M[product]

    surface = _make_surface(rng, shape, product, season, service)
    chart = _make_chart(rng, seed, surface, product, season, analyst_error)

    # wind: ERA5 scale field on the SAR grid (its 2 km block means are the ERA5 values) + gusts
    mean_u, mean_v = rng.normal(0.7, 5.0), rng.normal(0.6, 5.0)
    wind_u = mean_u + 2.0 * gaussian_random_field(rng, shape, 15000.0 / spacing)
    wind_v = mean_v + 2.0 * gaussian_random_field(rng, shape, 15000.0 / spacing)
    gusts = 1.0 + 0.15 * gaussian_random_field(rng, shape, 1000.0 / spacing)
    wind_speed = np.hypot(wind_u, wind_v) * gusts

    theta = _incidence_angle(rng, shape)
    hh_db, hv_db = _sar_backscatter(rng, surface, theta, wind_speed, season, product)
    no_data = _swath_no_data(rng, shape, product)
    zone = distance_zone(surface.distance_km, surface.land)

    fractions = np.stack([block_mean((surface.surface == s).astype(np.float32), factor)
                          for s in range(NUM_SURFACES)])
    ice_2km = fractions[NEW_ICE:OLD_ICE + 1].sum(0)
    ponds_2km = block_mean(surface.ponds, factor) / np.maximum(ice_2km, 1e-6)
    era5 = _era5_fields(rng, block_mean(wind_u, factor), block_mean(wind_v, factor), ice_2km, season)
    amsr2 = _amsr2_fields(rng, fractions, np.clip(ponds_2km, 0.0, 1.0), era5, season, amsr2_footprint)
    geo = _tie_point_geolocation(rng, shape, product, service, chart_region(start_time, service))

    name = scene_file_name(product, start_time, service)[:-len(".nc")]
    return _assemble_dataset(product, name, start_time, service, season, surface, chart, hh_db,
                             hv_db, no_data, theta, zone, amsr2, era5, geo)


def _assemble_dataset(product, name, start_time, service, season, surface, chart, hh_db, hv_db,
                      no_data, theta, zone, amsr2, era5, geo) -> xr.Dataset:
    sar_dims, grid_dims, tie_dims = ch.SAR_DIMS, ch.GRID_2KM_DIMS, ch.TIEPOINT_DIMS
    rtt = product == "rtt"
    data: dict[str, xr.Variable] = {}
    sar_units = {"nersc_sar_primary": "dB", "nersc_sar_secondary": "dB",
                 "sar_incidenceangle": "degrees", "distance_map": "1"}
    for var, values in (("nersc_sar_primary", hh_db), ("nersc_sar_secondary", hv_db)):
        values = np.where(no_data, np.nan, values).astype(np.float32)
        if rtt:
            values = np.nan_to_num(_scaled(var, values), nan=0.0)
        fill = np.float32(0.0) if rtt else np.float32(np.nan)
        data[var] = xr.Variable(sar_dims, values, {"variable_fill_value": fill, "units": sar_units[var]})
    for var, values in (("sar_incidenceangle", theta), ("distance_map", zone)):
        values = _scaled(var, values) if rtt else values.astype(np.float32)
        data[var] = xr.Variable(sar_dims, values, {"variable_fill_value": np.float32(0.0 if rtt else np.nan),
                                                   "units": sar_units[var]})
    for var, values in amsr2.items():
        data[var] = xr.Variable(grid_dims, _scaled(var, values) if rtt else values, {"units": "K"})
    for var, values in era5.items():
        data[var] = xr.Variable(grid_dims, _scaled(var, values) if rtt else values,
                                {"units": ch.ERA5_UNITS[var]})

    if rtt:
        sic, sod, floe = chart_rasters(chart)
        for var, values in zip(ch.CHART_NAMES, (sic, sod, floe)):
            values = values.copy()
            values[no_data | surface.land] = ch.CHART_FILL
            data[var] = xr.Variable(sar_dims, values.astype(np.uint8),
                                    {"polygon": "polygon_icechart", "chart_fill_value": ch.CHART_FILL})
    else:
        ids = np.array([row["id"] for row in chart.rows], np.int32)
        data["polygon_icechart"] = xr.Variable(
            sar_dims, ids[chart.polygon_index],
            {"chart_fill_value": np.int32(-1), "long_name": "ice chart polygon id (see polygon_codes)"})
        data["polygon_codes"] = xr.Variable(
            ("polygon_codes_rows",), np.array(polygon_code_lines(chart.rows), dtype=object),
            {"long_name": "SIGRID-3 codes per polygon, ';'-separated, row 0 = header"})

    data["ice_truth"] = xr.Variable(sar_dims, surface.truth(), {
        "long_name": "synthetic pixel truth", "flag_values": np.array([0, 1, 255], np.uint8),
        "flag_meanings": "water ice land"})
    data["sar_grid_line"] = xr.Variable((tie_dims[0],), geo["lines"])
    data["sar_grid_sample"] = xr.Variable((tie_dims[1],), geo["samples"])
    data["sar_grid2d_latitude"] = xr.Variable(tie_dims, geo["lat"], {"units": "degrees_north"})
    data["sar_grid2d_longitude"] = xr.Variable(tie_dims, geo["lon"], {"units": "degrees_east"})

    original_id = scene_file_name("raw", start_time, service)[:-len(".nc")]
    attrs = {
        "scene_id": name,
        "original_id": original_id,
        "ice_service": service,
        "product": product,
        "pixel_spacing": f"{ch.PIXEL_SPACING_M[product]} m",
        "sar_start_time": start_time.strftime("%Y-%m-%dT%H:%M:%S"),
        "chart_region": chart_region(start_time, service),
        "season": season,
        "source": "synthetic scene (seaice_jax.data.synthetic), AI4Arctic format",
    }
    return xr.Dataset(data, attrs=attrs)


# ---------------------------------------------------------------------------------------------
# Writing.


def scene_seed(seed: int, index: int) -> int:
    """Seed of scene `index` of a set made with `seed` (independent streams)."""
    state = np.random.SeedSequence([int(seed) % (2**63), int(index)]).generate_state(2, np.uint32)
    return int(state[0]) << 32 | int(state[1])


def _encoding(ds: xr.Dataset) -> dict:
    """zlib level 1 on the gridded variables, as the real files are compressed."""
    return {name: {"zlib": True, "complevel": 1} for name, var in ds.data_vars.items()
            if var.ndim == 2 and var.dtype != object}


def write_scene(ds: xr.Dataset, out_dir: str) -> str:
    """Write `ds` to `<out_dir>/<scene_id>.nc` via a temporary name in the same folder."""
    path = os.path.join(out_dir, f"{ds.attrs['scene_id']}.nc")
    tmp = os.path.join(out_dir, f".{ds.attrs['scene_id']}.nc.tmp")
    try:
        ds.to_netcdf(tmp, engine="netcdf4", encoding=_encoding(ds))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def write_synthetic_scenes(
    out_dir: str,
    num_scenes: int,
    product: str,
    season: str,
    size: tuple[int, int],
    seed: int,
    *,
    service: str = "mixed",
    analyst_error: float = 0.0,
    **kw,
) -> list[str]:
    """Write `num_scenes` synthetic scenes into out_dir; scene i uses scene_seed(seed, i).

    Every scene gets a distinct start time (so a distinct file name). Returns the paths written.
    Extra keywords go to synthesize_scene.
    """
    if num_scenes < 0:
        raise ValueError(f"num_scenes must be >= 0, got {num_scenes}")
    _check_choice("product", product, PRODUCTS)
    _check_choice("season", season, SEASONS)
    if service != "mixed":
        _check_choice("service", service, SERVICES)
    os.makedirs(out_dir, exist_ok=True)
    used_times: set[dt.datetime] = set()
    paths = []
    for i in range(num_scenes):
        s = scene_seed(seed, i)
        start = default_start_time(s, season)
        while start in used_times:
            start += dt.timedelta(minutes=7)
        used_times.add(start)
        ds = synthesize_scene(product, season, size, s, service=service,
                              analyst_error=analyst_error, start_time=start, **kw)
        paths.append(write_scene(ds, out_dir))
    return paths
