"""Known drift for the synthetic world: a smooth velocity field, image pairs of the same ice moved by
it, its true DriftField, and a study of the estimation error against the gap and the deformation.

`KnownDrift` is a smooth, stationary velocity field on scene A's pixel plane:
  v(x) = u0 + G (x - centre) + lead term,
with G from a rotation rate, a divergence and a (pure) shear rate, and a lead term: a velocity
jump across a line (tanh of the signed distance over `lead_width_px`) that opens a lead at
`lead_opening_m_per_day` (negative: closes it, ridging). The motion over a gap T is the flow map
of v (RK4), so displacement is exact for any gap and `drift.motion.warp` (the backward flow) is its
inverse. `synthetic_pair` gives two acquisitions of the same ice with independent speckle and noise.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np

from seaice_jax.data import geolocation as geo
from seaice_jax.drift import estimation as drift_lib
from seaice_jax.drift.evaluation import evaluate_drift
from seaice_jax.drift.motion import warp
from seaice_jax.synthetic.surface import gaussian_random_field


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

def ice_texture_db(rng: np.random.Generator, shape: tuple[int, int], mean_db: float = -18.0,
                   contrast: float = 1.0) -> np.ndarray:
    """A backscatter field (dB) with ice-like texture at several scales (floes, ridges, leads);
    `contrast` scales every texture amplitude (1: ~4 dB std; speckle at 4 looks is ~2.3 dB)."""
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
# The estimation error on synthetic pairs

@dataclasses.dataclass(frozen=True)
class StudyCase:
    gap_days: float
    deformation_per_day: float  # divergence = shear = this; rotation = this (rad/day) in degrees
    contrast: float = 1.0       # ice texture amplitude (ice_texture_db)


def synthetic_study(cases, *, shape=(384, 384), config: drift_lib.DriftConfig | None = None,
                    speed_m_per_day: float = 10_000.0, seed: int = 0) -> list[dict]:
    """RMSE of both methods on synthetic pairs, one row per case: drift of `speed_m_per_day` x gap
    with divergence, shear and rotation of `deformation_per_day`, and a lead opening at 200 m/day."""
    config = config or drift_lib.DriftConfig()
    tie = synthetic_tie_points(shape, config.pixel_spacing_m)
    t0 = dt.datetime(2021, 3, 1, 6)
    rows = []
    for i, case in enumerate(cases):
        d = case.deformation_per_day
        truth_model = KnownDrift(
            translation_m_per_day=(0.6 * speed_m_per_day, -0.8 * speed_m_per_day),
            rotation_deg_per_day=float(np.rad2deg(d)), divergence_per_day=d, shear_per_day=d,
            centre_px=(shape[0] / 2, shape[1] / 2), lead_opening_m_per_day=200.0 if d else 0.0,
            lead_offset_px=shape[0] / 5, pixel_spacing_m=config.pixel_spacing_m)
        hh_a, hh_b = synthetic_pair(shape, truth_model, case.gap_days, seed=seed + i, contrast=case.contrast)
        t1 = t0 + dt.timedelta(days=case.gap_days)
        est = drift_lib.estimate_drift(hh_a, tie, t0, hh_b, tie, t1, config, methods=drift_lib.METHODS)
        truth = known_drift_field(truth_model, case.gap_days, est["pattern_matching"].rows,
                                  est["pattern_matching"].cols, tie, t0)
        scores = evaluate_drift(est, truth)
        rows.append({"gap_days": case.gap_days, "deformation_per_day": d, "contrast": case.contrast, **{
            m: {k: scores[m][k] for k in ("rmse_m", "valid_fraction", "p90_error_m")} for m in scores}})
    return rows
