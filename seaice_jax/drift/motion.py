"""Motion of the ice: images warped along a flow, where the ice opened, and tracks moved with drift fields.

`warp(image, flow, days)` moves an ice field along any pixel-plane flow map (an object with
`flow(rows, cols, days) -> (rows, cols)`, e.g. the synthetic world's `KnownDrift`); `area_ratio` says
where the ice opened (new water in a lead) or converged.

`move_tracks` moves points observed at other times to a target time through one or more
DriftFields (velocity = displacement / gap, piecewise in time over the pairs, linear in time
between pairs, nearest pair beyond them) and grows their uncertainty by each pair's nominal error,
pro rata of the time it covers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
from scipy import interpolate, ndimage

from seaice_jax.drift import estimation as drift_lib

DAY_S = 86400.0


class PixelFlow(Protocol):
    """A flow map on a scene's pixel plane: where ice at (rows, cols) is after `days` (negative: before)."""

    def flow(self, rows, cols, days: float): ...


class PointFlow(Protocol):
    """An exact motion of points on the Earth (a reference drift, e.g. a synthetic sequence's truth):
    where ice seen at (lat, lon) at unix seconds `time_s` is at `target_s` (arrays broadcast)."""

    def __call__(self, lat, lon, time_s, target_s): ...


def warp(image: np.ndarray, drift: PixelFlow, days: float, *, order: int = 1, cval=np.nan,
         offset_px: tuple[float, float] = (0.0, 0.0), out_shape=None, step: int = 8) -> np.ndarray:
    """The ice field `image` [H, W] (or labels with order=0) moved by `drift` over `days`.

    out[y] = image[flow(y, -days)]: each output pixel takes the ice that drifts there. `offset_px`
    places out's pixel (0, 0) at image pixel offset_px (so a larger source image can feed ice in
    from outside the scene). The backward flow is computed every `step` px and interpolated (smooth).
    """
    h, w = out_shape or image.shape
    rs = np.arange(0, h + step, step, dtype=np.float64)
    cs = np.arange(0, w + step, step, dtype=np.float64)
    R, C = np.meshgrid(rs, cs, indexing="ij")
    sr, sc = drift.flow(R, C, -days)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    coarse = [yy / step, xx / step]
    src_r = ndimage.map_coordinates(sr.astype(np.float32), coarse, order=1) + offset_px[0]
    src_c = ndimage.map_coordinates(sc.astype(np.float32), coarse, order=1) + offset_px[1]
    img = np.asarray(image)
    if order == 0:
        ir, ic = np.round(src_r).astype(np.int64), np.round(src_c).astype(np.int64)
        inside = (ir >= 0) & (ir < img.shape[0]) & (ic >= 0) & (ic < img.shape[1])
        keep = np.can_cast(np.min_scalar_type(cval), img.dtype) if np.isfinite(cval) else False
        out = np.full((h, w), cval, dtype=img.dtype if keep else np.float32)
        out[inside] = img[ir[inside], ic[inside]]
        return out
    return ndimage.map_coordinates(img.astype(np.float32), [src_r, src_c], order=order, mode="constant",
                                   cval=cval)


def area_ratio(drift: PixelFlow, days: float, shape: tuple[int, int], step: int = 8) -> np.ndarray:
    """[H, W] area now covered by the ice that drifted to each pixel, over its area before (float32):
    > 1 where the ice opened (a lead: new open water for the synthesizer to paint), < 1 where it
    converged (ridging). The inverse of the backward flow's Jacobian determinant, every `step` px."""
    h, w = shape
    rs = np.arange(0, h + step, step, dtype=np.float64)
    cs = np.arange(0, w + step, step, dtype=np.float64)
    R, C = np.meshgrid(rs, cs, indexing="ij")
    eps = 0.5
    r_p, c_p = drift.flow(R + eps, C, -days)
    r_m, c_m = drift.flow(R - eps, C, -days)
    r_q, c_q = drift.flow(R, C + eps, -days)
    r_n, c_n = drift.flow(R, C - eps, -days)
    det = ((r_p - r_m) * (c_q - c_n) - (r_q - r_n) * (c_p - c_m)) / (2 * eps) ** 2
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    ratio = (1.0 / det).astype(np.float32)
    return ndimage.map_coordinates(ratio, [yy / step, xx / step], order=1)

# --------------------------------------------------------------------------------------------
# Moving tracks
# --------------------------------------------------------------------------------------------

def _unit(lat, lon):
    la, lo = np.deg2rad(lat), np.deg2rad(lon)
    return np.stack([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)], -1)


class _VelocityInterpolant:
    """A field's velocity as a 3-D vector (m/s on the sphere's tangent planes), linear between its
    valid vectors (Delaunay in a gnomonic plane about the field's centre), nearest outside them."""

    def __init__(self, field: drift_lib.DriftField):
        ok = field.valid & np.isfinite(field.end_latitude)
        if not ok.any():
            raise ValueError(f"drift field {field.method} {field.time_a} has no valid vector")
        p0 = _unit(field.latitude[ok], field.longitude[ok])
        p1 = _unit(field.end_latitude[ok], field.end_longitude[ok])
        vel = (p1 - p0) * drift_lib.EARTH_RADIUS_M / field.gap_seconds
        centre = p0.mean(0)
        self.centre = centre / np.linalg.norm(centre)
        east = np.cross([0.0, 0.0, 1.0], self.centre)
        self.e1 = east / max(np.linalg.norm(east), 1e-12) if np.linalg.norm(east) > 1e-9 else np.array([1.0, 0, 0])
        self.e2 = np.cross(self.centre, self.e1)
        xy = self._plane(p0)
        self.linear = interpolate.LinearNDInterpolator(xy, vel) if ok.sum() >= 3 else None
        self.nearest = interpolate.NearestNDInterpolator(xy, vel)

    def _plane(self, p):
        d = p @ self.centre
        return np.stack([p @ self.e1 / d, p @ self.e2 / d], -1)

    def __call__(self, p):
        xy = self._plane(p)
        v = self.nearest(xy)
        if self.linear is not None:
            lin = self.linear(xy)
            v = np.where(np.isfinite(lin), lin, v)
        return v


def _timestamp(t) -> float:
    t = np.asarray(t, dtype="datetime64[us]")
    return t.astype(np.int64) / 1e6


def _pieces(fields, t_lo: float, t_hi: float):
    """Elementary time intervals of [t_lo, t_hi] with the blend of fields (weights) covering each."""
    starts = np.array([_timestamp(f.time_a) for f in fields])
    ends = np.array([_timestamp(f.time_b) for f in fields])
    bounds = np.unique(np.concatenate([[t_lo, t_hi], starts, ends]))
    bounds = bounds[(bounds >= t_lo) & (bounds <= t_hi)]
    pieces = []
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        mid = (a + b) / 2
        cover = (starts <= mid) & (ends >= mid)
        if cover.any():
            w = cover / cover.sum()
        elif mid < starts.min():
            w = (starts == starts.min()).astype(float)
        elif mid > ends.max():
            w = (ends == ends.max()).astype(float)
        else:  # between pairs: velocity linear in time from the last pair before to the next after
            before = np.where(ends <= mid, ends, -np.inf).argmax()
            after = np.where(starts >= mid, starts, np.inf).argmin()
            frac = (mid - ends[before]) / (starts[after] - ends[before])
            w = np.zeros(len(fields))
            w[before], w[after] = 1 - frac, frac
        pieces.append((a, b, w))
    return pieces


def move_tracks(latitude, longitude, time, fields: Sequence[drift_lib.DriftField], target_time,
                uncertainty_m=0.0):
    """Move track points (lat, lon [n] degrees, observed at `time` [n] datetime64) to `target_time`
    with the drift `fields` (any order; each one pair A -> B).

    Returns (lat, lon, uncertainty_m) [n]: moved positions and the position uncertainty, grown from
    `uncertainty_m` (scalar or [n]) by each pair's `uncertainty_m` x (time moved with it / its gap),
    added in quadrature over the pairs used.
    """
    fields = list(fields)
    if not fields:
        raise ValueError("move_tracks needs at least one drift field")
    lat = np.asarray(latitude, np.float64).ravel()
    lon = np.asarray(longitude, np.float64).ravel()
    t = np.broadcast_to(_timestamp(time), lat.shape)
    target = float(_timestamp(target_time))
    var = np.broadcast_to(np.asarray(uncertainty_m, np.float64) ** 2, lat.shape).copy()
    vel = [_VelocityInterpolant(f) for f in fields]
    gaps = np.array([f.gap_seconds for f in fields])
    p = _unit(lat, lon)
    for direction, sel in ((1.0, t < target), (-1.0, t > target)):
        if not sel.any():
            continue
        lo, hi = (t[sel].min(), target) if direction > 0 else (target, t[sel].max())
        pieces = _pieces(fields, lo, hi)
        if direction < 0:
            pieces = pieces[::-1]
        for a, b, w in pieces:
            # Each point spends the part of [a, b] inside its own [t, target] on this piece.
            ts = t[sel]
            dur = np.clip(np.minimum(b, np.maximum(ts, target)) - np.maximum(a, np.minimum(ts, target)), 0, None)
            if not np.any(dur > 0):
                continue
            q0 = p[sel]

            def velocity(q, w=w):
                return sum(wk * vel[k](q) for k, wk in enumerate(w) if wk > 0)

            def step(q):
                return q / np.linalg.norm(q, axis=-1, keepdims=True)

            if direction > 0:  # displacements are measured from the start positions: step from here
                q = step(q0 + velocity(q0) * dur[:, None] / drift_lib.EARTH_RADIUS_M)
            else:  # back in time: the start that drifts to here, q = q0 - v(q) dur (fixed point)
                q = q0
                for _ in range(4):
                    q = step(q0 - velocity(q) * dur[:, None] / drift_lib.EARTH_RADIUS_M)
            p[sel] = q
            rate = sum(wk * fields[k].uncertainty_m / gaps[k] for k, wk in enumerate(w) if wk > 0)
            var[sel] += (rate * dur) ** 2
    out_lat = np.rad2deg(np.arcsin(np.clip(p[:, 2], -1, 1)))
    out_lon = np.rad2deg(np.arctan2(p[:, 1], p[:, 0]))
    shape = np.shape(latitude)
    return out_lat.reshape(shape), out_lon.reshape(shape), np.sqrt(var).reshape(shape)
