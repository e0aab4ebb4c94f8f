"""Collocation of altimeter tracks with a SAR scene, and each point's footprint on the SAR grid.

`collocate(scene, tracks, max_time_gap)` needs only `scene.shape` (H, W), `scene.tie_points`
(a `geolocation.TiePoints`) and `scene.start_time` (unix seconds, datetime, datetime64 or ISO string);
`scene.valid` (bool [H, W]) is honoured when present. Latitude / longitude go to SAR (row, col) by
inverting the tie-point geolocation (`latlon_to_pixel`); a point is kept when its centre lies inside
the scene (and on a valid pixel), its time is within `max_time_gap` of the SAR start, and its quality
is good.

Each footprint is a rectangle of `footprint_along` x `footprint_across` metres oriented along the track
(direction from neighbouring points of the same track), sampled on a sub-pixel lattice and binned
to SAR pixels: the weight of a pixel is the fraction of the footprint area inside it (restricted to
the scene, renormalised). The result is fixed-shape: per point `index` [N, K] flat pixel indices
(row * W + col) and `weight` [N, K] (padding: index 0, weight 0), K = `max_pixels` or the largest
footprint.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol

import numpy as np

from seaice_jax.altimetry.track import Track, to_seconds, to_unix_seconds
from seaice_jax.data import geolocation as geo

EARTH_RADIUS_M = 6_371_000.0


class SceneLike(Protocol):
    """What `collocate` needs of a scene (the data Scene once it carries tie points, or any stand-in)."""

    @property
    def shape(self) -> tuple[int, int]: ...

    tie_points: geo.TiePoints | None
    start_time: Any  # unix seconds, datetime (naive = UTC), np.datetime64 or ISO / 'YYYYmmddTHHMMSS' string


def _haversine(lat1, lon1, lat2, lon2):
    la1, la2 = np.deg2rad(lat1), np.deg2rad(lat2)
    dla, dlo = la2 - la1, np.deg2rad(lon2 - lon1)
    a = np.sin(dla / 2) ** 2 + np.cos(la1) * np.cos(la2) * np.sin(dlo / 2) ** 2
    return 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.clip(a, 0, 1)))


def pixel_spacing_m(tp: geo.TiePoints) -> tuple[float, float]:
    """Mean ground distance (metres) of one line step and one sample step, from the tie points."""
    lat, lon = tp.latitude, tp.longitude
    d_line = _haversine(lat[:-1], lon[:-1], lat[1:], lon[1:]) / np.diff(tp.lines)[:, None]
    d_samp = _haversine(lat[:, :-1], lon[:, :-1], lat[:, 1:], lon[:, 1:]) / np.diff(tp.samples)[None, :]
    return float(d_line.mean()), float(d_samp.mean())


@dataclasses.dataclass
class Collocation:
    """Collocated points of several tracks on one scene (N points, K pixels per footprint)."""

    shape: tuple[int, int]
    track_ids: list[str]
    track_index: np.ndarray  # int32 [N] index into track_ids
    point_index: np.ndarray  # int32 [N] index within its track
    row: np.ndarray  # float64 [N]
    col: np.ndarray
    time_offset: np.ndarray  # float64 [N] seconds, point time - SAR start
    value: np.ndarray  # float32 [N]
    uncertainty: np.ndarray  # float32 [N]
    surface: np.ndarray  # uint8 [N]
    footprint_along: np.ndarray  # float32 [N] metres
    footprint_across: np.ndarray
    index: np.ndarray  # int32 [N, K]
    weight: np.ndarray  # float32 [N, K]
    missions: list[str] = dataclasses.field(default_factory=list)  # per track

    def __len__(self) -> int:
        return self.row.shape[0]

    def select(self, mask) -> Collocation:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for k in ("track_index", "point_index", "row", "col", "time_offset", "value", "uncertainty", "surface",
                  "footprint_along", "footprint_across", "index", "weight"):
            out[k] = out[k][mask]
        return Collocation(**out)

    def of_track(self, i: int) -> Collocation:
        return self.select(self.track_index == i)

    def pixel_rc(self) -> tuple[np.ndarray, np.ndarray]:
        """Nearest SAR pixel (int row, col) of each point centre."""
        h, w = self.shape
        return (np.clip(np.rint(self.row), 0, h - 1).astype(np.int64),
                np.clip(np.rint(self.col), 0, w - 1).astype(np.int64))

    def padded(self, n_points: int, max_pixels: int | None = None) -> dict[str, np.ndarray]:
        """Fixed-shape arrays for a jitted loss: index, weight [n_points, K], value, sigma, mask [n_points]."""
        n = len(self)
        if n > n_points:
            raise ValueError(f"{n} points do not fit in {n_points}")
        index, weight = self.index, self.weight
        if max_pixels is not None:
            index, weight = _truncate(index, weight, max_pixels)
        k = index.shape[1]
        out = {"index": np.zeros((n_points, k), np.int32), "weight": np.zeros((n_points, k), np.float32),
               "value": np.zeros(n_points, np.float32), "sigma": np.ones(n_points, np.float32),
               "mask": np.zeros(n_points, bool)}
        out["index"][:n], out["weight"][:n] = index, weight
        out["value"][:n], out["mask"][:n] = self.value, True
        out["sigma"][:n] = np.where(np.isfinite(self.uncertainty) & (self.uncertainty > 0), self.uncertainty, 1.0)
        return out


def _truncate(index, weight, k):
    """Keep the k largest weights per point, renormalised (or pad to k)."""
    if index.shape[1] <= k:
        pad = k - index.shape[1]
        return np.pad(index, ((0, 0), (0, pad))), np.pad(weight, ((0, 0), (0, pad)))
    order = np.argsort(-weight, axis=1, kind="stable")[:, :k]
    idx = np.take_along_axis(index, order, 1)
    w = np.take_along_axis(weight, order, 1)
    s = w.sum(1, keepdims=True)
    return idx, (w / np.where(s > 0, s, 1)).astype(np.float32)


def _directions(rows, cols, sp):
    """Unit along-track direction in metric (row, col) space from neighbouring points."""
    if rows.size < 2:
        return np.ones_like(rows), np.zeros_like(rows)
    dr, dc = np.gradient(rows) * sp[0], np.gradient(cols) * sp[1]
    norm = np.hypot(dr, dc)
    ok = np.isfinite(norm) & (norm > 0)
    dr, dc = np.where(ok, dr / np.where(ok, norm, 1), 1.0), np.where(ok, dc / np.where(ok, norm, 1), 0.0)
    return dr, dc


def footprint_pixels(row, col, along_m, across_m, direction, shape, spacing_m, oversample: int = 3):
    """Pixels (flat indices) and area fractions of one rectangular footprint, clipped to the scene.

    direction: unit (d_row, d_col) of the along-track axis in metres; spacing_m: (line, sample) metres.
    The rectangle is sampled every min(spacing)/oversample metres (at least one sample).
    """
    h, w = shape
    step = min(spacing_m) / oversample
    na = max(1, int(np.ceil(along_m / step)))
    nc = max(1, int(np.ceil(across_m / step)))
    u = (np.arange(na) + 0.5) / na * along_m - along_m / 2
    v = (np.arange(nc) + 0.5) / nc * across_m - across_m / 2
    uu, vv = np.meshgrid(u, v, indexing="ij")
    ar, ac = direction
    rr = row + (uu * ar - vv * ac) / spacing_m[0]
    cc = col + (uu * ac + vv * ar) / spacing_m[1]
    ri, ci = np.rint(rr).astype(np.int64).ravel(), np.rint(cc).astype(np.int64).ravel()
    inside = (ri >= 0) & (ri < h) & (ci >= 0) & (ci < w)
    flat = ri[inside] * w + ci[inside]
    pix, counts = np.unique(flat, return_counts=True)
    return pix, counts / max(ri.size, 1)


COUNT_KEYS = ("points_read", "outside_time_window", "outside", "bad_quality", "on_land", "collocated")


def footprints(rows, cols, along_m, across_m, d_row, d_col, shape, spacing_m, oversample: int = 3):
    """`footprint_pixels` of N points at once: (point index [M], flat pixel [M], area fraction [M]) for
    every (point, pixel) pair, sorted by point then pixel. Points are grouped by their lattice size, so
    the work is a few array operations, not a Python loop over the points."""
    h, w = shape
    rows, cols = np.asarray(rows, np.float64), np.asarray(cols, np.float64)
    along, across = np.asarray(along_m, np.float64), np.asarray(across_m, np.float64)
    step = min(spacing_m) / oversample
    na = np.maximum(1, np.ceil(along / step)).astype(np.int64)
    nc = np.maximum(1, np.ceil(across / step)).astype(np.int64)
    parts = []
    for a, c in sorted(set(zip(na.tolist(), nc.tolist(), strict=True))):
        sel = np.flatnonzero((na == a) & (nc == c))
        u = ((np.arange(a) + 0.5) / a)[None, :] * along[sel, None] - along[sel, None] / 2  # [n, a]
        v = ((np.arange(c) + 0.5) / c)[None, :] * across[sel, None] - across[sel, None] / 2  # [n, c]
        ar, ac = np.asarray(d_row, np.float64)[sel, None, None], np.asarray(d_col, np.float64)[sel, None, None]
        uu, vv = u[:, :, None], v[:, None, :]
        rr = rows[sel, None, None] + (uu * ar - vv * ac) / spacing_m[0]
        cc = cols[sel, None, None] + (uu * ac + vv * ar) / spacing_m[1]
        ri, ci = np.rint(rr).astype(np.int64).reshape(sel.size, -1), np.rint(cc).astype(np.int64).reshape(sel.size, -1)
        inside = (ri >= 0) & (ri < h) & (ci >= 0) & (ci < w)
        point = np.broadcast_to(sel[:, None], ri.shape)[inside]
        key, counts = np.unique(point * (h * w) + (ri * w + ci)[inside], return_counts=True)
        parts.append((key // (h * w), key % (h * w), counts / float(a * c)))
    if not parts:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    point, pix, frac = (np.concatenate(x) for x in zip(*parts, strict=True))
    order = np.lexsort((pix, point))
    return point[order], pix[order], frac[order]


def collocate(scene: SceneLike, tracks, max_time_gap=None, *, quality_only: bool = True, max_pixels: int | None = None,
              min_inside: float = 0.5, spacing_m: tuple[float, float] | None = None,
              oversample: int = 3, counts: dict | None = None) -> Collocation:
    """Collocates `tracks` (Tracks) with `scene` (anything with .shape, .tie_points, .start_time).

    max_time_gap: seconds or timedelta (None: no time limit); spacing_m: ground metres of one line /
    sample step (default from the tie points); a point is dropped when under `min_inside` of its
    footprint falls inside the scene. counts: a dict to which the fate of every point is added
    (COUNT_KEYS: read, outside the time window, outside the scene (centre or most of the footprint),
    bad quality, on land or SAR no-data, collocated).
    """
    tally = dict.fromkeys(COUNT_KEYS, 0)
    h, w = scene.shape
    tp = scene.tie_points
    if tp is None:
        raise ValueError("scene has no tie_points: cannot collocate")
    sp = spacing_m or pixel_spacing_m(tp)
    start = getattr(scene, "start_time", None)
    t_start = to_unix_seconds(start) if start is not None else None
    if max_time_gap is not None and t_start is None:
        raise ValueError("scene has no start_time but max_time_gap is set")
    gap = None if max_time_gap is None else to_seconds(max_time_gap)
    valid = getattr(scene, "valid", None)
    tracks = [tracks] if isinstance(tracks, Track) else list(tracks)
    per_point, track_parts = [], []
    lat_lo, lat_hi = float(tp.latitude.min()) - 0.5, float(tp.latitude.max()) + 0.5
    for ti, tr in enumerate(tracks):
        if len(tr) == 0:
            continue
        tally["points_read"] += len(tr)
        dt_all = tr.time - t_start if t_start is not None else np.full(len(tr), np.nan)
        # cheap prefilter (time, latitude band) before the tie-point inversion
        in_time = np.abs(dt_all) <= gap if gap is not None else np.ones(len(tr), bool)
        tally["outside_time_window"] += int((~in_time).sum())
        pre = in_time & (tr.latitude >= lat_lo) & (tr.latitude <= lat_hi)
        tally["outside"] += int((in_time & ~pre).sum())
        sel = np.flatnonzero(pre)
        if sel.size == 0:
            continue
        r, c = geo.latlon_to_pixel(tp, tr.latitude[sel], tr.longitude[sel])
        dr, dc = _directions(np.nan_to_num(r), np.nan_to_num(c), sp)
        keep = np.isfinite(r) & np.isfinite(c) & (r > -0.5) & (r < h - 0.5) & (c > -0.5) & (c < w - 0.5)
        tally["outside"] += int((~keep).sum())
        if quality_only:
            tally["bad_quality"] += int((keep & ~tr.quality[sel]).sum())
            keep &= tr.quality[sel]
        dt = dt_all[sel]
        if valid is not None:
            ri = np.clip(np.rint(np.nan_to_num(r)), 0, h - 1).astype(int)
            ci = np.clip(np.rint(np.nan_to_num(c)), 0, w - 1).astype(int)
            on_valid = np.asarray(valid)[ri, ci]
            tally["on_land"] += int((keep & ~on_valid).sum())
            keep &= on_valid
        js = np.flatnonzero(keep)
        if js.size == 0:
            continue
        idx = sel[js]
        point, pix, frac = footprints(r[js], c[js], tr.footprint_along[idx], tr.footprint_across[idx], dr[js], dc[js],
                                      (h, w), sp, oversample)
        total = np.bincount(point, weights=frac, minlength=js.size)
        ok = total >= min_inside
        tally["outside"] += int((~ok).sum())
        per_point.append((point, pix, frac / np.maximum(total[point], 1e-12), ok))
        track_parts.append((np.full(int(ok.sum()), ti), idx[ok], r[js][ok], c[js][ok], dt[js][ok]))
    index, weight = _padded_footprints(per_point, max_pixels)
    n = index.shape[0]
    tally["collocated"] = n
    if counts is not None:
        for k, v in tally.items():
            counts[k] = counts.get(k, 0) + v
    if track_parts:
        t_i, p_i, row, col, toff = (np.concatenate(x) for x in zip(*track_parts, strict=True))
    else:
        t_i = p_i = np.zeros(0, np.int64)
        row = col = toff = np.zeros(0)

    def attr(name, dtype):
        return (np.concatenate([getattr(tracks[t], name)[i] for (t, i) in _by_track(t_i, p_i)]).astype(dtype)
                if n else np.zeros(0, dtype))

    return Collocation(shape=(h, w), track_ids=[t.track_id for t in tracks],
                       track_index=t_i.astype(np.int32), point_index=p_i.astype(np.int32),
                       row=row.astype(np.float64), col=col.astype(np.float64), time_offset=toff.astype(np.float64),
                       value=attr("value", np.float32), uncertainty=attr("uncertainty", np.float32),
                       surface=attr("surface", np.uint8), footprint_along=attr("footprint_along", np.float32),
                       footprint_across=attr("footprint_across", np.float32), index=index, weight=weight,
                       missions=[t.mission for t in tracks])


def _by_track(track_index, point_index):
    """[(track, its point indices)] in order, for runs of the same track."""
    out, start = [], 0
    for k in range(1, len(track_index) + 1):
        if k == len(track_index) or track_index[k] != track_index[start]:
            out.append((int(track_index[start]), point_index[start:k]))
            start = k
    return out


def _padded_footprints(per_point, max_pixels: int | None) -> tuple[np.ndarray, np.ndarray]:
    """index / weight [N, K] of the kept points of every track (pixels by decreasing weight, ties by pixel
    order; K = max_pixels, renormalised when pixels are dropped, else the largest footprint)."""
    idx_parts, w_parts = [], []
    for point, pix, frac, ok in per_point:
        kept = ok[point]
        new_id = np.cumsum(ok) - 1
        pt, px, fr = new_id[point[kept]], pix[kept], frac[kept]
        order = np.lexsort((px, -fr, pt))  # by point, then decreasing weight, then pixel
        pt, px, fr = pt[order], px[order], fr[order]
        m = int(ok.sum())
        first = np.searchsorted(pt, np.arange(m))
        rank = np.arange(pt.size) - first[pt]
        k = int(rank.max()) + 1 if rank.size else 1
        index, weight = np.zeros((m, k), np.int32), np.zeros((m, k), np.float32)
        index[pt, rank], weight[pt, rank] = px, fr
        idx_parts.append(index)
        w_parts.append(weight)
    if not idx_parts:
        index, weight = np.zeros((0, max_pixels or 1), np.int32), np.zeros((0, max_pixels or 1), np.float32)
        return index, weight
    k = max(a.shape[1] for a in idx_parts)
    index = np.concatenate([np.pad(a, ((0, 0), (0, k - a.shape[1]))) for a in idx_parts])
    weight = np.concatenate([np.pad(a, ((0, 0), (0, k - a.shape[1]))) for a in w_parts])
    if max_pixels is not None:
        index, weight = _truncate(index, weight, max_pixels)
    return index, weight
