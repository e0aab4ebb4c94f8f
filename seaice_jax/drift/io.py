"""Drift fields in and out: CF NetCDF, a PNG of the vectors over HH, and a minimal scene reader.

File layout (one file holds one or more methods on the same grid, e.g. pattern matching and phase
correlation, or the synthetic truth):
  dims   method, y, x
  coords method (strings), line(y), sample(x) (scene A's pixel of each grid row / column),
         latitude(y, x), longitude(y, x) (start positions, degrees)
  vars   eastward_sea_ice_displacement / northward_sea_ice_displacement (method, y, x) m, CF standard
         names of those names; displacement_line / displacement_sample (method, y, x) px of scene A;
         end_latitude / end_longitude; quality, correlation_peak, rotation (degrees); valid (0/1);
         nominal_uncertainty (method) m; time_a / time_b (scalars, seconds since 1970-01-01, CF time)
  attrs  Conventions = "CF-1.8", pixel_spacing_m, title, source
"""

from __future__ import annotations

import datetime as dt
import os
import re

import numpy as np
import xarray as xr

from seaice_jax import fileio
from seaice_jax.data import geolocation as geo
from seaice_jax.data.scene import land_from_distance
from seaice_jax.drift.estimation import DriftField

EPOCH = dt.datetime(1970, 1, 1)
TIME_UNITS = "seconds since 1970-01-01 00:00:00"

_PER_METHOD = {
    # DriftField attribute: (variable name, attrs)
    "east_m": ("eastward_sea_ice_displacement", {"units": "m", "standard_name": "eastward_sea_ice_displacement",
                                                  "long_name": "eastward sea-ice displacement from time_a to time_b"}),
    "north_m": ("northward_sea_ice_displacement", {"units": "m", "standard_name": "northward_sea_ice_displacement",
                                                    "long_name": "northward sea-ice displacement "
                                                                 "from time_a to time_b"}),
    "drow": ("displacement_line", {"units": "1", "long_name": "displacement along scene A's lines (pixels)"}),
    "dcol": ("displacement_sample", {"units": "1", "long_name": "displacement along scene A's samples (pixels)"}),
    "end_latitude": ("end_latitude", {"units": "degrees_north", "standard_name": "latitude",
                                      "long_name": "latitude of the ice at time_b"}),
    "end_longitude": ("end_longitude", {"units": "degrees_east", "standard_name": "longitude",
                                        "long_name": "longitude of the ice at time_b"}),
    "quality": ("quality", {"units": "1", "long_name": "match quality: correlation peak x peak sharpness (1/px^2); "
                                                        "phase correlation: peak / std of its surface"}),
    "mcc": ("correlation_peak", {"units": "1", "long_name": "maximum normalised cross-correlation "
                                                            "(phase correlation: peak)"}),
    "rotation_deg": ("rotation", {"units": "degree", "long_name": "rotation of the best-matching template, "
                                                                  "counter-clockwise on scene A as displayed"}),
}


class DriftFileError(ValueError):
    """A drift or scene file that cannot be read as expected; the message says why."""


def _seconds(t: dt.datetime) -> float:
    return (t - EPOCH).total_seconds()


def write_drift(path: str, fields: dict[str, DriftField] | DriftField, *, title: str = "sea-ice drift") -> None:
    """Write one or more DriftFields (same grid) as one CF NetCDF file."""
    if isinstance(fields, DriftField):
        fields = {fields.method: fields}
    items = list(fields.items())
    ref = items[0][1]
    for name, f in items[1:]:
        if not (np.array_equal(f.rows, ref.rows) and np.array_equal(f.cols, ref.cols)
                and f.time_a == ref.time_a and f.time_b == ref.time_b):
            raise ValueError(f"drift method {name!r} is not on the grid / times of {items[0][0]!r}")
    data = {}
    for attr, (var, attrs) in _PER_METHOD.items():
        stack = np.stack([np.asarray(getattr(f, attr), np.float32) for _, f in items])
        data[var] = (("method", "y", "x"), stack, dict(attrs))
    data["valid"] = (("method", "y", "x"), np.stack([f.valid.astype(np.int8) for _, f in items]),
                     {"long_name": "vector passed the quality mask", "flag_values": np.array([0, 1], np.int8),
                      "flag_meanings": "rejected valid"})
    data["nominal_uncertainty"] = (("method",), np.array([f.uncertainty_m for _, f in items], np.float32),
                                   {"units": "m", "long_name": "nominal displacement error of one vector"})
    for key, t in (("time_a", ref.time_a), ("time_b", ref.time_b)):
        data[key] = ((), np.float64(_seconds(t)), {"units": TIME_UNITS, "calendar": "standard",
                                                   "standard_name": "time",
                                                   "long_name": f"acquisition {key[-1].upper()}"})
    coords = {
        "method": ("method", np.array([name for name, _ in items], dtype=object)),
        "line": ("y", np.asarray(ref.rows, np.float64), {"units": "1", "long_name": "scene A line of the grid row"}),
        "sample": ("x", np.asarray(ref.cols, np.float64),
                   {"units": "1", "long_name": "scene A sample of the grid column"}),
        "latitude": (("y", "x"), ref.latitude, {"units": "degrees_north", "standard_name": "latitude"}),
        "longitude": (("y", "x"), ref.longitude, {"units": "degrees_east", "standard_name": "longitude"}),
    }
    for var in ("eastward_sea_ice_displacement", "northward_sea_ice_displacement", "quality", "valid"):
        data[var][2]["coordinates"] = "latitude longitude"
    ds = xr.Dataset(data, coords=coords, attrs={
        "Conventions": "CF-1.8", "title": title, "pixel_spacing_m": float(ref.pixel_spacing_m),
        "source": "seaice_jax.drift: normalised cross-correlation pattern matching / FFT phase correlation",
    })
    encoding = {v: {"zlib": True, "complevel": 1} for v in ds.data_vars if ds[v].ndim >= 2}
    encoding.update({k: {"dtype": "float64"} for k in ("time_a", "time_b")})
    fileio.write_atomically(lambda tmp: ds.to_netcdf(tmp, engine="netcdf4", encoding=encoding), path, ".nc.part")


def read_drift(path: str) -> dict[str, DriftField]:
    """{method: DriftField} from a file `write_drift` wrote."""
    if not os.path.exists(path):
        raise DriftFileError(f"{path}: drift file not found")
    with xr.open_dataset(path, decode_times=False) as ds:
        missing = [v for v, _ in _PER_METHOD.values() if v not in ds] + [v for v in ("valid", "time_a") if v not in ds]
        if missing:
            raise DriftFileError(f"{path}: not a drift file (missing {', '.join(missing)})")
        ds = ds.load()
    ta = EPOCH + dt.timedelta(seconds=float(ds["time_a"]))
    tb = EPOCH + dt.timedelta(seconds=float(ds["time_b"]))
    out = {}
    for i, name in enumerate(str(m) for m in ds["method"].values):
        kw = {attr: ds[var].values[i].astype(np.float64) for attr, (var, _) in _PER_METHOD.items()}
        out[name] = DriftField(
            rows=ds["line"].values, cols=ds["sample"].values, latitude=ds["latitude"].values,
            longitude=ds["longitude"].values, valid=ds["valid"].values[i].astype(bool), time_a=ta, time_b=tb,
            pixel_spacing_m=float(ds.attrs["pixel_spacing_m"]), method=name,
            uncertainty_m=float(ds["nominal_uncertainty"].values[i]), **kw)
    return out


def read_drift_fields(paths, method: str = "pattern_matching") -> list:
    """The DriftFields of `method` in the given drift NetCDF files (launch/drift.py outputs)."""
    fields = []
    for p in ([paths] if isinstance(paths, str) else list(paths or [])):
        got = read_drift(p)
        if method not in got:
            raise ValueError(f"{p}: no drift method {method!r} (has {', '.join(got)})")
        fields.append(got[method])
    return fields


def plot_drift_png(path: str, hh: np.ndarray, field: DriftField, *, max_arrows: int = 40, dpi: int = 100) -> None:
    """A PNG of the valid vectors (coloured by quality) over scene A's HH (grey, 2-98 % stretch)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    hh = np.asarray(hh, np.float32)
    stride = max(1, int(np.ceil(max(hh.shape) / 1500)))
    img = hh[::stride, ::stride]
    finite = img[np.isfinite(img)]
    lo, hi = np.percentile(finite, [2, 98]) if finite.size else (0.0, 1.0)
    fig, ax = plt.subplots(figsize=(8, 8 * hh.shape[0] / hh.shape[1] + 0.5))
    ax.imshow(img, cmap="gray", vmin=lo, vmax=hi, extent=(-0.5, hh.shape[1] - 0.5, hh.shape[0] - 0.5, -0.5))
    k = max(1, int(np.ceil(max(field.rows.size, field.cols.size) / max_arrows)))
    R, C = np.meshgrid(field.rows[::k], field.cols[::k], indexing="ij")
    ok = field.valid[::k, ::k]
    if ok.any():
        q = ax.quiver(C[ok], R[ok], field.dcol[::k, ::k][ok], field.drow[::k, ::k][ok], field.quality[::k, ::k][ok],
                      angles="xy", scale_units="xy", scale=1.0, cmap="viridis", width=0.003)
        fig.colorbar(q, ax=ax, shrink=0.7, label="quality")
        # The arrow key: arrows are drawn at true length on the image (1 px of drift = 1 px of scene A),
        # so the key's arrow is a round distance near the typical displacement, labelled in km.
        km = arrow_key_km(np.hypot(field.drow, field.dcol)[field.valid] * field.pixel_spacing_m / 1000.0)
        ax.quiverkey(q, 0.82, 1.02, km * 1000.0 / field.pixel_spacing_m, f"{km:g} km", labelpos="E",
                     coordinates="axes", color="black", fontproperties={"size": 8})
    hours = field.gap_seconds / 3600.0
    ax.set_title(f"{field.method}: {int(field.valid.sum())} vectors, {hours:.1f} h "
                 f"({field.time_a:%Y-%m-%d %H:%M} -> {field.time_b:%Y-%m-%d %H:%M})")
    ax.set_xlabel("sample (scene A)")
    ax.set_ylabel("line (scene A)")
    try:
        fileio.write_atomically(lambda tmp: fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight"), path,
                                ".png.part")
    finally:
        plt.close(fig)


def arrow_key_km(lengths_km) -> float:
    """A round length (1, 2 or 5 x 10^k km) near the median of the drawn vectors' lengths."""
    lengths = np.asarray(lengths_km, np.float64)
    lengths = lengths[np.isfinite(lengths) & (lengths > 0)]
    typical = float(np.median(lengths)) if lengths.size else 1.0
    power = 10.0 ** np.floor(np.log10(typical))
    return float(min((1, 2, 5, 10), key=lambda m: abs(np.log(m * power / typical))) * power)


# --------------------------------------------------------------------------------------------
# Scenes: just what drift needs, read directly from the AI4Arctic NetCDF files
# --------------------------------------------------------------------------------------------

_STAMP = re.compile(r"(\d{8}T\d{6})")


def _start_time(ds: xr.Dataset, path: str) -> dt.datetime:
    """Start time from the RTT `scene_id` / raw Sentinel-1 name (first YYYYMMDDTHHMMSS in it)."""
    for text in (ds.attrs.get("scene_id"), ds.attrs.get("original_id"), os.path.basename(path)):
        if text:
            m = _STAMP.search(str(text))
            if m:
                return dt.datetime.strptime(m.group(1), "%Y%m%dT%H%M%S")
    raise DriftFileError(f"{path}: no acquisition time in scene_id, original_id or the file name")


def read_scene_for_drift(path: str, channel: str = "nersc_sar_secondary"):
    """(image float32 [H, W] with NaN = no data, TiePoints, start time) of one AI4Arctic scene.

    RTT (`_prep.nc`): SAR is standard scaled and 0 is its fill value (`variable_fill_value`); tie
    points `sar_grid2d_latitude / longitude`, samples first. Raw: NaN = no data; tie points
    `sar_grid_line / sample / latitude / longitude`. Land (distance_map zone 0) is no data too.
    """
    if not os.path.exists(path):
        raise DriftFileError(f"{path}: scene file not found")
    with xr.open_dataset(path, decode_times=False) as ds:
        if channel not in ds:
            raise DriftFileError(f"{path}: no variable {channel!r}")
        image = ds[channel].values.astype(np.float32)
        rtt = "sar_grid2d_latitude" in ds
        if rtt:
            fill = ds[channel].attrs.get("variable_fill_value", 0)
            image = np.where(image == fill, np.nan, image)
        if "distance_map" in ds and ds["distance_map"].shape == image.shape:
            # land does not drift: its static texture would match at zero displacement, and the median test
            # would keep those vectors; it is no data here, as in drift products
            image[land_from_distance(ds["distance_map"].values, "rtt" if rtt else "raw")] = np.nan
        if rtt:
            tie = geo.tie_points_from_rtt(ds["sar_grid2d_latitude"].values, ds["sar_grid2d_longitude"].values,
                                          image.shape)
        elif "sar_grid_latitude" in ds:
            tie = geo.tie_points_from_raw(ds["sar_grid_line"].values, ds["sar_grid_sample"].values,
                                          ds["sar_grid_latitude"].values, ds["sar_grid_longitude"].values)
        else:
            raise DriftFileError(f"{path}: no tie points (sar_grid2d_* or sar_grid_*)")
        start = _start_time(ds, path)
    return image, tie, start


def pixel_spacing_m(path: str) -> float:
    """The scene's pixel spacing: its `pixel_spacing` attribute (RTT: 80), else 80 for the RTT layout
    and 40 for raw files."""
    with xr.open_dataset(path, decode_times=False) as ds:
        if "pixel_spacing" in ds.attrs:
            return float(ds.attrs["pixel_spacing"])
        return 80.0 if "sar_grid2d_latitude" in ds else 40.0
