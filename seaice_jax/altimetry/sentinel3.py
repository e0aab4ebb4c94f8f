"""Sentinel-3 SRAL L2 sea-ice thematic product `SR_2_LAN_SI` (`.SEN3` folder, `enhanced_measurement.nc`).

Flat netCDF with 20 Hz Ku records (docs/altimetry.md section 3): `time_20_ku` (epoch from its `units`
attribute, U), `lat_20_ku` / `lon_20_ku` (int32 scaled: the attributes do the scaling). The freeboard
name is U-ish: the first present of `radar_freeboard_20_ku`, `sea_ice_freeboard_20_ku`,
`freeboard_20_ku` is read. Lead / floe from `surf_type_class_20_ku` by its `flag_meanings`
(fallback 1 = sea ice, 2 = lead, I/U). No per-point uncertainty: 0.10 m like CryoSat-2.
"""

from __future__ import annotations

import os

import numpy as np

from seaice_jax.altimetry import _nc
from seaice_jax.altimetry.track import (
    DEFAULT_UNCERTAINTY_M,
    FLOE,
    LEAD,
    SEA_SURFACE,
    SENTINEL3_FOOTPRINT_M,
    UNKNOWN,
    AltimetryFormatError,
    Track,
    unix_to_datetime,
)

FREEBOARD_NAMES = ("radar_freeboard_20_ku", "sea_ice_freeboard_20_ku", "freeboard_20_ku")
MEASUREMENT_FILE = "enhanced_measurement.nc"


def sen3_name(start_time, stop_time, platform="S3A", cycle=42, rel_orbit=131, baseline=5, timeliness="NT") -> str:
    fmt = "%Y%m%dT%H%M%S"
    s, e = unix_to_datetime(start_time).strftime(fmt), unix_to_datetime(stop_time).strftime(fmt)
    return (f"{platform}_SR_2_LAN_SI_{s}_{e}_{e}_{int(stop_time - start_time):04d}_{cycle:03d}_{rel_orbit:03d}"
            f"______LN3_R_{timeliness}_{baseline:03d}.SEN3")


def _measurement_path(path) -> str:
    p = os.fspath(path)
    if os.path.isdir(p):
        p = os.path.join(p, MEASUREMENT_FILE)
        if not os.path.exists(p):
            raise AltimetryFormatError(path, f"no {MEASUREMENT_FILE} in the .SEN3 folder")
    return p


def read_sentinel3(path) -> list[Track]:
    """A `.SEN3` folder or its `enhanced_measurement.nc` -> one Track."""
    fname = _measurement_path(path)
    folder = os.path.basename(os.path.dirname(fname))
    platform = folder[:3].upper() if folder.upper().startswith(("S3A", "S3B")) else "S3A"
    with _nc.open_nc(fname) as ds:
        fb_name = _nc.first_present(ds, FREEBOARD_NAMES)
        if fb_name is None:
            raise AltimetryFormatError(fname, "missing variable " + " / ".join(FREEBOARD_NAMES))
        t = _nc.read_time(ds, "time_20_ku", fname, "seconds since 2000-01-01 00:00:00.0")
        lat, lon = _nc.read_float(ds, "lat_20_ku", fname), _nc.read_float(ds, "lon_20_ku", fname)
        fb = _nc.read_float(ds, fb_name, fname)
        surface = np.where(np.isfinite(fb), FLOE, UNKNOWN).astype(np.uint8)
        if "surf_type_class_20_ku" in ds.variables:
            v = ds.variables["surf_type_class_20_ku"]
            vals, valid = _nc.read_int(ds, "surf_type_class_20_ku", fname)
            meanings = _nc.flag_meanings(v) or {"sea_ice": 1, "lead": 2}
            surface = np.full(fb.shape, UNKNOWN, np.uint8)
            for name, val in meanings.items():
                n = name.lower()
                cls = (LEAD if "lead" in n else FLOE if "ice" in n else SEA_SURFACE if "ocean" in n else UNKNOWN)
                surface[valid & (vals == val)] = cls
        fb = np.where((surface == LEAD) & ~np.isfinite(fb), 0.0, fb)
        quality = np.isfinite(fb) & np.isfinite(lat) & np.isfinite(lon) & (surface != UNKNOWN)
        mission = "sentinel3b" if platform == "S3B" else "sentinel3a"
        return [Track(time=t, latitude=np.nan_to_num(lat), longitude=np.nan_to_num(lon), value=fb,
                      uncertainty=DEFAULT_UNCERTAINTY_M[mission], surface=surface, quality=quality,
                      footprint_along=SENTINEL3_FOOTPRINT_M[0], footprint_across=SENTINEL3_FOOTPRINT_M[1],
                      kind="freeboard", mission=mission, product="SR_2_LAN_SI", track_id=folder or fname,
                      path=fname, attrs={"freeboard_variable": fb_name, "uncertainty_source": "default 0.10 m"})]


def write_sentinel3(directory, track: Track, *, platform: str = "S3A", freeboard_name: str = "radar_freeboard_20_ku",
                    name: str | None = None) -> str:
    """A `<name>.SEN3/enhanced_measurement.nc` from one Track; returns the `.SEN3` folder path."""
    name = name or sen3_name(track.time.min(), track.time.max(), platform)
    folder = os.path.join(os.fspath(directory), name)
    os.makedirs(folder, exist_ok=True)
    n = len(track)
    with _nc.create(os.path.join(folder, MEASUREMENT_FILE)) as ds:
        ds.createDimension("time_20_ku", n)
        ds.product_name = name
        _nc.put(ds, "time_20_ku", track.time - 946684800.0, np.float64, ("time_20_ku",),
                units="seconds since 2000-01-01 00:00:00.0", calendar="gregorian")
        _nc.put(ds, "lat_20_ku", track.latitude, np.int32, ("time_20_ku",), fill=2147483647, scale=1e-6,
                units="degrees_north")
        _nc.put(ds, "lon_20_ku", track.longitude, np.int32, ("time_20_ku",), fill=2147483647, scale=1e-6,
                units="degrees_east")
        value = np.where(track.quality, track.value, np.nan)
        _nc.put(ds, freeboard_name, value, np.int32, ("time_20_ku",), fill=2147483647, scale=1e-4, units="m")
        # The layout has no quality flag: a bad point is written without freeboard and unclassified.
        cls = np.select([~track.quality, track.surface == SEA_SURFACE, track.surface == FLOE, track.surface == LEAD],
                        [3, 0, 1, 2], 3)
        _nc.put(ds, "surf_type_class_20_ku", cls, np.int8, ("time_20_ku",), fill=np.int8(-1),
                flag_values=np.array([0, 1, 2, 3], np.int8), flag_meanings="open_ocean sea_ice lead unclassified")
    return folder
