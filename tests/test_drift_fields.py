"""Known drift fields, warping, moving tracks, evaluation and the drift file formats."""

import datetime as dt

import netCDF4
import numpy as np
import pytest
import xarray as xr

from seaice_jax.data import geolocation as geo
from seaice_jax.drift import estimation as drift
from seaice_jax.drift import evaluation as drift_evaluation
from seaice_jax.drift import io as drift_io
from seaice_jax.drift import motion
from seaice_jax.synthetic import drift as known

SHAPE = (200, 240)
T0 = dt.datetime(2021, 3, 1, 6)


def test_flow_is_invertible_and_rotation_is_rigid():
    model = known.KnownDrift(translation_m_per_day=(800.0, -400.0), rotation_deg_per_day=5.0,
                                    divergence_per_day=0.02, shear_per_day=0.01, centre_px=(100.0, 120.0))
    r, c = np.array([10.0, 150.0, 60.0]), np.array([20.0, 200.0, 90.0])
    fr, fc = model.flow(r, c, 2.0)
    br, bc = model.flow(fr, fc, -2.0)
    np.testing.assert_allclose(br, r, atol=1e-6)
    np.testing.assert_allclose(bc, c, atol=1e-6)
    rigid = known.KnownDrift(translation_m_per_day=(0.0, 0.0), rotation_deg_per_day=10.0, centre_px=(0.0, 0.0))
    fr, fc = rigid.flow(np.array([0.0]), np.array([100.0]), 1.0)  # a point right of the centre
    assert np.hypot(fr, fc)[0] == pytest.approx(100.0, abs=1e-6)
    assert np.rad2deg(np.arctan2(-fr, fc))[0] == pytest.approx(10.0, abs=1e-6)  # turned up: CCW as displayed


def test_lead_opens_at_its_rate():
    model = known.KnownDrift(translation_m_per_day=(0.0, 0.0), lead_opening_m_per_day=400.0,
                                    lead_angle_deg=90.0, centre_px=(50.0, 50.0), lead_width_px=2.0)
    # angle 90: the lead runs along the rows (vertical line at col 50); its sides move apart in col.
    _, c = model.flow(np.array([50.0, 50.0]), np.array([30.0, 70.0]), 2.0)
    assert (c[1] - c[0]) - 40.0 == pytest.approx(800.0 / 80.0, abs=1e-3)


def test_area_ratio_shows_divergence_and_the_opening_lead():
    spread = known.KnownDrift(translation_m_per_day=(500.0, 0.0), divergence_per_day=0.1, centre_px=(0.0, 0.0))
    ratio = motion.area_ratio(spread, 1.0, (40, 50))
    np.testing.assert_allclose(ratio, np.exp(0.1), rtol=1e-4)  # d(area)/dt = div x area
    lead = known.KnownDrift(translation_m_per_day=(0.0, 0.0), lead_opening_m_per_day=400.0,
                                   lead_angle_deg=90.0, centre_px=(50.0, 50.0), lead_width_px=2.0)
    ratio = motion.area_ratio(lead, 1.0, (100, 100), step=2)
    assert ratio[:, 50].min() > 1.5 and abs(ratio[:, 10] - 1).max() < 1e-3


def test_warp_moves_an_ice_feature_with_the_flow():
    model = known.KnownDrift(translation_m_per_day=(800.0, -1200.0), rotation_deg_per_day=3.0,
                                    centre_px=(100.0, 120.0))
    image = np.zeros(SHAPE, np.float32)
    image[60:63, 80:83] = 1.0  # a small floe centred on (61, 81)
    moved = motion.warp(image, model, 1.0, cval=0.0)
    labels = motion.warp(image.astype(np.uint8), model, 1.0, order=0, cval=255)
    er, ec = model.flow(np.array([61.0]), np.array([81.0]), 1.0)
    yy, xx = np.mgrid[0:SHAPE[0], 0:SHAPE[1]]
    centroid = (moved * yy).sum() / moved.sum(), (moved * xx).sum() / moved.sum()
    assert centroid[0] == pytest.approx(er[0], abs=0.2) and centroid[1] == pytest.approx(ec[0], abs=0.2)
    assert labels[int(round(er[0])), int(round(ec[0]))] == 1 and labels.dtype == np.uint8
    assert (labels == 255).any()  # ice from outside the scene is unknown


def test_synthetic_pair_has_independent_speckle():
    model = known.KnownDrift(translation_m_per_day=(0.0, 0.0))
    a, b = known.synthetic_pair(SHAPE, model, 1.0, seed=0)
    assert np.all(np.isfinite(a)) and np.all(np.isfinite(b))
    assert not np.allclose(a, b)
    assert 0.3 < np.corrcoef(a.ravel(), b.ravel())[0, 1] < 0.95  # same ice, different speckle


def _truth_field(model, days, tie, time_a, uncertainty_m=0.0, step=20):
    rows, cols = np.arange(0, SHAPE[0], step), np.arange(0, SHAPE[1], step)
    return known.known_drift_field(model, days, rows, cols, tie, time_a, uncertainty_m=uncertainty_m)


def test_move_tracks_lands_on_the_truth_and_grows_uncertainty():
    model = known.KnownDrift(translation_m_per_day=(3000.0, -2000.0), divergence_per_day=0.01,
                                    centre_px=(100.0, 120.0))
    tie = known.synthetic_tie_points(SHAPE, 80.0)
    field = _truth_field(model, 1.0, tie, T0, uncertainty_m=300.0)
    rows, cols = np.array([60.0, 100.0, 140.0]), np.array([50.0, 120.0, 170.0])
    lat, lon = geo.pixel_latlon(tie, rows, cols)
    times = np.array([T0 + dt.timedelta(hours=6)] * 3, dtype="datetime64[us]")
    target = T0 + dt.timedelta(days=1)
    got_lat, got_lon, sigma = motion.move_tracks(lat, lon, times, [field], target, uncertainty_m=50.0)
    er, ec = model.flow(rows, cols, 0.75)
    want_lat, want_lon = geo.pixel_latlon(tie, er, ec)
    miss_e, miss_n = drift.spherical_displacement(want_lat, want_lon, got_lat, got_lon)
    assert np.hypot(miss_e, miss_n).max() < 10.0  # m, of a ~2.7 km move
    np.testing.assert_allclose(sigma, np.hypot(50.0, 0.75 * 300.0), rtol=1e-9)
    # Backwards in time, through two pairs: a point seen at T0 + 2 d goes back to T0.
    field2 = _truth_field(model, 1.0, tie, T0 + dt.timedelta(days=1), uncertainty_m=300.0)
    er2, ec2 = model.flow(rows, cols, 2.0)
    lat2, lon2 = geo.pixel_latlon(tie, er2, ec2)
    later = np.array([T0 + dt.timedelta(days=2)] * 3, dtype="datetime64[us]")
    back_lat, back_lon, sigma2 = motion.move_tracks(lat2, lon2, later, [field2, field], T0)
    miss_e, miss_n = drift.spherical_displacement(lat, lon, back_lat, back_lon)
    assert np.hypot(miss_e, miss_n).max() < 20.0
    np.testing.assert_allclose(sigma2, np.hypot(300.0, 300.0), rtol=1e-9)
    # A point already at the target time does not move.
    same_lat, _, same_sigma = motion.move_tracks(lat, lon, np.datetime64(target), [field], target)
    np.testing.assert_allclose(same_lat, lat)
    np.testing.assert_allclose(same_sigma, 0.0)


def test_evaluation_on_a_known_answer():
    model = known.KnownDrift(translation_m_per_day=(3000.0, -2000.0))
    tie = known.synthetic_tie_points(SHAPE, 80.0)
    truth = _truth_field(model, 1.0, tie, T0)
    valid = np.zeros(truth.valid.shape, bool)
    valid[:, ::2] = True
    est = truth.__class__(**{**truth.__dict__, "east_m": truth.east_m + 30.0, "north_m": truth.north_m - 40.0,
                             "valid": valid, "method": "pattern_matching"})
    exact = truth.__class__(**{**truth.__dict__, "method": "phase_correlation"})
    scores = drift_evaluation.evaluate_drift({"pattern_matching": est, "phase_correlation": exact}, truth)
    pm = scores["pattern_matching"]
    assert pm["rmse_m"] == pytest.approx(50.0, abs=1e-6)
    assert pm["bias_east_m"] == pytest.approx(30.0, abs=1e-6) and pm["bias_north_m"] == pytest.approx(-40.0, abs=1e-6)
    assert pm["valid_fraction"] == pytest.approx(valid.mean())
    assert pm["n_valid"] == valid.sum() and pm["gap_hours"] == pytest.approx(24.0)
    assert scores["phase_correlation"]["rmse_m"] == pytest.approx(0.0, abs=1e-6)


def test_drift_file_round_trip_and_cf_attributes(tmp_path):
    model = known.KnownDrift(translation_m_per_day=(3000.0, -2000.0))
    tie = known.synthetic_tie_points(SHAPE, 80.0)
    truth = _truth_field(model, 1.0, tie, T0, uncertainty_m=300.0)
    other = truth.__class__(**{**truth.__dict__, "method": "phase_correlation",
                               "valid": np.arange(truth.valid.size).reshape(truth.valid.shape) % 3 > 0})
    path = str(tmp_path / "drift.nc")
    drift_io.write_drift(path, {"pattern_matching": truth, "phase_correlation": other})
    back = drift_io.read_drift(path)
    assert list(back) == ["pattern_matching", "phase_correlation"]
    for name, want in (("pattern_matching", truth), ("phase_correlation", other)):
        got = back[name]
        np.testing.assert_array_equal(got.valid, want.valid)
        np.testing.assert_allclose(got.east_m, want.east_m, rtol=1e-6)
        np.testing.assert_allclose(got.latitude, want.latitude)
        assert got.time_a == want.time_a and got.time_b == want.time_b and got.uncertainty_m == 300.0
    with netCDF4.Dataset(path) as nc:
        assert nc.Conventions.startswith("CF-")
        east = nc["eastward_sea_ice_displacement"]
        assert east.units == "m" and east.standard_name == "eastward_sea_ice_displacement" and east.long_name
        assert nc["northward_sea_ice_displacement"].standard_name == "northward_sea_ice_displacement"
        assert nc["latitude"].standard_name == "latitude" and nc["latitude"].units == "degrees_north"
        assert nc["time_a"].units.startswith("seconds since") and nc["time_a"].standard_name == "time"
        for var in ("quality", "correlation_peak", "rotation", "displacement_line", "valid"):
            assert nc[var].long_name
    with xr.open_dataset(path) as ds:  # CF decoding works on it
        assert ds["time_b"].values == np.datetime64(T0 + dt.timedelta(days=1))


def test_png_is_written(tmp_path):
    model = known.KnownDrift(translation_m_per_day=(3000.0, -2000.0))
    tie = known.synthetic_tie_points(SHAPE, 80.0)
    path = tmp_path / "drift.png"
    drift_io.plot_drift_png(str(path), np.random.default_rng(0).standard_normal(SHAPE),
                            _truth_field(model, 1.0, tie, T0))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_read_scene_for_drift_rtt_layout(tmp_path):
    rng = np.random.default_rng(0)
    tie = known.synthetic_tie_points(SHAPE, 80.0)
    hv = rng.standard_normal(SHAPE).astype(np.float32)
    hv[:5] = 0.0  # the RTT fill value
    ds = xr.Dataset({
        "nersc_sar_secondary": (("sar_lines", "sar_samples"), hv, {"variable_fill_value": 0}),
        "sar_grid2d_latitude": (("sar_sample_2dgrid_points", "sar_line_2dgrid_points"), tie.latitude.T),
        "sar_grid2d_longitude": (("sar_sample_2dgrid_points", "sar_line_2dgrid_points"), tie.longitude.T),
    }, attrs={"scene_id": "20180607T184326_dmi_prep.nc", "pixel_spacing": 80})
    path = str(tmp_path / "20180607T184326_dmi_prep.nc")
    ds.to_netcdf(path)
    image, got_tie, start = drift_io.read_scene_for_drift(path)
    assert start == dt.datetime(2018, 6, 7, 18, 43, 26)
    assert np.isnan(image[:5]).all() and np.isfinite(image[5:]).all()
    np.testing.assert_allclose(got_tie.latitude, tie.latitude)
    with pytest.raises(drift_io.DriftFileError, match="no variable"):
        drift_io.read_scene_for_drift(path, channel="nersc_sar_primary")


def test_read_scene_for_drift_raw_layout(tmp_path):
    tie = known.synthetic_tie_points(SHAPE, 40.0)
    hh = np.random.default_rng(1).standard_normal(SHAPE).astype(np.float32) - 15.0
    hh[:, :3] = np.nan  # raw files: NaN = no data
    L, S = np.meshgrid(tie.lines, tie.samples, indexing="ij")
    name = ("S1A_EW_GRDM_1SDH_20180124T194759_20180124T194859_020301_022AA4_1F75_icechart_dmi_201801241950_"
            "SouthEast_RIC.nc")
    xr.Dataset({
        "nersc_sar_primary": (("sar_lines", "sar_samples"), hh),
        "sar_grid_line": (("sar_grid_points",), L.ravel()), "sar_grid_sample": (("sar_grid_points",), S.ravel()),
        "sar_grid_latitude": (("sar_grid_points",), tie.latitude.ravel()),
        "sar_grid_longitude": (("sar_grid_points",), tie.longitude.ravel()),
    }).to_netcdf(tmp_path / name)
    image, got_tie, start = drift_io.read_scene_for_drift(str(tmp_path / name), channel="nersc_sar_primary")
    assert start == dt.datetime(2018, 1, 24, 19, 47, 59)
    assert np.isnan(image[:, :3]).all() and np.isfinite(image[:, 3:]).all()
    np.testing.assert_allclose(got_tie.longitude, tie.longitude)
    assert drift_io.pixel_spacing_m(str(tmp_path / name)) == 40.0
