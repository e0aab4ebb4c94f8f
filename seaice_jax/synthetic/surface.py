"""Surface truth of a synthetic scene on its SAR grid: random fields, floes, leads, melt ponds, land,
distance to land, fast ice (step 1 of seaice_jax.synthetic)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from scipy import ndimage, special

from seaice_jax.data import channels as ch

PRODUCTS = ("rtt", "raw")
SEASONS = ("summer", "winter")
SERVICES = ("cis", "dmi")

# Surface classes of the truth map (ours). 1..5 are ice, ordered from thinnest to thickest.
WATER, NEW_ICE, YOUNG_ICE, THIN_FYI, FYI, OLD_ICE, LAND = range(7)
NUM_SURFACES = 7
ICE_SURFACES = (NEW_ICE, YOUNG_ICE, THIN_FYI, FYI, OLD_ICE)
CONSOLIDATED_SURFACES = (THIN_FYI, FYI, OLD_ICE)  # what floes are made of (leads cut them)

TRUTH_WATER, TRUTH_ICE, TRUTH_LAND = 0, 1, 255
MAX_DISTANCE_ZONE = 41

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


def make_surface(rng: np.random.Generator, shape: tuple[int, int], product: str, season: str,
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
                for s, wt in zip(params.floe_sigmas_m, params.floe_weights, strict=True))
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

