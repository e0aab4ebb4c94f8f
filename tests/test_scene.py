"""Scene reader on tiny hand-made RTT and raw files (shared docs ai4arctic-format.md, method.md s.2)."""

import math
import os

import numpy as np
import pytest
import xarray as xr

from seaice_jax.data import scene as scene_lib
from seaice_jax.data.channels import (
    ALL_CHANNELS,
    GRID_2KM_CHANNELS,
    GRID_2KM_DIMS,
    NORM_STATS,
    POLYGON_CODES_HEADER,
    SAR_DIMS,
    SAR_GRID_CHANNELS,
)
from seaice_jax.data.scene_types import SceneError

HH, HV = "nersc_sar_primary", "nersc_sar_secondary"


def _inputs(height, width, f, scaled, rng):
    """All 24 input variables; 2 km cell value = 100 * i + j + channel index (distinct per cell)."""
    grid = (math.ceil(height / f), math.ceil(width / f))
    data = {}
    for k, var in enumerate(ALL_CHANNELS):
        if var in GRID_2KM_CHANNELS:
            i, j = np.meshgrid(np.arange(grid[0]), np.arange(grid[1]), indexing="ij")
            values = (100.0 * i + j + k).astype(np.float32)
            data[var] = (GRID_2KM_DIMS, values)
        else:
            mean, std = NORM_STATS[var]
            values = (mean + std * rng.standard_normal((height, width))).astype(np.float32)
            if scaled:
                values = (values - mean) / std
            data[var] = (SAR_DIMS, values.astype(np.float32))
    return data


def _scale(var, x):
    mean, std = NORM_STATS[var]
    return (np.float32(x) - np.float32(mean)) / np.float32(std)


def make_rtt(path, height=50, width=50, charts=None, seed=0):
    """RTT scene: scaled inputs; land in the bottom-left 10 x 10 block; one HH no-data pixel (3, 3)."""
    rng = np.random.default_rng(seed)
    data = _inputs(height, width, 25, scaled=True, rng=rng)
    distance = np.full((height, width), 10.0, np.float32)
    distance[-10:, :10] = 0.0
    data["distance_map"] = (SAR_DIMS, _scale("distance_map", distance))
    hh = data[HH][1].copy()
    hh[3, 3] = 0.0
    data[HH] = (SAR_DIMS, hh)
    if charts is None:
        charts = {c: np.zeros((height, width), np.uint8) for c in ("SIC", "SOD", "FLOE")}
    for name, values in charts.items():
        data[name] = (SAR_DIMS, values.astype(np.uint8))
    ds = xr.Dataset(data, attrs={"scene_id": "test"})
    ds.to_netcdf(path, engine="netcdf4")
    return ds


RAW_CODES = [
    POLYGON_CODES_HEADER,
    "1;-9;-9;-9;-9;-9;-9;-9;-9;-9;-9;-9;-9;-9;W",
    "5;57;-9;87;4;-9;-9;-9;-9;-9;-9;-9;-9;-9;I",
    "7;-9;-9;-9;-9;-9;-9;-9;-9;-9;-9;-9;-9;-9;L",
    "9;91;-9;95;8;-9;-9;-9;-9;-9;-9;-9;-9;-9;I",
]


def make_raw(path, height=100, width=100, seed=0, polygon_dtype=np.float32):
    """Raw scene: 4 polygon column bands 1 (W) | 5 (CT 57) | 7 (L) | 9 (CT 91, fast-ice floe).

    Row 0 of the polygon raster is fill (NaN or -1); HH is NaN at (10, 10).
    """
    rng = np.random.default_rng(seed)
    data = _inputs(height, width, 50, scaled=False, rng=rng)
    distance = np.full((height, width), 12.0, np.float32)
    distance[:, 50:75] = 0.0  # the L polygon
    data["distance_map"] = (SAR_DIMS, distance)
    hh = data[HH][1].copy()
    hh[10, 10] = np.nan
    data[HH] = (SAR_DIMS, hh)
    band = np.minimum(4 * np.arange(width) // 100, 3)  # columns 0-24, 25-49, 50-74, 75+
    polygons = np.array([1, 5, 7, 9])[band][None, :].repeat(height, 0).astype(polygon_dtype)
    polygons[0] = np.nan if np.issubdtype(polygon_dtype, np.floating) else -1
    data["polygon_icechart"] = (SAR_DIMS, polygons)
    data["polygon_codes"] = (("polygon_codes_lines",), np.array(RAW_CODES, dtype=object))
    ds = xr.Dataset(data, attrs={"scene_id": "raw_test"})
    ds.to_netcdf(path, engine="netcdf4")
    return ds


def three_band_charts(height=50, width=50):
    """Columns 0-9 and 20-29 the same labels, 10-19 different, 30-39 SIC 255, 40-49 water."""
    sic = np.zeros((height, width), np.uint8)
    sod = np.zeros_like(sic)
    floe = np.zeros_like(sic)
    for cols, labels in [
        (slice(0, 10), (10, 4, 3)),
        (slice(10, 20), (5, 4, 3)),
        (slice(20, 30), (10, 4, 3)),
        (slice(30, 40), (255, 255, 255)),
        (slice(40, 50), (0, 0, 0)),
    ]:
        sic[:, cols], sod[:, cols], floe[:, cols] = labels
    return {"SIC": sic, "SOD": sod, "FLOE": floe}


def test_rtt_scene(tmp_path):
    path = tmp_path / "20190430T101830_cis_prep.nc"
    ds = make_rtt(path, charts=three_band_charts())
    scene = scene_lib.open_scene(str(path))
    assert scene.product == "rtt" and scene.name == "20190430T101830_cis_prep"
    assert scene.shape == (50, 50) and set(scene.channels) == set(ALL_CHANNELS)
    # RTT inputs are already scaled: kept as they are.
    np.testing.assert_array_equal(scene.channels[HV], ds[HV].values)
    assert all(v.dtype == np.float32 for v in scene.channels.values())
    # valid: not land (bottom-left block) and not HH == 0.
    expected_valid = np.ones((50, 50), bool)
    expected_valid[-10:, :10] = False
    expected_valid[3, 3] = False
    np.testing.assert_array_equal(scene.valid, expected_valid)
    assert scene.sic[3, 3] == 255 and scene.sic[45, 5] == 255 and scene.sic[20, 5] == 10

    ids = scene.region_ids
    left, middle, right, masked, water = ids[20, 5], ids[20, 15], ids[20, 25], ids[20, 35], ids[20, 45]
    # Same labels separated by a different band: two components.
    assert len({left, middle, right, water}) == 4 and masked == -1
    assert (ids[:40, :10][expected_valid[:40, :10]] == left).all()
    assert (ids[:, 20:30] == right).all()
    assert ids[3, 3] == -1 and (ids[-10:, :10] == -1).all() and (ids[:, 30:40] == -1).all()
    assert sorted(np.unique(ids[ids >= 0])) == list(range(4)) and len(scene.region_conc) == 4
    np.testing.assert_allclose(scene.region_conc[[left, middle, right, water]], [1.0, 0.5, 1.0, 0.0])
    assert scene.ice_truth is None


def test_rtt_regions_use_4_connectivity(tmp_path):
    sic = np.full((50, 50), 5, np.uint8)
    sic[10, 10] = sic[11, 11] = 8  # diagonal neighbours only: two regions
    charts = {"SIC": sic, "SOD": np.full_like(sic, 2), "FLOE": np.full_like(sic, 1)}
    path = tmp_path / "diag.nc"
    make_rtt(path, charts=charts)
    scene = scene_lib.open_scene(str(path))
    a, b = scene.region_ids[10, 10], scene.region_ids[11, 11]
    assert a != b and a >= 0 and b >= 0
    assert scene.region_conc[a] == pytest.approx(0.8) and scene.region_conc[b] == pytest.approx(0.8)
    assert len(scene.region_conc) == 3


@pytest.mark.parametrize("polygon_dtype", [np.float32, np.int32])
def test_raw_scene(tmp_path, polygon_dtype):
    path = tmp_path / "S1A_EW_GRDM_1SDH_20190430T101830_icechart_cis_pl_a.nc"
    ds = make_raw(path, polygon_dtype=polygon_dtype)
    scene = scene_lib.open_scene(str(path))
    assert scene.product == "raw" and scene.shape == (100, 100)
    # Physical units scaled with the published statistics; NaN -> 0.
    for var in SAR_GRID_CHANNELS:
        expected = _scale(var, ds[var].values)
        expected = np.nan_to_num(expected, nan=0.0)
        if var == "sar_incidenceangle":  # no incidence angle where there is no SAR, as in RTT files
            expected[10, 10] = 0.0
        np.testing.assert_allclose(scene.channels[var], expected, rtol=1e-5, atol=1e-5)
    assert scene.channels[HH][10, 10] == 0.0
    # 2 km channels are scaled too: pixel (0, 0) lies before the first centre, so it holds cell (0, 0).
    var = "btemp_36_5v"
    assert scene.channels[var][0, 0] == pytest.approx(float(_scale(var, ds[var].values[0, 0])), abs=1e-5)

    # Charts from the polygon codes.
    row = 50
    np.testing.assert_array_equal(scene.sic[row, [0, 30, 60, 80]], [0, 6, 255, 10])
    np.testing.assert_array_equal(scene.sod[row, [0, 30, 60, 80]], [0, 3, 255, 5])
    np.testing.assert_array_equal(scene.floe[row, [0, 30, 60, 80]], [0, 3, 255, 255])
    assert (scene.sic[0] == 255).all()  # polygon fill row
    assert scene.sic[10, 10] == 255  # SAR no-data

    # valid: not land (distance 0 = the L band) and not SAR no-data.
    assert not scene.valid[:, 50:75].any() and not scene.valid[10, 10]
    assert scene.valid[0, 0] and scene.valid[50, 80]
    # Regions: polygons 1, 5, 9 -> 0, 1, 2; land, fill row and no-data -> -1.
    ids = scene.region_ids
    assert (ids[1:, :25][scene.valid[1:, :25]] == 0).all()
    assert (ids[1:, 25:50] == 1).all() and (ids[1:, 75:] == 2).all()
    assert (ids[0] == -1).all() and (ids[:, 50:75] == -1).all() and ids[10, 10] == -1
    np.testing.assert_allclose(scene.region_conc, [0.0, 0.6, 0.95])


def test_raw_polygon_without_concentration_has_no_region(tmp_path):
    path = tmp_path / "raw_unknown.nc"
    make_raw(path)
    with xr.open_dataset(path) as ds:
        ds = ds.load()
    codes = [str(c) for c in ds["polygon_codes"].values]
    codes[2] = "5;99;-9;87;4;-9;-9;-9;-9;-9;-9;-9;-9;-9;I"  # CT unknown
    ds["polygon_codes"] = (("polygon_codes_lines",), np.array(codes, dtype=object))
    other = tmp_path / "raw_unknown2.nc"
    ds.to_netcdf(other)
    scene = scene_lib.open_scene(str(other))
    assert (scene.region_ids[:, 25:50] == -1).all() and (scene.sic[:, 25:50] == 255).all()
    np.testing.assert_allclose(scene.region_conc, [0.0, 0.95])


@pytest.mark.parametrize("product, f, make", [("rtt", 25, make_rtt), ("raw", 50, make_raw)])
def test_2km_nearest_fills_its_own_block(tmp_path, product, f, make):
    height, width = 3 * f, 4 * f - 7  # last column block is partial
    path = tmp_path / f"{product}.nc"
    ds = make(path, height=height, width=width)
    scene = scene_lib.open_scene(str(path), interp="nearest", channels=["btemp_18_7h"])
    out = scene.channels["btemp_18_7h"]
    grid = ds["btemp_18_7h"].values
    if product == "raw":
        grid = _scale("btemp_18_7h", grid)
    assert grid.shape == (3, 4)
    for i in range(3):
        for j in range(4):
            block = out[f * i: f * i + f, f * j: f * j + f]
            assert block.size > 0 and (block == np.float32(grid[i, j])).all(), (i, j)


def test_2km_bilinear_rtt_centre_exact_and_linear(tmp_path):
    f = 25
    path = tmp_path / "rtt.nc"
    ds = make_rtt(path, height=3 * f, width=4 * f)
    var = "t2m"
    scene = scene_lib.open_scene(str(path), channels=[var])
    out = scene.channels[var].astype(np.float64)
    grid = ds[var].values  # 100 * i + j + k: linear in the cell indices
    for i in range(3):
        for j in range(4):
            assert out[f * i + 12, f * j + 12] == np.float32(grid[i, j])
    # Between the outer centres the field is linear in the pixel index with slope 1/f per cell step.
    rows = np.arange(12, 2 * f + 13)
    cols = np.arange(12, 3 * f + 13)
    expected = grid[0, 0] + 100.0 * (rows[:, None] - 12) / f + (cols[None, :] - 12) / f
    np.testing.assert_allclose(out[np.ix_(rows, cols)], expected, atol=1e-3)
    # Clamped beyond the outer centres.
    np.testing.assert_array_equal(out[:12, 12], out[12, 12])
    np.testing.assert_array_equal(out[-12:, -1], out[2 * f + 12, 3 * f + 12])


def test_2km_bilinear_raw_centre_between_pixels(tmp_path):
    f = 50
    path = tmp_path / "raw.nc"
    ds = make_raw(path, height=3 * f, width=3 * f)
    var = "btemp_89_0v"
    scene = scene_lib.open_scene(str(path), channels=[var])
    out = scene.channels[var].astype(np.float64)
    grid = _scale(var, ds[var].values).astype(np.float64)
    # The centre of interior cell (1, 1) sits at pixel 50 + 24.5: pixels 74 and 75 average to it.
    assert out[74:76, 74:76].mean() == pytest.approx(grid[1, 1], abs=1e-4)
    # Linear in the pixel index between the outer centres (24.5 .. 124.5), slope 1/f per cell step.
    steps = np.diff(out[25:125, 80])
    np.testing.assert_allclose(steps, (grid[1, 1] - grid[0, 1]) / f, rtol=1e-3)
    # Clamped before the first centre: pixels 0..24 all hold cell (0, j) values.
    np.testing.assert_allclose(out[:25, 0], grid[0, 0], atol=1e-5)


def test_ice_truth_read_as_uint8(tmp_path):
    path = tmp_path / "truth.nc"
    ds = make_rtt(path)
    truth = np.zeros((50, 50), np.uint8)
    truth[:5] = 1
    truth[-10:, :10] = 255
    ds["ice_truth"] = (SAR_DIMS, truth)
    other = tmp_path / "truth2.nc"
    ds.to_netcdf(other)
    scene = scene_lib.open_scene(str(other))
    assert scene.ice_truth.dtype == np.uint8
    np.testing.assert_array_equal(scene.ice_truth, truth)


def _rewrite(tmp_path, ds, name):
    path = tmp_path / name
    ds.to_netcdf(path)
    return str(path)


def _error_of(path, **kwargs):
    with pytest.raises(SceneError) as err:
        scene_lib.open_scene(path, **kwargs)
    message = str(err.value)
    assert os.path.basename(path) in message and "\n" not in message
    return message


def test_missing_variable_raises(tmp_path):
    ds = make_rtt(tmp_path / "good.nc")
    message = _error_of(_rewrite(tmp_path, ds.drop_vars("btemp_36_5v"), "missing.nc"))
    assert message == "missing.nc: variable 'btemp_36_5v' missing"
    message = _error_of(_rewrite(tmp_path, ds.drop_vars("FLOE"), "nofloe.nc"))
    assert "'FLOE' missing" in message
    message = _error_of(_rewrite(tmp_path, ds.drop_vars(["SIC", "SOD", "FLOE"]), "nochart.nc"))
    assert "no ice chart" in message
    raw = make_raw(tmp_path / "raw.nc")
    message = _error_of(_rewrite(tmp_path, raw.drop_vars("polygon_codes"), "nocodes.nc"))
    assert "'polygon_codes' missing" in message


def test_scene_without_charts_when_allowed(tmp_path):
    ds = make_rtt(tmp_path / "good.nc")
    path = _rewrite(tmp_path, ds.drop_vars(["SIC", "SOD", "FLOE"]), "test_scene_prep.nc")
    _error_of(path)
    scene = scene_lib.open_scene(path, require_charts=False)
    assert scene.product == "rtt" and (scene.sic == 255).all() and (scene.region_ids == -1).all()
    assert len(scene.region_conc) == 0


def test_wrong_dims_raise(tmp_path):
    ds = make_rtt(tmp_path / "good.nc")
    swapped = ds.copy()
    swapped[HV] = (("sar_samples", "sar_lines"), ds[HV].values.T)
    assert "'nersc_sar_secondary' has dims" in _error_of(_rewrite(tmp_path, swapped, "swapped.nc"))
    on_sar = ds.copy()
    on_sar["tcwv"] = (SAR_DIMS, np.zeros((50, 50), np.float32))
    assert "'tcwv' has dims" in _error_of(_rewrite(tmp_path, on_sar, "tcwv_on_sar.nc"))
    big_grid = ds.drop_vars(list(GRID_2KM_CHANNELS))
    for var in GRID_2KM_CHANNELS:
        big_grid[var] = (GRID_2KM_DIMS, np.zeros((5, 5), np.float32))  # ceil(50 / 25) = 2
    assert "2 km grid shape (5, 5)" in _error_of(_rewrite(tmp_path, big_grid, "grid.nc"))
    bad_class = ds.copy()
    sic = ds["SIC"].values.copy()
    sic[0, 0] = 11
    bad_class["SIC"] = (SAR_DIMS, sic)
    assert "'SIC' holds 11" in _error_of(_rewrite(tmp_path, bad_class, "class.nc"))


def test_corrupt_and_truncated_files_raise(tmp_path):
    corrupt = tmp_path / "corrupt.nc"
    corrupt.write_bytes(np.random.default_rng(0).bytes(4096))
    _error_of(str(corrupt))
    good = tmp_path / "good.nc"
    make_raw(good)
    content = good.read_bytes()
    truncated = tmp_path / "truncated.nc"
    truncated.write_bytes(content[: len(content) // 2])
    _error_of(str(truncated))
    _error_of(str(tmp_path / "absent.nc"))


def test_list_scene_files(tmp_path):
    folder = tmp_path / "scenes"
    folder.mkdir()
    for name in ["b.nc", "a.nc", "a_pred.nc", "notes.txt"]:
        (folder / name).write_bytes(b"")
    single = tmp_path / "single.nc"
    single.write_bytes(b"")
    files = scene_lib.list_scene_files([str(single), str(folder)])
    assert files == [str(single), str(folder / "a.nc"), str(folder / "b.nc")]
    with pytest.raises(SceneError, match="nowhere"):
        scene_lib.list_scene_files([str(tmp_path / "nowhere")])


def test_derived_channels_on_request_and_lazily(tmp_path):
    from tests.test_real_layout import RTT_NAME, write_rtt

    path = tmp_path / RTT_NAME
    write_rtt(path)
    eager = scene_lib.open_scene(str(path), channels=["sar", "derived"])
    lazy = scene_lib.open_scene(str(path), channels=["sar"])
    assert "latitude" not in lazy.channels
    names = ("nersc_sar_primary", "latitude", "longitude_cos", "month_sin", "doy_cos")
    np.testing.assert_array_equal(eager.stack(names), lazy.stack(names))
    lat, lon = eager.latlon(step=7)
    assert lat.shape == lon.shape == (math.ceil(eager.shape[0] / 7), math.ceil(eager.shape[1] / 7))


def test_derived_channels_need_tie_points(tmp_path):
    path = tmp_path / "20190430T101830_cis_prep.nc"
    make_rtt(path)  # no tie points
    scene = scene_lib.open_scene(str(path), channels=["sar", "month_cos"])  # time from the file name
    assert scene.tie_points is None and scene.start_time == np.datetime64("2019-04-30T10:18:30")
    with pytest.raises(SceneError, match="'latitude' needs tie points"):
        scene_lib.open_scene(str(path), channels=["latitude"])
    with pytest.raises(ValueError, match="no tie points"):
        scene.latlon()
