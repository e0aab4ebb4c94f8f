"""Altimeter footprint points on the SAR grid: per scene, per training patch, and as input rasters.

Conversion (`data/shards.py`) collocates a scene's freeboard tracks with the scene on the grid the
patches are cut from (`altimetry.collocate`) and keeps them as `ScenePoints` (saved beside the shard as
`<scene>.altimetry.npz`, for evaluation): the footprint's pixels and area weights, the value, its stated
uncertainty, surface class, mission, freeboard kind, time gap to the SAR start and track. Each patch
record carries the points whose footprint centre lies in it (`patch_points`: at most `max_points`,
padded with kind `NO_POINT`), with pixel coordinates local to the patch so that flips and rotations
move them with the pixels (`dihedral_pixels`).

In the jitted step (`add_point_inputs`) whole tracks are hidden from the input at random (neighbouring
footprints of one track are near duplicates, so hiding single points would teach copying), the visible
points of each kind are rasterized into the input channels `POINT_CHANNELS` (footprint-weighted mean
freeboard per pixel, 0 elsewhere, and a 0 / 1 mask; points classed as lead / sea surface never are,
`is_sea_surface`), and the hidden points carry the freeboard loss.
A model without point channels gets every point in the loss.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from seaice_jax.data import channels as ch

FREEBOARD_KINDS = ("laser", "radar")  # ICESat-2 total freeboard; CryoSat-2 / Sentinel-3 radar freeboard
NO_POINT = 255  # fb_kind of a padding slot
MISSIONS = ("icesat2", "cryosat2", "sentinel3a", "sentinel3b", "other")
# Input channels made from the points, not read from files: (kind, what).
POINT_CHANNELS = {
    "freeboard_points": ("laser", "value"),
    "freeboard_mask": ("laser", "mask"),
    "radar_freeboard_points": ("radar", "value"),
    "radar_freeboard_mask": ("radar", "mask"),
}
assert tuple(POINT_CHANNELS) == ch.POINT_CHANNELS
# The model output of each kind (metres) and its predicted uncertainty (one standard deviation, metres).
HEAD_OF_KIND = {"laser": "freeboard", "radar": "radar_freeboard"}
UNCERTAINTY_SUFFIX = "_uncertainty"
MIN_INSIDE = 0.5  # share of a footprint's weight that must fall inside a patch
POINT_FIELDS = ("fb_pixel", "fb_weight", "fb_value", "fb_sigma", "fb_surface", "fb_kind", "fb_mission",
                "fb_track", "fb_along", "fb_time_gap")


def point_channels(channels: Sequence[str]) -> tuple[str, ...]:
    return tuple(c for c in channels if c in POINT_CHANNELS)


def kind_index(kind: str) -> int:
    if kind not in FREEBOARD_KINDS:
        raise ValueError(f"freeboard kind must be one of {FREEBOARD_KINDS}, got {kind!r}")
    return FREEBOARD_KINDS.index(kind)


def mission_index(mission: str) -> int:
    return MISSIONS.index(mission) if mission in MISSIONS else MISSIONS.index("other")


def point_field_shapes(max_points: int, footprint_pixels: int) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Static shapes and types of a patch's point fields (`compact.Layout.field_shapes`)."""
    n, k = max_points, footprint_pixels
    return {
        "fb_pixel": ((n, k, 2), np.dtype(np.int16)),  # (row, col) in the patch
        "fb_weight": ((n, k), np.dtype(np.float16)),  # footprint area fraction, 0 = unused
        "fb_value": ((n,), np.dtype(np.float32)),  # freeboard, m
        "fb_sigma": ((n,), np.dtype(np.float32)),  # the product's stated uncertainty, m
        "fb_surface": ((n,), np.dtype(np.uint8)),  # altimetry.track FLOE / LEAD / ...
        "fb_kind": ((n,), np.dtype(np.uint8)),  # index into FREEBOARD_KINDS, NO_POINT = padding
        "fb_mission": ((n,), np.dtype(np.uint8)),  # index into MISSIONS
        "fb_track": ((n,), np.dtype(np.int16)),  # track slot within the patch, -1 = padding
        "fb_along": ((n,), np.dtype(np.float32)),  # along-track distance from the track's first point, m
        "fb_time_gap": ((n,), np.dtype(np.float32)),  # point time - SAR start, s
    }


def empty_patch_points(max_points: int, footprint_pixels: int) -> dict[str, np.ndarray]:
    out = {k: np.zeros(s, dt) for k, (s, dt) in point_field_shapes(max_points, footprint_pixels).items()}
    out["fb_kind"][:] = NO_POINT
    out["fb_track"][:] = -1
    out["fb_sigma"][:] = 1.0
    return out


@dataclasses.dataclass
class ScenePoints:
    """The collocated freeboard points of one scene (N points, K footprint pixels each), on the grid
    `shape` (the scene downsampled as its patches are)."""

    shape: tuple[int, int]
    rows: np.ndarray  # int32 [N, K] footprint pixel rows (0 where weight is 0)
    cols: np.ndarray  # int32 [N, K]
    weight: np.ndarray  # float32 [N, K], rows sum to 1
    centre_row: np.ndarray  # float64 [N]
    centre_col: np.ndarray
    value: np.ndarray  # float32 [N] m
    sigma: np.ndarray  # float32 [N] m (stated; 1 where the product states none usable)
    surface: np.ndarray  # uint8 [N]
    kind: np.ndarray  # uint8 [N] index into FREEBOARD_KINDS
    mission: np.ndarray  # uint8 [N] index into MISSIONS
    track: np.ndarray  # int32 [N] index into track_ids
    along: np.ndarray  # float32 [N] m along the track from its first point (altimetry.kinds.along_track_m)
    time_gap: np.ndarray  # float32 [N] s
    latitude: np.ndarray  # float64 [N]
    longitude: np.ndarray
    time: np.ndarray  # float64 [N] unix s
    track_ids: list[str] = dataclasses.field(default_factory=list)

    PER_POINT = ("rows", "cols", "weight", "centre_row", "centre_col", "value", "sigma", "surface", "kind",
                 "mission", "track", "along", "time_gap", "latitude", "longitude", "time")

    def __len__(self) -> int:
        return int(self.value.shape[0])

    def select(self, mask) -> ScenePoints:
        fields = {f: getattr(self, f)[mask] for f in self.PER_POINT}
        return ScenePoints(shape=self.shape, track_ids=list(self.track_ids), **fields)

    def of_kind(self, kind: str) -> ScenePoints:
        return self.select(self.kind == kind_index(kind))

    def save(self, path: str) -> None:
        """As an .npz (written under a temporary name, then renamed)."""
        import os

        tmp = f"{path}.tmp.{os.getpid()}.npz"
        try:
            np.savez_compressed(tmp, shape=np.asarray(self.shape, np.int64), track_ids=np.asarray(self.track_ids, str),
                                **{f: getattr(self, f) for f in self.PER_POINT})
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)

    @classmethod
    def load(cls, path: str) -> ScenePoints:
        with np.load(path, allow_pickle=False) as z:
            return cls(shape=tuple(int(x) for x in z["shape"]), track_ids=[str(t) for t in z["track_ids"]],
                       **{f: z[f] for f in cls.PER_POINT})

    @classmethod
    def empty(cls, shape: tuple[int, int], footprint_pixels: int = 8) -> ScenePoints:
        k = footprint_pixels
        z = {"rows": np.zeros((0, k), np.int32), "cols": np.zeros((0, k), np.int32),
             "weight": np.zeros((0, k), np.float32)}
        for f, dt in (("centre_row", np.float64), ("centre_col", np.float64), ("value", np.float32),
                      ("sigma", np.float32), ("surface", np.uint8), ("kind", np.uint8), ("mission", np.uint8),
                      ("track", np.int32), ("along", np.float32), ("time_gap", np.float32), ("latitude", np.float64),
                      ("longitude", np.float64), ("time", np.float64)):
            z[f] = np.zeros(0, dt)
        return cls(shape=tuple(shape), **z)


def from_collocation(colloc, tracks: Sequence, kinds: Sequence[str], start_time_s: float) -> ScenePoints:
    """ScenePoints of an `altimetry.collocate.Collocation` of `tracks` (kinds[i]: the freeboard kind of
    tracks[i]) on a scene of shape colloc.shape."""
    from seaice_jax.altimetry.kinds import along_track_m
    h, w = colloc.shape
    n = len(colloc)
    ti = np.asarray(colloc.track_index, np.int64)
    pi = np.asarray(colloc.point_index, np.int64)
    lat = np.array([tracks[t].latitude[i] for t, i in zip(ti, pi, strict=True)], np.float64)
    lon = np.array([tracks[t].longitude[i] for t, i in zip(ti, pi, strict=True)], np.float64)
    time = np.asarray(colloc.time_offset, np.float64) + float(start_time_s)
    sigma = np.asarray(colloc.uncertainty, np.float32)
    sigma = np.where(np.isfinite(sigma) & (sigma > 0), sigma, np.float32(1.0)).astype(np.float32)
    kind = np.array([kind_index(kinds[t]) for t in ti], np.uint8).reshape(n)
    mission = np.array([mission_index(tracks[t].mission) for t in ti], np.uint8).reshape(n)
    index = np.asarray(colloc.index, np.int64)
    weight = np.asarray(colloc.weight, np.float32)
    along_of = {int(t): along_track_m(tracks[t]) for t in np.unique(ti)}
    along = np.array([along_of[t][i] for t, i in zip(ti, pi, strict=True)], np.float32).reshape(n)
    return ScenePoints(
        shape=(h, w), rows=(index // w).astype(np.int32), cols=(index % w).astype(np.int32), weight=weight,
        centre_row=np.asarray(colloc.row, np.float64), centre_col=np.asarray(colloc.col, np.float64),
        value=np.asarray(colloc.value, np.float32), sigma=sigma, surface=np.asarray(colloc.surface, np.uint8),
        kind=kind, mission=mission, track=ti.astype(np.int32), along=np.nan_to_num(along),
        time_gap=np.asarray(colloc.time_offset, np.float32),
        latitude=lat, longitude=lon, time=time, track_ids=[t.track_id for t in tracks])


def patch_points(points: ScenePoints, r0: int, c0: int, patch: int, max_points: int,
                 max_tracks: int = 64) -> dict[str, np.ndarray]:
    """The fixed-shape point fields of the patch [r0, r0 + patch) x [c0, c0 + patch).

    A point belongs to the patch when its footprint centre does and at least MIN_INSIDE of its footprint
    weight falls inside; the pixels outside are dropped and the weights renormalised. More than
    `max_points` points: an evenly spaced subset (deterministic). Tracks get local slots in order of
    first appearance (slot = rank mod max_tracks).
    """
    k = points.rows.shape[1] if points.rows.ndim == 2 else 8
    out = empty_patch_points(max_points, k)
    if len(points) == 0 or max_points == 0:
        return out
    cr, cc = np.rint(points.centre_row), np.rint(points.centre_col)
    near = np.flatnonzero((cr >= r0) & (cr < r0 + patch) & (cc >= c0) & (cc < c0 + patch))
    if near.size == 0:
        return out
    rows, cols, w = points.rows[near], points.cols[near], points.weight[near].astype(np.float64)
    inside = (rows >= r0) & (rows < r0 + patch) & (cols >= c0) & (cols < c0 + patch) & (w > 0)
    w_in = np.where(inside, w, 0.0)
    share = w_in.sum(1) / np.maximum(w.sum(1), 1e-12)
    keep = share >= MIN_INSIDE
    near, rows, cols, w_in = near[keep], rows[keep], cols[keep], w_in[keep]
    if near.size > max_points:
        pick = np.unique(np.linspace(0, near.size - 1, max_points).round().astype(np.int64))
        near, rows, cols, w_in = near[pick], rows[pick], cols[pick], w_in[pick]
    n = near.size
    w_in = w_in / np.maximum(w_in.sum(1, keepdims=True), 1e-12)
    used = w_in > 0
    out["fb_pixel"][:n, :, 0] = np.where(used, rows - r0, 0)
    out["fb_pixel"][:n, :, 1] = np.where(used, cols - c0, 0)
    out["fb_weight"][:n] = w_in.astype(np.float16)
    out["fb_value"][:n] = points.value[near]
    out["fb_sigma"][:n] = points.sigma[near]
    out["fb_surface"][:n] = points.surface[near]
    out["fb_kind"][:n] = points.kind[near]
    out["fb_mission"][:n] = points.mission[near]
    _, first, slot = np.unique(points.track[near], return_index=True, return_inverse=True)
    order = np.argsort(np.argsort(first))  # slots in order of first appearance
    out["fb_track"][:n] = (order[slot] % max_tracks).astype(np.int16)
    out["fb_along"][:n] = points.along[near]
    out["fb_time_gap"][:n] = points.time_gap[near]
    return out


def rasterize(shape: tuple[int, int], rows: np.ndarray, cols: np.ndarray, weight: np.ndarray,
              value: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Host rasterization of footprints: (footprint-weighted mean value float32 [H, W], 0 where no
    footprint; mask float32 [H, W], 1 where one lies). rows / cols / weight [N, K], value [N]."""
    h, w = shape
    total = np.zeros(h * w, np.float64)
    wsum = np.zeros(h * w, np.float64)
    used = np.asarray(weight) > 0
    flat = (np.asarray(rows, np.int64) * w + np.asarray(cols, np.int64))[used]
    ww = np.asarray(weight, np.float64)[used]
    vv = np.broadcast_to(np.asarray(value, np.float64)[:, None], used.shape)[used]
    np.add.at(total, flat, ww * vv)
    np.add.at(wsum, flat, ww)
    mask = wsum > 0
    plane = np.where(mask, total / np.where(mask, wsum, 1.0), 0.0)
    return plane.reshape(h, w).astype(np.float32), mask.reshape(h, w).astype(np.float32)


def is_sea_surface(surface):
    """bool: points the product classes as lead or sea surface (numpy or jax). They read the sea surface
    (~0) whatever lies under them, so they are never point inputs: the track correction is scaled by the
    ice probability (0 on a lead), and on ice such a point is a misclassed floe."""
    from seaice_jax.altimetry.track import LEAD, SEA_SURFACE

    return (surface == LEAD) | (surface == SEA_SURFACE)


def scene_point_planes(points: ScenePoints, channels: Sequence[str]) -> dict[str, np.ndarray]:
    """The point input channels named in `channels`, rasterized from every point of `points` (the
    inference inputs: all tracks given to the model)."""
    out = {}
    for name in point_channels(channels):
        kind, what = POINT_CHANNELS[name]
        sel = points.of_kind(kind)
        sel = sel.select(~is_sea_surface(sel.surface))
        plane, mask = rasterize(points.shape, sel.rows, sel.cols, sel.weight, sel.value)
        out[name] = plane if what == "value" else mask
    return out


# ----------------------------------------------------------------------------------------------
# In the step (jax)


@dataclasses.dataclass(frozen=True)
class PointOptions:
    """How points become inputs and loss targets in the step (config.data)."""

    track_dropout: float = 0.5  # a track is hidden from the input with this probability
    all_hidden: float = 0.25  # every track of an example hidden with this probability (SAR alone)
    segment_dropout: float = 0.0  # an along-track segment of a visible track hidden with this probability
    segment_m: float = 3000.0  # segment length (a random phase per example and track)
    max_tracks: int = 64  # track slots per patch (patch_points)
    max_segments: int = 64  # segment slots per track (segment index mod this)


def dihedral_pixels(pixel, t, fr, fc, patch: int):
    """Move (row, col) pixel coordinates [..., 2] with `device_augment.flip_rotate(t, fr, fc)`:
    transpose, then flip rows, then flip columns."""
    import jax.numpy as jnp

    r, c = pixel[..., 0], pixel[..., 1]
    r, c = jnp.where(t > 0, c, r), jnp.where(t > 0, r, c)
    r = jnp.where(fr > 0, patch - 1 - r, r)
    c = jnp.where(fc > 0, patch - 1 - c, c)
    return jnp.stack([r, c], -1)


def hide_tracks(key, fb_track, fb_kind, opts: PointOptions, fb_along=None):
    """bool [B, N]: the points hidden from the input, drawn per example: whole tracks (per track slot),
    every track at once, and with `segment_dropout` along-track segments of `segment_m` of the others
    (a random phase per track, so segment ends fall anywhere): a hidden segment has visible footprints
    of its own track a few km away, the case of the pixels between and near tracks."""
    import jax
    import jax.numpy as jnp

    b = fb_track.shape[0]
    k1, k2, k3, k4 = jax.random.split(key, 4)
    per_track = jax.random.bernoulli(k1, opts.track_dropout, (b, opts.max_tracks))
    everything = jax.random.bernoulli(k2, opts.all_hidden, (b, 1))
    slot = jnp.clip(fb_track.astype(jnp.int32), 0, opts.max_tracks - 1)
    hidden = jnp.take_along_axis(per_track, slot, axis=1) | everything
    if opts.segment_dropout > 0 and fb_along is not None:
        phase = jax.random.uniform(k3, (b, opts.max_tracks)) * opts.segment_m
        seg = jnp.floor((fb_along + jnp.take_along_axis(phase, slot, axis=1)) / opts.segment_m).astype(jnp.int32)
        per_segment = jax.random.bernoulli(k4, opts.segment_dropout, (b, opts.max_tracks, opts.max_segments))
        flat = per_segment.reshape(b, -1)
        hidden |= jnp.take_along_axis(flat, slot * opts.max_segments + jnp.mod(seg, opts.max_segments), axis=1)
    return hidden & (fb_kind != NO_POINT)


def rasterize_device(flat_index, weight, value, use, size: int):
    """One example: (mean value [size], mask [size]) of the footprints of the points where `use`."""
    import jax.numpy as jnp

    w = weight * use[:, None].astype(weight.dtype)
    total = jnp.zeros(size, jnp.float32).at[flat_index.reshape(-1)].add((w * value[:, None]).reshape(-1))
    wsum = jnp.zeros(size, jnp.float32).at[flat_index.reshape(-1)].add(w.reshape(-1))
    mask = wsum > 0
    return jnp.where(mask, total / jnp.where(mask, wsum, 1.0), 0.0), mask.astype(jnp.float32)


def add_point_inputs(batch: dict, key, channels: Sequence[str], patch: int, opts: PointOptions) -> dict:
    """A batch whose `inputs` hold the non-point channels of `channels` (in order) and whose point fields
    are in the patch's current orientation -> the full inputs (point channels rasterized from the
    visible points, placed in `channels` order) and the loss fields:

      fb_index int32 [B, N, K] flat pixel index, fb_weight float32 [B, N, K], fb_value / fb_sigma
      float32 [B, N], fb_kind / fb_surface int32 [B, N], fb_loss bool [B, N] (points the freeboard
      loss counts: the hidden ones when the model sees points, else all).
    """
    import jax
    import jax.numpy as jnp

    pix = batch["fb_pixel"].astype(jnp.int32)
    flat = jnp.clip(pix[..., 0], 0, patch - 1) * patch + jnp.clip(pix[..., 1], 0, patch - 1)
    weight = batch["fb_weight"].astype(jnp.float32)
    value = batch["fb_value"].astype(jnp.float32)
    kind = batch["fb_kind"].astype(jnp.int32)
    real = kind != NO_POINT
    surface = batch["fb_surface"].astype(jnp.int32)
    wanted = point_channels(channels)
    hidden = hide_tracks(key, batch["fb_track"], kind, opts, batch.get("fb_along")) if wanted else real
    out = {k: v for k, v in batch.items() if k not in POINT_FIELDS}
    if wanted:
        b = value.shape[0]
        planes = {}
        for name in wanted:
            kname, what = POINT_CHANNELS[name]
            use = real & ~hidden & (kind == kind_index(kname)) & ~is_sea_surface(surface)
            mean, mask = jax.vmap(lambda f, w, v, u: rasterize_device(f, w, v, u, patch * patch))(
                flat, weight, value, use)
            planes[name] = (mean if what == "value" else mask).reshape(b, patch, patch)
        base = batch["inputs"]
        others = [c for c in channels if c not in POINT_CHANNELS]
        parts = [planes[c] if c in planes else base[..., others.index(c)] for c in channels]
        out["inputs"] = jnp.stack(parts, -1)
    out.update(fb_index=flat, fb_weight=weight, fb_value=value, fb_sigma=batch["fb_sigma"].astype(jnp.float32),
               fb_kind=kind, fb_surface=surface, fb_loss=hidden & real)
    return out
