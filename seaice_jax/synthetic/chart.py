"""The synthetic ice chart: polygons much larger than floes and one SIGRID row each, coded as an
analyst would (step 2 of seaice_jax.synthetic)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from scipy import ndimage

from seaice_jax.data import channels as ch
from seaice_jax.data import sigrid
from seaice_jax.synthetic.surface import (
    CONSOLIDATED_SURFACES,
    FYI,
    ICE_SURFACES,
    NEW_ICE,
    NUM_SURFACES,
    OLD_ICE,
    THIN_FYI,
    YOUNG_ICE,
    Surface,
    gaussian_random_field,
)

# SIGRID stage-of-development codes a chart may use for each surface (one is drawn per scene).
STAGE_CODES = {
    NEW_ICE: (81, 82),
    YOUNG_ICE: (83, 84, 85),
    THIN_FYI: (87, 88, 89),
    FYI: (86, 91, 93),
    OLD_ICE: (95, 96, 97),
}

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
    for k, (sy, sx) in enumerate(zip(seeds_y, seeds_x, strict=True)):
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

    < 5 % -> water_code (0, 1 or 2); >= 99.5 % -> 92 (10/10); > 95 % -> 91 (9+/10, read as 0.95);
    else the nearest tenth 10..90, or where the
    analyst is unsure and the tenth is 2..8 the range code around it (0.6 -> 57). The code's
    concentration is always within 0.05 of `fraction`.
    """
    if fraction < 0.05:
        return int(water_code)
    if fraction >= 0.995:
        return sigrid.FULL_CT  # 92: 10/10
    if fraction > 0.95:
        return sigrid.NINE_PLUS_CT
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
    # at most three types (_allocate_tenths), often fewer: the slots left over stay empty
    for slot, s in zip("ABC", ordered, strict=False):
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


def make_chart(rng: np.random.Generator, seed: int, surface: Surface, product: str, season: str,
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
    """`polygon_codes` strings in the real layout: the header, then `poly_id;CT;...;CF;POLY_TYPE` per
    polygon with zero-padded codes (`02`) and CF a compound (`08-9`) where a floe size is given."""
    lines = [ch.POLYGON_CODES_HEADER]
    for row in rows:
        row = dict(row)
        if row.get("CF", sigrid.NOT_FILLED) == sigrid.NOT_FILLED:
            fa = int(row.get("FA", sigrid.NOT_FILLED))
            row["CF"] = f"{fa:02d}-9" if fa >= 0 else "-9"
        lines.append(sigrid.polygon_code_line(row["id"], row))
    return lines


def chart_rasters(chart: Chart) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(SIC, SOD, FLOE) uint8 [H, W] from the polygon rows with the SIGRID rules (sigrid.py)."""
    classes = np.array([sigrid.polygon_classes(row) for row in chart.rows], np.uint8).reshape(-1, 3)
    return tuple(classes[chart.polygon_index, k] for k in range(3))

