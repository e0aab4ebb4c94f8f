"""Known drift for testing and synthesis, image warping, and moving tracks with a drift field.

`KnownDrift` is a smooth, stationary velocity field on scene A's pixel plane:
  v(x) = u0 + G (x - centre) + lead term,
with G from a rotation rate, a divergence and a (pure) shear rate, and a lead term: a velocity
jump across a line (tanh of the signed distance over `lead_width_px`) that opens a lead at
`lead_opening_m_per_day` (negative: closes it, ridging). The motion over a gap T is the flow map
of v (RK4), so displacement is exact for any gap and `warp` (the backward flow) is its inverse;
`area_ratio` says where the ice opened (new water in a lead) or converged. `synthetic_pair` gives two
acquisitions of the same ice with independent speckle and noise.

`move_tracks` moves points observed at other times to a target time through one or more
DriftFields (velocity = displacement / gap, piecewise in time over the pairs, linear in time
between pairs, nearest pair beyond them) and grows their uncertainty by each pair's nominal error,
pro rata of the time it covers.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Sequence

import numpy as np
from scipy import interpolate, ndimage

from seaice_jax import drift as drift_lib
from seaice_jax.data import geolocation as geo

DAY_S = 86400.0


@dataclasses.dataclass(frozen=True)
class KnownDrift:
    """A smooth drift on the pixel plane (rows down, cols right); rates per day, lengths in metres."""

    translation_m_per_day: tuple[float, float] = (6000.0, 9000.0)  # (along rows, along cols)
    rotation_deg_per_day: float = 0.0   # rigid rotation, positive = counter-clockwise as displayed
    divergence_per_day: float = 0.0     # d(v_r)/dr + d(v_c)/dc
    shear_per_day: float = 0.0          # pure shear strain rate (dv_r/dc + dv_c/dr)
    centre_px: tuple[float, float] = (0.0, 0.0)
    lead_opening_m_per_day: float = 0.0
    lead_angle_deg: float = 30.0        # orientation of the lead line on the image
    lead_offset_px: float = 0.0         # signed distance of the lead line from the centre
    lead_width_px: float = 3.0
    pixel_spacing_m: float = 80.0

    def velocity_px(self, rows, cols):
        """Velocity (px / day) at pixel positions."""
        p = self.pixel_spacing_m
        y, x = np.asarray(rows, np.float64) - self.centre_px[0], np.asarray(cols, np.float64) - self.centre_px[1]
        # Rows point down: a counter-clockwise turn on the display is clockwise in (row, col).
        w = -np.deg2rad(self.rotation_deg_per_day)
        d, s = self.divergence_per_day / 2.0, self.shear_per_day / 2.0
        vr = self.translation_m_per_day[0] / p + d * y + s * x + w * x
        vc = self.translation_m_per_day[1] / p + s * y + d * x - w * y
        if self.lead_opening_m_per_day:
            a = np.deg2rad(self.lead_angle_deg)
            nr, nc = np.cos(a), -np.sin(a)  # normal to a line along (sin a, cos a)
            dist = y * nr + x * nc - self.lead_offset_px
            jump = 0.5 * self.lead_opening_m_per_day / p * np.tanh(dist / self.lead_width_px)
            vr, vc = vr + jump * nr, vc + jump * nc
        return vr, vc

    def flow(self, rows, cols, days: float, steps: int = 16):
        """Where ice at (rows, cols) is after `days` (negative: where it was). RK4 on v."""
        r, c = np.asarray(rows, np.float64).copy(), np.asarray(cols, np.float64).copy()
        h = days / steps
        for _ in range(steps):
            k1 = self.velocity_px(r, c)
            k2 = self.velocity_px(r + h / 2 * k1[0], c + h / 2 * k1[1])
            k3 = self.velocity_px(r + h / 2 * k2[0], c + h / 2 * k2[1])
            k4 = self.velocity_px(r + h * k3[0], c + h * k3[1])
            r = r + h / 6 * (k1[0] + 2 * k2[0] + 2 * k3[0] + k4[0])
            c = c + h / 6 * (k1[1] + 2 * k2[1] + 2 * k3[1] + k4[1])
        return r, c

    def displacement_px(self, rows, cols, days: float):
        r, c = self.flow(rows, cols, days)
        return r - np.asarray(rows, np.float64), c - np.asarray(cols, np.float64)


def warp(image: np.ndarray, drift: KnownDrift, days: float, *, order: int = 1, cval=np.nan,
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


def area_ratio(drift: KnownDrift, days: float, shape: tuple[int, int], step: int = 8) -> np.ndarray:
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


def ice_texture_db(rng: np.random.Generator, shape: tuple[int, int], mean_db: float = -18.0,
                   contrast: float = 1.0) -> np.ndarray:
    """A backscatter field (dB) with ice-like texture at several scales (floes, ridges, leads);
    `contrast` scales every texture amplitude (1: ~4 dB std; speckle at 4 looks is ~2.3 dB)."""
    from seaice_jax.data.synthetic.surface import gaussian_random_field

    x = (2.5 * gaussian_random_field(rng, shape, 1.5) + 2.0 * gaussian_random_field(rng, shape, 5.0)
         + 2.0 * gaussian_random_field(rng, shape, 20.0))
    leads = np.abs(gaussian_random_field(rng, shape, 12.0)) < 0.05
    return (mean_db + contrast * (x - 6.0 * leads)).astype(np.float32)


def speckled_db(rng: np.random.Generator, db: np.ndarray, looks: float, noise_db: float) -> np.ndarray:
    """One acquisition of a backscatter field: gamma speckle with `looks`, then additive dB noise."""
    intensity = 10.0 ** (db / 10.0) * rng.gamma(looks, 1.0 / looks, size=db.shape)
    return (10.0 * np.log10(intensity) + noise_db * rng.standard_normal(db.shape)).astype(np.float32)


def synthetic_pair(shape: tuple[int, int], drift: KnownDrift, days: float, *, seed: int = 0,
                   looks: float = 4.0, noise_db: float = (0.3, 0.6), contrast: float = 1.0, low_texture=None):
    """Two acquisitions of the same ice: (hh_a, hh_b) [H, W] dB, B = A's ice moved by `drift`.

    Speckle and noise are drawn independently per acquisition (noise_db: (A, B) std). The ice field
    is drawn with a margin so that ice enters B from outside A. `low_texture` [H, W] bool (optional):
    there the ice is a flat -18 dB (only speckle differs), in A's frame, moved with the ice.
    """
    rng = np.random.default_rng(seed)
    probe_r = np.array([0, 0, shape[0] - 1, shape[0] - 1.0])
    probe_c = np.array([0, shape[1] - 1.0, 0, shape[1] - 1])
    dr, dc = drift.displacement_px(probe_r, probe_c, -days)
    margin = int(np.ceil(max(np.abs(dr).max(), np.abs(dc).max()))) + 8
    big = (shape[0] + 2 * margin, shape[1] + 2 * margin)
    ice = ice_texture_db(rng, big, contrast=contrast)
    if low_texture is not None:
        flat = np.zeros(big, bool)
        flat[margin:margin + shape[0], margin:margin + shape[1]] = low_texture
        ice = np.where(flat, -18.0, ice).astype(np.float32)
    clean_a = ice[margin:margin + shape[0], margin:margin + shape[1]]
    clean_b = warp(ice, drift, days, offset_px=(margin, margin), out_shape=shape)
    na, nb = (noise_db, noise_db) if np.isscalar(noise_db) else noise_db
    return speckled_db(rng, clean_a, looks, na), speckled_db(rng, clean_b, looks, nb)


def synthetic_tie_points(shape: tuple[int, int], spacing_m: float, lat0: float = 82.0, lon0: float = 20.0,
                heading_deg: float = -20.0, n: int = 5) -> geo.TiePoints:
    """A tilted swath's tie points (lines southward-ish, samples eastward-ish) for synthetic scenes."""
    lines, samples = np.linspace(0, shape[0] - 1, n), np.linspace(0, shape[1] - 1, n)
    h = np.deg2rad(heading_deg)
    along = -(lines[:, None] - shape[0] / 2) * spacing_m
    across = (samples[None, :] - shape[1] / 2) * spacing_m
    north = along * np.cos(h) - across * np.sin(h)
    east = along * np.sin(h) + across * np.cos(h)
    lat = lat0 + north / 111_195.0
    lon = lon0 + east / (111_195.0 * np.cos(np.deg2rad(lat)))
    return geo.TiePoints(lines, samples, lat, lon)


def known_drift_field(drift: KnownDrift, days: float, rows: np.ndarray, cols: np.ndarray,
                      tie_a: geo.TiePoints, time_a: dt.datetime, *, uncertainty_m: float = 0.0,
                      method: str = "truth") -> drift_lib.DriftField:
    """The true DriftField of `drift` over `days` on the grid rows [gy] x cols [gx] of scene A."""
    R, C = np.meshgrid(np.asarray(rows), np.asarray(cols), indexing="ij")
    dr, dc = drift.displacement_px(R, C, days)
    lat, lon = geo.pixel_latlon(tie_a, R, C)
    end_lat, end_lon = geo.pixel_latlon(tie_a, R + dr, C + dc)
    east, north = drift_lib.spherical_displacement(lat, lon, end_lat, end_lon)
    ones = np.ones(R.shape, np.float32)
    return drift_lib.DriftField(
        rows=np.asarray(rows), cols=np.asarray(cols), latitude=lat, longitude=lon, end_latitude=end_lat,
        end_longitude=end_lon, drow=dr, dcol=dc, east_m=east, north_m=north, mcc=ones, quality=ones,
        rotation_deg=0 * ones, valid=np.ones(R.shape, bool), time_a=time_a,
        time_b=time_a + dt.timedelta(days=days), pixel_spacing_m=drift.pixel_spacing_m, method=method,
        uncertainty_m=uncertainty_m)


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
    for a, b in zip(bounds[:-1], bounds[1:]):
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
            velocity = lambda q: sum(wk * vel[k](q) for k, wk in enumerate(w) if wk > 0)
            step = lambda q: q / np.linalg.norm(q, axis=-1, keepdims=True)
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
