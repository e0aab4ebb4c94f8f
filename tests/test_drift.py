"""Drift by pattern matching and phase correlation on synthetic pairs with known motion."""

import datetime as dt

import numpy as np
import pytest

from seaice_jax.data import geolocation as geo
from seaice_jax.drift import estimation as drift
from seaice_jax.synthetic import drift as known

SHAPE = (320, 320)
T0 = dt.datetime(2021, 3, 1, 6)
T1 = T0 + dt.timedelta(days=1)
# A small scene: coarse level at 320 m, +-10 km search; fine level as the defaults (35 px, +-20 px).
CONFIG = drift.DriftConfig(coarse_factor=4, coarse_template_km=6.4, coarse_grid_step_km=3.2, max_drift_km=10.0,
                           grid_step_km=2.0)


def _truth_px(field, model, days=1.0):
    R, C = np.meshgrid(field.rows, field.cols, indexing="ij")
    return model.displacement_px(R, C, days)


@pytest.fixture(scope="module")
def rotated_pair():
    model = known.KnownDrift(translation_m_per_day=(2400.0, -3700.0), rotation_deg_per_day=2.0,
                                    centre_px=(SHAPE[0] / 2, SHAPE[1] / 2))
    hh_a, hh_b = known.synthetic_pair(SHAPE, model, 1.0, seed=3)
    tie = known.synthetic_tie_points(SHAPE, 80.0)
    est = drift.estimate_drift(hh_a, tie, T0, hh_b, tie, T1, CONFIG, methods=drift.METHODS)
    return model, tie, hh_a, est


def test_pattern_matching_recovers_shift_and_rotation_subpixel(rotated_pair):
    model, _, _, est = rotated_pair
    f = est["pattern_matching"]
    dr, dc = _truth_px(f, model)
    err = np.hypot(f.drow - dr, f.dcol - dc)[f.valid]
    assert f.valid.mean() > 0.5
    assert np.sqrt(np.mean(err ** 2)) < 0.3 and err.max() < 1.0  # px
    # The rotation: from the vectors (antisymmetric part of a fitted affine field) and per vector.
    R, C = np.meshgrid(f.rows, f.cols, indexing="ij")
    design = np.stack([np.ones(f.valid.sum()), R[f.valid], C[f.valid]], 1)
    (_, grr, grc), *_ = np.linalg.lstsq(design, f.drow[f.valid], rcond=None)
    (_, gcr, gcc), *_ = np.linalg.lstsq(design, f.dcol[f.valid], rcond=None)
    angle = np.rad2deg(np.arctan2(gcr - grc, 2 + grr + gcc))  # small-angle, rows down: CCW positive
    assert angle == pytest.approx(2.0, abs=0.05)
    assert np.median(f.rotation_deg[f.valid]) == pytest.approx(2.0, abs=0.6)
    # Metres east / north agree with the pixel displacement through the tie points.
    speed = np.hypot(f.east_m, f.north_m)[f.valid]
    assert np.median(speed) == pytest.approx(np.hypot(2400.0, 3700.0), rel=0.05)


def test_phase_correlation_reference_on_the_same_grid(rotated_pair):
    model, _, _, est = rotated_pair
    pm, pc = est["pattern_matching"], est["phase_correlation"]
    np.testing.assert_array_equal(pm.rows, pc.rows)
    dr, dc = _truth_px(pc, model)
    err = np.hypot(pc.drow - dr, pc.dcol - dc)[pc.valid]
    assert pc.valid.mean() > 0.3
    assert np.sqrt(np.mean(err ** 2)) < 1.0


def test_low_texture_area_gets_low_quality():
    model = known.KnownDrift(translation_m_per_day=(1600.0, 2400.0))
    flat = np.zeros(SHAPE, bool)
    flat[:, : SHAPE[1] // 2] = True  # left half: flat ice, only the independent speckle differs
    hh_a, hh_b = known.synthetic_pair(SHAPE, model, 1.0, seed=5, low_texture=flat)
    tie = known.synthetic_tie_points(SHAPE, 80.0)
    f = drift.estimate_drift(hh_a, tie, T0, hh_b, tie, T1, CONFIG)["pattern_matching"]
    left = f.cols < SHAPE[1] // 2 - 30  # templates fully inside the flat half
    right = f.cols > SHAPE[1] // 2 + 30
    assert not f.valid[:, left].any()
    assert np.nanmax(f.mcc[:, left]) < CONFIG.min_mcc
    assert np.nanmedian(f.quality[:, right]) > 4 * np.nanmedian(f.quality[:, left])
    assert f.valid[:, right].mean() > 0.5


def test_geometry_is_removed_through_tie_points():
    """Scene B covers a window of the area offset by (25, -40) px: only the ice motion remains."""
    model = known.KnownDrift(translation_m_per_day=(-2000.0, 1500.0))
    big = (SHAPE[0] + 80, SHAPE[1] + 80)
    hh_a_big, hh_b_big = known.synthetic_pair(big, model, 1.0, seed=7)
    tie_big = known.synthetic_tie_points(big, 80.0)
    a0, b0 = (10, 60), (35, 20)  # top-left corners in the big frame

    def crop(x, o):
        return x[o[0]:o[0] + SHAPE[0], o[1]:o[1] + SHAPE[1]]

    def tie_of(o):
        lines, samples = np.linspace(0, SHAPE[0] - 1, 5), np.linspace(0, SHAPE[1] - 1, 5)
        lat, lon = geo.pixel_latlon(tie_big, lines[:, None] + o[0], samples[None, :] + o[1])
        return geo.TiePoints(lines, samples, lat, lon)

    tie_a, tie_b = tie_of(a0), tie_of(b0)
    f = drift.estimate_drift(crop(hh_a_big, a0), tie_a, T0, crop(hh_b_big, b0), tie_b, T1, CONFIG)["pattern_matching"]
    assert f.valid.mean() > 0.4
    dr, dc = _truth_px(f, model)  # the drift is a translation: the same in every frame
    err = np.hypot(f.drow - dr, f.dcol - dc)[f.valid]
    assert np.sqrt(np.mean(err ** 2)) < 0.5


def test_ncc_surfaces_match_direct_computation():
    rng = np.random.default_rng(0)
    t, s = 7, 15
    win = rng.standard_normal((2, s, s)).astype(np.float32)
    tpl = rng.standard_normal((2, 1, t, t)).astype(np.float32)
    tpl[1, 0] = win[1, 3:3 + t, 5:5 + t] * 2.0 + 1.0  # an exact (affine) copy at (3, 5)
    got = np.asarray(drift.ncc_surfaces(tpl, win))
    want = np.zeros((2, 1, s - t + 1, s - t + 1))
    for n in range(2):
        for u in range(s - t + 1):
            for v in range(s - t + 1):
                want[n, 0, u, v] = np.corrcoef(tpl[n, 0].ravel(), win[n, u:u + t, v:v + t].ravel())[0, 1]
    np.testing.assert_allclose(got, want, atol=2e-4)
    assert got[1, 0, 3, 5] == pytest.approx(1.0, abs=1e-4)


def test_subpixel_peak_of_a_quadratic_is_exact():
    y, x = np.mgrid[0:9, 0:9].astype(np.float32)
    z = 1.0 - 0.1 * (y - 4.3) ** 2 - 0.05 * (x - 3.6) ** 2 - 0.02 * (y - 4.3) * (x - 3.6)
    r, c, peak, sharp, border = (np.asarray(v) for v in drift.subpixel_peak(z[None]))
    assert r[0] == pytest.approx(4.3, abs=1e-4) and c[0] == pytest.approx(3.6, abs=1e-4)
    assert sharp[0] == pytest.approx(0.15, abs=1e-4) and not border[0]


def test_unknown_method_is_refused():
    tie = known.synthetic_tie_points(SHAPE, 80.0)
    with pytest.raises(ValueError, match="unknown drift method"):
        drift.estimate_drift(np.zeros(SHAPE), tie, T0, np.zeros(SHAPE), tie, T1, CONFIG, methods=("optical_flow",))


def test_times_may_be_datetime64_or_strings():
    assert drift.as_datetime(np.datetime64("2021-03-01T06:00:00")) == T0
    assert drift.as_datetime("2021-03-01T06:00") == T0
    assert drift.as_datetime(T0) == T0


def test_scene_b_from_another_orbit_is_resampled_onto_a():
    """B's frame is A's turned by 90 degrees (another pass direction): east / north still match."""
    model = known.KnownDrift(translation_m_per_day=(1500.0, -2500.0))
    hh_a, hh_b_in_a = known.synthetic_pair(SHAPE, model, 1.0, seed=9)
    tie_a = known.synthetic_tie_points(SHAPE, 80.0)
    h, w = SHAPE
    hh_b = np.rot90(hh_b_in_a)  # B[i, j] = A-frame[j, w - 1 - i]; B has w lines and h samples
    lines, samples = np.linspace(0, w - 1, 5), np.linspace(0, h - 1, 5)
    lat, lon = geo.pixel_latlon(tie_a, samples[None, :], w - 1 - lines[:, None])
    tie_b = geo.TiePoints(lines, samples, lat, lon)
    f = drift.estimate_drift(hh_a, tie_a, T0, hh_b, tie_b, T1, CONFIG)["pattern_matching"]
    truth = known.known_drift_field(model, 1.0, f.rows, f.cols, tie_a, T0)
    err = np.hypot(f.east_m - truth.east_m, f.north_m - truth.north_m)[f.valid]
    assert f.valid.mean() > 0.4
    assert np.sqrt(np.mean(err ** 2)) < 40.0  # m, half a pixel
