"""Weak-label regions of a scene and what its chart could not give.

Raw scenes: the regions are the chart polygons (`polygon_regions`); RTT scenes keep only rasters, so
a region is a 4-connected component of pixels with identical (SIC, SOD, FLOE) labels
(`chart_regions`, our choice: it splits a polygon only where the chart itself differs).
`chart_report` lists the unknown SIGRID codes of a raw chart with the polygons and pixels they affect.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from seaice_jax.data import sigrid
from seaice_jax.data.channels import NUM_CLASSES

ID_SLICE = 1 << 22  # pixels per slice of the whole-raster id passes below


def _slices(size: int) -> list[slice]:
    return [slice(start, start + ID_SLICE) for start in range(0, size, ID_SLICE)]


def _bincount_where(index: np.ndarray, mask: np.ndarray, minlength: int) -> np.ndarray:
    """np.bincount(index[mask].ravel(), minlength=minlength), summed over slices of the raster: whole-
    raster temporaries would be int64 (bincount works in intp), 800 MB on a 10 000 x 10 000 scene."""
    flat_index, flat_mask = np.ravel(index), np.ravel(mask)
    counts = np.zeros(minlength, np.intp)
    for part in _slices(flat_index.size):
        found = np.bincount(flat_index[part][flat_mask[part]], minlength=counts.size)
        counts = found + np.pad(counts, (0, found.size - counts.size))
    return counts


def _compact_ids(index: np.ndarray, usable: np.ndarray, num_ids: int) -> tuple[np.ndarray, np.ndarray]:
    """Renumber the ids used by usable pixels to 0..R-1 (in id order); other pixels -1.

    index: int [H, W] ids in [0, num_ids); usable: bool [H, W].
    Returns (region_ids int32 [H, W], used_ids int64 [R]).
    """
    used = _bincount_where(index, usable, num_ids) > 0
    new_id = np.cumsum(used, dtype=np.int64) - 1
    # Slice by slice, as new_id[index] would be a whole-raster int64 array.
    flat_index, flat_usable = np.ravel(index), np.ravel(usable)
    region_ids = np.empty(index.shape, np.int32)
    flat_ids = region_ids.reshape(-1)
    for part in _slices(flat_index.size):
        flat_ids[part] = np.where(flat_usable[part], new_id[flat_index[part]], -1)
    return region_ids, np.flatnonzero(used)


def polygon_regions(
    index: np.ndarray, usable: np.ndarray, polygon_conc: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Raw-scene regions: one per polygon that has usable pixels and a known concentration.

    index: int [H, W] polygon lookup index; usable: bool [H, W]; polygon_conc: float32 [N] by index.
    Returns (region_ids int32 [H, W], region_conc float32 [R]).
    """
    usable = usable & np.isfinite(polygon_conc)[index]
    region_ids, used = _compact_ids(index, usable, len(polygon_conc))
    return region_ids, polygon_conc[used].astype(np.float32)


def _state_table(num_classes: int) -> np.ndarray:
    """uint16 [256] map of a class value to its state: itself, 255 -> num_classes (one past)."""
    table = np.full(256, num_classes, np.uint16)
    table[:num_classes] = np.arange(num_classes)
    return table


def _chart_key(
    sic: np.ndarray, sod: np.ndarray, floe: np.ndarray, usable: np.ndarray
) -> tuple[np.ndarray, int]:
    """One small int per (SIC, SOD, FLOE) triple on usable pixels; `num_keys` on the others.

    Returns (key uint16 [H, W], num_keys). 256-entry tables keep this to a few byte-sized passes.
    """
    sod_states = NUM_CLASSES["SOD"] + 1
    floe_states = NUM_CLASSES["FLOE"] + 1
    num_keys = (NUM_CLASSES["SIC"] + 1) * sod_states * floe_states
    key = _state_table(NUM_CLASSES["SIC"])[sic]
    key *= sod_states
    key += _state_table(NUM_CLASSES["SOD"])[sod]
    key *= floe_states
    key += _state_table(NUM_CLASSES["FLOE"])[floe]
    key[~usable] = num_keys
    return key, num_keys


def chart_regions(
    sic: np.ndarray, sod: np.ndarray, floe: np.ndarray, usable: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """RTT regions: 4-connected components of usable pixels with identical (SIC, SOD, FLOE).

    sic, sod, floe: uint8 [H, W] (values already validated); usable: bool [H, W] (SIC != 255 there).
    Returns (region_ids int32 [H, W], region_conc float32 [R] = SIC class / 10).
    """
    key, num_keys = _chart_key(sic, sod, floe, usable)
    present = np.bincount(key.ravel(), minlength=num_keys + 1)[:num_keys] > 0
    # Present keys -> 1..K, unusable -> 0: a label image, so find_objects gives each key's box.
    rank_of_key = np.zeros(num_keys + 1, np.uint16)
    rank_of_key[:num_keys][present] = np.arange(1, int(present.sum()) + 1)
    key_image = rank_of_key[key]
    del key
    region_ids = np.full(sic.shape, -1, np.int32)
    region_conc: list[np.ndarray] = []
    num_regions = 0
    four_connected = ndimage.generate_binary_structure(2, 1)
    for rank, box in enumerate(ndimage.find_objects(key_image)):
        if box is None:
            continue
        in_key = key_image[box] == rank + 1
        labels, count = ndimage.label(in_key, structure=four_connected)
        region_ids[box][in_key] = labels[in_key] - 1 + num_regions
        first_pixel = np.argmax(in_key)  # any pixel of this key gives its SIC class
        sic_class = sic[box].ravel()[first_pixel]
        region_conc.append(np.full(count, sic_class / 10.0, np.float32))
        num_regions += count
    conc = np.concatenate(region_conc) if region_conc else np.zeros(0, np.float32)
    return region_ids, conc


def chart_report(lookup: sigrid.PolygonLookup, index: np.ndarray, valid: np.ndarray) -> dict:
    """What a raw chart held that could not be used: unknown codes, the polygons and valid pixels.

    Returns {} when everything was usable, else {'codes': {code: polygons}, 'polygons': [ids],
    'pixels': n, 'unused_polygons': [ids without a concentration, dropped from the regions]}.
    """
    if not lookup.unknown:
        return {}
    ids = sorted(lookup.unknown)
    counts = _bincount_where(index, valid, len(lookup.known))
    codes: dict[str, int] = {}
    for poly_id in ids:
        for code in lookup.unknown[poly_id]:
            codes[code] = codes.get(code, 0) + 1
    unused = [i for i in ids if not np.isfinite(lookup.conc[i])]
    return {"codes": dict(sorted(codes.items())), "polygons": ids,
            "pixels": int(counts[ids].sum()), "unused_polygons": unused}
