"""Synthetic AI4Arctic scenes: format against the doc, physics sanity, truth vs chart, determinism."""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import xarray as xr

from seaice_jax import synthetic as sy
from seaice_jax.data import channels as ch
from seaice_jax.data import sigrid

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


# The real layouts, field by field (shared docs ai4arctic-format.md): variable -> (dims, dtype).
SAR, GRID, TIE_RAW = ("sar_lines", "sar_samples"), ("2km_grid_lines", "2km_grid_samples"), ("sar_grid_points",)
RTT_TIE = ("sar_sample_2dgrid_points", "sar_line_2dgrid_points")
REAL_RTT = {
    **{v: (SAR, np.float32) for v in ("nersc_sar_primary", "nersc_sar_secondary", "sar_incidenceangle",
                                       "distance_map")},
    **{v: (SAR, np.uint8) for v in ("SIC", "SOD", "FLOE")},
    "sar_grid2d_latitude": (RTT_TIE, np.float64), "sar_grid2d_longitude": (RTT_TIE, np.float64),
    **{v: (GRID, np.float32) for v in ch.AMSR2_CHANNELS + ch.ERA5_CHANNELS},
}
REAL_RAW = {
    **{v: (SAR, np.float32) for v in ("nersc_sar_primary", "nersc_sar_secondary", "distance_map",
                                       "polygon_icechart")},
    **{v: (TIE_RAW, np.float64) for v in ("sar_grid_line", "sar_grid_sample", "sar_grid_latitude",
                                           "sar_grid_longitude", "sar_grid_height", "sar_grid_incidenceangle")},
    **{v: (GRID, np.float64) for v in ch.AMSR2_CHANNELS + ch.ERA5_CHANNELS},
    "amsr2_swath_map": (GRID, np.uint8), "swath_segmentation": (GRID, np.uint8),
}
SYNTHETIC_EXTRAS = {"ice_truth"}


def _check_real_layout(ds: xr.Dataset, product: str) -> None:
    """Exactly the variables, dims and dtypes of the real product (plus the synthetic truth)."""
    spec = REAL_RTT if product == "rtt" else REAL_RAW
    names = set(ds.data_vars) - SYNTHETIC_EXTRAS
    assert names == set(spec), (names ^ set(spec))
    for name, (dims, dtype) in spec.items():
        assert ds[name].dims == dims and ds[name].dtype == dtype, (name, ds[name].dims, ds[name].dtype)
    factor = ch.PIXELS_PER_2KM[product]
    assert (ds.sizes["sar_lines"], ds.sizes["sar_samples"]) == SIZE
    assert ds.sizes["2km_grid_lines"] == SIZE[0] // factor  # floor, not ceil
    assert ds.sizes["2km_grid_samples"] == SIZE[1] // factor
    for name in ch.AMSR2_CHANNELS:
        assert ds[name].attrs["units"] == "K"
    assert ds["ice_truth"].dtype == np.uint8 and ds["ice_truth"].dims == SAR
    assert set(np.unique(ds["ice_truth"].values)) <= {0, 1, 255}
    if product == "rtt":
        assert ds.sizes["sar_sample_2dgrid_points"] == 21 and ds.sizes["sar_line_2dgrid_points"] == 21
        lat, lon = ds["sar_grid2d_latitude"].values, ds["sar_grid2d_longitude"].values
        assert {"kg/m2", "m/s", "K"} >= {ds[n].attrs["units"] for n in ch.ERA5_CHANNELS}
    else:
        assert ds.sizes["sar_grid_points"] == 441
        lat, lon = ds["sar_grid_latitude"].values, ds["sar_grid_longitude"].values
        assert "polygon_codes" in ds.coords and ds["polygon_codes"].dims == ("polygon_codes",)
        for key in ("title", "geometric_info", "sar_denoise_by_nersc_documentation"):
            assert key in ds.attrs
    assert 45 < lat.min() and lat.max() < 85 and -180 <= lon.min() and lon.max() <= 180


def test_rtt_format(rtt_scene):
    path, ds = rtt_scene
    _check_real_layout(ds, "rtt")
    assert RTT_NAME.match(os.path.basename(path)), path
    assert ds.attrs["scene_id"] == os.path.basename(path)  # with the .nc, as real files
    assert ds.attrs["ice_service"] in ("cis", "dmi") and ds.attrs["flip"] == 0
    assert ds.attrs["pixel_spacing"] == 80 and not isinstance(ds.attrs["pixel_spacing"], str)
    assert RAW_NAME.match(ds.attrs["original_id"] + ".nc")
    for name in ("nersc_sar_primary", "nersc_sar_secondary", "sar_incidenceangle"):
        assert ds[name].attrs["variable_fill_value"] == 0
    polygon = {"SIC": "Sea Ice Concentration [%]", "SOD": "Stage of Development", "FLOE": "Floe Size"}
    for name in ch.CHART_NAMES:
        assert ds[name].attrs["chart_fill_value"] == 255 and ds[name].attrs["polygon"] == polygon[name]
    for name, n in ch.NUM_CLASSES.items():
        values = ds[name].values
        assert set(np.unique(values)) <= set(range(n)) | {255}, name
    assert "polygon_icechart" not in ds and "polygon_codes" not in ds
    # every input is standard-scaled: unscaled values lie in physical ranges
    unscaled = lambda n: ds[n].values * ch.NORM_STATS[n][1] + ch.NORM_STATS[n][0]  # noqa: E731
    hh = ds["nersc_sar_primary"].values
    no_data = hh == 0
    theta = unscaled("sar_incidenceangle")[~no_data]
    assert 18 < theta.min() < 20 and 46 < theta.max() < 48
    assert np.all(ds["sar_incidenceangle"].values[no_data] == 0)  # NaN masks aligned, then 0
    np.testing.assert_allclose(unscaled("distance_map"), np.round(unscaled("distance_map")), atol=1e-3)
    assert 200 < unscaled("btemp_36_5v").mean() < 270
    assert 230 < unscaled("t2m").mean() < 280
    # SAR no-data is exactly 0 and thin; charts are masked there
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
    theta = sy.incidence_angle(rng, shape)
    hh, hv = sy.sar_backscatter(rng, truth, theta, np.full(shape, wind_speed, np.float32), season, "rtt")
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
    _check_real_layout(ds, "raw")
    assert RAW_NAME.match(os.path.basename(path)), path
    for name in ch.CHART_NAMES + ("sar_incidenceangle",):  # no full-resolution incidence angle
        assert name not in ds
    lines = [str(x) for x in ds["polygon_codes"].values]
    assert lines[0] == "poly_id;CT;CA;SA;FA;CB;SB;FB;CC;SC;FC;CN;CD;CF;POLY_TYPE"
    for line in lines[1:]:
        fields = line.split(";")
        assert fields[-1] in ("I", "W") and len(fields) == 15
        assert all(f == "-9" or re.fullmatch(r"\d\d", f) for f in fields[1:13]), line  # zero-padded
        assert re.fullmatch(r"-9|\d\d-9", fields[13]), line  # CF compound
    table = sigrid.parse_polygon_codes(lines, path)
    raster = ds["polygon_icechart"].values
    assert set(np.unique(raster[np.isfinite(raster)]).astype(int)) == set(table)
    land = ds["ice_truth"].values == 255
    assert np.array_equal(np.isnan(raster), land)  # off-chart = land
    hh, hv = ds["nersc_sar_primary"].values, ds["nersc_sar_secondary"].values
    nan = np.isnan(hh)
    assert 0 < nan.mean() < 0.1 and np.array_equal(nan, np.isnan(hv))
    assert -45 < np.nanmin(hh) and np.nanmax(hh) < 15 and -40 < np.nanmin(hv) and np.nanmax(hv) < 0
    theta = ds["sar_grid_incidenceangle"].values.reshape(21, 21)
    assert 18 < theta.min() < 20 and 46 < theta.max() < 48
    assert np.all(np.diff(theta[0]) > 0)  # near range at sample 0
    line, sample = ds["sar_grid_line"].values, ds["sar_grid_sample"].values
    assert line.min() == 0 and line.max() == SIZE[0] - 1 and sample.max() == SIZE[1] - 1
    dist = ds["distance_map"].values
    assert dist.min() >= 0 and dist.max() <= 41 and np.array_equal(dist, np.round(dist))
    for freq in ("6_9", "10_7", "18_7", "36_5", "89_0"):
        h, v = ds[f"btemp_{freq}h"].values, ds[f"btemp_{freq}v"].values
        assert 60 < h.min() and v.max() < 290 and h.mean() < v.mean(), freq
    assert 260 < ds["t2m"].values.mean() < 280  # summer
    assert ds["tcwv"].values.min() >= 0 and ds["tclw"].values.min() >= 0


def test_test_split_pair(tmp_path):
    [path] = sy.write_synthetic_scenes(str(tmp_path), 1, "rtt", "winter", (60, 70), 2, split="test")
    assert path.endswith("_prep.nc")
    reference = path[:-3] + "_reference.nc"
    assert sorted(os.listdir(tmp_path)) == sorted([os.path.basename(path), os.path.basename(reference)])
    with xr.open_dataset(path) as prep, xr.open_dataset(reference) as ref:
        assert not set(ch.CHART_NAMES) & set(prep.data_vars)
        assert set(ref.data_vars) == set(ch.CHART_NAMES)
        for name in ch.CHART_NAMES:
            assert ref[name].dtype == np.uint8 and ref[name].dims == SAR
    with pytest.raises(ValueError, match="ready-to-train"):
        sy.write_synthetic_scenes(str(tmp_path), 1, "raw", "winter", (60, 70), 2, split="test")


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
    assert raw_land.any() and np.isnan(raw["polygon_icechart"].values[raw_land]).all()  # off-chart
    assert {row["POLY_TYPE"] for row in table.values()} <= {"I", "W"}
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
    # hand check of block_mean: whole blocks only, the partial last block has no cell (floor)
    np.testing.assert_allclose(sy.block_mean(np.arange(14, dtype=np.float32).reshape(2, 7), 2),
                               [[4.0, 6.0, 8.0]])
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
    monkeypatch.setattr(sy.layout, "default_start_time", lambda seed, season: fixed)
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
