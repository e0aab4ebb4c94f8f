"""The reader on tiny files written by hand in the REAL AI4Arctic layouts (shared docs
ai4arctic-format.md): raw, ready-to-train train split, ready-to-train test split with its reference
file; then convert.py on a folder of all three."""

import datetime as dt
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import xarray as xr

from seaice_jax.data import scene as scene_lib
from seaice_jax.data.channels import (
    ALL_CHANNELS,
    AMSR2_CHANNELS,
    DERIVED_CHANNELS,
    ERA5_CHANNELS,
    NORM_STATS,
    STORED_CHANNELS,
)
from seaice_jax.data.scene_types import SceneError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAR = ("sar_lines", "sar_samples")
GRID = ("2km_grid_lines", "2km_grid_samples")
RAW_NAME = ("S1A_EW_GRDM_1SDH_20180124T194759_20180124T194859_020301_022AA4_1F75_icechart_dmi_"
            "201801241950_SouthEast_RIC.nc")
RTT_NAME = "20180607T184326_dmi_prep.nc"
TEST_NAME = "20190305T101010_cis_prep.nc"


def lat_of(line, sample):
    return 62.0 + 0.004 * line + 0.001 * sample  # linear: bilinear tie interpolation is exact


def lon_of(line, sample):
    return -40.0 + 0.002 * line - 0.006 * sample


def theta_of(sample, width):
    return 18.5 + 28.0 * sample / (width - 1)


def scaled(var, x):
    mean, std = NORM_STATS[var]
    return ((np.asarray(x, np.float64) - mean) / std).astype(np.float32)


# --------------------------------------------------------------------------------------------
# Raw: one polygon per band of 5 lines; every CT code class of the SIGRID table.

CODE_ROWS = [  # poly_id;CT;CA;SA;FA;CB;SB;FB;CC;SC;FC;CN;CD;CF;POLY_TYPE  (sic, sod, floe, conc)
    ("76;02;-9;98;10;-9;-9;-9;-9;-9;-9;-9;-9;10-9;W", (0, 0, 0, 0.0)),   # the doc's water row
    ("3;00;-9;-9;-9;-9;-9;-9;-9;-9;-9;-9;-9;-9;I", (0, 0, 0, 0.0)),      # ice free
    ("4;01;-9;-9;-9;-9;-9;-9;-9;-9;-9;-9;-9;-9;I", (0, 0, 0, 0.0)),      # open water
    ("5;55;-9;-9;-9;-9;-9;-9;-9;-9;-9;-9;-9;-9;I", (0, 0, 0, 0.0)),      # 55 = water in some charts
    ("6;10;-9;81;02;-9;-9;-9;-9;-9;-9;-9;-9;02-9;I", (1, 1, 1, 0.1)),
    ("7;40;-9;83;03;-9;-9;-9;-9;-9;-9;-9;-9;03-9;I", (4, 2, 2, 0.4)),
    ("8;90;-9;87;04;-9;-9;-9;-9;-9;-9;-9;-9;04-9;I", (9, 3, 3, 0.9)),
    ("9;91;-9;86;05;-9;-9;-9;-9;-9;-9;-9;-9;05-9;I", (10, 4, 4, 0.95)),  # 9+/10
    ("10;92;-9;95;08;-9;-9;-9;-9;-9;-9;-9;-9;08-9;I", (10, 5, 255, 1.0)),  # 10/10 fast ice
    ("11;57;-9;87;06;-9;-9;-9;-9;-9;-9;-9;-9;06-9;I", (6, 3, 5, 0.6)),   # range 5..7 tenths
    ("12;89;-9;87;09;-9;-9;-9;-9;-9;-9;-9;-9;09-9;I", (9, 3, 6, 0.85)),  # mid 0.85 rounds up
    ("13;12;-9;81;02;-9;-9;-9;-9;-9;-9;-9;-9;02-9;I", (2, 1, 1, 0.15)),  # range 1..2 tenths
    ("14;81;-9;97;07;-9;-9;-9;-9;-9;-9;-9;-9;07-9;I", (9, 5, 5, 0.9)),   # X1: 8/10 to 10/10
    ("15;21;-9;85;03;-9;-9;-9;-9;-9;-9;-9;-9;03-9;I", (6, 2, 2, 0.6)),   # X1: 2/10 to 10/10
    ("16;90;50;87;04;40;88;05;-9;-9;-9;-9;-9;04-9;I", (9, 3, 255, 0.9)),  # partials: FLOE < 65 %
    ("17;99;-9;87;04;-9;-9;-9;-9;-9;-9;-9;-9;04-9;I", (255, 255, 255, None)),  # unknown CT
    ("18;-9;-9;-9;-9;-9;-9;-9;-9;-9;-9;-9;-9;-9;I", (255, 255, 255, None)),  # not filled
    ("19;77;-9;87;04;-9;-9;-9;-9;-9;-9;-9;-9;04-9;I", (255, 255, 255, None)),  # not a SIGRID code
    ("20;70;-9;42;04;-9;-9;-9;-9;-9;-9;-9;-9;04-9;I", (7, 255, 3, 0.7)),  # SA 42 not a stage
]
RAW_H, RAW_W = 5 * (len(CODE_ROWS) + 1), 120  # the last band is land (off-chart, NaN)


def tie_grid(height, width, n=21):
    lines = np.round(np.linspace(0, height - 1, n))
    samples = np.round(np.linspace(0, width - 1, n))
    return np.meshgrid(lines, samples, indexing="ij")


def write_raw(path):
    h, w = RAW_H, RAW_W
    rng = np.random.default_rng(0)
    hh = rng.normal(-15, 3, (h, w)).astype(np.float32)
    hh[2, 3] = np.nan  # SAR no-data
    hv = rng.normal(-25, 2, (h, w)).astype(np.float32)
    hv[2, 3] = np.nan
    distance = np.full((h, w), 7.0, np.float32)
    distance[-5:] = 0.0
    polygons = np.full((h, w), np.nan, np.float32)
    for k, (row, _) in enumerate(CODE_ROWS):
        polygons[5 * k: 5 * k + 5] = float(row.split(";")[0])
    gh, gw = h // 50, w // 50
    lines, samples = tie_grid(h, w)
    data = {
        "nersc_sar_primary": (SAR, hh), "nersc_sar_secondary": (SAR, hv),
        "distance_map": (SAR, distance), "polygon_icechart": (SAR, polygons),
        "sar_grid_line": (("sar_grid_points",), lines.ravel()),
        "sar_grid_sample": (("sar_grid_points",), samples.ravel()),
        "sar_grid_latitude": (("sar_grid_points",), lat_of(lines, samples).ravel()),
        "sar_grid_longitude": (("sar_grid_points",), lon_of(lines, samples).ravel()),
        "sar_grid_height": (("sar_grid_points",), np.zeros(lines.size)),
        "sar_grid_incidenceangle": (("sar_grid_points",), theta_of(samples, w).ravel()),
        "amsr2_swath_map": (GRID, np.ones((gh, gw), np.uint8)),
        "swath_segmentation": (GRID, np.ones((gh, gw), np.uint8)),
    }
    for k, var in enumerate(AMSR2_CHANNELS + ERA5_CHANNELS):
        mean, std = NORM_STATS[var]
        data[var] = (GRID, (mean + std * (0.1 * k + np.arange(gh * gw).reshape(gh, gw))).astype(np.float64))
    header = "poly_id;CT;CA;SA;FA;CB;SB;FB;CC;SC;FC;CN;CD;CF;POLY_TYPE"
    codes = np.array([header] + [row for row, _ in CODE_ROWS], dtype=object)
    ds = xr.Dataset(data, coords={"polygon_codes": ("polygon_codes", codes)},
                    attrs={"title": "hand-made raw scene", "geometric_info": "x",
                           "sar_denoise_by_nersc_documentation": "x"})
    ds.to_netcdf(path, engine="netcdf4")
    return ds


def test_raw_layout(tmp_path):
    path = tmp_path / RAW_NAME
    ds = write_raw(path)
    with xr.open_dataset(path) as check:  # what the file really holds
        assert "sar_incidenceangle" not in check and check["polygon_icechart"].dtype == np.float32
        assert check["polygon_codes"].dims == ("polygon_codes",) and "polygon_codes" in check.coords
    scene = scene_lib.open_scene(str(path), channels=list(ALL_CHANNELS) + list(DERIVED_CHANNELS))
    assert scene.product == "raw" and scene.shape == (RAW_H, RAW_W) and scene.name == RAW_NAME[:-3]
    assert scene.start_time == np.datetime64("2018-01-24T19:47:59")
    for k, (row, (sic, sod, floe, _)) in enumerate(CODE_ROWS):
        r = 5 * k + 2
        assert (scene.sic[r, 10], scene.sod[r, 10], scene.floe[r, 10]) == (sic, sod, floe), row
    land = np.zeros(scene.shape, bool)
    land[-5:] = True
    expected_valid = ~land
    expected_valid[2, 3] = False
    np.testing.assert_array_equal(scene.valid, expected_valid)
    assert scene.sic[2, 3] == 255 and scene.region_ids[2, 3] == -1 and (scene.region_ids[-5:] == -1).all()
    # Regions: one per polygon with a concentration, in polygon-id order; others -1.
    with_conc = sorted((int(row.split(";")[0]), c[3]) for row, c in CODE_ROWS if c[3] is not None)
    np.testing.assert_allclose(scene.region_conc, [c for _, c in with_conc], atol=1e-6)
    for k, (row, c) in enumerate(CODE_ROWS):
        ids = scene.region_ids[5 * k + 3: 5 * k + 5]
        if c[3] is None:
            assert (ids == -1).all(), row
        else:
            assert (ids == [i for i, _ in with_conc].index(int(row.split(";")[0]))).all(), row
    # Incidence angle from the tie points (raw files have no full-resolution one).
    cols = np.arange(RAW_W)
    want = scaled("sar_incidenceangle", theta_of(cols, RAW_W))
    np.testing.assert_allclose(scene.channels["sar_incidenceangle"][10], want, atol=1e-5)
    assert scene.channels["sar_incidenceangle"][2, 3] == 0.0
    # HH scaled with the published statistics, NaN -> 0; 2 km grid float64 in the file.
    np.testing.assert_allclose(scene.channels["nersc_sar_primary"][5],
                               scaled("nersc_sar_primary", ds["nersc_sar_primary"][5]), atol=1e-5)
    assert scene.channels["nersc_sar_primary"][2, 3] == 0.0
    # Geolocation per pixel from the tie points, placed by sar_grid_line / sar_grid_sample.
    lat, lon = scene.latlon()
    rows, cols = np.meshgrid(np.arange(RAW_H), np.arange(RAW_W), indexing="ij")
    np.testing.assert_allclose(lat, lat_of(rows, cols), atol=1e-9)
    np.testing.assert_allclose(lon, lon_of(rows, cols), atol=1e-9)
    np.testing.assert_allclose(scene.channels["latitude"], (lat_of(rows, cols) - 70.0) / 8.0, atol=1e-5)
    np.testing.assert_allclose(scene.channels["longitude_sin"], np.sin(np.deg2rad(lon_of(rows, cols))), atol=1e-6)
    np.testing.assert_allclose(scene.channels["month_cos"], 1.0, atol=1e-6)  # January
    doy_angle = 2 * math.pi * 23 / 365.25  # 24 January
    np.testing.assert_allclose(scene.channels["doy_sin"], math.sin(doy_angle), atol=1e-6)
    # What the chart held that the rules could not use.
    report = scene.chart_report
    assert report["codes"] == {"CT=77": 1, "SA=42": 1}
    assert report["polygons"] == [19, 20] and report["unused_polygons"] == [19]
    assert report["pixels"] == 5 * RAW_W * 2


# --------------------------------------------------------------------------------------------
# Ready-to-train: train split (charts in the file) and test split (charts in the reference file).

RTT_H, RTT_W = 60, 80


def write_rtt(path, charts=True, reference=False):
    h, w = RTT_H, RTT_W
    rng = np.random.default_rng(1)
    gh, gw = h // 25, w // 25
    data = {}
    for var in ("nersc_sar_primary", "nersc_sar_secondary"):
        data[var] = (SAR, rng.normal(0, 1, (h, w)).astype(np.float32), {"variable_fill_value": 0.0})
    cols = np.arange(w)
    theta = np.broadcast_to(scaled("sar_incidenceangle", theta_of(cols, w)), (h, w)).copy()
    data["sar_incidenceangle"] = (SAR, theta, {"variable_fill_value": 0.0})
    data["distance_map"] = (SAR, np.full((h, w), scaled("distance_map", 10.0), np.float32))
    data["nersc_sar_primary"][1][0, 0] = 0.0  # no data
    for var in AMSR2_CHANNELS + ERA5_CHANNELS:
        data[var] = (GRID, rng.normal(0, 1, (gh, gw)).astype(np.float32), {"units": "K"})
    # Tie points: (samples, lines), samples first.
    lines = np.linspace(0, h - 1, 21)
    samples = np.linspace(0, w - 1, 21)
    s_grid, l_grid = np.meshgrid(samples, lines, indexing="ij")  # [samples, lines]
    data["sar_grid2d_latitude"] = (("sar_sample_2dgrid_points", "sar_line_2dgrid_points"), lat_of(l_grid, s_grid))
    data["sar_grid2d_longitude"] = (("sar_sample_2dgrid_points", "sar_line_2dgrid_points"), lon_of(l_grid, s_grid))
    sic = np.where(cols < 40, 10, 3).astype(np.uint8)[None].repeat(h, 0)
    sic[:, 70:] = 255
    sod = np.where(cols < 40, 4, 1).astype(np.uint8)[None].repeat(h, 0)
    floe = np.where(cols < 40, 5, 2).astype(np.uint8)[None].repeat(h, 0)
    chart_vars = {}
    attrs = {"SIC": "Sea Ice Concentration [%]", "SOD": "Stage of Development", "FLOE": "Floe Size"}
    for name, values in (("SIC", sic), ("SOD", sod), ("FLOE", floe)):
        chart_vars[name] = (SAR, values, {"polygon": attrs[name], "chart_fill_value": 255})
    if charts:
        data.update(chart_vars)
    name = os.path.basename(path)
    xr.Dataset(data, attrs={"scene_id": name, "original_id": RAW_NAME[:-3], "ice_service": name[16:19],
                            "pixel_spacing": 80, "flip": 0}).to_netcdf(path, engine="netcdf4")
    if reference:
        ref = str(path)[:-3] + "_reference.nc"
        xr.Dataset(chart_vars).to_netcdf(ref, engine="netcdf4")
    return sic, sod, floe


def _check_rtt(scene, sic, sod, floe):
    assert scene.product == "rtt" and scene.shape == (RTT_H, RTT_W)
    want_sic = sic.copy()
    want_sic[0, 0] = 255
    np.testing.assert_array_equal(scene.sic, want_sic)
    assert scene.sod[5, 5] == 4 and scene.floe[5, 50] == 2
    # Regions: the two labelled bands; SIC 255 and no-data pixels in none.
    left, right = scene.region_ids[5, 5], scene.region_ids[5, 50]
    assert left != right and (scene.region_ids[:, 70:] == -1).all() and scene.region_ids[0, 0] == -1
    np.testing.assert_allclose(scene.region_conc[[left, right]], [1.0, 0.3])
    np.testing.assert_allclose(scene.channels["sar_incidenceangle"][3],
                               scaled("sar_incidenceangle", theta_of(np.arange(RTT_W), RTT_W)), atol=1e-6)
    lat, lon = scene.latlon()
    rows, cols = np.meshgrid(np.arange(RTT_H), np.arange(RTT_W), indexing="ij")
    np.testing.assert_allclose(lat, lat_of(rows, cols), atol=1e-9)  # samples-first tie points
    np.testing.assert_allclose(lon, lon_of(rows, cols), atol=1e-9)


def test_rtt_train_layout(tmp_path):
    path = tmp_path / RTT_NAME
    charts = write_rtt(path)
    scene = scene_lib.open_scene(str(path), channels=["all", "derived"])
    _check_rtt(scene, *charts)
    assert scene.name == RTT_NAME[:-3] and scene.start_time == np.datetime64("2018-06-07T18:43:26")
    when = dt.date(2018, 6, 7)
    np.testing.assert_allclose(scene.channels["month_sin"], math.sin(2 * math.pi * 5 / 12), atol=1e-6)
    np.testing.assert_allclose(scene.channels["doy_cos"],
                               math.cos(2 * math.pi * (when.timetuple().tm_yday - 1) / 365.25), atol=1e-6)


def test_rtt_test_split_pairs_the_reference(tmp_path):
    path = tmp_path / TEST_NAME
    charts = write_rtt(path, charts=False, reference=True)
    ref = tmp_path / (TEST_NAME[:-3] + "_reference.nc")
    assert ref.exists()
    # The reference is never itself listed as a scene; the pair is read as one scene.
    assert scene_lib.list_scene_files([str(tmp_path)]) == [str(path)]
    scene = scene_lib.open_scene(str(path))
    _check_rtt(scene, *charts)
    assert scene.name == TEST_NAME[:-3]
    with pytest.raises(SceneError, match="reference chart file"):
        scene_lib.open_scene(str(ref))
    with pytest.raises(SceneError, match="reference chart file"):
        scene_lib.list_scene_files([str(ref)])
    # Alone (for inference) the _prep.nc reads without charts; requiring charts names the missing file.
    os.remove(ref)
    alone = scene_lib.open_scene(str(path), require_charts=False)
    assert alone.product == "rtt" and (alone.sic == 255).all() and alone.region_conc.size == 0
    with pytest.raises(SceneError) as err:
        scene_lib.open_scene(str(path))
    assert str(err.value).startswith(TEST_NAME + ": no ice chart") and "_prep_reference.nc" in str(err.value)


def test_reference_of_the_wrong_shape_is_named(tmp_path):
    path = tmp_path / TEST_NAME
    write_rtt(path, charts=False)
    xr.Dataset({c: (SAR, np.zeros((4, 4), np.uint8)) for c in ("SIC", "SOD", "FLOE")}).to_netcdf(
        str(path)[:-3] + "_reference.nc")
    with pytest.raises(SceneError, match=r"_prep_reference.nc: variable 'SIC' has shape \(4, 4\)"):
        scene_lib.open_scene(str(path))


# --------------------------------------------------------------------------------------------
# convert.py, unchanged, on a folder in the real layouts.


def test_convert_cli_on_real_layouts(tmp_path):
    folder = tmp_path / "scenes"
    folder.mkdir()
    write_raw(folder / RAW_NAME)
    write_rtt(folder / RTT_NAME)
    write_rtt(folder / TEST_NAME, charts=False, reference=True)
    out = tmp_path / "shards"
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "data_prep", "convert.py"), "--input", str(folder),
                           "--output", str(out), "--patch-size", "32", "--stride", "32"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    with open(out / "manifest.json") as f:
        manifest = json.load(f)
    assert sorted(s["scene"] for s in manifest["scenes"]) == sorted(
        [RAW_NAME[:-3], RTT_NAME[:-3], TEST_NAME[:-3]])
    assert manifest["channels"] == list(STORED_CHANNELS)
    assert {s["product"] for s in manifest["scenes"]} == {"raw", "rtt"}
    with open(out / "normalisation.json") as f:
        norm = json.load(f)
    assert set(norm["measured"]) == set(STORED_CHANNELS)
    lat_mean = norm["measured"]["latitude"][0]
    assert 62.0 < lat_mean < 63.0
