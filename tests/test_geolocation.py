"""Tie-point geolocation: both real layouts, bilinear interpolation, exact inversion."""

import numpy as np
import pytest

from seaice_jax.data import geolocation as geo


def _tilted_grid(n=5, m=4, height=401, width=301, lat0=78.0, lon0=-20.0, heading_deg=-12.0):
    """Tie points of a tilted swath (lat / lon not separable in line / sample)."""
    lines = np.linspace(0, height - 1, n)
    samples = np.linspace(0, width - 1, m)
    h = np.deg2rad(heading_deg)
    along = (lines[:, None] - height / 2) * 80.0
    across = (samples[None, :] - width / 2) * 80.0
    north = along * np.cos(h) - across * np.sin(h)
    east = along * np.sin(h) + across * np.cos(h)
    lat = lat0 + north / 111_195.0
    lon = lon0 + east / (111_195.0 * np.cos(np.deg2rad(lat)))
    return lines, samples, lat, lon


def test_raw_tie_points_any_order_to_grid():
    lines, samples, lat, lon = _tilted_grid()
    L, S = np.meshgrid(lines, samples, indexing="ij")
    perm = np.random.default_rng(0).permutation(L.size)
    tp = geo.tie_points_from_raw(L.ravel()[perm], S.ravel()[perm], lat.ravel()[perm], lon.ravel()[perm])
    np.testing.assert_array_equal(tp.lines, lines)
    np.testing.assert_array_equal(tp.samples, samples)
    np.testing.assert_array_equal(tp.latitude, lat)
    np.testing.assert_allclose(tp.longitude, lon)


def test_raw_tie_points_not_a_grid_is_refused():
    with pytest.raises(geo.GeolocationError, match="do not form a grid"):
        geo.tie_points_from_raw([0, 0, 10], [0, 5, 0], [70, 70, 71], [0, 1, 0])


def test_rtt_samples_first_layout():
    lines, samples, lat, lon = _tilted_grid()
    tp = geo.tie_points_from_rtt(lat.T, lon.T, (401, 301))  # the file holds (samples, lines)
    np.testing.assert_array_equal(tp.latitude, lat)
    np.testing.assert_allclose(tp.lines, lines)
    np.testing.assert_allclose(tp.samples, samples)


def test_pixel_latlon_exact_on_tie_points_and_bilinear_between():
    lines, samples, lat, lon = _tilted_grid()
    tp = geo.tie_points_from_rtt(lat.T, lon.T, (401, 301))
    L, S = np.meshgrid(lines, samples, indexing="ij")
    got_lat, got_lon = geo.pixel_latlon(tp, L, S)
    np.testing.assert_allclose(got_lat, lat, atol=1e-12)
    np.testing.assert_allclose(got_lon, lon, atol=1e-12)
    # Centre of cell (0, 0): the mean of its four corners.
    r, c = (lines[0] + lines[1]) / 2, (samples[0] + samples[1]) / 2
    mid_lat, _ = geo.pixel_latlon(tp, r, c)
    assert mid_lat == pytest.approx(lat[:2, :2].mean(), abs=1e-12)


def test_latlon_grid_matches_pointwise():
    lines, samples, lat, lon = _tilted_grid()
    tp = geo.tie_points_from_rtt(lat.T, lon.T, (401, 301))
    grid_lat, grid_lon = geo.latlon_grid(tp, (401, 301), step=7)
    rows, cols = np.meshgrid(np.arange(0, 401, 7), np.arange(0, 301, 7), indexing="ij")
    p_lat, p_lon = geo.pixel_latlon(tp, rows, cols)
    np.testing.assert_allclose(grid_lat, p_lat, atol=1e-10)
    np.testing.assert_allclose(grid_lon, p_lon, atol=1e-10)


def test_inversion_exact_on_tie_points_and_round_trip():
    lines, samples, lat, lon = _tilted_grid()
    tp = geo.tie_points_from_rtt(lat.T, lon.T, (401, 301))
    rows, cols = geo.latlon_to_pixel(tp, lat, lon)
    L, S = np.meshgrid(lines, samples, indexing="ij")
    np.testing.assert_allclose(rows, L, atol=1e-6)
    np.testing.assert_allclose(cols, S, atol=1e-6)
    rng = np.random.default_rng(1)
    r, c = rng.uniform(-20, 420, 500), rng.uniform(-20, 320, 500)  # a little outside too
    back_r, back_c = geo.latlon_to_pixel(tp, *geo.pixel_latlon(tp, r, c))
    np.testing.assert_allclose(back_r, r, atol=1e-5)
    np.testing.assert_allclose(back_c, c, atol=1e-5)


def test_antimeridian_scene():
    lines, samples, lat, lon = _tilted_grid(lon0=179.9, heading_deg=80.0)
    wrapped = geo.wrap_longitude(lon)
    assert wrapped.min() < -179 and wrapped.max() > 179  # the grid straddles +-180
    tp = geo.tie_points_from_rtt(lat.T, wrapped.T, (401, 301))
    r, c = np.array([100.5, 300.25]), np.array([150.0, 12.5])
    p_lat, p_lon = geo.pixel_latlon(tp, r, c)
    assert np.all(np.abs(p_lon) <= 180)
    back_r, back_c = geo.latlon_to_pixel(tp, p_lat, p_lon)
    np.testing.assert_allclose(back_r, r, atol=1e-5)
    np.testing.assert_allclose(back_c, c, atol=1e-5)
