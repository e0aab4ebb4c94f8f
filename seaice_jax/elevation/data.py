"""Scenes with collocated altimeter footprints, and training crops whose footprints are re-indexed into
the crop (static shapes: padded points with a mask)."""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from seaice_jax.altimetry import open_altimetry
from seaice_jax.altimetry.collocate import Collocation, collocate
from seaice_jax.altimetry.track import AltimetryFormatError, Swath, Track
from seaice_jax.data.shards import localise_regions

# which missions measure which freeboard
KIND_MISSIONS = {"laser": ("icesat2",), "radar": ("cryosat2", "sentinel3a", "sentinel3b")}
TRUTH_VARIABLE = {"laser": "freeboard_truth", "radar": "radar_freeboard_truth", "ice": "ice_freeboard_truth"}


def read_altimetry(paths) -> tuple[list[Track], list[Swath]]:
    """Every track / swath in the given files or folders (unsupported files are skipped)."""
    files = []
    for p in ([paths] if isinstance(paths, str) else list(paths)):
        if os.path.isdir(p) and not p.endswith(".SEN3"):
            files += [os.path.join(p, f) for f in sorted(os.listdir(p)) if not f.startswith(".")]
        else:
            files.append(p)
    tracks, swaths = [], []
    for f in files:
        try:
            got = open_altimetry(f)
        except AltimetryFormatError:
            continue
        for item in got:
            (swaths if isinstance(item, Swath) else tracks).append(item)
    return tracks, swaths


def tracks_of_kind(tracks: list[Track], kind: str) -> list[Track]:
    missions = KIND_MISSIONS[kind]
    return [t for t in tracks if t.mission in missions or (t.mission.startswith("sentinel3") and
                                                            "sentinel3a" in missions)]


@dataclasses.dataclass
class ElevationScene:
    scene: object  # data.Scene
    inputs: np.ndarray  # float32 [H, W, C]
    colloc: Collocation


def scene_collocation(scene, tracks, max_time_gap_s: float | None, max_pixels: int) -> Collocation:
    return collocate(scene, tracks, max_time_gap_s, max_pixels=max_pixels)


def load_elevation_scenes(scene_paths, tracks, channels, *, max_time_gap_s=None, max_pixels: int = 8):
    from seaice_jax.data.scene import open_scene
    out = []
    for p in scene_paths:
        scene = open_scene(p, channels=channels)
        out.append(ElevationScene(scene, scene.stack(channels), scene_collocation(scene, tracks, max_time_gap_s,
                                                                                    max_pixels)))
    return out


def crop_footprints(colloc: Collocation, r0: int, c0: int, patch: int, n_points: int) -> dict[str, np.ndarray]:
    """The points whose whole footprint lies in the crop [r0, r0 + patch) x [c0, c0 + patch), indices
    re-based to the crop's flat grid, padded to `n_points` (a random subset when more)."""
    w = colloc.shape[1]
    rows, cols = colloc.index // w, colloc.index % w
    used = colloc.weight > 0
    inside = ((rows >= r0) & (rows < r0 + patch) & (cols >= c0) & (cols < c0 + patch)) | ~used
    keep = np.flatnonzero(inside.all(1) & used.any(1))
    if keep.size > n_points:
        keep = np.sort(np.random.default_rng(r0 * 7919 + c0).choice(keep, n_points, replace=False))
    k = colloc.index.shape[1]
    out = {"fb_index": np.zeros((n_points, k), np.int32), "fb_weight": np.zeros((n_points, k), np.float32),
           "fb_value": np.zeros(n_points, np.float32), "fb_sigma": np.ones(n_points, np.float32),
           "fb_mask": np.zeros(n_points, bool)}
    n = keep.size
    local = (rows[keep] - r0) * patch + (cols[keep] - c0)
    out["fb_index"][:n] = np.where(used[keep], local, 0)
    out["fb_weight"][:n] = colloc.weight[keep]
    out["fb_value"][:n] = colloc.value[keep]
    unc = colloc.uncertainty[keep]
    out["fb_sigma"][:n] = np.where(np.isfinite(unc) & (unc > 0), unc, 1.0)
    out["fb_mask"][:n] = True
    return out


def _pad(a, patch, fill):
    ph, pw = patch - a.shape[0], patch - a.shape[1]
    if ph <= 0 and pw <= 0:
        return a
    return np.pad(a, [(0, max(ph, 0)), (0, max(pw, 0))] + [(0, 0)] * (a.ndim - 2), constant_values=fill)


class CropSampler:
    """Random training crops: inputs, region ids / concentrations, validity and track footprints.

    A share `track_share` of the crops is centred (with jitter) on a random collocated point, the rest
    anywhere; random flips / quarter turns are not applied (footprints would need remapping)."""

    def __init__(self, scenes: list[ElevationScene], patch: int, n_points: int, max_regions: int, seed: int,
                 track_share: float = 0.75):
        self.scenes, self.patch, self.n_points, self.max_regions = scenes, patch, n_points, max_regions
        self.rng = np.random.default_rng(seed)
        self.track_share = track_share

    def crop(self, es: ElevationScene, r0: int, c0: int) -> dict:
        p, s = self.patch, es.scene
        win = (slice(r0, r0 + p), slice(c0, c0 + p))
        ids, conc = localise_regions(_pad(s.region_ids[win], p, -1), s.region_conc, self.max_regions)
        out = {"inputs": _pad(es.inputs[win], p, 0.0), "region_ids": ids, "region_conc": conc,
               "valid": _pad(s.valid[win], p, False)}
        out.update(crop_footprints(es.colloc, r0, c0, p, self.n_points))
        return out

    def sample(self) -> dict:
        es = self.scenes[int(self.rng.integers(len(self.scenes)))]
        h, w = es.scene.shape
        p = self.patch
        if len(es.colloc) and self.rng.random() < self.track_share:
            i = int(self.rng.integers(len(es.colloc)))
            r = int(es.colloc.row[i]) - p // 2 + int(self.rng.integers(-p // 4, p // 4 + 1))
            c = int(es.colloc.col[i]) - p // 2 + int(self.rng.integers(-p // 4, p // 4 + 1))
        else:
            r, c = int(self.rng.integers(0, max(h - p, 0) + 1)), int(self.rng.integers(0, max(w - p, 0) + 1))
        r, c = int(np.clip(r, 0, max(h - p, 0))), int(np.clip(c, 0, max(w - p, 0)))
        return self.crop(es, r, c)

    def batch(self, size: int) -> dict:
        items = [self.sample() for _ in range(size)]
        return {k: np.stack([it[k] for it in items]) for k in items[0]}
