"""A synthetic scene as an xarray Dataset in the layout of the real AI4Arctic files (shared docs,
ai4arctic-format.md): same variables, dims, dtypes, attributes and code strings.

Ready-to-train (80 m): standard-scaled float32 SAR-grid and 2 km variables, SIC / SOD / FLOE uint8
rasters, `sar_grid2d_latitude` / `_longitude` with dims (samples, lines), 2 km grid floor(H / 25).
Raw (40 m): physical units, float32 `polygon_icechart` (NaN off-chart: land) with the
`polygon_codes` string coordinate (`poly_id;CT;...;CF;POLY_TYPE`, zero-padded codes, POLY_TYPE I / W),
1-D tie points on `sar_grid_points` (line, sample, latitude, longitude, height, incidence angle;
no full-resolution incidence angle), float64 2 km variables plus `amsr2_swath_map` and
`swath_segmentation`, 2 km grid floor(H / 50).

Extras only synthetic files carry (readers may use them, never to detect anything): the variable
`ice_truth` (uint8: 1 ice, 0 water, 255 land) and the attributes `synthetic_file_name`,
`synthetic_season`, `synthetic_source`.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from seaice_jax.data import channels as ch
from seaice_jax.synthetic.chart import chart_rasters, polygon_code_lines

SYNTHETIC_FILE_ATTR = "synthetic_file_name"
CHART_POLYGON_ATTR = {"SIC": "Sea Ice Concentration [%]", "SOD": "Stage of Development",
                      "FLOE": "Floe Size"}
ERA5_FILE_UNITS = {"u10m_rotated": "m/s", "v10m_rotated": "m/s", "t2m": "K", "skt": "K",
                   "tcwv": "kg/m2", "tclw": "kg/m2"}


def _scaled(name: str, values: np.ndarray) -> np.ndarray:
    mean, std = ch.NORM_STATS[name]
    return ((values - mean) / std).astype(np.float32)


def _truth_variable(surface) -> xr.Variable:
    return xr.Variable(ch.SAR_DIMS, surface.truth(), {
        "long_name": "synthetic pixel truth (not in real files)",
        "flag_values": np.array([0, 1, 255], np.uint8), "flag_meanings": "water ice land"})


def _extras(file_name: str, season: str) -> dict:
    return {SYNTHETIC_FILE_ATTR: file_name, "synthetic_season": season,
            "synthetic_source": "seaice_jax.synthetic"}


def rtt_dataset(*, file_name, raw_name, start_time, service, season, surface, chart, hh_db, hv_db,
                no_data, theta, zone, amsr2, era5, geo, **_) -> xr.Dataset:
    """The ready-to-train layout (train split: charts in the file)."""
    sar = ch.SAR_DIMS
    data: dict[str, xr.Variable] = {}
    # SAR and incidence angle share the no-data mask (0 after scaling); distance stays unmasked.
    for var, values in (("nersc_sar_primary", hh_db), ("nersc_sar_secondary", hv_db),
                        ("sar_incidenceangle", theta)):
        scaled = np.where(no_data, 0.0, _scaled(var, values)).astype(np.float32)
        data[var] = xr.Variable(sar, scaled, {"variable_fill_value": np.float32(0.0)})
    data["distance_map"] = xr.Variable(sar, _scaled("distance_map", zone), {})
    sic, sod, floe = chart_rasters(chart)
    for var, values in zip(ch.CHART_NAMES, (sic, sod, floe), strict=True):
        values = values.copy()
        values[no_data | surface.land] = ch.CHART_FILL
        data[var] = xr.Variable(sar, values.astype(np.uint8),
                                {"polygon": CHART_POLYGON_ATTR[var], "chart_fill_value": np.uint8(ch.CHART_FILL)})
    data["sar_grid2d_latitude"] = xr.Variable(ch.RTT_TIEPOINT_DIMS, geo["lat"].T.copy())
    data["sar_grid2d_longitude"] = xr.Variable(ch.RTT_TIEPOINT_DIMS, geo["lon"].T.copy())
    for var, values in amsr2.items():
        data[var] = xr.Variable(ch.GRID_2KM_DIMS, _scaled(var, values), {"units": "K"})
    for var, values in era5.items():
        data[var] = xr.Variable(ch.GRID_2KM_DIMS, _scaled(var, values), {"units": ERA5_FILE_UNITS[var]})
    data["ice_truth"] = _truth_variable(surface)
    attrs = {
        "scene_id": file_name,
        "original_id": raw_name[: -len(".nc")],
        "ice_service": service,
        "pixel_spacing": np.int32(ch.PIXEL_SPACING_M["rtt"]),
        "flip": np.int32(0),
        **_extras(file_name, season),
    }
    return xr.Dataset(data, attrs=attrs)


def _swath_maps(shape_2km: tuple[int, int], rng_seed: int) -> tuple[np.ndarray, np.ndarray]:
    """uint8 auxiliary maps: which AMSR2 swath filled each cell (1 or 2, split along a column)."""
    rng = np.random.default_rng(rng_seed)
    split = int(rng.integers(0, shape_2km[1] + 1))
    swath = np.ones(shape_2km, np.uint8)
    swath[:, split:] = 2
    return swath, swath.copy()


def raw_dataset(*, file_name, raw_name, start_time, service, season, surface, chart, hh_db, hv_db,
                no_data, theta, zone, amsr2, era5, geo, **_) -> xr.Dataset:
    """The raw layout: physical units, polygon chart, 1-D tie points, float64 2 km grid."""
    sar = ch.SAR_DIMS
    data: dict[str, xr.Variable] = {}
    for var, values in (("nersc_sar_primary", hh_db), ("nersc_sar_secondary", hv_db)):
        data[var] = xr.Variable(sar, np.where(no_data, np.nan, values).astype(np.float32), {})
    data["distance_map"] = xr.Variable(sar, zone.astype(np.float32), {})
    # Land has no polygon: NaN off-chart, as in real files (POLY_TYPE is only I or W there).
    rows = [row for row in chart.rows if row["POLY_TYPE"] != "L"]
    ids = np.array([row["id"] if row["POLY_TYPE"] != "L" else np.nan for row in chart.rows], np.float32)
    data["polygon_icechart"] = xr.Variable(sar, ids[chart.polygon_index], {})
    n, m = geo["lat"].shape
    rows_grid, cols_grid = np.meshgrid(geo["lines"], geo["samples"], indexing="ij")
    land_at_tie = surface.land[rows_grid.astype(int), cols_grid.astype(int)]
    tie = {
        "sar_grid_line": rows_grid, "sar_grid_sample": cols_grid,
        "sar_grid_latitude": geo["lat"], "sar_grid_longitude": geo["lon"],
        "sar_grid_height": np.where(land_at_tie, 30.0, 0.0),
        "sar_grid_incidenceangle": geo["theta"],
    }
    for var, values in tie.items():
        data[var] = xr.Variable((ch.RAW_TIEPOINT_DIM,), np.asarray(values, np.float64).reshape(n * m))
    for var, values in amsr2.items():
        data[var] = xr.Variable(ch.GRID_2KM_DIMS, values.astype(np.float64), {"units": "K"})
    for var, values in era5.items():
        data[var] = xr.Variable(ch.GRID_2KM_DIMS, values.astype(np.float64), {"units": ERA5_FILE_UNITS[var]})
    swath, segmentation = _swath_maps(next(iter(amsr2.values())).shape, len(rows))
    data["amsr2_swath_map"] = xr.Variable(ch.GRID_2KM_DIMS, swath)
    data["swath_segmentation"] = xr.Variable(ch.GRID_2KM_DIMS, segmentation)
    data["ice_truth"] = _truth_variable(surface)
    coords = {"polygon_codes": ("polygon_codes", np.array(polygon_code_lines(rows), dtype=object))}
    attrs = {
        "title": f"Sentinel-1 EW scene {raw_name[:67]} with ice chart ({service})",
        "geometric_info": "SAR grid: sar_lines x sar_samples at 40 m; tie points on sar_grid_points",
        "sar_denoise_by_nersc_documentation": "https://github.com/nansencenter/sentinel1denoised",
        **_extras(file_name, season),
    }
    return xr.Dataset(data, coords=coords, attrs=attrs)
