"""Read one AI4Arctic NetCDF scene (ready-to-train or raw) into a `Scene`.

Formats: shared docs ai4arctic-format.md. Regions (weak labels): method.md section 2.
  * RTT files hold standard-scaled inputs and SIC/SOD/FLOE rasters; regions are the 4-connected
    components of pixels with identical (SIC, SOD, FLOE), concentration = SIC class / 10.
  * Raw files hold physical units and a polygon raster + SIGRID code table; regions are the polygons,
    concentration from CT. The incidence angle comes on the tie points only and is interpolated.
  * Test-split `<id>_prep.nc` files take their charts from `<id>_prep_reference.nc` beside them.
  * The product is told by variables and dims both real products have (never by synthetic extras).
  * 2 km channels (floor(H / f) x floor(W / f) cells) are interpolated to the SAR grid with cell
    (i, j) centred on its own f x f block; edge pixels past the last cell clamp to it.
  * Geolocation: `Scene.tie_points` (both products); derived inputs (latitude, sin / cos of
    longitude, month, day of year) are computed on request (channels.DERIVED_CHANNELS).
Every problem with a file raises one `SceneError` whose one-line message names the file.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import re
from collections.abc import Iterable

import numpy as np
import xarray as xr

from seaice_jax.data import cells, geolocation, sigrid
from seaice_jax.data.channels import (
    ALL_CHANNELS,
    CHART_FILL,
    CHART_NAMES,
    DERIVED_CHANNELS,
    GRID_2KM_CHANNELS,
    GRID_2KM_DIMS,
    NORM_STATS,
    NUM_CLASSES,
    PIXELS_PER_2KM,
    RAW_TIEPOINT_DIM,
    RTT_TIEPOINT_DIMS,
    SAR_DIMS,
    TIEPOINT_DIMS,
    channel_stats,
    resolve_channels,
)
from seaice_jax.data.derived import derived_channel
from seaice_jax.data.regions import chart_regions, chart_report, polygon_regions  # noqa: F401 (re-exported)
from seaice_jax.data.scene_types import Scene, SceneError

INTERP_MODES = ("bilinear", "nearest")
HH = "nersc_sar_primary"
DISTANCE = "distance_map"
POLYGON_RASTER = "polygon_icechart"
POLYGON_CODES = "polygon_codes"
ICE_TRUTH = "ice_truth"
INCIDENCE = "sar_incidenceangle"
REFERENCE_SUFFIX = "_prep_reference.nc"


# ----------------------------------------------------------------------------------------------
# 2 km grid -> SAR grid


def _nearest_cells(num_pixels: int, num_cells: int, pixels_per_cell: int) -> np.ndarray:
    """Cell index of each pixel's own block (clamped to the grid). int64 [P]."""
    return np.minimum(np.arange(num_pixels) // pixels_per_cell, num_cells - 1)


def upsample_2km(
    grid: np.ndarray, shape: tuple[int, int], pixels_per_cell: int, interp: str = "bilinear"
) -> np.ndarray:
    """2 km field onto the SAR grid, each cell centred on its own f x f pixel block.

    grid: [h, w] 2 km values (finite); shape: SAR (H, W); pixels_per_cell: f (25 rtt, 50 raw).
    'nearest' gives every pixel of block (i, j) exactly grid[i, j]; 'bilinear' is separable linear
    interpolation between cell centres (pixel f*i + (f-1)/2), clamped beyond the outer centres.
    Returns float32 [H, W].
    """
    grid = np.asarray(grid, np.float32)
    height, width = shape
    rows_2km, cols_2km = grid.shape
    if interp == "nearest":
        rows = _nearest_cells(height, rows_2km, pixels_per_cell)
        cols = _nearest_cells(width, cols_2km, pixels_per_cell)
        return np.take(np.take(grid, rows, axis=0), cols, axis=1)
    if interp != "bilinear":
        raise ValueError(f"interp must be one of {INTERP_MODES}, got {interp!r}")
    return cells.upsample_2km(grid, shape, pixels_per_cell)  # the one implementation (host and device)


# ----------------------------------------------------------------------------------------------
# Reading


def _fail(name: str, problem: str) -> SceneError:
    return SceneError(f"{name}: {' '.join(str(problem).split())}")


def reference_path(path: str) -> str | None:
    """The companion chart file of a test-split `<id>_prep.nc`: `<id>_prep_reference.nc`, else None."""
    if path.endswith("_prep.nc"):
        return path[: -len(".nc")] + REFERENCE_SUFFIX[len("_prep"):]
    return None


def _is_raw_layout(ds: xr.Dataset) -> bool:
    """Raw product: a polygon chart, or the 1-D tie-point grid `sar_grid_points`."""
    return (
        POLYGON_RASTER in ds.variables
        or POLYGON_CODES in ds.variables
        or RAW_TIEPOINT_DIM in ds.dims
        or "sar_grid_incidenceangle" in ds.variables
    )


def _is_rtt_layout(ds: xr.Dataset) -> bool:
    """Ready-to-train product: chart rasters, 2-D tie points, or a full-resolution incidence angle."""
    return (
        any(c in ds.variables for c in CHART_NAMES)
        or "sar_grid2d_latitude" in ds.variables
        or any(d in ds.dims for d in RTT_TIEPOINT_DIMS)
        or ("sar_incidenceangle" in ds.variables and tuple(ds["sar_incidenceangle"].dims) == SAR_DIMS)
    )


def _detect_product(ds: xr.Dataset, name: str) -> str | None:
    """'raw', 'rtt', or None when the layout does not tell (decided by the 2 km grid then)."""
    if _is_raw_layout(ds):
        if (POLYGON_RASTER in ds.variables) != (POLYGON_CODES in ds.variables):
            missing = POLYGON_CODES if POLYGON_RASTER in ds.variables else POLYGON_RASTER
            raise _fail(name, f"variable {missing!r} missing (raw scene)")
        return "raw"
    if _is_rtt_layout(ds):
        present = [c for c in CHART_NAMES if c in ds.variables]
        if present and len(present) != len(CHART_NAMES):
            missing = next(c for c in CHART_NAMES if c not in ds.variables)
            raise _fail(name, f"variable {missing!r} missing (ready-to-train scene)")
        return "rtt"
    return None


def _check_dims(ds: xr.Dataset, name: str, var: str, dims: tuple[str, ...]) -> None:
    if var not in ds.variables:
        raise _fail(name, f"variable {var!r} missing")
    if tuple(ds[var].dims) != dims:
        raise _fail(name, f"variable {var!r} has dims {tuple(ds[var].dims)}, expected {dims}")


def _sar_shape(ds: xr.Dataset, name: str) -> tuple[int, int]:
    _check_dims(ds, name, HH, SAR_DIMS)
    shape = tuple(int(n) for n in ds[HH].shape)
    if min(shape) == 0:
        raise _fail(name, f"empty SAR grid {shape}")
    return shape  # type: ignore[return-value]


def grid_2km_shape(sar_shape: tuple[int, int], product: str) -> tuple[int, int]:
    """The 2 km grid of a scene: floor(H / f) x floor(W / f) (f = 25 RTT, 50 raw), as real files."""
    f = PIXELS_PER_2KM[product]
    return tuple(s // f for s in sar_shape)  # type: ignore[return-value]


def _grid_matches(num_cells: int, num_pixels: int, pixels_per_cell: int) -> bool:
    """2 km size consistent with floor(H / f); one cell more is tolerated (older ceil-sized files)."""
    expected = num_pixels // pixels_per_cell
    return num_cells >= 1 and 0 <= num_cells - expected <= 1


def _product_from_grid(ds: xr.Dataset, sar_shape: tuple[int, int], name: str) -> str:
    """For a scene whose variables do not tell: the product whose 2 km cell size fits the grids."""
    for var in GRID_2KM_CHANNELS:
        if var in ds.variables and tuple(ds[var].dims) == GRID_2KM_DIMS:
            exact = [p for p in ("rtt", "raw") if tuple(ds[var].shape) == grid_2km_shape(sar_shape, p)]
            close = [
                p for p in ("rtt", "raw")
                if all(_grid_matches(n, s, PIXELS_PER_2KM[p]) for n, s in zip(ds[var].shape, sar_shape, strict=True))
            ]
            for fits in (exact, close):
                if len(fits) == 1:
                    return fits[0]
    raise _fail(name, "neither the variables nor the 2 km grid tell the product (rtt or raw)")


def _check_2km_shape(ds: xr.Dataset, name: str, var: str, sar_shape, product: str) -> None:
    _check_dims(ds, name, var, GRID_2KM_DIMS)
    f = PIXELS_PER_2KM[product]
    grid_shape = tuple(int(n) for n in ds[var].shape)
    if not all(_grid_matches(n, s, f) for n, s in zip(grid_shape, sar_shape, strict=True)):
        raise _fail(
            name,
            f"variable {var!r} has 2 km grid shape {grid_shape}, expected {grid_2km_shape(sar_shape, product)} "
            f"(floor of SAR shape {tuple(sar_shape)} / {f})",
        )


def _read_float(ds: xr.Dataset, var: str) -> np.ndarray:
    """Variable as float32 (fill values already NaN: the file is opened with mask_and_scale)."""
    return np.asarray(ds[var].values, dtype=np.float32)


def _read_uint8(ds: xr.Dataset, name: str, var: str, num_classes: int | None) -> np.ndarray:
    """Class raster as uint8 with NaN / fill -> 255; values outside 0..num_classes-1 and 255 raise."""
    values = np.asarray(ds[var].values)
    if np.issubdtype(values.dtype, np.floating):
        values = np.where(np.isfinite(values), values, CHART_FILL)
    if num_classes is not None:
        bad = (values != CHART_FILL) & ((values < 0) | (values >= num_classes))
        if bad.any():
            raise _fail(
                name,
                f"variable {var!r} holds {values[bad].flat[0].item()!r}, not a class 0..{num_classes - 1} or 255",
            )
    return values.astype(np.uint8)


def _standard_scaled(values: np.ndarray, var: str) -> np.ndarray:
    """(values - mean) / std in float32, as a new array (one full-size temporary, not two)."""
    mean, std = channel_stats(var)
    out = np.subtract(values, np.float32(mean), dtype=np.float32)
    out /= np.float32(std)
    return out


def land_from_distance(distance: np.ndarray, product: str) -> np.ndarray:
    """bool: land pixels (distance-to-land zone 0) of the file's `distance_map` values. RTT files hold
    the standard-scaled zone index (2 x 2 means step 0.25), raw files the index itself."""
    if product == "raw":
        return distance == 0.0
    mean, std = NORM_STATS[DISTANCE]
    return np.abs(distance * np.float32(std) + np.float32(mean)) < 0.1


def _raw_sar_no_data(ds: xr.Dataset, hh: np.ndarray) -> np.ndarray:
    """Raw no-data: NaN, or the finite `variable_fill_value` if the file declares one."""
    no_data = ~np.isfinite(hh)
    fill = ds[HH].attrs.get("variable_fill_value")
    try:
        fill_value = float(np.asarray(fill).ravel()[0]) if fill is not None else math.nan
    except (TypeError, ValueError, IndexError):
        fill_value = math.nan
    if math.isfinite(fill_value):
        no_data |= hh == np.float32(fill_value)
    return no_data


def _has_full_incidence(ds: xr.Dataset) -> bool:
    return INCIDENCE in ds.variables and tuple(ds[INCIDENCE].dims) == SAR_DIMS


def _raw_incidence_degrees(ds: xr.Dataset, name: str, tie_points, sar_shape) -> np.ndarray:
    """Raw files hold the incidence angle on the tie points only: bilinear onto every pixel."""
    if tie_points is None or "sar_grid_incidenceangle" not in ds.variables:
        raise _fail(name, "no incidence angle: neither 'sar_incidenceangle' nor 'sar_grid_incidenceangle'")
    try:
        grid = geolocation.raw_tie_grid(ds["sar_grid_line"].values, ds["sar_grid_sample"].values,
                                        ds["sar_grid_incidenceangle"].values)
    except geolocation.GeolocationError as err:
        raise _fail(name, f"sar_grid_incidenceangle: {err}") from None
    return geolocation.grid_field(tie_points, grid, sar_shape, dtype=np.float32)


def _read_channel(ds: xr.Dataset, var: str, product: str, sar_shape: tuple[int, int], interp: str,
                  tie_points, name: str) -> np.ndarray:
    """One input channel, standard-scaled, NaN -> 0, on the SAR grid. float32 [H, W]."""
    if product == "raw" and var == INCIDENCE and not _has_full_incidence(ds):
        values = _raw_incidence_degrees(ds, name, tie_points, sar_shape)
    else:
        values = _read_float(ds, var)
    if product == "raw":
        values = _standard_scaled(values, var)  # a new array: NaN -> 0 can work in place
    values = np.nan_to_num(values, copy=product != "raw", nan=0.0, posinf=0.0, neginf=0.0)
    if var in GRID_2KM_CHANNELS:
        values = upsample_2km(values, sar_shape, PIXELS_PER_2KM[product], interp)
    return values.astype(np.float32, copy=False)


def _read_tie_points(ds: xr.Dataset, name: str, sar_shape) -> geolocation.TiePoints | None:
    """Tie points of either product (raw 1-D `sar_grid_*`, RTT 2-D `sar_grid2d_*`), or None."""
    try:
        if all(v in ds.variables for v in ("sar_grid_line", "sar_grid_sample", "sar_grid_latitude",
                                           "sar_grid_longitude")):
            line, sample = ds["sar_grid_line"].values, ds["sar_grid_sample"].values
            lat, lon = ds["sar_grid_latitude"].values, ds["sar_grid_longitude"].values
            if np.ndim(lat) == 1:
                return geolocation.tie_points_from_raw(line, sample, lat, lon)
        if "sar_grid2d_latitude" in ds.variables and "sar_grid2d_longitude" in ds.variables:
            lat, lon = ds["sar_grid2d_latitude"], ds["sar_grid2d_longitude"]
            if tuple(lat.dims) == TIEPOINT_DIMS:  # older synthetic files: lines first
                return geolocation.tie_points_from_rtt(lat.values.T, lon.values.T, sar_shape)
            return geolocation.tie_points_from_rtt(lat.values, lon.values, sar_shape)
    except geolocation.GeolocationError as err:
        raise _fail(name, f"tie points: {err}") from None
    return None


_TIME_PATTERN = re.compile(r"(\d{8}T\d{6})")


def scene_start_time(file_name: str, attrs: dict | None = None) -> np.datetime64 | None:
    """Acquisition start from the file name (`<YYYYMMDDTHHMMSS>_...` RTT, `S1x_EW_GRDM_1SDH_<start>_...`
    raw), else from the `original_id` / `scene_id` attributes. datetime64[s] or None."""
    candidates = [file_name] + [str((attrs or {}).get(k, "")) for k in ("original_id", "scene_id")]
    for text in candidates:
        match = _TIME_PATTERN.search(text)
        if match:
            try:
                return np.datetime64(dt.datetime.strptime(match.group(1), "%Y%m%dT%H%M%S"), "s")
            except ValueError:
                continue
    return None


def _read_raw_charts(ds: xr.Dataset, name: str):
    """Raw charts via the polygon table. Returns (sic, sod, floe, lookup index [H, W], lookup)."""
    lines = list(np.asarray(ds[POLYGON_CODES].values).ravel())
    table = sigrid.parse_polygon_codes(lines, name)
    lookup = sigrid.polygon_tables_to_lookup(table)
    index = lookup.index_of(ds[POLYGON_RASTER].values)
    return lookup.sic[index], lookup.sod[index], lookup.floe[index], index, lookup


def _reference_charts(path: str, name: str, sar_shape) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """SIC / SOD / FLOE of a test-split scene from its `_prep_reference.nc`."""
    ref = reference_path(path)
    ref_name = os.path.basename(ref)
    try:
        with xr.open_dataset(ref, engine="netcdf4", mask_and_scale=True, decode_times=False,
                             cache=False) as rds:
            charts = []
            for var in CHART_NAMES:
                if var not in rds.variables:
                    raise _fail(ref_name, f"variable {var!r} missing (reference charts of {name})")
                if tuple(rds[var].shape) != tuple(sar_shape):
                    raise _fail(ref_name, f"variable {var!r} has shape {tuple(rds[var].shape)}, "
                                          f"expected the SAR shape {tuple(sar_shape)} of {name}")
                charts.append(_read_uint8(rds, ref_name, var, NUM_CLASSES[var]))
            return tuple(charts)  # type: ignore[return-value]
    except SceneError:
        raise
    except (OSError, RuntimeError, ValueError) as err:
        raise _fail(ref_name, f"cannot read ({type(err).__name__}: {err})") from err


def _scene_from_dataset(
    ds: xr.Dataset, path: str, name: str, interp: str, channel_names: tuple[str, ...], require_charts: bool
) -> Scene:
    product = _detect_product(ds, name)
    sar_shape = _sar_shape(ds, name)
    if product is None:
        product = _product_from_grid(ds, sar_shape, name)
    ref = reference_path(path)
    if product == "raw":
        chart_source = "polygons" if POLYGON_RASTER in ds.variables else None
    elif all(c in ds.variables for c in CHART_NAMES):
        chart_source = "rasters"
    elif ref is not None and os.path.isfile(ref):
        chart_source = "reference"
    else:
        chart_source = None
    if chart_source is None and require_charts:
        also = f" and no {os.path.basename(ref)} beside it" if ref else ""
        raise _fail(name, "no ice chart: neither SIC/SOD/FLOE (ready-to-train) nor "
                          f"polygon_icechart/polygon_codes (raw){also}")
    file_channels = tuple(c for c in channel_names if c not in DERIVED_CHANNELS)
    # HH (no-data) and distance map (land) are always needed for the masks.
    needed = tuple(dict.fromkeys(file_channels + (HH, DISTANCE)))
    for var in needed:
        if var in GRID_2KM_CHANNELS:
            _check_2km_shape(ds, name, var, sar_shape, product)
        elif not (product == "raw" and var == INCIDENCE and not _has_full_incidence(ds)):
            _check_dims(ds, name, var, SAR_DIMS)
    chart_vars = {"polygons": (POLYGON_RASTER,), "rasters": CHART_NAMES}.get(chart_source, ())
    for var in chart_vars + ((ICE_TRUTH,) if ICE_TRUTH in ds.variables else ()):
        _check_dims(ds, name, var, SAR_DIMS)
    if chart_source == "polygons" and ds[POLYGON_CODES].ndim != 1:
        raise _fail(name, f"variable {POLYGON_CODES!r} has dims {ds[POLYGON_CODES].dims}, expected 1-D")
    tie_points = _read_tie_points(ds, name, sar_shape)
    start_time = scene_start_time(name, dict(ds.attrs))

    hh_file = _read_float(ds, HH)
    distance_file = _read_float(ds, DISTANCE)
    no_data = _raw_sar_no_data(ds, hh_file) if product == "raw" else (hh_file == 0.0) | ~np.isfinite(hh_file)
    land = land_from_distance(distance_file, product)
    del hh_file, distance_file
    if no_data.all():
        raise _fail(name, f"no SAR data: {HH!r} is no-data (NaN{'' if product == 'raw' else ' or 0'}) at every pixel")

    channels = {var: _read_channel(ds, var, product, sar_shape, interp, tie_points, name)
                for var in file_channels}
    if product == "raw" and INCIDENCE in channels:
        channels[INCIDENCE][no_data] = 0.0  # as in RTT files: no incidence angle where no SAR
    for var in channel_names:
        if var in DERIVED_CHANNELS:
            try:
                channels[var] = derived_channel(var, tie_points, start_time, sar_shape)
            except ValueError as err:
                raise _fail(name, str(err)) from None
    channels = {var: channels[var] for var in channel_names}

    polygon_index = lookup = None
    report: dict = {}
    if chart_source == "polygons":
        sic, sod, floe, polygon_index, lookup = _read_raw_charts(ds, name)
        land |= (lookup.poly_type == "L")[polygon_index]  # bool per pixel, not a '<U1' raster
    elif chart_source == "rasters":
        sic, sod, floe = (_read_uint8(ds, name, c, NUM_CLASSES[c]) for c in CHART_NAMES)
    elif chart_source == "reference":
        sic, sod, floe = _reference_charts(path, name, sar_shape)
    else:
        sic, sod, floe = (np.full(sar_shape, CHART_FILL, np.uint8) for _ in CHART_NAMES)
    valid = ~land & ~no_data
    del land, no_data  # the masks and index rasters go as soon as they are used: lower peak memory
    # No supervision where there is no usable SAR: mask the charts there (a no-op for RTT land).
    for chart in (sic, sod, floe):
        chart[~valid] = CHART_FILL
    usable = valid & (sic != CHART_FILL)
    if chart_source == "polygons":
        region_ids, region_conc = polygon_regions(polygon_index, usable, lookup.conc)
        report = chart_report(lookup, polygon_index, valid)
    else:
        region_ids, region_conc = chart_regions(sic, sod, floe, usable)
    del usable, polygon_index

    ice_truth = _read_uint8(ds, name, ICE_TRUTH, None) if ICE_TRUTH in ds.variables else None
    return Scene(
        name=name[: -len(".nc")] if name.endswith(".nc") else name,
        path=path,
        product=product,
        channels=channels,
        sic=sic,
        sod=sod,
        floe=floe,
        region_ids=region_ids,
        region_conc=region_conc,
        valid=valid,
        ice_truth=ice_truth,
        tie_points=tie_points,
        start_time=start_time,
        chart_report=report,
    )


def open_scene(
    path: str,
    *,
    interp: str = "bilinear",
    channels: Iterable[str] | None = None,
    require_charts: bool = True,
) -> Scene:
    """Read a ready-to-train or raw AI4Arctic scene (real layout or this project's synthetic) into a `Scene`.

    path: a `.nc` file. A test-split `<id>_prep.nc` without charts takes them from the
    `<id>_prep_reference.nc` beside it when there is one. interp: 'bilinear' or 'nearest' for the
    2 km channels. channels: input channels (or group aliases, see channels.resolve_channels) to
    read, derived ones (latitude, month_sin, ...) included; None = the 24 standard channels.
    require_charts: when False, a scene without any chart (e.g. an unlabelled test scene) is read
    with all-255 charts and no regions.
    Raises SceneError (one line, names the file) for any unusable file.
    """
    if interp not in INTERP_MODES:
        raise ValueError(f"interp must be one of {INTERP_MODES}, got {interp!r}")
    channel_names = ALL_CHANNELS if channels is None else resolve_channels(list(channels))
    name = os.path.basename(path)
    if not os.path.isfile(path):
        raise _fail(name if name else path, f"no such file ({path})")
    if name.endswith(REFERENCE_SUFFIX):
        raise _fail(name, f"is a reference chart file; open its {name[: -len(REFERENCE_SUFFIX)]}_prep.nc "
                          "(the reference is paired with it automatically)")
    try:
        with xr.open_dataset(
            path, engine="netcdf4", mask_and_scale=True, decode_times=False, cache=False
        ) as ds:
            return _scene_from_dataset(ds, path, name, interp, channel_names, require_charts)
    except SceneError:
        raise
    except (OSError, RuntimeError, ValueError) as err:  # corrupt / truncated: netCDF4, HDF5, xarray
        raise _fail(name, f"cannot read ({type(err).__name__}: {err})") from err


def _is_scene_file(file_name: str) -> bool:
    return (file_name.endswith(".nc") and not file_name.endswith("_pred.nc")
            and not file_name.endswith(REFERENCE_SUFFIX))


def list_scene_files(paths: list[str]) -> list[str]:
    """Scene files: folders become their sorted `*.nc` files (without `*_pred.nc` and the
    `*_prep_reference.nc` chart companions, which open_scene pairs itself); files stay as given.

    Duplicates are dropped (first occurrence kept). Raises SceneError for a path that does not exist,
    a folder without scenes, or a reference file given as a scene.
    """
    files: list[str] = []
    for path in paths:
        if os.path.isdir(path):
            found = sorted(
                os.path.join(path, f)
                for f in os.listdir(path)
                if _is_scene_file(f) and os.path.isfile(os.path.join(path, f))
            )
            if not found:
                raise SceneError(f"{path}: folder holds no .nc scene files")
            files.extend(found)
        elif os.path.isfile(path):
            if path.endswith(REFERENCE_SUFFIX):
                raise SceneError(f"{path}: is a reference chart file, not a scene; give its _prep.nc")
            files.append(path)
        else:
            raise SceneError(f"{path}: no such file or folder")
    return list(dict.fromkeys(files))
