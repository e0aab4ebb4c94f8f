"""Where training patches sit in a scene and which regions they keep: shared by the shard writer
(`shards`), the compact format (`compact`) and the tests of the device-resident twin (`resident`)."""

from __future__ import annotations

import numpy as np


def patch_origins(length: int, patch: int, stride: int) -> list[int]:
    """Patch starts along one axis: a regular grid plus one flush with the far edge."""
    if length <= patch:
        return [0]
    starts = list(range(0, length - patch + 1, stride))
    if starts[-1] != length - patch:
        starts.append(length - patch)
    return starts


def localise_regions(
    ids: np.ndarray, conc: np.ndarray, max_regions: int
) -> tuple[np.ndarray, np.ndarray]:
    """Scene region ids in a patch -> local ids 0..K-1 (largest regions first) and padded concentrations.

    ids: int32 [P, P] scene region ids (-1 none); conc: float32 [R] scene concentrations.
    Returns local ids int32 [P, P] (-1 none, and -1 for regions beyond `max_regions`) and
    float32 [max_regions] concentrations, NaN in unused slots.
    """
    inside = ids >= 0
    present, counts = np.unique(ids[inside], return_counts=True)
    order = np.argsort(-counts, kind="stable")[:max_regions]
    kept = present[order]
    lookup = np.full(int(present.max()) + 2 if present.size else 1, -1, np.int32)
    lookup[kept] = np.arange(kept.size, dtype=np.int32)
    local = np.where(inside, lookup[np.where(inside, ids, 0)], -1).astype(np.int32)
    out_conc = np.full(max_regions, np.nan, np.float32)
    out_conc[: kept.size] = conc[kept]
    return local, out_conc
