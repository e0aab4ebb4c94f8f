"""Synthetic AI4Arctic scenes: format against the doc, physics sanity, truth vs chart, determinism."""

from __future__ import annotations

import datetime as dt
import math
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import xarray as xr

from seaice_jax.data import channels as ch
from seaice_jax.data import sigrid
from seaice_jax.data import synthetic as sy

SIZE = (200, 250)
RTT_NAME = re.compile(r"^\d{8}T\d{6}_(cis|dmi)_prep\.nc$")
RAW_NAME = re.compile(
    r"^S1[AB]_EW_GRDM_1SDH_(\d{8}T\d{6})_(\d{8}T\d{6})_\d{6}_[0-9A-F]{6}_[0-9A-F]{4}_icechart_"
    r"(cis_SGRDI[A-Z]{2}_\d{8}T\d{4}Z_pl_a|dmi_\d{12}_[A-Za-z]+_RIC)\.nc$")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _written(tmp_path_factory, product: str, season: str, seed: int) -> tuple[str, xr.Dataset]:
    out = tmp_path_factory.mktemp(f"{product}_{season}")
    [path] = sy.write_synthetic_scenes(str(out), 1, product, season, SIZE, seed)
    return path, xr.load_dataset(path)


@pytest.fixture(scope="module")
def rtt_scene(tmp_path_factory):
    return _written(tmp_path_factory, "rtt", "winter", 1)


@pytest.fixture(scope="module")
def raw_scene(tmp_path_factory):
    return _written(tmp_path_factory, "raw", "summer", 5)


def _check_common_format(ds: xr.Dataset, product: str) -> None:
    factor = ch.PIXELS_PER_2KM[product]
    assert (ds.sizes["sar_lines"], ds.sizes["sar_samples"]) == SIZE
    assert ds.sizes["2km_grid_lines"] == math.ceil(SIZE[0] / factor)
    assert ds.sizes["2km_grid_samples"] == math.ceil(SIZE[1] / factor)
    for name in ch.SAR_GRID_CHANNELS:
        assert ds[name].dims == ch.SAR_DIMS and ds[name].dtype == np.float32, name
        assert "variable_fill_value" in ds[name].attrs, name
    for name in ch.AMSR2_CHANNELS:
        assert ds[name].dims == ch.GRID_2KM_DIMS and ds[name].dtype == np.float32, name
        assert ds[name].attrs["units"] == "K"
    for name in ch.ERA5_CHANNELS:
        assert ds[name].dims == ch.GRID_2KM_DIMS and ds[name].dtype == np.float32, name
        assert ds[name].attrs["units"] == ch.ERA5_UNITS[name]
    for name in ("sar_grid2d_latitude", "sar_grid2d_longitude"):
        assert ds[name].dims == ch.TIEPOINT_DIMS and ds[name].dtype == np.float64
        assert ds[name].shape == (min(21, SIZE[0]), min(21, SIZE[1]))
    lat, lon = ds["sar_grid2d_latitude"].values, ds["sar_grid2d_longitude"].values
    assert 45 < lat.min() and lat.max() < 85 and -180 <= lon.min() and lon.max() <= 180
    assert ds["ice_truth"].dtype == np.uint8 and ds["ice_truth"].dims == ch.SAR_DIMS
    assert set(np.unique(ds["ice_truth"].values)) <= {0, 1, 255}
    assert ds.attrs["ice_service"] in ("cis", "dmi")
    assert "original_id" in ds.attrs


def test_rtt_format(rtt_scene):
    path, ds = rtt_scene
    _check_common_format(ds, "rtt")
    assert RTT_NAME.match(os.path.basename(path)), path
    assert ds.attrs["scene_id"] == os.path.basename(path)[:-3]
    for name in ch.CHART_NAMES:
        assert ds[name].dtype == np.uint8 and ds[name].dims == ch.SAR_DIMS
        assert ds[name].attrs["chart_fill_value"] == 255 and "polygon" in ds[name].attrs
    for name, n in ch.NUM_CLASSES.items():
        values = ds[name].values
        assert set(np.unique(values)) <= set(range(n)) | {255}, name
    assert "polygon_icechart" not in ds and "polygon_codes" not in ds
    # every input is standard-scaled: unscaled values lie in physical ranges
    unscaled = lambda n: ds[n].values * ch.NORM_STATS[n][1] + ch.NORM_STATS[n][0]  # noqa: E731
    theta = unscaled("sar_incidenceangle")
    assert 18 < theta.min() < 20 and 46 < theta.max() < 48
    np.testing.assert_allclose(unscaled("distance_map"), np.round(unscaled("distance_map")), atol=1e-3)
    assert 200 < unscaled("btemp_36_5v").mean() < 270
    assert 230 < unscaled("t2m").mean() < 280
    # SAR no-data is exactly 0 and thin; charts are masked there
    hh = ds["nersc_sar_primary"].values
    no_data = hh == 0
    assert 0 < no_data.mean() < 0.1
    assert np.all(ds["SIC"].values[no_data] == 255)


def test_rtt_backscatter_of_water_and_ice_differ_as_expected(rtt_scene):
    _, ds = rtt_scene
    truth = ds["ice_truth"].values
    valid = ds["nersc_sar_primary"].values != 0
    hv = ds["nersc_sar_secondary"].values * 4.7468 - 24.7012
    ice, water = valid & (truth == 1), valid & (truth == 0)
    assert ice.sum() > 1000 and water.sum() > 1000
    # HV: ice well above water (water sits at the noise floor, ~ -29 dB)
    assert hv[ice].mean() > hv[water].mean() + 3.0
    assert -31.5 < np.median(hv[water]) < -26.0


def _backscatter_of_split_scene(season: str, wind_speed: float) -> tuple[np.ndarray, ...]:
    """HH, HV dB [64, 300] of a scene whose top half is water and bottom half first-year ice."""
    shape = (64, 300)
    surface = np.full(shape, sy.FYI, np.int8)
    surface[:32] = sy.WATER
    zeros = np.zeros(shape, np.float32)
    truth = sy.Surface(surface, zeros, zeros + (0.2 if season == "summer" else 0.0), zeros + 50.0,
                       np.zeros(shape, bool))
    rng = np.random.default_rng(0)
    theta = sy._incidence_angle(rng, shape)
    hh, hv = sy._sar_backscatter(rng, truth, theta, np.full(shape, wind_speed, np.float32), season, "rtt")
    return hh, hv, theta


def test_hh_water_darker_than_ice_at_far_range_brighter_with_wind_at_near_range():
    hh, hv, theta = _backscatter_of_split_scene("winter", 5.0)
    far, near = theta[0] > 38, theta[0] < 24
    assert hh[32:, far].mean() > hh[:32, far].mean() + 3.0
    assert hv[32:].mean() > hv[:32].mean() + 3.0
    # incidence dependence: water falls steeply, ice gently
    water_drop = hh[:32, near].mean() - hh[:32, far].mean()
    ice_drop = hh[32:, near].mean() - hh[32:, far].mean()
    assert water_drop > ice_drop + 3.0 and ice_drop > 0
    # a strong wind makes near-range water brighter than ice in HH, not in HV
    hh_wind, hv_wind, _ = _backscatter_of_split_scene("winter", 15.0)
    assert hh_wind[:32, near].mean() > hh_wind[32:, near].mean()
    assert hv_wind[32:].mean() > hv_wind[:32].mean() + 3.0
    # summer (wet snow, ponds) lowers the ice / water contrast
    hh_s, hv_s, _ = _backscatter_of_split_scene("summer", 5.0)
    assert hv_s[32:].mean() - hv_s[:32].mean() < hv[32:].mean() - hv[:32].mean() - 1.0
    assert hh_s[32:, far].mean() - hh_s[:32, far].mean() < hh[32:, far].mean() - hh[:32, far].mean()


def test_raw_format_and_physical_ranges(raw_scene):
    path, ds = raw_scene
    _check_common_format(ds, "raw")
    m = RAW_NAME.match(os.path.basename(path))
    assert m, path
    assert ds.attrs["scene_id"] == os.path.basename(path)[:-3]
    for name in ch.CHART_NAMES:
        assert name not in ds
    assert ds["polygon_icechart"].dims == ch.SAR_DIMS
    assert np.issubdtype(ds["polygon_icechart"].dtype, np.integer)
    lines = [str(x) for x in ds["polygon_codes"].values]
    assert lines[0] == ch.POLYGON_CODES_HEADER
    table = sigrid.parse_polygon_codes(lines, path)
    assert set(np.unique(ds["polygon_icechart"].values)) == set(table)
    hh, hv = ds["nersc_sar_primary"].values, ds["nersc_sar_secondary"].values
    nan = np.isnan(hh)
    assert 0 < nan.mean() < 0.1 and np.array_equal(nan, np.isnan(hv))
    assert np.isnan(ds["nersc_sar_primary"].attrs["variable_fill_value"])
    assert -45 < np.nanmin(hh) and np.nanmax(hh) < 15 and -40 < np.nanmin(hv) and np.nanmax(hv) < 0
    theta = ds["sar_incidenceangle"].values
    assert 18 < theta.min() < 20 and 46 < theta.max() < 48
    assert np.all(np.diff(theta[0]) > 0)  # near range at sample 0
    dist = ds["distance_map"].values
    assert dist.min() >= 0 and dist.max() <= 41 and np.array_equal(dist, np.round(dist))
    for freq in ("6_9", "10_7", "18_7", "36_5", "89_0"):
        h, v = ds[f"btemp_{freq}h"].values, ds[f"btemp_{freq}v"].values
        assert 60 < h.min() and v.max() < 290 and h.mean() < v.mean(), freq
    assert 260 < ds["t2m"].values.mean() < 280  # summer
    assert ds["tcwv"].values.min() >= 0 and ds["tclw"].values.min() >= 0


def _truth_vs_ct(ids: np.ndarray, truth: np.ndarray, table: dict[int, dict]) -> list[float]:
    errors = []
    for poly_id, row in table.items():
        if row["POLY_TYPE"] not in ("I", "W"):
            continue
        t = truth[(ids == poly_id) & (truth != 255)]
        if t.size < 200:
            continue
        errors.append(abs(float(t.mean()) - sigrid.polygon_concentration(row)))
    return errors


@pytest.mark.parametrize("season", ["winter", "summer"])
def test_raw_truth_within_one_step_of_chart_ct(season):
    for seed in (1, 2):
        ds = sy.synthesize_scene("raw", season, SIZE, seed, service="dmi")
        table = sigrid.parse_polygon_codes([str(x) for x in ds["polygon_codes"].values], "synthetic")
        errors = _truth_vs_ct(ds["polygon_icechart"].values, ds["ice_truth"].values, table)
        assert errors and max(errors) <= 0.05 + 1e-9, errors  # rounding to tenths; < one step


def test_rtt_truth_matches_sic_class(rtt_scene):
    _, ds = rtt_scene
    sic, truth = ds["SIC"].values, ds["ice_truth"].values
    classes = [k for k in np.unique(sic) if k != 255]
    assert classes
    for k in classes:
        assert abs(truth[sic == k].mean() - k / 10) <= 0.1, k


def test_analyst_error_changes_only_the_codes():
    exact = sy.synthesize_scene("raw", "winter", SIZE, 7)
    noisy = sy.synthesize_scene("raw", "winter", SIZE, 7, analyst_error=0.3)
    for name in ("ice_truth", "nersc_sar_primary", "polygon_icechart", "btemp_36_5h"):
        np.testing.assert_array_equal(exact[name].values, noisy[name].values)
    table = sigrid.parse_polygon_codes([str(x) for x in noisy["polygon_codes"].values], "noisy")
    errors = _truth_vs_ct(noisy["polygon_icechart"].values, noisy["ice_truth"].values, table)
    assert max(errors) > 0.1


def test_land_has_distance_zero_and_masked_charts():
    for seed in range(20):
        ds = sy.synthesize_scene("rtt", "winter", SIZE, seed, service="dmi")
        land = ds["ice_truth"].values == 255
        if land.any():
            break
    assert land.any(), "no seed with land"
    dist = ds["distance_map"].values * ch.NORM_STATS["distance_map"][1] + ch.NORM_STATS["distance_map"][0]
    np.testing.assert_allclose(dist[land], 0.0, atol=1e-4)
    assert dist[~land].min() > 0.5
    for name in ch.CHART_NAMES:
        assert np.all(ds[name].values[land] == 255)
    raw = sy.synthesize_scene("raw", "winter", SIZE, seed, service="dmi")
    table = sigrid.parse_polygon_codes([str(x) for x in raw["polygon_codes"].values], "raw")
    raw_land = raw["ice_truth"].values == 255
    land_ids = set(np.unique(raw["polygon_icechart"].values[raw_land]))
    assert land_ids and all(table[i]["POLY_TYPE"] == "L" for i in land_ids)
    assert np.all(raw["distance_map"].values[raw_land] == 0)


def test_deterministic_for_the_seed():
    a = sy.synthesize_scene("rtt", "summer", (64, 80), 11, service="mixed")
    b = sy.synthesize_scene("rtt", "summer", (64, 80), 11, service="mixed")
    c = sy.synthesize_scene("rtt", "summer", (64, 80), 12, service="mixed")
    assert a.attrs == b.attrs
    for name in a.data_vars:
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)
    assert not np.array_equal(a["nersc_sar_primary"].values, c["nersc_sar_primary"].values)


def test_amsr2_cell_tracks_ice_fraction_of_its_own_block():
    ds = sy.synthesize_scene("rtt", "winter", (250, 300), 5, amsr2_footprint=False)
    truth = ds["ice_truth"].values
    assert not (truth == 255).any()
    fraction = sy.block_mean((truth == 1).astype(np.float32), 25)  # [10, 12]
    # hand check of block_mean on a partial last block
    np.testing.assert_allclose(sy.block_mean(np.arange(6, dtype=np.float32)[None], 4), [[1.5, 4.5]])
    assert fraction.shape == (10, 12) and 0.2 < fraction.mean() < 0.98
    for name in ("btemp_18_7h", "btemp_36_5h", "btemp_89_0h"):
        tb = ds[name].values
        own = np.corrcoef(tb.ravel(), fraction.ravel())[0, 1]
        shifted = np.corrcoef(tb[:, 1:].ravel(), fraction[:, :-1].ravel())[0, 1]
        assert own > 0.95 and own > shifted + 0.02, (name, own, shifted)
    # with footprints (default) the sharp 89 GHz channel still follows its own cell best
    blurred = sy.synthesize_scene("rtt", "winter", (250, 300), 5)["btemp_89_0h"].values
    own = np.corrcoef(blurred.ravel(), fraction.ravel())[0, 1]
    shifted = np.corrcoef(blurred[:, 1:].ravel(), fraction[:, :-1].ravel())[0, 1]
    assert own > 0.8 and own > shifted


def test_scene_file_names():
    t = dt.datetime(2019, 4, 30, 10, 18, 30)
    assert sy.scene_file_name("rtt", t, "cis") == "20190430T101830_cis_prep.nc"
    raw = sy.scene_file_name("raw", t, "cis")
    m = RAW_NAME.match(raw)
    assert m and m.group(1) == "20190430T101830" and m.group(2) == "20190430T101934"
    if raw.startswith("S1A"):
        assert "_027020_" in raw  # the absolute orbit of the real example
    assert "_icechart_cis_SGRDI" in raw and "20190430T1800Z" in raw
    assert RAW_NAME.match(sy.scene_file_name("raw", t, "dmi"))
    assert sy.scene_file_name("raw", t, "dmi") == sy.scene_file_name("raw", t, "dmi")


def test_distinct_times_even_when_drawn_equal(tmp_path, monkeypatch):
    fixed = dt.datetime(2020, 1, 5, 12, 0, 0)
    monkeypatch.setattr(sy, "default_start_time", lambda seed, season: fixed)
    paths = sy.write_synthetic_scenes(str(tmp_path), 3, "rtt", "winter", (32, 40), 0, service="cis")
    names = sorted(os.path.basename(p) for p in paths)
    assert len(set(names)) == 3 and sorted(os.listdir(tmp_path)) == names


def test_cli_writes_n_files(tmp_path):
    out = tmp_path / "scenes"
    result = subprocess.run(
        [sys.executable, os.path.join(REPO, "data_prep", "synthesize.py"), "--out", str(out),
         "--scenes", "2", "--product", "raw", "--season", "winter", "--size", "60", "70",
         "--seed", "4", "--service", "mixed", "--analyst-error", "0.05"],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    printed = result.stdout.split()
    assert len(printed) == 2 and all(os.path.exists(p) for p in printed)
    assert sorted(os.listdir(out)) == sorted(os.path.basename(p) for p in printed)
    assert all(RAW_NAME.match(os.path.basename(p)) for p in printed)
    bad = subprocess.run(
        [sys.executable, os.path.join(REPO, "data_prep", "synthesize.py"), "--out", str(out),
         "--scenes", "1", "--product", "rtt", "--season", "winter", "--size", "4", "4"],
        capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "size" in bad.stderr
